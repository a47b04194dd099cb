"""Ledgers for the finance tests: one per backend, with teams in cost centers, and events
written straight into the store (the ledger's own append path, rollups included)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spendgate import management
from spendgate.cli.main import main
from spendgate.ledger.events import UsageEvent, new_event_id
from tests.conftest import open_test_store

TEAMS = {"alpha": "CC-100", "beta": "CC-200", "gamma": "CC-200", "platform": "CC-900"}
_serial = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = (
        request.getfixturevalue("postgres_db")() if request.param == "postgresql" else f"sqlite:///{tmp_path / 'f.db'}"
    )
    store = open_test_store(url)
    for team, center in TEAMS.items():
        management.create_team(store, team, center)
        management.create_project(store, f"{team}-app", team)
    store.close()
    yield url


def event(
    ts: datetime,
    cost: Decimal | None,
    *,
    team: str | None = None,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    source: str = "proxy",
    tags: dict[str, str] | None = None,
    input_tokens: int = 100,
    output_tokens: int = 20,
) -> UsageEvent:
    return UsageEvent(
        id=f"{new_event_id(ts)[:12]}{next(_serial):020x}",
        ts=ts,
        provider=provider,
        model=model,
        endpoint="/v1/chat/completions",
        stream=False,
        status="ok",
        http_status=200,
        project=f"{team}-app" if team else None,
        team=team,
        cost_center=TEAMS.get(team or ""),
        tags=tags,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        source=source,
    )


def write(url: str, events: list[UsageEvent]) -> None:
    store = open_test_store(url)
    try:
        store.append_events(events)
    finally:
        store.close()


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").output)

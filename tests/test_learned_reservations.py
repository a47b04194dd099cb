"""Learned reservations in the request path (budgets/reservations.py): the table learned from
the ledger, and budgets through the openai SDK against the simulator, in strict and learned
mode, on both ledger backends and with in-process or Redis counters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from spendgate.budgets.estimate import reservation_tokens
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.output_model import LEARNED, STRICT, OutputModelParams, worst_case_overspend
from spendgate.budgets.reservations import ReservationTable, build_table, model_family
from spendgate.budgets.windows import window_for
from spendgate.ledger.events import UsageEvent
from spendgate.settings import SettingsError, load_settings
from spendgate.usage import Usage
from tests.conftest import BACKENDS, Gateway, open_test_store

MODEL = "gpt-4o"
GPT4O_MAX_OUTPUT = 16_384
# 250 samples of 20..99 output tokens: the p99 order statistic is 99.
SAMPLE_COUNTS = [20 + i % 80 for i in range(250)]


# --- the table (pure) ---------------------------------------------------------------------
def test_model_family_strips_snapshot_dates_only() -> None:
    assert model_family("gpt-4o-2024-08-06") == "gpt-4o"
    assert model_family("claude-3-5-sonnet-20241022") == "claude-3-5-sonnet"
    assert model_family("gpt-4o") == "gpt-4o"
    assert model_family("gpt-4o-mini") == "gpt-4o-mini"


def test_table_learns_by_family_and_falls_back_to_the_model_then_strict() -> None:
    samples = {("gpt-4o-2024-08-06", "support"): SAMPLE_COUNTS, ("gpt-4o", "search"): [5] * 10}
    table = build_table(samples, OutputModelParams())
    assert table.output_tokens("gpt-4o", "support") == 99
    assert table.output_tokens("gpt-4o-2024-08-06", "support") == 99  # a dated request meets its family
    assert table.output_tokens("gpt-4o", "search") == 99  # too few samples: the model across projects
    assert table.output_tokens("gpt-4o-mini", "support") is None  # nothing learned: strict
    assert build_table(samples, OutputModelParams(), STRICT).output_tokens("gpt-4o", "support") is None
    assert ReservationTable(LEARNED).output_tokens("gpt-4o", "support") is None


def test_learned_output_replaces_only_the_models_bound() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    assert reservation_tokens("chat", MODEL, body)[1] == GPT4O_MAX_OUTPUT
    assert reservation_tokens("chat", MODEL, body, 99)[1] == 99
    assert reservation_tokens("chat", MODEL, {**body, "n": 3}, 99)[1] == 297  # per answer
    assert reservation_tokens("chat", MODEL, {**body, "max_tokens": 500}, 99)[1] == 500  # a cap is a cap
    assert reservation_tokens("chat", MODEL, body, 10**9)[1] == GPT4O_MAX_OUTPUT  # never above strict
    assert reservation_tokens("embeddings", "text-embedding-3-small", {"input": "x"}, 99)[1] == 0


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SPENDGATE_RESERVATION": "optimistic"}, "strict or learned"),
        ({"SPENDGATE_RESERVATION_PERCENTILE": "0.3"}, "between 0.5 and 0.9999"),
        ({"SPENDGATE_RESERVATION_PERCENTILE": "1"}, "between 0.5 and 0.9999"),
        ({"SPENDGATE_RESERVATION_PERCENTILE": "nan"}, "between 0.5 and 0.9999"),
    ],
)
def test_reservation_settings_are_bounded(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings({}, env)


def test_reservation_settings_load() -> None:
    settings = load_settings({}, {"SPENDGATE_RESERVATION": "learned", "SPENDGATE_RESERVATION_PERCENTILE": "0.95"})
    assert (settings.reservation, settings.reservation_percentile) == ("learned", 0.95)
    assert load_settings({}, {}).reservation == "strict"


# --- the ledger's samples, on both backends ----------------------------------------------------
@pytest.fixture(params=BACKENDS)
def empty_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = (
        request.getfixturevalue("postgres_db")() if request.param == "postgresql" else f"sqlite:///{tmp_path / 'l.db'}"
    )
    store = open_test_store(url)
    yield store
    store.close()


def test_samples_are_the_latest_successful_answers_per_model_and_project(empty_ledger: Any) -> None:
    now = datetime.now(UTC)

    def event(i: int, ago: timedelta, output: int, **fields: Any) -> UsageEvent:
        values: dict[str, Any] = {"model": "gpt-4o", "project": "support", "status": "ok", **fields}
        return UsageEvent(
            id=f"e{i}",
            ts=now - ago,
            provider="openai",
            endpoint="/v1/chat/completions",
            stream=False,
            http_status=200,
            output_tokens=output,
            cost_usd=Decimal("0.001"),
            **values,
        )

    events = [event(i, timedelta(minutes=i), 100 + i) for i in range(6)]  # newest: 100, 101, …
    events += [
        event(10, timedelta(minutes=1), 7, project=None),  # unallocated: its own group
        event(11, timedelta(minutes=1), 9, model="gpt-4o-mini"),
        event(12, timedelta(minutes=1), 5000, status="error"),  # failed: says nothing
        event(13, timedelta(minutes=1), 0),  # wrote nothing (an embedding, a refusal)
        event(14, timedelta(days=9), 6000),  # before the lookback
    ]
    empty_ledger.append_events(events)
    samples = empty_ledger.recent_output_tokens(now - timedelta(days=7), 4)
    assert {group: sorted(counts) for group, counts in samples.items()} == {
        ("gpt-4o", "support"): [100, 101, 102, 103],  # the latest four of six
        ("gpt-4o", None): [7],
        ("gpt-4o-mini", "support"): [9],
    }


# --- through the gateway --------------------------------------------------------------------
def _seed_history(gateway: Gateway) -> None:
    """250 past answers of the project (two days ago: outside today's budget window), under
    the dated name the provider reports."""
    ts = datetime.now(UTC) - timedelta(days=2)
    events = [
        UsageEvent(
            id=f"history-{i}",
            ts=ts + timedelta(seconds=i),
            provider="openai",
            model="gpt-4o-2024-08-06",
            endpoint="/v1/chat/completions",
            stream=False,
            status="ok",
            http_status=200,
            project="support",
            team="cx",
            key="bot",
            input_tokens=10,
            output_tokens=count,
            cost_usd=Decimal("0.001"),
        )
        for i, count in enumerate(SAMPLE_COUNTS)
    ]
    gateway.store.append_events(events)


def _setup(gateway: Gateway, limit: str) -> str:
    gateway.team("cx")
    gateway.project("support", "cx")
    secret = gateway.key("bot", project="support")
    _seed_history(gateway)
    gateway.store.create_budget(Budget("support-day", Scope.parse("project:support"), Decimal(limit), "day"))
    gateway.wait_for_directory()
    app = gateway.app
    assert app.loop is not None
    asyncio.run_coroutine_threadsafe(app.reservations.refresh(), app.loop).result(10)
    return secret


def _burst(gateway: Gateway, secret: str, count: int, directive: str) -> tuple[int, int]:
    """``count`` concurrent chat requests without max_tokens, each held upstream long enough
    for all to be in flight at once: (admitted, refused with a 402)."""

    async def one(client: openai.AsyncOpenAI) -> bool:
        try:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"[[sim delay_ms=3000 {directive}]] hi"}]
            )
        except openai.APIStatusError as refused:
            assert refused.status_code == 402, refused.message
            return False
        return True

    async def run() -> list[bool]:
        async with gateway.async_openai(secret) as client:
            return await asyncio.gather(*(one(client) for _ in range(count)))

    outcomes = asyncio.run(run())
    gateway.flush()
    return sum(outcomes), outcomes.count(False)


def _spent(gateway: Gateway) -> Decimal:
    window = window_for("day", "UTC", datetime.now(UTC))
    return gateway.store.spend(Scope.parse("project:support"), window.start, window.end)


def test_learned_mode_admits_many_more_concurrent_requests(make_gateway: Callable[..., Gateway]) -> None:
    # $1 a day: strict holds gpt-4o's 16,384 output tokens ($0.16) per request, so about six
    # fit at once; learned holds the project's p99 (99 tokens, $0.001).
    admitted = {}
    for mode in (STRICT, LEARNED):
        gateway = make_gateway(reservation=mode)
        secret = _setup(gateway, "1")
        admitted[mode], refused = _burst(gateway, secret, 16, "")
        assert admitted[mode] + refused == 16
    assert admitted[STRICT] == 6
    assert admitted[LEARNED] == 16


@pytest.mark.parametrize("counters", ["in-process", "redis"])
@pytest.mark.parametrize(("mode", "limit"), [(STRICT, "0.5"), (LEARNED, "0.05")])
def test_overspend_when_every_request_runs_to_the_maximum(
    make_gateway: Callable[..., Gateway], request: pytest.FixtureRequest, counters: str, mode: str, limit: str
) -> None:
    redis = {"redis_url": request.getfixturevalue("redis_url")} if counters == "redis" else {}
    gateway = make_gateway(reservation=mode, **redis)
    secret = _setup(gateway, limit)
    learned = gateway.app.reservations.table.output_tokens(MODEL, "support")
    assert learned == (99 if mode == LEARNED else None)

    admitted, _ = _burst(gateway, secret, 8, f"output={GPT4O_MAX_OUTPUT}")
    overspend = _spent(gateway) - Decimal(limit)
    if mode == STRICT:
        assert 1 <= admitted <= 3
        assert overspend <= 0  # strict mode never ends above its limit
    else:
        assert admitted == 8
        per_token = gateway.app.gateway.prices.price("openai", MODEL, Usage(output_tokens=1), datetime.now(UTC))
        assert per_token is not None
        bound = worst_case_overspend(admitted, GPT4O_MAX_OUTPUT, learned, per_token.cost)
        assert 0 < overspend <= bound, (overspend, bound)
    # Once over, the budget refuses whatever the mode.
    assert _burst(gateway, secret, 1, "")[0] == 0

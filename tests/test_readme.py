"""The README documents every setting, command, endpoint and header: checked against the code,
so adding one without documenting it fails here."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from spendgate.cli import main
from spendgate.gateway.routes import ROUTES
from spendgate.settings import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def commands(group: click.Group, prefix: str = "spendgate") -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.extend(commands(command, path))
        else:
            found.append(path)
    return found


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_settings_table(setting) -> None:
    rows = [line for line in README.splitlines() if line.startswith(f"| `{setting.name}` |")]
    assert rows, f"README's settings table has no row for {setting.name}"
    if setting.env:
        assert f"`{setting.env}`" in rows[0]


@pytest.mark.parametrize("command", commands(main))
def test_every_command_is_documented(command: str) -> None:
    # "spendgate budgets create" may be written "budgets create" after a slash in a CLI table row.
    group_and_name = command.removeprefix("spendgate ")
    assert f"`{command}" in README or re.search(rf"[`/ ]{re.escape(group_and_name)}[` ]", README), command


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_every_gateway_endpoint_is_documented(path: str) -> None:
    assert f"`{ROUTES[path].method} {path}`" in README or f"`{path}`" in README, path


@pytest.mark.parametrize(
    "header",
    [
        "x-spendgate-project",
        "x-spendgate-team",
        "x-spendgate-feature",
        "x-spendgate-customer",
        "x-spendgate-trace-id",
        "x-spendgate-tags",
        "x-spendgate-request-id",
        "x-spendgate-cost-usd",
        "x-spendgate-budget",
        "x-spendgate-budget-remaining-usd",
        "x-spendgate-signature",
        "x-spendgate-event",
        "x-spendgate-alert-id",
    ],
)
def test_every_header_is_documented(header: str) -> None:
    assert header in README.lower(), header

"""`spendgate finance report` (issue 12 item 3) on both backends: every figure of the JSON
equals a `spendgate report` query to the last digit; the CSV carries the same exact figures;
the HTML rounds to cents by largest remainder, each table's rounded lines summing to its
rounded total; and the rounding itself (hypothesis)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.budgets.model import Budget, Scope
from spendgate.finance.rounding import round_lines, round_total
from tests.conftest import open_test_store
from tests.finance_support import cli, cli_json, event, ledger, write  # noqa: F401  (ledger: a fixture)

MONTH = "2026-03"


def _seed(url: str) -> None:
    events = []
    for day in range(1, 32):  # March: every day, weekdays busier
        ts = datetime(2026, 3, day, 10, tzinfo=UTC)
        weight = Decimal(3 if ts.weekday() < 5 else 1)
        events += [
            event(ts, Decimal("1.234567891") * weight, team="alpha"),
            event(ts, Decimal("0.333333333") * weight, team="beta", model="gpt-4o"),
            event(ts, Decimal("0.1") * weight, team="gamma", provider="anthropic", model="claude-sonnet-4-5"),
            event(ts, Decimal("0.0045"), team=None),
            event(ts, None, team="beta"),  # unpriced: counted, never a silent 0
        ]
    for day in (3, 17):  # February and January: less, for change and year to date
        events.append(event(datetime(2026, 2, day, tzinfo=UTC), Decimal("20.005"), team="alpha"))
        events.append(event(datetime(2026, 1, day, tzinfo=UTC), Decimal("7.5"), team="beta"))
    events.append(event(datetime(2026, 3, 1, tzinfo=UTC), Decimal("99.99"), team="platform", model="licenses",
                        provider="manual", source="manual"))  # fmt: skip
    write(url, events)
    store = open_test_store(url)
    try:
        store.create_budget(Budget(name="alpha-m", scope=Scope.parse("team:alpha"), limit_usd=Decimal("100")))
        store.create_budget(Budget(name="beta-m", scope=Scope.parse("team:beta"), limit_usd=Decimal("40")))
        store.create_budget(Budget(name="gamma-m", scope=Scope.parse("team:gamma"), limit_usd=Decimal("5.5")))
    finally:
        store.close()
    cli("allocations", "create", "--name", "shared", "--from", "team:platform", "--method", "proportional",
        "--db", url)  # fmt: skip


def _report(url: str, by: str, since: str, until: str, *where: str) -> dict[Any, Decimal]:
    args = ["report", "--by", by, "--since", since, "--until", until, "--db", url]
    for w in where:
        args += ["--where", w]
    out = cli_json(*args)
    dims = by.split(",")
    return {tuple(r[d] for d in dims) if len(dims) > 1 else r[dims[0]]: Decimal(r["cost_usd"]) for r in out["rows"]}


def test_every_figure_equals_a_report_query(ledger: str) -> None:  # noqa: F811
    _seed(ledger)
    data = json.loads(cli("finance", "report", "--month", MONTH, "--format", "json", "--db", ledger).output)
    total = cli_json("report", "--by", "", "--since", "2026-03-01", "--until", "2026-03-31", "--db", ledger)
    previous = cli_json("report", "--by", "", "--since", "2026-02-01", "--until", "2026-02-28", "--db", ledger)
    assert Decimal(data["total_cost_usd"]) == Decimal(total["total_cost_usd"])
    assert Decimal(data["previous_month_cost_usd"]) == Decimal(previous["total_cost_usd"]) == Decimal("40.01")
    change = (Decimal(total["total_cost_usd"]) - Decimal("40.01")) * 100 / Decimal("40.01")
    assert Decimal(data["change_percent"]) == change.quantize(Decimal("0.01"))

    centers = _report(ledger, "cost_center", "2026-03-01", "2026-03-31")
    ytd = _report(ledger, "cost_center", "2026-01-01", "2026-03-31")
    budgets = {"CC-100": Decimal("100"), "CC-200": Decimal("45.5")}  # beta + gamma share CC-200
    assert {c["cost_center"] for c in data["cost_centers"]} == set(centers) | set(ytd)
    for c in data["cost_centers"]:
        assert Decimal(c["cost_usd"]) == centers.get(c["cost_center"], 0)
        assert Decimal(c["ytd_cost_usd"]) == ytd[c["cost_center"]]
        assert (Decimal(c["budget_usd"]) if c["budget_usd"] else None) == budgets.get(c["cost_center"])
    teams = _report(ledger, "team", "2026-03-01", "2026-03-31")
    assert {t["team"]: Decimal(t["cost_usd"]) for t in data["teams"]} == teams
    projects = _report(ledger, "project,team", "2026-03-01", "2026-03-31")
    assert {(p["project"], p["team"]): Decimal(p["cost_usd"]) for p in data["projects"]} == projects
    other = _report(ledger, "model", "2026-03-01", "2026-03-31", "source=manual")
    assert Decimal(data["other_costs_usd"]) == sum(other.values()) == Decimal("99.99")

    # Drivers: the three largest changes by team, project or model, each a pair of queries.
    assert len(data["top_drivers"]) == 3
    for d in data["top_drivers"]:
        now = _report(ledger, d["dimension"], "2026-03-01", "2026-03-31")
        then = _report(ledger, d["dimension"], "2026-02-01", "2026-02-28")
        value = d["value"]
        assert Decimal(d["cost_usd"]) == now.get(value, 0) and Decimal(d["previous_cost_usd"]) == then.get(value, 0)

    allocated = cli_json("report", "--allocated", "--by", "team", "--since", "2026-03-01", "--until", "2026-03-31",
                         "--db", ledger)  # fmt: skip
    assert data["allocation_coverage_percent"] == allocated["allocation_coverage_percent"]
    owned = sum(v for k, v in teams.items() if k is not None)
    assert Decimal(data["allocation_coverage_percent"]) == (owned * 100 / sum(teams.values())).quantize(Decimal("0.01"))
    assert data["allocation"]["rows"] == allocated["rows"] and data["allocation"]["rules_applied"] == ["shared"]
    assert data["anomalies"] == []
    # Next month from March's weekday pattern: April 2026 has 22 weekdays and 8 weekend days.
    assert Decimal(data["forecast_next_month_usd"]) > 0 and data["forecast"]["month"] == "2026-04"

    exact = list(csv.DictReader(io.StringIO(cli("finance", "report", "--month", MONTH, "--format", "csv",
                                                "--db", ledger).output)))  # fmt: skip
    assert {r["name"]: r["cost_usd"] for r in exact if r["section"] == "team"} == {
        (t["team"] or ""): t["cost_usd"] for t in data["teams"]
    }
    assert [r["cost_usd"] for r in exact if r["name"] == "total"] == [data["total_cost_usd"]]


def test_html_rounds_so_lines_sum_to_totals(ledger: str, tmp_path: Path) -> None:  # noqa: F811
    _seed(ledger)
    out = tmp_path / "march.html"
    cli("finance", "report", "--month", MONTH, "--format", "html", "--out", str(out), "--db", ledger)
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "@media print" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained
    tables = re.findall(r"<table>(.*?)</table>", page, re.S)
    checked = 0
    for table in tables:
        rows = [r for r in re.findall(r"<tr( class=\"total\")?>(.*?)</tr>", table, re.S) if "<td" in r[1]]
        if not rows or rows[-1][0] == "":
            continue
        money = [[_cents(c) for c in re.findall(r'<td class="n">(.*?)</td>', body)] for _, body in rows]
        for column in range(len(money[-1])):
            if money[-1][column] is None:
                continue
            assert sum(r[column] or 0 for r in money[:-1]) == money[-1][column]
            checked += 1
    assert checked >= 6


def _cents(text: str) -> Decimal | None:
    return None if text in ("—", "") else Decimal(text.replace("$", "").replace(",", ""))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.decimals(min_value=Decimal("-1000"), max_value=Decimal("100000"), places=9), max_size=30))
def test_rounded_lines_sum_to_the_rounded_total(amounts: list[Decimal]) -> None:
    lines = round_lines(amounts)
    assert sum(lines, Decimal(0)) == round_total(sum(amounts, Decimal(0)))
    assert all(abs(line - amount) < Decimal("0.01") for line, amount in zip(lines, amounts, strict=True))

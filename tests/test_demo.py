"""`spendgate demo` runs the real gateway offline and leaves a month in the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from spendgate.demo import run_demo
from spendgate.demo_traffic import AGENTS, plan_month
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.reports.spec import ReportQuery


def test_plan_is_repeatable_and_covers_every_agent() -> None:
    start = datetime(2026, 1, 1)
    first, second = plan_month(400, start, seed=3), plan_month(400, start, seed=3)
    assert [p.directive for p in first] == [p.directive for p in second]
    assert {p.agent.project for p in first} == {a.project for a in AGENTS} | {""}
    assert all(start <= p.at < start + timedelta(days=31) for p in first)
    assert any(p.stream for p in first) and any("cached=" in p.directive for p in first)


def test_demo_fills_the_ledger_and_prints_the_breakdown(tmp_path: Path, capsys) -> None:
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    run_demo(db_url=db_url, total_requests=300, seed=11)
    out = capsys.readouterr().out
    assert "Spend by team and project" in out and "Top models" in out and "Unallocated" in out

    store = SQLiteStore.from_url(db_url)
    try:
        by_project = store.report(ReportQuery(by=("project",)))
        assert by_project.total_requests == 300  # every request answered is in the ledger
        projects = {row.dims["project"] for row in by_project.rows}
        assert projects == {a.project for a in AGENTS} | {None}
        assert by_project.total_cost_usd > Decimal(0)
        assert by_project.unpriced_requests == 0  # every model the demo uses has a price
        by_day = store.report(ReportQuery(by=("day",)))
        assert len(by_day.rows) >= 20  # spread over the month, not one instant
        events = store.list_events(1000)
        assert {e["provider"] for e in events} == {"openai", "anthropic"}
        assert any(e["stream"] for e in events) and any(e["cached_input_tokens"] for e in events)
        assert any(e["status"] == "error" for e in events)
        assert str(by_project.total_cost_usd.normalize()) in out.replace(",", "") or "total" in out
    finally:
        store.close()

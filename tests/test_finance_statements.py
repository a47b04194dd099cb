"""`spendgate statements` (issue 12 item 4) on both backends: one statement per owner, lines by
project, model and feature, the owner's reference fields; the statements sum to the month's
total exactly; an owner's name never becomes a path."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.finance_support import cli, cli_json, event, ledger, write  # noqa: F401  (ledger: a fixture)


def _seed(url: str) -> None:
    ts = datetime(2026, 5, 7, tzinfo=UTC)
    events = [
        event(ts, Decimal("1.000000001"), team="alpha"),
        event(ts, Decimal("2.5"), team="beta", model="gpt-4o"),
        event(ts, Decimal("0.25"), team="gamma"),
        event(ts, Decimal("0.0000001"), team=None),
        event(datetime(2026, 6, 1, tzinfo=UTC), Decimal("9"), team="alpha"),  # June: not in May's statements
    ]
    hostile = event(ts, Decimal("0.125"), team="alpha")
    events.append(type(hostile)(**{**{f: getattr(hostile, f) for f in hostile.__slots__}, "customer": "../../etc/x"}))
    write(url, events)
    cli("teams", "update", "beta", "--reference", "PO-4711", "--db", url)
    cli("customers", "set", "../../etc/x", "--name", "Hostile Ltd", "--reference", "ACCT-9", "--db", url)


@pytest.mark.parametrize("by", ["team", "cost_center", "customer"])
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_statements_sum_to_the_month(ledger: str, tmp_path: Path, by: str, fmt: str) -> None:  # noqa: F811
    _seed(ledger)
    out = tmp_path / "statements"
    written = cli_json("statements", "--month", "2026-05", "--by", by, "--format", fmt, "--out", str(out),
                       "--db", ledger)  # fmt: skip
    month = cli_json("report", "--by", by, "--since", "2026-05-01", "--until", "2026-05-31", "--db", ledger)
    assert (
        sum(Decimal(w["total_cost_usd"]) for w in written) == Decimal(month["total_cost_usd"]) == Decimal("3.875000101")
    )
    assert {w["owner"] for w in written} == {r[by] for r in month["rows"]}
    files = sorted(out.iterdir())
    assert len(files) == len(written) and all(f.parent == out for f in files)  # nothing outside --out
    for item in written:
        path = Path(item["file"])
        if fmt == "json":
            statement = json.loads(path.read_text())
            assert statement["total_cost_usd"] == item["total_cost_usd"]
            assert sum(Decimal(line["cost_usd"]) for line in statement["lines"]) == Decimal(item["total_cost_usd"])
            if by == "team" and item["owner"] == "beta":
                assert statement["references"] == {"team": "beta", "cost_center": "CC-200", "reference": "PO-4711"}
                assert [(li["project"], li["model"]) for li in statement["lines"]] == [("beta-app", "gpt-4o")]
            if by == "cost_center" and item["owner"] == "CC-200":
                assert statement["references"] == {
                    "cost_center": "CC-200",
                    "teams": ["beta", "gamma"],
                    "team_references": {"beta": "PO-4711"},
                }
            if by == "customer" and item["owner"] == "../../etc/x":
                assert statement["references"] == {
                    "customer_id": "../../etc/x",
                    "name": "Hostile Ltd",
                    "reference": "ACCT-9",
                }
        else:
            rows = list(csv.DictReader(io.StringIO(path.read_text())))
            assert rows[-1]["project"] == "TOTAL" and rows[-1]["cost_usd"] == item["total_cost_usd"]
            assert sum(Decimal(r["cost_usd"]) for r in rows[:-1]) == Decimal(item["total_cost_usd"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["finance", "report", "--month", "2026-13"], "bad --month"),
        (["finance", "report", "--month", "../x"], "bad --month"),
        (["statements", "--month", "May", "--by", "team", "--out", "."], "bad --month"),
        (["report", "--allocated", "--by", "model"], "--allocated needs --by one of team, project, cost_center"),
        (["report", "--allocated", "--by", "team,project"], "--allocated needs --by"),
        (["export", "focus", "--since", "2026-05-02", "--until", "2026-05-01", "--out", "f.csv"], "before --since"),
    ],
)
def test_bad_finance_requests_are_refused(ledger: str, args: list[str], message: str) -> None:  # noqa: F811
    from click.testing import CliRunner

    from spendgate.cli.main import main

    result = CliRunner().invoke(main, [*args, "--db", ledger])
    assert result.exit_code in (1, 2) and message in result.output, result.output

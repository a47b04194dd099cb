"""`spendgate export focus` (issue 12 item 5) on both backends: requests through the official
SDKs (one model at a 20% negotiated discount, cache reads, cache writes and reasoning among
them), an other cost, then the FOCUS file: one row per charge day x provider x model x owner x
price x token kind (not per request), the kind rows of a group summing to the group's cost and
BilledCost to the ledger's total to the last digit, ListCost - ContractedCost showing the
discount, every FOCUS 1.2 rule tests/focus_spec.py states (UnitFormat included), the FinOps
Foundation's focus-validator passing the file's FOCUS 1.0 columns (the release that installs
validates 1.0 at most), and the Parquet file holding the same rows, typed."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spendgate.cli.main import main
from spendgate.finance.focus import COLUMNS, DATETIME_COLUMNS, DECIMAL_COLUMNS, focus_time
from spendgate.pricing.book import PriceBook
from spendgate.pricing.overrides import PriceOverride
from spendgate.reports.spec import ReportQuery
from tests import focus_spec
from tests.conftest import open_test_store
from tests.finance_support import cli, ledger  # noqa: F401  (ledger: a fixture)

# 1.2 renamed these; the validator (1.0) knows them by their old names.
TO_1_0 = {"InvoiceIssuerName": "InvoiceIssuer", "ProviderName": "Provider", "PublisherName": "Publisher",
          "ResourceId": "ResourceID"}  # fmt: skip
# gpt-4o at a 20% discount: 1000 prompt tokens of which 400 cache reads, 300 completion tokens
# of which 100 reasoning (OpenAI's convention: the parts are inside the wholes).
DISCOUNTED = "[[sim input=1000 cached=400 output=300 reasoning=100]] hi"
# Anthropic's convention: input excludes the cache; 200 of the 500 writes have a 1-hour TTL.
CACHED = "[[sim input=120 cached=80 cache_write=500 cache_write_1h=200 output=40]] hi"
GROUP = ("ChargePeriodStart", "ProviderName", "SkuId", "x_Project", "x_Team", "x_ServiceTier", "x_Source",
         "x_PriceSource")  # fmt: skip


def _drive(make_gateway) -> tuple[object, str]:
    gateway = make_gateway(prices=PriceBook([PriceOverride("openai", "gpt-4o", discount_percent=Decimal(20))]))
    gateway.team("payments", "CC-1")
    gateway.project("checkout", "payments")
    gateway.project("refunds", "payments")
    checkout = gateway.key("checkout", project="checkout")
    refunds = gateway.key("refunds", project="refunds")
    loose = gateway.key("loose")
    gateway.wait_for_directory()
    for key, model, n, text in ((checkout, "gpt-4o-mini", 3, "hi"), (checkout, "gpt-4o", 2, DISCOUNTED),
                                (refunds, "gpt-4o-mini", 2, "hi"), (loose, "gpt-4o-mini", 1, "hi")):  # fmt: skip
        for _ in range(n):
            gateway.openai(key).chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    gateway.anthropic(refunds).messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": CACHED}]
    )
    gateway.flush()
    month = datetime.now(UTC).strftime("%Y-%m")
    cli("costs", "add", "--amount", "12.3456789", "--project", "checkout", "--period", month, "--category",
        "search", "--db", gateway.db_url)  # fmt: skip
    return gateway, month


def _export(gateway, month: str, out: Path, fmt: str) -> Any:
    today = datetime.now(UTC).date()
    return cli("export", "focus", "--since", f"{month}-01", "--until", today.isoformat(), "--format", fmt,
               "--out", str(out), "--db", gateway.db_url, "--json")  # fmt: skip


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _count(row: dict[str, str], column: str) -> int:
    return int(row[column] or 0)


def test_focus_export_is_exact_and_valid(make_gateway, tmp_path: Path) -> None:
    gateway, month = _drive(make_gateway)
    out = tmp_path / "focus.csv"
    summary = json.loads(_export(gateway, month, out, "csv").output)
    header, rows = _read_csv(out)
    assert (summary["rows"], Decimal(summary["billed_cost_usd"])) == (
        len(rows),
        sum(Decimal(r["BilledCost"]) for r in rows),
    )

    today = datetime.now(UTC).date()
    since = datetime.fromisoformat(f"{month}-01").date()
    totals = gateway.store.report(ReportQuery(since=since, until=today))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == totals.total_cost_usd
    assert sum(_count(r, "x_Requests") for r in rows) == totals.total_requests == 10
    assert sum(_count(r, "x_InputTokens") for r in rows) == sum(r.input_tokens for r in totals.rows)
    # Each (model, owner)'s rows sum to the ledger's figure for it, exactly.
    by_owner = gateway.store.report(ReportQuery(by=("model", "project"), since=since, until=today))
    billed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        billed[(r["SkuId"], r["x_Project"])] += Decimal(r["BilledCost"])
    assert billed == {(g.dims["model"], g.dims["project"] or "unallocated"): g.cost_usd for g in by_owner.rows}

    # Not one row per request: one per group x token kind; the group's counts on its first row only.
    groups: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[c] for c in GROUP)].append(r)
    kinds = [(*key, r["x_TokenKind"]) for key, members in groups.items() for r in members]
    assert len(kinds) == len(set(kinds))
    assert len(groups) < totals.total_requests
    for members in groups.values():
        assert members[0]["x_Requests"] != "" and all(r["x_Requests"] == "" for r in members[1:])
    by_model = {(key[2], key[3]): {r["x_TokenKind"]: r for r in members} for key, members in groups.items()}

    # The discounted model: a row per kind it has, priced per token of that kind; ListCost is
    # the list price of those tokens, the discount its difference with ContractedCost.
    discounted = by_model[("gpt-4o", "checkout")]
    assert {k: (r["PricingQuantity"], r["PricingUnit"]) for k, r in discounted.items()} == {
        "input": ("1200", "Input Tokens"),
        "cached_input": ("800", "Cached Input Tokens"),
        "output": ("400", "Output Tokens"),
        "reasoning": ("200", "Reasoning Tokens"),
    }
    base = PriceBook().sheet("openai", "gpt-4o", datetime.now(UTC)).base
    assert Decimal(discounted["input"]["ListUnitPrice"]) * 10**6 == base.input_mtok
    assert Decimal(discounted["cached_input"]["ListUnitPrice"]) * 10**6 == base.cached_input_mtok
    for r in discounted.values():
        assert Decimal(r["ListCost"]) == Decimal(r["ListUnitPrice"]) * Decimal(r["PricingQuantity"])
        assert Decimal(r["ListCost"]) > Decimal(r["BilledCost"]) == Decimal(r["ContractedCost"]) > 0
        assert r["ConsumedQuantity"] == r["PricingQuantity"] and r["ConsumedUnit"] == r["PricingUnit"]
    assert sum(Decimal(r["ListCost"]) for r in discounted.values()) * Decimal("0.8") == sum(
        Decimal(r["BilledCost"]) for r in discounted.values()
    )
    # The cached Anthropic request: reads, 5-minute and 1-hour writes each a kind of its own.
    cached = by_model[("claude-sonnet-4-5", "refunds")]
    assert {k: r["PricingQuantity"] for k, r in cached.items()} == {
        "input": "120", "cached_input": "80", "cache_write_5m": "300", "cache_write_1h": "200", "output": "40"
    }  # fmt: skip
    assert cached["cache_write_1h"]["PricingUnit"] == "One Hour Cache Write Tokens"
    listed = by_model[("gpt-4o-mini", "checkout")]
    assert set(listed) == {"input", "output"}
    for r in listed.values():
        assert (
            r["ListCost"] == r["BilledCost"] == r["EffectiveCost"] and r["ServiceCategory"] == "AI and Machine Learning"
        )
    assert (listed["input"]["x_Requests"], listed["output"]["x_Requests"]) == ("3", "")
    [other] = by_model[("search", "checkout")].values()
    assert (other["BilledCost"], other["ServiceCategory"], other["PricingQuantity"]) == ("12.3456789", "Other", "")
    assert other["x_TokenKind"] == "" and other["x_Requests"] == "1"
    assert listed["input"]["x_CostCenter"] == "CC-1" and listed["input"]["x_Team"] == "payments"
    assert {r["BillingAccountId"] for r in rows} == {f"spendgate-{gateway.store.ledger_id()}"}

    assert focus_spec.problems(header, rows) == []
    _validate_1_0(header, rows, tmp_path)


def test_focus_parquet_holds_the_csv_rows_typed(make_gateway, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    gateway, month = _drive(make_gateway)
    _export(gateway, month, tmp_path / "focus.csv", "csv")
    _export(gateway, month, tmp_path / "focus.parquet", "parquet")
    _, csv_rows = _read_csv(tmp_path / "focus.csv")
    table = pq.read_table(tmp_path / "focus.parquet")

    money = pa.decimal128(38, 18)
    assert table.schema.field("BilledCost").type == money
    assert table.schema.field("PricingQuantity").type == money
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("PricingUnit").type == pa.utf8()
    assert table.schema.field("x_Requests").type == pa.int64()
    parquet_rows = table.to_pylist()
    assert sum(r["BilledCost"] for r in parquet_rows) == sum(Decimal(r["BilledCost"]) for r in csv_rows)
    assert sum(r["BilledCost"] for r in parquet_rows) == gateway.store.report(ReportQuery()).total_cost_usd

    def as_csv(value: object, column: str) -> str:
        if value is None:
            return ""
        if column in DATETIME_COLUMNS:
            return focus_time(value)  # type: ignore[arg-type]
        if column in DECIMAL_COLUMNS:
            return str(value)  # compared as numbers below: decimal128 carries 18 places
        return str(value)

    assert len(parquet_rows) == len(csv_rows)
    for from_parquet, from_csv in zip(parquet_rows, csv_rows, strict=True):
        assert list(from_parquet) == list(from_csv)
        for column, value in from_parquet.items():
            cell = from_csv[column]
            if column in DECIMAL_COLUMNS and value is not None:
                assert value == Decimal(cell), column
            else:
                assert as_csv(value, column) == cell, column


def test_an_empty_period_writes_the_columns_and_no_row(ledger: str, tmp_path: Path) -> None:  # noqa: F811
    import pyarrow.parquet as pq

    for fmt in ("csv", "parquet"):
        out = tmp_path / f"empty.{fmt}"
        result = cli("export", "focus", "--since", "2001-01-01", "--until", "2001-01-31", "--format", fmt,
                     "--out", str(out), "--db", ledger, "--json")  # fmt: skip
        assert json.loads(result.output) == {"out": str(out), "format": fmt, "rows": 0, "billed_cost_usd": "0"}
    header, rows = _read_csv(tmp_path / "empty.csv")
    assert (header, rows) == (list(COLUMNS), [])
    table = pq.read_table(tmp_path / "empty.parquet")
    assert (table.num_rows, table.schema.names) == (0, list(COLUMNS))


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    """An environment where pyarrow cannot be imported: exit 1, one line naming the extra."""
    blocker = tmp_path / "blocker" / "pyarrow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    db = f"sqlite:///{tmp_path / 'l.db'}"
    open_test_store(db).close()
    run = subprocess.run(
        [sys.executable, "-m", "spendgate", "export", "focus", "--since", "2025-01-01", "--until", "2025-01-31",
         "--format", "parquet", "--out", str(tmp_path / "f.parquet"), "--db", db],
        capture_output=True, text=True, check=False, env={"PYTHONPATH": str(blocker.parent), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'spendgate[parquet]'" in lines[0], run.stderr
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize(
    "bad",
    [["--format", "xlsx"], ["--since", "2025-13-01"], ["--until", "2024-12-31"], ["--until", "9999-12-31"],
     ["--since", "0001-01-01"], ["--since", "x" * 10_000]],
)  # fmt: skip
def test_focus_export_refuses_bad_arguments(bad: list[str], tmp_path: Path) -> None:
    args = {"--since": "2025-01-01", "--until": "2025-01-31", "--format": "csv"}
    args.update(zip(bad[::2], bad[1::2], strict=True))
    out = tmp_path / "f.csv"
    argv = ["export", "focus", *(x for kv in args.items() for x in kv), "--out", str(out)]
    db = f"sqlite:///{tmp_path / 'l.db'}"
    open_test_store(db).close()
    result = CliRunner().invoke(main, [*argv, "--db", db])
    assert result.exit_code == 2, result.output
    assert bad[0] in result.output
    assert not out.exists()


# From specification/attributes/unit_format.md's own examples and rules.
@pytest.mark.parametrize(
    ("unit", "valid"),
    [("GB", True), ("Seconds", True), ("GB-Hours", True), ("GB/Hour", True), ("1000 Tokens", True),
     ("Units/3 Months", True), ("Request-Tokens", True), ("Core-Hours/Day", True), ("Input Tokens", True),
     ("One Hour Cache Write Tokens", True), ("TBs", False), ("terabyte", False), ("tokens", False),
     ("1M Tokens", False), ("0 Tokens", False), ("Tokens-", False), ("Input tokens", False), ("GB Hours", False)],
)  # fmt: skip
def test_the_unit_format_check_follows_the_spec(unit: str, valid: bool) -> None:
    header = ["PricingUnit", "PricingQuantity"]
    found = focus_spec.problems(header, [{"PricingUnit": unit, "PricingQuantity": "1"}])
    assert ([f for f in found if "UnitFormat" in f] == []) is valid, found


def _site() -> Path:
    # Found, not imported: importing pandera here trips the suite's warnings-as-errors.
    spec = importlib.util.find_spec("focus_validator")
    assert spec is not None and spec.origin is not None, "focus-validator is a dev dependency"
    return Path(spec.origin).parent.parent


def _validate_1_0(header: list[str], rows: list[dict[str, str]], tmp_path: Path) -> None:
    """Run focus-validator (1.0) on the file's 1.0 columns, under their 1.0 names. Its 1.0
    SkuPriceId rule still reads ChargeType (ChargeCategory's name before 1.0): given as that."""
    legacy = tmp_path / "focus-1.0.csv"
    keep = [c for c in header if not c.startswith("x_")]
    with legacy.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*(TO_1_0.get(c, c) for c in keep), "ChargeType"])
        for row in rows:
            writer.writerow([*(row[c] for c in keep), row["ChargeCategory"]])
    report = tmp_path / "validator.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "focus_validator.main",
            "--data-file",
            str(legacy),
            "--validate-version",
            "1.0",
            "--output-type",
            "unittest",
            "--output-destination",
            str(report),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=_site(),
    )  # fmt: skip  (cwd: the validator reads focus_validator/utils/currency_codes.csv relative to it)
    assert report.exists(), run.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    failed = [
        (case.get("name"), (case.find("failure") if case.find("failure") is not None else case.find("error")))
        for case in cases
    ]
    failed = [(name, el.get("message") if el is not None else None) for name, el in failed if el is not None]
    assert failed == []

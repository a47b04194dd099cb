"""`spendgate export focus` (issue 12 item 5) on both backends: requests through the official
SDKs (one model at a 20% negotiated discount), an other cost, then the FOCUS file: one row per
charge day x provider x model x owner x price (not per request), BilledCost summing to the
ledger's total to the last digit, ListCost - ContractedCost showing the discount, every FOCUS
1.2 rule tests/focus_spec.py states, and the FinOps Foundation's focus-validator passing the
file's FOCUS 1.0 columns (the release that installs validates 1.0 at most)."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from spendgate.pricing.book import PriceBook
from spendgate.pricing.overrides import PriceOverride
from spendgate.reports.spec import ReportQuery
from tests import focus_spec
from tests.finance_support import cli

# 1.2 renamed these; the validator (1.0) knows them by their old names.
TO_1_0 = {"InvoiceIssuerName": "InvoiceIssuer", "ProviderName": "Provider", "PublisherName": "Publisher",
          "ResourceId": "ResourceID"}  # fmt: skip


def _drive(make_gateway) -> tuple[object, str]:
    gateway = make_gateway(prices=PriceBook([PriceOverride("openai", "gpt-4o", discount_percent=Decimal(20))]))
    gateway.team("payments", "CC-1")
    gateway.project("checkout", "payments")
    gateway.project("refunds", "payments")
    checkout = gateway.key("checkout", project="checkout")
    refunds = gateway.key("refunds", project="refunds")
    loose = gateway.key("loose")
    gateway.wait_for_directory()
    for key, model, n in ((checkout, "gpt-4o-mini", 3), (checkout, "gpt-4o", 2), (refunds, "gpt-4o-mini", 2),
                          (loose, "gpt-4o-mini", 1)):  # fmt: skip
        for _ in range(n):
            gateway.openai(key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    gateway.anthropic(refunds).messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    gateway.flush()
    month = datetime.now(UTC).strftime("%Y-%m")
    cli("costs", "add", "--amount", "12.3456789", "--project", "checkout", "--period", month, "--category",
        "search", "--db", gateway.db_url)  # fmt: skip
    return gateway, month


def test_focus_export_is_exact_and_valid(make_gateway, tmp_path: Path) -> None:
    gateway, month = _drive(make_gateway)
    out = tmp_path / "focus.csv"
    today = datetime.now(UTC).date()
    first = f"{month}-01"
    cli("export", "focus", "--since", first, "--until", today.isoformat(), "--format", "csv", "--out", str(out),
        "--db", gateway.db_url)  # fmt: skip
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)

    ledger = gateway.store.report(ReportQuery(since=datetime.fromisoformat(first).date(), until=today))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == ledger.total_cost_usd
    assert sum(int(r["x_Requests"]) for r in rows) == ledger.total_requests == 10
    # Not one row per request: one per day x provider x model x owner x price.
    keys = [(r["ChargePeriodStart"], r["ProviderName"], r["SkuId"], r["x_Project"], r["x_PriceSource"]) for r in rows]
    assert len(keys) == len(set(keys)) < ledger.total_requests
    by_model = {(r["SkuId"], r["x_Project"]): r for r in rows}
    assert set(by_model) >= {("gpt-4o-mini", "checkout"), ("gpt-4o", "checkout"), ("gpt-4o-mini", "unallocated"),
                             ("claude-sonnet-4-5", "refunds"), ("search", "checkout")}  # fmt: skip
    discounted = by_model[("gpt-4o", "checkout")]
    assert Decimal(discounted["ContractedCost"]) == Decimal(discounted["BilledCost"]) > 0
    assert Decimal(discounted["ListCost"]) * Decimal("0.8") == Decimal(discounted["BilledCost"])
    listed = by_model[("gpt-4o-mini", "checkout")]
    assert listed["ListCost"] == listed["BilledCost"] == listed["EffectiveCost"]
    assert (listed["ServiceCategory"], listed["PricingUnit"], listed["x_Requests"]) == (
        "AI and Machine Learning", "Tokens", "3"
    )  # fmt: skip
    other = by_model[("search", "checkout")]
    assert (other["BilledCost"], other["ServiceCategory"], other["PricingQuantity"]) == ("12.3456789", "Other", "")
    assert listed["x_CostCenter"] == "CC-1" and listed["x_Team"] == "payments"

    assert focus_spec.problems(header, rows) == []
    _validate_1_0(header, rows, tmp_path)


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

"""PDF finance reports and statements, reference fields, and the report's anomalies and
approvals sections (issue 12 items 3 and 4), on both backends. The PDFs are read back with
pypdf: the figures they print are the HTML page's, in the same order, each table's rounded lines
add up to its rounded total, a statement's exact total is its JSON's, and hostile names neither
crash the renderer nor run off the page."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fpdf import FPDF
from pypdf import PdfReader

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies.record import Anomaly, Driver
from spendgate.budgets.model import Budget, Scope
from spendgate.cli.main import main
from spendgate.finance.document import Document, Heading, money_table
from spendgate.finance.pdf import document_pdf, latin1_text
from spendgate.finance.rounding import round_lines, round_total
from spendgate.ledger.events import UsageEvent
from tests.conftest import Gateway, open_test_store
from tests.finance_support import cli, cli_json, event, ledger, write  # noqa: F401  (ledger: a fixture)

MONTH = "2026-03"
MONEY = re.compile(r"-?\$[\d,]+\.\d\d")
HOSTILE = (
    '=HYPERLINK("http://evil.example/x","click")',
    "y" * 300,  # one unbreakable word, wider than the page
    "Team 🚀 שלום עולם \u202eevil\u202c " + "long words " * 30,
)


def _seed(url: str) -> None:
    events = []
    for day in range(1, 32):
        ts = datetime(2026, 3, day, 10, tzinfo=UTC)
        events += [
            event(ts, Decimal("1.234567891"), team="alpha"),
            event(ts, Decimal("0.333333333"), team="beta", model="gpt-4o"),
            event(ts, Decimal("0.105"), team="gamma"),
            event(ts, Decimal("0.0045"), team=None),
        ]
    events.append(event(datetime(2026, 2, 10, tzinfo=UTC), Decimal("20.005"), team="alpha"))
    write(url, events)
    store = open_test_store(url)
    try:
        store.create_budget(Budget(name="alpha-m", scope=Scope.parse("team:alpha"), limit_usd=Decimal("30")))
    finally:
        store.close()


def _pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def _html_figures(page: str) -> list[str]:
    return MONEY.findall(page.split("</style>", 1)[1])


def _report(url: str, fmt: str, tmp_path: Path, month: str = MONTH) -> Path:
    out = tmp_path / f"report.{fmt}"
    cli("finance", "report", "--month", month, "--format", fmt, "--out", str(out), "--db", url)
    return out


def test_the_pdf_prints_every_figure_of_the_html_and_json(ledger: str, tmp_path: Path) -> None:  # noqa: F811
    _seed(ledger)
    data = json.loads(_report(ledger, "json", tmp_path).read_text())
    html = _report(ledger, "html", tmp_path).read_text()
    pdf_path = _report(ledger, "pdf", tmp_path)
    assert pdf_path.read_bytes().startswith(b"%PDF-")
    reader = PdfReader(pdf_path)
    assert {(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in reader.pages} == {(595, 842)}
    text = _pdf_text(pdf_path)

    # The same figures in the same order as the HTML page (one document drawn twice).
    assert MONEY.findall(text) == _html_figures(html) and len(MONEY.findall(text)) > 20
    # Every page: the month and the ledger id at the top, its number at the bottom.
    pages = reader.pages
    for number, page in enumerate(pages, 1):
        page_text = page.extract_text()
        assert f"Finance report - {MONTH}" in page_text and data["ledger_id"] in page_text
        assert f"Page {number} of {len(pages)}" in page_text

    # The JSON's exact figures, rounded independently here, are what the PDF prints.
    total = round_total(Decimal(data["total_cost_usd"]))
    assert f"Total ${total:,.2f}" in text
    teams = [(t["team"] or "(none)", Decimal(t["cost_usd"])) for t in data["teams"]]
    section = text.split("\nTeams\n", 1)[1].split("\nProjects\n", 1)[0]
    printed = {
        name: Decimal(amount.replace(",", "")) for name, amount in re.findall(r"^(\S+) \$([\d,.]+)$", section, re.M)
    }
    rounded = round_lines([cost for _, cost in teams])
    assert {name: printed[name] for name, _ in teams} == {name: r for (name, _), r in zip(teams, rounded, strict=True)}
    assert sum(rounded) == printed["Total"] == total  # the rounded lines add up to the rounded total


def _anomaly(scope: str, start: datetime, hours: int, cost: str, expected: str, score: str) -> Anomaly:
    drivers = (Driver("model", "gpt-4o", Decimal(cost) - Decimal("0.5"), Decimal(expected)),)
    return Anomaly(
        scope, start, start + timedelta(hours=hours), Decimal(cost), Decimal(expected), Decimal(score), drivers
    )


def test_the_report_lists_the_months_anomalies_and_approved_extra_spend(ledger: str, tmp_path: Path) -> None:  # noqa: F811
    store = open_test_store(ledger)
    try:
        # Approved now through the CLI (it stamps the decision with the clock): the report's month is now's.
        store.create_budget(Budget(name="alpha-m", scope=Scope.parse("team:alpha"), limit_usd=Decimal("30")))
        approval = store.request_approval("alpha-m", "2026-12", "team:alpha", datetime.now(UTC))
        denied = store.request_approval("alpha-m", "2026-11", "team:alpha", datetime.now(UTC))
    finally:
        store.close()
    decided = cli_json("approvals", "approve", approval["id"], "--extra", "25.125000001", "--reason", "launch week",
                       "--by", "dana@example.com", "--db", ledger)  # fmt: skip
    cli("approvals", "deny", denied["id"], "--by", "sam", "--db", ledger)
    assert decided["decided_by"] == "dana@example.com" and decided["extra_usd"] == "25.125000001"
    month = decided["decided_at"][:7]
    first = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    store = open_test_store(ledger)
    try:
        for anomaly in (
            _anomaly("team:alpha", first + timedelta(days=3, hours=14), 2, "12.345678901", "1.2", "9.87"),
            _anomaly("org", first - timedelta(hours=1), 3, "4.5", "0.75", "6.5"),  # began the month before
            _anomaly("team:beta", first - timedelta(days=5), 1, "99", "1", "20"),  # last month only
        ):
            store.record_anomaly(anomaly, merge_gap=timedelta(0), source="scan", now=anomaly.end,
                                 alert_id=new_alert_id(anomaly.end))  # fmt: skip
    finally:
        store.close()

    data = json.loads(_report(ledger, "json", tmp_path, month).read_text())
    assert [(a["scope"], a["cost_usd"], a["expected_usd"], a["score"], a["status"]) for a in data["anomalies"]] == [
        ("org", "4.5", "0.75", "6.50", "open"),
        ("team:alpha", "12.345678901", "1.2", "9.87", "open"),
    ]
    alpha = data["anomalies"][1]
    assert alpha["start"].startswith(f"{month}-04T14:00:00") and alpha["end"].startswith(f"{month}-04T16:00:00")
    assert alpha["drivers"] == [
        {
            "dimension": "model",
            "value": "gpt-4o",
            "cost_usd": "11.845678901",
            "expected_usd": "1.2",
            "excess_usd": "10.645678901",
        }
    ]
    [approved] = data["approvals"]  # the denied one is not extra spend
    assert (approved["budget"], approved["window"], approved["extra_usd"]) == ("alpha-m", "2026-12", "25.125000001")
    assert (approved["reason"], approved["decided_by"], approved["decided_at"]) == (
        "launch week",
        "dana@example.com",
        decided["decided_at"],
    )

    rows = list(csv.DictReader(io.StringIO(cli("finance", "report", "--month", month, "--format", "csv",
                                               "--db", ledger).output)))  # fmt: skip
    assert [(r["name"], r["cost_usd"], r["expected_usd"], r["score"]) for r in rows if r["section"] == "anomaly"] == [
        ("org", "4.5", "0.75", "6.50"),
        ("team:alpha", "12.345678901", "1.2", "9.87"),
    ]
    assert [(r["name"], r["cost_usd"], r["decided_by"], r["detail"]) for r in rows if r["section"] == "approval"] == [
        ("alpha-m", "25.125000001", "dana@example.com", "launch week")
    ]

    html = _report(ledger, "html", tmp_path, month).read_text()
    text = _pdf_text(_report(ledger, "pdf", tmp_path, month))
    for page in (html, text):
        assert "team:alpha" in page and "$12.35" in page and "$1.20" in page and "9.87" in page
        assert "model gpt-4o +$10.65" in page and "$4.50" in page and "team:beta" not in page
        assert "launch week" in page and "dana@example.com" in page and "$25.13" in page
    assert "None recorded for the month" not in text and "No extra spend approved" not in text


def _statements(url: str, out: Path, by: str, fmt: str) -> dict[Any, Path]:
    written = cli_json("statements", "--month", "2026-05", "--by", by, "--format", fmt, "--out", str(out),
                       "--db", url)  # fmt: skip
    return {w["owner"]: Path(w["file"]) for w in written}


@pytest.mark.parametrize("by", ["team", "cost_center", "customer"])
def test_a_statement_pdf_totals_what_its_json_does(ledger: str, tmp_path: Path, by: str) -> None:  # noqa: F811
    ts = datetime(2026, 5, 7, tzinfo=UTC)
    lines = [event(ts, Decimal("0.333333333"), team="beta", model=m) for m in ("gpt-4o", "gpt-4o-mini", "o3")]
    write(ledger, [*lines, event(ts, Decimal("1.000000001"), team="alpha"), event(ts, Decimal("0.005"), team=None)])
    cli("teams", "update", "beta", "--reference", "PO-4711", "--db", ledger)
    as_json = _statements(ledger, tmp_path / "json", by, "json")
    as_pdf = _statements(ledger, tmp_path / "pdf", by, "pdf")
    assert set(as_pdf) == set(as_json) and all(p.suffix == ".pdf" for p in as_pdf.values())
    for owner, path in as_pdf.items():
        statement = json.loads(as_json[owner].read_text())
        text = _pdf_text(path)
        exact = statement["total_cost_usd"]
        assert f"Exact total: {exact} USD" in text
        figures = [Decimal(f.replace("$", "").replace(",", "")) for f in MONEY.findall(text)]
        rounded = round_lines([Decimal(li["cost_usd"]) for li in statement["lines"]])
        assert figures == [*rounded, round_total(Decimal(exact))]  # the lines, then the total
        assert sum(rounded) == round_total(Decimal(exact))
        if owner in ("beta", "CC-200"):
            assert "PO-4711" in text and "CC-200" in text
    if by == "team":  # three lines of a third of a dollar print as 0.34 + 0.33 + 0.33 = 1.00
        assert "$0.34" in _pdf_text(as_pdf["beta"]) and "$1.00" in _pdf_text(as_pdf["beta"])


def _text_runs(path: Path) -> list[tuple[int, float, float, float, str, str]]:
    """Every piece of text drawn: (page, x, y, size in pt, font, text)."""
    runs: list[tuple[int, float, float, float, str, str]] = []
    for number, page in enumerate(PdfReader(path).pages):

        def visit(text: str, cm: Any, tm: Any, font: Any, size: float, number: int = number) -> None:
            if text.strip():
                scale = tm[0] * cm[0] or 1
                runs.append(
                    (number, tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5], size * scale, font["/BaseFont"], text)
                )

        page.extract_text(visitor_text=visit)
    return runs


def _assert_on_the_page(path: Path) -> None:
    """No text runs off an A4 page: each run's measured width fits between the margins."""
    measure = FPDF(unit="pt")
    runs = _text_runs(path)
    assert runs
    for _, x, y, size, font, text in runs:
        measure.set_font("helvetica", "B" if "Bold" in font else "", size)
        width = measure.get_string_width(text.rstrip("\n"))
        assert x > 20 and x + width < 595.28 - 20, (x, width, text[:60])
        assert 20 < y < 842 - 10, (y, text[:60])


def test_hostile_names_neither_crash_the_pdf_nor_leave_the_page(ledger: str, tmp_path: Path) -> None:  # noqa: F811
    ts = datetime(2026, 5, 7, tzinfo=UTC)
    events = []
    for i, name in enumerate(HOSTILE):
        base = event(ts, Decimal("1.005") + i, team="alpha")
        fields = {f: getattr(base, f) for f in UsageEvent.__slots__}
        events.append(UsageEvent(**{**fields, "team": name, "project": name, "customer": name, "feature": name}))
    write(ledger, events)
    cli("customers", "set", HOSTILE[0], "--name", "Ünïcödé 🚀 שלום", "--reference", "=cmd|'/c calc'!A1", "--db", ledger)

    report = _report(ledger, "pdf", tmp_path, "2026-05")
    text = _pdf_text(report)
    assert '=HYPERLINK("http://evil.example/x","click")' in text and "Team ? ???? ???? evil long words" in text
    assert "y" * 150 in text.replace("\n", "") and "y" * 300 not in text.replace("\n", "")  # cut, marked "..."
    assert f"Total ${round_total(Decimal('6.015')):,.2f}" in text
    _assert_on_the_page(report)
    assert len(PdfReader(report).pages) <= 4

    for by in ("team", "customer"):
        written = _statements(ledger, tmp_path / by, by, "pdf")
        assert len(written) == 3 and all(p.parent == tmp_path / by for p in written.values())
        for path in written.values():
            _assert_on_the_page(path)
        customer = _pdf_text(written[HOSTILE[0]]) if by == "customer" else ""
        assert by == "team" or ("Ünïcödé ? ????" in customer and "=cmd|'/c calc'!A1" in customer)


def test_latin1_text_keeps_what_it_can_and_replaces_the_rest() -> None:
    assert latin1_text("Café — “quoted” … 5€") == 'Café - "quoted" ... 5EUR'
    assert latin1_text("Łódź ő") == "?ódz o"  # no Latin-1 letter: its base letter, if it has one
    assert latin1_text("a\u202eb\u200fc\x00d\ne") == "abcde"  # bidi overrides and controls dropped
    assert latin1_text("🚀שׁ中") == "???"
    assert all(ch <= "\xff" for ch in latin1_text("".join(chr(c) for c in range(0x20, 0x3000))))


def _refused(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (1, 2), result.output
    return result.output


def test_reference_fields_are_bounded_and_kept(ledger: str) -> None:  # noqa: F811
    assert cli_json("teams", "update", "alpha", "--reference", "  PO-123 ", "--db", ledger)["reference"] == "PO-123"
    listed = {t["name"]: t for t in cli_json("teams", "list", "--db", ledger)}
    assert listed["alpha"] == {"name": "alpha", "cost_center": "CC-100", "reference": "PO-123"}
    assert "unknown team 'nobody'" in _refused("teams", "update", "nobody", "--reference", "x", "--db", ledger)
    assert "longer than 200" in _refused("teams", "update", "alpha", "--reference", "x" * 201, "--db", ledger)
    assert "control" in _refused("teams", "update", "alpha", "--reference", "PO\n1", "--db", ledger)
    assert cli_json("teams", "update", "alpha", "--reference", "", "--db", ledger)["reference"] is None

    set_ = ("customers", "set")
    assert cli_json(*set_, "acme", "--name", "Acme Inc.", "--reference", "R-1", "--db", ledger) == {
        "id": "acme", "name": "Acme Inc.", "reference": "R-1"}  # fmt: skip
    # An option not given keeps its value; '' clears it.
    assert cli_json(*set_, "acme", "--reference", "R-2", "--db", ledger)["name"] == "Acme Inc."
    assert cli_json(*set_, "acme", "--name", "", "--db", ledger) == {"id": "acme", "name": None, "reference": "R-2"}
    assert cli_json(*set_, "bare", "--db", ledger) == {"id": "bare", "name": None, "reference": None}
    assert [c["id"] for c in cli_json("customers", "list", "--db", ledger)] == ["acme", "bare"]
    assert "longer than 256" in _refused(*set_, "c" * 257, "--db", ledger)
    assert "empty" in _refused(*set_, "  ", "--db", ledger)
    assert "longer than 200" in _refused(*set_, "acme", "--name", "n" * 201, "--db", ledger)
    assert "formatting" in _refused(*set_, "acme", "--reference", "R\u202e1", "--db", ledger)
    assert "longer than 200" in _refused("approvals", "deny", "apr_x", "--by", "b" * 201, "--db", ledger)


def test_the_admin_api_records_who_decided(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(admin_key="admin-secret-decided")
    now = datetime.now(UTC)
    approve = gateway.store.request_approval("cx", "2026-12", "team:cx", now)
    deny = gateway.store.request_approval("cx", "2026-11", "team:cx", now)
    with httpx.Client(base_url=gateway.url, headers={"authorization": "Bearer admin-secret-decided"}) as admin:
        approved = admin.post(f"/admin/approvals/{approve['id']}/approve", json={"extra_usd": "7.5", "reason": "demo"})
        denied = admin.post(f"/admin/approvals/{deny['id']}/deny", json={})
    assert approved.status_code == 200 and approved.json()["decided_by"] == "admin key"
    assert denied.status_code == 200 and denied.json()["decided_by"] == "admin key"
    decided = gateway.store.approvals_decided("approved", now - timedelta(minutes=1), datetime.now(UTC))
    assert [(a["id"], a["extra_usd"], a["decided_by"]) for a in decided] == [(approve["id"], "7.5", "admin key")]


def test_a_long_table_breaks_across_pages_under_its_repeated_header() -> None:
    amounts = [Decimal(n) / 7 for n in range(1, 301)]
    table = money_table(["line", "amount"], [[f"line-{n:03d}", a] for n, a in enumerate(amounts, 1)], (1,), "Total")
    document = Document("Statement — team x — 2026-05", "2026-05", "00000000000000ff", (Heading("Lines"), table))
    pages = PdfReader(io.BytesIO(document_pdf(document))).pages
    assert len(pages) >= 4
    seen = []
    for number, page in enumerate(pages, 1):
        lines = page.extract_text().splitlines()
        assert lines[0] == "Statement - team x - 2026-05 · ledger 00000000000000ff"
        assert lines[-1] == f"Page {number} of {len(pages)}"
        assert "line amount" in lines  # the header row, repeated on every page the table runs onto
        seen += [line.split()[0] for line in lines if line.startswith("line-")]
    assert seen == [f"line-{n:03d}" for n in range(1, 301)]  # every row once, in order
    assert f"Total ${round_total(sum(amounts, Decimal(0))):,.2f}" in pages[-1].extract_text()


def test_the_pdf_goes_to_a_file_named_for_the_month_by_default(
    ledger: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["finance", "report", "--month", "2026-02", "--format", "pdf", "--db", ledger])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and (tmp_path / "finance-report-2026-02.pdf").read_bytes().startswith(b"%PDF-")
    missing = str(tmp_path / "no-such-dir" / "r.pdf")
    refused = _refused("finance", "report", "--month", "2026-02", "--format", "pdf", "--out", missing, "--db", ledger)
    assert "cannot write" in refused and "Traceback" not in refused


def test_amounts_print_as_accountants_write_them() -> None:
    from spendgate.finance.document import usd

    assert [usd(Decimal(v)) for v in ("-1.9", "1234.5", "-0.004", "-0.006", "0")] == [
        "-$1.90",
        "$1,234.50",
        "$0.00",  # rounds to nothing: no sign
        "-$0.01",
        "$0.00",
    ]
    assert usd(None) not in ("", "$0.00")


def test_serving_never_imports_the_pdf_renderer() -> None:
    """fpdf2 pulls in Pillow, fontTools and NumPy (~35 MiB, ~0.3 s): `serve` and the CLI load
    it only when a PDF is made, never to answer requests."""
    import subprocess
    import sys

    probe = (
        "import sys; import spendgate.server, spendgate.gateway.app, spendgate.finance.delivery_job;"
        " from spendgate.cli.main import main;"
        " print(sorted(m for m in ('fpdf', 'PIL', 'numpy', 'fontTools') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"

"""The formats finance documents are written in, each a name -> renderer entry: the scheduled
delivery and the CLI's `finance report` / `statements` read these tables, so a new format plugs in
by adding one entry. A renderer returns text (written UTF-8) or bytes (PDF)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from spendgate.finance.monthly import MonthlyReport
from spendgate.finance.monthly_render import monthly_csv, monthly_html, monthly_json, monthly_pdf
from spendgate.finance.statements import Statement, statement_document, statement_text


@dataclass(frozen=True)
class Format:
    # Monthly: render(report); statements: render(statement, ledger_id) (a PDF names its ledger).
    render: Callable[..., str | bytes]
    media_type: str


MONTHLY_FORMATS: Mapping[str, Format] = MappingProxyType(
    {
        "json": Format(monthly_json, "application/json"),
        "csv": Format(monthly_csv, "text/csv"),
        "html": Format(monthly_html, "text/html"),
        "pdf": Format(monthly_pdf, "application/pdf"),
    }
)


def statement_pdf(statement: Statement, ledger_id: str) -> bytes:
    from spendgate.finance.pdf import document_pdf  # fpdf2 is heavy: imported by a PDF only

    return document_pdf(statement_document(statement, ledger_id))


STATEMENT_FORMATS: Mapping[str, Format] = MappingProxyType(
    {
        "csv": Format(lambda statement, ledger_id: statement_text(statement, "csv"), "text/csv"),
        "json": Format(lambda statement, ledger_id: statement_text(statement, "json"), "application/json"),
        "pdf": Format(statement_pdf, "application/pdf"),
    }
)


def render_monthly(report: MonthlyReport, fmt: str) -> bytes:
    """The report in ``fmt`` as the bytes written to a file (text: UTF-8)."""
    return as_bytes(MONTHLY_FORMATS[fmt].render(report))


def render_statement(statement: Statement, fmt: str, ledger_id: str) -> bytes:
    return as_bytes(STATEMENT_FORMATS[fmt].render(statement, ledger_id))


def as_bytes(document: str | bytes) -> bytes:
    return document.encode("utf-8") if isinstance(document, str) else document

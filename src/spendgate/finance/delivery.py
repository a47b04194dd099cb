"""Finance documents delivered: written into a directory (``DIR/YYYY-MM/…``, each file atomically:
a temporary file renamed over the name, so a reader never sees half a report), or POSTed to a
webhook as one signed JSON envelope holding every document inline (text as UTF-8, binary as
base64). The documents are the bytes ``spendgate finance report`` and ``spendgate statements``
write for the same month."""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp

from spendgate.alerts.dispatcher import post_alert
from spendgate.budgets.windows import iso_utc
from spendgate.finance.delivery_config import FinanceConfig
from spendgate.finance.formats import MONTHLY_FORMATS, STATEMENT_FORMATS, render_monthly, render_statement
from spendgate.finance.monthly import build_monthly
from spendgate.finance.schedule import MONTHLY
from spendgate.finance.statements import build_statements
from spendgate.ledger.store import Store

_TEXT_TYPES = ("application/json", "text/")


@dataclass(frozen=True)
class Document:
    name: str  # a relative POSIX path under the month's folder
    media_type: str
    content: bytes

    @property
    def is_text(self) -> bool:
        return self.media_type.startswith(_TEXT_TYPES)

    def as_json(self) -> dict[str, Any]:
        if self.is_text:
            return {
                "name": self.name,
                "media_type": self.media_type,
                "encoding": "utf-8",
                "content": self.content.decode("utf-8"),
            }
        return {
            "name": self.name,
            "media_type": self.media_type,
            "encoding": "base64",
            "content": base64.b64encode(self.content).decode("ascii"),
        }


def monthly_documents(store: Store, month: str, config: FinanceConfig) -> list[Document]:
    """The month's report in each format, and its statements (by each owner kind, in each
    format statements have). Reads the ledger: call it off the event loop."""
    report = build_monthly(store, month)
    documents = [
        Document(f"finance-report-{month}.{fmt}", MONTHLY_FORMATS[fmt].media_type, render_monthly(report, fmt))
        for fmt in config.formats
    ]
    ledger_id = store.ledger_id()
    for by in config.statements_by:
        for statement in build_statements(store, month, by):
            for fmt in config.statement_formats:
                documents.append(
                    Document(
                        f"statements/{by}/{statement.file_stem()}.{fmt}",
                        STATEMENT_FORMATS[fmt].media_type,
                        render_statement(statement, fmt, ledger_id),
                    )
                )
    return documents


def write_atomically(path: Path, content: bytes) -> None:
    """``content`` at ``path``, all or nothing: written to a temporary file beside it, flushed to
    disk, then renamed over it (a rename within a folder is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_to_directory(root: Path, period: str, documents: list[Document]) -> list[Path]:
    """Each document at ``root/period/name``; the paths written."""
    folder = root / period
    written = []
    for document in documents:
        relative = PurePosixPath(document.name)
        if relative.is_absolute() or ".." in relative.parts:  # names are ours, but never trusted
            raise ValueError(f"document name {document.name!r} leaves the delivery folder")
        path = folder.joinpath(*relative.parts)
        write_atomically(path, document.content)
        written.append(path)
    return written


def envelope(kind: str, period: str, documents: list[Document], *, at: datetime) -> dict[str, Any]:
    """The webhook body: the same ``id`` on every attempt, so a receiver drops a repeat."""
    key = "month" if kind == MONTHLY else "week"
    return {
        "event": kind,
        "id": f"{kind}:{period}",
        "at": iso_utc(at),
        key: period,
        "documents": [d.as_json() for d in documents],
    }


async def post_envelope(
    session: aiohttp.ClientSession, url: str, secret: str | None, payload: dict[str, Any], *, timeout: float
) -> None:
    """POST ``payload`` signed like every webhook (``x-spendgate-signature``); raises unless 2xx."""
    status = await post_alert(
        session, url=url, secret=secret, fmt="json", kind=payload["event"], payload=payload, timeout=timeout
    )
    if not 200 <= status < 300:
        raise DeliveryRefused(f"HTTP {status}")


class DeliveryRefused(Exception):
    pass

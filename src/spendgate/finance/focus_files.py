"""The FOCUS export's files: CSV (through the exports' one safe CSV writer) and Parquet.

Both take the typed rows of finance/focus.py and return what they wrote (rows, BilledCost
total), so the command can report a total that is the file's. Parquet needs pyarrow, an
optional extra (``pip install 'spendgate[parquet]'``): imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from spendgate.finance.focus import COLUMNS, COUNT_COLUMNS, DATETIME_COLUMNS, DECIMAL_COLUMNS, focus_time
from spendgate.reports.csv_export import SafeWriter

FORMATS = ("csv", "parquet")
PARQUET_EXTRA_HINT = "Parquet needs pyarrow: pip install 'spendgate[parquet]'"
# Money and quantities: wide enough for any ledger sum (numeric(38,18) in the store) exactly.
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 18
# Rows per Parquet row group write: bounds memory, whatever the export's size.
PARQUET_BATCH_ROWS = 50_000


class ParquetUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Written:
    rows: int
    billed_cost_usd: Decimal


def pyarrow_modules() -> tuple[ModuleType, ModuleType]:
    """pyarrow and pyarrow.parquet, or ParquetUnavailable saying how to install them (an
    install that cannot import, e.g. built for another NumPy, counts as missing)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        reason = " ".join(str(e).split())[:120]  # one line, whatever the import said
        raise ParquetUnavailable(f"{PARQUET_EXTRA_HINT} ({reason})") from None
    return pyarrow, pyarrow.parquet


def write_csv(rows: Iterable[Mapping[str, Any]], out: Path) -> Written:
    count, total = 0, Decimal(0)
    instants = [i for i, name in enumerate(COLUMNS) if name in DATETIME_COLUMNS]
    # A file has few distinct days and months: each instant is formatted once.
    texts: dict[datetime, str] = {}
    with out.open("w", newline="", encoding="utf-8") as f:
        # Through the exports' one CSV writer: names from requests cannot run as formulas.
        writer = SafeWriter(f)
        writer.writerow(COLUMNS)
        for row in rows:
            values = [row.get(name) for name in COLUMNS]
            for i in instants:
                at = values[i]
                if at is not None:
                    values[i] = texts.get(at) or texts.setdefault(at, focus_time(at))
            writer.writerow(values)
            count += 1
            total += row["BilledCost"]
    return Written(count, total)


def parquet_schema(pa: ModuleType) -> Any:
    """Money and quantities decimal128(38,18), instants timestamp[ms, UTC], counts int64, text utf8."""

    def column_type(name: str) -> Any:
        if name in DECIMAL_COLUMNS:
            return pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
        if name in DATETIME_COLUMNS:
            return pa.timestamp("ms", tz="UTC")
        if name in COUNT_COLUMNS.values():
            return pa.int64()
        return pa.utf8()

    return pa.schema([pa.field(name, column_type(name), nullable=True) for name in COLUMNS])


def write_parquet(rows: Iterable[Mapping[str, Any]], out: Path) -> Written:
    """pyarrow refuses a Decimal with more than 18 places rather than round it: never silently inexact."""
    pa, pq = pyarrow_modules()
    schema = parquet_schema(pa)
    count, total = 0, Decimal(0)
    batch: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    with pq.ParquetWriter(str(out), schema) as writer:
        for row in rows:
            for name in COLUMNS:
                batch[name].append(row.get(name))
            count += 1
            total += row["BilledCost"]
            if len(batch["BilledCost"]) >= PARQUET_BATCH_ROWS:
                writer.write_table(pa.Table.from_pydict(batch, schema=schema))
                batch = {name: [] for name in COLUMNS}
        if batch["BilledCost"] or not count:
            writer.write_table(pa.Table.from_pydict(batch, schema=schema))
    return Written(count, total)


def write_focus(rows: Iterable[Mapping[str, Any]], out: Path, fmt: str) -> Written:
    if fmt == "parquet":
        return write_parquet(rows, out)
    if fmt == "csv":
        return write_csv(rows, out)
    raise ValueError(f"unknown FOCUS file format {fmt!r}; known: {', '.join(FORMATS)}")

"""Reading usage records from a file, in batches, from where a previous run stopped (pure I/O
over one open file; no database).

JSON lines: one record (the /v1/usage record object) per line; blank lines are skipped. A batch
ends on a line boundary, so the byte offset after it is where a later run resumes.

CSV: a header line naming the record's fields (``id,ts,provider,model,input_tokens,…``); columns
named ``tag:NAME`` become tags. Quoted fields may span lines, so CSV resumes by record count.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from spendgate.ingest.records import RecordError

FINGERPRINT_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # a record is a few hundred bytes; a longer line is rejected unread
TAG_COLUMN = "tag:"


@dataclass
class Batch:
    records: list[Any]  # decoded records, or a ``RecordError`` for a line that is not one
    line_numbers: list[int]  # where each record starts (1-based)
    offset: int  # bytes consumed once this batch is stored (JSONL) …
    count: int  # … and records (CSV and JSONL)


def fingerprint(path: Path) -> str:
    """A file's identity for resuming: the hash of its first two lines (a CSV's header and first
    record; records have ids of their own), so a log that grows keeps it."""
    with path.open("rb") as f:
        head = f.readline(FINGERPRINT_BYTES) + f.readline(FINGERPRINT_BYTES)
    return hashlib.sha256(head).hexdigest()


def resumable(path: Path, offset: int) -> bool:
    """Whether a JSONL file can resume at ``offset``: still that long, a line ending there
    (a file replaced or truncated since is read from its start)."""
    if offset == 0:
        return True
    if path.stat().st_size < offset:
        return False
    with path.open("rb") as f:
        f.seek(offset - 1)
        return f.read(1) == b"\n"


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def jsonl_batches(f: BinaryIO, *, start_offset: int, start_count: int, size: int) -> Iterator[Batch]:
    f.seek(start_offset)
    # Line numbers count from where this run starts (the file's start, or where it resumes).
    offset, count, line_number = start_offset, start_count, 0
    records: list[Any] = []
    numbers: list[int] = []
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            break
        offset += len(line)
        line_number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            rest = f.readline()  # skip the remainder of an overlong line
            while rest and not rest.endswith(b"\n"):
                offset += len(rest)
                rest = f.readline()
            offset += len(rest)
            records.append(RecordError(f"a line longer than {MAX_LINE_BYTES} bytes"))
        elif not line.strip():
            continue
        else:
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                records.append(RecordError(f"not valid JSON: {exc}"))
        count += 1
        numbers.append(line_number)
        if len(records) >= size:
            yield Batch(records, numbers, offset, count)
            records, numbers = [], []
    if records:
        yield Batch(records, numbers, offset, count)


def csv_row_record(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row as a record: empty cells are absent, ``tag:NAME`` columns are tags."""
    record: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for name, value in row.items():
        if name is None or value is None or value == "":
            continue  # a row longer than the header has extra cells under None: ignored
        if name.startswith(TAG_COLUMN):
            tags[name[len(TAG_COLUMN) :]] = value
        else:
            record[name] = value
    if tags:
        record["tags"] = tags
    return record


def csv_batches(f: BinaryIO, *, start_count: int, size: int) -> Iterator[Batch]:
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    count = 0
    try:
        reader = csv.DictReader(text)
        records: list[Any] = []
        numbers: list[int] = []
        for row in reader:
            count += 1
            if count <= start_count:
                continue
            records.append(csv_row_record(row))
            numbers.append(reader.line_num)
            if len(records) >= size:
                yield Batch(records, numbers, 0, count)
                records, numbers = [], []
        if records:
            yield Batch(records, numbers, 0, count)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RecordError(f"the CSV cannot be read past record {count}: {exc}") from None
    finally:
        text.detach()  # the file is the caller's to close

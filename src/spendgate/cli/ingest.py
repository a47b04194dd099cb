"""`spendgate ingest FILE`: usage records from a file (JSON lines or CSV), for backfills.

The records of POST /v1/usage, turned into events by the same code (ingest/records.py), stored
by the same store call the gateway's writer makes, batch by batch. The file itself is the
durable copy, so no spool is needed: a run that stops (Ctrl-C, a crash) is resumed where its
last stored batch ended, and a record stored before is a duplicate (its event id comes from its
id), so running the same file twice changes nothing.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from spendgate.cli.support import print_json
from spendgate.ingest.offline import BatchOutcome, Recording
from spendgate.ledger.store import Store, StoreError

MAX_SHOWN_REJECTIONS = 20


def gateway_key(store: Store, name: str | None) -> Any:
    if name is None:
        return None
    try:
        key = store.key(name)
    except StoreError:
        raise click.UsageError(f"no gateway key named {name!r} (`spendgate keys list`)") from None
    if key.revoked:
        raise click.UsageError(f"gateway key {name!r} is revoked")
    return key


def open_ledger(db: str | None, config: str | None) -> tuple[Any, Store]:
    """Settings and an existing ledger, as every command that reads one opens them."""
    from spendgate.cli.support import open_existing_store, settings_from
    from spendgate.redact import redact_urls

    settings = settings_from(db, config)
    try:
        return settings, open_existing_store(settings.db)
    except StoreError as exc:
        raise click.UsageError(redact_urls(str(exc))) from exc


def is_terminal() -> bool:
    return sys.stderr.isatty()


@click.command("ingest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None, help="Default: from the extension.")
@click.option(
    "--key", "key_name", default=None, help="Attribute as this gateway key would (lock, default project, scope)."
)
@click.option(
    "--batch-size", default=5000, show_default=True, type=click.IntRange(1, 50_000), help="Records per batch."
)
@click.option("--restart", is_flag=True, help="Read the file from its start, not from where the last run stopped.")
@click.option("--progress/--no-progress", default=None, help="A progress bar (default: on a terminal).")
@click.option("--db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def ingest_command(
    file: Path,
    fmt: str | None,
    key_name: str | None,
    batch_size: int,
    restart: bool,
    progress: bool | None,
    db: str | None,
    config: str | None,
    as_json: bool,
) -> None:
    """Backfill usage records from FILE: JSON lines, or CSV with a header (tag:NAME columns are
    tags). Resumable (a second run goes on from where the first stopped) and idempotent (a
    record's id is stored once)."""
    from spendgate.ingest.files import csv_batches, detect_format, fingerprint, jsonl_batches, resumable
    from spendgate.ingest.records import RecordError
    from spendgate.redact import redact_urls

    settings, store = open_ledger(db, config)
    try:
        fmt = detect_format(file, fmt)
        key = gateway_key(store, key_name)
        mark = fingerprint(file)
        resume = None if restart else store.ingest_progress(mark, key_name or "")
        start_offset, start_count = resume or (0, 0)
        if fmt == "jsonl" and not resumable(file, start_offset):
            start_offset, start_count = 0, 0
        totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "resumed_after": start_count}
        shown: list[dict[str, Any]] = []
        with file.open("rb") as f:
            batches: Iterator[Any] = (
                jsonl_batches(f, start_offset=start_offset, start_count=start_count, size=batch_size)
                if fmt == "jsonl"
                else csv_batches(f, start_count=start_count, size=batch_size)
            )
            recording = Recording(store, key, settings)
            show = progress if progress is not None else is_terminal()
            where = (mark, key_name or "", str(file), f, show, start_offset)
            try:
                asyncio.run(ingest_batches(recording, batches, totals, shown, where))
            finally:
                store.spend_written_elsewhere()  # running gateways reload their budget counters
    except StoreError as exc:
        raise click.ClickException(redact_urls(str(exc))) from exc
    except RecordError as exc:  # a file that is not what --format says
        raise click.ClickException(f"{file}: {exc}; what was read before is stored") from None
    finally:
        store.close()
    if as_json:
        print_json({**totals, "rejections": shown})
        return
    if start_count:
        click.echo(f"resumed after record {start_count}, stored by an earlier run (--restart reads from the start)")
    click.echo(
        f"{totals['accepted']} record(s) stored, {totals['duplicates']} duplicate(s) (already in the ledger),"
        f" {totals['rejected']} rejected"
    )
    for item in shown:
        click.echo(f"  line {item['line']}: {item['error']}", err=True)
    if totals["rejected"] > len(shown):
        click.echo(f"  … and {totals['rejected'] - len(shown)} more rejected", err=True)


async def ingest_batches(
    recording: Recording, batches: Iterator[Any], totals: dict[str, int], shown: list[dict[str, Any]], progress: Any
) -> None:
    """Every batch of the file, its progress saved once it is stored."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    mark, key_name, path, f, show, start = progress
    size = Path(path).stat().st_size
    columns = (
        TextColumn("ingesting"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[records]} records"),
        TimeRemainingColumn(),
    )
    # On stderr: stdout stays the outcome (--json pipes cleanly).
    console = Console(stderr=True, force_terminal=True if show else None)
    async with recording.open():
        with Progress(*columns, console=console, disable=not show, transient=False) as bar:
            task = bar.add_task("ingest", total=size, completed=start, records=0)

            async def finish(storing: asyncio.Future[BatchOutcome], batch: Any) -> None:
                outcome = await storing
                totals["accepted"] += outcome.accepted
                totals["duplicates"] += outcome.duplicates
                totals["rejected"] += len(outcome.rejected)
                for item in outcome.rejected:
                    if len(shown) < MAX_SHOWN_REJECTIONS:
                        shown.append({"line": batch.line_numbers[item["index"]], "error": item["error"]})
                recording.store.save_ingest_progress(mark, key_name, path, batch.offset, batch.count, datetime.now(UTC))
                done = totals["accepted"] + totals["duplicates"] + totals["rejected"]
                bar.update(task, completed=batch.offset or _position(f, size), records=done)

            # While one batch is stored (in a thread), the next is read, validated and priced.
            storing: tuple[asyncio.Future[BatchOutcome], Any] | None = None
            for batch in batches:
                prepared = recording.prepare(batch.records, source="ingest", endpoint="spendgate ingest")
                if storing is not None:
                    await finish(*storing)
                storing = (asyncio.ensure_future(recording.commit(prepared)), batch)
                await asyncio.sleep(0)  # let it reach its thread before the next batch is built
            if storing is not None:
                await finish(*storing)


def _position(f: Any, size: int) -> int:
    try:
        return min(f.tell(), size)
    except (OSError, ValueError):
        return 0

"""The local spool and the writer shipping through it: real files, real processes."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from spendgate.gateway.accounting import unfinished_event
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.recovery import scan_slot
from spendgate.ledger.spool.spool import (
    Spool,
    SpoolError,
    decode_event,
    encode_event,
    read_checkpoint,
    records,
    segment_numbers,
    segment_path,
    slot_dirs,
    spool_location,
)
from spendgate.ledger.spool.writer import EventWriter
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.pricing import PriceBook

_ids = count(1)


def event(**fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": f"ev-{next(_ids):08d}",
        "ts": datetime(2025, 3, 10, 12, 0, 0, 123456, tzinfo=UTC),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "input_tokens": 1000,
        "output_tokens": 200,
        "cost_usd": Decimal("0.00027"),
    }
    values.update(fields)
    return UsageEvent(**values)


def begin(request_id: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": request_id,
        "ts": datetime(2025, 3, 10, 12, 0, tzinfo=UTC),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "stream": True,
        "project": "checkout",
        "team": "payments",
        "cost_center": None,
        "feature": "summarize",
        "environment": "production",
        "customer": "acme",
        "key": "checkout-bot",
        "trace_id": None,
        "tags": {"agent": "copilot"},
        "input_tokens": 1000,
    }
    values.update(fields)
    return values


PRICES = PriceBook()
PRICE_UNFINISHED = functools.partial(unfinished_event, prices=PRICES)


class FailingStore(SQLiteStore):
    """A real SQLite store with a fault switch: while ``down`` is set, appends raise, as a
    database that cannot be reached would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False
        self.failures = 0

    def append_new(self, events: Sequence[UsageEvent]) -> set[str]:  # append_events too
        if self.down:
            self.failures += 1
            raise sqlite3.OperationalError("unable to open database file (fault injected by the test)")
        return super().append_new(events)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FailingStore]:
    s = FailingStore(tmp_path / "ledger.db")
    yield s
    s.close()


def stored(store: SQLiteStore) -> list[dict[str, Any]]:
    return store.list_events(1_000_000)


def assert_once(rows: list[dict[str, Any]], ids: set[str]) -> None:
    got = [row["id"] for row in rows]
    assert len(got) == len(set(got)), "an event was stored twice"
    assert set(got) == ids


# --- records, segments, checkpoints ------------------------------------------------------------
def test_records_round_trip_exactly(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool")
    original = event(
        stream=True,
        project="checkout",
        tags={"agent": "copilot", "run": "7"},
        cached_input_tokens=400,
        cost_usd=Decimal("0.000123456789"),
        rates={"input": "0.15", "output": "0.6"},
        estimated=True,
        latency_ms=12.5,
        extra={"note": "x"},
    )
    spool.append_begin(original.id, begin(original.id))
    spool.append_event(original)
    spool.close()
    [b, e] = list(records(spool.dir))
    assert (b.kind, b.id, b.fields["input_tokens"]) == ("begin", original.id, 1000)
    assert e.kind == "event"
    assert decode_event(e.fields) == original
    assert e.position[1] == segment_path(spool.dir, e.position[0]).stat().st_size


def test_the_service_tier_survives_the_spool_and_old_records_without_it_still_load(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool")
    tiered = event(service_tier="priority")
    spool.append_event(tiered)
    spool.close()
    [record] = list(records(spool.dir))
    assert record.fields["service_tier"] == "priority"
    assert decode_event(record.fields) == tiered
    # A record written before the field existed (or by a newer gateway with fields this one
    # does not know) still loads.
    old = {k: v for k, v in record.fields.items() if k != "service_tier"}
    assert decode_event(old).service_tier is None
    assert decode_event({**record.fields, "some_future_field": 1}) == tiered


def test_a_recovered_request_is_priced_at_the_tier_it_asked_for(tmp_path: Path) -> None:
    from spendgate.attribution import Attribution
    from spendgate.gateway.accounting import RequestContext, begin_record

    def begin_of(body: dict[str, Any]) -> dict[str, Any]:
        ctx = RequestContext(
            request_id="r1",
            started=datetime(2026, 12, 1, tzinfo=UTC),
            started_perf=0.0,
            endpoint="/v1/chat/completions",
            provider="openai",
            model="gpt-5",
            stream=False,
            attribution=Attribution("p", "t", None, "production", "k"),
            body=body,
        )
        spool = Spool.open(tmp_path / "spool" / str(next(_ids)))
        spool.append_begin("r1", begin_record(ctx))
        spool.close()
        [record] = list(records(spool.dir))
        return record.fields

    messages = [{"role": "user", "content": "x" * 3000}]
    standard = unfinished_event(begin_of({"model": "gpt-5", "messages": messages}), PriceBook())
    priority = unfinished_event(
        begin_of({"model": "gpt-5", "messages": messages, "service_tier": "priority"}), PriceBook()
    )
    assert (standard.service_tier, priority.service_tier) == (None, "priority")
    assert standard.cost_usd is not None and priority.cost_usd == standard.cost_usd * 2  # gpt-5 priority: 2x


def test_a_begin_carries_no_prompt(tmp_path: Path) -> None:
    from spendgate.attribution import Attribution
    from spendgate.gateway.accounting import RequestContext, begin_record

    secret = "the quarterly numbers are confidential"
    ctx = RequestContext(
        request_id="r1",
        started=datetime.now(UTC),
        started_perf=0.0,
        endpoint="/v1/chat/completions",
        provider="openai",
        model="gpt-4o",
        stream=False,
        attribution=Attribution("p", "t", None, "production", "k"),
        body={"model": "gpt-4o", "messages": [{"role": "user", "content": secret * 10}]},
    )
    spool = Spool.open(tmp_path / "spool")
    spool.append_begin("r1", begin_record(ctx))
    spool.close()
    text = b"".join(p.read_bytes() for p in spool.dir.glob("*.jsonl"))
    assert b"confidential" not in text
    [record] = list(records(spool.dir))
    assert record.fields["input_tokens"] > 80  # an estimate of the prompt's size, not the prompt


def test_segments_rotate_and_carry_requests_in_flight(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool", segment_bytes=4000)
    spool.append_begin("long-stream", begin("long-stream"))
    positions = []
    for _ in range(40):
        e = event()
        spool.append_begin(e.id, begin(e.id))
        positions.append(spool.append_event(e))
    segments = segment_numbers(spool.dir)
    assert len(segments) >= 5
    # Every segment after the first starts with the begin of the request still in flight.
    for number in segments[1:]:
        first = next(iter(records(spool.dir, (number, 0), (number, 10**9))))
        assert (first.kind, first.id) == ("begin", "long-stream")
    # Shipping everything up to the last event deletes every segment before the last one...
    spool.commit(positions[-1])
    assert segment_numbers(spool.dir) == [positions[-1][0]]
    assert read_checkpoint(spool.dir) == positions[-1]
    # ...and the request in flight is still known, were the process to die now.
    leftovers = scan_slot(spool.dir, lambda _: pytest.fail("everything was shipped"))
    assert list(leftovers.unfinished) == ["long-stream"]
    spool.close()


def test_read_events_resumes_where_it_stopped(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool", segment_bytes=3000)
    events = []
    for _ in range(25):
        events.append(event())
        spool.append_begin(events[-1].id, begin(events[-1].id))
        spool.append_event(events[-1])
    cursor, got = (0, 0), []
    while True:
        batch, cursor = spool.read_events(cursor, spool.end, 7)
        got += [e for e, _ in batch]
        if not batch:
            break
    assert got == events
    assert cursor == spool.end
    spool.close()


def test_a_torn_last_line_is_ignored_and_never_appended_to(tmp_path: Path) -> None:
    first = Spool.open(tmp_path / "spool")
    kept = [event() for _ in range(3)]
    for e in kept:
        first.append_event(e)
    torn = event()
    first.close()  # as a crash leaves it: records on disk, lock released
    # The write of the fourth record was cut short.
    [segment] = segment_numbers(first.dir)
    with segment_path(first.dir, segment).open("ab") as handle:
        handle.write(encode_event(torn)[:57])
    found: list[UsageEvent] = []
    leftovers = scan_slot(first.dir, lambda record: found.append(decode_event(record.fields)))
    assert found == kept and leftovers.events == 3
    # The next process in this slot starts a new segment: nothing is glued to the torn bytes.
    second = Spool.open(tmp_path / "spool")
    assert second.dir == first.dir
    later = event()
    second.append_event(later)
    assert segment_numbers(second.dir) == [segment, segment + 1]
    assert [decode_event(r.fields) for r in records(second.dir)] == [*kept, later]
    second.close()


def test_a_damaged_line_is_skipped_and_the_rest_is_kept(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool")
    a, b = event(), event()
    spool.append_event(a)
    garbage = b"\x00\x00\x00 not json\n"
    os.write(spool._fd, garbage)
    spool._size += len(garbage)
    spool.append_event(b)
    spool.close()
    assert [r.id for r in records(spool.dir)] == [a.id, b.id]


def test_an_unreadable_checkpoint_ships_everything_again(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool")
    position = spool.append_event(event())
    spool.commit(position)
    assert read_checkpoint(spool.dir) == position
    (spool.dir / "checkpoint").write_bytes(b'{"segm')
    assert read_checkpoint(spool.dir) == (0, 0)
    spool.close()


def test_a_checkpoint_left_without_its_segments_never_hides_new_records(tmp_path: Path) -> None:
    slot = tmp_path / "spool" / "slot-0"
    slot.mkdir(parents=True)
    (slot / "checkpoint").write_bytes(b'{"segment": 7, "offset": 900}')  # cut short while clearing
    spool = Spool.open(tmp_path / "spool")
    e = event()
    assert spool.append_event(e)[0] == 8
    spool.close()
    found: list[UsageEvent] = []
    scan_slot(spool.dir, lambda record: found.append(decode_event(record.fields)))
    assert found == [e]


def test_fsync_policies(tmp_path: Path) -> None:
    always = Spool.open(tmp_path / "a", fsync="always")
    always.append_event(event())
    assert not always.dirty
    always.close()
    interval = Spool.open(tmp_path / "i", fsync="interval")
    interval.append_event(event())
    assert interval.dirty
    interval.sync()
    assert not interval.dirty
    interval.close()
    with pytest.raises(SpoolError, match="interval, always, never"):
        Spool.open(tmp_path / "x", fsync="sometimes")


def test_spool_location_is_per_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "ledger.db"
    assert spool_location(None, f"sqlite:///{db}") == Path(f"{db}.spool")
    explicit = spool_location("/var/spool/sg", f"sqlite:///{db}")
    assert explicit is not None and explicit.parent == Path("/var/spool/sg")
    assert explicit.name.startswith("sqlite-ledger.db-")
    assert spool_location(None, "sqlite:///:memory:") is None
    assert spool_location("/var/spool/sg", "sqlite:///:memory:") is not None
    pg = spool_location(None, "postgresql://postgres@127.0.0.1:5432/test")
    assert pg is not None and pg.parent == Path("spendgate-spool")
    assert pg.name.startswith("postgresql-127.0.0.1-5432-test-")
    # Credentials are not part of a database's identity; its host, name and options are.
    assert spool_location(None, "postgresql://postgres:secret@127.0.0.1:5432/test") == pg
    assert spool_location(None, "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Da") != pg
    assert spool_location(None, "postgresql://postgres@127.0.0.1:5432/other") != pg
    assert spool_location("/srv/spool", "postgresql://postgres@127.0.0.1:5432/test") == Path("/srv/spool") / pg.name


# --- slots between processes --------------------------------------------------------------------
HOLD_A_SLOT = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from decimal import Decimal
    from spendgate.ledger.events import UsageEvent
    from spendgate.ledger.spool.spool import Spool

    spool = Spool.open(sys.argv[1])
    for i in range(int(sys.argv[2])):
        e = UsageEvent(id=f"child-{i}", ts=datetime.now(UTC), provider="openai", model="gpt-4o-mini",
                       endpoint="/v1/chat/completions", stream=False, status="ok", http_status=200,
                       input_tokens=10, output_tokens=2, cost_usd=Decimal("0.0000027"))
        spool.append_begin(e.id, {"id": e.id})
        spool.append_event(e)
    spool.append_begin("child-in-flight", {
        "id": "child-in-flight", "ts": datetime.now(UTC).isoformat(), "provider": "openai",
        "model": "gpt-4o-mini", "endpoint": "/v1/chat/completions", "stream": True, "input_tokens": 5000,
        "project": "checkout"})
    print(spool.slot, flush=True)
    sys.stdin.read()
    """
)


def _hold_a_slot(root: Path, events: int = 0) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_SLOT, str(root), str(events)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def test_two_processes_never_share_a_slot_and_a_dead_ones_slot_is_free(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    child, slot = _hold_a_slot(root)
    try:
        assert slot == "slot-0"
        mine = Spool.open(root)
        assert mine.slot == "slot-1"  # slot-0 is locked by the other process
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        again = Spool.open(root)
        assert again.slot == "slot-0"  # the kernel released the dead process's lock
        again.close()
        mine.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout:
            child.stdout.close()
        if child.stdin:
            child.stdin.close()


# --- the writer ------------------------------------------------------------------------------
async def _written(writer: EventWriter, n: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while writer.pending and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert writer.pending == 0, f"{writer.pending} events still unshipped"


async def test_a_killed_process_is_recovered_by_the_next_one(tmp_path: Path, store: FailingStore) -> None:
    root = tmp_path / "spool"
    child, slot = _hold_a_slot(root, events=30)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    for pipe in (child.stdin, child.stdout):
        assert pipe is not None
        pipe.close()
    writer = EventWriter(store, flush_interval=0.01, spool_dir=root, unfinished_event=PRICE_UNFINISHED)
    writer.start()
    assert writer.spool is not None and writer.spool.slot == slot  # first free slot: the dead one's
    assert writer.recovered == 31
    await _written(writer, 31)
    rows = stored(store)
    assert_once(rows, {f"child-{i}" for i in range(30)} | {"child-in-flight"})
    [in_flight] = [r for r in rows if r["id"] == "child-in-flight"]
    assert (in_flight["status"], in_flight["estimated"]) == ("incomplete", True)
    assert (in_flight["input_tokens"], in_flight["output_tokens"]) == (5000, 0)
    assert in_flight["project"] == "checkout"
    # priced like any request at its start: gpt-4o-mini input is $0.15 per million tokens
    assert Decimal(in_flight["cost_usd"]) == Decimal("0.00075")
    await writer.aclose()
    assert not root.exists()  # all shipped: nothing left behind


async def test_an_orphaned_slot_is_adopted_when_its_number_is_not_the_first_free(
    tmp_path: Path, store: FailingStore
) -> None:
    root = tmp_path / "spool"
    holder = Spool.open(root)  # slot-0, held while the orphan is made
    orphan = Spool.open(root)
    assert orphan.slot == "slot-1"
    events = [event() for _ in range(5)]
    for e in events:
        orphan.append_begin(e.id, begin(e.id))
        orphan.append_event(e)
    orphan.append_begin("orphan-in-flight", begin("orphan-in-flight", input_tokens=2000))
    orphan.close()  # dies: records left, lock released
    holder.close(shipped_all=True)
    writer = EventWriter(store, flush_interval=0.01, spool_dir=root, unfinished_event=PRICE_UNFINISHED)
    writer.start()
    assert writer.spool is not None and writer.spool.slot == "slot-0"
    assert [d.name for d in slot_dirs(root)] == ["slot-0"]  # slot-1 adopted, then removed
    await _written(writer, 6)
    rows = stored(store)
    assert_once(rows, {e.id for e in events} | {"orphan-in-flight"})
    await writer.aclose()


async def test_recovery_keeps_its_promise_after_a_crash_during_recovery(tmp_path: Path, store: FailingStore) -> None:
    root = tmp_path / "spool"
    dead = Spool.open(root)
    shipped_before = [event() for _ in range(4)]
    for e in shipped_before:
        dead.append_begin(e.id, begin(e.id))
        last = dead.append_event(e)
    store.append_events(shipped_before)
    dead.commit(last)
    unshipped = [event() for _ in range(3)]
    for e in unshipped:
        dead.append_event(e)
    dead.append_begin("in-flight", begin("in-flight"))
    dead.close()
    # A first recovery dies before shipping anything (store down, process gone).
    store.down = True
    first = EventWriter(store, flush_interval=60, spool_dir=root, unfinished_event=PRICE_UNFINISHED)
    first.open_spool()
    assert first.recovered == 4
    assert first.spool is not None
    first.spool.close()
    # The second one finds the same facts, the incomplete event included, and ships each once.
    store.down = False
    second = EventWriter(store, flush_interval=0.01, spool_dir=root, unfinished_event=PRICE_UNFINISHED)
    second.start()
    await _written(second, 4)
    assert_once(stored(store), {e.id for e in shipped_before + unshipped} | {"in-flight"})
    await second.aclose()


async def test_store_down_spills_to_disk_with_bounded_memory_then_every_event_lands_once(
    tmp_path: Path, store: FailingStore
) -> None:
    writer = EventWriter(
        store,
        flush_interval=0.01,
        spool_dir=tmp_path / "spool",
        max_memory_events=50,
        segment_bytes=20_000,
        unfinished_event=PRICE_UNFINISHED,
    )
    writer.start()
    first = [event() for _ in range(20)]
    for e in first:
        writer.record(e)
    await _written(writer, 20)
    store.down = True
    during = [event() for _ in range(700)]
    for i, e in enumerate(during):
        writer.record(e)
        if i % 50 == 0:
            await asyncio.sleep(0.005)  # the writer keeps trying meanwhile
    assert store.failures > 0
    assert writer.pending == 700
    assert writer.in_memory <= 50  # the rest is only on disk
    assert writer.spool is not None and len(segment_numbers(writer.spool.dir)) > 3
    store.down = False
    await writer.flush()
    assert writer.pending == 0
    # back to memory: new events are held again
    after = event()
    writer.record(after)
    assert writer.in_memory == 1
    await writer.aclose()
    assert_once(stored(store), {e.id for e in [*first, *during, after]})


async def test_a_clean_stop_while_the_store_is_down_keeps_the_spool_for_the_next_start(
    tmp_path: Path, store: FailingStore
) -> None:
    root = tmp_path / "spool"
    writer = EventWriter(store, flush_interval=0.01, spool_dir=root, shutdown_patience=0.2)
    writer.start()
    store.down = True
    events = [event() for _ in range(10)]
    for e in events:
        writer.record(e)
    await writer.aclose()  # gives up after its patience; nothing is lost
    assert stored(store) == []
    assert slot_dirs(root)
    store.down = False
    again = EventWriter(store, flush_interval=0.01, spool_dir=root)
    again.start()
    await _written(again, 10)
    await again.aclose()
    assert_once(stored(store), {e.id for e in events})
    assert not root.exists()  # all shipped: the spool is gone


async def test_events_that_the_spool_cannot_take_are_still_shipped(tmp_path: Path, store: FailingStore) -> None:
    writer = EventWriter(store, flush_interval=0.01, spool_dir=tmp_path / "spool")
    writer.start()
    assert writer.spool is not None
    # The spool's disk is gone: its folder vanishes and its open file stops taking writes.
    shutil.rmtree(writer.spool.dir)
    os.close(writer.spool._fd)
    writer.spool._fd = os.open(os.devnull, os.O_RDONLY)
    events = [event() for _ in range(5)]
    for e in events:
        writer.record(e)
    assert writer.spool_errors == 5
    await _written(writer, 5)
    await writer.aclose()
    assert_once(stored(store), {e.id for e in events})

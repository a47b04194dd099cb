"""One event the ledger refuses never blocks the others: it is found, set aside durably beside
the spool, counted by /healthz, listed and retried by `spendgate dead-letters`, and never
replayed as a poison again. Real stores (SQLite and PostgreSQL), real spool files."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from spendgate.cli import main
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.spool import DeadLetters, encode_event, event_fields, read_checkpoint, records
from spendgate.ledger.spool.writer import EventWriter, append_isolating
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.usage.bounds import MAX_INPUT_TOKENS
from tests.conftest import Gateway
from tests.test_spool import FailingStore


def event(event_id: str, **fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": event_id,
        "ts": datetime.now(UTC),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": Decimal("0.000021"),
    }
    return UsageEvent(**{**values, **fields})


def spooled_by_an_older_gateway(item: UsageEvent) -> bytes:
    """An event record as a gateway without bounds spooled it (orjson cannot write 10^19)."""
    fields = {**event_fields(item), "ts": item.ts.isoformat(), "cost_usd": str(item.cost_usd)}
    return json.dumps({"kind": "event", "event": fields}).encode() + b"\n"


def orphan_slot(root: Path, *lines: bytes) -> Path:
    """A slot a dead gateway left, with these records."""
    slot = root / "slot-7"
    slot.mkdir(parents=True)
    (slot / "000000000001.jsonl").write_bytes(b"".join(lines))
    return slot


def healthz(gateway: Gateway) -> dict[str, Any]:
    return httpx.get(f"{gateway.url}/healthz").json()


def cli(gateway: Gateway, *args: str) -> str:
    settings = gateway.app.settings
    result = CliRunner().invoke(
        main,
        [*args, "--db", gateway.db_url],
        env={"SPENDGATE_SPOOL_DIR": str(settings.spool_dir)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_poison_event_is_set_aside_and_the_others_ship(make_gateway) -> None:
    first = make_gateway()
    key = first.key("k")
    assert first.app.writer.spool is not None
    root = first.app.writer.spool.root
    poison = event("poison-1", input_tokens=10**19, model="gpt-4o")
    orphan_slot(
        root,
        encode_event(event("good-1")),
        spooled_by_an_older_gateway(poison),
        encode_event(event("good-2")),
    )
    second = make_gateway(db=first.db_url)  # adopts the orphan slot as it starts
    second.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=3 output=1]]"}]
    )
    ids = {e["id"] for e in second.events()}
    assert {"good-1", "good-2"} <= ids and "poison-1" not in ids
    assert len(ids) == 3  # and the request made after it
    assert healthz(second) == {"status": "ok", "pending_events": 0, "dead_letters": 1}
    assert healthz(first)["dead_letters"] == 1  # one file for the database's spool folder

    [listed] = json.loads(cli(second, "dead-letters", "list", "--json"))
    assert (listed["kind"], listed["record"]["id"], listed["record"]["input_tokens"]) == ("event", "poison-1", 10**19)
    assert "OverflowError" in listed["error"]
    assert "poison-1" in cli(second, "dead-letters", "list")

    # A gateway starting on the same database and spool replays nothing and sets nothing aside again.
    third = make_gateway(db=first.db_url)
    assert healthz(third) == {"status": "ok", "pending_events": 0, "dead_letters": 1}
    assert len(third.events()) == 3

    # After the fix (here: the bounds every event now gets), retry stores it, flagged.
    assert json.loads(cli(second, "dead-letters", "retry", "--json")) == {
        "retried": 1,
        "stored": 1,
        "already_in_ledger": 0,
        "still_set_aside": 0,
    }
    stored = {e["id"]: e for e in third.events()}["poison-1"]
    assert (stored["input_tokens"], stored["estimated"]) == (MAX_INPUT_TOKENS, True)
    assert json.loads(cli(second, "dead-letters", "list", "--json")) == []
    assert healthz(second)["dead_letters"] == 0


def test_a_record_that_is_no_event_is_set_aside_at_start_up(make_gateway) -> None:
    first = make_gateway()
    assert first.app.writer.spool is not None
    damaged = json.dumps({"kind": "event", "event": {"id": "damaged-1", "ts": "not a time"}}).encode() + b"\n"
    # Whole, but a field of the wrong type, which a database driver would refuse with an error
    # that looks like the database's own (retried for ever, were it not caught first).
    mistyped = json.loads(encode_event(event("damaged-2")))
    mistyped["event"]["model"] = {"not": "a name"}
    orphan_slot(
        first.app.writer.spool.root,
        damaged,
        json.dumps(mistyped).encode() + b"\n",
        encode_event(event("good-1")),
    )
    second = make_gateway(db=first.db_url)  # starts: damaged records do not stop it
    assert [e["id"] for e in second.events()] == ["good-1"]
    assert healthz(second)["dead_letters"] == 2
    listed = json.loads(cli(second, "dead-letters", "list", "--json"))
    assert sorted(letter["record"]["id"] for letter in listed) == ["damaged-1", "damaged-2"]
    # Still no event after a retry: they stay set aside, with the error of this attempt.
    assert json.loads(cli(second, "dead-letters", "retry", "--json"))["still_set_aside"] == 2


@pytest.mark.parametrize("max_memory_events", [10_000, 1])  # 1: every event read back from the spool
async def test_the_writer_isolates_the_refused_event_and_moves_the_checkpoint_past_it(
    tmp_path: Path, max_memory_events: int
) -> None:
    store = SQLiteStore(tmp_path / "ledger.db")
    writer = EventWriter(store, spool_dir=tmp_path / "spool", flush_interval=3600, max_memory_events=max_memory_events)
    writer.start()
    try:
        for i in range(50):
            writer.record(event(f"e{i:02d}", input_tokens=10**19 if i in (13, 37) else 100))
        await asyncio.wait_for(writer.flush(), 10)
        assert writer.pending == 0
        assert writer.dead_letter_count == 2
        assert {row["id"] for row in store.list_events(100)} == {f"e{i:02d}" for i in range(50)} - {"e13", "e37"}
        assert writer.spool is not None
        spooled = {r.id: r.position for r in records(writer.spool.dir)}
        assert read_checkpoint(writer.spool.dir) >= spooled["e37"]  # never shipped (or refused) again
        letters = DeadLetters.beside(writer.spool.root).read()
        assert sorted(letter.id for letter in letters) == ["e13", "e37"]
    finally:
        await writer.aclose()
        store.close()


async def test_without_a_spool_refused_events_are_kept_in_memory(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ledger.db")
    writer = EventWriter(store, flush_interval=3600)
    writer.start()
    try:
        writer.record(event("bad", output_tokens=-(2**70)))
        writer.record(event("good"))
        await asyncio.wait_for(writer.flush(), 10)
        assert [row["id"] for row in store.list_events(10)] == ["good"]
        assert writer.dead_letter_count == 1
    finally:
        await writer.aclose()
        store.close()


async def test_an_unreachable_database_is_retried_never_set_aside(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "ledger.db")
    writer = EventWriter(store, spool_dir=tmp_path / "spool", flush_interval=0.01)
    writer.start()
    try:
        store.down = True
        writer.record(event("e1"))
        while store.failures < 3:
            await asyncio.sleep(0.01)
        assert (writer.pending, writer.dead_letter_count) == (1, 0)
        store.down = False
        await asyncio.wait_for(writer.flush(), 10)
        assert [row["id"] for row in store.list_events(10)] == ["e1"]
        assert writer.dead_letter_count == 0
    finally:
        await writer.aclose()
        store.close()


def test_append_isolating_on_postgresql(postgres_db) -> None:
    from spendgate.ledger.store.dialects.postgresql import PostgresStore

    store = PostgresStore(postgres_db())
    try:
        batch = [event(f"p{i}", input_tokens=10**19 if i == 5 else 10) for i in range(9)]
        written, refused = append_isolating(store, batch)
        assert written == {f"p{i}" for i in range(9) if i != 5}
        assert [(e.id, type(exc).__name__) for e, exc in refused] == [("p5", "OverflowError")]
        assert len(store.list_events(100)) == 8
    finally:
        store.close()

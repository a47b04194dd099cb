"""Start-up recovery: what a dead process left in a spool slot becomes ledger events.

- every event record after the slot's checkpoint is shipped (again, perhaps: the ledger
  ignores an id it already has, so a replay is harmless);
- every begin record without an event is a request that was in flight when the process
  died: the provider may bill it, so it is recorded as ``incomplete`` at an estimate (the
  caller prices it, with the same accounting as any other request).

A process recovers its own slot (its events stay where they are and are shipped from there)
and adopts every other slot nobody holds (their events are copied into its own slot, made
durable, and only then deleted from the orphan).

A record that cannot be made into an event (damaged fields, a begin that cannot be priced) is
handed to ``set_aside`` (the dead letters, see spool.py) rather than stopping the start-up: one
bad record must not keep a gateway from serving, nor be lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.spool import (
    Record,
    clear_slot,
    decode_event,
    read_checkpoint,
    records,
    remove_slot,
    segment_numbers,
    slot_dirs,
    try_lock,
)

log = logging.getLogger("spendgate.spool")


@dataclass
class Leftovers:
    """What a slot held that the ledger may not have."""

    slot: str
    events: int = 0  # event records after the checkpoint
    unfinished: dict[str, dict[str, Any]] = field(default_factory=dict)  # begins without an event, by id


def scan_slot(slot_dir: Path, on_event: Callable[[Record], None]) -> Leftovers:
    """Hand every unshipped event record to ``on_event`` (in spool order; ``decode_event`` turns
    it into the event) and return the begins that never got an event. Memory holds only the
    requests that were in flight, whatever the size of the spool."""
    checkpoint = read_checkpoint(slot_dir)
    leftovers = Leftovers(slot_dir.name)
    unfinished = leftovers.unfinished
    for record in records(slot_dir):
        if record.kind == "begin":
            unfinished[record.id] = record.fields
            continue
        unfinished.pop(record.id, None)
        if record.position > checkpoint:
            leftovers.events += 1
            on_event(record)
    return leftovers


SetAside = Callable[[str, dict[str, Any], Exception], None]  # (kind, record fields, why)


def event_or_set_aside(
    kind: str, fields: dict[str, Any], make: Callable[[dict[str, Any]], UsageEvent], set_aside: SetAside | None
) -> UsageEvent | None:
    """``make(fields)``, or None once the record is handed to ``set_aside`` (which, when None,
    lets the error through)."""
    try:
        return make(fields)
    except Exception as exc:
        if set_aside is None:
            raise
        set_aside(kind, fields, exc)
        return None


def adopt_orphans(
    root: Path,
    own_slot: Path,
    record: Callable[[UsageEvent], None],
    unfinished_event: Callable[[dict[str, Any]], UsageEvent],
    make_durable: Callable[[], None],
    set_aside: SetAside | None = None,
) -> list[Leftovers]:
    """Take over every slot under ``root`` that no live process holds and has records: its
    events and in-flight requests are recorded here (``record``), made durable here, then
    deleted there. A record that makes no event goes to ``set_aside``."""

    def take(kind: str, fields: dict[str, Any], make: Callable[[dict[str, Any]], UsageEvent]) -> None:
        event = event_or_set_aside(kind, fields, make, set_aside)
        if event is not None:
            record(event)

    adopted = []
    for slot_dir in slot_dirs(root):
        if slot_dir == own_slot:
            continue
        fd = try_lock(slot_dir)
        if fd is None:
            continue  # a live gateway's slot
        if not segment_numbers(slot_dir):
            clear_slot(slot_dir)  # at most a stale checkpoint
            remove_slot(slot_dir, fd)
            continue
        try:
            leftovers = scan_slot(slot_dir, lambda found: take("event", found.fields, decode_event))
            for begin in leftovers.unfinished.values():
                take("begin", begin, unfinished_event)
            make_durable()
            clear_slot(slot_dir)
        except BaseException:
            os.close(fd)
            raise
        remove_slot(slot_dir, fd)
        if leftovers.events or leftovers.unfinished:
            adopted.append(leftovers)
    return adopted

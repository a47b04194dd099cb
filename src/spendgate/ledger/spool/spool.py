"""The local spool: every request's usage is on local disk before the gateway relies on memory.

A spool is a folder of append-only segment files of JSON lines, one record per line:

- ``{"kind": "begin", "begin": {...}}`` — a request is about to go upstream: its id, time,
  provider, model, endpoint, attribution and ESTIMATED input tokens (never the prompt or
  completion). A begin that never gets its event is a request that was in flight when the
  process died; recovery records it as ``incomplete`` at an estimate.
- ``{"kind": "event", "event": {...}}`` — the finished :class:`UsageEvent`.

Appends are single ``os.write`` calls on an ``O_APPEND`` descriptor: once the call returns the
record is in the kernel's page cache and survives the process being killed (SIGKILL, OOM).
Surviving a power loss takes an fsync, whose policy is the operator's choice (``always``,
``interval`` — once per flush interval, by the writer — or ``never``).

A ``checkpoint`` file (replaced atomically by rename) says how far events have been shipped
to the ledger; segments entirely before it are deleted. Events are shipped in spool order,
so one position suffices. Begins of requests still in flight are copied to the head of each
new segment, so deleting old segments never loses one.

Several gateway processes on one machine never share a spool: each takes a *slot*, a
sub-folder locked with ``fcntl.flock`` for the life of the process. The kernel drops the lock
when the process dies however it dies, so the next process can take the slot, or adopt it,
and recover what was left there.

A record the ledger refuses for what it holds (not because the database is unreachable) is
set aside in ``dead-letters.jsonl`` beside the slots (:class:`DeadLetters`), so it never holds
up the others and is never replayed as a poison again; ``spendgate dead-letters`` lists and
retries them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import orjson

from spendgate.ledger.events import UsageEvent
from spendgate.ledger.private_files import make_private_dirs, write_private

log = logging.getLogger("spendgate.spool")

FSYNC_POLICIES = ("interval", "always", "never")
SEGMENT_BYTES = 8 * 1024 * 1024
MAX_SLOTS = 4096
READ_CHUNK = 1024 * 1024
SEGMENT_SUFFIX = ".jsonl"
CHECKPOINT = "checkpoint"
LOCK = "lock"

# (segment number, byte offset just past a record): positions compare as tuples.
Position = tuple[int, int]
START: Position = (0, 0)

_EVENT_FIELDS = frozenset(f.name for f in dataclasses.fields(UsageEvent))


def _json_types(annotation: Any) -> tuple[type, ...]:
    """The JSON types a spooled event field may hold, from its annotation: money and times are
    spooled as text, a float may be written as an integer."""
    kinds: list[type] = []
    for part in typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,):
        origin = typing.get_origin(part) or part
        kinds.extend({Decimal: (str,), datetime: (str,), float: (float, int)}.get(origin, (origin,)))
    return tuple(kinds)


# What each field of a spooled event must be, checked when it is read back: a damaged record
# must fail to decode (and be set aside) rather than reach the database as a value its driver
# refuses with an error that looks like the database's own.
_EVENT_JSON_TYPES = MappingProxyType(
    {name: _json_types(annotation) for name, annotation in typing.get_type_hints(UsageEvent).items()}
)


class SpoolError(RuntimeError):
    pass


def _sqlite_path(db_url: str) -> str:
    path = db_url.split(":", 1)[1]
    return path[3:] if path.startswith("///") else path.lstrip("/")


def default_spool_dir(db_url: str) -> Path | None:
    """Next to a SQLite file (``<db>.spool``); ``./spendgate-spool`` for a server database;
    none for an in-memory database, which does not outlive the process anyway."""
    if db_url.startswith("sqlite:"):
        path = _sqlite_path(db_url)
        if not path or path == ":memory:":
            return None
        return Path(path + ".spool")
    return Path("spendgate-spool")


def database_partition(db_url: str) -> str:
    """A folder name for one database, so that a spool folder shared by gateways of several
    databases never ships one database's events into another: readable, then a hash of the
    whole URL but its credentials (which may change without the database changing)."""
    if db_url.startswith("sqlite:"):
        path = _sqlite_path(db_url)
        identity = "sqlite:" + (path if path == ":memory:" else str(Path(path).resolve()))
        readable = "sqlite-" + Path(path).name
    else:
        parts = urlsplit(db_url)
        identity = f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}?{parts.query}"
        readable = f"{parts.scheme}-{parts.hostname or 'local'}-{parts.port or 'default'}-{parts.path.strip('/')}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", readable)[:80] + "-" + digest


def spool_location(spool_dir: str | None, db_url: str) -> Path | None:
    """The folder of the slots of the gateways of ``db_url``: ``<spool dir>/<database partition>``
    (``./spendgate-spool/<partition>`` for a server database), or ``<db file>.spool`` itself,
    which belongs to one database already. Removed when its last slot is."""
    if spool_dir:
        return Path(spool_dir) / database_partition(db_url)
    default = default_spool_dir(db_url)
    if default is None or db_url.startswith("sqlite:"):
        return default
    return default / database_partition(db_url)


# --- records -------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    # Decimal money as its exact text; anything odd in ``extra`` as text rather than an error
    # on the request path.
    return str(value)


def encode_event(event: UsageEvent) -> bytes:
    return orjson.dumps({"kind": "event", "event": event}, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)


def encode_begin(begin: dict[str, Any]) -> bytes:
    return orjson.dumps({"kind": "begin", "begin": begin}, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)


def parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def decode_event(fields: dict[str, Any]) -> UsageEvent:
    values = {k: v for k, v in fields.items() if k in _EVENT_FIELDS}
    if values.get("extra") is None:
        values.pop("extra", None)
    for name, value in values.items():
        if not isinstance(value, _EVENT_JSON_TYPES[name]):
            raise TypeError(f"spooled event field {name} holds {type(value).__name__}")
    values["ts"] = parse_ts(values["ts"])
    if values.get("cost_usd") is not None:
        values["cost_usd"] = Decimal(values["cost_usd"])
    return UsageEvent(**values)


@dataclass(slots=True)
class Record:
    kind: str  # "begin" | "event"
    id: str
    position: Position  # just past this record
    fields: dict[str, Any]


def parse_line(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """(kind, fields) of one complete line, or None for a damaged one."""
    try:
        record = orjson.loads(line)
        kind = record["kind"]
        fields = record[kind]
        if kind not in ("begin", "event") or not isinstance(fields, dict) or not isinstance(fields.get("id"), str):
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return kind, fields


# --- slots ---------------------------------------------------------------------------------
def try_lock(slot_dir: Path) -> int | None:
    """An exclusive lock on a slot, held by the returned descriptor; None if someone has it.

    A slot is removed by its owner when it is empty (``remove_slot``), so the lock taken must
    be on the lock file still at the path, not on one unlinked meanwhile: checked by inode,
    and tried again if the folder or file went away under us.
    """
    lock_path = slot_dir / LOCK
    for _ in range(100):
        try:
            make_private_dirs(slot_dir)  # the spool root and partition too, not only the slot
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # a parent was removed between mkdir and open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return None
            raise
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            current = None
        locked = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (locked.st_ino, locked.st_dev):
            return fd
        os.close(fd)
    raise SpoolError(f"could not lock {lock_path}: it keeps being removed")


def remove_slot(slot_dir: Path, lock_fd: int) -> None:
    """Delete an empty slot while holding its lock, then release it (the lock file goes first,
    so a process waiting on the old one notices by inode and tries again)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(slot_dir / LOCK)
    with contextlib.suppress(OSError):
        slot_dir.rmdir()  # not empty: someone just made a new lock file there; it is theirs
    os.close(lock_fd)
    with contextlib.suppress(OSError):
        slot_dir.parent.rmdir()  # the partition, once its last slot is gone


def slot_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        name = entry.name
        if name.startswith("slot-") and name[5:].isdigit() and entry.is_dir():
            found.append(entry)
    return sorted(found, key=lambda p: int(p.name[5:]))


def segment_numbers(slot_dir: Path) -> list[int]:
    numbers = []
    try:
        entries = os.listdir(slot_dir)
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.endswith(SEGMENT_SUFFIX) and entry[: -len(SEGMENT_SUFFIX)].isdigit():
            numbers.append(int(entry[: -len(SEGMENT_SUFFIX)]))
    return sorted(numbers)


def segment_path(slot_dir: Path, number: int) -> Path:
    return slot_dir / f"{number:012d}{SEGMENT_SUFFIX}"


def read_checkpoint(slot_dir: Path) -> Position:
    """How far a slot's events were shipped. Unreadable means from the start: shipping again
    is harmless (the ledger ignores an id it already has), skipping is not."""
    try:
        data = orjson.loads((slot_dir / CHECKPOINT).read_bytes())
        return (int(data["segment"]), int(data["offset"]))
    except FileNotFoundError:
        return START
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("unreadable spool checkpoint in %s; shipping the whole slot again", slot_dir)
        return START


def records(slot_dir: Path, start: Position = START, end: Position | None = None) -> Iterator[Record]:
    """Every intact record of a slot from ``start`` up to ``end`` (both positions).

    A line without its newline at the end of a segment is a write cut short by a crash or a
    power loss: it is skipped, as is any line that does not parse (counted in the log).
    """
    for number in segment_numbers(slot_dir):
        if number < start[0] or (end is not None and number > end[0]):
            continue
        offset = start[1] if number == start[0] else 0
        stop = end[1] if end is not None and number == end[0] else None
        yield from _segment_records(slot_dir, number, offset, stop)


def _segment_records(slot_dir: Path, number: int, offset: int, stop: int | None) -> Iterator[Record]:
    try:
        handle = segment_path(slot_dir, number).open("rb")
    except FileNotFoundError:
        return
    damaged = 0
    with handle:
        handle.seek(offset)
        position = offset
        rest = b""
        while stop is None or position + len(rest) < stop:
            size = READ_CHUNK if stop is None else min(READ_CHUNK, stop - position - len(rest))
            chunk = handle.read(size)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                position += len(line) + 1
                parsed = parse_line(line) if line else None
                if parsed is None:
                    damaged += line != b""
                    continue
                kind, fields = parsed
                yield Record(kind, fields["id"], (number, position), fields)
    if rest:
        damaged += 1
    if damaged:
        log.warning(
            "spool segment %s: %d damaged or partial record(s) skipped", segment_path(slot_dir, number), damaged
        )


# --- the spool -----------------------------------------------------------------------------
class Spool:
    """One process's slot: appends from the event loop, syncs and checkpoints from a thread.

    ``append_*`` and ``commit`` may run on different threads; a lock guards the active
    segment, and an fsync works on a duplicate descriptor so appends never wait for the disk.
    """

    def __init__(
        self,
        root: Path,
        slot_dir: Path,
        lock_fd: int,
        *,
        fsync: str = "interval",
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise SpoolError(f"spool fsync policy must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}")
        self.root = root
        self.dir = slot_dir
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = lock_fd
        self._lock = threading.Lock()
        self._open_begins: dict[str, bytes] = {}
        self._retired: list[int] = []  # rotated-out descriptors the next sync still owes an fsync
        self._dirty = False
        self._dir_dirty = False
        existing = segment_numbers(slot_dir)
        # Never append to a segment a dead process left (its last line may be torn), nor number
        # one at or before the checkpoint (its records would pass for shipped).
        self._segment = max(existing[-1] if existing else 0, read_checkpoint(slot_dir)[0]) + 1
        self._fd = self._create_segment(self._segment)
        self._size = 0

    @classmethod
    def open(
        cls, root: str | os.PathLike[str], *, fsync: str = "interval", segment_bytes: int = SEGMENT_BYTES
    ) -> Spool:
        """Take the first free slot under ``root``."""
        root = Path(root).resolve()
        for number in range(MAX_SLOTS):
            slot_dir = root / f"slot-{number}"
            fd = try_lock(slot_dir)
            if fd is not None:
                return cls(root, slot_dir, fd, fsync=fsync, segment_bytes=segment_bytes)
        raise SpoolError(f"all {MAX_SLOTS} spool slots under {root} are taken")

    @property
    def slot(self) -> str:
        return self.dir.name

    # --- appending (the event loop) --------------------------------------------------------
    def append_begin(self, request_id: str, begin: dict[str, Any]) -> Position:
        line = encode_begin(begin)
        with self._lock:
            position = self._append(line)
            self._open_begins[request_id] = line
            return position

    def append_event(self, event: UsageEvent) -> Position:
        line = encode_event(event)
        with self._lock:
            position = self._append(line)
            self._open_begins.pop(event.id, None)
            return position

    @property
    def end(self) -> Position:
        with self._lock:
            return (self._segment, self._size)

    @property
    def open_begins(self) -> int:
        return len(self._open_begins)

    def _append(self, line: bytes) -> Position:
        try:
            if self._size >= self.segment_bytes:
                self._rotate()
            self._write(line)
        except OSError:
            # Part of the line may be on disk: never append after it (the next record would be
            # glued to it); the next append starts a new segment.
            self._size = max(self._size, self.segment_bytes)
            raise
        if self.fsync == "always":
            os.fdatasync(self._fd)
        else:
            self._dirty = True
        return (self._segment, self._size)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def _rotate(self) -> None:
        number = self._segment + 1
        fd = self._create_segment(number)
        old = self._fd
        self._fd, self._segment, self._size = fd, number, 0
        if self.fsync == "interval":
            self._retired.append(old)
        else:
            os.close(old)
        # Requests still in flight keep a begin in the newest segment, so shipped segments
        # can be deleted whole.
        for line in self._open_begins.values():
            self._write(line)
        if self.fsync == "always":
            os.fdatasync(self._fd)

    def _create_segment(self, number: int) -> int:
        fd = os.open(
            segment_path(self.dir, number), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        if self.fsync == "always":
            _fsync_dir(self.dir)
        else:
            self._dir_dirty = True
        return fd

    # --- durability (a thread) ---------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self._dirty or bool(self._retired) or self._dir_dirty

    def sync(self) -> None:
        """fsync what was appended since the last sync (the ``interval`` policy's tick)."""
        with self._lock:
            if self._fd < 0 or not self.dirty:
                return
            fd = os.dup(self._fd) if self._dirty else -1
            retired, self._retired = self._retired, []
            dir_dirty = self._dir_dirty
            self._dirty = self._dir_dirty = False
        failures: list[OSError] = []
        for descriptor in [*retired, fd]:
            if descriptor < 0:
                continue
            try:
                os.fdatasync(descriptor)
            except OSError as exc:
                failures.append(exc)
            finally:
                os.close(descriptor)
        if dir_dirty:
            _fsync_dir(self.dir)
        if failures:
            raise failures[0]

    # --- shipping (the writer thread) --------------------------------------------------------
    def checkpoint(self) -> Position:
        return read_checkpoint(self.dir)

    def commit(self, shipped: Position) -> None:
        """Everything up to ``shipped`` is in the ledger: say so, then delete the segments that
        lie wholly before it (never the one being appended to)."""
        write_checkpoint(self.dir, shipped)
        for number in segment_numbers(self.dir):
            if number >= shipped[0]:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(segment_path(self.dir, number))

    def read_events(
        self,
        start: Position,
        end: Position,
        limit: int,
        undecodable: Callable[[Record, Exception], None] | None = None,
    ) -> tuple[list[tuple[UsageEvent, Position]], Position]:
        """Up to ``limit`` events after ``start`` and up to ``end``, and where reading stopped.
        An event record that is no event (``decode_event`` fails) goes to ``undecodable``."""
        events: list[tuple[UsageEvent, Position]] = []
        cursor = start
        for record in records(self.dir, start, end):
            if record.kind == "event":
                try:
                    events.append((decode_event(record.fields), record.position))
                except Exception as exc:
                    if undecodable is None:
                        raise
                    undecodable(record, exc)
            cursor = record.position
            if len(events) >= limit:
                return events, cursor
        # Everything up to ``end`` was read (damaged lines included): continue from there.
        return events, max(cursor, end)

    # --- the end -----------------------------------------------------------------------------
    def close(self, *, shipped_all: bool = False) -> None:
        """Release the slot. ``shipped_all``: everything in it is in the ledger and nothing is in
        flight, so its records and its folder are deleted: a spool folder exists only while a
        gateway runs, or while something in it is still to be shipped."""
        with self._lock:
            keep = not shipped_all and self.fsync != "never"
            for old in self._retired:
                if keep:
                    os.fdatasync(old)
                os.close(old)
            self._retired = []
            if self._fd >= 0:
                if keep and self._dirty:
                    os.fdatasync(self._fd)
                os.close(self._fd)
                self._fd = -1
                if self._size == 0:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(segment_path(self.dir, self._segment))
            if self._lock_fd is None:
                return
            if shipped_all:
                clear_slot(self.dir)
                remove_slot(self.dir, self._lock_fd)
            else:
                os.close(self._lock_fd)
            self._lock_fd = None


def write_checkpoint(slot_dir: Path, shipped: Position) -> None:
    # Not fsynced: a checkpoint lost to a power loss only means shipping again, which the
    # ledger makes harmless.
    tmp = slot_dir / (CHECKPOINT + ".tmp")
    write_private(tmp, orjson.dumps({"segment": shipped[0], "offset": shipped[1]}))
    os.replace(tmp, slot_dir / CHECKPOINT)


def clear_slot(slot_dir: Path) -> None:
    """Delete a slot's records, its lock held (``remove_slot`` then removes the rest). The
    checkpoint goes first: cut short here, the records left are shipped again, which is
    harmless, rather than skipped."""
    for name in (CHECKPOINT, CHECKPOINT + ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(slot_dir / name)
    for number in segment_numbers(slot_dir):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment_path(slot_dir, number))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- dead letters ----------------------------------------------------------------------------
DEAD_LETTERS = "dead-letters.jsonl"
_DEAD_LETTERS_LOCK = "dead-letters.lock"


@dataclass(slots=True)
class DeadLetter:
    """A spooled record the ledger would not take, and why."""

    kind: str  # "event" (a finished request) or "begin" (one in flight, whose event could not be made)
    fields: dict[str, Any]  # the record's fields, as spooled
    error: str
    at: str  # when it was set aside (UTC, RFC 3339)

    @property
    def id(self) -> str | None:
        value = self.fields.get("id")
        return value if isinstance(value, str) else None

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "error": self.error, "record": self.fields}


def dead_letter(kind: str, fields: dict[str, Any], error: BaseException | str) -> DeadLetter:
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return DeadLetter(kind, fields, reason[:1000], datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def event_fields(event: UsageEvent) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(UsageEvent)}


def _plain(value: Any) -> Any:
    # Exact text for money and times; whatever else an odd record holds, as text.
    return value.isoformat() if isinstance(value, datetime) else str(value)


class DeadLetters:
    """Records set aside, as JSON lines in one file beside a database's spool slots
    (``<spool>/dead-letters.jsonl``), shared by the gateway processes of that database on this
    host. The stdlib encoder writes them: unlike orjson it takes integers of any size, and a
    record is here precisely because something in it is out of the ordinary.

    ``add`` appends under an exclusive ``flock`` of a lock file beside it, in one ``write``, and
    fsyncs before returning: the writer moves the spool's checkpoint past a record only once it
    is here, so it is neither lost nor replayed. ``rewrite`` (``spendgate dead-letters retry``)
    replaces the file under the same lock.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(_DEAD_LETTERS_LOCK)
        self._counted: tuple[int, int, int] | None = None  # (inode, size, mtime) last counted
        self._count = 0

    @classmethod
    def beside(cls, spool_root: str | os.PathLike[str]) -> DeadLetters:
        return cls(Path(spool_root) / DEAD_LETTERS)

    def add(self, letters: list[DeadLetter]) -> None:
        """Append ``letters``, but not a record already set aside (a start that found it again
        before the checkpoint could pass it, a batch retried after a failed fsync)."""
        with self._locked():
            held = {(letter.kind, letter.id) for letter in self.read()}
            letters = [letter for letter in letters if letter.id is None or (letter.kind, letter.id) not in held]
            if not letters:
                return
            data = "".join(json.dumps(letter.as_json(), default=_plain) + "\n" for letter in letters).encode()
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def read(self) -> list[DeadLetter]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        letters = []
        for line in lines:
            try:
                item = json.loads(line)
                letters.append(DeadLetter(item["kind"], item["record"], item["error"], item["at"]))
            except (ValueError, KeyError, TypeError):
                if line.strip():
                    log.warning("%s: an unreadable line (%d bytes) skipped", self.path, len(line))
        return letters

    def count(self) -> int:
        """How many are set aside (re-read only when the file changed: ``/healthz`` asks)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key != self._counted:
            self._count, self._counted = len(self.read()), key
        return self._count

    def rewrite(self, keep: Callable[[list[DeadLetter]], list[DeadLetter]]) -> None:
        """Replace the letters with ``keep(letters)``, no gateway appending meanwhile."""
        with self._locked():
            kept = keep(self.read())
            if not kept:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            data = "".join(json.dumps(letter.as_json(), default=_plain) + "\n" for letter in kept)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_private_dirs(self.path.parent)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

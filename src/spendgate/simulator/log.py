"""The simulator's memory of what it was asked and what usage it reported.

Tests compare what the gateway recorded with ``RequestRecord.reported_usage``: the exact usage
object the simulator sent, in the provider's own field names. The log is written by the server
thread and read by the test thread, hence the lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

MAX_RECORDS = 10_000


class RequestRecord:
    """One request the simulator received, and what it answered."""

    __slots__ = ("_headers", "_raw_headers", "body", "method", "path", "reported_model", "reported_usage", "status")

    def __init__(
        self,
        path: str,
        method: str,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        reported_usage: dict[str, Any] | None = None,
        status: int = 0,
        *,
        raw_headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        self.path = path
        self.method = method
        self.body = body  # the parsed JSON body, or None (no body, or not JSON)
        # The usage the simulator put in its response or stream (provider field names), or None.
        # For a stream it is filled in just before the bytes carrying it are sent.
        self.reported_usage = reported_usage
        # The model the answer named (what a provider bills and reports usage under), or None.
        self.reported_model: str | None = None
        self.status = status  # the HTTP status answered; 0 while not answered yet
        # The app hands over the raw ASGI header list, decoded on first read: most records are
        # never read, and decoding is a third of the cost of a simulated request.
        self._headers = {name.lower(): value for name, value in headers.items()} if headers else None
        self._raw_headers = raw_headers

    @property
    def headers(self) -> dict[str, str]:
        """Request headers by lower-cased name."""
        if self._headers is None:
            self._headers = {
                name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._raw_headers
            }
        return self._headers

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "method": self.method,
            "headers": self.headers,
            "body": self.body,
            "reported_usage": self.reported_usage,
            "reported_model": self.reported_model,
            "status": self.status,
        }

    def __repr__(self) -> str:
        return (
            f"RequestRecord(path={self.path!r}, method={self.method!r}, status={self.status}, "
            f"reported_usage={self.reported_usage!r})"
        )


class RecordList(list[RequestRecord]):
    """A snapshot of the log. Calling it returns itself, so ``log.records`` and ``log.records()``
    both read naturally."""

    def __call__(self) -> RecordList:
        return self


class SimulatorLog:
    """The last ``max_records`` requests an app received, oldest first."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> RecordList:
        with self._lock:
            return RecordList(self._records)

    @property
    def last(self) -> RequestRecord | None:
        with self._lock:
            return self._records[-1] if self._records else None

    def clear(self) -> int:
        """Forget every record; returns how many there were."""
        with self._lock:
            cleared = len(self._records)
            self._records.clear()
            return cleared

    def count(self, path: str | None = None) -> int:
        with self._lock:
            if path is None:
                return len(self._records)
            return sum(1 for record in self._records if record.path == path)

    def to_json(self) -> bytes:
        return orjson.dumps([record.to_dict() for record in self.records])

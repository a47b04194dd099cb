"""Shared pieces of the alert tests (no tests here): a store with the alert tables, a real
webhook receiver on loopback, budgets and a settable clock."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from spendgate.budgets.model import Budget, Scope
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.simulator import serve_in_thread
from spendgate.simulator.asgi_io import read_body, send_response

Store = SQLiteStore


NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def budget(name: str = "eng-monthly", limit: str = "100", **fields: Any) -> Budget:
    values: dict[str, Any] = {"scope": Scope.parse("team:eng"), "period": "month"}
    values.update(fields)
    return Budget(name=name, limit_usd=Decimal(limit), **values)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """A webhook receiver (raw ASGI) that records every POST and answers ``fail_status``
    to the first ``fail_first`` of them, then 200, after ``delay`` seconds and once ``gate``
    is open (it is, unless a test closes it to make the receiver hang)."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.fail_status = 500
        self.delay = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.answered = 0
        self._lock = threading.Lock()
        self._requests: list[Received] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        with self._lock:
            failing = self.fail_first > 0
            self.fail_first -= int(failing)
            status = self.fail_status if failing else 200
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self._requests.append(Received(scope["path"], headers, body, status))
        if self.delay:
            await asyncio.sleep(self.delay)
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        answer = b"nope" if failing else b"thanks"
        await send_response(send, status, answer, [(b"content-type", b"text/plain")])
        with self._lock:
            self.answered += 1

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]


@contextmanager
def running_receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    server = serve_in_thread(receiver, lifespan="off")
    try:
        yield receiver, server.url
    finally:
        receiver.gate.set()  # nothing may hang the server's shutdown
        server.stop()


def readme_signature_check() -> Callable[..., bool]:
    """The webhook signature check the README gives receivers, run as written there: the
    tests verify signatures with it, so the documented snippet is known to work."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [snippet] = re.findall(r"```python\n(import hashlib, hmac, time\n.*?)```", readme, re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    return namespace["verify_spendgate_signature"]


def verified(body: bytes, header: str, secret: str) -> bool:
    return readme_signature_check()(body, header, secret)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (without blocking the event loop) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)

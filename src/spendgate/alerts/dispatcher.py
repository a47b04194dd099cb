"""Sends recorded alerts to webhooks from a background task, never on the request path.

Deliveries live in the database (see ``ledger/store/alerts.py``): a process claims the
due ones under a lease, POSTs them, and marks each delivered, or failed with a retry time
(2 s, 4 s, 8 s… capped at 10 minutes) until ``max_attempts`` is spent. Because the state
is shared, any replica may finish what another started, and a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from spendgate.alerts.model import AlertStore, Delivery
from spendgate.alerts.rules import (
    SIGNATURE_HEADER,
    WEBHOOK_TEST,
    new_alert_id,
    retry_delay,
    sign,
    slack_body,
    webhook_test_payload,
)

log = logging.getLogger("spendgate.alerts")

USER_AGENT = "spendgate"
# Enough of a receiver's answer to explain a failure, without reading an unbounded body.
ANSWER_LIMIT = 4096


def utc_now() -> datetime:
    return datetime.now(UTC)


async def post_alert(
    session: aiohttp.ClientSession,
    *,
    url: str,
    secret: str | None,
    fmt: str,
    kind: str,
    payload: dict[str, Any],
    timeout: float,
) -> tuple[int, str]:
    """POST one alert; returns the receiver's status and (the start of) its answer."""
    body = orjson.dumps(slack_body(payload) if fmt == "slack" else payload)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "x-spendgate-event": kind,
        "x-spendgate-alert-id": str(payload.get("id", "")),
    }
    if secret:
        headers[SIGNATURE_HEADER] = f"sha256={sign(body, secret)}"
    # No redirects: following one would re-send a signed body to wherever it points.
    async with session.post(
        url,
        data=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=False,
    ) as response:
        answer = bytearray()
        while len(answer) < ANSWER_LIMIT:
            chunk = await response.content.read(ANSWER_LIMIT - len(answer))
            if not chunk:
                break
            answer += chunk
        return response.status, answer.decode("utf-8", "replace")


class AlertDispatcher:
    def __init__(
        self,
        store: AlertStore,
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        max_attempts: int = 8,
        timeout: float = 10.0,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        batch_size: int = 20,
        close_timeout: float = 5.0,
    ) -> None:
        if lease_seconds <= timeout:
            # Otherwise a slow send's lease could lapse and another replica send it again.
            raise ValueError("lease_seconds must be longer than the send timeout")
        self._store = store
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._batch_size = batch_size
        self._close_timeout = close_timeout
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (from inside the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spendgate-alerts-dispatch")

    def wake(self) -> None:
        """New deliveries are waiting: look now rather than at the next poll."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop after the sends in flight and whatever else is due now; retries wait for the
        next start (of this or any other replica). A receiver that hangs cannot hold shutdown
        past ``close_timeout``: what is cut short keeps its lease and is sent again later
        (receivers drop the duplicate by alert id)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=self._close_timeout)
            if not done:
                log.warning("alert deliveries still in flight after %s s; leaving them for later", self._close_timeout)
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send_test(self, webhook: dict[str, Any]) -> tuple[int, str]:
        """POST a ``webhook.test`` event to ``webhook`` (as ``store.webhook`` returns it) once,
        now, outside the delivery queue; errors reaching it are raised."""
        now = self._clock()
        payload = webhook_test_payload(webhook["id"], at=now, alert_id=new_alert_id(now))
        return await post_alert(
            self._client(),
            url=webhook["url"],
            secret=webhook.get("secret"),
            fmt=webhook["format"],
            kind=WEBHOOK_TEST,
            payload=payload,
            timeout=self._timeout,
        )

    async def deliver_due(self) -> int:
        """Claim one batch of due deliveries and send them concurrently; how many were claimed."""
        deliveries = await asyncio.to_thread(
            self._store.claim_deliveries, self._clock(), self._batch_size, self._lease_seconds
        )
        results = await asyncio.gather(*(self._deliver(d) for d in deliveries), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                # The outcome could not be stored; the lease runs out and the delivery is retried.
                log.error("could not record an alert delivery's outcome: %r", result)
        return len(deliveries)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before claiming, so a wake during the batch is not lost
            try:
                claimed = await self.deliver_due()
            except Exception:
                log.exception("alert delivery pass failed")
                claimed = 0
                if self._closing:
                    return
            if claimed >= self._batch_size:
                continue  # probably more due right now
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):  # the poll picks up retries as they fall due
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            status, answer = await post_alert(
                self._client(),
                url=delivery.url,
                secret=delivery.secret,
                fmt=delivery.format,
                kind=delivery.kind,
                payload=delivery.payload,
                timeout=self._timeout,
            )
            error = None if 200 <= status < 300 else f"HTTP {status}: {answer[:200]}"
        except Exception as exc:  # whatever went wrong reaching the receiver, it is retried
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = self._clock()
        if error is None:
            await asyncio.to_thread(self._store.delivery_succeeded, delivery.alert_id, delivery.webhook_id, now)
            return
        next_at = None
        if delivery.attempts < self._max_attempts:
            delay = retry_delay(delivery.attempts, self._backoff_base, self._backoff_cap)
            next_at = now + timedelta(seconds=delay)
        log.warning(
            "alert %s to webhook %s failed (attempt %d): %s; %s",
            delivery.alert_id,
            delivery.webhook_id,
            delivery.attempts,
            error,
            "giving up" if next_at is None else f"retrying at {next_at.isoformat()}",
        )
        await asyncio.to_thread(
            self._store.delivery_failed, delivery.alert_id, delivery.webhook_id, now, error, next_at
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

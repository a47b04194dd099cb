"""Sends recorded alerts to webhooks from a background task, never on the request path.

Deliveries live in the database (see ``ledger/store/alerts.py``): a process claims the
due ones under a lease, POSTs them, and marks each delivered, or failed with a retry time
(2 s, 4 s, 8 s… capped at 10 minutes) until ``max_attempts`` is spent. Because the state
is shared, any replica may finish what another started, and a crash loses nothing.

Receivers are independent: each claimed delivery is sent by a task of its own, bounded by
``timeout``, and the loop that claims does not wait for sends to finish. A receiver that
hangs holds only its own deliveries (until their timeout), never another's, nor the next
alerts. At most ``max_in_flight`` sends run at once; a slot frees as a send ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
    signature_header,
    slack_body,
    webhook_test_payload,
)
from spendgate.secretbox import SecretBox, SecretBoxError

log = logging.getLogger("spendgate.alerts")

USER_AGENT = "spendgate"


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
) -> int:
    """POST one alert; returns the receiver's status. Its answer is not read: a webhook URL
    may point anywhere the gateway reaches, and what answers there is nobody's to see."""
    body = orjson.dumps(slack_body(payload) if fmt == "slack" else payload)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "x-spendgate-event": kind,
        "x-spendgate-alert-id": str(payload.get("id", "")),
    }
    if secret:
        # Signed now, with the wall clock the receiver compares against (each retry anew).
        headers[SIGNATURE_HEADER] = signature_header(body, secret, int(time.time()))
    # No redirects: following one would re-send a signed body to wherever it points.
    async with session.post(
        url,
        data=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=False,
    ) as response:
        return response.status


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
        max_in_flight: int = 64,
        close_timeout: float = 5.0,
        secrets: SecretBox | None = None,
    ) -> None:
        if lease_seconds <= timeout:
            # Otherwise a slow send's lease could lapse and another replica send it again.
            raise ValueError("lease_seconds must be longer than the send timeout")
        self._store = store
        # Webhook secrets are stored encrypted (secretbox.py): opened only to sign, per send.
        self._secrets = secrets if secrets is not None else SecretBox(None)
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
        self._max_in_flight = max_in_flight
        self._close_timeout = close_timeout
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

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
                for send in list(self._sending):
                    send.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sending:  # cancelled above: let them unwind before the session closes
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send_test(self, webhook: dict[str, Any]) -> int:
        """POST a ``webhook.test`` event to ``webhook`` (as ``store.webhook`` returns it) once,
        now, outside the delivery queue; its HTTP status. Errors reaching it are raised."""
        now = self._clock()
        payload = webhook_test_payload(webhook["id"], at=now, alert_id=new_alert_id(now))
        return await post_alert(
            self._client(),
            url=webhook["url"],
            secret=self._open_secret(webhook.get("secret")),
            fmt=webhook["format"],
            kind=WEBHOOK_TEST,
            payload=payload,
            timeout=self._timeout,
        )

    async def _start_due(self) -> int:
        """Claim due deliveries, as many as there are free sending slots (at most a batch),
        and start sending each in a task of its own; how many were claimed. Sends are not
        waited for: a slow receiver must not hold up the claims for anyone else."""
        room = min(self._batch_size, self._max_in_flight - len(self._sending))
        if room <= 0:
            return 0
        deliveries = await asyncio.to_thread(self._store.claim_deliveries, self._clock(), room, self._lease_seconds)
        loop = asyncio.get_running_loop()
        for delivery in deliveries:
            send = loop.create_task(self._deliver(delivery), name=f"spendgate-alert-send-{delivery.webhook_id}")
            self._sending.add(send)
            send.add_done_callback(self._sent)
        return len(deliveries)

    def _sent(self, send: asyncio.Task[None]) -> None:
        self._sending.discard(send)
        if not send.cancelled() and send.exception() is not None:
            # The outcome could not be stored; the lease runs out and the delivery is retried.
            log.error("could not record an alert delivery's outcome: %r", send.exception())
        self._wake.set()  # a sending slot is free

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before claiming, so a wake during the claim is not lost
            try:
                claimed = await self._start_due()
            except Exception:
                log.exception("alert delivery pass failed")
                claimed = 0
                if self._closing:
                    break
            if claimed >= self._batch_size:
                continue  # probably more due right now
            if self._closing:
                break
            with contextlib.suppress(TimeoutError):  # the poll picks up retries as they fall due
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        # Closing: what was due has been claimed; the sends under way finish (or time out).
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _open_secret(self, stored: str | None) -> str | None:
        return self._secrets.open(stored) if stored else None

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            # A secret that cannot be opened (no key, a wrong key) fails the delivery with the
            # reason, retried like any failure: never sent unsigned.
            status = await post_alert(
                self._client(),
                url=delivery.url,
                secret=self._open_secret(delivery.secret),
                fmt=delivery.format,
                kind=delivery.kind,
                payload=delivery.payload,
                timeout=self._timeout,
            )
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except SecretBoxError as exc:
            error = str(exc)
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

"""The app factory: wires settings, store, prices and upstreams into one ASGI app.

Nothing happens at import time; ``create_app`` builds, the ASGI lifespan starts the
background work (ledger writer, directory refresh, upstream connection pool) and a clean
shutdown drains every buffered event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import orjson

from spendgate.access.authenticator import Authenticator
from spendgate.access.sessions import SessionPolicy
from spendgate.alerts.center import AlertCenter
from spendgate.alerts.dispatcher import AlertDispatcher
from spendgate.anomalies.params import AnomalyParams
from spendgate.attribution import Directory
from spendgate.budgets.counters import InProcessCounters
from spendgate.budgets.enforcer import BudgetExceeded, Enforcer, counter_key
from spendgate.budgets.forecasts import budget_history
from spendgate.budgets.gate import InProcessGate
from spendgate.budgets.model import Scope as BudgetScope
from spendgate.budgets.output_model import OutputModelParams
from spendgate.budgets.reservations import LearnedReservations
from spendgate.budgets.resync import CounterResync, ShipFence
from spendgate.budgets.rules import Rules
from spendgate.budgets.status import budget_status
from spendgate.budgets.windows import Window, window_for
from spendgate.finance.delivery_job import FinanceDeliveryJob
from spendgate.gateway.accounting import unfinished_event
from spendgate.gateway.admin import AdminAPI
from spendgate.gateway.asgi import JSON_HEADERS, ClientGone, Receive, Scope, Send, send_error, send_response
from spendgate.gateway.batches import BatchDoor, match_batch_path
from spendgate.gateway.directory import DirectoryRefresher
from spendgate.gateway.errors import ANTHROPIC, GEMINI, OPENAI, GatewayError, method_not_allowed, not_found
from spendgate.gateway.ingest_api import UsageAPI
from spendgate.gateway.native import is_gemini_path, match_native
from spendgate.gateway.otlp_api import TracesAPI
from spendgate.gateway.proxy import Gateway
from spendgate.gateway.routes import ROUTES
from spendgate.gateway.upstream import Upstreams
from spendgate.ingest.service import Recorder
from spendgate.ledger.retention import RetentionJob
from spendgate.ledger.spool.spool import spool_location
from spendgate.ledger.spool.writer import EventWriter
from spendgate.ledger.store import Store, open_store
from spendgate.pricing import PriceBook, load_overrides
from spendgate.reconcile.drift import DriftJob
from spendgate.secretbox import KEY_ENV, SecretBox, is_sealed
from spendgate.settings import Settings
from spendgate.ui.app import create_ui_app
from spendgate.watch.live import LiveDetector

log = logging.getLogger("spendgate")


def utc_now() -> datetime:
    return datetime.now(UTC)


class SpendgateApp:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        prices: PriceBook,
        upstreams: Upstreams,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.store = store
        self.owns_store = False
        # The spool makes each request's usage durable locally before the ledger has it; start-up
        # recovers what a killed process left there (requests in flight priced as incomplete).
        self.writer = EventWriter(
            store,
            flush_interval=settings.flush_interval,
            spool_dir=spool_location(settings.spool_dir, settings.db),
            spool_fsync=settings.spool_fsync,
            max_memory_events=settings.spool_memory_events,
            unfinished_event=functools.partial(unfinished_event, prices=prices),
        )
        self.gateway = Gateway(
            upstreams=upstreams,
            prices=prices,
            writer=self.writer,
            clock=clock,
            max_body_bytes=settings.max_body_bytes,
            upstream_timeout=settings.upstream_timeout,
            connect_timeout=settings.connect_timeout,
            stream_deadline=settings.stream_deadline,
            max_stream_event_bytes=settings.max_stream_event_bytes,
            directory=Directory(),
            body_rules=settings.body_attribution,
        )
        # In-process counters until start-up connects the shared ones (SPENDGATE_REDIS_URL).
        # Alerts are evaluated and delivered in the background, never on the request path.
        self.secrets = SecretBox(settings.encryption_key)
        self.dispatcher = AlertDispatcher(store, clock=clock, secrets=self.secrets)
        # Alerts count against the effective limit (approved extra spend, from the rules) and
        # forecast overruns from the scope's daily history (read once a day per budget).
        self.alerts = AlertCenter(
            store,
            self.dispatcher,
            clock=clock,
            approved_extra=lambda budget, window_key: self.enforcer.rules.approved_extra(budget, window_key),
            history=functools.partial(budget_history, store),
        )
        self.enforcer = Enforcer(
            InProcessGate(),
            self._ledger_spend,
            observer=self.alerts,
            reservation_ttl=settings.reservation_ttl,
        )
        self.gateway.enforcer = self.enforcer
        # Learned mode: what requests without max_tokens reserve, refreshed from the ledger.
        self.reservations = LearnedReservations(
            store.recent_output_tokens,  # type: ignore[attr-defined]  # store/output_samples.py
            clock,
            mode=settings.reservation,
            params=OutputModelParams(percentile=Decimal(str(settings.reservation_percentile))),
        )
        self.gateway.reservations = lambda: self.reservations.table
        # The doors for spend made outside the proxy: the same writer, prices, rules, budgets.
        self.recorder = Recorder(self.writer.store_now, self.enforcer, clock)
        self.usage_api = UsageAPI(self.gateway, self.recorder)
        self.traces_api = TracesAPI(self.gateway, self.recorder, self.writer)
        # The counters are asked each time: start-up swaps in the Redis ones.
        self.writer.shipping = ShipFence(lambda: self.enforcer.counters)
        self.resync = CounterResync(
            lambda: self.enforcer.counters,
            lambda: self.enforcer.rules.budgets,
            self._ledger_spend_now,
            interval=settings.counter_resync_interval,
            clock=clock,
        )
        self.batches = BatchDoor(self.gateway, store, self.recorder)
        self.refresher = DirectoryRefresher(store, self._apply_config, interval=settings.refresh_interval)
        self.gateway.refresh_directory = self.refresher.reload_soon
        self.gateway.request_approval = self._request_approval
        # Users, sessions and personal tokens: the admin API and the dashboard (/ui) share them.
        self.authenticator = Authenticator(
            store,  # type: ignore[arg-type]
            SessionPolicy(
                idle_timeout=timedelta(seconds=settings.session_idle_timeout),
                max_age=timedelta(seconds=settings.session_max_age),
                secure=settings.secure_cookies,
            ),
            clock=clock,
            secret_key=settings.secret_key,
        )
        self.admin = AdminAPI(
            store,
            settings.admin_key,
            self.refresher.reload_soon,
            self._budget_statuses,
            authenticator=self.authenticator,
        )
        self.ui = create_ui_app(
            store,
            self.authenticator,
            budget_statuses=self._budget_statuses,
            clock=clock,
            config_changed=self.refresher.reload_soon,
            settings=settings,
        )
        # Live anomaly detection: every replica checks; the ledger makes each anomaly, its
        # webhook and its suspension happen once (store/anomalies.py).
        self.anomalies = LiveDetector(
            store,
            clock,
            AnomalyParams(),
            interval=settings.anomaly_interval,
            trace_suspension=timedelta(hours=settings.trace_suspension_hours),
            before_check=self.writer.flush,
            on_recorded=self.dispatcher.wake,
        )
        self.retention = RetentionJob(store, settings.retention_days, clock) if settings.retention_days else None
        self.drift = (
            DriftJob(store, settings, clock, settings.credentials)
            if settings.reconcile.drift_threshold_percent is not None
            else None
        )
        # Scheduled finance deliveries: every replica checks; the ledger makes each period's
        # delivery happen once (store/finance_deliveries.py).
        self.finance = (
            FinanceDeliveryJob(
                store, settings.finance, clock, on_alerts=self.dispatcher.wake, before_check=self.writer.flush
            )
            if settings.finance.monthly or settings.finance.weekly_summary
            else None
        )
        self.loop: asyncio.AbstractEventLoop | None = None

    def _apply_config(self, directory: Directory, rules: Rules) -> None:
        self.gateway.directory = directory
        self.enforcer.rules = rules
        # The CLI's ingestion and other costs write spend to the ledger and bump the version:
        # in-process counters reload from the ledger (Redis counters the CLI updates itself).
        counters = self.enforcer.gate.counters
        if isinstance(counters, InProcessCounters):
            counters.forget_spent()

    async def _request_approval(self, refusal: BudgetExceeded) -> str:
        budget, window = refusal.budget, refusal.window
        approval = await asyncio.to_thread(
            self.store.request_approval,  # type: ignore[attr-defined]  # store/approvals.py
            budget.name,
            window.key,
            str(budget.scope),
            self.gateway.clock(),
        )
        return approval["id"]

    async def _ledger_spend(self, scope: BudgetScope, window: Window) -> Decimal:
        """A budget window's spend so far, from the ledger: what this process buffered is
        written first, so the sum includes it."""
        await self.writer.flush()
        return await asyncio.to_thread(self.store.spend, scope, window.start, window.end)

    async def _ledger_spend_now(self, scope: BudgetScope, window: Window) -> Decimal:
        """A window's spend as the ledger has it now (the re-sync: never waits for a flush)."""
        return await asyncio.to_thread(self.store.spend, scope, window.start, window.end)

    async def _budget_statuses(self) -> list[dict]:
        """Each budget's window as this gateway sees it: spent from the ledger (exact),
        reserved from the live counters (in-flight requests included), the limit raised by any
        extra spend approved for the window."""
        now = self.gateway.clock()
        rows = []
        for budget in self.enforcer.rules.budgets:
            window = window_for(budget.period, budget.timezone, now)
            spent = await self._ledger_spend(budget.scope, window)
            state = (await self.enforcer.counters.states([counter_key(budget, window)]))[counter_key(budget, window)]
            extra = self.enforcer.rules.approved_extra(budget, window.key)
            rows.append(budget_status(budget, window, spent, state.reserved, now, approved_extra=extra))
        return rows

    def _check_webhook_secrets(self) -> None:
        """Say at start-up what would otherwise surface only when an alert fails or leaks."""
        stored = self.store.webhook_secrets()  # type: ignore[attr-defined]
        clear = sum(1 for value in stored.values() if not is_sealed(value))
        if clear:
            log.warning(
                "%d webhook secret(s) are stored in clear in the ledger: set %s and run `spendgate webhooks rekey`",
                clear,
                KEY_ENV,
            )
        if len(stored) > clear and not self.secrets.has_key:
            log.warning(
                "%d webhook secret(s) are encrypted and %s is not set: their alerts fail until it is",
                len(stored) - clear,
                KEY_ENV,
            )

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.refresher.load_now()
        await asyncio.to_thread(self._check_webhook_secrets)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.settings.connect_timeout, sock_read=self.settings.upstream_timeout
        )
        # One pooled, keep-alive session for every upstream; no per-request set-up.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        self.gateway.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        if self.settings.redis_url:
            from spendgate.budgets.redis_counters import RedisGate, ledger_namespace

            ledger_id = await asyncio.to_thread(self.store.ledger_id)
            namespace = ledger_namespace(self.settings.redis_namespace, ledger_id)
            self.enforcer.gate = await RedisGate.connect(self.settings.redis_url, namespace=namespace)
        self.writer.start()
        self.refresher.start()
        self.enforcer.start()
        self.resync.start()
        self.reservations.start()
        self.alerts.start()
        if self.settings.anomaly_interval > 0:
            self.anomalies.start()
        if self.retention is not None:
            self.retention.start()
        if self.drift is not None:
            self.drift.start()
        if self.finance is not None:
            self.finance.start()

    async def shutdown(self) -> None:
        if self.retention is not None:
            await self.retention.aclose()
        if self.drift is not None:
            await self.drift.aclose()
        if self.finance is not None:
            await self.finance.aclose()
        await self.refresher.aclose()
        await self.anomalies.aclose()
        await self.resync.aclose()
        await self.reservations.aclose()
        if self.gateway.session is not None:
            await self.gateway.session.close()
        await self.writer.aclose()
        # After the writer: its last batches are confirmed to the counters (see budgets/resync.py).
        await self.enforcer.aclose()
        await self.alerts.aclose()
        if self.owns_store:
            self.store.close()
        log.info("spendgate stopped; %d events written", self.writer.written)

    async def flush(self) -> None:
        """Write every buffered event now (tests and the demo use it)."""
        await self.writer.flush()

    def flush_threadsafe(self, timeout: float = 10.0) -> None:
        """``flush`` from another thread than the server's (tests, the demo)."""
        assert self.loop is not None, "the app has not started"
        asyncio.run_coroutine_threadsafe(self.flush(), self.loop).result(timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        route = ROUTES.get(path)
        try:
            if path == "/v1/usage":
                if scope["method"] != "POST":
                    await send_error(send, method_not_allowed(scope["method"], path), OPENAI)
                    return
                await self.usage_api(scope, receive, send)
            elif path == "/v1/traces":
                await self.traces_api(scope, receive, send)
            elif route is not None:
                if scope["method"] != route.method:
                    await send_error(send, method_not_allowed(scope["method"], path), route.family)
                    return
                await self.gateway.handle(scope, receive, send, route)
            elif path.startswith("/admin/"):
                await self.admin(scope, receive, send)
            elif path.startswith("/ui") and (len(path) == 3 or path[3] == "/"):
                await self.ui(scope, receive, send)
            elif path in ("/healthz", "/health"):
                # dead_letters: events the ledger refused, set aside (`spendgate dead-letters list`).
                body = {
                    "status": "ok",
                    "pending_events": self.writer.pending,
                    "dead_letters": self.writer.dead_letter_count,
                }
                await send_response(send, 200, JSON_HEADERS, orjson.dumps(body))
            else:
                await self._native(scope, receive, send)
        except ClientGone:
            return

    async def _native(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A batch API path (gateway/batches.py), a Gemini or Azure OpenAI native path
        (gateway/native.py), else a 404."""
        path = scope["path"]
        call = match_batch_path(path)
        # Anthropic's own Files API shares OpenAI's /v1/files paths: its SDK's anthropic-version says
        # which it is, and it is not served.
        if call is not None and not (call.family == OPENAI and _family_of(scope) == ANTHROPIC):
            await self.batches.handle(scope, receive, send, call)
            return
        try:
            native = match_native(path, scope.get("query_string", b""), self.gateway.upstreams)
        except GatewayError as error:
            await send_error(send, error, _family_of(scope))
            return
        if native is None:
            await send_error(send, not_found(path), _family_of(scope))
        elif scope["method"] != "POST":
            await send_error(send, method_not_allowed(scope["method"], path), native.route.family)
        else:
            await self.gateway.handle(scope, receive, send, native.route, native)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _family_of(scope: Scope) -> str:
    """Whose error shape a request we do not serve gets: Anthropic's for its paths and for its
    SDK (which always sends anthropic-version), OpenAI's otherwise."""
    if scope["path"].startswith("/v1/messages"):
        return ANTHROPIC
    if is_gemini_path(scope["path"]):
        return GEMINI
    if any(name == b"anthropic-version" for name, _ in scope["headers"]):
        return ANTHROPIC
    return OPENAI


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    prices: PriceBook | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> SpendgateApp:
    upstreams = Upstreams(settings)
    owns_store = store is None
    if store is None:
        store = open_store(settings.db)
    if prices is None:
        overrides = load_overrides(settings.prices) if settings.prices else ()
        prices = PriceBook(overrides, genai_provider_ids=upstreams.genai_provider_ids)
    app = SpendgateApp(settings, store, prices, upstreams, clock)
    app.owns_store = owns_store
    return app

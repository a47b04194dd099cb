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
from spendgate.attribution import Directory
from spendgate.budgets.enforcer import Enforcer, counter_key
from spendgate.budgets.gate import InProcessGate
from spendgate.budgets.model import Scope as BudgetScope
from spendgate.budgets.rules import Rules
from spendgate.budgets.status import budget_status
from spendgate.budgets.windows import Window, window_for
from spendgate.gateway.accounting import unfinished_event
from spendgate.gateway.admin import AdminAPI
from spendgate.gateway.asgi import JSON_HEADERS, ClientGone, Receive, Scope, Send, send_error, send_response
from spendgate.gateway.directory import DirectoryRefresher
from spendgate.gateway.errors import ANTHROPIC, OPENAI, method_not_allowed, not_found
from spendgate.gateway.proxy import Gateway
from spendgate.gateway.routes import ROUTES
from spendgate.gateway.upstream import Upstreams
from spendgate.ledger.retention import RetentionJob
from spendgate.ledger.spool.spool import spool_location
from spendgate.ledger.spool.writer import EventWriter
from spendgate.ledger.store import Store, open_store
from spendgate.pricing import PriceBook, load_overrides
from spendgate.settings import Settings
from spendgate.ui.app import create_ui_app

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
        )
        # In-process counters until start-up connects the shared ones (SPENDGATE_REDIS_URL).
        # Alerts are evaluated and delivered in the background, never on the request path.
        self.alerts = AlertCenter(store, AlertDispatcher(store, clock=clock), clock=clock)
        self.enforcer = Enforcer(
            InProcessGate(),
            self._ledger_spend,
            observer=self.alerts,
            reservation_ttl=settings.reservation_ttl,
        )
        self.gateway.enforcer = self.enforcer
        self.refresher = DirectoryRefresher(store, self._apply_config, interval=settings.refresh_interval)
        self.gateway.refresh_directory = self.refresher.reload_soon
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
        )
        self.retention = RetentionJob(store, settings.retention_days, clock) if settings.retention_days else None
        self.loop: asyncio.AbstractEventLoop | None = None

    def _apply_config(self, directory: Directory, rules: Rules) -> None:
        self.gateway.directory = directory
        self.enforcer.rules = rules

    async def _ledger_spend(self, scope: BudgetScope, window: Window) -> Decimal:
        """A budget window's spend so far, from the ledger: what this process buffered is
        written first, so the sum includes it."""
        await self.writer.flush()
        return await asyncio.to_thread(self.store.spend, scope, window.start, window.end)

    async def _budget_statuses(self) -> list[dict]:
        """Each budget's window as this gateway sees it: spent from the ledger (exact),
        reserved from the live counters (in-flight requests included)."""
        now = self.gateway.clock()
        rows = []
        for budget in self.enforcer.rules.budgets:
            window = window_for(budget.period, budget.timezone, now)
            spent = await self._ledger_spend(budget.scope, window)
            state = (await self.enforcer.counters.states([counter_key(budget, window)]))[counter_key(budget, window)]
            rows.append(budget_status(budget, window, spent, state.reserved, now))
        return rows

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.refresher.load_now()
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.settings.connect_timeout, sock_read=self.settings.upstream_timeout
        )
        # One pooled, keep-alive session for every upstream; no per-request set-up.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        self.gateway.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        if self.settings.redis_url:
            from spendgate.budgets.redis_counters import RedisGate

            self.enforcer.gate = await RedisGate.connect(self.settings.redis_url)
        self.writer.start()
        self.refresher.start()
        self.enforcer.start()
        self.alerts.start()
        if self.retention is not None:
            self.retention.start()

    async def shutdown(self) -> None:
        if self.retention is not None:
            await self.retention.aclose()
        await self.refresher.aclose()
        await self.enforcer.aclose()
        if self.gateway.session is not None:
            await self.gateway.session.close()
        await self.writer.aclose()
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
            if route is not None:
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
                await send_error(send, not_found(path), _family_of(scope))
        except ClientGone:
            return

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

"""Running the gateway under uvicorn (uvloop + httptools: the fastest stack measured here)."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from spendgate.connections import LimitedConfig, fit_open_files, limits_from
from spendgate.gateway import SpendgateApp, create_app
from spendgate.pricing import load_overrides
from spendgate.redact import redact_url
from spendgate.settings import Settings, SettingsError, load_settings

# How `serve --workers N` hands its command line to the worker processes uvicorn starts:
# each worker resolves the same flags, environment and config file into the same Settings.
WORKER_FLAGS_ENV = "SPENDGATE_WORKER_FLAGS"


# The server stack, one process or many (chosen by measurement: bench/compare/RESULTS.md).
SERVER_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "timeout_keep_alive": 30,
        # spendgate never reads the client's address, so uvicorn's X-Forwarded-For rewriting
        # (a middleware call on every request) buys nothing.
        "proxy_headers": False,
    }
)

log = logging.getLogger("spendgate")


def uvicorn_config(app, host: str, port: int, log_level: str = "warning", **kw) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, **{**SERVER_OPTIONS, "log_level": log_level, **kw})


def gateway_config(app: Any, settings: Settings, log_level: str = "warning", **kw: Any) -> LimitedConfig:
    """The gateway's server: SERVER_OPTIONS under the connection limits of ``settings``."""
    options = {**SERVER_OPTIONS, "host": settings.host, "port": settings.port, "log_level": log_level, **kw}
    return LimitedConfig(app, limits=fit_open_files(limits_from(settings)), **options)


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that says so once it is really serving: started up AND bound."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._announce()


def _logging(log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _where(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    extra = f", shared counters {redact_url(settings.redis_url)}" if settings.redis_url else ""
    return f"http://{host}:{settings.port} (ledger {redact_url(settings.db)}{extra})"


def run_gateway(
    settings: Settings,
    log_level: str = "info",
    *,
    workers: int = 1,
    flags: dict[str, Any] | None = None,
    config_path: str | None = None,
) -> None:
    if settings.prices:
        # A bad overrides file is reported here, once (PriceFileError), before anything starts
        # and not by every worker process.
        load_overrides(settings.prices)
    _logging(log_level)
    if workers > 1 and not settings.redis_url:
        raise SettingsError(
            "--workers > 1 needs SPENDGATE_REDIS_URL: budget and rate-limit counters must be shared by the "
            "worker processes (Redis holds them; without it each worker would enforce its own budgets)"
        )
    # uvicorn turns SIGINT/SIGTERM into a graceful shutdown: the lifespan shutdown drains
    # the ledger writer before the process exits (in every worker).
    if workers <= 1:
        config = gateway_config(create_app(settings), settings, log_level=log_level)
        server = _AnnouncingServer(config, lambda: log.info("spendgate listening on %s", _where(settings)))
        server.run()  # a port already taken: uvicorn logs it and exits with status 1
        return
    os.environ[WORKER_FLAGS_ENV] = json.dumps({"flags": flags or {}, "config": config_path, "log_level": log_level})
    config = gateway_config("spendgate.server:worker_app", settings, log_level=log_level, factory=True, workers=workers)
    sock = config.bind_socket()  # here, once, for every worker; exits with status 1 if taken
    log.info("spendgate listening on %s with %d worker processes", _where(settings), workers)
    Multiprocess(config, sockets=[sock]).run()


def worker_app() -> SpendgateApp:
    """The app of one `serve --workers N` process (uvicorn imports and calls this)."""
    handed = json.loads(os.environ[WORKER_FLAGS_ENV])
    _logging(handed["log_level"])
    return create_app(load_settings(handed["flags"], config_path=handed["config"]))

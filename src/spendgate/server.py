"""Running the gateway under uvicorn (uvloop + httptools: the fastest stack measured here)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import uvicorn

from spendgate.gateway import SpendgateApp, create_app
from spendgate.pricing import load_overrides
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


def uvicorn_config(app, host: str, port: int, log_level: str = "warning", **kw) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, **{**SERVER_OPTIONS, "log_level": log_level, **kw})


def _logging(log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    log = logging.getLogger("spendgate")
    log.info("spendgate listening on http://%s:%d (ledger %s)", settings.host, settings.port, settings.db)
    # uvicorn turns SIGINT/SIGTERM into a graceful shutdown: the lifespan shutdown drains
    # the ledger writer before the process exits (in every worker).
    if workers <= 1:
        app = create_app(settings)
        uvicorn.Server(uvicorn_config(app, settings.host, settings.port, log_level=log_level)).run()
        return
    if not settings.redis_url:
        raise SettingsError(
            "--workers > 1 needs SPENDGATE_REDIS_URL: budget and rate-limit counters must be shared by the "
            "worker processes (Redis holds them; without it each worker would enforce its own budgets)"
        )
    os.environ[WORKER_FLAGS_ENV] = json.dumps({"flags": flags or {}, "config": config_path, "log_level": log_level})
    log.info("starting %d worker processes", workers)
    uvicorn.run(
        "spendgate.server:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=log_level,
        **SERVER_OPTIONS,
    )


def worker_app() -> SpendgateApp:
    """The app of one `serve --workers N` process (uvicorn imports and calls this)."""
    handed = json.loads(os.environ[WORKER_FLAGS_ENV])
    _logging(handed["log_level"])
    return create_app(load_settings(handed["flags"], config_path=handed["config"]))

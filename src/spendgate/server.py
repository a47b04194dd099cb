"""Running the gateway under uvicorn (uvloop + httptools: the fastest stack measured here)."""

from __future__ import annotations

import logging

import uvicorn

from spendgate.gateway import create_app
from spendgate.settings import Settings


def uvicorn_config(app, host: str, port: int, log_level: str = "warning", **kw) -> uvicorn.Config:
    options = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "log_level": log_level,
        "access_log": False,
        "timeout_keep_alive": 30,
        **kw,
    }
    return uvicorn.Config(app, host=host, port=port, **options)


def run_gateway(settings: Settings, log_level: str = "info") -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    logging.getLogger("spendgate").info(
        "spendgate listening on http://%s:%d (ledger %s)", settings.host, settings.port, settings.db
    )
    # uvicorn turns SIGINT/SIGTERM into a graceful shutdown: the lifespan shutdown drains
    # the ledger writer before the process exits.
    uvicorn.Server(uvicorn_config(app, settings.host, settings.port, log_level=log_level)).run()

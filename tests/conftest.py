"""Real servers on loopback: the simulated provider, and the gateway in front of it.

The gateway under test is the real ASGI app under uvicorn in a thread, with a real ledger:
every gateway test runs twice, on SQLite in a temporary folder and on PostgreSQL in a fresh
schema of its own; the clients are the official SDKs.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anthropic
import openai
import pytest

from spendgate import management
from spendgate.connections import LimitedConfig, limits_from
from spendgate.gateway import SpendgateApp, create_app
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.pricing import PriceBook
from spendgate.reports.spec import ReportQuery
from spendgate.settings import ProviderConfig, Settings
from spendgate.simulator import AdminApi, SimulatorLog, create_simulator_app, serve_in_thread

UPSTREAM_OPENAI_KEY = "sk-upstream-openai-test"
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-test"


@dataclass
class Simulator:
    url: str
    log: SimulatorLog
    admin: AdminApi  # the admin usage and cost reports it serves (an empty dataset to start)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    log = SimulatorLog()
    app = create_simulator_app(log)
    server = serve_in_thread(app)
    yield Simulator(server.url, log, app.admin)
    server.stop()


@dataclass
class Gateway:
    url: str
    app: SpendgateApp
    store: Any  # SQLiteStore or PostgresStore: the backend this test runs on
    sim: Simulator
    db_url: str
    _clients: list[Any] = field(default_factory=list)

    # --- set-up ------------------------------------------------------------------------
    def team(self, name: str, cost_center: str | None = None) -> None:
        management.create_team(self.store, name, cost_center)

    def project(self, name: str, team: str) -> None:
        management.create_project(self.store, name, team)

    def key(self, name: str, **kwargs: Any) -> str:
        return management.create_key(self.store, name, **kwargs).secret

    def wait_for_directory(self, timeout: float = 5.0) -> None:
        """Until the running gateway has picked up every key/project change made so far."""
        deadline = time.monotonic() + timeout
        while self.app.gateway.directory.version != self.store.config_version():
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not pick up the configuration change")
            time.sleep(0.02)

    # --- clients -----------------------------------------------------------------------
    def openai(self, key: str, **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, **kwargs)
        self._clients.append(client)
        return client

    def async_openai(self, key: str, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, **kwargs)

    def anthropic(self, key: str, **kwargs: Any) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, **kwargs)
        self._clients.append(client)
        return client

    def async_anthropic(self, key: str, **kwargs: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0, **kwargs)

    # --- the ledger --------------------------------------------------------------------
    def flush(self) -> None:
        # Generous: on a loaded 2-core machine a flush racing back-to-back re-syncs (which the
        # writer waits for, so nothing is counted twice) took over 10 s once.
        self.app.flush_threadsafe(timeout=60.0)

    def events(self) -> list[dict[str, Any]]:
        """Every event, oldest first."""
        self.flush()
        return list(reversed(self.store.list_events(100_000)))

    def report(self, *by: str) -> dict[str, Any]:
        self.flush()
        return self.store.report(ReportQuery(by=by)).as_json()


BACKENDS = ("sqlite", "postgresql")


def open_test_store(db_url: str) -> Any:
    if db_url.startswith("sqlite:"):
        return SQLiteStore.from_url(db_url)
    from spendgate.ledger.store.dialects.postgresql import PostgresStore

    return PostgresStore(db_url)


@pytest.fixture(params=BACKENDS)
def make_gateway(
    request: pytest.FixtureRequest, tmp_path: Path, simulator: Simulator
) -> Iterator[Callable[..., Gateway]]:
    """Gateways on the test's backend: each call gets a new empty ledger (a SQLite file, or a
    PostgreSQL schema), unless ``db=`` names one (another gateway's ``db_url``)."""
    running: list[tuple[Any, Gateway]] = []
    # Only PostgreSQL runs ask for (and so may skip on) the server.
    new_postgres_db = request.getfixturevalue("postgres_db") if request.param == "postgresql" else None

    def new_db_url() -> str:
        if new_postgres_db is not None:
            return new_postgres_db()
        return f"sqlite:///{tmp_path / f'ledger{len(running)}.db'}"

    def make(
        *,
        clock: Callable[[], datetime] | None = None,
        prices: PriceBook | None = None,
        providers: dict[str, ProviderConfig] | None = None,
        credentials: dict[str, str] | None = None,
        **settings_kwargs: Any,
    ) -> Gateway:
        db_url = settings_kwargs.pop("db", None) or new_db_url()
        values: dict[str, Any] = {
            "db": db_url,
            "openai_base_url": f"{simulator.url}/v1",
            "anthropic_base_url": simulator.url,
            "credentials": credentials
            if credentials is not None
            else {"OPENAI_API_KEY": UPSTREAM_OPENAI_KEY, "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_KEY},
            "providers": providers or {},
            "flush_interval": 0.05,
            "refresh_interval": 0.2,
        }
        # One spool folder per database, inside the test's own folder (never the cwd).
        values["spool_dir"] = str(tmp_path / "spool" / hashlib.sha256(db_url.encode()).hexdigest()[:12])
        settings = Settings(**{**values, **settings_kwargs})
        store = open_test_store(db_url)
        app = create_app(settings, store=store, prices=prices, **({"clock": clock} if clock else {}))
        # Served as `spendgate serve` serves it: under the gateway's connection limits.
        server = serve_in_thread(app, lifespan="on", config_class=partial(LimitedConfig, limits=limits_from(settings)))
        gateway = Gateway(server.url, app, store, simulator, db_url)
        running.append((server, gateway))
        return gateway

    yield make
    for server, gateway in running:
        for client in gateway._clients:
            client.close()
        server.stop(timeout=10)
        gateway.store.close()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()


def _service_or_skip(name: str, url: str, probe: Callable[[], None]) -> str:
    """Tests use real servers. Absent outside CI: skipped with the reason. Under CI: a failure."""
    try:
        probe()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{name} at {url} is required under CI and is not reachable: {exc}")
        pytest.skip(f"{name} at {url} is not reachable ({exc}); start it to run these tests")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    # redis-hygiene: the fixture every test reaches Redis through (each run sets its own database)
    url = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

    def probe() -> None:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    return _service_or_skip("Redis", url, probe)


# --- PostgreSQL ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server (SPENDGATE_TEST_POSTGRES_URL), probed once per session."""
    url = os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

    def probe() -> None:
        import psycopg

        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.Error as exc:
            raise ConnectionError(" ".join(str(exc).split())) from None

    return _service_or_skip("PostgreSQL", url, probe)


def schema_url(server_url: str, schema: str) -> str:
    """The server URL pointed at one schema (search_path), its connections named after it."""
    options = quote(f"-csearch_path={schema}", safe="")
    return f"{server_url}{'&' if '?' in server_url else '?'}options={options}&application_name={schema}"


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL schemas (one per call) and returns a database URL for
    each; they are dropped when the test ends, whatever connections the test left open."""
    import psycopg

    schemas: list[str] = []

    def new() -> str:
        schema = f"sgtest_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        return schema_url(postgres_url, schema)

    yield new
    if schemas:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (schema,),
                )
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

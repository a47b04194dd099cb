"""The things measured: the static upstream, the hops in front of it, and how to check a ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from compare import fixtures
from compare.procs import Service, free_port

HERE = Path(__file__).resolve().parent
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-litellm-bench"


@dataclass
class LedgerCount:
    events: int
    distinct: int
    ok: int  # events of requests answered 200


@dataclass
class Running:
    name: str
    port: int
    services: list[Service]
    auth: str | None = None
    stream_body: str = fixtures.STREAM_REQUEST_BODY
    accept_stream: bool = True  # ask for the SSE answer with `Accept: text/event-stream`
    count_ledger: Callable[[], LedgerCount] | None = None
    pg: tuple[str, str] | None = None  # (admin URL, database) of a PostgreSQL ledger
    redis_url: str | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.services[0].pid

    def stop(self) -> list[int | None]:
        """Stop the processes (clean-up, such as dropping a database, is left to ``cleanup``)."""
        return [service.stop() for service in self.services]

    def smoke(self) -> dict:
        """One request before any load: it must be a priced 200 with the upstream's usage."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            data=fixtures.REQUEST_BODY.encode(),
            headers={
                "content-type": "application/json",
                **({"authorization": f"Bearer {self.auth}"} if self.auth else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
            headers = {k.lower(): v for k, v in response.headers.items()}
        if body.get("usage", {}).get("prompt_tokens") != fixtures.USAGE["prompt_tokens"]:
            raise RuntimeError(f"{self.name}: unexpected answer {body}")
        return headers


# --- nginx -------------------------------------------------------------------------------


def _nginx_conf(workdir: Path, name: str, port: int, server_body: str, http_extra: str = "") -> Path:
    temp = workdir / f"{name}-temp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = workdir / f"{name}.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {workdir}/{name}.pid;
error_log {workdir}/{name}-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    {http_extra}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{server_body}
    }}
}}
"""
    )
    return conf


def _nginx(nginx: str, workdir: Path, name: str, conf: Path, port: int) -> Service:
    service = Service(
        name, [nginx, "-p", str(workdir), "-e", f"{workdir}/{name}-error.log", "-c", str(conf)], log_dir=workdir
    )
    service.wait_listening(port)
    return service


def static_upstream(nginx: str, workdir: Path) -> Running:
    """nginx answering from memory: the chat completion (with usage) or, for a stream, an SSE body
    (asked for by `Accept: text/event-stream`, or by the path /sse/v1/…)."""
    port = free_port()
    completion = fixtures.nginx_quoted(fixtures.COMPLETION_BODY)
    sse = fixtures.nginx_quoted(fixtures.SSE_BODY)
    body = f"""
        location = /v1/chat/completions {{
            if ($http_accept ~* "event-stream") {{ rewrite ^ /internal/sse last; }}
            default_type application/json;
            return 200 {completion};
        }}
        location = /sse/v1/chat/completions {{ default_type text/event-stream; return 200 {sse}; }}
        location = /internal/sse {{ internal; default_type text/event-stream; return 200 {sse}; }}
"""
    conf = _nginx_conf(workdir, "static-upstream", port, body)
    return Running("static upstream (nginx, direct)", port, [_nginx(nginx, workdir, "static-upstream", conf, port)])


def nginx_proxy(nginx: str, workdir: Path, upstream_port: int) -> Running:
    port = free_port()
    extra = f"upstream static {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}"
    body = """
        location / {
            proxy_pass http://static;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
"""
    conf = _nginx_conf(workdir, "nginx-proxy", port, body, extra)
    return Running("nginx proxy hop", port, [_nginx(nginx, workdir, "nginx-proxy", conf, port)])


# --- the bare Python pass-through ---------------------------------------------------------------


def passthrough(workdir: Path, upstream_port: int) -> Running:
    port = free_port()
    argv = [
        sys.executable,
        str(HERE / "passthrough.py"),
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
    ]
    service = Service("passthrough", argv, log_dir=workdir, cwd=workdir)
    service.wait_listening(port)
    return Running("Python pass-through (floor)", port, [service])


# --- spendgate ---------------------------------------------------------------------------------


def _spendgate_cli(db_url: str, workdir: Path, *words: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "spendgate", *words, "--db", db_url],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "SPENDGATE_DB": db_url},
    )
    if done.returncode != 0:
        raise RuntimeError(f"spendgate {' '.join(words)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _enforce_everything(db_url: str, workdir: Path) -> str:
    """A key of a project of a team, under an org budget, a daily project budget and a rate limit:
    every request authenticates, is attributed, reserves, settles and is counted."""
    cli = lambda *words: _spendgate_cli(db_url, workdir, *words)  # noqa: E731
    cli("teams", "create", "bench")
    cli("projects", "create", "bench", "--team", "bench")
    cli("budgets", "create", "--scope", "org", "--limit", "100000000", "--name", "org")
    cli(
        "budgets",
        "create",
        "--scope",
        "project:bench",
        "--limit",
        "100000000",
        "--period",
        "day",
        "--name",
        "project-day",
    )
    cli("limits", "create", "--scope", "project:bench", "--rpm", "1000000000", "--tpm", "1000000000000")
    return json.loads(cli("keys", "create", "--name", "bench", "--project", "bench", "--json"))["key"]


def _serve(
    name: str, workdir: Path, db_url: str, upstream_port: int, extra_env: dict[str, str], *extra_args: str
) -> tuple[Service, int]:
    port = free_port()
    # Only what is set here: no SPENDGATE_* of the caller's environment leaks into the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    env.update(
        SPENDGATE_DB=db_url,
        SPENDGATE_OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY=UPSTREAM_KEY,
        SPENDGATE_SPOOL_DIR=str(workdir / f"{name}.spool"),
        **extra_env,
    )
    argv = [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--log-level", "warning", *extra_args]
    service = Service(name, argv, log_dir=workdir, env=env, cwd=workdir)
    service.wait_listening(port)
    return service, port


def _sqlite_ledger(path: Path) -> Callable[[], LedgerCount]:
    def count() -> LedgerCount:
        with sqlite3.connect(path) as db:
            row = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT id), COALESCE(SUM(http_status = 200), 0) FROM usage_events"
            ).fetchone()
        return LedgerCount(*row)

    return count


def spendgate_sqlite(workdir: Path, upstream_port: int, name: str = "spendgate-sqlite") -> Running:
    path = workdir / f"{name}.db"
    db_url = f"sqlite:///{path}"
    key = _enforce_everything(db_url, workdir)
    service, port = _serve(name, workdir, db_url, upstream_port, {})

    return Running("spendgate (SQLite)", port, [service], auth=key, count_ledger=_sqlite_ledger(path))


def spendgate_workers(workdir: Path, upstream_port: int, redis_url: str, workers: int) -> Running:
    """spendgate (SQLite) with ``--workers N``: N processes on one port sharing the ledger file
    and, as ``--workers`` requires, their budget and rate-limit counters in Redis."""
    import redis

    name = f"spendgate-workers-{workers}"
    path = workdir / f"{name}.db"
    db_url = f"sqlite:///{path}"
    redis.Redis.from_url(redis_url).flushdb()
    key = _enforce_everything(db_url, workdir)
    service, port = _serve(
        name, workdir, db_url, upstream_port, {"SPENDGATE_REDIS_URL": redis_url}, "--workers", str(workers)
    )

    return Running(
        f"spendgate (SQLite + Redis, {workers} worker{'s' if workers > 1 else ''})",
        port,
        [service],
        auth=key,
        count_ledger=_sqlite_ledger(path),
        cleanup=[lambda: redis.Redis.from_url(redis_url).flushdb()],
    )


def spendgate_postgres(workdir: Path, upstream_port: int, pg_url: str, redis_url: str) -> Running:
    """A database created for this run (and dropped after it), counters in a Redis database
    emptied first."""
    import psycopg
    import redis

    database = f"spendgate_bench_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    db_url = pg_url.rsplit("/", 1)[0] + "/" + database

    def drop() -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        redis.Redis.from_url(redis_url).flushdb()

    try:
        redis.Redis.from_url(redis_url).flushdb()
        _spendgate_cli(db_url, workdir, "migrate")
        key = _enforce_everything(db_url, workdir)
        service, port = _serve("spendgate-postgres", workdir, db_url, upstream_port, {"SPENDGATE_REDIS_URL": redis_url})
    except Exception:
        drop()
        raise

    def count() -> LedgerCount:
        with psycopg.connect(db_url) as db:
            row = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT id), COUNT(*) FILTER (WHERE http_status = 200) FROM usage_events"
            ).fetchone()
        return LedgerCount(*row)

    return Running(
        "spendgate (PostgreSQL + Redis)",
        port,
        [service],
        auth=key,
        count_ledger=count,
        pg=(pg_url, database),
        redis_url=redis_url,
        cleanup=[drop],
    )


# --- LiteLLM -------------------------------------------------------------------------------------

LITELLM_ENV = {
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price map from the internet at start-up
    "LITELLM_MODE": "PRODUCTION",  # no .env loading
    "DISABLE_ADMIN_UI": "True",
    "NO_DOCS": "True",
    "NO_REDOC": "True",
    "USE_DDTRACE": "False",
    "STORE_MODEL_IN_DB": "False",
}


def litellm(program: Path, workdir: Path, upstream_port: int) -> Running:
    """LiteLLM's proxy with no database, one worker, no callbacks: as light as it can be made."""
    port = free_port()
    model = lambda name, base: (  # noqa: E731
        f"  - model_name: {name}\n"
        f"    litellm_params:\n"
        f"      model: openai/{fixtures.MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}{base}\n"
        f"      api_key: {UPSTREAM_KEY}\n"
    )
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        + model(fixtures.MODEL, "/v1")
        + model(fixtures.LITELLM_STREAM_MODEL, "/sse/v1")
        + "litellm_settings:\n"
        "  set_verbose: false\n"
        "  json_logs: false\n"
        "  drop_params: true\n"
        "  turn_off_message_logging: true\n"
        "  callbacks: []\n"
        "  success_callback: []\n"
        "  failure_callback: []\n"
        "  request_timeout: 600\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "  disable_spend_logs: true\n"
        "  disable_error_logs: true\n"
        "  background_health_checks: false\n"
        "  disable_prisma_schema_update: true\n"
    )
    # uvicorn's access log off (one line per request otherwise): warnings only.
    log_config = workdir / "litellm-logging.json"
    quiet = {"level": "WARNING", "handlers": ["default"], "propagate": False}
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                "loggers": {name: quiet for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "LiteLLM")},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(LITELLM_ENV)
    env["PATH"] = f"{program.parent}:{env.get('PATH', '')}"
    argv = [
        str(program),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--log_config",
        str(log_config),
        "--keepalive_timeout",
        "30",
    ]
    service = Service("litellm", argv, log_dir=workdir, env=env, cwd=workdir)
    service.wait_listening(port, timeout=180)
    stream_body = json.dumps({**fixtures.STREAM_REQUEST, "model": fixtures.LITELLM_STREAM_MODEL}, separators=(",", ":"))
    return Running(
        "LiteLLM proxy 1.80.0", port, [service], auth=LITELLM_MASTER_KEY, stream_body=stream_body, accept_stream=False
    )

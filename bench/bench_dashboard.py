"""The dashboard's page times over a large ledger.

    python bench/bench_dashboard.py [--events 1000000] [--backend sqlite|postgresql|both]
        [--days 120] [--sqlite-path /work/bench-dashboard.db]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--keep] [--runs 5]

Fills a fresh ledger with ``--events`` synthetic events (``synthetic_events``: 36 projects of
12 teams, 400 customers, 12 models over ``--days`` days from 2025-01-01; ``--events 0`` reuses
a ledger kept with ``--keep``), registers the org's teams and projects, an org admin, a viewer
of one project and three budgets, then serves the real dashboard app (``create_ui_app``) in
process and times full HTTP page answers (query + rendering) through Starlette's test client,
logged in as each user: the first answer on a fresh store ("cold") and the median of
``--runs`` more ("warm"). The dashboard's clock is the last synthetic day, so the default
30-day range is full of traffic.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bench_ledger_scale import drop_postgres_schema, execute, ingest, postgres_store, sqlite_store
from spendgate.access import accounts
from spendgate.access.authenticator import Authenticator
from spendgate.access.passwords import Passwords
from spendgate.access.sessions import SessionPolicy
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.status import budget_status
from spendgate.budgets.windows import window_for
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.ui.app import create_ui_app
from synthetic_events import Synthetic

START = datetime(2025, 1, 1, tzinfo=UTC)
SCHEMA = "bench_dashboard"
PASSWORD = "bench password 123"


def register_org(store: Any, days: int) -> str:
    """Teams, projects, users and budgets for the synthetic org; returns the viewer's project."""
    projects = Synthetic(START, days).projects
    for team in sorted({p.team for p in projects}):
        store.create_team(team)
    for project in projects:
        store.create_project(project.name, project.team)
    viewed = projects[0].name
    passwords = Passwords()
    accounts.create_user(store, passwords, "admin", PASSWORD, admin=True)
    accounts.create_user(store, passwords, "viewer", PASSWORD)
    accounts.grant(store, "viewer", "project", viewed, "viewer")
    for name, scope in (("org", "org"), ("team", f"team:{projects[0].team}"), ("project", f"project:{viewed}")):
        store.create_budget(Budget(f"bench-{name}", Scope.parse(scope), Decimal(1000)))
    return viewed


def ui_app(store: Any, now: datetime) -> Any:
    """The dashboard as the gateway builds it; budget statuses as the gateway computes them
    (spent from the ledger; nothing reserved: no request is in flight)."""

    async def statuses() -> list[dict[str, Any]]:
        rows = []
        for budget in store.list_budgets():
            window = window_for(budget.period, budget.timezone, now)
            spent = store.spend(budget.scope, window.start, window.end)
            rows.append(budget_status(budget, window, spent, Decimal(0), now))
        return rows

    policy = SessionPolicy(idle_timeout=timedelta(hours=1), max_age=timedelta(hours=8), secure=False)
    authenticator = Authenticator(store, policy, clock=lambda: now)
    return create_ui_app(store, authenticator, budget_statuses=statuses, clock=lambda: now)


def logged_in(app: Any, user: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    form = client.get("/ui/login").text
    token = re.search(r'name="csrf_token" value="([^"]*)"', form)
    assert token, form
    answer = client.post(
        "/ui/login", data={"username": user, "password": PASSWORD, "csrf_token": token[1]}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return client


def timed(client: TestClient, path: str) -> float:
    t = time.perf_counter()
    answer = client.get(path)
    elapsed = (time.perf_counter() - t) * 1000
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return elapsed


def pages(viewed: str, feature: str, days: int) -> list[tuple[str, str]]:
    first = START.date().isoformat()
    return [
        ("overview, 30 days by day", "/ui/"),
        (f"overview, {days} days by month", f"/ui/?since={first}&grain=month"),
        ("overview CSV (projects)", "/ui/?csv=projects"),
        ("spend (org, by team)", "/ui/spend"),
        ("team page", "/ui/teams/team-00"),
        (f"project page ({viewed})", f"/ui/projects/{viewed}"),
        ("project by customer", f"/ui/projects/{viewed}?by=customer"),
        (f"project > feature {feature}", f"/ui/projects/{viewed}?feature={feature}"),
        ("budgets", "/ui/budgets"),
        ("keys", "/ui/keys"),
    ]


def run(open_store: Callable[[], Any], args: argparse.Namespace, viewed: str, feature: str) -> None:
    now = START + timedelta(days=args.days - 1, hours=20)
    print(f"{'page':<34} {'user':<7} {'cold':>10} {'warm (median)':>14}")
    for user in ("admin", "viewer"):
        for label, path in pages(viewed, feature, args.days):
            store = open_store()
            try:
                client = logged_in(ui_app(store, now), user)
                cold = timed(client, path)
                warm = statistics.median(timed(client, path) for _ in range(args.runs))
            finally:
                store.close()
            print(f"{label:<34} {user:<7} {cold:>8.1f} ms {warm:>11.1f} ms", flush=True)


def bench(backend: str, args: argparse.Namespace) -> None:
    print(f"\n== {backend}: {args.events:,} events over {args.days} days ==", flush=True)
    if backend == "sqlite":
        path = Path(args.sqlite_path)

        def make(fresh: bool) -> Any:
            return sqlite_store(path, fresh)

        def cleanup() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:

        def make(fresh: bool) -> Any:
            return postgres_store(args.postgres_url, SCHEMA, fresh)

        def cleanup() -> None:
            drop_postgres_schema(args.postgres_url, SCHEMA)

    if args.events:
        store = make(True)
        try:
            ingest(store, args.events, args.days, 2000, "ingest")
            if not isinstance(store, SQLiteStore):
                execute(store, "VACUUM ANALYZE")
            register_org(store, args.days)
        finally:
            store.close()
    project = Synthetic(START, args.days).projects[0]
    try:
        run(lambda: make(False), args, project.name, project.features[0])
    finally:
        if not args.keep:
            cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="0: reuse a --keep'd ledger")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sqlite-path", default=os.environ.get("BENCH_SQLITE_PATH", "/work/bench-dashboard.db"))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--keep", action="store_true", help="keep the ledger (then --events 0 reuses it)")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, args)


if __name__ == "__main__":
    main()

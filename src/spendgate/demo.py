"""`spendgate demo`: the real gateway, a simulated provider, a synthetic month, offline.

Both servers run on loopback in this process; the traffic goes over real HTTP through the
gateway exactly as an SDK's would. Only time is simulated: the gateway's clock follows the
month being replayed, so the ledger spans a month in a few seconds.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spendgate import management
from spendgate.access import accounts
from spendgate.access.passwords import Passwords
from spendgate.demo_traffic import AGENTS, TEAMS, PlannedRequest, plan_month
from spendgate.gateway import create_app
from spendgate.ledger.store import Store, open_store
from spendgate.redact import redact_url
from spendgate.reports.render import report_table
from spendgate.reports.spec import ReportQuery
from spendgate.settings import Settings
from spendgate.simulator import create_simulator_app, serve_in_thread

CONCURRENCY = 16
DEMO_USER = "demo"
DEFAULT_PORT = 4100


@dataclass
class ReplayClock:
    """The gateway's clock during the demo: the instant of the request being replayed."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _body(request: PlannedRequest) -> tuple[str, dict]:
    text = f"{request.directive} Help the customer with their question."
    endpoint = request.agent.endpoint
    if endpoint == "embeddings":
        return "/v1/embeddings", {"model": request.model, "input": text, "encoding_format": "float"}
    if endpoint == "responses":
        return "/v1/responses", {"model": request.model, "input": text, "stream": request.stream}
    if endpoint == "messages":
        return "/v1/messages", {
            "model": request.model,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": text}],
            "stream": request.stream,
        }
    return "/v1/chat/completions", {
        "model": request.model,
        "messages": [{"role": "user", "content": text}],
        "stream": request.stream,
    }


async def _drive(gateway_url: str, keys: dict[str, str], plan: list[PlannedRequest], clock: ReplayClock) -> int:
    console_progress = Progress(
        TextColumn("[bold]replaying a month of traffic"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[day]}"),
        TimeElapsedColumn(),
    )
    failures = 0
    queue: asyncio.Queue[PlannedRequest] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker(session: aiohttp.ClientSession, task_id: int) -> None:
        nonlocal failures
        while not queue.empty():
            request = queue.get_nowait()
            clock.now = request.at
            path, body = _body(request)
            headers = {"authorization": f"Bearer {keys[request.agent.project or 'untagged']}"}
            if request.feature:
                headers["x-spendgate-feature"] = request.feature
            if request.customer:
                headers["x-spendgate-customer"] = request.customer
            if request.agent.project == "checkout-copilot":
                headers["x-spendgate-tags"] = f"agent={request.agent.project}, tier=gold"
            if request.agent.endpoint == "messages":
                headers["anthropic-version"] = "2023-06-01"
            async with session.post(gateway_url + path, json=body, headers=headers) as response:
                await response.read()
                if response.status >= 400 and response.status not in (429, 500):
                    failures += 1
            console_progress.update(task_id, advance=1, day=request.at.strftime("%b %d"))

    with console_progress:
        task_id = console_progress.add_task("replay", total=len(plan), day="")
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(worker(session, task_id) for _ in range(CONCURRENCY)))
    return failures


def _setup(store: Store) -> dict[str, str]:
    """Teams, projects and one key per agent; plus a shared key with no project."""
    for team in TEAMS:
        management.create_team(store, team.name, team.cost_center)
    keys = {}
    for agent in AGENTS:
        management.create_project(store, agent.project, agent.team)
        # Customer-facing agents run on locked keys: their spend can't be misattributed.
        new_key = management.create_key(
            store, f"{agent.project}-prod", project=agent.project, lock=bool(agent.customers)
        )
        keys[agent.project] = new_key.secret
    keys["untagged"] = management.create_key(store, "shared-scripts", environment="staging").secret
    return keys


def _demo_login(store: Store) -> str:
    """An org admin ``demo`` with a fresh random password (only its hash is stored), for the
    dashboard; returns the password to print."""
    password = secrets.token_urlsafe(12)
    if store.get_user(DEMO_USER) is None:
        accounts.create_user(store, Passwords(), DEMO_USER, password, admin=True)
    else:  # a second demo on the same ledger
        accounts.set_password(store, Passwords(), DEMO_USER, password)
    return password


def run_demo(
    db_url: str | None = None,
    total_requests: int = 3000,
    seed: int = 7,
    *,
    serve: bool = False,
    port: int = DEFAULT_PORT,
    stop: threading.Event | None = None,
) -> None:
    """Replay a month, print what it cost, and make a dashboard login. With ``serve``, then
    serve the dashboard (and the gateway) on its data on ``port`` until Ctrl-C (or ``stop``)."""
    console = Console()
    started = time.perf_counter()
    if db_url is None:
        db_path = Path(tempfile.mkdtemp(prefix="spendgate-demo-")) / "demo.db"
        db_url = f"sqlite:///{db_path}"
    store = open_store(db_url)
    console.print(f"[bold]spendgate demo[/bold] — ledger: {escape(redact_url(db_url))}")

    console.print("• starting the simulated provider (OpenAI + Anthropic shapes) on loopback")
    simulator = serve_in_thread(create_simulator_app())
    start = (datetime.now(UTC) - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    clock = ReplayClock(start)
    settings = Settings(
        db=db_url,
        openai_base_url=f"{simulator.url}/v1",
        anthropic_base_url=simulator.url,
        credentials={"OPENAI_API_KEY": "sk-simulated", "ANTHROPIC_API_KEY": "sk-ant-simulated"},
        flush_interval=0.1,
    )
    app = create_app(settings, store=store, clock=clock)
    gateway = serve_in_thread(app, lifespan="on")
    console.print(f"• gateway listening on {gateway.url}")
    try:
        keys = _setup(store)
        console.print(f"• {len(TEAMS)} teams, {len(AGENTS)} agents with their own keys, 1 shared key with no project")
        plan = plan_month(total_requests, start, seed)
        failures = asyncio.run(_drive(gateway.url, keys, plan, clock))
    finally:
        gateway.stop(timeout=60)  # a clean shutdown flushes every buffered event to the ledger
        simulator.stop()

    by_team = store.report(ReportQuery(by=("team",)))
    console.print()
    report_table(
        store.report(ReportQuery(by=("team", "project"))),
        console,
        title="Spend by team and project",
        token_columns=False,
    )
    report_table(store.report(ReportQuery(by=("model", "provider"))), console, title="Top models", token_columns=False)
    total = by_team.total_cost_usd
    unallocated = sum((r.cost_usd for r in by_team.rows if r.dims["team"] is None), Decimal(0))
    share = unallocated / total * 100 if total else 0
    console.print(
        f"Unallocated (no project, no team): [bold]${unallocated:.4f}[/bold] = {share:.1f}% of ${total:.4f}"
        " — give every key a project to drive this to zero."
    )
    if failures:
        console.print(f"[red]{failures} request(s) failed unexpectedly[/red]")
    password = _demo_login(store)
    if serve:
        _serve_dashboard(console, store, db_url, port, password, stop or threading.Event())
        return
    store.close()
    console.print(f"\nDone in {time.perf_counter() - started:.1f}s. Look further:")
    for command in (
        "spendgate report --by team,project",
        "spendgate report --by tag:agent,customer --format csv",
        "spendgate report --by day --format json",
        "spendgate events --limit 10",
    ):
        console.print(f"  {command} --db {escape(redact_url(db_url))}", soft_wrap=True, highlight=False)
    console.print(
        f"\nThe dashboard: spendgate serve --db {escape(redact_url(db_url))}, then open"
        f" http://127.0.0.1:{DEFAULT_PORT}/ui/ and log in as [bold]{DEMO_USER}[/bold]"
        f" with the password [bold]{escape(password)}[/bold]",
        soft_wrap=True,
        highlight=False,
    )


def _serve_dashboard(
    console: Console, store: Store, db_url: str, port: int, password: str, stop: threading.Event
) -> None:
    """The gateway (dashboard at /ui) on the demo's ledger, in front of the simulated provider,
    until Ctrl-C or ``stop``."""
    simulator = serve_in_thread(create_simulator_app())
    settings = Settings(
        db=db_url,
        openai_base_url=f"{simulator.url}/v1",
        anthropic_base_url=simulator.url,
        credentials={"OPENAI_API_KEY": "sk-simulated", "ANTHROPIC_API_KEY": "sk-ant-simulated"},
    )
    gateway = serve_in_thread(create_app(settings, store=store), port=port, lifespan="on")
    console.print(
        f"\n[bold]The dashboard: {gateway.url}/ui/[/bold] — log in as [bold]{DEMO_USER}[/bold]"
        f" with the password [bold]{escape(password)}[/bold]. Ctrl-C to stop.",
        soft_wrap=True,
        highlight=False,
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        gateway.stop(timeout=30)
        simulator.stop()
        store.close()

"""Scheduled finance delivery (issue 12 item 6) on both backends: two replicas sharing one
ledger deliver a month's report once, to a directory or to a signed webhook on loopback; a
failing receiver is retried and then gets it once; a crashed replica's claim runs out; the
files are byte for byte what `spendgate finance report` and `spendgate statements` write."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.finance.delivery_config import FinanceConfig
from spendgate.finance.delivery_job import LEASE_S, FinanceDeliveryJob
from spendgate.finance.schedule import MONTHLY
from spendgate.reports.spec import ReportQuery
from tests.conftest import open_test_store
from tests.finance_support import cli, event, ledger, write  # noqa: F401  (ledger: a fixture)
from tests.test_alerts_support import Clock, Receiver, running_receiver, verified

FIRST_OF_DECEMBER = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
SECRET = "finance-whsec-1"


def _seed(url: str) -> None:
    write(
        url,
        [
            event(datetime(2026, 11, 3, tzinfo=UTC), Decimal("1.000000001"), team="alpha"),
            event(datetime(2026, 11, 17, tzinfo=UTC), Decimal("2.5"), team="beta", model="gpt-4o"),
            event(datetime(2026, 11, 30, 23, 59, tzinfo=UTC), Decimal("0.25"), team="gamma"),
            event(datetime(2026, 10, 9, tzinfo=UTC), Decimal("4"), team="alpha"),  # the month before
            event(datetime(2026, 12, 1, tzinfo=UTC), Decimal("9"), team="alpha"),  # December: not in November
        ],
    )


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def replicas(ledger: str) -> Iterator[list[Any]]:  # noqa: F811
    """Two stores on one ledger, as two gateway replicas hold them."""
    _seed(ledger)
    stores = [open_test_store(ledger) for _ in range(2)]
    yield stores
    for store in stores:
        store.close()


def _jobs(stores: list[Any], config: FinanceConfig, clock: Clock, **kw: Any) -> list[FinanceDeliveryJob]:
    return [FinanceDeliveryJob(store, config, clock, **kw) for store in stores]


async def _tick(jobs: list[FinanceDeliveryJob]) -> list[str]:
    """Both replicas check at once; the statuses of what they did (not what they left to another
    replica, or found not due: whether a replica saw the period pending is a matter of timing)."""
    results = await asyncio.gather(*(job.run_once() for job in jobs))
    return sorted(outcome.status for outcomes in results for outcome in outcomes if outcome.status != "skipped")


async def _close(jobs: list[FinanceDeliveryJob]) -> None:
    for job in jobs:
        await job.aclose()


def _cli_documents(ledger: str, tmp_path: Path) -> dict[str, bytes]:  # noqa: F811
    """What the CLI writes for November: the report in each format and the team statements."""
    out = tmp_path / "by-hand"
    documents = {}
    for fmt in ("json", "csv", "html", "pdf"):
        path = out / f"report.{fmt}"
        out.mkdir(exist_ok=True)
        cli("finance", "report", "--month", "2026-11", "--format", fmt, "--out", str(path), "--db", ledger)
        documents[f"finance-report-2026-11.{fmt}"] = path.read_bytes()
    for fmt in ("csv", "json", "pdf"):
        folder = out / f"statements-{fmt}"
        cli("statements", "--month", "2026-11", "--by", "team", "--format", fmt, "--out", str(folder), "--db", ledger)
        for path in folder.iterdir():
            documents[f"statements/team/{path.name}"] = path.read_bytes()
    return documents


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_two_replicas_write_the_month_once_to_a_directory(
    replicas: list[Any],
    ledger: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "finance"
    config = FinanceConfig(deliver_to=str(out), formats=("json", "csv", "html", "pdf"), statements_by=("team",))
    clock = Clock(FIRST_OF_DECEMBER)
    jobs = _jobs(replicas, config, clock)
    try:
        # Both replicas race for the same period directly, then tick together.
        raced = await asyncio.gather(*(job.deliver(MONTHLY, "2026-11") for job in jobs))
        assert sorted(o.status for o in raced) == ["delivered", "skipped"]
        folder = out / "2026-11"
        first = {p: p.stat().st_ino for p in folder.rglob("*") if p.is_file()}
        for hours in (0, 1, 24 * 20):
            clock.now = FIRST_OF_DECEMBER + timedelta(hours=hours)
            assert await _tick(jobs) == []  # November is done; December's report is not due yet
        # Never rewritten: each rename makes a new inode.
        assert {p: p.stat().st_ino for p in folder.rglob("*") if p.is_file()} == first
    finally:
        await _close(jobs)
    delivered = _files(folder)
    assert delivered == _cli_documents(ledger, tmp_path)
    assert set(delivered) >= {"statements/team/2026-11-team-alpha.csv", "finance-report-2026-11.html"}
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind
    report = json.loads(delivered["finance-report-2026-11.json"])
    assert Decimal(report["total_cost_usd"]) == Decimal("3.750000001")
    [row] = replicas[0].finance_deliveries()
    assert (row["kind"], row["period"], row["status"], row["attempts"]) == (MONTHLY, "2026-11", "delivered", 1)


async def test_two_replicas_post_the_month_once_signed(
    replicas: list[Any],
    ledger: str,  # noqa: F811
    tmp_path: Path,
    receiver: tuple[Receiver, str],
) -> None:
    rx, url = receiver
    config = FinanceConfig(deliver_to=f"{url}/finance", formats=("json", "csv", "html", "pdf"), secret=SECRET)
    clock = Clock(FIRST_OF_DECEMBER)
    jobs = _jobs(replicas, config, clock)
    try:
        assert (await _tick(jobs)).count("delivered") == 1
        clock.now += timedelta(days=3)
        assert await _tick(jobs) == []
    finally:
        await _close(jobs)
    [got] = rx.requests
    assert got.path == "/finance"
    assert verified(got.body, got.headers["x-spendgate-signature"], SECRET)
    assert not verified(got.body, got.headers["x-spendgate-signature"], "another secret")
    assert got.headers["x-spendgate-event"] == MONTHLY
    body = got.json()
    assert (body["event"], body["id"], body["month"]) == (MONTHLY, f"{MONTHLY}:2026-11", "2026-11")
    expected = _cli_documents(ledger, tmp_path)
    for document in body["documents"]:
        binary = document["name"].endswith(".pdf")
        assert document["encoding"] == ("base64" if binary else "utf-8")
        content = base64.b64decode(document["content"]) if binary else document["content"].encode()
        assert content == expected[document["name"]]
    assert sorted(d["name"] for d in body["documents"]) == [
        f"finance-report-2026-11.{f}" for f in ("csv", "html", "json", "pdf")
    ]


def test_binary_documents_travel_as_base64() -> None:
    from spendgate.finance.delivery import Document

    pdf = Document("report.pdf", "application/pdf", b"%PDF-1.7\x00\xff")
    assert pdf.as_json()["encoding"] == "base64"
    assert base64.b64decode(pdf.as_json()["content"]) == b"%PDF-1.7\x00\xff"


async def test_a_failing_receiver_is_retried_then_gets_the_month_once(
    replicas: list[Any], receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    rx.fail_first = 2
    config = FinanceConfig(deliver_to=f"{url}/finance", formats=("json",), secret=SECRET)
    clock = Clock(FIRST_OF_DECEMBER)
    jobs = _jobs(replicas, config, clock)
    try:
        assert await _tick(jobs) == ["retrying"]
        assert await _tick(jobs) == []  # not due again before its backoff
        assert len(rx.requests) == 1
        clock.now += timedelta(seconds=61)  # the first retry waits a minute
        assert await _tick(jobs) == ["retrying"]
        clock.now += timedelta(seconds=61)
        assert await _tick(jobs) == []  # the second waits two
        clock.now += timedelta(seconds=60)
        assert await _tick(jobs) == ["delivered"]
        clock.now += timedelta(hours=5)
        assert await _tick(jobs) == []
    finally:
        await _close(jobs)
    assert [r.status for r in rx.requests] == [500, 500, 200]
    assert len({r.json()["id"] for r in rx.requests}) == 1  # the same delivery, each attempt
    [row] = replicas[0].finance_deliveries()
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 3, None)


async def test_a_delivery_gives_up_and_force_sends_it_again(
    replicas: list[Any], receiver: tuple[Receiver, str]
) -> None:
    rx, url = receiver
    rx.fail_first = 2
    config = FinanceConfig(deliver_to=f"{url}/finance", formats=("csv",), secret=SECRET)
    clock = Clock(FIRST_OF_DECEMBER)
    jobs = _jobs(replicas, config, clock, max_attempts=2)
    try:
        assert await _tick(jobs) == ["retrying"]
        clock.now += timedelta(minutes=2)
        assert await _tick(jobs) == ["failed"]
        [row] = replicas[0].finance_deliveries()
        assert (row["status"], row["last_error"]) == ("failed", "DeliveryRefused: HTTP 500")
        clock.now += timedelta(days=1)
        assert await _tick(jobs) == []  # given up: left for a person
        assert (await jobs[1].deliver(MONTHLY, "2026-11", force=True)).status == "delivered"
    finally:
        await _close(jobs)
    assert [r.status for r in rx.requests] == [500, 500, 200]


async def test_a_crashed_replicas_claim_runs_out(replicas: list[Any], tmp_path: Path) -> None:
    out = tmp_path / "finance"
    config = FinanceConfig(deliver_to=str(out), formats=("json",))
    clock = Clock(FIRST_OF_DECEMBER)
    # A replica claims November and dies before delivering it.
    assert replicas[0].claim_finance_delivery(MONTHLY, "2026-11", clock.now, LEASE_S) == 1
    [job] = _jobs(replicas[1:], config, clock)
    try:
        assert await _tick([job]) == []
        clock.now += timedelta(seconds=LEASE_S - 1)
        assert await _tick([job]) == []
        assert not out.exists()
        clock.now += timedelta(seconds=2)
        assert await _tick([job]) == ["delivered"]
    finally:
        await job.aclose()
    assert (out / "2026-11" / "finance-report-2026-11.json").is_file()
    [row] = replicas[0].finance_deliveries()
    assert (row["status"], row["attempts"]) == ("delivered", 2)


def test_serve_delivers_the_month_its_replicas_recorded(make_gateway: Any, tmp_path: Path) -> None:
    """Two gateway replicas on one ledger: spend made through one with the OpenAI SDK on 30
    November is in the report the other writes when it starts on 1 December, delivered once."""
    out = tmp_path / "finance"
    finance = FinanceConfig(deliver_to=str(out), formats=("json", "csv"), statements_by=("team",))
    clock = Clock(datetime(2026, 11, 30, 22, 0, tzinfo=UTC))
    first = make_gateway(clock=clock, finance=finance)
    first.team("payments")
    first.project("checkout", team="payments")
    key = first.key("checkout-key", project="checkout")
    first.wait_for_directory()
    client = first.openai(key)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    first.flush()
    clock.now = FIRST_OF_DECEMBER
    second = make_gateway(clock=clock, finance=finance, db=first.db_url)
    november = out / "2026-11" / "finance-report-2026-11.json"

    def delivered() -> dict[str, tuple[str, int]]:
        return {r["period"]: (r["status"], r["attempts"]) for r in second.store.finance_deliveries(MONTHLY)}

    deadline = time.monotonic() + 10
    while delivered().get("2026-11") != ("delivered", 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert delivered() == {"2026-10": ("delivered", 1), "2026-11": ("delivered", 1)}
    report = json.loads(november.read_text())
    spent = first.store.report(ReportQuery(by=("team",), since=date(2026, 11, 1), until=date(2026, 11, 30)))
    assert Decimal(report["total_cost_usd"]) == spent.rows[0].cost_usd > 0
    assert (out / "2026-11" / "statements" / "team" / "2026-11-team-payments.csv").is_file()
    assert (out / "2026-10" / "finance-report-2026-10.json").is_file()  # what the first one found due on the 30th

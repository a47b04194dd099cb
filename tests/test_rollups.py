"""Rollups: the pure planning and summing, then both backends answering every report and
budget window from rollups exactly as they would from the raw events."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from spendgate.budgets.model import Scope
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.rollups import plan as rollups
from spendgate.ledger.rollups.plan import DAILY, DAILY_LEAN, HOURLY, Piece
from spendgate.ledger.store.dialects.sqlite import SQLiteStore, join_cost, split_cost
from spendgate.reports.spec import PLAIN_DIMENSIONS, ReportError, ReportQuery

_ids = count(1)
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def event(**fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": f"ev-{next(_ids):08d}",
        "ts": datetime(2025, 3, 10, 12, 0, tzinfo=UTC),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "cost_usd": Decimal("0.001"),
    }
    values.update(fields)
    return UsageEvent(**values)


# --- pure: planning -------------------------------------------------------------------------
def test_reports_map_onto_the_smallest_rollup_that_keeps_their_dimensions() -> None:
    assert rollups.plan_report(()) is DAILY_LEAN
    assert rollups.plan_report(("team", "project")) is DAILY_LEAN
    assert rollups.plan_report(("day", "model", "key", "environment", "feature", "provider")) is DAILY_LEAN
    assert rollups.plan_report(("month", "customer")) is DAILY
    assert rollups.plan_report(("team", "trace")) is None
    assert rollups.plan_report(("tag:workflow",)) is None
    # Every plain dimension but trace has a rollup.
    assert all(rollups.plan_report((d,)) is not None for d in PLAIN_DIMENSIONS if d != "trace")


def test_scopes_map_onto_rollups() -> None:
    assert rollups.choose("hour", ["customer"]) is HOURLY
    assert rollups.choose("day", ["customer"]) is DAILY
    assert rollups.choose("day", ["team"]) is DAILY_LEAN
    assert rollups.choose("day", []) is DAILY_LEAN
    assert rollups.choose("hour", ["trace_id"]) is None


def _check_pieces(start: datetime | None, end: datetime | None, pieces: list[Piece]) -> None:
    """Contiguous, covering [start, end) exactly, each source on its own alignment."""
    assert pieces, (start, end)
    assert pieces[0].start == start and pieces[-1].end == end
    for a, b in pairwise(pieces):
        assert a.end == b.start and a.end is not None
    for p in pieces:
        assert p.start is None or p.end is None or p.start < p.end
        if p.source == "day":
            assert all(t is None or t == t.replace(hour=0, minute=0, second=0, microsecond=0) for t in (p.start, p.end))
        elif p.source == "hour":
            assert all(t == t.replace(minute=0, second=0, microsecond=0) for t in (p.start, p.end))  # type: ignore[union-attr]
        else:
            assert p.source == "events" and p.start is not None and p.end is not None
            assert p.end - p.start < timedelta(hours=1) or len(pieces) == 1
    events = [i for i, p in enumerate(pieces) if p.source == "events"]
    assert all(i in (0, len(pieces) - 1) for i in events)  # raw events only at the edges


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla"])
def test_budget_windows_are_whole_days_and_hours_with_partial_hours_at_the_edges(zone: str) -> None:
    tz = ZoneInfo(zone)
    start = datetime(2025, 3, 1, tzinfo=tz)
    end = datetime(2025, 4, 1, tzinfo=tz)  # across a DST change in New York
    pieces = rollups.spend_pieces(start, end)
    _check_pieces(start.astimezone(UTC), end.astimezone(UTC), pieces)
    assert sum(p.source == "day" for p in pieces) == 1
    raw = sum(((p.end - p.start) for p in pieces if p.source == "events"), timedelta())  # type: ignore[operator]
    offset_minutes = {"UTC": 0, "America/New_York": 0, "Asia/Kolkata": 60, "Asia/Kathmandu": 60, "Australia/Eucla": 60}
    assert raw == timedelta(minutes=offset_minutes[zone])  # two half hours, 15 + 45 minutes…


def test_spend_pieces_edge_cases() -> None:
    h = T0 + timedelta(hours=5)
    assert rollups.spend_pieces(h, h) == []
    assert rollups.spend_pieces(h + timedelta(hours=1), h) == []
    assert rollups.spend_pieces(h + timedelta(minutes=5), h + timedelta(minutes=50)) == [
        Piece("events", h + timedelta(minutes=5), h + timedelta(minutes=50))
    ]
    assert rollups.spend_pieces(h, h + timedelta(hours=3)) == [Piece("hour", h, h + timedelta(hours=3))]
    assert rollups.spend_pieces(None, None) == [Piece("day", None, None)]
    assert rollups.spend_pieces(None, h) == [Piece("day", None, T0), Piece("hour", T0, h)]
    assert rollups.spend_pieces(h, None) == [
        Piece("hour", h, T0 + timedelta(days=1)),
        Piece("day", T0 + timedelta(days=1), None),
    ]
    naive = rollups.spend_pieces(datetime(2025, 3, 1), datetime(2025, 3, 3))  # naive is UTC
    assert naive == [Piece("day", T0, T0 + timedelta(days=2))]


def test_random_windows_are_cut_correctly() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        start = T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 40))
        end = start + timedelta(minutes=rng.randrange(1, 60 * 24 * 40), seconds=rng.choice((0, 0, 30)))
        _check_pieces(start, end, rollups.spend_pieces(start, end))


# --- pure: keys and money -------------------------------------------------------------------
def test_dims_key_is_injective() -> None:
    tuples = [
        (None,),
        ("",),
        ("-",),
        ("0:",),
        (None, None),
        ("", None),
        (None, ""),
        ("a", "b"),
        ("a:b",),
        ("1:a",),
        ("1:a", None),
        ("ab", ""),
        ("a", "b", None),
        ("é", "日本"),
    ]
    keys = [rollups.dims_key(t) for t in tuples]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0.001",
        "0.000000075",
        "0.000000000000000001",
        "123.456789012345678",
        "9223372036.854775807",
        "-0.25",
        "0.0000000000000000001",  # 19 decimals: kept as exact text
        "123456789012345678901234567890.000000000000000000000000000001",
        "1E-30",
        "1E+12",
    ],
)
def test_sqlite_cost_split_is_exact(text: str) -> None:
    cost = Decimal(text)
    nanos, attos, rest = split_cost(cost)
    assert join_cost(nanos, attos, rest) == cost
    assert 0 <= attos < 10**9
    fits = cost.as_tuple().exponent >= -18 and abs(cost) < Decimal(2**63).scaleb(-9)  # type: ignore[operator]
    assert (rest is None) == fits


# --- both backends ----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SQLiteStore(tmp_path / "ledger.db")
    else:
        from spendgate.ledger.store.dialects.postgresql import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_db")())
    yield s
    s.close()


TEAMS = ("payments", "search", None, "")
PROJECTS = ("checkout", "ranker", "assistant", None)
CUSTOMERS = ("acme", "globex", "-", "1:a", None)
COSTS = ("0.001", "0.000000075", "1.5", "0.000000000000000001", "0.0000000000000000001", "12.3456789", None)


def random_events(rng: random.Random, n: int) -> list[UsageEvent]:
    """Events over ten days at random times, with every figure and awkward values (NULL and
    "" dimensions, costs with 1 to 19 decimals, unpriced, estimated, errors, tags, traces)."""
    events = []
    for _ in range(n):
        cost = rng.choice(COSTS)
        events.append(
            event(
                ts=T0 + timedelta(seconds=rng.randrange(0, 10 * 86400), microseconds=rng.randrange(10**6)),
                provider=rng.choice(("openai", "anthropic")),
                model=rng.choice(("gpt-4o", "gpt-4o-mini", "claude-haiku-4-5")),
                team=rng.choice(TEAMS),
                project=rng.choice(PROJECTS),
                cost_center=rng.choice(("cc-1", None)),
                feature=rng.choice(("chat", "search", None)),
                environment=rng.choice(("production", "staging", None)),
                customer=rng.choice(CUSTOMERS),
                key=rng.choice(("k1", "k2", None)),
                trace_id=rng.choice(("t1", "t2", None)),
                tags=rng.choice(({"workflow": "w1"}, {"workflow": "w2", "ticket": "T-1"}, None)),
                input_tokens=rng.randrange(0, 5000),
                cached_input_tokens=rng.randrange(0, 100),
                cache_write_tokens=rng.randrange(0, 50),
                cache_write_1h_tokens=rng.randrange(0, 20),
                output_tokens=rng.randrange(0, 2000),
                reasoning_tokens=rng.randrange(0, 300),
                cost_usd=None if cost is None else Decimal(cost),
                status=rng.choice(("ok", "ok", "ok", "error", "incomplete")),
                estimated=rng.random() < 0.1,
            )
        )
    return events


def fill(store: Any, events: list[UsageEvent], rng: random.Random) -> None:
    """In random batches, with replays of what was already stored and repeats within a batch."""
    i = 0
    while i < len(events):
        size = rng.randrange(1, 60)
        batch = events[i : i + size]
        if i and rng.random() < 0.3:
            batch = batch + rng.sample(events[:i], min(i, rng.randrange(1, 10)))
        if batch and rng.random() < 0.2:
            batch = [*batch, batch[0]]
        rng.shuffle(batch)
        store.append_events(batch)
        i += size


REPORT_SHAPES = [
    (),
    ("team",),
    ("team", "project"),
    ("customer",),
    ("day",),
    ("month", "model"),
    ("day", "customer", "key"),
    ("provider", "environment", "feature"),
    ("project", "team", "customer", "model", "provider", "key", "feature", "environment", "day"),
]


def test_every_figure_lands_in_its_buckets(store: Any) -> None:
    store.append_events(
        [
            event(ts=T0 + timedelta(minutes=10), team="a", cost_usd=Decimal("0.1"), input_tokens=5, output_tokens=1),
            event(ts=T0 + timedelta(minutes=50), team="a", cost_usd=None, cached_input_tokens=3, status="error"),
            event(ts=T0 + timedelta(hours=1, minutes=1), team="a", cost_usd=Decimal("0.2"), estimated=True),
            event(ts=T0 + timedelta(minutes=20), team="b", customer="c1", cache_write_tokens=7, reasoning_tokens=2),
            event(ts=T0 + timedelta(minutes=30), team="b", customer="c2", cache_write_1h_tokens=4),
        ]
    )
    counts = [store._query(f"SELECT count(*) AS n FROM {r.table}")[0][0] for r in (HOURLY, DAILY, DAILY_LEAN)]
    assert counts == [4, 3, 2]
    rows = {r.dims["team"]: r for r in store.report(ReportQuery(by=("team",)), source="rollups").rows}
    a, b = rows["a"], rows["b"]
    assert (a.cost_usd, a.requests, a.input_tokens, a.output_tokens, a.cached_input_tokens) == (
        Decimal("0.3"),
        3,
        5,
        1,
        3,
    )
    assert (a.unpriced_requests, a.estimated_requests, a.error_requests, a.cache_write_tokens) == (1, 1, 1, 0)
    assert (b.cost_usd, b.requests, b.cache_write_tokens, b.reasoning_tokens, b.error_requests) == (
        Decimal("0.002"),
        2,
        7,
        2,
        0,
    )
    assert store._query("SELECT sum(cache_write_1h_tokens) AS n FROM rollup_daily_lean")[0][0] == 4


def test_rollup_sums_stay_exact_at_any_size(store: Any) -> None:
    # the default Decimal context would round to 28 digits; SQLite's integers would overflow
    big = [event(cost_usd=Decimal("123456789012345678901234567890")), event(cost_usd=Decimal("1E-30"))]
    store.append_events([*big, event(cost_usd=Decimal("0.000000000000000001"))])
    total = Decimal("123456789012345678901234567890.000000000000000001000000000001")
    assert store.report(ReportQuery(by=("team",)), source="rollups").rows[0].cost_usd == total
    assert store.report(ReportQuery(by=("day",)), source="rollups").rows[0].cost_usd == total
    assert store.spend(Scope.parse("org"), T0 - timedelta(days=30), T0 + timedelta(days=30)) == total


def test_reports_from_rollups_equal_reports_from_raw_events(store: Any) -> None:
    rng = random.Random(11)
    events = random_events(rng, 1500)
    fill(store, events, rng)
    ranges = [
        (None, None),
        (date(2025, 3, 3), date(2025, 3, 3)),
        (date(2025, 3, 2), date(2025, 3, 7)),
        (date(2025, 3, 9), None),
    ]
    for by in REPORT_SHAPES:
        for since, until in ranges:
            query = ReportQuery(by=by, since=since, until=until)
            raw = store.report(query, source="events")
            rolled = store.report(query, source="rollups")
            assert rolled == raw, (by, since, until)
            assert rolled.as_json() == raw.as_json()
            assert store.report(query) == raw
    total = store.report(ReportQuery())
    assert total.total_requests == len({e.id for e in events})
    assert total.total_cost_usd == sum(
        (e.cost_usd for e in {e.id: e for e in reversed(events)}.values() if e.cost_usd is not None), Decimal(0)
    )


def test_the_same_random_ledger_reports_the_same_on_both_backends(
    tmp_path: Path, postgres_db: Callable[[], str]
) -> None:
    from spendgate.ledger.store.dialects.postgresql import PostgresStore

    lite, pg = SQLiteStore(tmp_path / "l.db"), PostgresStore(postgres_db())
    try:
        events = random_events(random.Random(5), 600)
        for s in (lite, pg):
            fill(s, events, random.Random(6))
        for by in REPORT_SHAPES:
            assert lite.report(ReportQuery(by=by)).as_json() == pg.report(ReportQuery(by=by)).as_json(), by
    finally:
        lite.close()
        pg.close()


def test_trace_and_tag_reports_still_come_from_raw_events(store: Any) -> None:
    store.append_events([event(trace_id="t1", tags={"workflow": "w"}), event(trace_id="t1"), event()])
    rows = store.report(ReportQuery(by=("trace",))).as_json()["rows"]
    assert {r["trace"]: r["requests"] for r in rows} == {"t1": 2, None: 1}
    rows = store.report(ReportQuery(by=("tag:workflow", "team"))).as_json()["rows"]
    assert {r["tag:workflow"]: r["requests"] for r in rows} == {"w": 1, None: 2}
    with pytest.raises(ReportError, match="no rollup keeps trace"):
        store.report(ReportQuery(by=("trace",)), source="rollups")


def test_a_replayed_event_is_not_added_to_the_rollups_twice(store: Any) -> None:
    batch = [event(team="a", cost_usd=Decimal("0.5")), event(team="a", cost_usd=Decimal("0.25"))]
    assert store.append_events(batch) == 2
    assert store.append_events(batch) == 0
    assert store.append_events([*batch, event(team="a", cost_usd=Decimal("1"))]) == 1
    for source in ("rollups", "events"):
        (row,) = store.report(ReportQuery(by=("team",)), source=source).rows
        assert (row.cost_usd, row.requests) == (Decimal("1.75"), 3)


def test_an_event_the_ledger_cannot_hold_fails_its_batch_instead_of_vanishing(store: Any) -> None:
    # A replayed id is skipped, nothing else: a NOT NULL failure is an error on both databases
    # (SQLite's INSERT OR IGNORE used to drop such an event without a word).
    with pytest.raises(store.dialect.integrity_errors):
        store.append_events([event(team="a"), event(team="b", provider=None)])
    assert store.report(ReportQuery(), source="events").total_requests == 0  # the batch rolled back
    assert store.report(ReportQuery(), source="rollups").total_requests == 0
    assert store.append_events([event(team="a")]) == 1


def test_of_two_events_with_one_id_in_a_batch_the_first_is_rolled_up(store: Any) -> None:
    first, second = event(id="dup", team="a", cost_usd=Decimal("1")), event(id="dup", team="b", cost_usd=Decimal("2"))
    assert store.append_events([event(team="c"), first, second]) == 2
    rows = {r.dims["team"]: r.cost_usd for r in store.report(ReportQuery(by=("team",)), source="rollups").rows}
    assert rows == {"a": Decimal("1"), "c": Decimal("0.001")}


def test_budget_spend_from_rollups_equals_spend_from_raw_events(store: Any) -> None:
    rng = random.Random(21)
    events = random_events(rng, 1200)
    fill(store, events, rng)
    scopes = [Scope.parse(s) for s in ("org", "team:payments", "project:ranker", "customer:acme", "key:k1")]
    scopes += [Scope.parse("feature:chat"), Scope.parse("customer:-"), Scope.parse("tag:workflow=w1")]
    windows: list[tuple[datetime | None, datetime | None]] = [(None, None), (None, T0 + timedelta(days=4, hours=3))]
    for zone in ("UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu"):
        tz = ZoneInfo(zone)
        windows.append((datetime(2025, 3, 2, tzinfo=tz), datetime(2025, 3, 9, tzinfo=tz)))
        windows.append((datetime(2025, 3, 4, tzinfo=tz), datetime(2025, 3, 5, tzinfo=tz)))
    for _ in range(12):
        start = T0 + timedelta(seconds=rng.randrange(0, 9 * 86400))
        windows.append((start, start + timedelta(seconds=rng.randrange(1, 5 * 86400))))
    windows.append((T0 + timedelta(days=3), None))
    for scope in scopes:
        for start, end in windows:
            assert store.spend(scope, start, end) == store.spend(scope, start, end, source="events"), (scope, start)


def test_rollups_and_events_land_together_or_not_at_all(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_events([event(team="a")])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    # It fails after the new dimension entries were made, inside the same transaction.
    monkeypatch.setattr(store, "_add_to_rollups", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.append_events([event(team="b", customer="new-customer")])
    monkeypatch.undo()
    assert [r.dims["team"] for r in store.report(ReportQuery(by=("team",)), source="events").rows] == ["a"]
    # The dimension entry made in the failed transaction was not cached: the retry works.
    assert store.append_events([event(team="b", customer="new-customer")]) == 1
    for by in (("team",), ("customer",)):
        assert store.report(ReportQuery(by=by)) == store.report(ReportQuery(by=by), source="events")


def test_concurrent_writers_sum_each_event_once(store: Any) -> None:
    """Several threads (PostgreSQL: several connections, as replicas would be) writing
    overlapping batches into the same rollup rows, in different orders."""
    rng = random.Random(8)
    events = random_events(rng, 800)
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        mine = random.Random(seed)
        try:
            for _ in range(6):
                batch = mine.sample(events, 150)
                store.append_events(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for by in (("team", "project"), ("customer", "day"), ()):
        assert store.report(ReportQuery(by=by)) == store.report(ReportQuery(by=by), source="events")

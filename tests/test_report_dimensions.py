"""Report dimensions cost_center, service_tier, week and hour; ``--where`` filters; time order;
totals (issue 12 item 1, issue 9 item 12).

Every figure is checked against a sum computed here, in Python, over the raw events the test
stored: to the last digit, from the rollups (the report's own path) and from raw events.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console

from spendgate.access.visibility import Visibility
from spendgate.cli.main import main
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.rollups import plan
from spendgate.ledger.store.dialects.sqlite import SQLiteStore, iso_week
from spendgate.money import format_usd
from spendgate.reports.render import events_csv, report_csv, report_table
from spendgate.reports.spec import PLAIN_DIMENSIONS, ReportError, ReportQuery, parse_where
from tests.conftest import Gateway
from tests.test_rollups import event, fill, random_events

ADMIN = "sg-admin-test-key-for-report-dimensions"
TIERS = (None, "standard", "flex", "priority", "batch")
FIGURES = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SQLiteStore(tmp_path / "ledger.db")
    else:
        from spendgate.ledger.store.dialects.postgresql import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_db")())
    yield s
    s.close()


def ledger_events(seed: int = 12, n: int = 900) -> list[UsageEvent]:
    """Random events over ten days from Saturday 2025-03-01 (ISO weeks 09, 10 and 11), with
    tiers (None among them) and cost centers."""
    rng = random.Random(seed)
    return [
        dataclasses.replace(e, service_tier=rng.choice(TIERS), cost_center=rng.choice(("cc-1", "cc-2", None)))
        for e in random_events(rng, n)
    ]


@pytest.fixture
def filled(store: Any) -> tuple[Any, list[UsageEvent]]:
    events = ledger_events()
    fill(store, events, random.Random(5))  # with replays: each event counts once
    return store, events


# --- the expected figures, from the raw events ------------------------------------------------
def value(e: UsageEvent, dim: str) -> str | None:
    ts = e.ts.astimezone(UTC)
    if dim == "hour":
        return ts.strftime("%Y-%m-%dT%H:00Z")
    if dim == "day":
        return ts.date().isoformat()
    if dim == "week":
        year, week, _ = ts.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if dim == "month":
        return ts.strftime("%Y-%m")
    if dim == "service_tier":
        return e.service_tier or "standard"  # a tier nobody named was priced as standard
    if dim.startswith("tag:"):
        return (e.tags or {}).get(dim[4:])
    return getattr(e, "trace_id" if dim == "trace" else dim)


def expected(events: Sequence[UsageEvent], by: Sequence[str], keep: Callable[[UsageEvent], bool] = bool) -> dict:
    groups: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"cost_usd": Decimal(0), **dict.fromkeys(FIGURES, 0)})
    for e in events:
        if not keep(e):
            continue
        g = groups[tuple(value(e, d) for d in by)]
        g["cost_usd"] += e.cost_usd or 0
        g["requests"] += 1
        g["unpriced_requests"] += e.cost_usd is None
        g["estimated_requests"] += e.estimated
        g["error_requests"] += e.status == "error"
        for name in FIGURES[1:7]:
            g[name] += getattr(e, name)
    return dict(groups)


def got(store: Any, query: ReportQuery, source: str = "auto") -> dict:
    result = store.report(query, source=source)
    rows = {}
    for row in result.rows:
        rows[tuple(row.dims[d] for d in query.by)] = {"cost_usd": row.cost_usd} | {f: getattr(row, f) for f in FIGURES}
    assert len(rows) == len(result.rows)  # one row per group
    return rows


def check(store: Any, events: Sequence[UsageEvent], query: ReportQuery, keep: Callable[[UsageEvent], bool] = bool):
    want = expected(events, query.by, keep)
    assert want, query  # the case selects something
    sources = ["auto", "events"]
    if plan.plan_report([*query.by, *(d for d, _ in query.where)]) is not None:
        sources.append("rollups")  # answered from the rollups, not silently from raw events
    for source in sources:
        assert got(store, query, source) == want, (query, source)


# --- pure ---------------------------------------------------------------------------------------
def test_new_dimensions_plan_onto_rollups() -> None:
    assert {"cost_center", "service_tier", "week", "hour"} <= set(PLAIN_DIMENSIONS)
    assert plan.plan_report(("hour",)) is plan.HOURLY  # reports are in whole days: daily unless by hour
    assert plan.plan_report(("hour", "customer", "service_tier")) is plan.HOURLY
    assert plan.plan_report(("week", "cost_center", "team")) is plan.DAILY_LEAN
    # The lean rollup keeps no tier: tiers would multiply the rows the reports most run read.
    assert plan.plan_report(("week", "service_tier")) is plan.DAILY
    assert plan.plan_report(("week", "customer")) is plan.DAILY
    assert plan.plan_report(("week", "tag:workflow")) is None


def test_iso_weeks_are_iso_8601() -> None:
    assert iso_week("2024-12-30") == "2025-W01"  # the Monday of the week with 2025's first Thursday
    assert iso_week("2027-01-03") == "2026-W53"
    assert iso_week("2025-03-10") == "2025-W11"


def test_where_is_parsed_and_checked() -> None:
    where = parse_where(
        ["team=a", "team=b", "project=unallocated", "customer=", "service_tier=Default", "hour=2025-03-10T07", "team=a"]
    )
    assert dict(where) == {
        "customer": (None,),
        "hour": ("2025-03-10T07:00Z",),
        "project": (None, "unallocated"),
        "service_tier": ("standard",),
        "team": ("a", "b"),
    }
    bad = {
        "team": "use DIM=VALUE",
        "colour=red": "unknown dimension 'colour'",
        "tag:a b=1": "bad tag dimension",
        "week=2025-W54": "expected 2025-W11",
        "week=2025-11": "expected 2025-W11",
        "day=2025-02-30": "expected 2025-03-10",
        "hour=2025-03-10T24": "expected 2025-03-10T14",
        "month=2025-13": "expected 2025-03",
        "service_tier=not a tier": "not a tier name",
        f"team={'x' * 600}": "longer than 512",
    }
    for term, message in bad.items():
        with pytest.raises(ReportError, match=message):
            parse_where([term])
    with pytest.raises(ReportError, match="too many"):
        parse_where([f"team=t{i}" for i in range(201)])


# --- every dimension, and combinations, against the raw events ------------------------------------
@pytest.mark.parametrize("dim", [*PLAIN_DIMENSIONS, "tag:workflow"])
def test_each_dimension_equals_the_raw_sum(filled: tuple[Any, list[UsageEvent]], dim: str) -> None:
    store, events = filled
    check(store, events, ReportQuery(by=(dim,)))


@pytest.mark.parametrize(
    "by",
    [
        ("cost_center", "week"),
        ("hour", "service_tier"),
        ("service_tier", "customer", "day"),
        ("month", "cost_center", "service_tier", "team"),
        ("week", "tag:workflow"),
        ("hour", "key", "trace"),
        ("week", "day", "hour"),
    ],
)
def test_combinations_equal_the_raw_sum(filled: tuple[Any, list[UsageEvent]], by: tuple[str, ...]) -> None:
    store, events = filled
    check(store, events, ReportQuery(by=by))
    check(store, events, ReportQuery(by=by, since=date(2025, 3, 3), until=date(2025, 3, 8)), since_until)


def since_until(e: UsageEvent) -> bool:
    return date(2025, 3, 3) <= e.ts.date() <= date(2025, 3, 8)


# --- --where -----------------------------------------------------------------------------------------
WHERE_CASES: list[tuple[tuple[str, ...], list[str], Callable[[UsageEvent], bool]]] = [
    (("team",), ["service_tier=flex", "service_tier=priority"], lambda e: e.service_tier in ("flex", "priority")),
    (("service_tier",), ["service_tier=standard"], lambda e: e.service_tier in (None, "standard")),
    (
        ("day",),
        ["cost_center=cc-1", "week=2025-W10"],
        lambda e: e.cost_center == "cc-1" and value(e, "week") == "2025-W10",
    ),
    (
        ("customer",),
        ["project=unallocated", "team=payments", "team="],
        lambda e: e.project is None and e.team in ("payments", None),
    ),
    (
        ("hour", "model"),
        ["hour=2025-03-04T10", "hour=2025-03-04T11:00Z"],
        lambda e: value(e, "hour")[11:13] in ("10", "11") and value(e, "day") == "2025-03-04",
    ),
    (("week",), ["feature=", "environment=staging"], lambda e: e.feature is None and e.environment == "staging"),
    (
        ("team",),
        ["tag:workflow=w2", "day=2025-03-05"],
        lambda e: (e.tags or {}).get("workflow") == "w2" and value(e, "day") == "2025-03-05",
    ),
    ((), ["month=2025-03", "key=k1", "key=k2"], lambda e: e.key in ("k1", "k2")),
    (
        ("cost_center",),
        ["customer=1:a", "customer=-", "trace=t1"],
        lambda e: e.customer in ("1:a", "-") and e.trace_id == "t1",
    ),
]


@pytest.mark.parametrize("case", range(len(WHERE_CASES)))
def test_where_filters_equal_the_raw_sum(filled: tuple[Any, list[UsageEvent]], case: int) -> None:
    store, events = filled
    by, terms, keep = WHERE_CASES[case]
    check(store, events, ReportQuery(by=by, where=parse_where(terms)), keep)


def test_where_matching_nothing_is_an_empty_report(filled: tuple[Any, list[UsageEvent]]) -> None:
    store, _ = filled
    result = store.report(ReportQuery(by=("team",), where=parse_where(["week=2024-W01"])))
    assert result.rows == [] and result.as_json()["totals"]["requests"] == 0


def test_where_keeps_the_callers_visibility(filled: tuple[Any, list[UsageEvent]]) -> None:
    store, events = filled
    projects = sorted({e.project for e in events if e.project})[:1]
    visible = Visibility(projects=frozenset(projects), teams=frozenset({"search", ""}))

    def sees(e: UsageEvent) -> bool:
        return visible.sees(e.project, e.team) and e.service_tier == "flex"

    for by in (("cost_center", "week"), ("hour",), ("tag:workflow",)):
        query = ReportQuery(by=by, where=parse_where(["service_tier=flex"]), visible=visible)
        assert got(store, query) == expected(events, by, sees), by
    # A filter naming what the caller may not see finds nothing.
    hidden = sorted({e.project for e in events if e.project and e.project not in projects})[0]
    query = ReportQuery(by=("project",), where=parse_where([f"project={hidden}"]), visible=visible)
    assert store.report(query).rows == []


# --- order and totals ---------------------------------------------------------------------------------
def test_time_dimensions_come_in_time_order(filled: tuple[Any, list[UsageEvent]]) -> None:
    store, _ = filled
    for by in (("day", "team"), ("team", "hour"), ("week",), ("month", "model"), ("service_tier", "week", "day")):
        rows = store.report(ReportQuery(by=by)).rows
        times = [tuple(r.dims[d] for d in by if d in ("hour", "day", "week", "month")) for r in rows]
        assert times == sorted(times), by
        for a, b in itertools.pairwise(rows):  # within one time, biggest spend first
            if [a.dims[d] for d in by if d in plan.TIME_DIMENSIONS] == [
                b.dims[d] for d in by if d in plan.TIME_DIMENSIONS
            ]:
                assert a.cost_usd >= b.cost_usd, by


def test_totals_carry_every_token_total(filled: tuple[Any, list[UsageEvent]]) -> None:
    store, events = filled
    [want] = expected(events, ()).values()
    result = store.report(ReportQuery(by=("service_tier", "week")))
    totals = result.as_json()["totals"]
    assert totals == {**{f: want[f] for f in FIGURES}, "cost_usd": str(want["cost_usd"])}
    assert result.as_json()["total_cost_usd"] == totals["cost_usd"]

    lines = list(csv.DictReader(io.StringIO(report_csv(result))))
    assert lines[-1]["service_tier"] == "total" and lines[-1]["week"] == ""
    assert {f: int(lines[-1][f]) for f in FIGURES} == {f: want[f] for f in FIGURES}
    assert Decimal(lines[-1]["cost_usd"]) == want["cost_usd"]
    assert len(lines) == len(result.rows) + 1

    console = Console(record=True, width=400)
    report_table(result, console)
    footer = console.export_text().splitlines()[-2 if result.unpriced_requests == 0 else -3]  # above the border
    for figure in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert f"{want[figure]:,}" in footer, figure


# --- old rows: ledgers from before service tiers ---------------------------------------------------
def test_a_ledger_from_before_tiers_reports_them_as_standard(store: Any) -> None:
    events = [dataclasses.replace(e, service_tier=None) for e in ledger_events(3, 300)]
    fill(store, events, random.Random(3))
    undo_migration_0006(store)
    store.close()
    store = type(store)(store.path) if isinstance(store, SQLiteStore) else type(store)(store.url)
    try:
        assert {"0006", "0007"} <= set(store.schema_versions())
        dims = store._query("SELECT count(*) FROM rollup_dims")[0][0]
        later = [dataclasses.replace(e, id=f"{e.id}-later") for e in events]
        store.append_events(later)  # the same values, tier unnamed: the entries 0006 re-keyed
        assert store._query("SELECT count(*) FROM rollup_dims")[0][0] == dims
        named = [event(id="flex-1", service_tier="flex", team="a"), event(id="std-1", service_tier="standard")]
        store.append_events(named)
        everything = [*events, *later, *named]
        check(store, everything, ReportQuery(by=("service_tier", "team", "day")))
        tiers = {r.dims["service_tier"]: r.requests for r in store.report(ReportQuery(by=("service_tier",))).rows}
        assert tiers == {"standard": 601, "flex": 1}
        assert store.list_events(1_000)[-1]["service_tier"] is None  # the event says what was recorded
    finally:
        store.close()


def undo_migration_0006(store: Any) -> None:
    """Back to a ledger from before 0006: no tier columns, full keys of nine values. Migrations run
    in order, so such a ledger has none of the later ones either: 0007 (sources) is undone too."""
    columns = ", ".join(plan.COLUMNS)
    nine = plan.COLUMNS.index("service_tier")
    with store._dialect.transaction() as session:
        rows = session.rows(f"SELECT id, dims_key, {columns} FROM rollup_dims")
        # A full key encodes every column; a lean one has no customer and no tier, and ends with
        # the source 0007 appended (every event here is proxied).
        before = [
            (
                plan.dims_key(tuple(row)[2 : 2 + nine])
                if row[1] == plan.dims_key(tuple(row)[2:])
                else row[1][: -len("5:proxy")],
                row[0],
            )
            for row in rows
        ]
        assert all(row[1].endswith("5:proxy") for row in rows)
        assert len({key for key, _ in before}) == len(rows)
        # Through a prefix no key has, so no intermediate key meets another (a unique index).
        session.executemany("UPDATE rollup_dims SET dims_key = ? WHERE id = ?", [("#" + k, i) for k, i in before])
        session.executemany("UPDATE rollup_dims SET dims_key = ? WHERE id = ?", before)
        session.execute("DROP INDEX usage_events_otel_span")
        for column in ("service_tier", "source", "external_id", "client_reported", "otel_span"):
            session.execute(f"ALTER TABLE usage_events DROP COLUMN {column}")
        session.execute("ALTER TABLE rollup_dims DROP COLUMN service_tier")
        session.execute("ALTER TABLE rollup_dims DROP COLUMN source")
        session.execute("DROP TABLE otel_links")
        session.execute("DROP TABLE ingest_files")
        session.execute("DELETE FROM schema_migrations WHERE version IN ('0006', '0007')")


# --- exports -------------------------------------------------------------------------------------------
def test_events_exports_carry_the_tier(store: Any) -> None:
    store.append_events([event(id="a", service_tier="priority"), event(id="b")])
    items = {e["id"]: e for e in store.list_events()}
    assert (items["a"]["service_tier"], items["b"]["service_tier"]) == ("priority", None)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(events_csv(list(items.values()))))}
    assert (rows["a"]["service_tier"], rows["b"]["service_tier"]) == ("priority", "")


# --- through the gateway: the openai SDK, the CLI and the admin API -------------------------------------
def cli(gateway: Gateway, *args: str, code: int = 0) -> Any:
    gateway.flush()
    result = CliRunner().invoke(main, [*args, "--db", gateway.db_url], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_tiers_requested_through_the_openai_sdk_are_a_report_dimension(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    gateway.team("research", cost_center="CC-4100")
    gateway.project("lab", "research")
    key = gateway.key("k", project="lab")
    client = gateway.openai(key)
    prompt = [{"role": "user", "content": "[[sim input=1000 output=100]]"}]
    for tier in ("priority", "flex", "flex", None):
        extra = {"service_tier": tier} if tier else {}
        client.chat.completions.create(model="gpt-5", messages=prompt, **extra)
    events = gateway.events()
    assert sorted(e["service_tier"] or "-" for e in events) == ["flex", "flex", "priority", "standard"]
    cost = {e["service_tier"]: Decimal(e["cost_usd"]) for e in events}
    assert cost["flex"] < cost["standard"] < cost["priority"]  # each priced at its tier

    data = json.loads(cli(gateway, "report", "--by", "service_tier,cost_center", "--format", "json").stdout)
    rows = {r["service_tier"]: r for r in data["rows"]}
    assert {t: (r["requests"], r["cost_center"]) for t, r in rows.items()} == {
        "flex": (2, "CC-4100"),
        "priority": (1, "CC-4100"),
        "standard": (1, "CC-4100"),
    }
    assert rows["flex"]["cost_usd"] == format_usd(2 * cost["flex"])
    assert data["totals"]["input_tokens"] == 4000 and data["totals"]["output_tokens"] == 400

    only = json.loads(
        cli(
            gateway,
            "report",
            "--by",
            "hour",
            "--where",
            "service_tier=flex",
            "--where",
            "service_tier=priority",
            "--json",
        ).stdout
    )
    assert only["totals"]["requests"] == 3 and only["total_cost_usd"] == format_usd(2 * cost["flex"] + cost["priority"])
    lines = cli(gateway, "report", "--by", "service_tier", "--format", "csv").stdout.splitlines()
    assert lines[-1].startswith('"total",') and len(lines) == 5
    refused = cli(gateway, "report", "--where", "week=2025-W99", code=1)
    assert "expected 2025-W11" in refused.output and "Traceback" not in refused.output

    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"})
    answer = admin.get(
        "/admin/report",
        params=[("by", "service_tier"), ("where", "service_tier=flex"), ("where", "cost_center=CC-4100")],
    )
    assert answer.status_code == 200, answer.text
    assert [(r["service_tier"], r["requests"]) for r in answer.json()["rows"]] == [("flex", 2)]
    assert answer.json()["totals"]["output_tokens"] == 200
    bad = admin.get("/admin/report", params={"where": "colour=red"})
    assert bad.status_code == 400 and "unknown dimension 'colour'" in bad.json()["error"]["message"]
    admin.close()


def test_report_by_hour_on_a_day_boundary(store: Any) -> None:
    # 23:59 and 00:00 UTC fall in two hours, two days and (Sunday to Monday) two ISO weeks.
    sunday = datetime(2025, 3, 9, 23, 59, 59, tzinfo=UTC)
    store.append_events([event(id="s", ts=sunday), event(id="m", ts=sunday + timedelta(seconds=1))])
    rows = store.report(ReportQuery(by=("week", "hour"))).rows
    assert [(r.dims["week"], r.dims["hour"]) for r in rows] == [
        ("2025-W10", "2025-03-09T23:00Z"),
        ("2025-W11", "2025-03-10T00:00Z"),
    ]

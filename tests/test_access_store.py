"""Roles enforced where data is read: every store read a page or an API route makes takes the
caller's visibility, on both backends; and the users part of the store (users, grants,
sessions, tokens, login failures, the server's secret)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from spendgate import management
from spendgate.access.model import Grant, User, Viewer
from spendgate.access.visibility import Visibility
from spendgate.budgets.model import Budget, Scope
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.store import StoreError
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.reports.spec import ReportQuery

_ids = count(1)
T0 = datetime(2025, 3, 1, tzinfo=UTC)
# payments: checkout, refunds; search: ranker. Events also land in no project (with a team or
# without), which only org admins see, or a team's role holders for that team's.
OWNERS = [
    ("checkout", "payments"),
    ("refunds", "payments"),
    ("ranker", "search"),
    (None, "payments"),
    (None, "search"),
    (None, None),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Makes empty stores on the test's backend."""
    opened: list[Any] = []

    def make() -> Any:
        if request.param == "sqlite":
            store: Any = SQLiteStore(tmp_path / f"ledger{len(opened)}.db")
        else:
            from spendgate.ledger.store.dialects.postgresql import PostgresStore

            store = PostgresStore(request.getfixturevalue("postgres_db")())
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(new_store: Callable[[], Any]) -> Any:
    return new_store()


def directory(store: Any) -> None:
    for team in ("payments", "search"):
        management.create_team(store, team)
    for project, team in OWNERS[:3]:
        management.create_project(store, project, team)  # type: ignore[arg-type]


def random_events(n: int, seed: int = 11) -> list[UsageEvent]:
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        project, team = rng.choice(OWNERS)
        events.append(
            UsageEvent(
                id=f"ev-{next(_ids):08d}",
                ts=T0 + timedelta(seconds=rng.randrange(0, 6 * 86400)),
                provider=rng.choice(("openai", "anthropic")),
                model=rng.choice(("gpt-4o", "claude-haiku-4-5")),
                endpoint="/v1/chat/completions",
                stream=False,
                status=rng.choice(("ok", "ok", "error")),
                http_status=200,
                project=project,
                team=team,
                feature=rng.choice(("chat", None)),
                customer=rng.choice(("acme", "globex", None)),
                key=rng.choice(("k-checkout", "k-free", None)),
                trace_id=rng.choice(("t1", "t2")),
                tags=rng.choice(({"agent": "a1"}, {"agent": "a2"}, None)),
                input_tokens=rng.randrange(0, 3000),
                output_tokens=rng.randrange(0, 900),
                cost_usd=rng.choice((Decimal("0.001"), Decimal("0.000000075"), Decimal("1.25"), None)),
            )
        )
    return events


SHAPES = [
    (),
    ("project",),
    ("team",),
    ("team", "project"),
    ("customer",),
    ("key",),
    ("day", "model"),
    ("month", "feature", "environment", "provider"),
    ("trace",),
    ("tag:agent", "project"),
]
VIEWS = [
    Visibility(projects=frozenset({"checkout"})),
    Visibility(projects=frozenset({"checkout", "ranker"})),
    Visibility(projects=frozenset({"checkout", "refunds"}), teams=frozenset({"payments"})),
    Visibility(),
]


@pytest.mark.parametrize("visible", VIEWS, ids=["viewer-of-A", "two-projects", "team-role", "no-role"])
def test_a_scoped_report_and_events_are_exactly_the_visible_ledger(new_store: Callable[[], Any], visible) -> None:
    """The scoped reads of a full ledger equal the unscoped reads of a ledger holding only the
    visible events: every report shape (rollups and raw events), totals, the events list."""
    events = random_events(400)
    full, only_visible = new_store(), new_store()
    full.append_events(events)
    seen = [e for e in events if visible.sees(e.project, e.team)]
    assert len(seen) < len(events)
    only_visible.append_events(seen)
    for by in SHAPES:
        for since, until in ((None, None), (date(2025, 3, 2), date(2025, 3, 4))):
            scoped = full.report(ReportQuery(by=by, since=since, until=until, visible=visible))
            expected = only_visible.report(ReportQuery(by=by, since=since, until=until))
            assert scoped.as_json() == expected.as_json(), (by, since)
            if "trace" not in by and not any(d.startswith("tag:") for d in by):
                raw = full.report(ReportQuery(by=by, since=since, until=until, visible=visible), source="events")
                assert raw.as_json() == expected.as_json(), by
    listed = full.list_events(1000, visible=visible)
    assert [e["id"] for e in listed] == [e["id"] for e in only_visible.list_events(1000)]
    assert {e["project"] for e in listed} <= {*visible.projects, "unallocated"}


def test_a_viewer_of_one_project_gets_that_project_and_nothing_else(store: Any) -> None:
    directory(store)
    events = random_events(300, seed=5)
    store.append_events(events)
    viewer = Viewer.of_user(User("ann"), [Grant("ann", "project", "checkout", "viewer")], store.list_projects())
    mine = [e for e in events if e.project == "checkout"]

    by_project = store.report(ReportQuery(by=("project",), visible=viewer.visibility))
    assert [r.dims["project"] for r in by_project.rows] == ["checkout"]
    assert by_project.total_cost_usd == sum((e.cost_usd for e in mine if e.cost_usd is not None), Decimal(0))
    assert by_project.total_requests == len(mine)
    # Grouped by something else, still only checkout's requests: no other project's name or figure.
    for by in (("team",), ("customer",), ("tag:agent",), ("trace",), ()):
        result = store.report(ReportQuery(by=by, visible=viewer.visibility))
        assert result.total_requests == len(mine), by
        assert result.total_cost_usd == by_project.total_cost_usd, by
    assert {e["project"] for e in store.list_events(10_000, visible=viewer.visibility)} == {"checkout"}
    assert [p.name for p in store.list_projects(viewer.visible_projects())] == ["checkout"]
    assert [t.name for t in store.list_teams(viewer.visible_teams())] == ["payments"]


def test_keys_and_budgets_are_filtered_to_what_a_viewer_sees(store: Any) -> None:
    directory(store)
    management.create_key(store, "k-checkout", project="checkout", lock=True)
    management.create_key(store, "k-checkout-open", project="checkout")  # unlocked: may spend elsewhere
    management.create_key(store, "k-ranker", project="ranker", lock=True)
    management.create_key(store, "k-org")
    for scope in (
        "org",
        "team:payments",
        "team:search",
        "project:checkout",
        "project:ranker",
        "key:k-checkout",
        "key:k-checkout-open",
        "key:k-ranker",
        "customer:acme",
        "feature:chat",
        "tag:agent=a1",
    ):
        store.create_budget(
            Budget(name=scope.replace(":", "-").replace("=", "-"), scope=Scope.parse(scope), limit_usd=Decimal(1))
        )
    keys = store.list_keys()

    viewer = Viewer.of_user(User("ann"), [Grant("ann", "project", "checkout", "viewer")], store.list_projects())
    assert [k.name for k in store.list_keys(viewer.visible_projects())] == ["k-checkout", "k-checkout-open"]
    assert sorted(str(b.scope) for b in store.list_budgets(viewer.budget_scopes(keys))) == [
        "key:k-checkout",
        "project:checkout",
    ]
    team = Viewer.of_user(User("tom"), [Grant("tom", "team", "payments", "manager")], store.list_projects())
    assert sorted(str(b.scope) for b in store.list_budgets(team.budget_scopes(keys))) == [
        "key:k-checkout",
        "project:checkout",
        "team:payments",
    ]
    nobody = Viewer.of_user(User("zed"), [], store.list_projects())
    assert store.list_keys(nobody.visible_projects()) == []
    assert store.list_budgets(nobody.budget_scopes(keys)) == []
    assert store.list_teams(nobody.visible_teams()) == []
    admin = Viewer.of_user(User("root", is_admin=True), [], [])
    assert len(store.list_budgets(admin.budget_scopes(keys))) == 11
    assert len(store.list_keys(admin.visible_projects())) == 4


def test_many_visible_projects_stay_under_the_parameter_limit(store: Any) -> None:
    """A visibility of thousands of projects is split into IN lists SQLite can take."""
    store.append_events([*random_events(50, seed=3)])
    visible = Visibility(projects=frozenset({"checkout", *(f"p{i}" for i in range(2500))}))
    result = store.report(ReportQuery(by=("project",), visible=visible))
    assert {r.dims["project"] for r in result.rows} == {"checkout"}
    assert store.list_events(10, visible=visible)


# --- the users part ------------------------------------------------------------------------------
def test_users_grants_tokens_and_sessions_go_with_their_user(store: Any) -> None:
    directory(store)
    store.create_user("ann", "hash-1")
    with pytest.raises(StoreError, match="already exists"):
        store.create_user("ann", "hash-2")
    store.grant(Grant("ann", "project", "checkout", "viewer"))
    store.grant(Grant("ann", "project", "checkout", "manager"))  # replaces the role held there
    store.grant(Grant("ann", "team", "search", "viewer"))
    assert store.list_grants("ann") == [
        Grant("ann", "project", "checkout", "manager"),
        Grant("ann", "team", "search", "viewer"),
    ]
    with pytest.raises(StoreError, match="unknown project"):
        store.grant(Grant("ann", "project", "nope", "viewer"))
    with pytest.raises(StoreError, match="unknown user"):
        store.grant(Grant("bob", "project", "checkout", "viewer"))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.create_session("session-hash", "ann", now)
    store.create_token("ann", "ci", "token-hash", "sgu-abc…")
    assert store.token_user("token-hash")[0].name == "ann"

    store.delete_user("ann")
    assert store.list_grants() == [] and store.list_tokens() == []
    assert store.token_user("token-hash") is None
    assert store.session_user("session-hash", now - timedelta(hours=1), now - timedelta(hours=1)) is None


def test_a_session_ends_when_idle_too_long_or_too_old_disabled_or_its_password_changes(store: Any) -> None:
    store.create_user("ann", "hash-1")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    store.create_session("s1", "ann", start)
    later = start + timedelta(minutes=30)

    def live(idle: timedelta, absolute: timedelta) -> bool:
        return store.session_user("s1", later - idle, later - absolute) is not None

    assert live(timedelta(hours=1), timedelta(hours=2))
    assert not live(timedelta(minutes=20), timedelta(hours=2))  # unused for 30 min
    store.touch_session("s1", later)
    assert live(timedelta(minutes=20), timedelta(hours=2))
    assert not live(timedelta(minutes=20), timedelta(minutes=25))  # begun 30 min ago
    assert store.delete_expired_sessions(later - timedelta(minutes=20), later - timedelta(minutes=25)) == 1

    store.create_session("s2", "ann", later)
    store.set_user_disabled("ann", True)
    assert store.session_user("s2", start, start) is None and store.count_sessions("ann") == 0
    store.set_user_disabled("ann", False)
    store.create_session("s3", "ann", later)
    store.set_password_hash("ann", "hash-2")
    assert store.count_sessions("ann") == 0
    assert store.user_and_password_hash("ann")[1] == "hash-2"


def test_tokens_are_revoked_one_by_one_and_stop_with_a_disabled_user(store: Any) -> None:
    store.create_user("ann", "h")
    store.create_token("ann", "ci", "hash-ci", "sgu-1…")
    store.create_token("ann", "laptop", "hash-laptop", "sgu-2…")
    with pytest.raises(StoreError, match="already has a token named 'ci'"):
        store.create_token("ann", "ci", "hash-other", "sgu-3…")
    assert store.revoke_token("ann", "ci")["revoked"] is True
    assert store.token_user("hash-ci") is None
    assert store.token_user("hash-laptop") is not None
    store.set_user_disabled("ann", True)
    assert store.token_user("hash-laptop") is None


def test_login_failures_count_per_subject_and_are_forgotten(store: Any) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    subjects = [("user", "ann"), ("ip", "10.0.0.1")]
    for i in range(3):
        store.record_login_failure(subjects, now + timedelta(seconds=i), now - timedelta(days=1))
    assert store.login_failures(subjects) == [(3, now + timedelta(seconds=2))] * 2
    store.clear_login_failures("user", "ann")
    assert store.login_failures(subjects) == [(3, now + timedelta(seconds=2))]
    # A day later the old count is gone: the next failure counts 1.
    day_later = now + timedelta(days=1, seconds=3)
    store.record_login_failure([("user", "ann")], day_later, day_later - timedelta(days=1))
    assert store.login_failures(subjects) == [(1, day_later)]


def test_the_server_secret_is_made_once(store: Any) -> None:
    first = store.server_secret("session_signing", lambda: "made-first")
    assert first == "made-first"
    assert store.server_secret("session_signing", lambda: "made-second") == "made-first"


def test_a_login_upgrades_a_weak_hash_and_refuses_what_it_must(store: Any) -> None:
    from argon2 import PasswordHasher

    from spendgate.access.authenticator import Authenticator
    from spendgate.access.passwords import Passwords
    from spendgate.access.sessions import SessionPolicy

    weak = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store.create_user("ann", weak.hash("ann's password"))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    policy = SessionPolicy(timedelta(hours=1), timedelta(hours=2), secure=False)
    auth = Authenticator(store, policy, clock=lambda: now)  # no SPENDGATE_SECRET_KEY: one kept in the ledger
    outcome = auth.login("ann", "ann's password", "10.0.0.1")
    assert outcome.ok and outcome.viewer is not None and outcome.viewer.name == "ann"
    upgraded = store.user_and_password_hash("ann")[1]
    assert "m=65536" in upgraded and not Passwords().needs_rehash(upgraded)
    # Another replica (another authenticator on the same ledger) reads the same secret.
    assert Authenticator(store, policy, clock=lambda: now).session(outcome.cookie) is not None
    for name in ("", "x" * 5000, "nobody"):
        assert not auth.login(name, "ann's password", "10.0.0.2").ok

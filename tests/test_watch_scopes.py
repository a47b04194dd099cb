"""The live check's grouping of the hour's events per watched scope (``watch/scopes.py``):
one pass, the same events in the same order as matching every event against every scope."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, Scope
from spendgate.watch.scopes import events_by_scope, owner_of, watched_scopes


def test_one_pass_groups_as_matching_every_scope_does() -> None:
    chance = random.Random(11)
    now = datetime(2026, 12, 4, tzinfo=UTC)

    def some(prefix: str, n: int) -> str | None:
        pick = chance.randrange(n + 1)
        return None if pick == n else ("" if pick == 0 else f"{prefix}{pick}")

    events = [
        {
            "ts": now - timedelta(seconds=i),
            "cost": Decimal(i) / 1000,
            "team": some("t", 3),
            "project": some("p", 5),
            "key": some("k", 4),
            "feature": some("f", 3),
            "customer": some("c", 6),
            "trace": some("r", 9),
            "tags": chance.choice([None, {"agent": "a1"}, {"agent": "a2", "env": "x"}]),
        }
        for i in range(3000)
    ]
    rules = ["tag:agent=a1", "tag:env=x", "trace:*", "customer:c-never"]
    scopes = watched_scopes(rules, events)
    kinds = {scope.kind for scope in scopes}
    assert {"org", "team", "project", "key", "feature", "customer", "tag"} <= kinds and "trace" not in kinds
    grouped = events_by_scope(scopes, events)
    assert list(grouped) == [str(scope) for scope in scopes]
    for scope in scopes:
        assert grouped[str(scope)] == [e for e in events if scope.matches(owner_of(e))], scope
    assert grouped["org"] == events and grouped["customer:c-never"] == []
    tagged = Scope.parse("tag:agent=a1", ANOMALY_SCOPE_KINDS)
    assert 0 < len(grouped[str(tagged)]) < len(events)

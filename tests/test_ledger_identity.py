"""Item 28 (issue 9), first half: every ledger has an identity, and its Redis counters are
named after it, so two ledgers sharing one Redis never see each other's spend."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.redis_counters import ledger_namespace
from tests.conftest import BACKENDS, Gateway, open_test_store


@pytest.fixture(params=BACKENDS)
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Database URLs of new, empty ledgers on the test's backend."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_db")
    made = iter(range(1000))
    return lambda: f"sqlite:///{tmp_path / f'ledger{next(made)}.db'}"


def test_a_ledger_gets_its_identity_when_created_and_keeps_it(new_db: Callable[[], str]) -> None:
    first_url, second_url = new_db(), new_db()
    first = open_test_store(first_url)
    identity = first.ledger_id()
    assert re.fullmatch(r"[0-9a-f]{16}", identity)
    assert first.ledger_id() == identity
    # Made with the database, not by the first call: it is already stored.
    assert first._query("SELECT value FROM meta WHERE name = 'ledger_id'")
    first.close()
    again = open_test_store(first_url)
    assert again.ledger_id() == identity
    again.close()
    other = open_test_store(second_url)
    assert other.ledger_id() != identity
    other.close()


def test_a_ledger_made_before_identities_gets_one_on_first_use(new_db: Callable[[], str]) -> None:
    url = new_db()
    store = open_test_store(url)
    with store._dialect.transaction() as session:
        session.execute("DELETE FROM meta WHERE name = 'ledger_id'")
    made = store.ledger_id()
    assert made == store.ledger_id()
    store.close()
    reopened = open_test_store(url)
    assert reopened.ledger_id() == made
    reopened.close()


def test_the_namespace_is_the_configured_one_or_the_ledgers() -> None:
    assert ledger_namespace(None, "00ab") == "spendgate:00ab"
    assert ledger_namespace("shared", "00ab") == "shared"


# --- two ledgers on one Redis ------------------------------------------------------------------
FILLER = "spend " * 500


def _ask() -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": f"[[sim output=200]] {FILLER}"}],
    }


def _with_budget(gateway: Gateway, limit: str) -> str:
    gateway.team("payments")
    gateway.project("checkout", team="payments")
    key = gateway.key("checkout-key", project="checkout")
    gateway.store.create_budget(Budget("payments-monthly", Scope.parse("team:payments"), Decimal(limit)))
    gateway.wait_for_directory()
    return key


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()


def test_two_ledgers_on_one_redis_do_not_see_each_others_spend(
    make_gateway: Callable[..., Gateway], shared_redis: str
) -> None:
    spent = make_gateway(redis_url=shared_redis)
    key = _with_budget(spent, "0.001")
    client = spent.openai(key)
    with pytest.raises(openai.APIStatusError) as refused:  # spend it all on the first ledger
        for _ in range(50):
            client.chat.completions.create(**_ask())
    assert refused.value.status_code == 402
    # Another database, the same budget names, the same Redis: a fresh ledger with $0 spent.
    fresh = make_gateway(redis_url=shared_redis)
    fresh_key = _with_budget(fresh, "0.001")
    answer = fresh.openai(fresh_key).chat.completions.create(**_ask())
    assert answer.usage is not None
    keys = {k.decode() for k in redis.Redis.from_url(shared_redis).keys("*")}
    for gateway in (spent, fresh):
        prefix = f"{ledger_namespace(None, gateway.store.ledger_id())}:"
        assert any(k.startswith(prefix) for k in keys), (prefix, keys)
    assert spent.store.ledger_id() != fresh.store.ledger_id()


def test_a_configured_namespace_is_used_as_it_is(make_gateway: Callable[..., Gateway], shared_redis: str) -> None:
    gateway = make_gateway(redis_url=shared_redis, redis_namespace="team-gw")
    key = _with_budget(gateway, "10")
    gateway.openai(key).chat.completions.create(**_ask())
    keys = {k.decode() for k in redis.Redis.from_url(shared_redis).keys("*")}
    assert keys and all(k.startswith("team-gw:") for k in keys), keys

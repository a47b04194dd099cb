"""Budgets, rate limits and policies enforced by the running gateway (in-process counters)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from spendgate.budgets.enforcer import counter_key
from spendgate.budgets.model import Budget, Policy, RateLimit, Scope
from spendgate.budgets.windows import window_for
from spendgate.gateway import proxy
from tests.conftest import Gateway

# A long prompt whose real token count (the simulator's: raw bytes / 4) is below the
# gateway's reservation estimate (text / 3): every reservation covers the actual cost.
FILLER = "spend " * 500


def _ask(output: int = 200, extra: str = "") -> dict:
    return {
        "model": "gpt-4o-mini",
        "max_tokens": output,
        "messages": [{"role": "user", "content": f"[[sim output={output} {extra}]] {FILLER}"}],
    }


def _setup(gateway: Gateway, **budget_kwargs) -> str:
    gateway.team("payments")
    gateway.project("checkout", team="payments")
    key = gateway.key("checkout-key", project="checkout")
    budget = Budget(**{"name": "payments-monthly", "scope": Scope.parse("team:payments"), **budget_kwargs})
    gateway.store.create_budget(budget)
    gateway.wait_for_directory()
    return key


def _counter_states(gateway: Gateway) -> dict:
    return asyncio.run_coroutine_threadsafe(
        gateway.app.enforcer.counters.states(list(gateway.app.enforcer.counters._spent)),  # type: ignore[attr-defined]
        gateway.app.loop,
    ).result(5)


def _ledger_spend(gateway: Gateway, scope: str, at: datetime, period: str = "month") -> Decimal:
    gateway.flush()
    window = window_for(period, "UTC", at)
    return gateway.store.spend(Scope.parse(scope), window.start, window.end)


def test_sequential_spend_stops_at_the_limit_with_a_402_naming_the_budget(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal("0.001"))
    client = gateway.openai(key)
    answered = 0
    with pytest.raises(openai.APIStatusError) as refused:
        for _ in range(50):
            client.chat.completions.create(**_ask())
            answered += 1
    assert refused.value.status_code == 402
    error = refused.value.body
    assert error["type"] == "budget_exceeded" and error["code"] == "budget_exceeded"
    assert "'payments-monthly'" in error["message"] and "team:payments" in error["message"]
    budget = error["budget"]
    assert (budget["name"], budget["scope"], budget["limit_usd"]) == ("payments-monthly", "team:payments", "0.001")
    assert budget["resets_at"].endswith("T00:00:00Z") and budget["resets_at"][8:10] == "01"
    spent = _ledger_spend(gateway, "team:payments", datetime.now(UTC))
    assert Decimal(budget["spent_usd"]) == spent
    assert answered >= 2 and spent <= Decimal("0.001")  # stopped before passing the limit
    assert len(gateway.sim.log.records) == answered  # the refused request reached no provider
    # The same budget holds on the Anthropic endpoint, in Anthropic's shape.
    with pytest.raises(anthropic.APIStatusError) as refused_anthropic:
        gateway.anthropic(key).messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused_anthropic.value.status_code == 402
    assert refused_anthropic.value.body["error"]["type"] == "budget_exceeded"


def test_responses_carry_the_nearest_budgets_remaining_amount(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal(5))
    gateway.store.create_budget(Budget(name="tight", scope=Scope.parse("project:checkout"), limit_usd=Decimal(1)))
    gateway.wait_for_directory()
    raw = gateway.openai(key).chat.completions.with_raw_response.create(**_ask())
    assert raw.headers["x-spendgate-budget"] == "tight"
    remaining = Decimal(raw.headers["x-spendgate-budget-remaining-usd"])
    assert Decimal("0.99") < remaining < Decimal(1)  # this request's reservation already counted


async def test_a_burst_of_40_never_overspends(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal("0.01"))
    client = gateway.async_openai(key)
    async with client:
        # Spend most of the budget first, sequentially.
        first = await client.chat.completions.with_raw_response.create(**_ask())
        cost = Decimal(first.headers["x-spendgate-cost-usd"])
        while _ledger_spend(gateway, "team:payments", datetime.now(UTC)) + 4 * cost < Decimal("0.01"):
            await client.chat.completions.create(**_ask())
        before = _ledger_spend(gateway, "team:payments", datetime.now(UTC))

        async def one() -> int:
            try:
                await client.chat.completions.create(**_ask())
                return 200
            except openai.APIStatusError as exc:
                return exc.status_code

        statuses = await asyncio.gather(*(one() for _ in range(40)))
    assert set(statuses) == {200, 402}
    after = _ledger_spend(gateway, "team:payments", datetime.now(UTC))
    assert after <= Decimal("0.01"), f"overspent: {after}"
    assert after - before == cost * statuses.count(200)
    assert 1 <= statuses.count(200) <= 4


async def test_a_burst_continuing_stored_conversations_never_overspends(gateway: Gateway) -> None:
    """``previous_response_id`` pulls in input the request does not carry (here the provider
    bills 20,000 input tokens for "continue"): the gateway reserves the model's context
    window, so 40 concurrent continuations cannot pass the budget on a few tokens each."""
    key = _setup(gateway, limit_usd=Decimal("0.05"))
    ask = {
        "model": "gpt-4o-mini",
        "input": "[[sim input=20000 output=50]] continue",
        "previous_response_id": "resp_earlier",
        "max_output_tokens": 50,
    }
    client = gateway.async_openai(key)
    async with client:

        async def one() -> int:
            try:
                await client.responses.create(**ask)
                return 200
            except openai.APIStatusError as exc:
                return exc.status_code

        statuses = await asyncio.gather(*(one() for _ in range(40)))
    cost = Decimal("20000") * Decimal("0.15") / 10**6 + Decimal(50) * Decimal("0.6") / 10**6  # $0.00303
    spent = _ledger_spend(gateway, "team:payments", datetime.now(UTC))
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 402}
    assert spent == cost * statuses.count(200)
    assert spent <= Decimal("0.05"), f"overspent: {spent} ({statuses.count(200)} answered)"


def test_a_base64_image_is_not_reserved_as_text(gateway: Gateway) -> None:
    """Counted as text, 300 KB of base64 would reserve ~100,000 tokens ($0.015 on gpt-4o-mini)
    and be refused by a $0.01 budget that the image (billed ~1,000 tokens) fits easily."""
    key = _setup(gateway, limit_usd=Decimal("0.01"))
    image = "data:image/png;base64," + "iVBORw0KGgo" * 28_000
    content = [
        {"type": "text", "text": "[[sim input=1100 output=20]] what is this?"},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    answer = gateway.openai(key).chat.completions.create(
        model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": content}]
    )
    assert answer.usage is not None and answer.usage.prompt_tokens == 1100
    assert _ledger_spend(gateway, "team:payments", datetime.now(UTC)) > 0


def test_no_reservation_outlives_its_request(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal(10))
    client = gateway.openai(key)
    client.chat.completions.create(**_ask())
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**_ask(extra="status=500"))
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in client.chat.completions.create(**_ask(extra="break_after=2 chunks=6"), stream=True):
            pass
    stream = client.chat.completions.create(**_ask(extra="chunks=40 chunk_delay_ms=30"), stream=True)
    next(iter(stream))
    stream.close()  # the client walks away
    gateway.events()  # flushed: every request has settled
    deadline = datetime.now() + timedelta(seconds=5)
    states = _counter_states(gateway)
    while any(s.reserved for s in states.values()) and datetime.now() < deadline:
        states = _counter_states(gateway)
    [state] = states.values()
    assert state.reserved == 0
    assert state.spent == _ledger_spend(gateway, "team:payments", datetime.now(UTC))


def test_windows_roll_over_without_any_reset_job(make_gateway) -> None:
    now = {"t": datetime(2026, 3, 7, 23, 0, tzinfo=UTC)}
    gateway = make_gateway(clock=lambda: now["t"])
    key = _setup(gateway, limit_usd=Decimal("0.0008"), period="day", timezone="Europe/Paris")
    client = gateway.openai(key)
    # 23:00 UTC on 7 March is already 8 March in Paris: that day's window.
    with pytest.raises(openai.APIStatusError) as refused:
        for _ in range(20):
            client.chat.completions.create(**_ask())
    assert refused.value.status_code == 402
    assert refused.value.body["budget"]["resets_at"] == "2026-03-08T23:00:00Z"
    previous_day = window_for("day", "Europe/Paris", now["t"])
    now["t"] = datetime(2026, 3, 8, 23, 0, tzinfo=UTC)  # midnight in Paris: a new day
    raw = client.chat.completions.with_raw_response.create(**_ask())  # admitted again
    day = window_for("day", "Europe/Paris", now["t"])
    gateway.flush()
    scope = Scope.parse("team:payments")
    assert gateway.store.spend(scope, day.start, day.end) == Decimal(raw.headers["x-spendgate-cost-usd"])
    assert 0 < gateway.store.spend(scope, previous_day.start, previous_day.end) <= Decimal("0.0008")


def test_soft_budgets_never_refuse(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal("0.0001"), soft=True)
    client = gateway.openai(key)
    for _ in range(5):
        client.chat.completions.create(**_ask())
    assert _ledger_spend(gateway, "team:payments", datetime.now(UTC)) > Decimal("0.0001")


def test_budget_spent_equals_the_ledger_for_its_scope_and_window(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal(100))
    gateway.team("growth")
    gateway.project("search", team="growth")
    other = gateway.key("search-key", project="search")
    gateway.store.create_budget(Budget(name="vip", scope=Scope.parse("customer:acme"), limit_usd=Decimal(100)))
    gateway.store.create_budget(Budget(name="org", scope=Scope.parse("org"), limit_usd=Decimal(100)))
    gateway.wait_for_directory()
    for i in range(12):
        headers = {"x-spendgate-customer": "acme"} if i % 3 == 0 else {}
        gateway.openai(key if i % 2 else other, default_headers=headers).chat.completions.create(**_ask(10 + i))
    states = _counter_states(gateway)
    at = datetime.now(UTC)
    by_name = {counter.split("|")[0]: state.spent for counter, state in states.items()}
    assert by_name["payments-monthly"] == _ledger_spend(gateway, "team:payments", at)
    assert by_name["vip"] == _ledger_spend(gateway, "customer:acme", at)
    assert by_name["org"] == _ledger_spend(gateway, "org", at)
    assert by_name["org"] > by_name["payments-monthly"] > 0


def test_counters_are_rebuilt_from_the_ledger_after_a_restart(make_gateway) -> None:
    first = make_gateway()
    key = _setup(first, limit_usd=Decimal("0.001"))
    with pytest.raises(openai.APIStatusError):
        for _ in range(20):
            first.openai(key).chat.completions.create(**_ask())
    first.flush()
    # A new gateway process on the same ledger (fresh counters) keeps refusing.
    second = make_gateway(db=first.db_url)
    with pytest.raises(openai.APIStatusError) as refused:
        second.openai(key).chat.completions.create(**_ask())
    assert refused.value.status_code == 402


def test_rate_limits_refuse_with_429_and_retry_after(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal(100))
    gateway.store.create_limit(RateLimit(Scope.parse("key:checkout-key"), rpm=3))
    gateway.wait_for_directory()
    client = gateway.openai(key)
    for _ in range(3):
        client.chat.completions.create(**_ask())
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**_ask())
    assert limited.value.body["type"] == "rate_limit_exceeded"
    assert "rate limit on key:checkout-key reached: its rpm (3 requests a minute)" in limited.value.body["message"]
    assert limited.value.body["rate_limit"] == {"scope": "key:checkout-key", "limit": "rpm", "rpm": 3}
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    with pytest.raises(anthropic.RateLimitError):
        gateway.anthropic(key).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert len(gateway.sim.log.records) == 3
    # A refused request holds no budget reservation either.
    assert all(s.reserved == 0 for s in _counter_states(gateway).values())


def test_token_rate_limit(gateway: Gateway) -> None:
    key = _setup(gateway, limit_usd=Decimal(100))
    gateway.store.create_limit(RateLimit(Scope.parse("project:checkout"), tpm=3000))
    gateway.wait_for_directory()
    client = gateway.openai(key)
    client.chat.completions.create(**_ask(output=100))  # ~1,100 tokens reserved, ~860 used
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**_ask(output=1800))  # ~2,800 more: over 3,000 this minute
    assert "its tpm (3000 tokens a minute) is used up" in limited.value.body["message"]
    assert limited.value.body["rate_limit"] == {"scope": "project:checkout", "limit": "tpm", "tpm": 3000}


def test_a_request_larger_than_a_tpm_limit_is_a_400_saying_what_to_set(gateway: Gateway) -> None:
    """A request whose own estimate is over a tpm limit can never pass: answered 429, the SDK
    retried it for 100 s. It is a 400 that says to set max_tokens, and counts nothing."""
    key = _setup(gateway, limit_usd=Decimal(100))
    gateway.store.create_limit(RateLimit(Scope.parse("project:checkout"), tpm=3000))
    gateway.wait_for_directory()
    client = gateway.openai(key)
    no_cap = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}  # up to 16,384 out
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**no_cap)
    error = refused.value.body
    assert error["type"] == "invalid_request_error" and error["code"] == "tokens_exceed_rate_limit"
    assert "can never pass the token rate limit on project:checkout (3000 tokens a minute)" in error["message"]
    assert "set max_tokens (max_completion_tokens, max_output_tokens) to at most 2990" in error["message"]
    assert error["rate_limit"]["limit"] == "tpm"
    with pytest.raises(anthropic.BadRequestError, match="can never pass"):
        gateway.anthropic(key).messages.create(
            model="claude-haiku-4-5", max_tokens=5000, messages=[{"role": "user", "content": "hi"}]
        )
    assert gateway.sim.log.records == []
    # Nothing was counted: a request that uses most of the minute's tokens still passes.
    client.chat.completions.create(**no_cap, max_tokens=2900)
    assert len(gateway.sim.log.records) == 1


def test_policies_require_dimensions_per_environment(gateway: Gateway) -> None:
    gateway.store.create_policy(Policy("production", ("feature", "customer")))
    production = gateway.key("prod")
    staging = gateway.key("stage", environment="staging")
    gateway.wait_for_directory()
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai(production, default_headers={"x-spendgate-feature": "search"}).chat.completions.create(**_ask())
    assert refused.value.body["message"] == (
        "this request lacks customer, which the policy for production keys requires; set x-spendgate-customer"
    )
    gateway.openai(
        production, default_headers={"x-spendgate-feature": "search", "x-spendgate-customer": "acme"}
    ).chat.completions.create(**_ask())
    gateway.openai(staging).chat.completions.create(**_ask())  # other environments are free
    assert len(gateway.sim.log.records) == 2


def test_policy_message_names_several_missing_dimensions_once(gateway: Gateway) -> None:
    gateway.store.create_policy(Policy("production", ("feature", "customer", "tag:agent")))
    key = gateway.key("prod")
    gateway.wait_for_directory()
    expected = (
        "this request lacks customer and tag:agent, which the policy for production keys requires;"
        " set x-spendgate-customer and x-spendgate-tags: agent=…"
    )
    headers = {"x-spendgate-feature": "search"}
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai(key, default_headers=headers).chat.completions.create(**_ask())
    assert refused.value.body["message"] == expected
    with pytest.raises(anthropic.BadRequestError) as refused_anthropic:
        gateway.anthropic(key, default_headers=headers).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused_anthropic.value.body["error"]["message"] == expected
    assert gateway.sim.log.records == []


def test_two_gateways_sharing_redis_roll_windows_and_match_the_ledger(make_gateway, redis_url: str) -> None:
    """Two gateways on one ledger and one Redis, with a clock the test moves."""
    import redis

    shared = redis_url.rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(shared).flushdb()
    now = {"t": datetime(2026, 5, 20, 10, 0, tzinfo=UTC)}
    first = make_gateway(clock=lambda: now["t"], redis_url=shared)
    second = make_gateway(clock=lambda: now["t"], redis_url=shared, db=first.db_url)
    key = _setup(first, limit_usd=Decimal("0.001"), period="day")
    second.wait_for_directory()
    clients = [first.openai(key), second.openai(key)]
    answered = 0
    with pytest.raises(openai.APIStatusError) as refused:
        for i in range(40):
            clients[i % 2].chat.completions.create(**_ask())
            answered += 1
    assert refused.value.status_code == 402 and answered >= 2
    first.flush()
    second.flush()
    day = window_for("day", "UTC", now["t"])
    scope = Scope.parse("team:payments")
    spent = first.store.spend(scope, day.start, day.end)
    assert Decimal(refused.value.body["budget"]["spent_usd"]) == spent <= Decimal("0.001")
    assert Decimal(refused.value.body["budget"]["reserved_usd"]) == 0  # nothing left in flight
    now["t"] += timedelta(days=1)  # the next day: a new window, from zero, on both
    for client in clients:
        client.chat.completions.create(**_ask())
    second.flush()
    first.flush()
    following = window_for("day", "UTC", now["t"])
    budgets_list = asyncio.run_coroutine_threadsafe(first.app._budget_statuses(), first.app.loop).result(5)
    assert Decimal(budgets_list[0]["spent_usd"]) == first.store.spend(scope, following.start, following.end) > 0
    assert Decimal(budgets_list[0]["reserved_usd"]) == 0
    # The shared counters (what enforcement compares against) agree with the ledger, to the digit.
    budget = first.app.enforcer.rules.budgets[0]
    counters = first.app.enforcer.counters
    keys = [counter_key(budget, day), counter_key(budget, following)]
    states = asyncio.run_coroutine_threadsafe(counters.states(keys), first.app.loop).result(5)
    assert states[keys[0]].spent == spent
    assert states[keys[1]].spent == first.store.spend(scope, following.start, following.end)


def test_budgets_that_cannot_be_checked_refuse_with_503_and_reach_no_provider(make_gateway, redis_url: str) -> None:
    """Redis cut off: the gateway fails closed, in each provider's shape, and recovers alone."""
    from urllib.parse import urlsplit

    from tests.tcp_proxy import TcpProxy

    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379).start()
    try:
        # redis-hygiene: the fixture's database, through the proxy in front of it
        gateway = make_gateway(redis_url=f"redis://127.0.0.1:{proxy.port}{parts.path}")
        key = _setup(gateway, limit_usd=Decimal(10))
        client = gateway.openai(key)
        client.chat.completions.create(**_ask())
        sent = len(gateway.sim.log.records)
        proxy.cut()
        with pytest.raises(openai.InternalServerError) as unavailable:
            client.chat.completions.create(**_ask())
        assert unavailable.value.status_code == 503
        assert unavailable.value.body["code"] == "enforcement_unavailable"
        assert "nothing was sent upstream" in unavailable.value.body["message"]
        assert unavailable.value.response.headers["retry-after"] == "1"
        with pytest.raises(anthropic.InternalServerError) as unavailable_anthropic:
            gateway.anthropic(key).messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        assert unavailable_anthropic.value.status_code == 503
        assert unavailable_anthropic.value.body["error"]["type"] == "service_unavailable"
        assert len(gateway.sim.log.records) == sent  # nothing reached the provider
        proxy.restore()
        for _ in range(50):  # redis-py reconnects on the next command
            try:
                client.chat.completions.create(**_ask())
                break
            except openai.InternalServerError:
                time.sleep(0.1)
        else:
            pytest.fail("the gateway did not recover when Redis came back")
        assert len(gateway.sim.log.records) == sent + 1
    finally:
        proxy.close()


def _nested(levels: int, leaf: object) -> object:
    for _ in range(levels):
        leaf = {"x": leaf}
    return leaf


def _reserved(gateway: Gateway) -> Decimal:
    return sum((state.reserved for state in _counter_states(gateway).values()), Decimal(0))


def test_deeply_nested_bodies_are_400_before_anything_is_reserved(gateway: Gateway) -> None:
    """A body nested ~300 levels broke re-serialising it (the stream's usage request), and ~1,000
    levels inside an image part broke the input estimate: both after the reservation, which then
    held the budget for an hour. Now they are refused before admission, in each provider's shape."""
    key = _setup(gateway, limit_usd=Decimal(500))
    client = gateway.openai(key)
    client.chat.completions.create(**_ask())  # loads the budget's counter
    with pytest.raises(openai.BadRequestError) as deep_stream:
        client.chat.completions.create(
            **_ask(), stream=True, extra_body={"metadata": {"note": "x"}, "response_format": _nested(300, 1)}
        )
    assert deep_stream.value.body["type"] == "invalid_request_error"
    assert "nests more than 64 levels" in deep_stream.value.body["message"]
    assert _reserved(gateway) == 0
    # Too deep for any JSON encoder to write: the bytes are put together by hand.
    deep = b'{"x":' * 1000 + b"1" + b"}" * 1000
    image_part = b'{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": ' + deep + b"}}"
    deep_image = b'{"max_tokens": 10, "messages": [{"role": "user", "content": [' + image_part + b']}], "model": "%s"}'
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    raw = httpx.post(f"{gateway.url}/v1/chat/completions", content=deep_image % b"gpt-4o-mini", headers=headers)
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    assert _reserved(gateway) == 0
    raw = httpx.post(f"{gateway.url}/v1/messages", content=deep_image % b"claude-haiku-4-5", headers={"x-api-key": key})
    assert raw.status_code == 400
    assert raw.json()["type"] == "error" and raw.json()["error"]["type"] == "invalid_request_error"
    assert _reserved(gateway) == 0
    assert len(gateway.sim.log.records) == 1  # only the first, shallow request went upstream
    # A deep but legitimate body (a JSON schema nested 20 levels) still goes through.
    client.chat.completions.create(**_ask(), extra_body={"response_format": _nested(20, 1)})
    assert len(gateway.sim.log.records) == 2


def test_a_request_that_fails_after_admission_releases_its_reservation(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _setup(gateway, limit_usd=Decimal(500))
    client = gateway.openai(key)
    client.chat.completions.create(**_ask())

    def broken_begin_record(ctx: object) -> dict:
        raise RuntimeError("a bug between admission and the upstream call")

    monkeypatch.setattr(proxy, "begin_record", broken_begin_record)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**_ask())
    assert _reserved(gateway) == 0
    assert len(gateway.sim.log.records) == 1
    monkeypatch.undo()
    client.chat.completions.create(**_ask())
    [state] = _counter_states(gateway).values()
    assert state.reserved == 0
    assert state.spent == _ledger_spend(gateway, "team:payments", datetime.now(UTC))


async def _burst(count: int, call) -> list[int]:  # type: ignore[no-untyped-def]
    async def one(i: int) -> int:
        try:
            await call(i)
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code
        except anthropic.APIStatusError as exc:
            return exc.status_code

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_a_burst_asking_for_several_answers_never_overspends(gateway: Gateway) -> None:
    """Each answer of ``n`` is billed up to max_tokens: 20 concurrent n=10 requests used to
    reserve one answer each and spend ten."""
    key = _setup(gateway, limit_usd=Decimal("0.001"))
    ask = {"model": "gpt-4o-mini", "max_tokens": 50, "n": 10, "messages": [{"role": "user", "content": "a colour?"}]}
    async with gateway.async_openai(key) as client:
        answered: list = []

        async def call(_: int) -> None:
            answered.append(await client.chat.completions.create(**ask))

        statuses = await _burst(20, call)
    assert set(statuses) <= {200, 402} and statuses.count(200) >= 1
    assert all(len(answer.choices) == 10 and answer.usage.completion_tokens == 500 for answer in answered)
    spent = _ledger_spend(gateway, "team:payments", datetime.now(UTC))
    assert spent <= Decimal("0.001"), f"overspent: {spent} ({statuses.count(200)} answered)"


@pytest.mark.parametrize("endpoint", ["chat", "messages"])
async def test_a_burst_of_100_tiny_requests_never_overspends(gateway: Gateway, endpoint: str) -> None:
    """On a tiny request the per-message framing and the reply priming the provider bills are
    most of its input (the simulator bills them as OpenAI's cookbook counts them): reserved as
    text alone, a burst passed a blocking budget by 4–12%."""
    key = _setup(gateway, limit_usd=Decimal("0.0001"))
    prompts = ["hi", "ok?", "2+2", "yes", "A", "name one"]
    async with gateway.async_openai(key) as oai, gateway.async_anthropic(key) as claude:

        async def call(i: int) -> None:
            prompt = prompts[i % len(prompts)]
            if endpoint == "chat":
                messages = [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "name": "u", "content": prompt},
                ]
                await oai.chat.completions.create(model="gpt-4o-mini", max_tokens=2, messages=messages)  # type: ignore[arg-type]
            else:
                await claude.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=2,
                    system="Be brief.",
                    messages=[{"role": "user", "content": prompt}],
                )

        statuses = await _burst(100, call)
    assert set(statuses) == {200, 402}, statuses
    spent = _ledger_spend(gateway, "team:payments", datetime.now(UTC))
    assert spent <= Decimal("0.0001"), f"overspent: {spent} ({statuses.count(200)} answered)"
    # Every answered request was billed more input than its text alone (the framing is real).
    events = gateway.events()
    assert len(events) == statuses.count(200) and all(event["input_tokens"] >= 10 for event in events)


class TickingClock:
    """A second passes at every reading: the time a request was made and the time its alert
    was evaluated are always different instants."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _alerts(gateway: Gateway) -> dict[tuple[str, int | None], dict]:
    asyncio.run_coroutine_threadsafe(gateway.app.alerts.flush(), gateway.app.loop).result(10)
    return {(a["kind"], a["threshold"]): a["payload"] for a in gateway.store.list_alerts()}


def test_a_request_too_large_for_what_remains_is_told_apart_from_an_exhausted_budget(make_gateway) -> None:
    """A request whose worst case was more than what remained got "is exhausted" and fired
    budget.exhausted at 5% spend; and since reservations stop spend just below the limit, the 100%
    alert could never fire. Alerts also carried the time they were evaluated, not of the crossing."""
    gateway = make_gateway(clock=TickingClock(datetime(2026, 11, 1, 0, 30, tzinfo=UTC)))
    key = _setup(gateway, limit_usd=Decimal("0.001"), alert_at=(50, 80, 100))
    client = gateway.openai(key)
    with pytest.raises(openai.APIStatusError) as too_large:
        client.chat.completions.create(**{**_ask(), "max_tokens": 5000})  # up to $0.003 of output
    error = too_large.value.body
    assert too_large.value.status_code == 402 and error["type"] == "budget_exceeded"
    assert error["budget"]["reason"] == "request_exceeds_remaining"
    assert "has $0.001 left of its $0.001 limit (spent $0)" in error["message"]
    assert "could cost up to $0.0031" in error["message"] and "lower max_tokens" in error["message"]
    assert "exhausted" not in error["message"]
    assert _alerts(gateway) == {}  # nothing is spent: no alert

    with pytest.raises(openai.APIStatusError) as spent_out:
        for _ in range(20):
            client.chat.completions.create(**_ask())
    error = spent_out.value.body
    assert spent_out.value.status_code == 402 and error["budget"]["reason"] == "exhausted"
    assert "is exhausted: spent $" in error["message"]
    events = gateway.events()
    spent = sum(Decimal(event["cost_usd"]) for event in events)
    assert Decimal(error["budget"]["spent_usd"]) == spent < Decimal("0.001")  # stopped short of the limit
    alerts = _alerts(gateway)
    assert set(alerts) == {
        ("budget.threshold_crossed", 50),
        ("budget.threshold_crossed", 80),
        ("budget.threshold_crossed", 100),
        ("budget.exhausted", None),
    }
    # Each threshold carries the time of the request that crossed it (the event's ts).
    running = Decimal(0)
    crossed: dict[int, str] = {}
    for event in sorted(events, key=lambda e: e["ts"]):
        running += Decimal(event["cost_usd"])
        for pct in (50, 80):
            if pct not in crossed and running * 100 >= Decimal("0.001") * pct:
                crossed[pct] = event["ts"]
    for pct in (50, 80):
        at = datetime.fromisoformat(alerts[("budget.threshold_crossed", pct)]["at"])
        assert at == datetime.fromisoformat(crossed[pct]), pct
    # 100% and exhausted: the refusal that found the budget spent, after the last request.
    full = alerts[("budget.threshold_crossed", 100)]
    assert full["at"] == alerts[("budget.exhausted", None)]["at"]
    assert datetime.fromisoformat(full["at"]) > max(datetime.fromisoformat(e["ts"]) for e in events)
    assert Decimal(full["spent_usd"]) == spent

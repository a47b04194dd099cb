"""The tagging SDK (spendgate.sdk) around the real openai and anthropic clients, through the
gateway: sync, async, asyncio tasks, threads with a copied context, decorators, nesting."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from spendgate import sdk
from spendgate.attribution.rules import ATTRIBUTION_HEADERS
from spendgate.sdk import attribution
from tests.conftest import Gateway

PROMPT = [{"role": "user", "content": "[[sim input=10 output=5]]"}]


@pytest.fixture
def key(gateway: Gateway) -> str:
    gateway.team("support")
    gateway.project("helpdesk", team="support")
    return gateway.key("helpdesk-app", project="helpdesk")


def _by_trace(gateway: Gateway) -> dict[str | None, dict]:
    return {event["trace_id"]: event for event in gateway.events()}


def test_every_call_inside_carries_the_dimensions_and_none_outside(gateway: Gateway, key: str) -> None:
    client = sdk.instrument(gateway.openai(key))
    claude = sdk.instrument(gateway.anthropic(key))
    with attribution(feature="refunds", customer="acme", trace_id="t-1", tags={"agent": "support-bot"}):
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        list(client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True))
        claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=PROMPT)
        with claude.messages.stream(model="claude-haiku-4-5", max_tokens=20, messages=PROMPT) as stream:
            stream.get_final_message()
    client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    *inside, outside = gateway.events()
    assert len(inside) == 4
    for event in inside:
        assert (event["feature"], event["customer"], event["trace_id"], event["tags"]) == (
            "refunds",
            "acme",
            "t-1",
            {"agent": "support-bot"},
        )
    assert (outside["feature"], outside["customer"], outside["tags"]) == (None, None, {})


def test_nested_scopes_and_explicit_headers(gateway: Gateway, key: str) -> None:
    client = sdk.instrument(gateway.openai(key))
    with attribution(feature="outer", tags={"agent": "a", "tier": "gold"}):
        with attribution(customer="café", tags={"agent": "b"}, trace_id="nested"):
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        # A header the call sets itself wins over the context.
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=PROMPT,
            extra_headers={"x-spendgate-feature": "explicit", "x-spendgate-trace-id": "own"},
        )
    events = _by_trace(gateway)
    nested = events["nested"]
    assert (nested["feature"], nested["customer"], nested["tags"]) == ("outer", "café", {"agent": "b", "tier": "gold"})
    assert (events["own"]["feature"], events["own"]["tags"]) == ("explicit", {"agent": "a", "tier": "gold"})


async def test_async_clients_and_concurrent_tasks_keep_their_own_context(gateway: Gateway, key: str) -> None:
    client = sdk.instrument(gateway.async_openai(key))
    claude = sdk.instrument(gateway.async_anthropic(key))

    @attribution(feature="decorated")
    async def handle(customer: str) -> None:
        with attribution(customer=customer, trace_id=f"task-{customer}"):
            await asyncio.sleep(0)  # let the other tasks interleave
            await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
            await claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=PROMPT)

    try:
        await asyncio.gather(*(handle(f"c{i}") for i in range(6)))
        # A task created inside a scope inherits it.
        with attribution(trace_id="child-task"):
            task = asyncio.get_running_loop().create_task(
                client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
            )
        await task
    finally:
        await client.close()
        await claude.close()
    events = await asyncio.to_thread(gateway.events)
    tasks = [e for e in events if (e["trace_id"] or "").startswith("task-")]
    assert len(tasks) == 12
    for event in tasks:
        assert event["trace_id"] == f"task-{event['customer']}" and event["feature"] == "decorated"
    assert [e["feature"] for e in events if e["trace_id"] == "child-task"] == [None]


def test_threads_with_a_copied_context(gateway: Gateway, key: str) -> None:
    client = sdk.instrument(gateway.openai(key))

    @attribution(feature="threaded")
    def work(customer: str) -> None:
        with attribution(customer=customer, trace_id=f"thread-{customer}"):
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)

    with attribution(tags={"agent": "batcher"}):
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, f"t{i}")) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(sdk.bind(work), ["p0", "p1"]))
        # A thread started without the context carries nothing of it.
        bare = threading.Thread(
            target=client.chat.completions.create, kwargs={"model": "gpt-4o-mini", "messages": PROMPT}
        )
        bare.start()
        bare.join()
    events = gateway.events()
    tagged = [e for e in events if e["trace_id"]]
    assert sorted(e["customer"] for e in tagged) == ["p0", "p1", "t0", "t1", "t2"]
    assert all(e["tags"] == {"agent": "batcher"} and e["feature"] == "threaded" for e in tagged)
    [untagged] = [e for e in events if not e["trace_id"]]
    assert untagged["tags"] == {}


def test_helpers_point_a_client_at_the_gateway(gateway: Gateway, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDGATE_URL", gateway.url)
    monkeypatch.setenv("SPENDGATE_API_KEY", key)
    client = sdk.openai_client(max_retries=0)
    claude = sdk.anthropic_client(max_retries=0)
    try:
        with attribution(feature="helpers"):
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
            claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=PROMPT)
            # with_options shares the instrumented HTTP client.
            client.with_options(timeout=30).chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    finally:
        client.close()
        claude.close()
    assert [e["feature"] for e in gateway.events()] == ["helpers"] * 3
    assert sdk.instrument(client) is client  # idempotent
    assert client._client.event_hooks["request"].count(client._client.event_hooks["request"][0]) == 1


def test_bad_values_fail_at_once_with_the_gateways_rules() -> None:
    with pytest.raises(ValueError, match="longer than 256"):
        attribution(customer="x" * 300)
    with pytest.raises(ValueError):
        attribution(tags={"agent": "a,b"})
    with pytest.raises(ValueError):
        attribution(tags={"bad key!": "v"})
    with pytest.raises(ValueError, match="control character"):
        attribution(feature="a\nb")
    with pytest.raises(TypeError):
        sdk.instrument(object())
    with attribution(feature="f", tags={"a": "1"}):
        assert sdk.headers() == {"x-spendgate-feature": "f", "x-spendgate-tags": "a=1"}
        assert sdk.current() == {"feature": "f", "tags": {"a": "1"}}
    assert sdk.headers() == {}
    assert set(sdk.context.DIMENSION_HEADERS.values()) < set(ATTRIBUTION_HEADERS)


SERVER_DEPENDENCIES = (
    "aiohttp",
    "orjson",
    "uvicorn",
    "uvloop",
    "httptools",
    "click",
    "rich",
    "redis",
    "psycopg",
    "psycopg_pool",
    "genai_prices",
    "starlette",
    "jinja2",
    "argon2",
    "itsdangerous",
    "multipart",
    "tzdata",
)


def test_the_sdk_imports_and_works_without_the_servers_dependencies(gateway: Gateway, key: str) -> None:
    script = f"""
import sys
for name in {SERVER_DEPENDENCIES!r}:
    sys.modules[name] = None  # any import of it now fails
from spendgate.sdk import attribution, openai_client
client = openai_client(url={gateway.url!r}, key={key!r}, max_retries=0)
with attribution(feature="no-server-deps"):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
loaded = sorted(name for name in {SERVER_DEPENDENCIES!r} if sys.modules.get(name) is not None)
assert not loaded, loaded
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    [event] = gateway.events()
    assert event["feature"] == "no-server-deps"

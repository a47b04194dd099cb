"""The admin usage and cost clients against the simulator's fake of the four provider endpoints,
served over loopback: pagination, retries, refused keys, older answers, exact money, hostile data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from spendgate.pricing import PriceBook
from spendgate.providers.admin import (
    AdminApiError,
    AdminKeyError,
    AdminResponseError,
    RetryPolicy,
    admin_client,
    fetch_provider_report,
)
from spendgate.providers.admin import anthropic as anthropic_admin
from spendgate.providers.admin import openai as openai_admin
from spendgate.simulator import (
    AdminApi,
    AdminApiOptions,
    AdminDataset,
    CostRecord,
    UsageRecord,
    costs_from_usage,
    create_simulator_app,
    serve_in_thread,
)

KEYS = {"OPENAI_ADMIN_KEY": "sk-admin-openai-test", "ANTHROPIC_ADMIN_KEY": "sk-ant-admin-test"}
NOV_1 = date(2026, 11, 1)
PROVIDERS = ("openai", "anthropic")
MODELS = {"openai": "gpt-4o-2024-08-06", "anthropic": "claude-sonnet-4-20250514"}
USAGE_PATHS = {"openai": "/v1/organization/usage/completions", "anthropic": "/v1/organizations/usage_report/messages"}
KEY_VARIABLES = [("openai", "OPENAI_ADMIN_KEY"), ("anthropic", "ANTHROPIC_ADMIN_KEY")]


class Sleeps(list[float]):
    """An injectable sleep that records what it was asked to wait, and waits for nothing."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def serve_admin() -> Iterator[Callable[..., tuple[str, AdminApi]]]:
    servers = []

    def start(dataset: AdminDataset, **options: Any) -> tuple[str, AdminApi]:
        admin = AdminApi(dataset, AdminApiOptions(**options))
        server = serve_in_thread(create_simulator_app(admin=admin))
        servers.append(server)
        return server.url, admin

    yield start
    for server in servers:
        server.stop()


def base_url(provider: str, url: str) -> str:
    return f"{url}/v1" if provider == "openai" else url


def client(provider: str, url: str, sleeps: Sleeps | None = None, **kwargs: Any) -> Any:
    environ = kwargs.pop("environ", KEYS)
    return admin_client(
        provider,
        base_url=base_url(provider, url),
        environ=environ,
        sleep=Sleeps() if sleeps is None else sleeps,
        **kwargs,
    )


def month_of_usage(provider: str, days: int = 10) -> list[UsageRecord]:
    return [
        UsageRecord(
            day=NOV_1 + timedelta(days=n),
            provider=provider,
            model=MODELS[provider],
            api_key_id="key_gateway",
            project_or_workspace_id="proj_1" if provider == "openai" else "wrkspc_1",
            input_tokens=10_000 + n,
            cached_input_tokens=2_000,
            output_tokens=500 + n,
            requests=10,
            endpoint="completions" if provider == "openai" else "messages",
        )
        for n in range(days)
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reports_are_read_over_several_pages(provider: str, serve_admin) -> None:
    usage = month_of_usage(provider)
    url, admin = serve_admin(AdminDataset(usage, costs_from_usage(usage, PriceBook())), page_size=3)

    report = await fetch_provider_report(client(provider, url), NOV_1, NOV_1 + timedelta(days=9))

    assert sorted((row.day, row.input_tokens, row.output_tokens) for row in report.usage) == [
        (record.day, record.input_tokens, record.output_tokens) for record in usage
    ]
    assert {row.day for row in report.costs} == {record.day for record in usage}
    assert report.refused == ()
    usage_path = (
        "/v1/organization/usage/completions" if provider == "openai" else "/v1/organizations/usage_report/messages"
    )
    pages = [request for request in admin.requests if request.path == usage_path]
    assert len(pages) == 4  # 10 days, 3 a page
    assert [bool(request.params("page")) for request in pages] == [False, True, True, True]


async def test_openai_usage_and_costs_are_asked_grouped_and_bounded(serve_admin) -> None:
    url, admin = serve_admin(AdminDataset())
    await fetch_provider_report(client("openai", url), NOV_1, date(2026, 11, 30))
    by_path = {request.path: request for request in admin.requests}
    completions = by_path["/v1/organization/usage/completions"]
    assert completions.params("group_by[]") == list(openai_admin.COMPLETIONS_GROUP_BY)
    assert completions.params("start_time") == ["1793491200"]  # 2026-11-01T00:00:00Z
    assert completions.params("end_time") == ["1796083200"]  # 2026-12-01T00:00:00Z, exclusive
    assert completions.params("bucket_width") == ["1d"]
    assert by_path["/v1/organization/usage/embeddings"].params("group_by[]") == list(openai_admin.EMBEDDINGS_GROUP_BY)
    assert by_path["/v1/organization/costs"].params("group_by[]") == list(openai_admin.COSTS_GROUP_BY)


async def test_anthropic_reports_are_asked_grouped_in_rfc3339(serve_admin) -> None:
    url, admin = serve_admin(AdminDataset())
    await fetch_provider_report(client("anthropic", url), NOV_1, date(2026, 11, 30))
    by_path = {request.path: request for request in admin.requests}
    usage = by_path["/v1/organizations/usage_report/messages"]
    assert usage.params("starting_at") == ["2026-11-01T00:00:00Z"]
    assert usage.params("ending_at") == ["2026-12-01T00:00:00Z"]
    assert usage.params("group_by[]") == list(anthropic_admin.USAGE_GROUP_BY)
    assert by_path["/v1/organizations/cost_report"].params("group_by[]") == list(anthropic_admin.COST_GROUP_BY)


async def test_anthropic_usage_is_converted_to_the_ledger_convention(serve_admin) -> None:
    record = UsageRecord(
        day=NOV_1,
        provider="anthropic",
        model=MODELS["anthropic"],
        api_key_id="key_a",
        project_or_workspace_id="wrkspc_1",
        service_tier="batch",
        input_tokens=1_000 + 300 + 40 + 5,  # uncached + cache reads + 5-minute + 1-hour writes
        cached_input_tokens=300,
        cache_write_tokens=45,
        cache_write_1h_tokens=5,
        output_tokens=70,
    )
    url, _ = serve_admin(AdminDataset([record]))
    fetched = await client("anthropic", url).usage(NOV_1, NOV_1)

    [row] = fetched.rows
    assert (row.input_tokens, row.cached_input_tokens, row.cache_write_tokens, row.cache_write_1h_tokens) == (
        1345,
        300,
        45,
        5,
    )
    assert (row.output_tokens, row.requests, row.service_tier, row.api_key_id) == (70, None, "batch", "key_a")
    assert row.project_or_workspace_id == "wrkspc_1"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_429_waits_the_retry_after_it_names(provider: str, serve_admin) -> None:
    usage = month_of_usage(provider, days=2)
    url, admin = serve_admin(AdminDataset(usage), throttle_first=1, retry_after="7")
    sleeps = Sleeps()

    fetched = await client(provider, url, sleeps).usage(NOV_1, NOV_1 + timedelta(days=1))

    assert sleeps == [7.0]
    assert len(fetched.rows) == 2
    statuses = [request.status for request in admin.requests]
    assert statuses[:2] == [429, 200]  # the same page asked again, after the wait
    assert statuses.count(429) == 1


async def test_5xx_is_retried_with_backoff_and_gives_up_after_the_last_attempt(serve_admin) -> None:
    url, admin = serve_admin(AdminDataset(), throttle_first=100, throttle_status=503)
    sleeps = Sleeps()
    c = client("openai", url, sleeps, retry=RetryPolicy(max_attempts=3, base_delay=0.5))

    with pytest.raises(AdminApiError, match=r"still answered HTTP 503 .* after 3 attempts"):
        await c.usage(NOV_1, NOV_1)

    assert sleeps == [0.5, 1.0]
    assert len(admin.requests) == 3


async def test_a_retry_after_is_capped(serve_admin) -> None:
    url, _ = serve_admin(AdminDataset(), throttle_first=1, retry_after="86400")
    sleeps = Sleeps()
    await client("anthropic", url, sleeps, retry=RetryPolicy(max_delay=30)).usage(NOV_1, NOV_1)
    assert sleeps == [30.0]


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_ADMIN_KEY"), ("anthropic", "ANTHROPIC_ADMIN_KEY")]
)
async def test_a_refused_key_names_the_variable_and_never_the_key(provider: str, variable: str, serve_admin) -> None:
    url, _ = serve_admin(AdminDataset(), admin_keys=frozenset({"the-right-key"}))
    wrong = {variable: "sk-wrong-secret-value"}

    with pytest.raises(AdminKeyError) as raised:
        await client(provider, url, environ=wrong).usage(NOV_1, NOV_1)

    message = str(raised.value)
    assert "HTTP 401" in message
    assert variable in message
    assert "sk-wrong-secret-value" not in message


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_ADMIN_KEY"), ("anthropic", "ANTHROPIC_ADMIN_KEY")]
)
def test_a_missing_key_names_the_variable(provider: str, variable: str) -> None:
    with pytest.raises(AdminKeyError, match=f"{variable} is not set"):
        admin_client(provider, base_url="http://127.0.0.1:1", environ={})


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_legacy_answers_without_newer_fields_are_read(provider: str, serve_admin) -> None:
    usage = month_of_usage(provider, days=3)
    costs = costs_from_usage(usage, PriceBook())
    url, _ = serve_admin(AdminDataset(usage, costs), legacy=True)

    report = await fetch_provider_report(client(provider, url), NOV_1, NOV_1 + timedelta(days=2))

    assert report.refused == ()
    assert [row.input_tokens for row in sorted(report.usage, key=lambda r: r.day)] == [10_000, 10_001, 10_002]
    assert {row.service_tier for row in report.usage} == {None}  # older answers do not say
    if provider == "openai":  # no input_cached_tokens in older answers: counted as none cached
        assert {row.cached_input_tokens for row in report.usage} == {0}
    else:  # no cache_creation breakdown: no cache writes counted
        assert {row.cache_write_tokens for row in report.usage} == {0}
    assert sum(row.amount_usd for row in report.costs) == sum(record.amount_usd for record in costs)


async def test_anthropic_amounts_in_cents_become_exact_dollars(serve_admin) -> None:
    cost = CostRecord(NOV_1, "anthropic", Decimal("1.23456"), "claude usage - input", model=MODELS["anthropic"])
    url, _ = serve_admin(AdminDataset(costs=[cost]))

    fetched = await client("anthropic", url).costs(NOV_1, NOV_1)

    [row] = fetched.rows
    assert row.amount_usd == Decimal("1.23456")
    assert str(row.amount_usd) == "1.23456"
    assert row.model == MODELS["anthropic"]


def test_a_cents_string_is_divided_by_a_hundred_exactly() -> None:
    page = {
        "data": [
            {
                "starting_at": "2026-11-01T00:00:00Z",
                "ending_at": "2026-11-02T00:00:00Z",
                "results": [
                    {"amount": "123.456", "currency": "USD"},
                    {"amount": "0.0000000000000000001", "currency": "USD"},
                    {"amount": "7", "currency": "USD"},
                ],
            }
        ]
    }
    rows, refused = anthropic_admin.parse_cost_page(page)
    assert [row.amount_usd for row in rows] == [Decimal("1.23456"), Decimal("1E-21"), Decimal("0.07")]
    assert refused == []


async def test_openai_amounts_keep_every_digit_of_their_json_text(serve_admin) -> None:
    amount = Decimal("0.1234567890123456789")  # more digits than a float holds
    cost = CostRecord(NOV_1, "openai", amount, "gpt-4o-2024-08-06, input", project_or_workspace_id="proj_1")
    url, _ = serve_admin(AdminDataset(costs=[cost]))

    fetched = await client("openai", url).costs(NOV_1, NOV_1)

    [row] = fetched.rows
    assert row.amount_usd == amount
    assert (row.line_item, row.project_or_workspace_id) == ("gpt-4o-2024-08-06, input", "proj_1")


def openai_usage_page(*results: Any, start_time: Any = 1793491200) -> dict[str, Any]:
    return {"object": "page", "data": [{"object": "bucket", "start_time": start_time, "results": list(results)}]}


def test_hostile_counts_are_refused_one_by_one_and_the_rest_kept() -> None:
    good = {"object": "organization.usage.completions.result", "input_tokens": 10, "output_tokens": 2, "model": "m"}
    page = openai_usage_page(
        good,
        {**good, "input_tokens": -5},
        {**good, "output_tokens": 10**18},
        {**good, "input_tokens": True},
        {**good, "input_tokens": Decimal("12.5")},
        {**good, "num_model_requests": "3"},
        {**good, "input_cached_tokens": 11},  # more cached than input
        {**good, "model": "x" * 10_000},
        {**good, "api_key_id": "key\u2028forged line"},
        {**good, "model": "gpt-4o\u202e"},  # a bidirectional override
        "not an object",
    )
    rows, refused = openai_admin.parse_usage_page(page, "completions")
    assert [(row.input_tokens, row.output_tokens) for row in rows] == [(10, 2)]
    reasons = [item.reason for item in refused]
    assert len(reasons) == 10
    assert "input_tokens is negative: -5" in reasons
    assert "output_tokens is implausibly large: 1000000000000000000" in reasons
    assert all("result" in item.where for item in refused)


def test_a_malformed_bucket_is_refused_whole() -> None:
    rows, refused = openai_admin.parse_usage_page(openai_usage_page({"input_tokens": 1}, start_time="yesterday"), "x")
    assert rows == []
    assert [item.reason for item in refused] == ["start_time is not Unix seconds: 'yesterday'"]
    rows, refused = anthropic_admin.parse_usage_page({"data": [{"starting_at": "2026-11-01T00:00:00", "results": []}]})
    assert "no timezone" in refused[0].reason


def test_hostile_amounts_are_refused() -> None:
    def cost(**amount: Any) -> dict[str, Any]:
        return {"object": "organization.costs.result", "amount": amount, "line_item": "x"}

    page = openai_usage_page(
        cost(value=Decimal("1.5"), currency="usd"),
        cost(value=Decimal("-1"), currency="usd"),
        cost(value=Decimal("1e12"), currency="usd"),
        cost(value="1e3", currency="usd"),
        cost(value=1, currency="eur"),
        cost(value=None),
    )
    rows, refused = openai_admin.parse_costs_page(page)
    assert [row.amount_usd for row in rows] == [Decimal("1.5")]
    assert len(refused) == 5


class ScriptedApi:
    """An ASGI app answering GETs with the given bodies in turn (the last one repeats)."""

    def __init__(self, *bodies: bytes) -> None:
        self.bodies = list(bodies)
        self.seen = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = self.bodies[min(self.seen, len(self.bodies) - 1)]
        self.seen += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def scripted() -> Iterator[Callable[..., str]]:
    servers = []

    def start(*bodies: bytes) -> str:
        server = serve_in_thread(ScriptedApi(*bodies))
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    ("bodies", "problem"),
    [
        ((b"<html>oops</html>",), "invalid JSON"),
        ((b"[1, 2]",), "not an object"),
        ((b'{"data": [], "has_more": NaN}',), "invalid JSON"),
        ((orjson.dumps({"data": [], "has_more": True}),), "no usable next_page"),
        ((orjson.dumps({"data": [], "has_more": True, "next_page": "same"}),), "same next_page twice"),
    ],
)
async def test_answers_that_are_not_report_pages_stop_with_a_clear_error(bodies, problem: str, scripted) -> None:
    url = scripted(*bodies)
    with pytest.raises(AdminResponseError, match=problem):
        await client("openai", url).costs(NOV_1, NOV_1)


async def test_an_unreachable_provider_is_an_error_after_the_attempts() -> None:
    sleeps = Sleeps()
    c = admin_client(
        "openai",
        base_url="http://127.0.0.1:9/v1",
        environ=KEYS,
        sleep=sleeps,
        retry=RetryPolicy(max_attempts=2),
    )
    with pytest.raises(AdminApiError, match="after 2 attempts"):
        await c.costs(NOV_1, NOV_1)
    assert sleeps == [1.0]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_fake_refuses_what_the_provider_refuses(provider: str, serve_admin) -> None:
    url, _ = serve_admin(AdminDataset())
    path = USAGE_PATHS[provider]

    headers = (
        {"authorization": "Bearer k"} if provider == "openai" else {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    )
    start = ("start_time", "1793491200") if provider == "openai" else ("starting_at", "2026-11-01T00:00:00Z")
    async with aiohttp.ClientSession() as session:
        for query in ([start, ("group_by[]", "colour")], [start, ("limit", "32")], [start, ("page", "garbage")], []):
            async with session.get(url + path, params=query, headers=headers) as resp:
                assert resp.status == 400, query
                body = await resp.json()
                assert "error" in body
        if provider == "anthropic":  # the version header is required
            async with session.get(url + path, params=[start], headers={"x-api-key": "k"}) as resp:
                assert resp.status == 400

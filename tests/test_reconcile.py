"""Reconciliation: the ledger beside the provider's own reports, read from the simulator's fake of
the admin endpoints over loopback, and the pure comparison, import and price-proposal rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.pricing import PriceBook, cost, load_overrides
from spendgate.providers.admin import ProviderReport, admin_client, fetch_provider_report
from spendgate.reconcile import (
    ROW_FIELDS,
    UNKEYED,
    LedgerUsageRow,
    ProviderLine,
    Tolerance,
    Verdict,
    compare,
    ledger_rows_from_report,
    propose_overrides,
    reconcile,
    rows_to_import,
)
from spendgate.reconcile.arithmetic import allocate
from spendgate.reports.spec import ReportResult, ReportRow
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
NOVEMBER = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]
MODELS = {
    "openai": [("gpt-4o-2024-08-06", "completions"), ("gpt-4o-mini-2024-07-18", "completions")],
    "anthropic": [("claude-sonnet-4-20250514", "messages"), ("claude-haiku-4-5", "messages")],
}
PROJECT = {"openai": "proj_checkout", "anthropic": "wrkspc_checkout"}
PROVIDERS = ("openai", "anthropic")
LIST = PriceBook()  # genai-prices list prices, no overrides


class NoSleep(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake_provider() -> Iterator[Callable[..., str]]:
    """Serves an admin dataset on loopback, in small pages, and answers the first call with a 429."""
    servers = []

    def start(dataset: AdminDataset) -> str:
        admin = AdminApi(dataset, AdminApiOptions(page_size=4, throttle_first=1, retry_after="3"))
        server = serve_in_thread(create_simulator_app(admin=admin))
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


async def fetch(provider: str, url: str) -> ProviderReport:
    base_url = f"{url}/v1" if provider == "openai" else url
    client = admin_client(provider, base_url=base_url, environ=KEYS, sleep=NoSleep())
    return await fetch_provider_report(client, NOVEMBER[0], NOVEMBER[-1])


def direct_share(provider: str, day: date, model: str, endpoint: str) -> UsageRecord:
    """What one provider key used directly on a day: 1/20 of the model's traffic that day."""
    n = day.day
    writes = 60 + n if provider == "anthropic" else 0
    return UsageRecord(
        day=day,
        provider=provider,
        model=model,
        api_key_id="key_direct",
        project_or_workspace_id=PROJECT[provider],
        input_tokens=40_000 + 1_000 * n + writes,
        cached_input_tokens=8_000 + 10 * n,
        cache_write_tokens=writes,
        cache_write_1h_tokens=20 if writes else 0,
        output_tokens=2_000 + 37 * n,
        requests=5,
        endpoint=endpoint,
    )


def times(record: UsageRecord, factor: int, key: str) -> UsageRecord:
    return replace(
        record,
        api_key_id=key,
        input_tokens=record.input_tokens * factor,
        cached_input_tokens=record.cached_input_tokens * factor,
        cache_write_tokens=record.cache_write_tokens * factor,
        cache_write_1h_tokens=record.cache_write_1h_tokens * factor,
        output_tokens=record.output_tokens * factor,
        requests=record.requests * factor,
    )


def month(provider: str) -> tuple[list[UsageRecord], list[UsageRecord]]:
    """(the gateway's traffic, the direct traffic) of a month: 95% and 5% of every day and model."""
    direct = [direct_share(provider, day, model, endpoint) for day in NOVEMBER for model, endpoint in MODELS[provider]]
    gateway = [times(record, 19, "key_gateway") for record in direct]
    return gateway, direct


def ledger_of(usage: list[UsageRecord], prices: PriceBook = LIST) -> list[LedgerUsageRow]:
    """What the gateway's ledger holds for this traffic, priced as the gateway prices it: each
    record stands for many requests below any long-context threshold, so at the base prices."""
    rows = []
    for record in usage:
        sheet = prices.sheet(record.provider, record.model, datetime.combine(record.day, time(12), UTC))
        assert sheet is not None
        rows.append(
            LedgerUsageRow(
                day=record.day,
                model=record.model,
                input_tokens=record.input_tokens,
                cached_input_tokens=record.cached_input_tokens,
                cache_write_tokens=record.cache_write_tokens,
                cache_write_1h_tokens=record.cache_write_1h_tokens,
                output_tokens=record.output_tokens,
                requests=record.requests,
                cost_usd=cost(record.usage(), sheet.base),
            )
        )
    return rows


def list_cost(records: list[UsageRecord]) -> Decimal:
    return sum((cost.amount_usd for cost in costs_from_usage(records, LIST)), Decimal(0))


def imported(rows: list[Any]) -> list[LedgerUsageRow]:
    """The ledger events an import of ``rows`` would store (``source: provider_import``)."""
    return [
        LedgerUsageRow(
            day=row.day,
            model=row.model,
            input_tokens=row.input_tokens,
            cached_input_tokens=row.cached_input_tokens,
            cache_write_tokens=row.cache_write_tokens,
            cache_write_1h_tokens=row.cache_write_1h_tokens,
            output_tokens=row.output_tokens,
            requests=row.requests or 0,
            cost_usd=row.cost_usd,
            provider_key_id=row.api_key_id,
        )
        for row in rows
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_month_with_5_percent_direct_traffic_is_found_unseen_and_imported_to_the_cent(
    provider: str, fake_provider
) -> None:
    gateway, direct = month(provider)
    usage = gateway + direct
    url = fake_provider(AdminDataset(usage, costs_from_usage(usage, LIST)))
    report = await fetch(provider, url)
    ledger = ledger_of(gateway)

    result = reconcile(report, ledger, LIST)

    unseen = [row for row in result.rows if row.verdict is Verdict.UNSEEN_BY_GATEWAY]
    matched = [row for row in result.rows if row.verdict is Verdict.MATCHED]
    assert len(unseen) == len(matched) == 60  # 30 days x 2 models, each side
    assert {row.api_key_id for row in unseen} == {"key_direct"}
    assert {(row.api_key_id, row.gateway_traffic) for row in matched} == {("key_gateway", True)}
    assert result.unseen_usd == list_cost(direct)
    assert result.total_provider_usd == list_cost(usage)
    assert result.total_ledger_usd == sum(row.cost_usd for row in ledger)
    assert result.drift_percent == Decimal("5")
    document = result.as_json()
    assert document["drift_percent"] == "5"
    assert document["unseen_usd"] == str(list_cost(direct).normalize())
    assert set(document["rows"][0]) == set(ROW_FIELDS)

    to_import = rows_to_import(result)
    assert len(to_import) == 60
    assert {row.api_key_id for row in to_import} == {"key_direct"}
    assert sum(row.input_tokens for row in to_import) == sum(record.input_tokens for record in direct)
    assert sum(row.cost_usd for row in to_import) == list_cost(direct)

    after = reconcile(report, ledger + imported(to_import), LIST)
    assert after.total_ledger_usd == after.total_provider_usd  # to the cent, and every digit after it
    assert after.verdict_counts() == {
        "matched": 120,
        "priced_differently": 0,
        "unseen_by_gateway": 0,
        "gateway_only": 0,
    }
    assert after.drift_percent == 0
    assert rows_to_import(after) == []  # importing again adds nothing


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_negotiated_15_percent_discount_is_detected_and_proposed(
    provider: str, fake_provider, tmp_path: Path
) -> None:
    gateway, _ = month(provider)
    url = fake_provider(AdminDataset(gateway, costs_from_usage(gateway, LIST, billed_ratio=Decimal("0.85"))))
    report = await fetch(provider, url)

    result = reconcile(report, ledger_of(gateway), LIST)

    assert {row.verdict for row in result.rows} == {Verdict.PRICED_DIFFERENTLY}
    assert {row.effective_rate for row in result.rows} == {Decimal("0.85")}
    assert {row.provider_cost_basis for row in result.rows} == {"billed"}
    assert result.drift_percent == Decimal("-17.6471")  # the ledger is 1/0.85 of the bill
    proposals, evidence = propose_overrides(result)
    [proposal] = proposals
    assert (proposal.provider, proposal.model, proposal.discount_percent) == (provider, "*", Decimal("15"))
    assert proposal.effective_from == NOVEMBER[0]
    assert {item.ratio for item in evidence} == {Decimal("0.85")}
    assert 'discount_percent = "15"' in proposal.toml()

    overrides = tmp_path / "prices.toml"
    overrides.write_text(proposal.toml())
    negotiated = PriceBook(load_overrides(overrides))
    repriced = reconcile(report, ledger_of(gateway, negotiated), LIST)
    assert {row.verdict for row in repriced.rows} == {Verdict.MATCHED}
    assert repriced.total_ledger_usd == repriced.total_provider_usd
    assert propose_overrides(repriced)[0] == []  # in place: nothing more to propose


def line(day: date, model: str, key: str | None, tokens: tuple[int, int], cost: str) -> ProviderLine:
    """The provider's usage of a day, model and key, at ``cost`` (list price)."""
    return ProviderLine(
        day, model, key, None, input_tokens=tokens[0], output_tokens=tokens[1], list_cost_usd=Decimal(cost)
    )


def ledger_row(day: date, model: str, tokens: tuple[int, int], cost: str | None, **kwargs: Any) -> LedgerUsageRow:
    return LedgerUsageRow(
        day,
        model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_usd=None if cost is None else Decimal(cost),
        **kwargs,
    )


D = date(2026, 11, 5)


@pytest.mark.parametrize(
    ("ledger_cost", "provider_cost", "expected"),
    [
        ("1.00", "1.009", Verdict.MATCHED),  # within $0.01
        ("1.00", "1.02", Verdict.PRICED_DIFFERENTLY),
        ("1000", "1004.99", Verdict.MATCHED),  # within 0.5%
        ("1000", "1005.03", Verdict.PRICED_DIFFERENTLY),
        (None, "1.00", Verdict.PRICED_DIFFERENTLY),  # the ledger has no price for it
    ],
)
def test_costs_match_within_the_tolerance(ledger_cost: str | None, provider_cost: str, expected: Verdict) -> None:
    result = compare(
        "openai",
        D,
        D,
        [ledger_row(D, "gpt-4o", (1000, 100), ledger_cost)],
        [line(D, "gpt-4o", "key_gw", (1000, 100), provider_cost)],
    )
    [row] = result.rows
    assert row.verdict is expected


@pytest.mark.parametrize(
    ("ledger_tokens", "expected"),
    [
        ((100_000, 1000), Verdict.MATCHED),
        ((99_600, 1000), Verdict.MATCHED),  # 0.4% fewer input tokens: close enough
        ((99_000, 1000), Verdict.UNSEEN_BY_GATEWAY),  # 1% less: some requests went around it
        ((101_000, 1000), Verdict.GATEWAY_ONLY),  # more than the provider counted
    ],
)
def test_token_counts_decide_between_unseen_and_gateway_only(ledger_tokens: tuple[int, int], expected: Verdict) -> None:
    result = compare(
        "openai",
        D,
        D,
        [ledger_row(D, "gpt-4o", ledger_tokens, "0.26")],
        [line(D, "gpt-4o", "key_gw", (100_000, 1000), "0.26")],
    )
    [row] = result.rows
    assert row.verdict is expected


def test_ledger_spend_the_provider_never_reported_is_gateway_only() -> None:
    other_day = D + timedelta(days=1)
    result = compare(
        "anthropic",
        D,
        other_day,
        [ledger_row(D, "claude-haiku-4-5", (10, 1), "0.5"), ledger_row(other_day, "claude-haiku-4-5", (10, 1), "0.5")],
        [line(D, "claude-haiku-4-5", "key_gw", (10, 1), "0.5")],
    )
    assert [(row.day, row.verdict) for row in result.rows] == [(D, Verdict.MATCHED), (other_day, Verdict.GATEWAY_ONLY)]
    assert result.rows[1].provider.cost_usd == 0


def test_drift_percent_is_exact_to_four_places() -> None:
    def drift(ledger_cost: str, provider_cost: str) -> Decimal | None:
        return compare(
            "openai",
            D,
            D,
            [ledger_row(D, "m", (1, 1), ledger_cost)] if ledger_cost else [],
            [line(D, "m", "k", (1, 1), provider_cost)] if provider_cost else [],
        ).drift_percent

    assert drift("2", "3") == Decimal("33.3333")
    assert drift("2", "2") == 0
    assert drift("3.15", "3") == Decimal("-5")
    assert drift("", "") == 0
    assert drift("1", "") is None  # the provider billed nothing the ledger could be compared with


def test_the_gateway_key_is_the_one_whose_usage_the_ledger_holds() -> None:
    ledger = [ledger_row(D, "gpt-4o", (950, 95), "1.9")]
    lines = [
        line(D, "gpt-4o", "key_aaa_direct", (50, 5), "0.1"),
        line(D, "gpt-4o", "key_zzz_gateway", (950, 95), "1.9"),
    ]
    inferred = compare("openai", D, D, ledger, lines)
    assert [(row.api_key_id, row.gateway_traffic, row.verdict) for row in inferred.rows] == [
        ("key_zzz_gateway", True, Verdict.MATCHED),
        ("key_aaa_direct", False, Verdict.UNSEEN_BY_GATEWAY),
    ]
    # Told which key is the gateway's, it is believed even where the usage says otherwise.
    told = compare("openai", D, D, ledger, lines, gateway_key_ids={"key_aaa_direct"})
    assert [(row.api_key_id, row.verdict) for row in told.rows] == [
        ("key_aaa_direct", Verdict.GATEWAY_ONLY),
        ("key_zzz_gateway", Verdict.UNSEEN_BY_GATEWAY),
    ]


def test_usage_reported_under_no_key_is_imported_once() -> None:
    ledger = [ledger_row(D, "claude-haiku-4-5", (950, 95), "0.95")]
    lines = [
        line(D, "claude-haiku-4-5", "key_gw", (950, 95), "0.95"),
        line(D, "claude-haiku-4-5", None, (50, 5), "0.05"),  # the Console workbench: no API key
    ]
    first = compare("anthropic", D, D, ledger, lines)
    assert [(row.api_key_id, row.verdict) for row in first.rows] == [
        ("key_gw", Verdict.MATCHED),
        (None, Verdict.UNSEEN_BY_GATEWAY),
    ]
    [to_import] = rows_to_import(first)
    assert to_import.api_key_id == UNKEYED

    again = compare("anthropic", D, D, ledger + imported([to_import]), lines)
    assert {row.verdict for row in again.rows} == {Verdict.MATCHED}
    assert rows_to_import(again) == []


@pytest.mark.parametrize("configured", [None, {"key_gw"}])
def test_a_report_not_by_key_sits_beside_the_ledger(configured: set[str] | None) -> None:
    result = compare(
        "openai",
        D,
        D,
        [ledger_row(D, "gpt-4o", (950, 95), "0.95")],
        [line(D, "gpt-4o", None, (1000, 100), "1.00")],
        gateway_key_ids=configured,
    )
    [row] = result.rows
    assert (row.gateway_traffic, row.verdict, row.unseen_usd) == (True, Verdict.UNSEEN_BY_GATEWAY, Decimal("0.05"))


def test_a_proposed_entry_quotes_a_hostile_model_name() -> None:
    from spendgate.reconcile import PriceEvidence, PriceProposal

    evidence = PriceEvidence(
        'x" \nmodel = "*',
        3,
        D,
        D,
        Decimal(85),
        Decimal(100),
        Decimal(0),
        Decimal(0),
        Decimal("0.85"),
        Decimal("0.85"),
        Decimal("0.85"),
    )
    text = PriceProposal("openai", evidence.model, Decimal(15), D, (evidence,)).toml()
    import tomllib

    [entry] = tomllib.loads(text)["price"]
    assert entry["model"] == evidence.model


def test_an_import_is_the_surplus_never_a_negative() -> None:
    result = compare(
        "openai",
        D,
        D,
        [ledger_row(D, "gpt-4o", (900, 100), "1.00"), ledger_row(D, "gpt-4o-mini", (500, 50), "0.50")],
        [line(D, "gpt-4o", "key_gw", (1000, 90), "1.10"), line(D, "gpt-4o-mini", "key_gw", (400, 40), "0.40")],
    )
    rows = rows_to_import(result)
    assert [(row.model, row.input_tokens, row.output_tokens, row.cost_usd) for row in rows] == [
        ("gpt-4o", 100, 0, Decimal("0.10"))
    ]
    assert rows[0].api_key_id == "key_gw"
    assert rows[0].gateway_traffic


async def test_openai_costs_that_name_no_model_are_set_apart_and_usage_is_priced_at_list(fake_provider) -> None:
    gateway, _ = month("openai")
    storage = [CostRecord(day, "openai", Decimal("0.10"), "File storage", cost_type="storage") for day in NOVEMBER]
    display_names = [CostRecord(day, "openai", Decimal("2.5"), "GPT-4o mini") for day in NOVEMBER]
    url = fake_provider(AdminDataset(gateway, storage + display_names))

    result = reconcile(await fetch("openai", url), ledger_of(gateway), LIST)

    assert {row.provider_cost_basis for row in result.rows} == {"list"}
    assert {row.verdict for row in result.rows} == {Verdict.MATCHED}
    assert result.provider_other_usd == Decimal("78.00")  # (0.10 + 2.5) x 30, outside the drift
    assert result.drift_percent == 0
    assert propose_overrides(result) == ([], [])  # no billed line per model: no evidence


def test_line_items_are_matched_to_models_with_or_without_their_date() -> None:
    from spendgate.providers.admin import ProviderCostRow, ProviderUsageRow
    from spendgate.reconcile import provider_side

    usage = [
        ProviderUsageRow(D, "openai", model, "key", "proj", None, 1000, 0, 0, 0, 100, 1, "completions")
        for model in ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18")
    ]
    costs = [
        ProviderCostRow(
            D, "openai", Decimal("1"), line_item="gpt-4o-2024-08-06, input", project_or_workspace_id="proj"
        ),
        ProviderCostRow(D, "openai", Decimal("2"), line_item="gpt-4o-mini, output", project_or_workspace_id="proj"),
        ProviderCostRow(D, "openai", Decimal("4"), line_item="gpt-4o, output", project_or_workspace_id="proj"),
        ProviderCostRow(D, "openai", Decimal("8"), line_item="web search tool calls", project_or_workspace_id="proj"),
    ]
    side = provider_side(usage, costs, LIST)
    assert {line.model: line.billed_cost_usd for line in side.lines} == {
        "gpt-4o-2024-08-06": Decimal("5"),
        "gpt-4o-mini-2024-07-18": Decimal("2"),
    }
    assert [cost.line_item for cost in side.other_costs] == ["web search tool calls"]


def test_a_billed_line_is_split_between_keys_to_the_last_digit() -> None:
    shares = allocate(Decimal("1"), [Decimal(1), Decimal(1), Decimal(1)])
    assert sum(shares) == Decimal("1")
    assert shares == [Decimal("0.333333333334"), Decimal("0.333333333333"), Decimal("0.333333333333")]
    odd = allocate(Decimal("0.1234567890123456789"), [Decimal("2.5"), Decimal("0"), Decimal("7.5")])
    assert sum(odd) == Decimal("0.1234567890123456789")
    assert odd[1] == 0
    assert allocate(Decimal("3"), [Decimal(0), Decimal(0)]) == [Decimal("1.5"), Decimal("1.5")]


def test_ledger_rows_come_from_a_report_by_day_provider_and_model() -> None:
    report = ReportResult(
        by=("day", "provider", "model", "tag:provider_key"),
        rows=[
            ReportRow(
                {"day": "2026-11-05", "provider": "openai", "model": "gpt-4o", "tag:provider_key": None},
                Decimal("1.5"),
                3,
                300,
                30,
                100,
            ),
            ReportRow(
                {"day": "2026-11-05", "provider": "anthropic", "model": "claude", "tag:provider_key": None},
                Decimal("9"),
                1,
                1,
                1,
            ),
            ReportRow(
                {"day": "2026-11-05", "provider": "openai", "model": "x", "tag:provider_key": "key_direct"},
                Decimal(0),
                2,
                10,
                1,
                unpriced_requests=2,
            ),
        ],
    )
    rows = ledger_rows_from_report(report, "openai", key_dimension="tag:provider_key")
    assert rows == [
        LedgerUsageRow(D, "gpt-4o", 300, 100, 0, 0, 30, 3, Decimal("1.5"), 0, None),
        LedgerUsageRow(D, "x", 10, 0, 0, 0, 1, 2, None, 2, "key_direct"),
    ]
    with pytest.raises(ValueError, match="grouped by day and model"):
        ledger_rows_from_report(ReportResult(by=("day",)), "openai")


def test_tolerance_can_be_tightened() -> None:
    strict = Tolerance(usd=Decimal("0"), relative=Decimal("0"))
    result = compare(
        "openai", D, D, [ledger_row(D, "m", (10, 1), "1.000")], [line(D, "m", "k", (10, 1), "1.001")], tolerance=strict
    )
    assert result.rows[0].verdict is Verdict.PRICED_DIFFERENTLY
    assert result.rows[0].effective_rate == Decimal("1.001")

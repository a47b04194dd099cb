"""`spendgate reconcile` and `spendgate import provider` on SQLite and PostgreSQL, against the
simulator's fakes of the providers' admin reports over loopback (pages of 4 days, a 429 with
retry-after first): a month where 5% of the traffic went around the gateway is found and imported
to the cent, a re-import changes nothing, and a negotiated discount is proposed as an override."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spendgate.cli.main import main
from spendgate.ledger.events import UsageEvent
from spendgate.money import format_usd
from spendgate.pricing import PriceBook, cost
from spendgate.reports.spec import ReportQuery
from spendgate.simulator import AdminApiOptions, UsageRecord, costs_from_usage
from tests.test_reconcile import NOVEMBER, PROVIDERS, month

ADMIN_KEYS = {"OPENAI_ADMIN_KEY": "sk-admin-openai-test", "ANTHROPIC_ADMIN_KEY": "sk-ant-admin-test"}
RANGE = ["--since", NOVEMBER[0].isoformat(), "--until", NOVEMBER[-1].isoformat()]
CONFIG = """
[reconcile]
drift_threshold_percent = 1

[[reconcile.map]]
api_key_id = "key_direct"
project = "checkout"
environment = "production"
"""


def proxied_events(usage: list[UsageRecord]) -> list[UsageEvent]:
    """What the gateway's ledger holds for this traffic: one event per record, at list prices
    (each record stands for many requests below any long-context threshold: the base prices)."""
    prices = PriceBook()
    events = []
    for n, record in enumerate(usage):
        at = datetime.combine(record.day, time(12), UTC)
        sheet = prices.sheet(record.provider, record.model, at)
        assert sheet is not None
        events.append(
            UsageEvent(
                id=f"{n:032x}",
                ts=at,
                provider=record.provider,
                model=record.model,
                endpoint="/v1/messages" if record.provider == "anthropic" else "/v1/chat/completions",
                stream=False,
                status="ok",
                http_status=200,
                project="checkout",
                team="payments",
                input_tokens=record.input_tokens,
                cached_input_tokens=record.cached_input_tokens,
                cache_write_tokens=record.cache_write_tokens,
                cache_write_1h_tokens=record.cache_write_1h_tokens,
                output_tokens=record.output_tokens,
                cost_usd=cost(record.usage(), sheet.base),
                service_tier="standard",
            )
        )
    return events


@pytest.fixture
def ledger(make_gateway, tmp_path: Path) -> Any:
    gateway = make_gateway()
    gateway.team("payments")
    gateway.project("checkout", "payments")
    # Small pages, and the first call answered 429 with retry-after: 1.
    gateway.sim.admin.options = AdminApiOptions(page_size=4, throttle_first=1, retry_after="1")
    config = tmp_path / "spendgate.toml"
    config.write_text(CONFIG)

    def run(*args: str) -> Any:
        env = {
            **ADMIN_KEYS,
            "SPENDGATE_OPENAI_BASE_URL": f"{gateway.sim.url}/v1",
            "SPENDGATE_ANTHROPIC_BASE_URL": gateway.sim.url,
        }
        result = CliRunner().invoke(main, [*args, "--db", gateway.db_url, "--config", str(config)], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output) if "--json" in args or "json" in args else result.output

    gateway.run = run
    return gateway


def totals(store: Any, provider: str) -> dict[str, Any]:
    report = store.report(ReportQuery(by=("provider", "source")))
    return {
        row.dims["source"]: (row.cost_usd, row.input_tokens, row.output_tokens)
        for row in report.rows
        if row.dims["provider"] == provider
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_direct_traffic_is_found_unseen_imported_to_the_cent_and_reimport_changes_nothing(ledger, provider) -> None:
    gateway_usage, direct_usage = month(provider)
    billed = costs_from_usage([*gateway_usage, *direct_usage], PriceBook())
    ledger.sim.admin.dataset.add([*gateway_usage, *direct_usage], billed)
    ledger.store.append_new(proxied_events(gateway_usage))
    direct_cost = sum((c.amount_usd for c in billed if c.api_key_id == "key_direct"), Decimal(0))

    before = ledger.run("reconcile", "--provider", provider, *RANGE, "--format", "json")
    # The 429 was honoured: the same request answered again after it, and every page was read.
    first, second, *rest = ledger.sim.admin.requests
    assert (first.status, second.status, (second.path, second.query)) == (429, 200, (first.path, first.query))
    assert {request.status for request in rest} == {200} and len(rest) > 2
    verdicts = {(row["api_key_id"], row["verdict"]) for row in before["rows"]}
    assert verdicts == {("key_gateway", "matched"), ("key_direct", "unseen_by_gateway")}
    assert len(before["rows"]) == 2 * 2 * 30  # (gateway, direct) x 2 models x 30 days
    assert Decimal(before["unseen_usd"]) == direct_cost > 0
    assert Decimal(before["total_provider_usd"]) - Decimal(before["total_ledger_usd"]) == direct_cost
    assert Decimal(before["drift_percent"]) == pytest.approx(Decimal(5), abs=Decimal("0.5"))

    imported = ledger.run("import", "provider", "--provider", provider, *RANGE, "--json")
    assert (imported["accepted"], imported["duplicates"], imported["rejected"]) == (60, 0, [])
    after = ledger.run("reconcile", "--provider", provider, *RANGE, "--format", "json")
    # The ledger now adds up to the provider's bill to the last digit, every row matched.
    assert after["total_ledger_usd"] == after["total_provider_usd"] == before["total_provider_usd"]
    assert Decimal(after["drift_percent"]) == 0 and Decimal(after["unseen_usd"]) == 0
    assert {row["verdict"] for row in after["rows"]} == {"matched"}
    sources = totals(ledger.store, provider)
    assert sources["provider_import"][0] == direct_cost
    assert sources["provider_import"][1] == sum(record.input_tokens for record in direct_usage)
    # Attributed by the configured mapping, the provider key kept as a tag.
    by_owner = ledger.store.report(
        ReportQuery(by=("project", "environment", "tag:provider_key"), where=(("source", ("provider_import",)),))
    )
    assert [(r.dims["project"], r.dims["environment"], r.dims["tag:provider_key"]) for r in by_owner.rows] == [
        ("checkout", "production", "key_direct")
    ]

    again = ledger.run("import", "provider", "--provider", provider, *RANGE, "--json")
    assert (again["rows"], again["accepted"]) == ([], 0)
    assert totals(ledger.store, provider) == sources


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_negotiated_15_percent_discount_is_detected_and_proposed(ledger, provider) -> None:
    gateway_usage, _ = month(provider)
    discounted = costs_from_usage(gateway_usage, PriceBook(), billed_ratio=Decimal("0.85"))
    ledger.sim.admin.dataset.add(gateway_usage, discounted)
    ledger.store.append_new(proxied_events(gateway_usage))

    result = ledger.run("reconcile", "--provider", provider, *RANGE, "--format", "json")
    assert {row["verdict"] for row in result["rows"]} == {"priced_differently"}
    assert {row["effective_rate"] for row in result["rows"]} == {"0.85"}
    [proposal] = result["proposed_overrides"]
    assert (proposal["provider"], proposal["model"], proposal["discount_percent"]) == (provider, "*", "15")
    assert 'discount_percent = "15"' in proposal["toml"]
    # The table says so too, with the entry to paste into the overrides file.
    table = ledger.run("reconcile", "--provider", provider, *RANGE)
    assert "priced_differently" in table and 'discount_percent = "15"' in table


async def test_serve_sends_one_signed_drift_alert_a_day_whatever_the_replicas(ledger) -> None:
    from spendgate.reconcile.drift import DriftJob
    from spendgate.reconcile.mapping import ReconcileConfig
    from spendgate.settings import Settings
    from tests.test_alerts_support import Clock, running_receiver, until, verified

    gateway_usage, direct_usage = month("openai")
    ledger.sim.admin.dataset.add(
        [*gateway_usage, *direct_usage], costs_from_usage([*gateway_usage, *direct_usage], PriceBook())
    )
    ledger.store.append_new(proxied_events(gateway_usage))
    settings = Settings(
        db=ledger.db_url,
        openai_base_url=f"{ledger.sim.url}/v1",
        anthropic_base_url=ledger.sim.url,
        reconcile=ReconcileConfig(drift_threshold_percent=Decimal(1)),
        credentials={"OPENAI_ADMIN_KEY": ADMIN_KEYS["OPENAI_ADMIN_KEY"]},
    )
    clock = Clock(datetime(2026, 11, 7, 6, 0, tzinfo=UTC))  # checks 2026-11-06
    with running_receiver() as (receiver, url):
        ledger.store.add_webhook(f"{url}/hook", "whsec-drift", "json")
        replicas = [DriftJob(ledger.store, settings, clock, settings.credentials) for _ in range(2)]
        # Both at once, as two gateways' loops would: one claims the day, one alert.
        rounds = await asyncio.gather(*(job.run_once() for job in replicas))
        recorded = [alert for found in rounds for alert in found]
        assert [(a["event"], a["provider"], a["since"]) for a in recorded] == [
            ("reconcile.drift", "openai", "2026-11-06")
        ]
        assert Decimal(recorded[0]["drift_percent"]) > 1 and Decimal(recorded[0]["unseen_usd"]) > 0
        assert await replicas[0].run_once() == []  # the day is checked once
        # The running gateway's dispatcher delivers it, signed like every alert.
        await until(lambda: len(receiver.delivered()) == 1, timeout=10)
        [delivery] = receiver.delivered()
        assert delivery.json() == recorded[0]
        assert verified(delivery.body, delivery.headers["x-spendgate-signature"], "whsec-drift")
    # Below the threshold (a later day, all proxied): checked, nothing sent.
    quiet = Settings(**{**settings.__dict__, "reconcile": ReconcileConfig(drift_threshold_percent=Decimal(10))})
    clock.now = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
    assert await DriftJob(ledger.store, quiet, clock, settings.credentials).run_once() == []


def test_serve_runs_the_drift_check_only_with_a_threshold(make_gateway) -> None:
    from spendgate.reconcile.mapping import ReconcileConfig

    assert make_gateway().app.drift is None
    assert make_gateway(reconcile=ReconcileConfig(drift_threshold_percent=Decimal(2))).app.drift is not None


def test_the_reconciliation_page_is_for_org_admins_and_asks_the_provider_on_demand(make_gateway) -> None:
    from tests.access_support import add_user, logged_in
    from tests.conftest import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY

    credentials = {"OPENAI_API_KEY": UPSTREAM_OPENAI_KEY, "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_KEY}
    gateway = make_gateway(credentials={**credentials, "OPENAI_ADMIN_KEY": ADMIN_KEYS["OPENAI_ADMIN_KEY"]})
    gateway.team("payments")
    gateway.project("checkout", "payments")
    gateway_usage, direct_usage = month("openai")
    billed = costs_from_usage([*gateway_usage, *direct_usage], PriceBook())
    gateway.sim.admin.dataset.add([*gateway_usage, *direct_usage], billed)
    gateway.store.append_new(proxied_events(gateway_usage))
    direct_cost = sum((c.amount_usd for c in billed if c.api_key_id == "key_direct"), Decimal(0))
    add_user(gateway, "root", admin=True)
    add_user(gateway, "ann", ("project", "checkout", "viewer"))

    with logged_in(gateway, "root") as client:
        plain = client.get("/ui/reconcile")
        assert plain.status_code == 200 and 'data-testid="reconcile-form"' in plain.text
        assert "ANTHROPIC_ADMIN_KEY not set" in plain.text
        assert not gateway.sim.admin.requests  # a visit alone asks the provider nothing
        query = "provider=openai&since=2026-11-01&until=2026-11-30"
        page = client.get(f"/ui/reconcile?{query}")
        assert page.status_code == 200, page.text
        assert page.text.count('data-testid="reconcile-row"') == 120
        assert f'data-testid="unseen">${format_usd(direct_cost)}' in page.text
        csv = client.get(f"/ui/reconcile?{query}&csv=reconciliation").text
        assert csv.count("unseen_by_gateway") == 60
        missing = client.get("/ui/reconcile?provider=anthropic&since=2026-11-01&until=2026-11-02")
        assert missing.status_code == 400 and "ANTHROPIC_ADMIN_KEY is not set" in missing.text
    with logged_in(gateway, "ann") as client:
        assert client.get("/ui/reconcile").status_code == 403
        assert "/ui/reconcile" not in client.get("/ui/").text


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("[reconcile]\nthreshold = 2\n", "unknown keys"),
        ("[reconcile]\ndrift_threshold_percent = -1\n", "0 or more"),
        ("[reconcile]\ndrift_threshold_percent = true\n", "must be a number"),
        ('[[reconcile.map]]\napi_key_id = "key_x"\n', "needs project or team"),
        ('[[reconcile.map]]\nprovider = "gemini"\nteam = "t"\n', "openai or anthropic"),
        ('[[reconcile.map]]\nteam = "t\\u0000"\n', "printable"),
        ('[reconcile]\ngateway_key_ids = { azure = ["k"] }\n', "openai/anthropic"),
    ],
)
def test_bad_reconcile_settings_are_refused_naming_the_problem(tmp_path: Path, table: str, error: str) -> None:
    from spendgate.settings import SettingsError, load_settings

    config = tmp_path / "spendgate.toml"
    config.write_text(table)
    with pytest.raises(SettingsError, match=error):
        load_settings(environ={}, config_path=config)


def test_usage_no_mapping_matches_is_imported_to_no_project(ledger) -> None:
    _, direct_usage = month("anthropic")
    other = [replace(record, api_key_id="key_other") for record in direct_usage[:4]]
    ledger.sim.admin.dataset.add(other, costs_from_usage(other, PriceBook()))
    imported = ledger.run("import", "provider", "--provider", "anthropic", *RANGE, "--json")
    assert (imported["accepted"], imported["rejected"]) == (4, [])
    rows = ledger.store.report(ReportQuery(by=("project", "source", "tag:provider_key"))).rows
    assert [(r.dims["project"], r.dims["source"], r.dims["tag:provider_key"]) for r in rows] == [
        (None, "provider_import", "key_other")
    ]


def test_a_missing_admin_key_is_named_and_a_dry_run_stores_nothing(ledger) -> None:
    _, direct_usage = month("openai")
    ledger.sim.admin.dataset.add(direct_usage[:2], costs_from_usage(direct_usage[:2], PriceBook()))
    env = {"SPENDGATE_OPENAI_BASE_URL": f"{ledger.sim.url}/v1", "OPENAI_ADMIN_KEY": ""}
    args = ["reconcile", "--provider", "openai", *RANGE, "--db", ledger.db_url]
    missing = CliRunner().invoke(main, args, env=env)
    assert missing.exit_code == 2 and "OPENAI_ADMIN_KEY is not set" in missing.output
    backwards = [*args[:3], "--since", "2026-11-02", "--until", "2026-11-01", "--db", ledger.db_url]
    refused = CliRunner().invoke(main, backwards, env={**env, **ADMIN_KEYS})
    assert refused.exit_code == 2 and "--until is before --since" in refused.output
    dry = ledger.run("import", "provider", "--provider", "openai", *RANGE, "--dry-run", "--json")
    assert (len(dry["rows"]), dry["accepted"]) == (2, 0)
    assert ledger.store.report(ReportQuery(by=("source",))).rows == []


def test_usage_reported_late_is_imported_for_the_difference_only(ledger) -> None:
    _, direct_usage = month("openai")
    first = direct_usage[:2]
    ledger.sim.admin.dataset.add(first, costs_from_usage(first, PriceBook()))
    assert ledger.run("import", "provider", "--provider", "openai", *RANGE, "--json")["accepted"] == 2
    # The provider's report of the first day and model grows later (a late bucket).
    late = [replace(first[0], input_tokens=1_000, cached_input_tokens=0, output_tokens=100, requests=1)]
    ledger.sim.admin.dataset.add(late, costs_from_usage(late, PriceBook()))
    again = ledger.run("import", "provider", "--provider", "openai", *RANGE, "--json")
    assert again["accepted"] == 1
    assert [(row["input_tokens"], row["output_tokens"]) for row in again["rows"]] == [(1_000, 100)]
    after = ledger.run("reconcile", "--provider", "openai", *RANGE, "--json")
    assert after["total_ledger_usd"] == after["total_provider_usd"] and after["unseen_usd"] == "0"

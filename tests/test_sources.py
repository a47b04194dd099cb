"""Every event says which door it came in by (``source``): stored, a rollup dimension
(``report --by source``), in every export, and an old ledger's events are all ``proxy``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendgate.ingest.tracecontext import traceparent_ref
from spendgate.ledger.events import UsageEvent
from spendgate.reports.render import events_csv
from spendgate.reports.spec import ReportQuery
from tests.conftest import Gateway
from tests.test_ledger_upgrade import old_ledger  # noqa: F401  (a fixture)


def _event(event_id: str, **fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": event_id,
        "ts": datetime(2025, 3, 10, 12, 0, tzinfo=UTC),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "project": "checkout",
        "team": "payments",
        "cost_center": "CC-1",
        "key": "k1",
        "cost_usd": Decimal("0.001"),
    }
    values.update(fields)
    return UsageEvent(**values)


def test_an_upgraded_ledger_counts_its_events_as_proxied_and_adds_new_doors(
    old_ledger: tuple[str, Callable[..., Any]],  # noqa: F811
) -> None:
    _, opener = old_ledger
    store = opener()
    try:
        assert {e["source"] for e in store.list_events()} == {"proxy"}
        by_source = store.report(ReportQuery(by=("source",)), source="rollups")
        assert by_source == store.report(ReportQuery(by=("source",)), source="events")
        assert [(r.dims["source"], r.requests) for r in by_source.rows] == [("proxy", 5)]
        dims_before = store._query("SELECT count(*) AS n FROM rollup_dims")[0]["n"]

        # A proxied event with the dimensions of an old one lands on its rollup entry (the old
        # keys were rewritten with source proxy), an ingested one on a new entry.
        old = next(e for e in store.list_events() if e["id"] == "ev-01")
        same = dict(
            provider=old["provider"],
            model=old["model"],
            project=old["project"],
            team=old["team"],
            cost_center=old["cost_center"],
            feature=old["feature"],
            environment=old["environment"],
            customer=old["customer"],
            key=old["key"],
            ts=datetime(2025, 3, 10, 10, 0, tzinfo=UTC),
        )
        assert store.append_new([_event("new-proxy", **same)]) == {"new-proxy"}
        assert store._query("SELECT count(*) AS n FROM rollup_dims")[0]["n"] == dims_before
        assert store.append_new([_event("new-ingest", **same, source="ingest", external_id="r-1")]) == {"new-ingest"}
        assert store._query("SELECT count(*) AS n FROM rollup_dims")[0]["n"] == dims_before + 2  # full and lean
        for by in [("source",), ("source", "team"), ("source", "customer", "day")]:
            assert store.report(ReportQuery(by=by), source="rollups") == store.report(
                ReportQuery(by=by), source="events"
            )
    finally:
        store.close()


def test_a_proxied_request_is_source_proxy_and_keeps_its_traceparent(gateway: Gateway) -> None:
    gateway.team("payments")
    gateway.project("checkout", "payments")
    key = gateway.key("k", project="checkout")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    gateway.openai(key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"traceparent": traceparent},
    )
    gateway.openai(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    events = gateway.events()
    assert [e["source"] for e in events] == ["proxy", "proxy"]
    assert [e["client_reported"] for e in events] == [False, False]
    spans = [r["otel_span"] for r in gateway.store._query("SELECT otel_span FROM usage_events ORDER BY seq")]
    assert spans == ["4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None]
    report = gateway.report("source", "project")
    assert [(r["source"], r["project"], r["requests"]) for r in report["rows"]] == [("proxy", "checkout", 2)]
    assert '"source","external_id","client_reported"' in events_csv(events).splitlines()[0]


def test_traceparent_parsing_ignores_what_the_spec_calls_invalid() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert traceparent_ref(good) == "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    for bad in [
        None,
        "",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        good + "x" * 300,
    ]:
        assert traceparent_ref(bad) is None, bad


def test_the_event_dataclass_defaults_to_the_proxy() -> None:
    assert _event("x").source == "proxy"
    assert dataclasses.replace(_event("x"), source="manual").source == "manual"

"""POST /v1/traces with the OpenTelemetry SDK's own OTLP/HTTP exporter pointed at the gateway (and
hand-written OTLP/JSON through httpx), on both backends: GenAI spans become events, current and
deprecated attribute names, stored once per (trace id, span id), linked (not counted again) when
the call went through the gateway, errors and partial success as the OTLP specification says."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode, format_span_id, format_trace_id

from spendgate.pricing import PriceBook
from spendgate.usage import Usage
from tests.conftest import Gateway


class Kept(SpanExporter):
    """Keeps what was exported, to export the very same spans again."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@pytest.fixture
def setup(gateway: Gateway) -> Iterator[tuple[Gateway, str]]:
    gateway.team("payments", cost_center="CC-1")
    gateway.project("checkout", "payments")
    gateway.project("refunds", "payments")
    yield gateway, gateway.key("agents", project="checkout", environment="staging")


def exporter(gateway: Gateway, key: str) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"{gateway.url}/v1/traces",
        headers={"authorization": f"Bearer {key}"},
        compression=Compression.Gzip,
        timeout=10,
    )


def tracer(*exporters: SpanExporter, service: str = "support-agent") -> tuple[Any, TracerProvider]:
    provider = TracerProvider(resource=Resource.create({"service.name": service, "spendgate.feature": "triage"}))
    for item in exporters:
        provider.add_span_processor(SimpleSpanProcessor(item))
    return provider.get_tracer("test"), provider


def test_genai_spans_become_events_once(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    otlp, kept = exporter(gateway, key), Kept()
    trace, provider = tracer(otlp, kept)
    with trace.start_as_current_span("agent run"):  # no usage: not spend
        with trace.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes(
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 2000,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 1500,
                    "gen_ai.usage.reasoning.output_tokens": 100,
                    "spendgate.customer": "acme",
                    "spendgate.tag.workflow": "refund",
                }
            )
            chat_trace = format_trace_id(span.get_span_context().trace_id)
        with trace.start_as_current_span("anthropic.chat") as span:
            span.set_attributes(
                {
                    "gen_ai.system": "anthropic",  # the deprecated names
                    "gen_ai.request.model": "claude-haiku-4-5",
                    "gen_ai.usage.prompt_tokens": 100,
                    "gen_ai.usage.completion_tokens": 20,
                    "gen_ai.usage.cache_read_input_tokens": 1000,  # not in prompt_tokens: added
                    "gen_ai.usage.cache_creation_input_tokens": 50,
                    "spendgate.project": "refunds",
                }
            )
            span.set_status(Status(StatusCode.ERROR))
        with trace.start_as_current_span("openlit") as span:
            span.set_attributes(
                {
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "my-private-model",
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 10,
                    "gen_ai.usage.cost": 0.0042,
                }
            )
    provider.shutdown()
    events = {e["endpoint"]: e for e in gateway.events()}
    assert sorted(events) == ["otlp:anthropic.chat", "otlp:chat", "otlp:openlit"]
    chat = events["otlp:chat"]
    assert (chat["source"], chat["model"], chat["provider"]) == ("otlp", "gpt-4o-2024-08-06", "openai")
    assert (chat["input_tokens"], chat["cached_input_tokens"], chat["output_tokens"], chat["reasoning_tokens"]) == (
        2000,
        1500,
        300,
        100,
    )
    assert (chat["project"], chat["team"], chat["key"], chat["environment"]) == (
        "checkout",
        "payments",
        "agents",
        "staging",
    )
    assert (chat["customer"], chat["feature"], chat["trace_id"]) == ("acme", "triage", chat_trace)
    assert chat["tags"] == {"workflow": "refund", "service": "support-agent"}
    started = datetime.fromisoformat(chat["ts"])
    priced = PriceBook().price(
        "openai",
        "gpt-4o-2024-08-06",
        Usage(input_tokens=2000, cached_input_tokens=1500, output_tokens=300, reasoning_tokens=100),
        started,
    )
    assert priced is not None and Decimal(chat["cost_usd"]) == priced.cost
    claude = events["otlp:anthropic.chat"]
    assert (claude["provider"], claude["project"], claude["status"]) == ("anthropic", "refunds", "error")
    assert (claude["input_tokens"], claude["cached_input_tokens"], claude["cache_write_tokens"]) == (1150, 1000, 50)
    private = events["otlp:openlit"]
    assert (private["cost_usd"], private["client_reported"]) == ("0.0042", True)

    # The same spans exported again (an exporter retrying): nothing changes.
    assert exporter(gateway, key).export(kept.spans) == SpanExportResult.SUCCESS
    assert len(gateway.events()) == 3
    report = gateway.report("source")
    assert [(r["source"], r["requests"]) for r in report["rows"]] == [("otlp", 3)]


def test_a_span_of_a_call_through_the_gateway_is_linked_not_counted_twice(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    client = gateway.openai(key)
    trace, provider = tracer(exporter(gateway, key))
    with trace.start_as_current_span("chat gpt-4o-mini") as genai:
        genai.set_attributes(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 30,
            }
        )
        # An instrumented HTTP client: its span is the parent the traceparent header names.
        with trace.start_as_current_span("POST /v1/chat/completions") as http:
            context = http.get_span_context()
            traceparent = f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-01"
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"traceparent": traceparent},
            )
    gateway.flush()
    with trace.start_as_current_span("direct call") as direct:  # never went through the gateway
        direct.set_attributes(
            {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 5}
        )
    provider.shutdown()
    events = gateway.events()
    assert sorted(e["source"] for e in events) == ["otlp", "proxy"]
    assert next(e for e in events if e["source"] == "otlp")["endpoint"] == "otlp:direct call"


def _json_export(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "batch"}}]},
                "scopeSpans": [{"scope": {"name": "x"}, "spans": [{"traceId": trace_id, **s} for s in spans]}],
            }
        ]
    }


def _span(span_id: str, **attributes: Any) -> dict[str, Any]:
    values = []
    for name, value in attributes.items():
        kind = "intValue" if isinstance(value, int) else "stringValue"
        values.append({"key": name, "value": {kind: str(value) if kind == "intValue" else value}})
    return {"spanId": span_id, "name": "chat", "startTimeUnixNano": "1760000000000000000", "attributes": values}


def test_otlp_json_with_partial_success(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    trace_id = "5b8efff798038103d269b633813fc60c"
    usage = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 100}
    body = _json_export(
        trace_id,
        [
            _span("eee19b7ec3c1b174", **usage),
            _span("eee19b7ec3c1b175", **usage, **{"spendgate.project": "nope"}),
            _span("eee19b7ec3c1b176", **{"http.method": "POST"}),
        ],
    )
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json", "content-encoding": "gzip"}
    answer = httpx.post(f"{gateway.url}/v1/traces", content=gzip.compress(json.dumps(body).encode()), headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "unknown project 'nope'" in partial["errorMessage"]
    assert (answer.headers["x-spendgate-accepted"], answer.headers["x-spendgate-rejected"]) == ("1", "1")
    [event] = gateway.events()
    assert event["ts"] == "2025-10-09T08:53:20.000000Z" and event["trace_id"] == trace_id
    assert event["tags"] == {"service": "batch"}
    again = httpx.post(f"{gateway.url}/v1/traces", json=body, headers={"authorization": f"Bearer {key}"})
    assert again.headers["x-spendgate-duplicates"] == "1" and len(gateway.events()) == 1


def test_otlp_errors(make_gateway) -> None:
    gateway = make_gateway(max_body_bytes=2048)
    key = gateway.key("k")
    url = f"{gateway.url}/v1/traces"
    proto = {"content-type": "application/x-protobuf"}

    def status(response: httpx.Response) -> tuple[int, str]:
        from google.rpc import status_pb2

        parsed = status_pb2.Status()
        parsed.ParseFromString(response.content)
        return parsed.code, parsed.message

    unauthenticated = httpx.post(url, content=b"", headers=proto)
    assert unauthenticated.status_code == 401 and status(unauthenticated)[0] == 16
    auth = {"authorization": f"Bearer {key}"}
    garbage = httpx.post(url, content=b"\xff\xff\xff", headers={**proto, **auth})
    assert garbage.status_code == 400 and "protobuf" in status(garbage)[1]
    assert httpx.post(url, content=b"{}", headers={"content-type": "text/plain", **auth}).status_code == 415
    bad_id = _json_export("zz", [_span("eee19b7ec3c1b174")])
    bad = httpx.post(url, json=bad_id, headers=auth)
    assert bad.status_code == 400 and bad.json()["code"] == 3 and "not hex" in bad.json()["message"]
    too_big = httpx.post(url, content=b"\x00" * 5000, headers={**proto, **auth})
    assert too_big.status_code == 413
    empty = httpx.post(url, content=b"", headers={**proto, **auth})
    assert (
        empty.status_code == 200
        and ExportTraceServiceResponse.FromString(empty.content) == ExportTraceServiceResponse()
    )
    assert gateway.events() == []

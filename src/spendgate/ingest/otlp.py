"""OpenTelemetry GenAI spans -> usage records (pure).

Reads an OTLP/HTTP ``ExportTraceServiceRequest``, binary protobuf or JSON (hex trace and span
ids, 64-bit integers as strings), with the ``opentelemetry-proto`` messages, and maps every span
that carries GenAI usage to the record POST /v1/usage takes. Spans without usage (HTTP, database,
agent steps…) are not spend and are skipped.

The GenAI semantic conventions renamed their attributes; both generations are read:

| what | current | deprecated / instrumentations |
| --- | --- | --- |
| provider | gen_ai.provider.name | gen_ai.system |
| model | gen_ai.response.model, gen_ai.request.model | |
| input (every input token) | gen_ai.usage.input_tokens | gen_ai.usage.prompt_tokens |
| output | gen_ai.usage.output_tokens | gen_ai.usage.completion_tokens |
| cache reads | gen_ai.usage.cache_read.input_tokens | gen_ai.usage.cache_read_input_tokens |
| cache writes | gen_ai.usage.cache_creation.input_tokens | gen_ai.usage.cache_creation_input_tokens |
| reasoning | gen_ai.usage.reasoning.output_tokens | gen_ai.usage.reasoning_tokens |
| cost (client-reported) | spendgate.cost_usd (decimal text) | gen_ai.usage.cost (OpenLIT, a double) |

Attribution: ``spendgate.project``, ``spendgate.team``, ``spendgate.feature``,
``spendgate.customer``, ``spendgate.trace_id`` (default: the span's trace id) and
``spendgate.tag.NAME``, on the span or its resource (the span's win); ``service.name`` becomes
the tag ``service``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spendgate.ingest.records import RecordError, parse_cost
from spendgate.ingest.tracecontext import span_ref

MAX_SPANS = 50_000  # spans in one export request; more is a 413
_STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
_FIRST = {
    "provider": ("spendgate.provider", "gen_ai.provider.name", "gen_ai.system"),
    "model": ("gen_ai.response.model", "gen_ai.request.model"),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cached_input_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
}
_USAGE = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
_ATTRIBUTION = {
    "project": "spendgate.project",
    "team": "spendgate.team",
    "feature": "spendgate.feature",
    "customer": "spendgate.customer",
    "trace_id": "spendgate.trace_id",
}
_TAG_PREFIX = "spendgate.tag."
# gen_ai.provider.name values -> the provider names the price book knows.
_PROVIDERS = {
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "aws.bedrock": "bedrock",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}


class OTLPError(ValueError):
    """The request is not an OTLP trace export (a 400)."""


class TooManySpans(ValueError):
    """More spans than one request may carry (a 413)."""


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str  # hex
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    error: bool
    attributes: dict[str, Any]  # the resource's, then the span's over them

    @property
    def ref(self) -> str:
        return span_ref(self.trace_id, self.span_id)


# --- decoding -----------------------------------------------------------------------------------
def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OTLPError(f"the body is not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from None
    return request


def decode_json(document: Any) -> ExportTraceServiceRequest:
    """OTLP/JSON: as protobuf's JSON mapping, except that trace and span ids are hex."""
    if not isinstance(document, dict):
        raise OTLPError("the body must be a JSON object (an ExportTraceServiceRequest)")
    for span in _json_spans(document):
        for name in ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"):
            value = span.get(name)
            if isinstance(value, str):
                try:
                    span[name] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise OTLPError(f"span {name} {value[:40]!r} is not hex") from None
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise OTLPError(f"the body is not an OTLP/JSON ExportTraceServiceRequest: {str(exc)[:300]}") from None
    return request


def _json_spans(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                if isinstance(span, dict):
                    yield span


def _list(holder: Any, *names: str) -> list[Any]:
    if not isinstance(holder, dict):
        return []
    for name in names:
        value = holder.get(name)
        if isinstance(value, list):
            return value
    return []


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if count > MAX_SPANS:
        raise TooManySpans(f"{count} spans in one request; at most {MAX_SPANS}")
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name[:256],
                        start_ns=span.start_time_unix_nano,
                        error=span.status.code == _STATUS_ERROR,
                        attributes={**resource, **attributes_of(span.attributes)},
                    )
                )
    return spans


def attributes_of(pairs: Any) -> dict[str, Any]:
    """Scalar attribute values by key (arrays and maps are not usage, and are left out)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        if kind in ("string_value", "int_value", "double_value", "bool_value"):
            values[pair.key] = getattr(pair.value, kind)
    return values


# --- spans -> records -----------------------------------------------------------------------------
def has_usage(span: Span) -> bool:
    return any(name in span.attributes for field in _USAGE for name in _FIRST[field])


def _first(attributes: Mapping[str, Any], field: str) -> Any:
    for name in _FIRST[field]:
        if name in attributes:
            return attributes[name]
    return None


def span_record_fields(span: Span) -> dict[str, Any]:
    """The /v1/usage record of a GenAI span, before validation (``parse_record`` checks it)."""
    attrs = span.attributes
    if (
        not span.trace_id.strip("0")
        or not span.span_id.strip("0")
        or len(span.trace_id) != 32
        or len(span.span_id) != 16
    ):
        raise RecordError("the span has no valid trace id (16 bytes) and span id (8 bytes)")
    provider = _first(attrs, "provider")
    if isinstance(provider, str):
        provider = _PROVIDERS.get(provider.strip().lower(), provider)
    counts = {field: _first(attrs, field) for field in _USAGE}
    input_tokens = counts["input_tokens"]
    cached, written = counts["cached_input_tokens"] or 0, counts["cache_write_tokens"] or 0
    numbers = all(isinstance(n, int) and not isinstance(n, bool) for n in (input_tokens, cached, written))
    if numbers and cached + written > input_tokens:
        # Some instrumentations report Anthropic's input_tokens as the API does (cache reads and
        # writes excluded): the parts cannot exceed the whole, so they were not in it.
        counts["input_tokens"] = input_tokens + cached + written
    fields: dict[str, Any] = {
        "id": span.ref,
        "ts": datetime.fromtimestamp(span.start_ns / 1e9, UTC).isoformat() if span.start_ns else None,
        "provider": provider,
        "model": _first(attrs, "model"),
        **counts,
        "status": "error" if span.error else "ok",
        "endpoint": f"otlp:{str(attrs.get('gen_ai.operation.name') or span.name)[:64]}",
    }
    cost = attrs.get("spendgate.cost_usd")
    if cost is None and isinstance(attrs.get("gen_ai.usage.cost"), (int, float)):
        # A double on the wire: its shortest decimal form, which is what the instrumentation meant.
        cost = repr(float(attrs["gen_ai.usage.cost"]))
    if cost is not None:
        fields["cost_usd"] = str(parse_cost(str(cost)))
    for field, name in _ATTRIBUTION.items():
        if attrs.get(name) is not None:
            fields[field] = attrs[name]
    fields.setdefault("trace_id", span.trace_id)
    tags = {name[len(_TAG_PREFIX) :]: value for name, value in attrs.items() if name.startswith(_TAG_PREFIX)}
    if attrs.get("service.name"):
        tags.setdefault("service", attrs["service.name"])
    if tags:
        fields["tags"] = tags
    return {name: value for name, value in fields.items() if value is not None}


def span_records(spans: list[Span]) -> list[tuple[Span, Any]]:
    """Each GenAI span with its record (``parse_record`` validates it), or the ``RecordError``
    saying why it cannot be one."""
    out: list[tuple[Span, Any]] = []
    for span in spans:
        if has_usage(span):
            try:
                out.append((span, span_record_fields(span)))
            except RecordError as exc:
                out.append((span, exc))
    return out


def children_of(spans: list[Span]) -> dict[str, list[str]]:
    """Span ref -> the refs of its children in this request: a GenAI span's HTTP child is the
    span whose id a proxied call's traceparent carries."""
    children: dict[str, list[str]] = {}
    for span in spans:
        if span.parent_span_id:
            children.setdefault(span_ref(span.trace_id, span.parent_span_id), []).append(span.ref)
    return children

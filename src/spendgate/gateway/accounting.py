"""The one choke point: every billed request, whatever its endpoint or provider, ends here
and becomes exactly one priced, attributed usage event.

Accounting wired per endpoint is how peers lost ``/v1/responses`` or ``/v1/messages``
spend; here each route only says what happened (``Outcome``) and this module decides what
it costs and records it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spendgate.attribution import Attribution
from spendgate.ledger.events import STATUS_ERROR, STATUS_INCOMPLETE, STATUS_OK, UsageEvent
from spendgate.ledger.spool.spool import parse_ts
from spendgate.pricing import PriceBook, PricedUsage
from spendgate.usage import Usage, estimate_input_tokens, request_service_tier, tokens_for_chars
from spendgate.usage.bounds import EVENT_TOO_LARGE, bounded_cost, bounded_usage, untrusted
from spendgate.usage.model import Anomaly


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: datetime  # the price in force is the one at this instant
    started_perf: float
    endpoint: str
    provider: str
    model: str
    stream: bool
    attribution: Attribution
    body: dict[str, Any]
    otel_span: str | None = None  # the traceparent the client sent (ingest/tracecontext.py)


@dataclass(slots=True)
class Outcome:
    http_status: int
    usage: Usage | None = None  # as reported by the provider
    reported_model: str | None = None
    broken: bool = False  # the stream or exchange ended before the provider finished
    output_chars: int = 0  # what was streamed, for estimates
    partial_usage: Usage | None = None  # the part of usage known before a stream broke
    unparsed_bytes: int = 0  # stream bytes passed on unread (an event past the splitter's bound)
    upstream_request_id: str | None = None
    # Set once settled AND recorded, which happens before the answer's last bytes leave so a
    # crash cannot separate "answered" from "recorded".
    event: UsageEvent | None = None


def estimate_usage(ctx: RequestContext, outcome: Outcome) -> Usage:
    """Usage the provider never reported: input from the request (or the partial usage the
    stream did report, unless it was out of range), output from what was streamed."""
    partial = outcome.partial_usage
    if partial is not None and untrusted(partial):
        partial = None
    output = tokens_for_chars(outcome.output_chars)
    if partial is not None:
        return Usage(
            input_tokens=partial.input_tokens,
            cached_input_tokens=partial.cached_input_tokens,
            cache_write_tokens=partial.cache_write_tokens,
            cache_write_1h_tokens=partial.cache_write_1h_tokens,
            output_tokens=max(output, partial.output_tokens),
            service_tier=partial.service_tier,
        )
    return Usage(input_tokens=estimate_input_tokens(ctx.body), output_tokens=output)


def settle(ctx: RequestContext, outcome: Outcome, prices: PriceBook) -> UsageEvent:
    """Decide status, usage and price of a finished request (pure but for the prices cache).

    What the provider reported is bounded (usage/bounds.py). A figure out of any real range
    discredits the whole report, which is then estimated like a missing one; whatever had to
    be bounded flags the event ``estimated`` and is kept in ``extra["anomalies"]``.
    """
    estimated = False
    notes: list[Anomaly] = []
    reported = outcome.usage
    distrusted = reported is not None and untrusted(reported)
    if distrusted:
        assert reported is not None
        notes.extend(reported.anomalies)
        reported = None
    if reported is not None:
        status = STATUS_ERROR if outcome.http_status >= 400 else STATUS_OK
        usage = reported
    elif outcome.broken or outcome.http_status < 400 or distrusted:
        # Sent, maybe answered in part, but never told us what it used: the provider may
        # well bill it, so it is recorded at an honest estimate, flagged as such.
        status = STATUS_OK if outcome.http_status < 400 else STATUS_ERROR
        if outcome.broken:
            status = STATUS_INCOMPLETE
        usage = estimate_usage(ctx, outcome)
        if outcome.partial_usage is not None and not distrusted:  # else the same figures are noted
            notes.extend(outcome.partial_usage.anomalies)
        estimated = True
    else:
        # Refused by the provider: nothing was generated, nothing billed.
        status = STATUS_ERROR
        usage = Usage()
    usage = bounded_usage(usage)
    notes.extend(usage.anomalies)
    if outcome.unparsed_bytes:
        notes.append(Anomaly("stream", EVENT_TOO_LARGE, str(outcome.unparsed_bytes)))

    model = outcome.reported_model or ctx.model
    # The tier the provider says it served, else the one the client asked for: it decides the
    # price of every token (OpenAI's flex is half the standard price, priority about double).
    service_tier = usage.service_tier or request_service_tier(ctx.body)
    priced = _price(prices, ctx, model, usage, service_tier)
    cost = None
    if priced is not None:
        cost, cost_note = bounded_cost(priced.cost)
        if cost_note is not None:
            notes.append(cost_note)
    attribution = ctx.attribution
    return UsageEvent(
        id=ctx.request_id,
        ts=ctx.started,
        provider=ctx.provider,
        model=model,
        endpoint=ctx.endpoint,
        stream=ctx.stream,
        status=status,
        http_status=outcome.http_status,
        project=attribution.project,
        team=attribution.team,
        cost_center=attribution.cost_center,
        feature=attribution.feature,
        environment=attribution.environment,
        customer=attribution.customer,
        key=attribution.key,
        trace_id=attribution.trace_id,
        tags=dict(attribution.tags) if attribution.tags else None,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        rates=priced.rates.as_dict() if priced else None,
        price_source=priced.rates.source if priced else None,
        estimated=estimated or bool(notes),
        latency_ms=round((time.perf_counter() - ctx.started_perf) * 1000, 3),
        upstream_request_id=outcome.upstream_request_id,
        service_tier=service_tier,
        otel_span=ctx.otel_span,
        # Why the event is flagged, machine-readable, with the figures as reported.
        extra={"anomalies": [note.as_json() for note in notes]} if notes else {},
    )


def bounded_event(event: UsageEvent) -> UsageEvent:
    """``event`` within the bounds ``settle`` gives every new event: for one recorded before they
    existed (a spooled or dead-lettered event that the ledger refused), flagged like any other."""
    usage = bounded_usage(
        Usage(
            input_tokens=event.input_tokens,
            cached_input_tokens=event.cached_input_tokens,
            cache_write_tokens=event.cache_write_tokens,
            cache_write_1h_tokens=event.cache_write_1h_tokens,
            output_tokens=event.output_tokens,
            reasoning_tokens=event.reasoning_tokens,
        )
    )
    notes = list(usage.anomalies)
    cost = event.cost_usd
    if cost is not None:
        cost, cost_note = bounded_cost(cost)
        if cost_note is not None:
            notes.append(cost_note)
    if not notes:
        return event
    noted = event.extra.get("anomalies") if isinstance(event.extra, dict) else None
    extra = {
        **(event.extra or {}),
        "anomalies": [*(noted if isinstance(noted, list) else []), *(n.as_json() for n in notes)],
    }
    return dataclasses.replace(
        event,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        estimated=True,
        extra=extra,
    )


def begin_record(ctx: RequestContext) -> dict[str, Any]:
    """What the spool keeps of a request about to go upstream: enough to record it as
    ``incomplete`` should the process die before it ends (no prompt, an estimate of its size)."""
    attribution = ctx.attribution
    begin = {
        "id": ctx.request_id,
        "ts": ctx.started,  # orjson writes it (faster than format_ts)
        "provider": ctx.provider,
        "model": ctx.model,
        "endpoint": ctx.endpoint,
        "stream": ctx.stream,
        "project": attribution.project,
        "team": attribution.team,
        "cost_center": attribution.cost_center,
        "feature": attribution.feature,
        "environment": attribution.environment,
        "customer": attribution.customer,
        "key": attribution.key,
        "trace_id": attribution.trace_id,
        "tags": dict(attribution.tags) if attribution.tags else None,
        "input_tokens": estimate_input_tokens(ctx.body),
    }
    service_tier = request_service_tier(ctx.body)
    if service_tier is not None:  # priced at that tier should the request be recovered
        begin["service_tier"] = service_tier
    return begin


def unfinished_event(begin: dict[str, Any], prices: PriceBook) -> UsageEvent:
    """A request that was in flight when its gateway died: ``incomplete``, estimated input and
    no output, priced at its start like any other (http_status 0: no answer is known)."""
    attribution = Attribution(
        project=begin.get("project"),
        team=begin.get("team"),
        cost_center=begin.get("cost_center"),
        environment=begin.get("environment"),
        key=begin.get("key"),
        feature=begin.get("feature"),
        customer=begin.get("customer"),
        trace_id=begin.get("trace_id"),
        tags=begin.get("tags") or None,
    )
    ctx = RequestContext(
        request_id=begin["id"],
        started=parse_ts(begin["ts"]),
        started_perf=time.perf_counter(),
        endpoint=begin["endpoint"],
        provider=begin["provider"],
        model=begin["model"],
        stream=bool(begin.get("stream")),
        attribution=attribution,
        # What of the request body matters to its price: the tier it asked for.
        body={"service_tier": begin.get("service_tier")},
    )
    outcome = Outcome(http_status=0, broken=True, partial_usage=Usage(input_tokens=int(begin.get("input_tokens") or 0)))
    return settle(ctx, outcome, prices)


def _price(
    prices: PriceBook, ctx: RequestContext, model: str, usage: Usage, service_tier: str | None
) -> PricedUsage | None:
    # The reported model (often a dated snapshot) is what was billed; fall back to the
    # requested name when only that one is known to the price table.
    priced = prices.price(ctx.provider, model, usage, ctx.started, service_tier)
    if priced is None and model != ctx.model:
        priced = prices.price(ctx.provider, ctx.model, usage, ctx.started, service_tier)
    return priced

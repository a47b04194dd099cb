"""Sane ranges for the figures an upstream reports (pure).

What an upstream answers is input like any other: a proxy in between, a self-hosted server or
a provider's bug can report ``prompt_tokens`` of 10^19, or -5. Taken as they are, such figures
fail the ledger write (64-bit columns), overflow the budget counters, or put a budget millions
of dollars past its limit. Every count is therefore bounded where it is parsed, and whatever
had to be bounded is kept as an :class:`Anomaly` (reason and the figure as reported), so the
event is flagged ``estimated`` and an auditor can see why.

The ceilings are far above anything a real request reaches, so no real answer is ever clamped:

- ``MAX_INPUT_TOKENS`` (10^8): ten times the largest context window offered today (10 million
  tokens); input counts cache reads and writes, and one Responses API answer sums the input of
  every turn of its tool loop (a deep-research run reaches a few million).
- ``MAX_OUTPUT_TOKENS`` (10^7): about eighty times the largest output cap (128,000 tokens),
  with the same room for answers that add up several turns.
- ``MAX_EVENT_COST_USD`` ($100,000): a request at both ceilings at the dearest list price
  (o1-pro: $150 and $600 per million) costs $21,000; real requests cost cents to dollars.

They also keep every figure well inside what the stores hold: 64-bit token columns, rollups of
up to $9.2 billion per bucket, Redis budget counters of up to $9.2 million per window.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from typing import Any

from spendgate.usage.model import Anomaly, Usage

MAX_INPUT_TOKENS = 100_000_000
MAX_OUTPUT_TOKENS = 10_000_000
MAX_EVENT_COST_USD = Decimal(100_000)

# Reasons an event is flagged (``Anomaly.reason``).
NEGATIVE = "negative"
NOT_AN_INTEGER = "not_an_integer"
OUT_OF_RANGE = "out_of_range"
EVENT_TOO_LARGE = "event_too_large"  # a stream event past the splitter's bound went through unread


def token_count(value: Any, field: str, ceiling: int, anomalies: list[Anomaly]) -> int:
    """A reported token count within [0, ``ceiling``]; absent is 0. Anything else that had to
    be changed is noted in ``anomalies``: negative and non-integer figures count 0, figures
    past the ceiling count the ceiling."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= ceiling:
            return value
        if value < 0:
            anomalies.append(Anomaly(field, NEGATIVE, str(value)))
            return 0
        anomalies.append(Anomaly(field, OUT_OF_RANGE, str(value)))
        return ceiling
    # A JSON number past 64 bits is decoded as a float: judged by its size first.
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) > ceiling):
        anomalies.append(Anomaly(field, NEGATIVE if value < 0 else OUT_OF_RANGE, repr(value)))
        return 0 if value < 0 or math.isnan(value) else ceiling
    anomalies.append(Anomaly(field, NOT_AN_INTEGER, _reported(value)))
    return 0


def bounded_usage(usage: Usage) -> Usage:
    """``usage`` with every normalized count within its ceiling (sums of bounded parts, and
    estimates from what was streamed, can still pass it); what was clamped joins its anomalies."""
    anomalies = list(usage.anomalies)
    counts = {
        "input_tokens": token_count(usage.input_tokens, "input_tokens", MAX_INPUT_TOKENS, anomalies),
        "cached_input_tokens": token_count(
            usage.cached_input_tokens, "cached_input_tokens", MAX_INPUT_TOKENS, anomalies
        ),
        "cache_write_tokens": token_count(usage.cache_write_tokens, "cache_write_tokens", MAX_INPUT_TOKENS, anomalies),
        "cache_write_1h_tokens": token_count(
            usage.cache_write_1h_tokens, "cache_write_1h_tokens", MAX_INPUT_TOKENS, anomalies
        ),
        "output_tokens": token_count(usage.output_tokens, "output_tokens", MAX_OUTPUT_TOKENS, anomalies),
        "reasoning_tokens": token_count(usage.reasoning_tokens, "reasoning_tokens", MAX_OUTPUT_TOKENS, anomalies),
    }
    if len(anomalies) == len(usage.anomalies):
        return usage
    return dataclasses.replace(usage, **counts, anomalies=tuple(anomalies))  # what is not a count, kept


def bounded_cost(cost: Decimal) -> tuple[Decimal, Anomaly | None]:
    """A request's cost within [0, ``MAX_EVENT_COST_USD``], and the anomaly when it was not."""
    if cost > MAX_EVENT_COST_USD:
        return MAX_EVENT_COST_USD, Anomaly("cost_usd", OUT_OF_RANGE, str(cost))
    if cost < 0:
        return Decimal(0), Anomaly("cost_usd", NEGATIVE, str(cost))
    return cost, None


def untrusted(usage: Usage) -> bool:
    """True when a figure was out of range: the provider's usage is then not believed at all
    (a count of 10^19 says nothing about the others), and the request is estimated instead."""
    return any(anomaly.reason == OUT_OF_RANGE for anomaly in usage.anomalies)


def _reported(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:64]  # a figure, not a payload: whatever was sent, a short sample is enough

"""The providers' usage and cost reports, normalized to spendgate's conventions (pure).

A provider's answer is hostile input like any other: every count is checked to be a
non-negative integer below a sanity bound, every id a short string, every amount an exact
decimal in USD. A result that fails is *refused* (kept aside with the reason, so the caller
can show it) and the others are kept: one bad record never hides the rest of a report.

Token conventions are the ledger's (see ``spendgate.usage.model``): ``input_tokens`` counts
every input token, cache reads and cache writes included; ``cache_write_tokens`` counts every
cache write and ``cache_write_1h_tokens`` the part of it written with a one-hour TTL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from spendgate.usage.model import Usage

__all__ = (
    "MAX_AMOUNT_USD",
    "MAX_COUNT",
    "AdminApiError",
    "AdminKeyError",
    "AdminResponseError",
    "Fetched",
    "ProviderCostRow",
    "ProviderUsageRow",
    "RecordError",
    "Refused",
    "amount_text",
    "count",
    "optional_text",
    "utc_day",
)

# No bucket of one day holds a quadrillion tokens or requests: a count above is not a count.
MAX_COUNT = 10**15
# Nor does one cost line reach a billion dollars.
MAX_AMOUNT_USD = Decimal(10**9)
MAX_TEXT = 256
# An amount as text: digits, an optional fraction, an optional sign; no exponent, no NaN.
_DECIMAL_TEXT = re.compile(r"-?\d{1,15}(\.\d{1,24})?")
# Times outside these years are not usage buckets.
_FIRST_DAY = date(2000, 1, 1)
_LAST_DAY = date(2200, 1, 1)


class AdminApiError(Exception):
    """A provider's admin API could not be read (unreachable, refused, still failing after retries)."""


class AdminKeyError(AdminApiError):
    """The admin key is missing or the provider refused it (401/403); the message names the variable."""


class AdminResponseError(AdminApiError):
    """The provider answered something that is not a report page (not JSON, broken pagination…)."""


class RecordError(ValueError):
    """One result of a report page is malformed or implausible; it is refused, the others kept."""


@dataclass(frozen=True, slots=True)
class ProviderUsageRow:
    """Usage of one day (UTC) as the provider counted it, for one group of its dimensions.

    A dimension the report was not grouped by is None. ``requests`` is None when the provider
    does not count requests (Anthropic's usage report). ``endpoint`` is the report it came from
    (``completions``, ``embeddings``, ``messages``).
    """

    day: date
    provider: str
    model: str | None
    api_key_id: str | None
    project_or_workspace_id: str | None
    service_tier: str | None
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    requests: int | None
    endpoint: str
    context_window: str | None = None  # Anthropic: "0-200k" or "200k-1M" when grouped by it

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            output_tokens=self.output_tokens,
            service_tier=self.service_tier,
        )


@dataclass(frozen=True, slots=True)
class ProviderCostRow:
    """One cost line of one day (UTC), in exact USD.

    ``model`` is set only when the provider names it (Anthropic's cost report grouped by
    ``description``); OpenAI's costs name a ``line_item`` instead, which the comparison
    matches to models (``spendgate.reconcile.provider_side``). ``cost_type`` is Anthropic's
    (``tokens``, ``web_search``, ``code_execution``), None when not given.
    """

    day: date
    provider: str
    amount_usd: Decimal
    model: str | None = None
    project_or_workspace_id: str | None = None
    api_key_id: str | None = None
    line_item: str | None = None  # OpenAI's line_item, Anthropic's description
    cost_type: str | None = None
    token_type: str | None = None
    service_tier: str | None = None
    context_window: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A result left out of a report, and why: ``where`` locates it in the provider's answer."""

    where: str
    reason: str


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """What a report call brought back: the rows kept, the results refused, the pages read."""

    rows: tuple[T, ...]
    refused: tuple[Refused, ...]
    pages: int


# ---- bounded readers of one result's fields ----------------------------------------------


def count(record: dict[str, Any], name: str) -> int:
    """The count ``record[name]``: absent or null is 0 (older responses lack newer fields)."""
    value = record.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{name} is not an integer: {_shown(value)}")
    if value < 0:
        raise RecordError(f"{name} is negative: {value}")
    if value > MAX_COUNT:
        raise RecordError(f"{name} is implausibly large: {value}")
    return value


def optional_text(record: dict[str, Any], name: str) -> str | None:
    """The short printable string ``record[name]``, or None when absent or null."""
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{name} is not a string: {_shown(value)}")
    # isprintable() also refuses line and paragraph separators and bidirectional overrides,
    # so an id or a model name cannot forge lines in a table, a CSV or a proposed TOML entry.
    if len(value) > MAX_TEXT or not value.isprintable():
        raise RecordError(f"{name} is not a short printable string")
    return value or None


def amount_text(value: Any, name: str) -> Decimal:
    """An exact amount given as JSON text: a Decimal (parsed with ``parse_float=Decimal``), an
    int, or a decimal string. Never a binary float, a bool, an exponent, NaN or infinity."""
    if isinstance(value, bool) or value is None:
        raise RecordError(f"{name} is missing or not a number: {_shown(value)}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        amount = Decimal(value.strip())
    else:
        raise RecordError(f"{name} is not an exact decimal: {_shown(value)}")
    if not amount.is_finite():
        raise RecordError(f"{name} is not finite")
    return amount


def utc_day(instant: datetime) -> date:
    """The UTC day of a timezone-aware instant, within plausible years."""
    if instant.utcoffset() is None:
        raise RecordError(f"time {instant.isoformat()} has no timezone")
    day = instant.astimezone(UTC).date()
    if not _FIRST_DAY <= day < _LAST_DAY:
        raise RecordError(f"time {instant.isoformat()} is not a plausible usage day")
    return day


def _shown(value: Any) -> str:
    """A value in an error message: its repr, cut short (it came from outside)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Reading list prices out of genai-prices: which model a name means, and which price of that
model is in force at an instant and service tier, with the window during which that stays the
case.

genai-prices answers "price at instant t"; the gateway wants to cache the answer, so for a
model with conditional prices this computes the span around ``t`` during which no constraint
changes state: between the nearest start dates and, for time-of-day prices, the nearest daily
start/end times.

Service tiers are genai-prices "price variants": partial prices selected by a request context,
``{"service_tier": "flex"}`` / ``{"service_tier": "priority"}`` (OpenAI, Google) or
``{"processing": "batch"}`` (the batch APIs), each valid from a date of its own. A variant
replaces only the prices it names; the others stay the standard ones (genai-prices' rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from genai_prices import __version__ as GENAI_PRICES_VERSION
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TimeOfDateConstraint,
)

from spendgate.usage.service_tier import STANDARD

__all__ = ("ListModel", "ListPrice", "find_list_model", "list_price_at", "price_context")

_Constraint = StartDateConstraint | TimeOfDateConstraint | None

_ONE_DAY = timedelta(days=1)
# A snapshot date at the end of a name: gpt-4o-mini-tts-2025-03-20, claude-x-20250929, x@20241022.
_DATE_SUFFIX = re.compile(r"[-@](?:20\d{2}-\d{2}-\d{2}|20\d{6})$")


@dataclass(frozen=True, slots=True)
class ListModel:
    """A genai-prices model found for a requested name."""

    provider: Provider
    model: ModelInfo
    matched_as: str | None  # the name that matched when it is not the requested one
    label: str  # "genai-prices 0.2.3 openai/gpt-4o", the base of every price source string


@dataclass(frozen=True, slots=True)
class ListPrice:
    """The price of a model in force at an instant, constant over ``[valid_from, valid_until)``.

    ``tier_priced`` is False when a service tier other than standard was asked for and
    genai-prices has no price of that tier for the model then: ``prices`` are the standard ones.
    """

    prices: ModelPrice
    condition: str  # why this price applies, e.g. "from 2025-06-10"; "" when unconditional
    valid_from: datetime | None
    valid_until: datetime | None
    tier_priced: bool = True


def find_list_model(snapshot: DataSnapshot, provider_id: str, model: str) -> ListModel | None:
    """The genai-prices model for ``model`` at ``provider_id``, or None.

    genai-prices matches most dated snapshot names itself; a name it does not know that ends
    in a snapshot date is retried without the date (``gpt-5-search-api-2025-10-14``).
    """
    provider = find_provider_by_id(snapshot.providers, provider_id)
    if provider is None:
        return None
    matched_as = None
    found = provider.find_model(model, all_providers=snapshot.providers)
    if found is None:
        undated = _DATE_SUFFIX.sub("", model)
        if undated == model:
            return None
        found = provider.find_model(undated, all_providers=snapshot.providers)
        if found is None:
            return None
        matched_as = undated
    label = f"genai-prices {GENAI_PRICES_VERSION} {provider.id}/{found.id}"
    if snapshot.from_auto_update:
        label += f" (data of {snapshot.timestamp.isoformat(timespec='seconds')})"
    if matched_as is not None:
        label += f" as {matched_as}"
    return ListModel(provider, found, matched_as, label)


def price_context(service_tier: str | None) -> dict[str, str] | None:
    """The genai-prices price context selecting ``service_tier``'s variant (None: standard)."""
    if service_tier is None or service_tier == STANDARD:
        return None
    if service_tier == "batch":
        return {"processing": "batch"}
    return {"service_tier": service_tier}


def list_price_at(found: ListModel, at: datetime, service_tier: str | None = None) -> ListPrice:
    """The price genai-prices uses for ``found`` at ``at`` and ``service_tier`` (None: standard)."""
    model = found.model
    constraints: list[_Constraint] = []
    conditional: ConditionalPrice | None = None
    if not isinstance(model.prices, ModelPrice):
        constraints += [c.constraint for c in model.prices]
    context = price_context(service_tier)
    # genai-prices ignores variants of a model it found through another provider's list.
    own_model = any(candidate is model for candidate in found.provider.models)
    variants = [v for v in model.price_variants or () if _selects(v.when, context)] if context and own_model else []
    constraints += [v.constraint for v in variants]
    # Let genai-prices choose, so its precedence rules stay the only ones.
    chosen = model.get_prices(at, context) if variants else model.get_prices(at)
    if not isinstance(model.prices, ModelPrice):
        # Which conditional price it started from, to say why in the price source.
        standard = model.get_prices(at)
        conditional = next((c for c in model.prices if c.prices is standard), None)
    tier_priced = context is None or any(
        (v.constraint is None or v.constraint.active(at))
        and any(price is not None for key, price in vars(v.prices).items() if not key.startswith("_"))
        for v in variants
    )
    valid_from, valid_until = _steady_window(constraints, at)
    return ListPrice(chosen, _describe(conditional), valid_from, valid_until, tier_priced)


def _selects(when: dict[str, str], context: dict[str, str] | None) -> bool:
    return context is not None and all(context.get(key) == value for key, value in when.items())


def _describe(conditional: ConditionalPrice | None) -> str:
    constraint = conditional.constraint if conditional else None
    if isinstance(constraint, StartDateConstraint):
        return f"from {constraint.start_date.isoformat()}"
    if isinstance(constraint, TimeOfDateConstraint):
        start, end = _utc_time(constraint.start_time), _utc_time(constraint.end_time)
        return f"{start:%H:%M}-{end:%H:%M} UTC"
    return ""


def _steady_window(constraints: list[_Constraint], at: datetime) -> tuple[datetime | None, datetime | None]:
    """The span around ``at`` in which no constraint becomes active or inactive."""
    at = at.astimezone(UTC)
    boundaries: list[datetime] = []
    for constraint in constraints:
        if constraint is None:
            continue
        if isinstance(constraint, StartDateConstraint):
            # Active from the start date's UTC midnight on (genai-prices compares UTC dates).
            boundaries.append(_utc_midnight(constraint.start_date))
        elif isinstance(constraint, TimeOfDateConstraint):
            # Active between two times of day: boundaries at both, yesterday/today/tomorrow.
            for moment in (constraint.start_time, constraint.end_time):
                today = datetime.combine(at.date(), _utc_time(moment).replace(tzinfo=None), UTC)
                boundaries += (today - _ONE_DAY, today, today + _ONE_DAY)
        else:
            # A constraint kind this code does not know: never reuse the answer.
            return at, at
    valid_from = max((b for b in boundaries if b <= at), default=None)
    valid_until = min((b for b in boundaries if b > at), default=None)
    return valid_from, valid_until


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _utc_time(value: time) -> time:
    """``value`` as a UTC time of day, naive meaning UTC, the way genai-prices reads it."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).timetz()

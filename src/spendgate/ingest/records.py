"""A usage record from outside the proxy -> the ledger's ``UsageEvent`` (pure).

The one shape every door reads (POST /v1/usage, ``spendgate ingest``, OTLP spans once mapped,
``spendgate costs add``): validated field by field, each problem a reason the client can act
on, never a silent fix. A figure out of the ranges an upstream's answer is held to
(usage/bounds.py) rejects the record: the client can correct it and send it again, where the
proxy, which cannot ask the provider again, clamps and flags.

The event id is derived from the door, the key's name and the client's id, so the same record
twice is one event: the ledger stores an id once, on every backend and across restarts.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from spendgate.attribution import Attribution, AttributionError, AttributionForbidden, Directory, GatewayKey
from spendgate.attribution.rules import (
    MAX_HEADER_VALUE,
    MAX_TAG_KEY,
    MAX_TAGS,
    PROJECT_HEADER,
    TAG_KEY,
    TEAM_HEADER,
    attribute,
)
from spendgate.ledger.events import STATUS_ERROR, STATUS_OK, UsageEvent
from spendgate.pricing import PriceBook
from spendgate.usage import Usage
from spendgate.usage.bounds import MAX_EVENT_COST_USD, MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS
from spendgate.usage.service_tier import normalize_service_tier

# Where each door's events say they came from (``UsageEvent.source``).
SOURCES = ("proxy", "ingest", "otlp", "batch", "manual", "provider_import")
MAX_ID = 256  # characters of a client's record id
# A record may be dated a little ahead of the gateway's clock (clocks drift), not more.
FUTURE_SLACK = timedelta(minutes=5)
_TEXT_FIELDS = ("provider", "model", "project", "team", "feature", "customer", "trace_id")
_TOKEN_FIELDS = {
    "input_tokens": MAX_INPUT_TOKENS,
    "cached_input_tokens": MAX_INPUT_TOKENS,
    "cache_write_tokens": MAX_INPUT_TOKENS,
    "cache_write_1h_tokens": MAX_INPUT_TOKENS,
    "output_tokens": MAX_OUTPUT_TOKENS,
    "reasoning_tokens": MAX_OUTPUT_TOKENS,
}
KNOWN_FIELDS = frozenset(
    {"id", "ts", "cost_usd", "tags", "status", "service_tier", "endpoint", *_TEXT_FIELDS, *_TOKEN_FIELDS}
)


class RecordError(ValueError):
    """Why a record was rejected (its message goes back to the client as is)."""


@dataclass(slots=True)
class UsageRecord:
    """A validated record: what happened, and who it says it belongs to."""

    id: str
    ts: datetime
    provider: str
    model: str
    usage: Usage
    cost_usd: Decimal | None = None  # the client's own figure, kept and flagged
    project: str | None = None
    team: str | None = None
    feature: str | None = None
    customer: str | None = None
    trace_id: str | None = None
    tags: dict[str, str] | None = None
    status: str = STATUS_OK
    service_tier: str | None = None
    endpoint: str | None = None
    otel_span: str | None = None


def event_id(source: str, namespace: str, external_id: str) -> str:
    """The ledger id of a record: 32 hex characters like every event id, a hash of where it
    came from and the client's id, so the same record sent again is the same event."""
    digest = hashlib.sha256(f"{source}\x00{namespace}\x00{external_id}".encode()).hexdigest()
    return digest[:32]


# --- parsing ----------------------------------------------------------------------------------
def parse_record(raw: Any, now: datetime) -> UsageRecord:
    """A record as JSON decoded it (or a CSV row, every value text) -> ``UsageRecord``; raises
    ``RecordError`` saying what is wrong (``raw`` may be one already: a line that was no record)."""
    if isinstance(raw, RecordError):
        raise raw
    if not isinstance(raw, Mapping):
        raise RecordError("a record must be a JSON object")
    if not KNOWN_FIELDS.issuperset(raw):
        unknown = sorted(str(name) for name in raw if name not in KNOWN_FIELDS)
        raise RecordError(f"unknown field(s): {', '.join(name[:64] for name in unknown[:5])}")
    record_id = _text(raw, "id")
    if record_id is None:
        raise RecordError("'id' is required: the record's own id, which makes sending it again harmless")
    if len(record_id) > MAX_ID:
        raise RecordError(f"'id' is longer than {MAX_ID} characters")
    text = {name: _text(raw, name) for name in _TEXT_FIELDS}
    if text["provider"] is None or text["model"] is None:
        raise RecordError("'provider' and 'model' are required")
    counts = {name: _count(raw.get(name), name, ceiling) for name, ceiling in _TOKEN_FIELDS.items()}
    if counts["cached_input_tokens"] + counts["cache_write_tokens"] > counts["input_tokens"]:
        raise RecordError(
            "cached_input_tokens and cache_write_tokens are parts of input_tokens (which counts every input token)"
        )
    if counts["cache_write_1h_tokens"] > counts["cache_write_tokens"]:
        raise RecordError("cache_write_1h_tokens is a part of cache_write_tokens")
    if counts["reasoning_tokens"] > counts["output_tokens"]:
        raise RecordError("reasoning_tokens is a part of output_tokens")
    status = _text(raw, "status") or STATUS_OK
    if status not in (STATUS_OK, STATUS_ERROR):
        raise RecordError("'status' is ok or error")
    return UsageRecord(
        id=record_id,
        ts=parse_ts(raw.get("ts"), now),
        provider=text["provider"].lower(),
        model=text["model"],
        usage=Usage(**counts),
        cost_usd=parse_cost(raw.get("cost_usd")),
        project=text["project"],
        team=text["team"],
        feature=text["feature"],
        customer=text["customer"],
        trace_id=text["trace_id"],
        tags=parse_tag_object(raw.get("tags")),
        status=status,
        service_tier=normalize_service_tier(_text(raw, "service_tier")),
        endpoint=_text(raw, "endpoint"),
    )


def parse_ts(value: Any, now: datetime) -> datetime:
    """RFC 3339 (``2026-11-03T14:05:00Z``, an offset, or a date alone: its midnight UTC); absent:
    now. Never in the future beyond the clocks' slack."""
    if value is None or value == "":
        return now
    if not isinstance(value, str) or len(value) > 64:
        raise RecordError("'ts' must be an RFC 3339 time, e.g. 2026-11-03T14:05:00Z")
    try:
        ts = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise RecordError(f"'ts' is not an RFC 3339 time: {value[:64]!r}") from None
    if ts.tzinfo is None:
        if "T" in value or " " in value.strip():
            raise RecordError(f"'ts' has no UTC offset: {value[:64]!r} (add Z or +HH:MM)")
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    if ts > now + FUTURE_SLACK:
        raise RecordError(f"'ts' {value[:64]!r} is in the future")
    if ts.year < 2000:
        raise RecordError(f"'ts' {value[:64]!r} is before 2000")
    return ts


def parse_cost(value: Any) -> Decimal | None:
    """The client's cost: a decimal string (an integer also does); floats are refused, since
    money must be exact. Within [0, the per-event ceiling]."""
    if value is None or value == "":
        return None
    if isinstance(value, (bool, float)):
        raise RecordError("'cost_usd' must be a decimal string (\"0.0042\"): a float is not exact money")
    if isinstance(value, int):
        cost = Decimal(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            cost = Decimal(value.strip())
        except InvalidOperation:
            raise RecordError(f"'cost_usd' is not a decimal number: {value[:64]!r}") from None
    else:
        raise RecordError("'cost_usd' must be a decimal string")
    if not cost.is_finite() or cost < 0 or cost > MAX_EVENT_COST_USD:
        raise RecordError(f"'cost_usd' must be between 0 and {MAX_EVENT_COST_USD} (one record)")
    return cost


def parse_tag_object(value: Any) -> dict[str, str] | None:
    """Tags as an object of text values, under the rules of the ``x-spendgate-tags`` header."""
    if value is None or value == "" or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise RecordError("'tags' must be an object of text values")
    if len(value) > MAX_TAGS:
        raise RecordError(f"more than {MAX_TAGS} tags")
    tags: dict[str, str] = {}
    for name, tag_value in value.items():
        if not isinstance(name, str) or len(name) > MAX_TAG_KEY or not TAG_KEY.fullmatch(name):
            raise RecordError(
                f"bad tag key {str(name)[:MAX_TAG_KEY]!r}: up to {MAX_TAG_KEY} ASCII letters, digits and"
                " '_', '.', ':', '/', '-', starting with a letter, a digit or '_'"
            )
        if isinstance(tag_value, bool) or not isinstance(tag_value, (str, int)):
            raise RecordError(f"the value of tag {name!r} must be text")
        text = str(tag_value).strip()
        if "\x00" in text:
            raise RecordError(f"the value of tag {name!r} contains a NUL character")
        if len(text) > MAX_HEADER_VALUE:
            raise RecordError(f"the value of tag {name!r} is longer than {MAX_HEADER_VALUE} characters")
        tags[name] = text
    return tags


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"'{name}' must be text")
    text = str(value).strip()
    if len(text) > MAX_HEADER_VALUE and name != "id":
        raise RecordError(f"'{name}' is longer than {MAX_HEADER_VALUE} characters")
    if "\x00" in text:  # PostgreSQL text cannot hold it; no header can carry it either
        raise RecordError(f"'{name}' contains a NUL character")
    return text or None


def _count(value: Any, name: str, ceiling: int) -> int:
    """A token count in [0, ceiling]: JSON integers, or their text (CSV)."""
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 20:
            raise RecordError(f"'{name}' must be a whole number of tokens, got {value[:32]!r}")
        value = int(text)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # 12.0 from a spreadsheet; 12.5 is refused below
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"'{name}' must be a whole number of tokens")
    if value < 0 or value > ceiling:
        raise RecordError(f"'{name}' = {value} is out of range (0 to {ceiling} for one record)")
    return value


# --- attribution and price --------------------------------------------------------------------
def attribute_record(
    record: UsageRecord,
    key: GatewayKey | None,
    directory: Directory,
    owners: dict[tuple[str | None, str | None], Attribution] | None = None,
) -> Attribution:
    """Who owns the record, by the proxy's rules: the record's fields stand for the headers.
    With a key: its lock, its default project, its scope, its environment. Without one (the CLI
    run by an admin, no ``--key``): the names given, which must exist. ``owners``: the owners of
    (project, team) resolved so far (a backfill names a few projects a million times)."""
    place = (record.project, record.team)
    owner = owners.get(place) if owners is not None else None
    if owner is None:
        headers = {PROJECT_HEADER: record.project, TEAM_HEADER: record.team}
        present = {name: value for name, value in headers.items() if value is not None}
        admin = key is None
        # The operator's own door (no key): may name any project or team, as an org-wide key.
        as_key = GatewayKey(name="", key_hash="", key_prefix="", org_wide=True) if admin else key
        try:
            owner = attribute(as_key, present, directory)  # type: ignore[arg-type]
        except (AttributionError, AttributionForbidden) as exc:
            raise RecordError(str(exc)) from None
        if admin:
            owner = replace(owner, key=None, environment=None)
        if owners is not None:
            owners[place] = owner
    # The other dimensions are the record's own (validated as headers are: text, at most 256).
    return Attribution(
        project=owner.project,
        team=owner.team,
        cost_center=owner.cost_center,
        environment=owner.environment,
        key=owner.key,
        feature=record.feature,
        customer=record.customer,
        trace_id=record.trace_id,
        tags=record.tags or None,
    )


def record_event(
    record: UsageRecord,
    owner: Attribution,
    prices: PriceBook,
    *,
    source: str,
    namespace: str,
    endpoint: str,
) -> UsageEvent:
    """The ledger event of a record: priced at its own instant by the price book, unless the
    client gave its cost, which is kept and flagged ``client_reported``."""
    usage = record.usage
    rates = price_source = None
    cost = record.cost_usd
    if cost is None:
        priced = prices.price(record.provider, record.model, usage, record.ts, record.service_tier)
        if priced is not None:
            cost, rates, price_source = (
                min(priced.cost, MAX_EVENT_COST_USD),
                priced.rates.as_dict(),
                priced.rates.source,
            )
    else:
        price_source = "client-reported"
    return UsageEvent(
        id=event_id(source, namespace, record.id),
        ts=record.ts,
        provider=record.provider,
        model=record.model,
        endpoint=record.endpoint or endpoint,
        stream=False,
        status=record.status,
        http_status=200 if record.status == STATUS_OK else 0,
        project=owner.project,
        team=owner.team,
        cost_center=owner.cost_center,
        feature=owner.feature,
        environment=owner.environment,
        customer=owner.customer,
        key=owner.key,
        trace_id=owner.trace_id,
        tags=dict(owner.tags) if owner.tags else None,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        rates=rates,
        price_source=price_source,
        external_id=record.id,
        client_reported=record.cost_usd is not None,
        otel_span=record.otel_span,
        service_tier=record.service_tier,
        source=source,
    )


@dataclass
class Outcome:
    """What became of a batch: the events to store, by the index of their record, and the
    records rejected with their reasons."""

    events: dict[int, UsageEvent]
    rejected: list[dict[str, Any]]
    duplicates: set[int]  # the same id earlier in the batch


def build_events(
    raw_records: list[Any],
    *,
    key: GatewayKey | None,
    directory: Directory,
    prices: PriceBook,
    now: datetime,
    source: str,
    endpoint: str,
    missing_dimensions: Callable[[Attribution], list[str]] | None = None,
    namespace: str | None = None,
    owners: dict[tuple[str | None, str | None], Attribution] | None = None,
    horizon: datetime | None = None,
) -> Outcome:
    """Each record's event, or its rejection; a record id repeated within the batch is a
    duplicate of its first occurrence. ``missing_dimensions``: the tag policy of the key's
    environment, which refuses a record as it would a proxied request. ``namespace``: whose
    ids these are (default: the key's; a client's ids are its own, so two keys' "1" differ)."""
    if namespace is None:
        namespace = key.name if key is not None else ""
    outcome = Outcome({}, [], set())
    first: dict[str, int] = {}
    owners = {} if owners is None else owners
    for index, raw in enumerate(raw_records):
        try:
            record = parse_record(raw, now)
            if horizon is not None and record.ts < horizon:
                # Raw events before it were pruned: whether this one is new can no longer be told.
                raise RecordError(
                    f"'ts' is before the retention horizon ({horizon.isoformat()}): raw events that old are deleted"
                )
            owner = attribute_record(record, key, directory, owners)
            missing = missing_dimensions(owner) if missing_dimensions is not None else []
            if missing:
                raise RecordError(f"the policy for {owner.environment} keys requires {', '.join(missing)}")
            event = record_event(record, owner, prices, source=source, namespace=namespace, endpoint=endpoint)
        except RecordError as exc:
            outcome.rejected.append({"index": index, "error": str(exc)})
            continue
        if event.id in first:
            outcome.duplicates.add(index)
            continue
        first[event.id] = index
        outcome.events[index] = event
    return outcome

"""Other costs: spend that is not tokens (a search API, tool fees, on-prem GPUs), recorded by hand
as a ``manual`` event so that reports and budgets hold every dollar (pure).

A cost is the record POST /v1/usage takes, with its amount as a client-reported cost: provider
``manual``, the category as its model (``report --by model`` shows categories), tags
``category`` and ``description``, dated at the start of its period (a month, ``YYYY-MM``, or a
day, ``YYYY-MM-DD``), owned by its scope (``org``, ``team:T``, ``project:P``, ``feature:F``,
``customer:C``, ``tag:K=V``).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from spendgate.attribution.rules import MAX_HEADER_VALUE, TAG_KEY
from spendgate.ingest.records import RecordError
from spendgate.usage.bounds import MAX_EVENT_COST_USD

PROVIDER = "manual"
CATEGORY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}")
_SCOPE_FIELD = {"team": "team", "project": "project", "feature": "feature", "customer": "customer"}


def period_start(period: str) -> datetime:
    """``YYYY-MM`` -> its first day, ``YYYY-MM-DD`` -> that day, at 00:00 UTC."""
    for fmt in ("%Y-%m", "%Y-%m-%d"):
        try:
            return datetime.strptime(period.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise RecordError(f"bad period {period!r}: a month (YYYY-MM) or a day (YYYY-MM-DD)")


def parse_amount(text: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise RecordError(f"bad amount {text!r}: a decimal number of dollars, e.g. 1250.00") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_EVENT_COST_USD:
        raise RecordError(f"the amount must be above 0 and at most {MAX_EVENT_COST_USD} (split a larger one)")
    return amount


def cost_record(
    scope: str, amount: str, period: str, category: str, description: str | None = None, cost_id: str | None = None
) -> dict[str, Any]:
    """The usage record of a cost (``build_events`` validates and attributes it)."""
    if not CATEGORY.fullmatch(category):
        raise RecordError(f"bad category {category!r}: a word such as tools, compute, search (letters, digits, _.:/-)")
    if description is not None and len(description) > MAX_HEADER_VALUE:
        raise RecordError(f"the description is longer than {MAX_HEADER_VALUE} characters")
    record: dict[str, Any] = {
        "id": cost_id or uuid.uuid4().hex,
        "ts": period_start(period).isoformat(),
        "provider": PROVIDER,
        "model": category,
        "cost_usd": str(parse_amount(amount)),
        "tags": {"category": category, **({"description": description} if description else {})},
    }
    scope = scope.strip()
    if scope != "org":
        kind, sep, value = scope.partition(":")
        value = value.strip()
        if kind in _SCOPE_FIELD and sep and value:
            record[_SCOPE_FIELD[kind]] = value
        elif kind == "tag" and "=" in value:
            name, _, tag_value = value.partition("=")
            if not TAG_KEY.fullmatch(name.strip()):
                raise RecordError(f"bad tag scope {scope!r}")
            record["tags"][name.strip()] = tag_value.strip()
        else:
            raise RecordError(
                f"bad scope {scope!r}: org, team:NAME, project:NAME, feature:NAME, customer:ID or tag:KEY=VALUE"
            )
    return record

"""When finance deliveries are due (pure: ``now`` in, periods out; no clock, no database).

A monthly delivery is the previous calendar month (UTC), due from 00:00 UTC on the 1st; a
weekly one the previous ISO week (Monday to Sunday, UTC), due from 00:00 UTC on Monday. Only
the latest period of each kind is ever due: a gateway that was down for two months delivers the
last one, and older periods are delivered by hand (`spendgate finance deliver --month …`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MONTHLY = "finance.monthly_report"
WEEKLY = "finance.weekly_summary"
KINDS = (MONTHLY, WEEKLY)

_WEEK = re.compile(r"^(\d{4})-[Ww](\d{2})$")  # "2026-w48" too: normalized by week_key


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Due:
    kind: str
    period: str  # "2026-11" (monthly) or "2026-W48" (weekly)


def previous_month(now: datetime) -> str:
    first = now.astimezone(UTC).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def previous_week(now: datetime) -> str:
    return week_key(now.astimezone(UTC).date() - timedelta(days=7))


def week_key(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> date:
    """The Monday of ISO week ``YYYY-Www``."""
    match = _WEEK.match(text)
    if not match:
        raise ScheduleError(f"bad week {text[:40]!r}: expected YYYY-Www (an ISO week, e.g. 2026-W48)")
    try:
        return date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ScheduleError(f"bad week {text!r}: {match[1]} has no week {match[2]}") from None


def week_days(monday: date) -> tuple[date, date]:
    """The week's first and last day (inclusive)."""
    return monday, monday + timedelta(days=6)


def due_deliveries(now: datetime, kinds: Collection[str], completed: Collection[Due]) -> list[Due]:
    """The deliveries of ``kinds`` due at ``now`` that are not among ``completed`` (delivered or
    given up); retries of failed attempts wait for their time in the ledger's claim."""
    latest = {MONTHLY: previous_month(now), WEEKLY: previous_week(now)}
    done = set(completed)
    return [Due(kind, latest[kind]) for kind in KINDS if kind in kinds and Due(kind, latest[kind]) not in done]

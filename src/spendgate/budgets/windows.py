"""Budget periods as calendar windows in a timezone (pure).

Spend is kept per window, keyed by the window, so a new period simply starts at zero:
there is no reset job to forget, fail or run twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    key: str  # e.g. "2026-11-23", "2026-W48", "2026-11", "total"
    start: datetime | None  # aware UTC; None for a lifetime total
    end: datetime | None  # exclusive

    def contains(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def elapsed_fraction(self, now: datetime) -> float | None:
        if self.start is None or self.end is None:
            return None
        total = (self.end - self.start).total_seconds()
        return min(max((now - self.start).total_seconds() / total, 0.0), 1.0)


def iso_utc(at: datetime | None) -> str | None:
    """An instant as ISO-8601 UTC with a ``Z`` (how budgets and alerts print window bounds)."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # Local midnight of that day, as a UTC instant (DST-safe: built from the local date).
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def window_for(period: str, timezone: str, now: datetime) -> Window:
    if period == "total":
        return Window("total", None, None)
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone).date()
    if period == "day":
        return Window(local.isoformat(), _midnight(local, zone), _midnight(local + timedelta(days=1), zone))
    if period == "week":
        monday = local - timedelta(days=local.weekday())
        year, week, _ = monday.isocalendar()
        return Window(f"{year}-W{week:02d}", _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone))
    if period == "month":
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Window(first.strftime("%Y-%m"), _midnight(first, zone), _midnight(following, zone))
    raise ValueError(f"unknown period {period!r}")


class WindowCache:
    """The current window of each (period, timezone), resolved once and reused while ``now`` is
    inside it: building one costs a ZoneInfo lookup, conversions and datetimes, on every request
    otherwise. Exact at rollover (and if a clock goes back), since a cached window is only
    reused while ``start <= now < end``. One per owner (the Enforcer), not module state."""

    __slots__ = ("_windows",)

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], Window] = {}

    def get(self, period: str, timezone: str, now: datetime) -> Window:
        window = self._windows.get((period, timezone))
        if window is None or not window.contains(now):
            window = self._windows[(period, timezone)] = window_for(period, timezone, now)
        return window

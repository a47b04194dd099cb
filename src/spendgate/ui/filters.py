"""What a dashboard page is asked to show, from its query string (pure): a date range, a time
grain, the drill-down filters and a breakdown dimension. Bounded and validated here, so a page
never passes unchecked text to a query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from spendgate.reports.spec import TAG_PREFIX, ReportError, ReportQuery, Where, parse_dimensions

GRAINS = ("day", "week", "month")
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
# The drill-down filters a page understands, in drill-down order (org -> team -> project -> feature).
FILTER_DIMENSIONS = ("team", "project", "feature", "environment", "customer", "model", "provider", "key")
# What a spend page breaks down by.
BREAKDOWNS = ("team", "project", "feature", "model", "customer", "environment", "key", "provider")
# A filter value standing for "unset" (spend in no project, no feature...).
NONE_VALUE = "(none)"
_MAX_VALUE = 200


class FilterError(ValueError):
    """A query string the page cannot answer (the page says why: a 400)."""


@dataclass(frozen=True)
class Filters:
    since: date
    until: date  # inclusive
    grain: str = "day"
    where: tuple[tuple[str, str | None], ...] = ()
    by: str | None = None  # the breakdown asked for (None: the page's default)

    def query(self, by: tuple[str, ...] = (), **extra: object) -> ReportQuery:
        """The report of this range and these filters, grouped by ``by``."""
        return ReportQuery(by=by, since=self.since, until=self.until, where=self.report_where, **extra)  # type: ignore[arg-type]

    @property
    def report_where(self) -> Where:
        """These filters as reports and ``list_events`` take them (one value per dimension)."""
        return tuple((dim, (value,)) for dim, value in self.where)

    def value(self, dim: str) -> str | None:
        return dict(self.where).get(dim)

    def has(self, dim: str) -> bool:
        return dim in dict(self.where)

    def params(self, **changes: str | None) -> dict[str, str]:
        """This page's query parameters with ``changes`` (a None value drops the parameter)."""
        out: dict[str, str] = {"since": self.since.isoformat(), "until": self.until.isoformat(), "grain": self.grain}
        for dim, value in self.where:
            text = NONE_VALUE if value is None else value
            if dim.startswith(TAG_PREFIX):
                out["tag"] = f"{dim[len(TAG_PREFIX) :]}:{text}"
            else:
                out[dim] = text
        if self.by:
            out["by"] = self.by
        for name, value in changes.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = value
        return out

    def link(self, path: str, **changes: str | None) -> str:
        return f"{path}?{urlencode(self.params(**changes))}"

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1


def parse_filters(params: Mapping[str, str], today: date, *, fixed: Mapping[str, str] | None = None) -> Filters:
    """Filters from a page's query parameters; ``fixed``: filters the path sets (a project page's
    project), which the query string cannot change."""
    since, until = parse_period(params, today)
    grain = params.get("grain") or "day"
    if grain not in GRAINS:
        raise FilterError(f"grain is one of {', '.join(GRAINS)}")
    where: dict[str, str | None] = {}
    for dim in FILTER_DIMENSIONS:
        text = params.get(dim)
        if text:
            where[dim] = _value(dim, text)
    tag = params.get("tag")
    if tag:  # tag=NAME:VALUE
        name, _, value = tag.partition(":")
        try:
            parse_dimensions(TAG_PREFIX + name)
        except ReportError as exc:
            raise FilterError(str(exc)) from exc
        where[TAG_PREFIX + name] = _value("tag", value)
    for dim, text in (fixed or {}).items():
        where[dim] = _value(dim, text)
    by = params.get("by") or None
    if by is not None and by not in BREAKDOWNS and not _is_tag(by):
        raise FilterError(f"breakdown is one of {', '.join(BREAKDOWNS)} or tag:NAME")
    ordered = tuple((dim, where[dim]) for dim in (*FILTER_DIMENSIONS, *sorted(where)) if dim in where)
    return Filters(since=since, until=until, grain=grain, where=tuple(dict(ordered).items()), by=by)


def _is_tag(by: str) -> bool:
    if not by.startswith(TAG_PREFIX):
        return False
    try:
        parse_dimensions(by)
    except ReportError:
        return False
    return True


def parse_period(params: Mapping[str, str], today: date, noun: str = "range") -> tuple[date, date]:
    """``since`` and ``until`` (inclusive days) of a page's query string: the last
    ``DEFAULT_DAYS`` by default, at most ``MAX_DAYS``; ``noun`` names it in the errors."""
    until = _day(params, "until") or today
    since = _day(params, "since") or until - timedelta(days=DEFAULT_DAYS - 1)
    if until < since:
        raise FilterError(f"the {noun} ends before it starts")
    if (until - since).days >= MAX_DAYS:
        raise FilterError(f"a {noun} is at most {MAX_DAYS} days")
    return since, until


def _day(params: Mapping[str, str], name: str) -> date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise FilterError(f"{name} is a date: YYYY-MM-DD") from exc


def _value(dim: str, text: str) -> str | None:
    if len(text) > _MAX_VALUE:
        raise FilterError(f"{dim} is at most {_MAX_VALUE} characters")
    return None if text == NONE_VALUE else text

"""Budgets, rate limits and tag policies as plain records (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.attribution import Attribution

SCOPE_KINDS = ("org", "team", "project", "key", "customer", "feature", "tag")
# Anomalies and suspensions also name one agent run: ``trace:ID`` (a budget cannot: a trace
# has no period), and an anomaly rule ``trace:*`` (every runaway trace).
ANOMALY_SCOPE_KINDS = (*SCOPE_KINDS, "trace")
ANY_TRACE = "trace:*"
PERIODS = ("day", "week", "month", "total")
POLICY_DIMENSIONS = ("project", "team", "feature", "customer", "trace")
DEFAULT_ALERTS = (50, 80, 100)


class BudgetError(ValueError):
    """A budget, limit or policy that cannot be made as asked."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a budget or limit applies to: ``org``, ``team:NAME``, ``tag:KEY=VALUE``…"""

    kind: str
    value: str | None = None  # None for org; "key=value" for tag

    @classmethod
    def parse(cls, text: str, kinds: tuple[str, ...] = SCOPE_KINDS) -> Scope:
        text = text.strip()
        if text == "org":
            return cls("org")
        kind, sep, value = text.partition(":")
        if not sep or kind not in kinds or kind == "org" or not value.strip():
            also = " or trace:ID (trace:* in an anomaly rule)" if "trace" in kinds else ""
            raise BudgetError(
                f"bad scope {text!r}: use org, team:NAME, project:NAME, key:NAME, customer:ID, "
                f"feature:NAME or tag:KEY=VALUE{also}"
            )
        value = value.strip()
        if kind == "tag":
            tag_key, eq, tag_value = value.partition("=")
            if not eq or not tag_key.strip():
                raise BudgetError(f"bad scope {text!r}: a tag scope is tag:KEY=VALUE")
            value = f"{tag_key.strip()}={tag_value.strip()}"
        return cls(kind, value)

    def __str__(self) -> str:
        return "org" if self.kind == "org" else f"{self.kind}:{self.value}"

    def matches(self, owner: Attribution) -> bool:
        kind, value = self.kind, self.value
        if kind == "org":
            return True
        if kind == "team":
            return owner.team == value
        if kind == "project":
            return owner.project == value
        if kind == "key":
            return owner.key == value
        if kind == "customer":
            return owner.customer == value
        if kind == "feature":
            return owner.feature == value
        if kind == "trace":
            return owner.trace_id == value
        tag_key, _, tag_value = (value or "").partition("=")
        return bool(owner.tags) and owner.tags.get(tag_key) == tag_value


def parse_limit(text: str) -> Decimal:
    try:
        limit = Decimal(text)
    except InvalidOperation as exc:
        raise BudgetError(f"bad limit {text!r}: a dollar amount such as 250 or 99.50") from exc
    if not limit.is_finite() or limit <= 0:
        raise BudgetError(f"bad limit {text!r}: it must be more than zero")
    return limit


def parse_alerts(text: str | None) -> tuple[int, ...]:
    if text is None:
        return DEFAULT_ALERTS
    if not text.strip():
        return ()
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise BudgetError(f"bad --alert-at {text!r}: percentages such as 50,80,100") from exc
    if any(v <= 0 or v > 1000 for v in values):
        raise BudgetError("alert thresholds are percentages between 1 and 1000")
    return tuple(values)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BudgetError(f"unknown timezone {name!r}: use an IANA name such as Europe/Paris") from exc
    return name


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=\-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    scope: Scope
    limit_usd: Decimal
    period: str = "month"
    timezone: str = "UTC"
    alert_at: tuple[int, ...] = DEFAULT_ALERTS
    soft: bool = False
    # "approve": once exhausted, refuse with a 402 carrying an approval request (approvals).
    on_exhausted: str = "block"

    def __post_init__(self) -> None:
        if self.on_exhausted not in ("block", "approve"):
            raise BudgetError(f"bad on_exhausted {self.on_exhausted!r}: block or approve")
        if self.period not in PERIODS:
            raise BudgetError(f"bad period {self.period!r}: one of {', '.join(PERIODS)}")
        if not _NAME.match(self.name):
            raise BudgetError(f"bad budget name {self.name!r}")

    @property
    def blocking(self) -> bool:
        return not self.soft


@dataclass(frozen=True, slots=True)
class RateLimit:
    scope: Scope
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (input + output) per minute

    def __post_init__(self) -> None:
        if self.rpm is None and self.tpm is None:
            raise BudgetError("a limit needs --rpm, --tpm or both")
        for value in (self.rpm, self.tpm):
            if value is not None and value <= 0:
                raise BudgetError("--rpm and --tpm must be positive")


@dataclass(frozen=True, slots=True)
class Policy:
    """Requests from keys of ``environment`` must carry every one of ``dimensions``."""

    environment: str
    dimensions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = [d for d in self.dimensions if d not in POLICY_DIMENSIONS and not d.startswith("tag:")]
        if unknown or not self.dimensions:
            raise BudgetError(
                f"bad dimensions {', '.join(unknown) or '(none)'}: choose from "
                f"{', '.join(POLICY_DIMENSIONS)} or tag:NAME"
            )

    def missing(self, owner: Attribution) -> list[str]:
        if owner.environment != self.environment:
            return []
        present = {
            "project": owner.project,
            "team": owner.team,
            "feature": owner.feature,
            "customer": owner.customer,
            "trace": owner.trace_id,
        }
        missing = []
        for dimension in self.dimensions:
            if dimension.startswith("tag:"):
                if not (owner.tags and owner.tags.get(dimension[4:])):
                    missing.append(dimension)
            elif not present[dimension]:
                missing.append(dimension)
        return missing


def default_budget_name(scope: Scope, period: str) -> str:
    return f"{str(scope).replace(':', '-')}-{period}"


def budget_from_request(body: dict) -> Budget:
    """A budget from the admin API's JSON (the same rules as the CLI's options)."""
    scope = Scope.parse(str(body.get("scope", "")))
    period = str(body.get("period", "month"))
    alert_at = body.get("alert_at")
    return Budget(
        name=str(body.get("name") or default_budget_name(scope, period)),
        scope=scope,
        limit_usd=parse_limit(str(body.get("limit_usd", ""))),
        period=period,
        timezone=check_timezone(str(body.get("timezone", "UTC"))),
        alert_at=parse_alerts(",".join(str(v) for v in alert_at) if isinstance(alert_at, list) else None),
        soft=bool(body.get("soft", False)),
        on_exhausted=str(body.get("on_exhausted", "block")),
    )

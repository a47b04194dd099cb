"""The ``[finance]`` settings table: where the scheduled finance deliveries go, and what they hold.

[finance]
deliver_to = "/srv/finance"          # a directory, or an http(s) webhook URL; "" = off
formats = ["json", "csv", "html"]    # monthly report formats (statements: those they support)
statements_by = ["team"]             # team | cost_center | customer
weekly_summary = true                # each team's weekly summary to its webhooks
secret_env = "SPENDGATE_FINANCE_WEBHOOK_SECRET"  # signs deliveries to a webhook URL
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from spendgate.finance.formats import MONTHLY_FORMATS, STATEMENT_FORMATS
from spendgate.finance.statements import OWNERS
from spendgate.redact import redact_url

DEFAULT_FORMATS = ("json", "csv", "html")
DEFAULT_SECRET_ENV = "SPENDGATE_FINANCE_WEBHOOK_SECRET"
KEYS = ("deliver_to", "formats", "statements_by", "weekly_summary", "secret_env")
MAX_PATH = 4096


class FinanceConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FinanceConfig:
    deliver_to: str = ""
    formats: tuple[str, ...] = DEFAULT_FORMATS
    statements_by: tuple[str, ...] = ()
    weekly_summary: bool = False
    secret_env: str = DEFAULT_SECRET_ENV
    # The webhook signing secret, read from the environment at start-up; never printed.
    secret: str | None = field(default=None, repr=False)

    @property
    def to_webhook(self) -> bool:
        return urlsplit(self.deliver_to).scheme in ("http", "https")

    @property
    def monthly(self) -> bool:
        return bool(self.deliver_to)

    @property
    def statement_formats(self) -> tuple[str, ...]:
        return tuple(f for f in self.formats if f in STATEMENT_FORMATS)


def _names(raw: Any, option: str, known: tuple[str, ...] | Mapping[str, Any], origin: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise FinanceConfigError(f'{origin}: [finance] {option} must be a list of names, e.g. ["{next(iter(known))}"]')
    unknown = [item for item in raw if item not in known]
    if unknown:
        names = ", ".join(repr(u[:40]) for u in unknown)
        raise FinanceConfigError(f"{origin}: [finance] {option}: unknown {names}; one of {', '.join(known)}")
    if len(set(raw)) != len(raw):
        raise FinanceConfigError(f"{origin}: [finance] {option} names one twice")
    return tuple(raw)


def _destination(raw: Any, origin: str) -> str:
    if not isinstance(raw, str):
        raise FinanceConfigError(f"{origin}: [finance] deliver_to must be a directory path or an http(s) URL")
    if len(raw) > MAX_PATH or "\x00" in raw:
        raise FinanceConfigError(f"{origin}: [finance] deliver_to is not a usable path or URL")
    parts = urlsplit(raw)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise FinanceConfigError(f"{origin}: [finance] deliver_to {redact_url(raw)!r}: a URL needs a host")
    elif "://" in raw:
        raise FinanceConfigError(
            f"{origin}: [finance] deliver_to {redact_url(raw)!r}: only http(s) URLs or a directory path"
        )
    return raw


def parse_finance_config(raw: Any, origin: str, environ: Mapping[str, str]) -> FinanceConfig:
    if raw is None:
        return FinanceConfig()
    if not isinstance(raw, dict):
        raise FinanceConfigError(f"{origin}: [finance] must be a table")
    unknown = set(raw) - set(KEYS)
    if unknown:
        raise FinanceConfigError(f"{origin}: [finance] has unknown keys {sorted(unknown)}; known: {list(KEYS)}")
    deliver_to = _destination(raw.get("deliver_to", ""), origin)
    formats = _names(raw.get("formats", list(DEFAULT_FORMATS)), "formats", MONTHLY_FORMATS, origin)
    if not formats:
        raise FinanceConfigError(f"{origin}: [finance] formats must name at least one format")
    statements_by = _names(raw.get("statements_by", []), "statements_by", OWNERS, origin)
    weekly = raw.get("weekly_summary", False)
    if not isinstance(weekly, bool):
        raise FinanceConfigError(f"{origin}: [finance] weekly_summary must be true or false")
    secret_env = raw.get("secret_env", DEFAULT_SECRET_ENV)
    if not isinstance(secret_env, str) or not secret_env.isidentifier():
        raise FinanceConfigError(f"{origin}: [finance] secret_env must name an environment variable")
    config = FinanceConfig(deliver_to, formats, statements_by, weekly, secret_env, environ.get(secret_env) or None)
    if statements_by and not config.statement_formats:
        raise FinanceConfigError(
            f"{origin}: [finance] statements_by needs a statement format in formats ({', '.join(STATEMENT_FORMATS)})"
        )
    if statements_by and not deliver_to:
        raise FinanceConfigError(f"{origin}: [finance] statements_by is set but deliver_to is empty")
    if config.to_webhook and not config.secret:
        raise FinanceConfigError(
            f"{origin}: [finance] deliver_to is a webhook: set {secret_env} to the secret that signs the deliveries"
        )
    return config

"""Settings: read once at the edge (CLI), typed, then passed in; nothing reads the
environment later.

Precedence: command-line flag > environment variable > config file > default.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spendgate.attribution.body import BodyRule, BodyRuleError, parse_body_rules

DEFAULT_CONFIG_FILE = "spendgate.toml"


class SettingsError(ValueError):
    pass


PROVIDER_KINDS = ("openai", "gemini", "azure")
# What each kind is priced as by default (genai-prices provider ids).
DEFAULT_PRICE_PROVIDERS = {"gemini": "google", "azure": "azure"}


@dataclass(frozen=True)
class ProviderConfig:
    """A provider configured by name. ``kind``: ``openai`` (any OpenAI-compatible API, chosen by
    the model prefix ``NAME/``), ``gemini`` (Google's Gemini API, also served on its native
    ``generateContent`` paths) or ``azure`` (an Azure OpenAI resource, also served on its
    ``/openai/…`` paths)."""

    name: str
    base_url: str
    api_key_env: str | None = None
    # genai-prices provider id used to price its models (None: only the overrides file can).
    price_provider: str | None = None
    kind: str = "openai"
    # Azure: deployment name -> the model it serves, for prices before the answer names it.
    deployments: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    name: str
    env: str | None
    default: Any
    kind: type
    help: str


# The single table of settings: the README's table is written from the same facts.
SETTINGS: tuple[Setting, ...] = (
    Setting("db", "SPENDGATE_DB", "sqlite:///./spendgate.db", str, "ledger database URL"),
    Setting("redis_url", "SPENDGATE_REDIS_URL", None, str, "shared counters for several gateway replicas"),
    Setting(
        "redis_namespace",
        "SPENDGATE_REDIS_NAMESPACE",
        None,
        str,
        "prefix of the Redis keys (default `spendgate:<ledger id>`: each ledger its own counters)",
    ),
    Setting(
        "counter_resync_interval",
        "SPENDGATE_COUNTER_RESYNC_INTERVAL",
        60.0,
        float,
        "seconds between re-syncs of the active budget windows' counters against the ledger (0: never)",
    ),
    Setting("openai_base_url", "SPENDGATE_OPENAI_BASE_URL", "https://api.openai.com/v1", str, "OpenAI upstream"),
    Setting(
        "anthropic_base_url",
        "SPENDGATE_ANTHROPIC_BASE_URL",
        "https://api.anthropic.com",
        str,
        "Anthropic upstream",
    ),
    Setting("prices", "SPENDGATE_PRICES", None, str, "price overrides file (TOML or JSON)"),
    Setting("host", "SPENDGATE_HOST", "127.0.0.1", str, "address `serve` listens on"),
    Setting("port", "SPENDGATE_PORT", 4100, int, "port `serve` listens on"),
    Setting(
        "max_body_bytes",
        "SPENDGATE_MAX_BODY_BYTES",
        20 * 1024 * 1024,
        int,
        "largest request body (413 above)",
    ),
    Setting("upstream_timeout", "SPENDGATE_UPSTREAM_TIMEOUT", 600.0, float, "seconds to wait for upstream data"),
    Setting("connect_timeout", "SPENDGATE_CONNECT_TIMEOUT", 10.0, float, "seconds to connect upstream"),
    Setting(
        "stream_deadline",
        "SPENDGATE_STREAM_DEADLINE",
        3600.0,
        float,
        "seconds a streamed answer may last in all, however slowly it trickles (then cut, recorded incomplete)",
    ),
    Setting(
        "max_stream_event_bytes",
        "SPENDGATE_MAX_STREAM_EVENT_BYTES",
        16 * 1024 * 1024,
        int,
        "largest stream event the gateway reads; a larger one is passed on unread and the request estimated",
    ),
    Setting("idle_timeout", "SPENDGATE_IDLE_TIMEOUT", 30.0, float, "seconds a client connection may sit idle"),
    Setting(
        "header_timeout",
        "SPENDGATE_HEADER_TIMEOUT",
        10.0,
        float,
        "seconds a client has to send a request's headers, from their first byte",
    ),
    Setting(
        "body_timeout",
        "SPENDGATE_BODY_TIMEOUT",
        60.0,
        float,
        "seconds a client has to send a request's body, once its headers are in",
    ),
    Setting(
        "max_connections",
        "SPENDGATE_MAX_CONNECTIONS",
        4096,
        int,
        "client connections held at once (per process)",
    ),
    Setting("admin_key", "SPENDGATE_ADMIN_KEY", None, str, "bearer token for the /admin API (off when unset)"),
    # --- users, sessions and the dashboard (access/) ---
    Setting(
        "secret_key",
        "SPENDGATE_SECRET_KEY",
        None,
        str,
        "the server's secret: signs session cookies and CSRF tokens (unset: a key made once and kept in the ledger)",
    ),
    Setting(
        "encryption_key",
        "SPENDGATE_ENCRYPTION_KEY",
        None,
        str,
        "Fernet key(s) encrypting webhook secrets at rest (`spendgate webhooks new-key`; several, comma-separated:"
        " the first encrypts, all decrypt); unset: adding a webhook secret is refused",
    ),
    Setting(
        "session_idle_timeout",
        "SPENDGATE_SESSION_IDLE_TIMEOUT",
        7200.0,
        float,
        "seconds a dashboard session may go unused before it ends",
    ),
    Setting(
        "session_max_age",
        "SPENDGATE_SESSION_MAX_AGE",
        43200.0,
        float,
        "seconds a dashboard session lasts at most, however much it is used",
    ),
    Setting(
        "secure_cookies",
        "SPENDGATE_SECURE_COOKIES",
        False,
        bool,
        "mark the session cookie Secure (serve the dashboard over https, e.g. behind a TLS proxy)",
    ),
    Setting("flush_interval", "SPENDGATE_FLUSH_INTERVAL", 0.2, float, "seconds between ledger batch writes"),
    Setting("refresh_interval", "SPENDGATE_REFRESH_INTERVAL", 1.0, float, "seconds between key/project reloads"),
    Setting(
        "anomaly_interval",
        "SPENDGATE_ANOMALY_INTERVAL",
        30.0,
        float,
        "seconds between live spend-anomaly checks (0: no live detection)",
    ),
    Setting(
        "trace_suspension_hours",
        "SPENDGATE_TRACE_SUSPENSION_HOURS",
        24.0,
        float,
        "hours a runaway trace suspended by a `trace:*` rule stays suspended (0 < h <= 720)",
    ),
    Setting(
        "reservation_ttl",
        "SPENDGATE_RESERVATION_TTL",
        3600.0,
        float,
        "seconds before the budget reservation of a request that never settled is released",
    ),
    Setting(
        "reservation",
        "SPENDGATE_RESERVATION",
        "strict",
        str,
        "what a request without max_tokens reserves against budgets: `strict` (the model's whole output bound)"
        " or `learned` (the `reservation_percentile` of what the model wrote for the project lately)",
    ),
    Setting(
        "reservation_percentile",
        "SPENDGATE_RESERVATION_PERCENTILE",
        0.99,
        float,
        "learned mode's percentile of recent output tokens (0.5 to 0.9999)",
    ),
    Setting(
        "spool_dir",
        "SPENDGATE_SPOOL_DIR",
        None,
        str,
        "local spool folder (default: `<db file>.spool` for SQLite, `./spendgate-spool` otherwise)",
    ),
    Setting(
        "spool_fsync",
        "SPENDGATE_SPOOL_FSYNC",
        "interval",
        str,
        "when the spool is fsynced: `interval` (once per flush interval), `always` (every record), `never`",
    ),
    Setting(
        "spool_memory_events",
        "SPENDGATE_SPOOL_MEMORY_EVENTS",
        10_000,
        int,
        "unshipped events kept in memory; past it they are read back from the spool",
    ),
    Setting(
        "retention_days",
        "SPENDGATE_RETENTION_DAYS",
        None,
        int,
        "days of raw events kept (at least 35); `serve` prunes older ones hourly and `spendgate prune` on"
        " demand; rollups are kept forever; unset: keep everything",
    ),
)


@dataclass(frozen=True)
class Settings:
    db: str = "sqlite:///./spendgate.db"
    redis_url: str | None = None
    redis_namespace: str | None = None
    counter_resync_interval: float = 60.0
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    prices: str | None = None
    host: str = "127.0.0.1"
    port: int = 4100
    max_body_bytes: int = 20 * 1024 * 1024
    upstream_timeout: float = 600.0
    connect_timeout: float = 10.0
    stream_deadline: float = 3600.0
    max_stream_event_bytes: int = 16 * 1024 * 1024
    idle_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 4096
    admin_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    encryption_key: str | None = field(default=None, repr=False)
    session_idle_timeout: float = 7200.0
    session_max_age: float = 43200.0
    secure_cookies: bool = False
    flush_interval: float = 0.2
    refresh_interval: float = 1.0
    anomaly_interval: float = 30.0
    trace_suspension_hours: float = 24.0
    reservation_ttl: float = 3600.0
    reservation: str = "strict"
    reservation_percentile: float = 0.99
    spool_dir: str | None = None
    spool_fsync: str = "interval"
    spool_memory_events: int = 10_000
    retention_days: int | None = None
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    # [[attribution.body]]: dimensions read from request bodies (attribution/body.py).
    body_attribution: tuple[BodyRule, ...] = ()
    # [reconcile]: drift threshold, the gateway's provider keys, import mappings (reconcile/mapping.py).
    reconcile: Any = field(default_factory=lambda: _reconcile(None, "defaults"))
    # [finance]: scheduled delivery of the monthly report, statements, weekly summaries
    # (finance/delivery_config.py).
    finance: Any = field(default_factory=lambda: _finance(None, "defaults", {}))
    # Provider credentials stay in the environment they came from; the gateway reads them
    # through this mapping only to put them on upstream requests.
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    if value is None:
        return None
    if setting.kind is bool:
        # TOML says true/false; the environment and flags say one of these words.
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise SettingsError(f"{origin}: {setting.name} must be true or false, got {value!r}")
    # TOML already typed the value: refuse a wrong type rather than convert it silently
    # (``port = true`` is not port 1, ``db = 5`` is not the database "5").
    if isinstance(value, bool) or (
        not isinstance(value, str)
        and not (setting.kind is float and isinstance(value, int))
        and not isinstance(value, setting.kind)
    ):
        raise SettingsError(f"{origin}: {setting.name} must be {setting.kind.__name__}, got {value!r}")
    try:
        return setting.kind(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{origin}: {setting.name} must be {setting.kind.__name__}, got {value!r}") from exc


def _check_ranges(values: Mapping[str, Any]) -> None:
    # Imported here: settings must not pull the ledger package in at import time.
    from spendgate.ledger.retention import MIN_RETENTION_DAYS

    for name in (
        "stream_deadline",
        "max_stream_event_bytes",
        "idle_timeout",
        "header_timeout",
        "body_timeout",
        "max_connections",
        "session_idle_timeout",
        "session_max_age",
    ):
        value = values.get(name)
        if value is not None and not 0 < value < math.inf:
            raise SettingsError(f"{name} must be a positive number, got {value}")
    if values.get("encryption_key"):
        from spendgate.secretbox import SecretBox, SecretBoxError

        try:
            SecretBox(values["encryption_key"])
        except SecretBoxError as exc:
            raise SettingsError(str(exc)) from exc
    interval = values.get("counter_resync_interval")
    if interval is not None and not 0 <= interval < math.inf:
        raise SettingsError(f"counter_resync_interval must be 0 (never) or a positive number, got {interval}")
    reservation = values.get("reservation")
    if reservation is not None and reservation not in ("strict", "learned"):
        raise SettingsError(f"reservation must be strict or learned, got {reservation!r}")
    percentile = values.get("reservation_percentile")
    if percentile is not None and not 0.5 <= percentile <= 0.9999:
        raise SettingsError(f"reservation_percentile must be between 0.5 and 0.9999, got {percentile}")
    namespace = values.get("redis_namespace")
    if namespace is not None and (not namespace or any(ch in namespace for ch in "{}")):
        raise SettingsError(f"redis_namespace must be non-empty and without braces, got {namespace!r}")
    # A trace suspension must lapse (its id never comes back) and live long enough to stop the run.
    hours = values.get("trace_suspension_hours")
    if hours is not None and not 0 < hours <= 720:
        raise SettingsError(f"trace_suspension_hours must be more than 0 and at most 720 (30 days), got {hours}")
    days = values.get("retention_days")
    if days is not None and days < MIN_RETENTION_DAYS:
        raise SettingsError(
            f"retention_days must be at least {MIN_RETENTION_DAYS} (a monthly budget window reaches back"
            f" 31 days and is re-read from raw events), got {days}"
        )


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def _providers(raw: Any, origin: str) -> dict[str, ProviderConfig]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{origin}: [providers] must be a table of provider tables")
    providers = {}
    for name, table in raw.items():
        if name in ("openai", "anthropic"):
            raise SettingsError(f"{origin}: provider name {name!r} is built in; pick another name")
        if not isinstance(table, dict) or not isinstance(table.get("base_url"), str):
            raise SettingsError(f'{origin}: [providers.{name}] needs base_url = "https://…"')
        unknown = set(table) - {"base_url", "api_key_env", "price_provider", "kind", "deployments"}
        if unknown:
            raise SettingsError(f"{origin}: [providers.{name}] has unknown keys {sorted(unknown)}")
        for option in ("api_key_env", "price_provider", "kind"):
            if table.get(option) is not None and not isinstance(table[option], str):
                raise SettingsError(f"{origin}: [providers.{name}] {option} must be a string")
        kind = table.get("kind", "openai")
        if kind not in PROVIDER_KINDS:
            raise SettingsError(f"{origin}: [providers.{name}] kind must be one of {', '.join(PROVIDER_KINDS)}")
        deployments = table.get("deployments", {})
        if not isinstance(deployments, dict) or not all(isinstance(v, str) for v in deployments.values()):
            raise SettingsError(f'{origin}: [providers.{name}] deployments must be a table of "deployment" = "model"')
        if deployments and kind != "azure":
            raise SettingsError(f'{origin}: [providers.{name}] deployments apply to kind = "azure" only')
        providers[name] = ProviderConfig(
            name=name,
            base_url=table["base_url"].rstrip("/"),
            api_key_env=table.get("api_key_env"),
            price_provider=table.get("price_provider"),  # None: the kind's default (gateway/upstream.py)
            kind=kind,
            deployments=dict(deployments),
        )
    return providers


def _body_attribution(raw: Any, origin: str) -> tuple[BodyRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or set(raw) - {"body"}:
        raise SettingsError(f"{origin}: [attribution] holds only body rules ([[attribution.body]])")
    try:
        return parse_body_rules(raw.get("body"), origin)
    except BodyRuleError as exc:
        raise SettingsError(str(exc)) from exc


def _reconcile(raw: Any, origin: str) -> Any:
    # Imported here: settings must not pull the reconciliation (and its clients) in at import time.
    from spendgate.reconcile.mapping import ReconcileConfigError, parse_reconcile_config

    try:
        return parse_reconcile_config(raw, origin)
    except ReconcileConfigError as exc:
        raise SettingsError(str(exc)) from exc


def _finance(raw: Any, origin: str, environ: Mapping[str, str]) -> Any:
    # Imported here: settings must not pull the finance reports (and the ledger) in at import time.
    from spendgate.finance.delivery_config import FinanceConfigError, parse_finance_config

    try:
        return parse_finance_config(raw, origin, environ)
    except FinanceConfigError as exc:
        raise SettingsError(str(exc)) from exc


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge flags, environment and config file; only the config file is read from disk."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ

    file_values: dict[str, Any] = {}
    origin = "defaults"
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
    else:
        path = Path(DEFAULT_CONFIG_FILE)
    if path.is_file():
        origin = str(path)
        file_values = _read_config_file(path)
        known = {s.name for s in SETTINGS} | {"providers", "attribution", "reconcile", "finance"}
        unknown = set(file_values) - known
        if unknown:
            raise SettingsError(f"{origin}: unknown settings {sorted(unknown)}; known: {sorted(known)}")

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in flags:
            values[setting.name] = _coerce(setting, flags[setting.name], "command line")
        elif setting.env and environ.get(setting.env):
            values[setting.name] = _coerce(setting, environ[setting.env], setting.env)
        elif setting.name in file_values:
            values[setting.name] = _coerce(setting, file_values[setting.name], origin)
        else:
            values[setting.name] = setting.default

    _check_ranges(values)
    providers = _providers(file_values.get("providers"), origin)
    body_attribution = _body_attribution(file_values.get("attribution"), origin)
    reconcile = _reconcile(file_values.get("reconcile"), origin)
    finance = _finance(file_values.get("finance"), origin, environ)
    # The admin keys too: serve's daily drift check reads the providers' usage reports with them.
    credential_names = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_ADMIN_KEY", "ANTHROPIC_ADMIN_KEY"} | {
        p.api_key_env for p in providers.values() if p.api_key_env
    }
    credentials = {name: environ[name] for name in credential_names if environ.get(name)}
    return Settings(
        **values,
        providers=providers,
        body_attribution=body_attribution,
        credentials=credentials,
        reconcile=reconcile,
        finance=finance,
    )

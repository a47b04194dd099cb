"""The ``[reconcile]`` settings and what an import becomes: usage records for the ingest pipeline (pure).

``[reconcile]`` in the config file::

    drift_threshold_percent = 2        # reconcile.drift webhook when |drift| passes it (serve, daily)
    gateway_key_ids = { openai = ["key_abc"], anthropic = ["apikey_01…"] }  # the gateway's own keys
    [[reconcile.map]]                  # first match wins; no match fields: a catch-all
    provider = "openai"                # optional
    api_key_id = "key_direct"          # and/or project_id = "proj_…" (OpenAI project, Anthropic workspace)
    project = "checkout"               # spendgate project (must exist), team, environment
    team = "payments"
    environment = "production"

An imported row becomes one usage record (``ingest/records.py``'s shape), its id derived from the
provider, day, model, provider key and the figures imported: the same surplus imported twice is
one event (the ledger stores an id once), and a surplus that grows later (the provider reported
late) is a new event for the difference only, since the import subtracts what the ledger holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd
from spendgate.reconcile.imports import ImportRow

__all__ = (
    "KEY_TAG",
    "PROJECT_TAG",
    "ImportMapping",
    "ReconcileConfig",
    "import_record",
    "parse_reconcile_config",
)

# The tags an imported event carries: the provider key it was reported under (the next
# reconciliation puts it beside that key's usage) and the provider project or workspace.
KEY_TAG = "provider_key"
PROJECT_TAG = "provider_project"
PROVIDERS = ("openai", "anthropic")
_MAP_FIELDS = {"provider", "api_key_id", "project_id", "project", "team", "environment"}


class ReconcileConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ImportMapping:
    """Provider key / project (workspace) -> spendgate project, team, environment."""

    provider: str | None = None
    api_key_id: str | None = None
    project_id: str | None = None
    project: str | None = None
    team: str | None = None
    environment: str | None = None

    def matches(self, provider: str, row: ImportRow) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        if self.api_key_id is not None and self.api_key_id != row.api_key_id:
            return False
        projects = (row.project_or_workspace_id or "").split(",")
        return self.project_id is None or self.project_id in projects


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    drift_threshold_percent: Decimal | None = None  # None: no drift webhook
    gateway_key_ids: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mappings: tuple[ImportMapping, ...] = ()

    def mapping_for(self, provider: str, row: ImportRow) -> ImportMapping | None:
        return next((m for m in self.mappings if m.matches(provider, row)), None)

    def gateway_keys(self, provider: str) -> tuple[str, ...] | None:
        return self.gateway_key_ids.get(provider)


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 256 or not value.isprintable():
        raise ReconcileConfigError(f"{where} must be a short printable string")
    return value.strip()


def parse_reconcile_config(raw: Any, origin: str) -> ReconcileConfig:
    if raw is None:
        return ReconcileConfig()
    if not isinstance(raw, dict):
        raise ReconcileConfigError(f"{origin}: [reconcile] must be a table")
    unknown = set(raw) - {"drift_threshold_percent", "gateway_key_ids", "map"}
    if unknown:
        raise ReconcileConfigError(f"{origin}: [reconcile] has unknown keys {sorted(unknown)}")
    threshold = raw.get("drift_threshold_percent")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | str):
            raise ReconcileConfigError(f"{origin}: reconcile.drift_threshold_percent must be a number")
        try:
            threshold = Decimal(str(threshold))
        except ArithmeticError:
            raise ReconcileConfigError(f"{origin}: reconcile.drift_threshold_percent must be a number") from None
        if not threshold.is_finite() or threshold < 0:
            raise ReconcileConfigError(f"{origin}: reconcile.drift_threshold_percent must be 0 or more")
    keys_raw = raw.get("gateway_key_ids", {})
    if not isinstance(keys_raw, dict) or set(keys_raw) - set(PROVIDERS):
        raise ReconcileConfigError(f"{origin}: reconcile.gateway_key_ids is a table of openai/anthropic = [ids]")
    keys: dict[str, tuple[str, ...]] = {}
    for provider, ids in keys_raw.items():
        if not isinstance(ids, list):
            raise ReconcileConfigError(f"{origin}: reconcile.gateway_key_ids.{provider} must be a list")
        keys[provider] = tuple(_text(i, f"{origin}: reconcile.gateway_key_ids.{provider}") or "" for i in ids)
    maps_raw = raw.get("map", [])
    if not isinstance(maps_raw, list):
        raise ReconcileConfigError(f"{origin}: reconcile.map must be an array of tables ([[reconcile.map]])")
    mappings = []
    for n, entry in enumerate(maps_raw, 1):
        where = f"{origin}: [[reconcile.map]] #{n}"
        if not isinstance(entry, dict) or set(entry) - _MAP_FIELDS:
            raise ReconcileConfigError(f"{where}: known keys are {sorted(_MAP_FIELDS)}")
        values = {name: _text(entry.get(name), f"{where} {name}") for name in _MAP_FIELDS}
        if values["provider"] is not None and values["provider"] not in PROVIDERS:
            raise ReconcileConfigError(f"{where}: provider is openai or anthropic")
        if values["project"] is None and values["team"] is None:
            raise ReconcileConfigError(f"{where}: needs project or team (whose spend the import is)")
        mappings.append(ImportMapping(**values))
    return ReconcileConfig(threshold, keys, tuple(mappings))


def import_ts(day: date, now: datetime) -> datetime:
    """When an imported day's event happened: its noon (UTC), never after ``now``."""
    return min(datetime.combine(day, time(12), UTC), now)


def import_id(provider: str, row: ImportRow) -> str:
    """Derived from what is imported, so importing the same surplus twice stores it once."""
    parts = (
        provider,
        row.day.isoformat(),
        row.model,
        row.api_key_id or "",
        row.project_or_workspace_id or "",
        row.input_tokens,
        row.cached_input_tokens,
        row.cache_write_tokens,
        row.cache_write_1h_tokens,
        row.output_tokens,
        "" if row.cost_usd is None else format_usd(row.cost_usd),
    )
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:24]
    return f"{provider}:{row.day.isoformat()}:{digest}"


def import_record(provider: str, row: ImportRow, mapping: ImportMapping | None, now: datetime) -> dict[str, Any]:
    """The usage record (POST /v1/usage's shape) of one imported row. Its cost is the
    provider's (flagged client-reported by the pipeline), so the ledger adds up to the bill."""
    # No key tag when the provider reported no key at all (its report is not by key): then the
    # import sits beside the gateway's own traffic, as the report does.
    tags = {KEY_TAG: row.api_key_id} if row.api_key_id else {}
    if row.project_or_workspace_id:
        tags[PROJECT_TAG] = row.project_or_workspace_id[:256]
    record: dict[str, Any] = {
        "id": import_id(provider, row),
        "ts": import_ts(row.day, now).isoformat(),
        "provider": provider,
        "model": row.model,
        "input_tokens": row.input_tokens,
        "cached_input_tokens": row.cached_input_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cache_write_1h_tokens": row.cache_write_1h_tokens,
        "output_tokens": row.output_tokens,
        "tags": tags or None,
        "endpoint": f"{provider} usage report",
    }
    if row.cost_usd is not None:
        record["cost_usd"] = format_usd(row.cost_usd)
    if row.service_tier:
        record["service_tier"] = row.service_tier
    if mapping is not None:
        if mapping.project:
            record["project"] = mapping.project
        if mapping.team:
            record["team"] = mapping.team
    return record


def environments(
    provider: str, rows: Sequence[ImportRow], config: ReconcileConfig
) -> dict[str, str]:  # record id -> environment
    found = {}
    for row in rows:
        mapping = config.mapping_for(provider, row)
        if mapping is not None and mapping.environment:
            found[import_id(provider, row)] = mapping.environment
    return found

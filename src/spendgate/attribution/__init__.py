"""Who owns a request: teams, projects, keys and the fallback chain (pure)."""

from spendgate.attribution.body import BodyRule, BodyRuleError, BodyValues, body_values, parse_body_rules
from spendgate.attribution.keys import display_prefix, hash_key, new_key_secret
from spendgate.attribution.model import (
    DEFAULT_ENVIRONMENT,
    UNALLOCATED,
    Directory,
    GatewayKey,
    Project,
    ScopeChange,
    Team,
)
from spendgate.attribution.rules import (
    ATTRIBUTION_HEADERS,
    Attribution,
    AttributionError,
    AttributionForbidden,
    attribute,
    parse_tags,
)

__all__ = [
    "ATTRIBUTION_HEADERS",
    "DEFAULT_ENVIRONMENT",
    "UNALLOCATED",
    "Attribution",
    "AttributionError",
    "AttributionForbidden",
    "BodyRule",
    "BodyRuleError",
    "BodyValues",
    "Directory",
    "GatewayKey",
    "Project",
    "ScopeChange",
    "Team",
    "attribute",
    "body_values",
    "display_prefix",
    "hash_key",
    "new_key_secret",
    "parse_body_rules",
    "parse_tags",
]

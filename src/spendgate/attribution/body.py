"""Attribution from the request body: rules that read OpenAI's ``user``, ``safety_identifier`` and
``metadata`` and Anthropic's ``metadata.user_id`` into dimensions (pure).

Teams already put their tags there (``user: "agent:support-bot"``, ``metadata: {"feature": …}``),
so a rule in ``spendgate.toml`` can take them as they are instead of asking every caller to send
headers too::

    [[attribution.body]]
    field = "user"            # user | safety_identifier | metadata.NAME | metadata.*
    prefix = "agent:"         # optional: only values starting with it, which is removed
    dimension = "tag:agent"   # project | team | feature | customer | trace_id | tag:NAME | tag:*

A value found by a rule fills its dimension only when the request's headers left it unset
(headers > body > the key's default project). It is bounded and checked exactly like the header
it stands in for (at most 256 characters, tag keys as in ``x-spendgate-tags``): a value a header
could not carry is a 400 naming the body field, never silently cut. ``metadata.*`` with
``tag:*`` makes every metadata entry the tag of the same name. Rules apply in file order; the
first rule that fills a dimension wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spendgate.attribution.rules import (
    CUSTOMER_HEADER,
    FEATURE_HEADER,
    MAX_HEADER_VALUE,
    MAX_TAG_KEY,
    MAX_TAGS,
    PROJECT_HEADER,
    TAG_KEY,
    TEAM_HEADER,
    TRACE_HEADER,
    AttributionError,
)

# The body fields a rule may read; metadata.NAME reads one entry of the ``metadata`` object
# (OpenAI's free-form metadata, Anthropic's ``metadata.user_id``).
TOP_LEVEL_FIELDS = ("user", "safety_identifier")
METADATA = "metadata"
ANY_METADATA = "metadata.*"
ANY_TAG = "tag:*"
# The dimension a rule may fill, and the header it stands in for.
DIMENSION_HEADERS = {
    "project": PROJECT_HEADER,
    "team": TEAM_HEADER,
    "feature": FEATURE_HEADER,
    "customer": CUSTOMER_HEADER,
    "trace_id": TRACE_HEADER,
}
MAX_RULES = 64
_METADATA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}")


class BodyRuleError(ValueError):
    """A rule in the configuration file that cannot be applied."""


@dataclass(frozen=True, slots=True)
class BodyRule:
    field: str  # user, safety_identifier, metadata.NAME, metadata.*
    dimension: str  # project, team, feature, customer, trace_id, tag:NAME, tag:*
    prefix: str = ""

    def describe(self) -> str:
        prefix = f" (prefix {self.prefix!r})" if self.prefix else ""
        return f"{self.field}{prefix} -> {self.dimension}"


@dataclass(frozen=True, slots=True)
class BodyValues:
    """What the rules found in one body: header name -> value, and tags."""

    fields: Mapping[str, str]
    tags: Mapping[str, str]

    def __bool__(self) -> bool:
        return bool(self.fields or self.tags)


NO_VALUES = BodyValues({}, {})


def parse_body_rules(raw: Any, origin: str) -> tuple[BodyRule, ...]:
    """``[[attribution.body]]`` tables -> rules; anything unclear is an error naming the rule."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise BodyRuleError(f"{origin}: attribution.body must be an array of tables ([[attribution.body]])")
    if len(raw) > MAX_RULES:
        raise BodyRuleError(f"{origin}: at most {MAX_RULES} [[attribution.body]] rules")
    rules = []
    for number, table in enumerate(raw, 1):
        where = f"{origin}: [[attribution.body]] rule {number}"
        unknown = set(table) - {"field", "prefix", "dimension"}
        if unknown:
            raise BodyRuleError(f"{where} has unknown keys {sorted(unknown)}; known: dimension, field, prefix")
        field, dimension, prefix = table.get("field"), table.get("dimension"), table.get("prefix", "")
        if not isinstance(field, str) or not _known_field(field):
            raise BodyRuleError(
                f"{where}: field must be one of user, safety_identifier, metadata.NAME, metadata.*; got {field!r}"
            )
        if not isinstance(dimension, str) or not _known_dimension(dimension):
            raise BodyRuleError(
                f"{where}: dimension must be one of {', '.join(DIMENSION_HEADERS)}, tag:NAME or tag:*; "
                f"got {dimension!r}"
            )
        if not isinstance(prefix, str) or len(prefix) > MAX_HEADER_VALUE:
            raise BodyRuleError(f"{where}: prefix must be a string of at most {MAX_HEADER_VALUE} characters")
        if (field == ANY_METADATA) != (dimension == ANY_TAG):
            raise BodyRuleError(f"{where}: metadata.* goes with dimension tag:* (each entry a tag of its name)")
        rules.append(BodyRule(field, dimension, prefix))
    return tuple(rules)


def _known_field(field: str) -> bool:
    if field in TOP_LEVEL_FIELDS or field == ANY_METADATA:
        return True
    head, dot, name = field.partition(".")
    return head == METADATA and bool(dot) and bool(_METADATA_NAME.fullmatch(name))


def _known_dimension(dimension: str) -> bool:
    if dimension in DIMENSION_HEADERS or dimension == ANY_TAG:
        return True
    name = dimension.removeprefix("tag:")
    return dimension.startswith("tag:") and len(name) <= MAX_TAG_KEY and bool(TAG_KEY.fullmatch(name))


def body_values(rules: Sequence[BodyRule], body: Mapping[str, Any]) -> BodyValues:
    """The dimensions ``rules`` find in ``body`` (a parsed request body).

    Raises ``AttributionError`` (400) for a value the header it stands in for could not carry:
    a string over 256 characters, a metadata name that is no tag key, more than 32 tags, or a
    value of a field a rule reads that is not a string."""
    if not rules:
        return NO_VALUES
    fields: dict[str, str] = {}
    tags: dict[str, str] = {}
    for rule in rules:
        for name, raw in _read(rule, body):
            value = _value(rule, name, raw)
            if value is None:
                continue
            if rule.dimension == ANY_TAG:
                tag = name.removeprefix("metadata.")
                if len(tag) > MAX_TAG_KEY or not TAG_KEY.fullmatch(tag):
                    raise AttributionError(
                        f"body field {name!r} (attribution rule {rule.describe()}): {tag[:MAX_TAG_KEY]!r} is no tag "
                        f"key: up to {MAX_TAG_KEY} ASCII letters, digits and '_', '.', ':', '/', '-'"
                    )
                _add_tag(tags, tag, value, name, rule)
            elif rule.dimension.startswith("tag:"):
                _add_tag(tags, rule.dimension[4:], value, name, rule)
            else:
                fields.setdefault(DIMENSION_HEADERS[rule.dimension], value)
    return BodyValues(fields, tags)


def _read(rule: BodyRule, body: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(body field name, raw value) pairs the rule reads; absent and null fields give none."""
    if rule.field in TOP_LEVEL_FIELDS:
        value = body.get(rule.field)
        return [] if value is None else [(rule.field, value)]
    metadata = body.get(METADATA)
    if not isinstance(metadata, dict):
        return []
    if rule.field == ANY_METADATA:
        return [(f"metadata.{name}", value) for name, value in metadata.items() if value is not None]
    name = rule.field[len(METADATA) + 1 :]
    value = metadata.get(name)
    return [] if value is None else [(rule.field, value)]


def _value(rule: BodyRule, name: str, raw: Any) -> str | None:
    if not isinstance(raw, str):
        raise AttributionError(
            f"body field {name!r} must be a string to be read for attribution (rule {rule.describe()})"
        )
    if rule.prefix:
        if not raw.startswith(rule.prefix):
            return None
        raw = raw[len(rule.prefix) :]
    value = raw.strip()
    if len(value) > MAX_HEADER_VALUE:
        raise AttributionError(
            f"body field {name!r} (attribution rule {rule.describe()}) is longer than {MAX_HEADER_VALUE} characters"
        )
    if rule.dimension.startswith("tag:") and ("," in value or "=" in value):
        # What x-spendgate-tags could not carry either: a tag value holds neither.
        raise AttributionError(
            f"body field {name!r} (attribution rule {rule.describe()}): a tag value holds no ',' or '='"
        )
    return value or None


def _add_tag(tags: dict[str, str], tag: str, value: str, name: str, rule: BodyRule) -> None:
    if tag in tags:
        return  # an earlier rule filled it
    if len(tags) == MAX_TAGS:
        raise AttributionError(f"body field {name!r} (attribution rule {rule.describe()}): more than {MAX_TAGS} tags")
    tags[tag] = value

"""The one normalized shape of token usage, whatever the provider reported.

Conventions (chosen so reports add up without knowing the provider):
- ``input_tokens`` counts EVERY input token: uncached, cache reads and cache writes.
  (OpenAI's ``prompt_tokens`` already does; Anthropic's ``input_tokens`` does not, so the
  Anthropic parser adds cache reads and writes in.)
- ``cached_input_tokens`` and ``cache_write_tokens`` are parts of ``input_tokens``;
  ``cache_write_1h_tokens`` is the part of the cache writes made with a one-hour TTL.
- ``output_tokens`` counts every output token; ``reasoning_tokens`` is the part of it the
  model spent reasoning (OpenAI bills it as output).
- ``service_tier`` is the tier the provider reports having served the request at, normalized
  (``standard``, ``flex``, ``priority``, ``batch``…; see ``usage.service_tier``), or None when
  the answer did not say. It is not a token count but it decides the price of every token.

Counts are never taken on trust: each is bounded where it is parsed (usage/bounds.py), and
what was out of range is kept in ``anomalies``, so the event can be flagged and audited.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A figure the provider reported that could not be taken as it was."""

    field: str  # as the provider named it, e.g. "prompt_tokens" or "cache_read_input_tokens"
    reason: str  # "negative", "not_an_integer" or "out_of_range" (see usage/bounds.py)
    reported: str  # the figure as reported, as text (exact however large)

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "reported": self.reported}


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    service_tier: str | None = None
    # What was clamped on the way in (empty for every sane answer).
    anomalies: tuple[Anomaly, ...] = ()

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cached_input_tokens - self.cache_write_tokens, 0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

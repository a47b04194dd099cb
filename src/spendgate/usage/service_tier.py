"""The service tier a request was served at, as the provider reports it (or the client asked).

Tiers change the price of the same tokens: OpenAI's ``flex`` is half the standard price and
``priority`` about double; Anthropic reports ``standard``, ``priority`` or ``batch`` in
``usage.service_tier``. Every spelling of "the normal tier" becomes ``standard``, so reports and
prices see one name for it:

- ``auto`` / ``default`` (OpenAI, request and response), ``standard_only`` (an Anthropic
  request), ``on_demand`` (Groq) -> ``standard``;
- ``fast`` -> ``priority``: OpenAI serves and reports a ``fast`` request as ``priority``.

Anything else is kept lowercased, e.g. ``flex``, ``priority``, ``batch``, ``scale``. The value
comes from upstream or the client, so it is bounded: a value that is not a short word is
treated as not reported rather than stored.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ("STANDARD", "normalize_service_tier", "request_service_tier")

STANDARD = "standard"
_ALIASES = {
    "auto": STANDARD,
    "default": STANDARD,
    "standard": STANDARD,
    "standard_only": STANDARD,
    "on_demand": STANDARD,
    "fast": "priority",
}
_WORD = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def normalize_service_tier(value: Any) -> str | None:
    """The tier ``value`` names, or None when it is absent or not a plausible tier name."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    tier = value.strip().lower()
    if not _WORD.fullmatch(tier):
        return None
    return _ALIASES.get(tier, tier)


def request_service_tier(body: Any) -> str | None:
    """The tier a request body asks for (``service_tier``), or None when it does not say."""
    if not isinstance(body, dict):
        return None
    return normalize_service_tier(body.get("service_tier"))

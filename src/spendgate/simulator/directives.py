"""Parsing of ``[[sim key=value ...]]`` directives embedded in a request body.

A test or the demo writes a directive anywhere in the prompt text; the simulator finds the
first one in the raw request bytes. Values are plain tokens (no spaces, no quotes), so the
JSON string escaping of the surrounding body never changes them and no JSON walk is needed.
"""

from __future__ import annotations

DIRECTIVE_OPEN = b"[[sim"
DIRECTIVE_CLOSE = b"]]"


def parse_directives(raw: bytes) -> dict[str, str]:
    """Return the key/value pairs of the first ``[[sim ...]]`` directive in ``raw``.

    ``[[sim input=10 output=5]]`` -> ``{"input": "10", "output": "5"}``. A bare key (``no_usage``)
    means ``"1"``. No directive, or one that is never closed, gives ``{}``. Pure: no validation
    of keys or values (that is the plan's job, see :mod:`spendgate.simulator.plan`).
    """
    start = raw.find(DIRECTIVE_OPEN)
    while start >= 0:
        body_start = start + len(DIRECTIVE_OPEN)
        end = raw.find(DIRECTIVE_CLOSE, body_start)
        if end < 0:
            return {}
        inner = raw[body_start:end]
        # "[[simulate ...]]" is no directive: the tag must be followed by whitespace or "]]".
        if not inner or inner[:1].isspace():
            return _parse_pairs(inner)
        start = raw.find(DIRECTIVE_OPEN, body_start)
    return {}


def _parse_pairs(inner: bytes) -> dict[str, str]:
    directives: dict[str, str] = {}
    for token in inner.decode("utf-8", "replace").split():
        key, sep, value = token.partition("=")
        directives[key] = value if sep else "1"
    return directives

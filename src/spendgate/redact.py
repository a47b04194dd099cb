"""URLs as they may be shown: whatever is printed or logged goes through here first.

Database, Redis and webhook URLs may carry credentials (``postgresql://app:pw@db/x``,
``redis://:pw@cache:6379/0``, ``https://user:pw@hooks.example.com/…``, ``…?token=…``). They are
kept whole where they are used and redacted wherever a person or a log file could read them.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
# Query parameters whose value is a credential (compared lower-case, ``-`` as ``_``).
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "access_token",
        "auth",
        "key",
        "api_key",
        "apikey",
        "sig",
        "signature",
        "sslpassword",
        "client_secret",
    }
)
# A URL in prose: up to whitespace, quotes or brackets, without a trailing punctuation mark.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]*[^\s'\"<>().,;:!?]")


def redact_url(url: str) -> str:
    """``url`` without its password and secret query values: ``postgresql://app:***@db:5432/x``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port, like the clients would
    except ValueError:
        return "<a malformed URL>"
    redacted = url
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            redacted = redacted.replace("//" + parts.netloc, f"//{user}:{MASK}@{host}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(_is_secret(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}={MASK if _is_secret(name) else quote(value, safe='')}" for name, value in pairs
            )
            redacted = redacted.replace("?" + parts.query, "?" + query, 1)
    return redacted


def redact_urls(text: str) -> str:
    """Every URL in free text (an error message, say) redacted."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _is_secret(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_PARAMETERS

"""Personal API tokens and session ids: random secrets shown once, stored as SHA-256 hashes
(like gateway keys: with 256 bits of entropy there is nothing to brute-force, so a slow hash
would only slow every request down)."""

from __future__ import annotations

import secrets

from spendgate.attribution.keys import hash_key

TOKEN_PREFIX = "sgu-"


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


def token_prefix(secret: str) -> str:
    """Enough of the token to recognise it in a list, not enough to use it."""
    return secret[: len(TOKEN_PREFIX) + 6] + "…"


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What is stored of a token or a session id."""
    return hash_key(secret)

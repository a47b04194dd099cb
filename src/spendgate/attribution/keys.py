"""Gateway key secrets: made once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sg-"


def new_key_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    # A plain SHA-256 is enough: the secret has 256 bits of entropy, so there is nothing to
    # brute-force, and the lookup stays a microsecond on the request path.
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """Enough of the key to recognise it in a list, not enough to use it."""
    return secret[: len(KEY_PREFIX) + 6] + "…"

"""Secrets kept in the ledger, encrypted at rest (webhook signing secrets).

A secret is stored as ``fernet:<token>``: Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under a key the operator keeps outside the database, in
``SPENDGATE_ENCRYPTION_KEY``. A copy of the database (a backup, a dump handed to support)
then holds no usable secret. A stored value without the prefix is a secret written in clear
before encryption existed: still readable, and re-encrypted by ``spendgate webhooks rekey``.

The setting may hold several keys separated by commas: the first encrypts, every one
decrypts. That is how a key is rotated: put a new key first, run ``rekey``, drop the old one.

Pure: the key comes in as a string, nothing here reads the environment.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "fernet:"
KEY_ENV = "SPENDGATE_ENCRYPTION_KEY"


class SecretBoxError(Exception):
    """A secret cannot be encrypted or decrypted; the message says what to do."""


def new_key() -> str:
    """A fresh random key, as ``SPENDGATE_ENCRYPTION_KEY`` takes it (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class SecretBox:
    """Encrypts and decrypts under the keys of ``SPENDGATE_ENCRYPTION_KEY`` (None: no key)."""

    def __init__(self, keys: str | None) -> None:
        self._fernet: MultiFernet | None = None
        if keys is not None and keys.strip():
            parsed = []
            for number, key in enumerate((k.strip() for k in keys.split(",")), start=1):
                try:
                    parsed.append(Fernet(key))
                except (ValueError, TypeError):
                    # Never echo the value: it is a secret, however malformed.
                    raise SecretBoxError(
                        f"{KEY_ENV}: key {number} is not a Fernet key (32 bytes, url-safe base64);"
                        " make one with `spendgate webhooks new-key`"
                    ) from None
            self._fernet = MultiFernet(parsed)

    @property
    def has_key(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        """``secret`` as stored: encrypted under the first key. Without a key: refused."""
        if self._fernet is None:
            raise SecretBoxError(
                f"webhook secrets are stored encrypted and {KEY_ENV} is not set: make a key with"
                f" `spendgate webhooks new-key`, keep it safe, and set {KEY_ENV} (for this command"
                " and for `spendgate serve`)"
            )
        return PREFIX + self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The secret a stored value holds (one in clear is returned as it is)."""
        if not is_sealed(stored):
            return stored
        if self._fernet is None:
            raise SecretBoxError(f"a webhook secret is encrypted and {KEY_ENV} is not set: cannot sign with it")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretBoxError(
                f"a webhook secret was encrypted under a key that is not in {KEY_ENV} (a wrong or"
                " rotated-away key): put that key back (after the new one) and run `spendgate webhooks rekey`"
            ) from None

    def reseal(self, stored: str) -> str:
        """``stored`` encrypted under the first key (from clear text or any known key)."""
        return self.seal(self.open(stored))

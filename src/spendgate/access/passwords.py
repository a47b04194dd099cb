"""Password hashes: argon2id (``argon2-cffi``, its RFC 9106 low-memory profile), never
anything hand-rolled. Verifying costs tens of milliseconds on purpose: call it off the event
loop."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from spendgate.access.model import AccessError

MIN_PASSWORD_LENGTH = 8
# A login form's password is bounded before it is hashed: a megabyte password is work, not security.
MAX_PASSWORD_LENGTH = 1024


def check_password(password: str) -> str:
    """A password a user may set: 8 to 1,024 characters, no NUL."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccessError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if "\x00" in password:
        raise AccessError("a password cannot hold a NUL character")
    return password


class Passwords:
    """Hashing and checking passwords with one argon2 configuration."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._decoy: str | None = None  # a hash to check against when the user is unknown

    def hash(self, password: str) -> str:
        return self._hasher.hash(check_password(password))

    def verify(self, password_hash: str, password: str) -> bool:
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than today's."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def waste_time(self, password: str) -> None:
        """The work of a real check, for a user that does not exist: a login for an unknown
        name takes as long as one with a wrong password, so timing does not tell names apart."""
        if self._decoy is None:
            self._decoy = self._hasher.hash("spendgate decoy password")
        self.verify(self._decoy, password[:MAX_PASSWORD_LENGTH])

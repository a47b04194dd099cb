"""Users, role grants, sessions, personal tokens, login throttling counts and the server's own
secrets (``access/`` holds the rules; this part only stores).

None of these writes bumps the configuration version: the gateway's request path never reads
users, so a login or a grant must not make every replica reload its keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from spendgate.access.model import Grant, User
from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # events.format_ts


class UsersMixin(StoreBase):
    def _instant(self, value: Any) -> datetime:
        return datetime.strptime(self._dialect.ts_text(value), _TS_FORMAT).replace(tzinfo=UTC)

    def _user_write(
        self,
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        duplicate: str | None = None,
        missing: str | None = None,
    ) -> list[int]:
        """Statements in one transaction; the rows each changed. Integrity errors (a race lost
        to another writer: callers check first) become a StoreError with the given message."""
        dialect = self._dialect
        try:
            with dialect.transaction() as session:
                return [session.execute(sql, params).rowcount for sql, params in statements]
        except dialect.integrity_errors as exc:
            kind = dialect.integrity_kind(exc)
            message = duplicate if kind == "unique" else missing if kind == "foreign_key" else None
            raise StoreError(message or dialect.error_message(exc)) from exc

    def _user(self, row: Row) -> User:
        return User(
            name=row["name"],
            is_admin=bool(row["is_admin"]),
            disabled=bool(row["disabled"]),
            created_at=self._dialect.ts_text(row["created_at"]),
        )

    # --- users ------------------------------------------------------------------------------------
    def create_user(
        self, name: str, password_hash: str, *, is_admin: bool = False, now: datetime | None = None
    ) -> User:
        duplicate = f"user {name!r} already exists"
        if self._exists("users", name):
            raise StoreError(duplicate)
        at = self._dialect.ts(now or datetime.now(UTC))
        self._user_write(
            [
                (
                    "INSERT INTO users (name, password_hash, is_admin, disabled, created_at, password_changed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, password_hash, is_admin, False, at, at),
                )
            ],
            duplicate=duplicate,
        )
        return self.get_user(name)  # type: ignore[return-value]

    def get_user(self, name: str) -> User | None:
        rows = self._query("SELECT * FROM users WHERE name = ?", (name,))
        return self._user(rows[0]) if rows else None

    def user_and_password_hash(self, name: str) -> tuple[User, str] | None:
        """For a login: the user and their password hash (None for an unknown name)."""
        rows = self._query("SELECT * FROM users WHERE name = ?", (name,))
        return (self._user(rows[0]), rows[0]["password_hash"]) if rows else None

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._query("SELECT * FROM users ORDER BY name")]

    def _require_user(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise StoreError(f"unknown user {name!r}")
        return user

    def delete_user(self, name: str) -> User:
        """The user and, with them, their grants, sessions and tokens."""
        user = self._require_user(name)
        self._user_write([("DELETE FROM users WHERE name = ?", (name,))])
        return user

    def set_password_hash(self, name: str, password_hash: str, *, now: datetime | None = None) -> User:
        """A new password ends every session of the user (tokens stay: they are revoked one by one)."""
        user = self._require_user(name)
        at = self._dialect.ts(now or datetime.now(UTC))
        self._user_write(
            [
                (
                    "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                    (password_hash, at, name),
                ),
                ("DELETE FROM user_sessions WHERE user_name = ?", (name,)),
            ]
        )
        return user

    def rehash_password(self, name: str, old_hash: str, new_hash: str) -> None:
        """The same password under today's hash parameters (only if it did not change meanwhile)."""
        self._user_write(
            [("UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?", (new_hash, name, old_hash))]
        )

    def set_user_disabled(self, name: str, disabled: bool) -> User:
        """A disabled user cannot log in, and their sessions and tokens stop working at once."""
        self._require_user(name)
        statements: list[tuple[str, Sequence[Any]]] = [
            ("UPDATE users SET disabled = ? WHERE name = ?", (disabled, name))
        ]
        if disabled:
            statements.append(("DELETE FROM user_sessions WHERE user_name = ?", (name,)))
        self._user_write(statements)
        return self._require_user(name)

    def set_user_admin(self, name: str, is_admin: bool) -> User:
        self._require_user(name)
        self._user_write([("UPDATE users SET is_admin = ? WHERE name = ?", (is_admin, name))])
        return self._require_user(name)

    # --- grants -----------------------------------------------------------------------------------
    def grant(self, grant: Grant, *, now: datetime | None = None) -> Grant:
        """Give a role (replacing the role the user held on the same project or team)."""
        self._require_user(grant.user)
        table = "projects" if grant.kind == "project" else "teams"
        if not self._exists(table, grant.name):
            raise StoreError(f"unknown {grant.kind} {grant.name!r}")
        self._user_write(
            [
                (
                    "INSERT INTO user_grants (user_name, kind, name, role, created_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (user_name, kind, name) DO UPDATE SET role = excluded.role",
                    (grant.user, grant.kind, grant.name, grant.role, self._dialect.ts(now or datetime.now(UTC))),
                )
            ],
            missing=f"unknown user {grant.user!r}",
        )
        return grant

    def revoke_grant(self, user: str, kind: str, name: str) -> Grant:
        rows = self._query(
            "SELECT * FROM user_grants WHERE user_name = ? AND kind = ? AND name = ?", (user, kind, name)
        )
        if not rows:
            raise StoreError(f"user {user!r} holds no role on {kind} {name!r}")
        self._user_write(
            [("DELETE FROM user_grants WHERE user_name = ? AND kind = ? AND name = ?", (user, kind, name))]
        )
        return _grant(rows[0])

    def list_grants(self, user: str | None = None, *, kind: str | None = None, name: str | None = None) -> list[Grant]:
        clauses, params = [], []
        for column, value in (("user_name", user), ("kind", kind), ("name", name)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return [
            _grant(r) for r in self._query(f"SELECT * FROM user_grants{where} ORDER BY user_name, kind, name", params)
        ]

    # --- sessions ---------------------------------------------------------------------------------
    def create_session(self, id_hash: str, user: str, now: datetime) -> None:
        at = self._dialect.ts(now)
        self._user_write(
            [
                (
                    "INSERT INTO user_sessions (id_hash, user_name, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
                    (id_hash, user, at, at),
                )
            ],
            missing=f"unknown user {user!r}",
        )

    def session_user(
        self, id_hash: str, idle_cutoff: datetime, absolute_cutoff: datetime
    ) -> tuple[User, datetime] | None:
        """The enabled user of a live session (used since ``idle_cutoff``, begun since
        ``absolute_cutoff``) and when it was last used; None otherwise."""
        d = self._dialect
        rows = self._query(
            "SELECT u.*, s.last_seen_at AS session_seen FROM user_sessions s JOIN users u ON u.name = s.user_name"
            " WHERE s.id_hash = ? AND s.last_seen_at > ? AND s.created_at > ? AND u.disabled = ?",
            (id_hash, d.ts(idle_cutoff), d.ts(absolute_cutoff), False),
        )
        return (self._user(rows[0]), self._instant(rows[0]["session_seen"])) if rows else None

    def touch_session(self, id_hash: str, now: datetime) -> None:
        self._user_write(
            [("UPDATE user_sessions SET last_seen_at = ? WHERE id_hash = ?", (self._dialect.ts(now), id_hash))]
        )

    def delete_session(self, id_hash: str) -> None:
        self._user_write([("DELETE FROM user_sessions WHERE id_hash = ?", (id_hash,))])

    def delete_expired_sessions(self, idle_cutoff: datetime, absolute_cutoff: datetime) -> int:
        d = self._dialect
        return self._user_write(
            [
                (
                    "DELETE FROM user_sessions WHERE last_seen_at <= ? OR created_at <= ?",
                    (d.ts(idle_cutoff), d.ts(absolute_cutoff)),
                )
            ]
        )[0]

    def count_sessions(self, user: str) -> int:
        return int(self._query("SELECT count(*) FROM user_sessions WHERE user_name = ?", (user,))[0][0])

    # --- personal tokens --------------------------------------------------------------------------
    def _token(self, row: Row) -> dict[str, Any]:
        d = self._dialect
        return {
            "name": row["name"],
            "user": row["user_name"],
            "prefix": row["prefix"],
            "created_at": d.ts_text(row["created_at"]),
            "last_used_at": None if row["last_used_at"] is None else d.ts_text(row["last_used_at"]),
            "revoked": row["revoked_at"] is not None,
        }

    def create_token(
        self, user: str, name: str, token_hash: str, prefix: str, *, now: datetime | None = None
    ) -> dict[str, Any]:
        self._require_user(user)
        duplicate = f"user {user!r} already has a token named {name!r}"
        if self._query("SELECT 1 FROM user_tokens WHERE user_name = ? AND name = ?", (user, name)):
            raise StoreError(duplicate)
        self._user_write(
            [
                (
                    "INSERT INTO user_tokens (token_hash, user_name, name, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
                    (token_hash, user, name, prefix, self._dialect.ts(now or datetime.now(UTC))),
                )
            ],
            duplicate=duplicate,
            missing=f"unknown user {user!r}",
        )
        return self._token(self._query("SELECT * FROM user_tokens WHERE token_hash = ?", (token_hash,))[0])

    def token_user(self, token_hash: str) -> tuple[User, datetime | None] | None:
        """The enabled user of a token that is not revoked, and when it was last used."""
        rows = self._query(
            "SELECT u.*, t.last_used_at AS token_used FROM user_tokens t JOIN users u ON u.name = t.user_name"
            " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = ?",
            (token_hash, False),
        )
        if not rows:
            return None
        used = rows[0]["token_used"]
        return self._user(rows[0]), None if used is None else self._instant(used)

    def touch_token(self, token_hash: str, now: datetime) -> None:
        self._user_write(
            [("UPDATE user_tokens SET last_used_at = ? WHERE token_hash = ?", (self._dialect.ts(now), token_hash))]
        )

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        where, params = (" WHERE user_name = ?", (user,)) if user is not None else ("", ())
        return [
            self._token(r) for r in self._query(f"SELECT * FROM user_tokens{where} ORDER BY user_name, name", params)
        ]

    def revoke_token(self, user: str, name: str, *, now: datetime | None = None) -> dict[str, Any]:
        rows = self._query("SELECT * FROM user_tokens WHERE user_name = ? AND name = ?", (user, name))
        if not rows:
            raise StoreError(f"user {user!r} has no token named {name!r}")
        self._user_write(
            [
                (
                    "UPDATE user_tokens SET revoked_at = ? WHERE user_name = ? AND name = ? AND revoked_at IS NULL",
                    (self._dialect.ts(now or datetime.now(UTC)), user, name),
                )
            ]
        )
        return self._token(self._query("SELECT * FROM user_tokens WHERE user_name = ? AND name = ?", (user, name))[0])

    # --- login throttling -------------------------------------------------------------------------
    def login_failures(self, subjects: Iterable[tuple[str, str]]) -> list[tuple[int, datetime]]:
        """(failures in a row, last failure) of each (kind, subject) that has any."""
        found = []
        for kind, subject in subjects:
            rows = self._query(
                "SELECT failures, last_failure_at FROM login_failures WHERE kind = ? AND subject = ?", (kind, subject)
            )
            found += [(int(r[0]), self._instant(r[1])) for r in rows]
        return found

    def record_login_failure(self, subjects: Iterable[tuple[str, str]], now: datetime, forget_before: datetime) -> None:
        """One more failure for each subject (a count whose last failure is before
        ``forget_before`` starts again at 1), and stale counts deleted, in one transaction."""
        d = self._dialect
        at, stale = d.ts(now), d.ts(forget_before)
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO login_failures (kind, subject, failures, last_failure_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (kind, subject) DO UPDATE SET failures = CASE WHEN login_failures.last_failure_at < ?"
                " THEN 1 ELSE login_failures.failures + 1 END, last_failure_at = excluded.last_failure_at",
                (kind, subject, at, stale),
            )
            for kind, subject in subjects
        ]
        statements.append(("DELETE FROM login_failures WHERE last_failure_at < ?", (stale,)))
        self._user_write(statements)

    def clear_login_failures(self, kind: str, subject: str) -> None:
        self._user_write([("DELETE FROM login_failures WHERE kind = ? AND subject = ?", (kind, subject))])

    # --- the server's own secrets -----------------------------------------------------------------
    def server_secret(self, name: str, make: Callable[[], str]) -> str:
        """The secret kept under ``name``, made with ``make`` the first time. Replicas racing
        to make it agree: the first insert wins and everyone reads that one."""
        rows = self._query("SELECT value FROM server_secrets WHERE name = ?", (name,))
        if rows:
            return rows[0][0]
        self._user_write(
            [
                (
                    "INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, make(), self._now()),
                )
            ]
        )
        return self._query("SELECT value FROM server_secrets WHERE name = ?", (name,))[0][0]


def _grant(row: Row) -> Grant:
    return Grant(user=row["user_name"], kind=row["kind"], name=row["name"], role=row["role"])

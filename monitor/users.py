"""Who may use the dashboard: users with a role, the rooms a nurse is assigned to, and argon2 password hashes.

They live in the store's own SQLite file (table `users`), so a clinic backs up one file. A user is never
deleted, only disabled: the audit trail keeps naming who did what. Passwords are hashed with argon2id
(argon2-cffi's defaults, its parameters kept in the hash, so a later stronger default re-hashes on the next
sign-in).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from monitor import wire
from monitor.sqlite_table import SharedTable

ROLES = ("nurse", "supervisor", "viewer", "admin")
#: idle minutes before a sign-in ends, per role, unless the user has its own: a viewer is typically a wall
#: display left signed in all day; a personal sign-in ends soon after its owner walks away
DEFAULT_IDLE_MINUTES = {"viewer": 12 * 60, "nurse": 30, "supervisor": 30, "admin": 30}
MAX_IDLE_MINUTES = 7 * 24 * 60
MAX_PASSWORD = 1024
#: a sign-in name: no spaces, so it is what the log shows and what a person types
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    rooms TEXT NOT NULL DEFAULT '',
    disabled INTEGER NOT NULL DEFAULT 0,
    idle_minutes INTEGER,
    password_hash TEXT NOT NULL
);
"""


class UserError(ValueError):
    """A user that cannot be added or changed, with the reason a person can act on."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    rooms: tuple[str, ...] = ()  # a nurse's assigned rooms; other roles ignore it
    disabled: bool = False
    idle_minutes: int | None = None  # None: the role's default

    @property
    def idle_seconds(self) -> float:
        return 60.0 * (self.idle_minutes or DEFAULT_IDLE_MINUTES[self.role])


def check_user_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UserError(
            f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def _check_rooms(rooms: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    try:
        return tuple(sorted({wire.check_name(r, "room") for r in rooms}))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_password(password: str) -> str:
    if not password or len(password) > MAX_PASSWORD:
        raise UserError(f"a password needs 1-{MAX_PASSWORD} characters")
    return password


def _check_idle(minutes: int | None) -> int | None:
    if minutes is not None and not 1 <= minutes <= MAX_IDLE_MINUTES:
        raise UserError(f"idle minutes {minutes} must be 1-{MAX_IDLE_MINUTES}")
    return minutes


class UserStore(SharedTable):
    """The `users` table."""

    SCHEMA = SCHEMA

    def __init__(self, path: str | Path, hasher: PasswordHasher | None = None) -> None:
        super().__init__(path)
        self._hasher = hasher or PasswordHasher()
        # verifying against this when the name is unknown takes as long as a real check, so the time a
        # refusal takes does not tell which names exist
        self._dummy_hash = self._hasher.hash("not a password of anyone")

    def add(
        self,
        name: str,
        role: str,
        password: str,
        *,
        rooms: tuple[str, ...] | list[str] = (),
        idle_minutes: int | None = None,
    ) -> User:
        user = User(
            check_user_name(name), _check_role(role), _check_rooms(rooms), False, _check_idle(idle_minutes)
        )
        digest = self._hasher.hash(_check_password(password))
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO users (name, role, rooms, disabled, idle_minutes, password_hash)"
                    " VALUES (?, ?, ?, 0, ?, ?)",
                    (user.name, user.role, ",".join(user.rooms), user.idle_minutes, digest),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"user {name!r} exists already (change it with passwd or disable)") from None
        return user

    def ensure(
        self, name: str, role: str, password: str, *, rooms: tuple[str, ...] | list[str] = ()
    ) -> None:
        """Add the user unless one of that name exists (an existing one is left as it is): the demo's
        accounts, and the accounts tests and benchmarks sign in with."""
        if self.get(name) is None:
            self.add(name, role, password, rooms=rooms)

    def set_password(self, name: str, password: str) -> None:
        digest = self._hasher.hash(_check_password(password))
        self._update(name, "password_hash = ?", (digest,))

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        self._update(name, "disabled = ?", (int(disabled),))

    def _update(self, name: str, assignment: str, values: tuple[object, ...]) -> None:
        with self._lock:
            changed = self._conn.execute(f"UPDATE users SET {assignment} WHERE name = ?", (*values, name))
        if changed.rowcount == 0:
            raise UserError(f"no user {name!r} (kap-monitor users list shows them)")

    def get(self, name: str) -> User | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT name, role, rooms, disabled, idle_minutes FROM users WHERE name = ?", (name,)
            ).fetchone()
        return _user(row) if row else None

    def list(self) -> list[User]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, role, rooms, disabled, idle_minutes FROM users ORDER BY name"
            ).fetchall()
        return [_user(r) for r in rows]

    def active_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM users WHERE disabled = 0").fetchone()[0])

    def verify(self, name: str, password: str) -> User | None:
        """The user when the password is theirs and they are not disabled; None otherwise (whatever the
        reason, so a refusal tells an attacker nothing). Slow on purpose (argon2)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT name, role, rooms, disabled, idle_minutes, password_hash FROM users WHERE name = ?",
                (name,),
            ).fetchone()
        digest = row[5] if row else self._dummy_hash
        try:
            self._hasher.verify(digest, (password or "")[:MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or row[3]:
            return None
        if self._hasher.check_needs_rehash(digest):
            self.set_password(name, password)
        return _user(row[:5])


def _user(row: tuple[object, ...]) -> User:
    name, role, rooms, disabled, idle = row
    room_list = tuple(r for r in str(rooms).split(",") if r)
    return User(str(name), str(role), room_list, bool(disabled), None if idle is None else int(str(idle)))

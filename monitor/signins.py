"""Signed-in browsers and the brake on guessing passwords.

A sign-in is a random token in an HttpOnly cookie; the server keeps only its SHA-256 (table
`web_sessions`), so a copy of the file signs no one in, sign-out and disabling a user take effect at once,
and a restarted web process keeps everyone signed in. A sign-in ends after its user's idle minutes without
a page load or an action; an open page that merely shows live values is not activity (it never ends
otherwise), yet it keeps its live view: only its actions are refused until someone signs in again.

Failed sign-ins are slowed per user name and per address: after the n-th failure in a row the next attempt
is refused without checking the password for 2**(n-1) s (at most 5 min). The clock is injected.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.sqlite_table import SharedTable
from monitor.users import User, UserStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    client TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL,
    ended REAL,
    end_reason TEXT
);
"""
MAX_DELAY_S = 300.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignIn:
    """A live sign-in: its user as the users table says now."""

    token_hash: str
    user: User
    client: str


class SessionStore(SharedTable):
    """The `web_sessions` table: live and ended sign-ins, by the hash of their token."""

    SCHEMA = SCHEMA

    def __init__(self, path: str | Path, users: UserStore, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(path)
        self.users = users
        self.clock = clock

    def create(self, user: User, client: str) -> str:
        """A new sign-in; returns the token for the cookie (never stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self._lock:
            self._conn.execute(
                "INSERT INTO web_sessions (token_hash, user, client, created, last_seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (_digest(token), user.name, client, now, now),
            )
        return token

    def check(self, token: str | None) -> tuple[SignIn | None, str]:
        """The sign-in behind a cookie, or None with why not ("" when there is no cookie at all).

        A sign-in idle past its user's limit is ended here, with reason `idle`."""
        if not token:
            return None, ""
        digest = _digest(token)
        with self._lock:
            row = self._conn.execute(
                "SELECT user, client, last_seen, ended FROM web_sessions WHERE token_hash = ?", (digest,)
            ).fetchone()
        if row is None:
            return None, "unknown"
        name, client, last_seen, ended = row
        if ended is not None:
            return None, "ended"
        user = self.users.get(name)
        if user is None or user.disabled:
            self.end(token, "disabled")
            return None, "disabled"
        if self.clock.now() - last_seen > user.idle_seconds:
            self.end(token, "idle")
            return None, "idle"
        return SignIn(digest, user, client), ""

    def owner(self, token: str | None) -> str:
        """Whose sign-in a cookie was, live or ended ("" when it never was one): for the audit trail."""
        with self._lock:
            row = self._conn.execute(
                "SELECT user FROM web_sessions WHERE token_hash = ?", (_digest(token or ""),)
            ).fetchone()
        return str(row[0]) if row else ""

    def touch(self, token_hash: str) -> None:
        """A page load or an action: the sign-in is in use."""
        with self._lock:
            self._conn.execute(
                "UPDATE web_sessions SET last_seen = ? WHERE token_hash = ? AND ended IS NULL",
                (self.clock.now(), token_hash),
            )

    def end(self, token: str, reason: str) -> None:
        self.end_hash(_digest(token), reason)

    def end_hash(self, token_hash: str, reason: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE web_sessions SET ended = ?, end_reason = ? WHERE token_hash = ? AND ended IS NULL",
                (self.clock.now(), reason, token_hash),
            )


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class Throttle:
    """Exponential delay after failed sign-ins, per user name and per client address."""

    clock: Clock = SYSTEM_CLOCK
    _by_key: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _keys(name: str, client: str) -> tuple[str, str]:
        return f"user:{name.lower()}", f"addr:{client}"

    def wait_s(self, name: str, client: str) -> float:
        """Seconds before this name from this address may try again (0: now)."""
        now = self.clock.now()
        with self._lock:
            waits = [
                f.last + min(2.0 ** (f.count - 1), MAX_DELAY_S) - now
                for k in self._keys(name, client)
                if (f := self._by_key.get(k)) and f.count
            ]
        return max([0.0, *waits])

    def failed(self, name: str, client: str) -> int:
        """Count a failure; returns how many in a row for this name."""
        now = self.clock.now()
        with self._lock:
            counts = []
            for key in self._keys(name, client):
                f = self._by_key.setdefault(key, _Failures())
                f.count += 1
                f.last = now
                counts.append(f.count)
            if len(self._by_key) > 10_000:  # a scan of many names must not grow this without bound
                oldest = sorted(self._by_key, key=lambda k: self._by_key[k].last)[:5_000]
                for key in oldest:
                    del self._by_key[key]
        return counts[0]

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            for key in self._keys(name, client):
                self._by_key.pop(key, None)

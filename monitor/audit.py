"""The audit trail: who did what, when, from where.

Clinical actions (acknowledge, pause, dose, note, limit change, session start and end...) are already
clinical events in the append-only event log, with their author and the client's address; sign-ins,
failed sign-ins, sign-outs, refused actions and user changes go to the append-only `audit` table of the
same file. The audit view merges both. Neither is ever updated or deleted (triggers refuse it).

No patient names: a note's text is not repeated here (only its length), and a session names its patient
by the pseudonymous code the event log already validated.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from monitor import wire
from monitor.sqlite_table import SharedTable

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    client TEXT NOT NULL,
    site TEXT NOT NULL DEFAULT '',
    room TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""

#: actions of the audit table (clinical actions are named by their event type)
SIGN_IN, SIGN_IN_FAILED, SIGN_IN_THROTTLED, SIGN_OUT = (
    "sign_in",
    "sign_in_failed",
    "sign_in_throttled",
    "sign_out",
)
SIGN_IN_EXPIRED, REFUSED = "sign_in_expired", "refused"
MAX_FIELD = 200


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts: float
    user: str
    action: str
    client: str
    site: str = ""
    room: str = ""
    detail: str = ""


class AuditLog(SharedTable):
    """The `audit` table (and the event log's clinical events, read only)."""

    SCHEMA = SCHEMA

    def append(self, entry: AuditEntry) -> None:
        fields = [
            str(v)[:MAX_FIELD] for v in (entry.user, entry.action, entry.client, entry.site, entry.room)
        ]
        with self._lock:
            self._conn.execute(
                "INSERT INTO audit (ts, user, action, client, site, room, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.ts, *fields, entry.detail[:MAX_FIELD]),
            )

    def entries(self, since: float | None = None, until: float | None = None) -> list[AuditEntry]:
        sql, args = _between("SELECT ts, user, action, client, site, room, detail FROM audit", since, until)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [AuditEntry(*r) for r in rows]

    def clinical_actions(self, since: float | None = None, until: float | None = None) -> list[AuditEntry]:
        """Every clinical event of the event log as an audit entry (who, when, from where, what)."""
        sql, args = _between("SELECT ts, site, room, body FROM events WHERE type = 'clinical'", since, until)
        with self._lock:
            try:
                rows = self._conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:  # a file the core never wrote to has no events table yet
                return []
        return [_clinical_entry(ts, site, room, json.loads(body)) for ts, site, room, body in rows]

    def trail(
        self, since: float | None = None, until: float | None = None, *, user: str = "", action: str = ""
    ) -> list[AuditEntry]:
        """Sign-ins and clinical actions together, oldest first, filtered by user and action (exact)."""
        merged = sorted(
            [*self.entries(since, until), *self.clinical_actions(since, until)], key=lambda e: e.ts
        )
        return [e for e in merged if (not user or e.user == user) and (not action or e.action == action)]


def _between(select: str, since: float | None, until: float | None) -> tuple[str, list[float]]:
    """`select` limited to since <= ts < until (either may be None), oldest first."""
    sql, args = select + (" AND" if " WHERE " in select else " WHERE") + " 1 = 1", []
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            sql += f" AND ts {op} ?"
            args.append(bound)
    return sql + " ORDER BY ts, id", args


def _clinical_entry(ts: float, site: str, room: str, body: dict[str, object]) -> AuditEntry:
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    return AuditEntry(
        ts,
        str(body.get("author", "")),
        str(body.get("type", "")),
        str(data.get("client", "")),
        site,
        room,
        _what(body, data),
    )


def _what(body: dict[str, object], data: dict[str, object]) -> str:
    """A short description of a clinical action; never a note's words (they may name someone)."""
    kind = body.get("type")
    if kind == "note":
        return f"note of {len(str(body.get('text', '')))} characters"
    if kind == "side_effect":
        return f"{body.get('severity', '')} {body.get('effect', '')}"
    if kind == "alarm_ack":
        return f"alarm {body.get('alarm_id') or 'all active alarms'}"
    if kind == "limit_change":
        return f"{body.get('rule', '')} limit {body.get('limit')}"
    if kind == "session_start":
        return f"patient {data.get('patient_code', '')}, {data.get('drug', '')} {data.get('route', '')}"
    if kind == "dose":
        mg = data.get("mg")
        return (
            f"{data.get('route', '')} {mg} mg"
            if mg is not None
            else f"{data.get('route', '')} {data.get('mg_per_kg')} mg/kg"
        )
    if kind == "assessment":
        return f"{data.get('kind', '')} {data.get('score', '')}"
    return ""


CSV_HEADER = ("time (UTC)", "user", "action", "from", "site", "room", "detail")


def to_csv(entries: Iterable[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for e in entries:
        cells = [wire.iso(e.ts), e.user, e.action, e.client, e.site, e.room, e.detail]
        writer.writerow([_inert(c) for c in cells])
    return out.getvalue()


def _inert(cell: str) -> str:
    """A typed name such as `=HYPERLINK(...)` must not become a formula in a spreadsheet."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@") else cell

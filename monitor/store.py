"""The event log: an append-only SQLite file (WAL) that every screen and every replay is a projection of.

Idempotent on redelivery: an observation is stored once per (site, room, device, seq), whatever QoS 1
redelivers; a device status is stored when it changes (state, conditions, reason, mode, details), not
each time the broker re-sends the retained copy. Rows are never updated or deleted (triggers refuse it).
Until sessions are started from the dashboard, each room's recording is one open session.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation

LogEvent = Observation | DeviceStatus | ClinicalEvent | AlarmTransition

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    patient_code TEXT,
    protocol TEXT,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS sessions_room ON sessions(site, room, started_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    device TEXT NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    seq INTEGER,
    code INTEGER,
    value REAL,
    unit TEXT,
    valid INTEGER,
    state TEXT,
    body TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_obs_once ON events(site, room, device, seq) WHERE type = 'obs';
CREATE INDEX IF NOT EXISTS events_trend ON events(site, room, code, ts) WHERE type = 'obs';
CREATE INDEX IF NOT EXISTS events_session ON events(session_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_clinical_once
    ON events(site, room, json_extract(body, '$.event_id')) WHERE type = 'clinical';
CREATE UNIQUE INDEX IF NOT EXISTS events_alarm_once
    ON events(site, room, json_extract(body, '$.id'), state, ts) WHERE type = 'alarm';
CREATE INDEX IF NOT EXISTS events_room_type ON events(site, room, type, id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class RoomRecording:
    site: str
    room: str
    session_id: int
    started_at: float
    last_event_ts: float | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as the sessions table keeps it. `protocol` is what its session start said (None for a
    room's recording before any patient); `alarms` counts the distinct alarms raised in it."""

    id: int
    site: str
    room: str
    started_at: float
    ended_at: float | None
    patient_code: str | None
    protocol: dict[str, object] | None
    summary: dict[str, object] | None
    alarms: int = 0


#: the columns of an events row that leave with an export: all but the row id and the session id, which
#: only mean something in this file
EVENT_COLUMNS = ("type", "site", "room", "device", "ts", "seq", "code", "value", "unit", "valid", "state",
                 "body", "received_at")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImportResult:
    session_id: int
    created: bool  # a new session row (False: the session was already here)
    imported: int
    duplicates: int


def _status_key(status: DeviceStatus) -> tuple[str, tuple[str, ...], str, str, str]:
    """What makes a status worth a row: everything but the counters, which change with every frame."""
    details = json.dumps(status.details, sort_keys=True)
    return (status.state, tuple(sorted(status.conditions)), status.reason, status.mode, details)


class EventLog:
    """One SQLite file. Writes come from one thread (the core's writer); reads may come from any thread."""

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        """`durable`: each commit is on the disk before it returns (synchronous=FULL, one fsync of the WAL a
        transaction), for a writer that tells others "stored" (the core acknowledges to the broker after
        it); otherwise a power cut may lose the last commits, a killed process never does."""
        self.path = Path(path)
        self._synchronous = "FULL" if durable else "NORMAL"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        conn = self._conn()
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
        for column in ("protocol", "summary"):  # files made before sessions had a protocol
            if column not in columns:
                conn.execute(f"ALTER TABLE sessions ADD COLUMN {column} TEXT")
        self._open_sessions: dict[tuple[str, str], int] = {}
        self._last_status: dict[tuple[str, str, str], tuple[str, tuple[str, ...], str, str, str]] = {}
        for row in conn.execute(
            "SELECT site, room, device, ts, state, body FROM events WHERE id IN "
            "(SELECT MAX(id) FROM events WHERE type = 'status' GROUP BY site, room, device)"
        ):
            self._last_status[(row[0], row[1], row[2])] = _status_key(_status_from_parts(*row))

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- sessions -------------------------------------------------------------------------------------

    def open_session(self, site: str, room: str, now: float) -> int:
        """The room's open session, opening one if there is none."""
        key = (site, room)
        if key in self._open_sessions:
            return self._open_sessions[key]
        conn = self._conn()
        row = conn.execute(
            "SELECT id FROM sessions WHERE site = ? AND room = ? AND ended_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            key,
        ).fetchone()
        session_id = (
            row[0]
            if row
            else conn.execute(
                "INSERT INTO sessions(site, room, started_at) VALUES (?, ?, ?)", (site, room, now)
            ).lastrowid
        )
        assert session_id is not None
        self._open_sessions[key] = int(session_id)
        return int(session_id)

    # ---- appending ------------------------------------------------------------------------------------

    def append(self, events: Sequence[LogEvent], received_at: float) -> int:
        """Append a batch in one transaction; returns how many were new (duplicates are skipped)."""
        return len(self.append_new(events, received_at))

    def append_new(self, events: Sequence[LogEvent], received_at: float) -> list[LogEvent]:
        """Append a batch in one transaction; returns the events that were new, in order."""
        new: list[LogEvent] = []
        with self._write_lock:
            conn = self._conn()
            sessions, statuses = dict(self._open_sessions), dict(self._last_status)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    if isinstance(event, Observation):
                        stored = self._append_observation(conn, event, received_at)
                    elif isinstance(event, DeviceStatus):
                        stored = self._append_status(conn, event, received_at)
                    elif isinstance(event, ClinicalEvent):
                        stored = self._append_clinical(conn, event, received_at)
                    else:
                        stored = self._append_alarm(conn, event, received_at)
                    if stored:
                        new.append(event)
                conn.execute("COMMIT")
            except BaseException:
                # what this transaction cached goes with it, so a batch retried after a full disk is
                # stored whole (a cached status would be skipped, a cached session id would not exist)
                self._open_sessions, self._last_status = sessions, statuses
                if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                    conn.execute("ROLLBACK")
                raise
        return new

    def _append_clinical(self, conn: sqlite3.Connection, event: ClinicalEvent, received_at: float) -> int:
        if event.type == "session_start" and not self._seen_clinical(conn, event):
            self._start_session(conn, event)
        session_id = self.open_session(event.site, event.room, event.ts)
        body = {
            k: getattr(event, k)
            for k in (
                "type",
                "author",
                "event_id",
                "text",
                "effect",
                "severity",
                "alarm_id",
                "rule",
                "limit",
                "data",
            )
        }
        cur = conn.execute(
            "INSERT OR IGNORE INTO events(session_id, site, room, device, type, ts, body, received_at)"
            " VALUES (?, ?, ?, '', 'clinical', ?, ?, ?)",
            (session_id, event.site, event.room, event.ts, json.dumps(body), received_at),
        )
        if cur.rowcount and event.type == "session_end":
            conn.execute(
                "UPDATE sessions SET ended_at = ?, summary = ? WHERE id = ?",
                (event.ts, json.dumps(event.data.get("summary", {})), session_id),
            )
            self._open_sessions.pop((event.site, event.room), None)
        return cur.rowcount

    def _seen_clinical(self, conn: sqlite3.Connection, event: ClinicalEvent) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM events WHERE type = 'clinical' AND site = ? AND room = ?"
                " AND json_extract(body, '$.event_id') = ?",
                (event.site, event.room, event.event_id),
            ).fetchone()
            is not None
        )

    def _start_session(self, conn: sqlite3.Connection, event: ClinicalEvent) -> None:
        """A patient's session begins: the room's open recording ends and a new session opens."""
        conn.execute(
            "UPDATE sessions SET ended_at = ? WHERE site = ? AND room = ? AND ended_at IS NULL",
            (event.ts, event.site, event.room),
        )
        session_id = conn.execute(
            "INSERT INTO sessions(site, room, started_at, patient_code, protocol) VALUES (?, ?, ?, ?, ?)",
            (event.site, event.room, event.ts, event.data.get("patient_code"), json.dumps(event.data)),
        ).lastrowid
        self._open_sessions[(event.site, event.room)] = int(session_id or 0)

    def _append_alarm(self, conn: sqlite3.Connection, t: AlarmTransition, received_at: float) -> int:
        session_id = self.open_session(t.site, t.room, t.ts)
        body = {
            k: getattr(t, k)
            for k in (
                "id",
                "priority",
                "kind",
                "condition",
                "message",
                "user",
                "source_event",
                "latched",
                "limit",
            )
        }
        cur = conn.execute(
            "INSERT OR IGNORE INTO events(session_id, site, room, device, type, ts, value, state, body,"
            " received_at) VALUES (?, ?, ?, ?, 'alarm', ?, ?, ?, ?, ?)",
            (session_id, t.site, t.room, t.device, t.ts, t.value, t.state, json.dumps(body), received_at),
        )
        return cur.rowcount

    def _append_observation(self, conn: sqlite3.Connection, obs: Observation, received_at: float) -> int:
        session_id = self.open_session(obs.site, obs.room, obs.ts)
        body: dict[str, object] = {"device_ts": obs.device_ts, "conditions": list(obs.conditions)}
        if obs.samples:
            body["samples"] = list(obs.samples)
            body["sample_rate"] = obs.sample_rate
        cur = conn.execute(
            "INSERT OR IGNORE INTO events(session_id, site, room, device, type, ts, seq, code, value, unit,"
            " valid,"
            " body, received_at) VALUES (?, ?, ?, ?, 'obs', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                obs.site,
                obs.room,
                obs.device,
                obs.ts,
                obs.seq,
                obs.code,
                obs.value,
                obs.unit,
                int(obs.valid),
                _encode_body(body).decode(),
                received_at,
            ),
        )
        return cur.rowcount

    def _append_status(self, conn: sqlite3.Connection, status: DeviceStatus, received_at: float) -> int:
        device_key = (status.site, status.room, status.device)
        key = _status_key(status)
        if self._last_status.get(device_key) == key:
            return 0
        session_id = self.open_session(status.site, status.room, status.ts)
        body = {
            "protocol": status.protocol,
            "conditions": list(status.conditions),
            "reason": status.reason,
            "counters": status.counters,
            "mode": status.mode,
            "details": status.details,
        }
        conn.execute(
            "INSERT INTO events(session_id, site, room, device, type, ts, state, body, received_at)"
            " VALUES (?, ?, ?, ?, 'status', ?, ?, ?, ?)",
            (
                session_id,
                status.site,
                status.room,
                status.device,
                status.ts,
                status.state,
                json.dumps(body),
                received_at,
            ),
        )
        self._last_status[device_key] = key
        return 1

    # ---- reading --------------------------------------------------------------------------------------

    def recordings(self) -> list[RoomRecording]:
        """Every room with an open recording, with the time of its newest event."""
        rows = (
            self._conn()
            .execute(
                "SELECT s.site, s.room, s.id, s.started_at,"
                " (SELECT MAX(ts) FROM events e WHERE e.session_id = s.id)"
                " FROM sessions s WHERE s.ended_at IS NULL ORDER BY s.site, s.room"
            )
            .fetchall()
        )
        return [RoomRecording(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def observations(
        self, site: str, room: str, *, since: float | None = None, codes: Iterable[int] | None = None
    ) -> list[Observation]:
        """Observations of a room in time order, optionally since a time and for some MDC codes only."""
        sql = (
            "SELECT device, seq, ts, code, value, unit, valid, body FROM events"
            " WHERE type = 'obs' AND site = ? AND room = ?"
        )
        args: list[object] = [site, room]
        filters, more = _observation_filters(since, codes)
        sql += filters + " ORDER BY ts, id"
        args.extend(more)
        return [_observation_from_row(site, room, row) for row in self._conn().execute(sql, args)]

    def observations_after(
        self,
        site: str,
        room: str,
        after_id: int,
        *,
        since: float | None = None,
        codes: Iterable[int] | None = None,
    ) -> tuple[list[Observation], int]:
        """What `observations` adds since the read that returned `after_id`: the room's observations stored
        after that row (time order), and the row id to pass next time. A page that redraws from hours of
        readings every second reads each row once this way instead of all of them on every redraw."""
        conn = self._conn()
        upto = int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])
        sql = (
            "SELECT device, seq, ts, code, value, unit, valid, body FROM events"
            " WHERE type = 'obs' AND site = ? AND room = ? AND id > ? AND id <= ?"
        )
        args: list[object] = [site, room, after_id, upto]
        filters, more = _observation_filters(since, codes)
        sql += filters + " ORDER BY ts, id"
        args.extend(more)
        return [_observation_from_row(site, room, row) for row in conn.execute(sql, args)], upto

    def latest_observations(self, site: str, room: str) -> list[Observation]:
        """The newest observation of each (device, code) in the room."""
        rows = self._conn().execute(
            "SELECT device, seq, ts, code, value, unit, valid, body FROM events WHERE id IN ("
            " SELECT MAX(id) FROM events WHERE type = 'obs' AND site = ? AND room = ?"
            " GROUP BY device, code)",
            (site, room),
        )
        return [_observation_from_row(site, room, row) for row in rows]

    def statuses(self, site: str, room: str) -> list[DeviceStatus]:
        """Every status change of the room's devices, oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT device, ts, state, body FROM events WHERE type = 'status' AND site = ? AND room = ?"
                " ORDER BY id",
                (site, room),
            )
            .fetchall()
        )
        return [_status_from_parts(site, room, d, ts, state, body) for d, ts, state, body in rows]

    def alarms(self, site: str, room: str) -> list[AlarmTransition]:
        """Every alarm transition of the room, in log order."""
        rows = self._conn().execute(
            "SELECT device, ts, value, state, body FROM events WHERE type = 'alarm' AND site = ? AND room = ?"
            " ORDER BY id",
            (site, room),
        )
        return [_alarm_from_parts(site, room, *row) for row in rows]

    def sessions(self) -> list[tuple[int, str, str, float, float | None]]:
        """Every session: (id, site, room, started_at, ended_at), newest first."""
        return [
            tuple(r)
            for r in self._conn().execute(  # type: ignore[misc]
                "SELECT id, site, room, started_at, ended_at FROM sessions ORDER BY started_at DESC, id DESC"
            )
        ]

    def alarm_log(self, session_id: int) -> list[AlarmTransition]:
        """Every alarm transition of one session, in log order."""
        row = self._conn().execute("SELECT site, room FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            return []
        site, room = row
        rows = self._conn().execute(
            "SELECT device, ts, value, state, body FROM events WHERE type = 'alarm' AND session_id = ?"
            " ORDER BY id",
            (session_id,),
        )
        return [_alarm_from_parts(site, room, *r) for r in rows]

    def clinical_events(self, site: str, room: str) -> list[ClinicalEvent]:
        rows = self._conn().execute(
            "SELECT ts, body FROM events WHERE type = 'clinical' AND site = ? AND room = ? ORDER BY id",
            (site, room),
        )
        return [_clinical_from_parts(site, room, ts, body) for ts, body in rows]

    def log(
        self,
        site: str,
        room: str,
        *,
        types: Iterable[str] = ("obs", "status", "clinical"),
        session_id: int | None = None,
    ) -> Iterator[tuple[float, LogEvent]]:
        """The room's events in log order with the time the core received each: what the alarm engine saw
        live, so feeding them to it again reproduces its transitions exactly."""
        type_list = list(types)
        sql = (
            "SELECT type, device, seq, ts, code, value, unit, valid, state, body, received_at FROM events"
            f" WHERE site = ? AND room = ? AND type IN ({','.join('?' * len(type_list))})"
        )
        args: list[object] = [site, room, *type_list]
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
        for type_, device, seq, ts, code, value, unit, valid, state, body, received in self._conn().execute(
            sql + " ORDER BY id", args
        ):
            if type_ == "obs":
                yield (
                    received,
                    _observation_from_row(site, room, (device, seq, ts, code, value, unit, valid, body)),
                )
            elif type_ == "status":
                yield received, _status_from_parts(site, room, device, ts, state, body)
            elif type_ == "clinical":
                yield received, _clinical_from_parts(site, room, ts, body)
            else:
                yield received, _alarm_from_parts(site, room, device, ts, value, state, body)

    def count(self, type_: str = "obs") -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM events WHERE type = ?", (type_,)).fetchone()[0])

    # ---- sessions as records: listing, export and import ------------------------------------------------

    def session_records(self, session_id: int | None = None) -> list[SessionRecord]:
        """Every session (or the one asked for) with its patient code, protocol and alarm count, newest
        first."""
        sql = (
            "SELECT s.id, s.site, s.room, s.started_at, s.ended_at, s.patient_code, s.protocol, s.summary,"
            " (SELECT COUNT(DISTINCT json_extract(e.body, '$.id')) FROM events e WHERE e.site = s.site"
            "  AND e.room = s.room AND e.type = 'alarm' AND e.session_id = s.id) FROM sessions s"
        )
        args: tuple[object, ...] = ()
        if session_id is not None:
            sql, args = sql + " WHERE s.id = ?", (session_id,)
        rows = self._conn().execute(sql + " ORDER BY s.started_at DESC, s.id DESC", args).fetchall()
        return [
            SessionRecord(r[0], r[1], r[2], r[3], r[4], r[5], _json_or_none(r[6]), _json_or_none(r[7]), r[8])
            for r in rows
        ]

    def session(self, session_id: int) -> SessionRecord | None:
        found = self.session_records(session_id)
        return found[0] if found else None

    def raw_events(self, session_id: int) -> Iterator[dict[str, object]]:
        """The session's rows as stored (EVENT_COLUMNS, `body` decoded), in log order: what an export
        carries so that an import elsewhere stores the very same rows."""
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE session_id = ? ORDER BY id"
        for row in self._conn().execute(sql, (session_id,)):
            event = dict(zip(EVENT_COLUMNS, row, strict=True))
            event["body"] = json.loads(str(event["body"]))
            yield event

    def import_session(
        self, record: SessionRecord, events: Sequence[dict[str, object]], *, close_at: float | None = None
    ) -> ImportResult:
        """Store a session exported elsewhere (rows as `raw_events` gives them), in one transaction.

        A session created here from an export taken while it was still open ends at `close_at`, so it
        never becomes the room's open recording in this file (live events would land in it).

        The session is found by (site, room, start) or created; each row is stored once, as live: an
        observation once per (site, room, device, seq), a clinical event once per event_id, an alarm
        transition once per (id, state, ts), and a status once per identical row of the session.
        """
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                session_id, created = self._import_session_row(conn, record, close_at)
                imported = sum(self._import_event(conn, session_id, event) for event in events)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ImportResult(session_id, created, imported, len(events) - imported)

    def _import_session_row(
        self, conn: sqlite3.Connection, record: SessionRecord, close_at: float | None
    ) -> tuple[int, bool]:
        protocol = None if record.protocol is None else json.dumps(record.protocol)
        summary = None if record.summary is None else json.dumps(record.summary)
        row = conn.execute(
            "SELECT id FROM sessions WHERE site = ? AND room = ? AND started_at = ? ORDER BY id LIMIT 1",
            (record.site, record.room, record.started_at),
        ).fetchone()
        if row is not None:  # already here: fill in what it lacked (an export taken after it ended)
            conn.execute(
                "UPDATE sessions SET ended_at = COALESCE(ended_at, ?), patient_code = COALESCE(patient_code,"
                " ?), protocol = COALESCE(protocol, ?), summary = COALESCE(summary, ?) WHERE id = ?",
                (record.ended_at, record.patient_code, protocol, summary, row[0]),
            )
            if record.ended_at is not None and self._open_sessions.get((record.site, record.room)) == row[0]:
                del self._open_sessions[(record.site, record.room)]
            return int(row[0]), False
        ended_at = close_at if record.ended_at is None else record.ended_at
        cur = conn.execute(
            "INSERT INTO sessions(site, room, started_at, ended_at, patient_code, protocol, summary)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.site, record.room, record.started_at, ended_at, record.patient_code, protocol, summary),
        )
        return int(cur.lastrowid or 0), True

    def _import_event(self, conn: sqlite3.Connection, session_id: int, event: dict[str, object]) -> int:
        values = [event.get(c) for c in EVENT_COLUMNS]
        values[EVENT_COLUMNS.index("body")] = json.dumps(event["body"])
        if event["type"] == "status" and conn.execute(
            "SELECT 1 FROM events WHERE session_id = ? AND type = 'status' AND site = ? AND room = ?"
            " AND device = ? AND ts = ? AND state = ? AND body = ? AND received_at = ?",
            (session_id, *(values[EVENT_COLUMNS.index(c)] for c in
                           ("site", "room", "device", "ts", "state", "body", "received_at"))),
        ).fetchone():  # fmt: skip
            return 0
        cur = conn.execute(
            f"INSERT OR IGNORE INTO events(session_id, {', '.join(EVENT_COLUMNS)})"
            f" VALUES (?{', ?' * len(EVENT_COLUMNS)})",
            (session_id, *values),
        )
        return cur.rowcount


def _json_or_none(text: str | None) -> dict[str, object] | None:
    return None if text is None else dict(json.loads(text))


#: an observation's body is encoded once per reading on the ingest path: msgspec does it ~10x faster than
#: `json.dumps` (the text is compact JSON; every reader decodes it, none compares it as text)
_encode_body = msgspec.json.Encoder().encode


def _observation_filters(since: float | None, codes: Iterable[int] | None) -> tuple[str, list[object]]:
    """The SQL (and its arguments) that narrows an observation query to a time and some MDC codes."""
    sql, args = "", []
    if since is not None:
        sql += " AND ts >= ?"
        args.append(since)
    code_list = list(codes) if codes is not None else []
    if code_list:
        sql += f" AND code IN ({','.join('?' * len(code_list))})"
        args.extend(code_list)
    return sql, args


def _observation_from_row(site: str, room: str, row: tuple) -> Observation:  # type: ignore[type-arg]
    device, seq, ts, code, value, unit, valid, body = row
    extra = json.loads(body)
    return Observation(
        site,
        room,
        device,
        seq,
        ts,
        code,
        value,
        unit,
        bool(valid),
        extra.get("device_ts"),
        tuple(extra.get("conditions", ())),
        tuple(extra.get("samples", ())),
        extra.get("sample_rate"),
    )


def _status_from_parts(site: str, room: str, device: str, ts: float, state: str, body: str) -> DeviceStatus:
    extra = json.loads(body)
    return DeviceStatus(
        site,
        room,
        device,
        ts,
        state,
        extra.get("protocol", ""),
        tuple(extra.get("conditions", ())),
        extra.get("reason", ""),
        dict(extra.get("counters", {})),
        extra.get("mode", ""),
        dict(extra.get("details", {})),
    )


def _clinical_from_parts(site: str, room: str, ts: float, body: str) -> ClinicalEvent:
    b = json.loads(body)
    return ClinicalEvent(
        site,
        room,
        ts,
        b["type"],
        b["author"],
        b["event_id"],
        b.get("text", ""),
        b.get("effect", ""),
        b.get("severity", ""),
        b.get("alarm_id", ""),
        b.get("rule", ""),
        b.get("limit"),
        dict(b.get("data", {})),
    )


def _alarm_from_parts(
    site: str, room: str, device: str, ts: float, value: float | None, state: str, body: str
) -> AlarmTransition:
    b = json.loads(body)
    return AlarmTransition(
        site,
        room,
        b["id"],
        ts,
        state,
        b["priority"],
        b["kind"],
        b["condition"],
        b["message"],
        value,
        b.get("limit"),
        device,
        b.get("user", ""),
        b.get("source_event", ""),
        bool(b.get("latched", False)),
    )

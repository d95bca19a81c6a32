"""A session's whole event log as JSON lines, to move it between sites: written by `export`, read by
`import`, lossless both ways.

The first line names the session; every other line is one row of the event log, in log order, exactly as
stored (time the core received it included), so an import elsewhere stores the very same rows and a
second export is byte for byte the first:

    {"type":"session","format":1,"site":"clinic","room":"room1","started_at":1795558934.4,
     "ended_at":...,"patient_code":"K-1042","protocol":{...},"summary":{...}}
    {"type":"obs","site":"clinic","room":"room1","device":"oximeter","ts":...,"seq":...,"code":150456,
     "value":97.0,"unit":"%","valid":true,"body":{"device_ts":null,"conditions":[]},"received_at":...}
    {"type":"status",...,"state":"online","body":{...}}   {"type":"clinical",...}   {"type":"alarm",...}

Times are UTC epoch seconds (floats written in their shortest exact form). The file's session id is not
written: ids belong to one database. A file may hold several sessions, each after its own header.
Reading never stops at a bad line: it is rejected with its line number and reason, and the good lines
around it are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from monitor import wire
from monitor.model import ALARM_KINDS, ALARM_STATES, CLINICAL_EVENT_TYPES, PRIORITIES
from monitor.store import EventLog, ImportResult, SessionRecord

FORMAT = 1


class _Line(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    site: str
    room: str


class _Session(_Line, tag="session"):
    format: int
    started_at: float
    ended_at: float | None
    patient_code: str | None
    protocol: dict[str, Any] | None
    summary: dict[str, Any] | None


class _Obs(_Line, tag="obs"):
    device: str
    ts: float
    seq: int
    code: int
    value: float | None
    unit: str
    valid: bool
    body: dict[str, Any]
    received_at: float


class _Status(_Line, tag="status"):
    device: str
    ts: float
    state: str
    body: dict[str, Any]
    received_at: float


class _Clinical(_Line, tag="clinical"):
    ts: float
    body: dict[str, Any]
    received_at: float


class _Alarm(_Line, tag="alarm"):
    device: str
    ts: float
    value: float | None
    state: str
    body: dict[str, Any]
    received_at: float


_EventLine = _Obs | _Status | _Clinical | _Alarm
#: what the store writes in each row's body: anything else is refused, as the wire refuses unknown keys,
#: so an edited file cannot slip stray (personal) data into the log
_BODY_KEYS: dict[type[_EventLine], frozenset[str]] = {
    _Obs: frozenset({"device_ts", "conditions", "samples", "sample_rate"}),
    _Status: frozenset({"protocol", "conditions", "reason", "counters", "mode", "details"}),
    _Clinical: frozenset(
        {"type", "author", "event_id", "text", "effect", "severity", "alarm_id", "rule", "limit", "data"}
    ),
    _Alarm: frozenset(
        {"id", "priority", "kind", "condition", "message", "user", "source_event", "latched", "limit"}
    ),
}
_BY_TYPE: dict[str, type[_EventLine]] = {
    "obs": _Obs,
    "status": _Status,
    "clinical": _Clinical,
    "alarm": _Alarm,
}
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Session | _Obs | _Status | _Clinical | _Alarm)


# --- writing ---------------------------------------------------------------------------------------------


def export_lines(store: EventLog, session_id: int) -> Iterator[bytes]:
    """The session as JSON lines (each ending in a newline). Raises KeyError for an unknown session."""
    record = store.session(session_id)
    if record is None:
        raise KeyError(session_id)
    header = _Session(
        record.site,
        record.room,
        FORMAT,
        record.started_at,
        record.ended_at,
        record.patient_code,
        record.protocol,
        record.summary,
    )
    yield _encoder.encode(header) + b"\n"
    for row in store.raw_events(session_id):
        kind = _BY_TYPE[str(row["type"])]
        fields = {name: row[name] for name in kind.__struct_fields__}
        if kind is _Obs:
            fields["valid"] = bool(fields["valid"])
        yield _encoder.encode(kind(**fields)) + b"\n"


def export_jsonl(store: EventLog, session_id: int) -> bytes:
    return b"".join(export_lines(store, session_id))


# --- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int  # counted from 1
    reason: str


@dataclass(slots=True)
class ImportedSession:
    site: str
    room: str
    started_at: float
    patient_code: str | None
    result: ImportResult
    closed_at: float | None  # set when the export was of a session still open: it ends here at its last event


@dataclass(slots=True)
class ImportReport:
    sessions: list[ImportedSession] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return sum(s.result.imported for s in self.sessions)

    @property
    def duplicates(self) -> int:
        return sum(s.result.duplicates for s in self.sessions)


class _Bad(ValueError):
    pass


def _finite(value: float | None, what: str) -> None:
    if value is not None and not math.isfinite(value):
        raise _Bad(f"{what} is not a finite number")


def _check_event(line: _EventLine, header: _Session) -> dict[str, object]:
    """The row to store, or _Bad saying what is wrong with it."""
    if (line.site, line.room) != (header.site, header.room):
        raise _Bad(f"belongs to {line.site}/{line.room}, not to the session's {header.site}/{header.room}")
    _finite(line.ts, "ts")
    _finite(line.received_at, "received_at")
    body = line.body
    unknown = sorted(set(body) - _BODY_KEYS[type(line)])
    if unknown:
        raise _Bad(f"body: unknown key {unknown[0]!r}")
    if isinstance(line, _Obs | _Status) or (isinstance(line, _Alarm) and line.device):
        _name(line.device, "device")  # a clinical alert belongs to no device
    if isinstance(line, _Obs | _Alarm):
        _finite(line.value, "value")
    if isinstance(line, _Obs) and not isinstance(body.get("conditions"), list):
        raise _Bad("body.conditions: expected a list")
    if isinstance(line, _Status) and line.state not in ("online", "offline"):
        raise _Bad(f"state {line.state!r}: expected online or offline")
    if isinstance(line, _Clinical):
        if body.get("type") not in CLINICAL_EVENT_TYPES:
            raise _Bad(f"body.type {body.get('type')!r}: expected one of {', '.join(CLINICAL_EVENT_TYPES)}")
        for key in ("event_id", "author"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise _Bad(f"body.{key}: expected a text")
        data = body.get("data")
        if body["type"] == "session_start" and not (
            isinstance(data, dict) and wire.is_patient_code(data.get("patient_code"))
        ):
            raise _Bad("body.data.patient_code: expected a pseudonymous code, never a name")
    if isinstance(line, _Alarm):
        if line.state not in ALARM_STATES:
            raise _Bad(f"state {line.state!r}: expected one of {', '.join(ALARM_STATES)}")
        for key, allowed in (("priority", PRIORITIES), ("kind", ALARM_KINDS)):
            if body.get(key) not in allowed:
                raise _Bad(f"body.{key} {body.get(key)!r}: expected one of {', '.join(allowed)}")
        for key in ("id", "condition", "message"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise _Bad(f"body.{key}: expected a text")
    row: dict[str, object] = {"type": _type_of(line), "device": "", **msgspec.structs.asdict(line)}
    if isinstance(line, _Obs):
        row["valid"] = int(line.valid)
    return row


def _type_of(line: _EventLine) -> str:
    return next(name for name, kind in _BY_TYPE.items() if isinstance(line, kind))


def _name(text: str, what: str) -> None:
    try:
        wire.check_name(text, what)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _check_header(header: _Session) -> None:
    if header.format != FORMAT:
        raise _Bad(f"format {header.format}: this version reads format {FORMAT}")
    _name(header.site, "site")
    _name(header.room, "room")
    _finite(header.started_at, "started_at")
    _finite(header.ended_at, "ended_at")
    if header.patient_code is not None and not wire.is_patient_code(header.patient_code):
        raise _Bad(
            "patient_code: expected a pseudonymous code (letters, digits, '-', with a digit), never a name"
        )


@dataclass(slots=True)
class _Pending:
    header: _Session
    rows: list[dict[str, object]] = field(default_factory=list)


def read_lines(lines: Iterable[bytes]) -> tuple[list[_Pending], list[Rejected]]:
    """Parse an export: its sessions with their good rows, and every rejected line with its reason."""
    sessions: list[_Pending] = []
    rejected: list[Rejected] = []
    current: _Pending | None = None
    for number, raw in enumerate(lines, start=1):
        text = raw.strip().removeprefix(b"\xef\xbb\xbf").strip()  # an editor may have added a BOM
        if not text:
            continue
        try:
            line = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            rejected.append(Rejected(number, f"invalid event: {exc}"))
            continue
        except msgspec.DecodeError as exc:
            rejected.append(Rejected(number, f"not JSON: {exc}"))
            continue
        try:
            if isinstance(line, _Session):
                _check_header(line)
                current = _Pending(line)
                sessions.append(current)
            elif current is None:
                rejected.append(Rejected(number, "no session header before this line"))
            else:
                current.rows.append(_check_event(line, current.header))
        except _Bad as exc:
            if isinstance(line, _Session):
                current = None  # its rows have nowhere to go: each is rejected as headless
            rejected.append(Rejected(number, str(exc)))
    return sessions, rejected


def import_jsonl(store: EventLog, lines: Iterable[bytes]) -> ImportReport:
    """Read an export into `store`: each session found or created, each row stored once."""
    sessions, rejected = read_lines(lines)
    report = ImportReport(rejected=rejected)
    for pending in sessions:
        h = pending.header
        record = SessionRecord(
            0, h.site, h.room, h.started_at, h.ended_at, h.patient_code, h.protocol, h.summary
        )
        close_at = None
        if h.ended_at is None:
            close_at = max([h.started_at, *(float(r["ts"]) for r in pending.rows)])  # type: ignore[arg-type]
        result = store.import_session(record, pending.rows, close_at=close_at)
        closed = close_at if result.created else None
        report.sessions.append(ImportedSession(h.site, h.room, h.started_at, h.patient_code, result, closed))
    return report

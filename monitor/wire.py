"""The MQTT contract: topic names and JSON payloads, encoded and validated in one place.

Topics (documented in the README):
  kap/<site>/<room>/<device>/obs     observation, QoS 1
  kap/<site>/<room>/<device>/status  device status, QoS 1, retained, `offline` as the Last Will
  kap/<site>/<room>/<device>/cmd     commands to the device's gateway, e.g. {"command": "measure"}
  kap/<site>/<room>/<device>/reply   the gateway's answer to each command
  kap/<site>/<room>/events           clinical events to the core: notes, side effects, alarm actions
  kap/<site>/<room>/alarms           alarm transitions from the core
Everything is parsed into `monitor.model` objects or rejected with a reason; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from monitor.model import (
    ALARM_KINDS,
    ALARM_STATES,
    ASSESSMENT_KINDS,
    CLINICAL_EVENT_TYPES,
    DRUGS,
    PRIORITIES,
    ROUTES,
    SEVERITIES,
    SIDE_EFFECTS,
    AlarmTransition,
    ClinicalEvent,
    CommandReply,
    DeviceStatus,
    Observation,
)

ROOT = "kap"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class WireError(ValueError):
    """A message that does not follow the contract. `kind` groups them for counting and logging once."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def check_name(value: str, what: str) -> str:
    """Site, room and device names become topic levels: letters, digits, `_ . -` only."""
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return value


def obs_topic(site: str, room: str, device: str) -> str:
    return f"{ROOT}/{site}/{room}/{device}/obs"


def status_topic(site: str, room: str, device: str) -> str:
    return f"{ROOT}/{site}/{room}/{device}/status"


def cmd_topic(site: str, room: str, device: str) -> str:
    return f"{ROOT}/{site}/{room}/{device}/cmd"


def reply_topic(site: str, room: str, device: str) -> str:
    return f"{ROOT}/{site}/{room}/{device}/reply"


def events_topic(site: str, room: str) -> str:
    return f"{ROOT}/{site}/{room}/events"


def alarms_topic(site: str, room: str) -> str:
    return f"{ROOT}/{site}/{room}/alarms"


#: the largest MQTT payload we accept; a waveform block is well under 2 KiB
MAX_PAYLOAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    room: str
    device: str
    kind: str  # "obs" | "status" | "cmd" | "reply" | "events" | "alarms" (the last two have no device)


def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == ROOT and parts[3] in ("events", "alarms"):
        _, site, room, kind = parts
        if not (_NAME.match(site) and _NAME.match(room)):
            raise WireError("bad topic name", topic)
        return Topic(site, room, "", kind)
    if len(parts) != 5 or parts[0] != ROOT:
        raise WireError("unknown topic", topic)
    _, site, room, device, kind = parts
    if kind not in ("obs", "status", "cmd", "reply"):
        raise WireError("unknown topic", topic)
    for value in (site, room, device):
        if not _NAME.match(value):
            raise WireError("bad topic name", topic)
    return Topic(site, room, device, kind)


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds: what the contract carries as `ts`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WireError("bad timestamp", text[:40]) from exc
    if parsed.tzinfo is None:
        raise WireError("bad timestamp", f"{text[:40]} has no UTC offset")
    return parsed.timestamp()


class _ObsPayload(msgspec.Struct, forbid_unknown_fields=False):
    ts: str
    seq: int
    code: int
    value: float | None
    unit: str
    valid: bool
    device_ts: str | None = None
    conditions: list[str] = []
    samples: list[int] = []
    sample_rate: float | None = None


class _StatusPayload(msgspec.Struct, forbid_unknown_fields=False):
    ts: str
    state: str
    protocol: str = ""
    conditions: list[str] = []
    reason: str = ""
    counters: dict[str, int] = {}
    mode: str = ""
    details: dict[str, float | int | str | None] = {}


class _CommandPayload(msgspec.Struct, forbid_unknown_fields=False):
    command: str
    args: dict[str, object] = {}
    request_id: str = ""
    requested_by: str = ""


class _ReplyPayload(msgspec.Struct, forbid_unknown_fields=False):
    ts: str
    command: str
    accepted: bool
    reason: str = ""
    request_id: str = ""


_encoder = msgspec.json.Encoder()
_obs_decoder = msgspec.json.Decoder(_ObsPayload)
_status_decoder = msgspec.json.Decoder(_StatusPayload)
_command_decoder = msgspec.json.Decoder(_CommandPayload)
_reply_decoder = msgspec.json.Decoder(_ReplyPayload)
#: what msgspec raises for bytes that are not JSON: invalid UTF-8 inside a string surfaces as
#: UnicodeDecodeError and very deep nesting as RecursionError, not as msgspec.DecodeError
_NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
#: what SQLite stores as an INTEGER (msgspec accepts up to 2**64 - 1), and the size of an MDC code
_MAX_SEQ, _MAX_CODE = 2**63 - 1, 2**32 - 1


def _check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_PAYLOAD:
        raise WireError(f"oversized {what}", f"{len(data)} bytes > {MAX_PAYLOAD}")


def encode_observation(obs: Observation) -> bytes:
    payload = {
        "ts": iso(obs.ts),
        "seq": obs.seq,
        "code": obs.code,
        "value": obs.value,
        "unit": obs.unit,
        "valid": obs.valid,
    }
    if obs.device_ts is not None:
        payload["device_ts"] = iso(obs.device_ts)
    if obs.conditions:
        payload["conditions"] = list(obs.conditions)
    if obs.samples:
        payload["samples"] = list(obs.samples)
        payload["sample_rate"] = obs.sample_rate
    return _encoder.encode(payload)


def decode_observation(topic: Topic, data: bytes) -> Observation:
    _check_size(data, "observation")
    try:
        p = _obs_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError("invalid observation", str(exc)) from exc
    except _NOT_JSON as exc:
        raise WireError("observation is not JSON", str(exc)) from exc
    if not 0 <= p.seq <= _MAX_SEQ:
        raise WireError("invalid observation", f"seq must be 0..{_MAX_SEQ}")
    if not 0 <= p.code <= _MAX_CODE:
        raise WireError("invalid observation", f"code must be an MDC code, 0..{_MAX_CODE}")
    if p.value is not None and (p.value != p.value or p.value in (float("inf"), float("-inf"))):
        raise WireError("invalid observation", "value is not a finite number")
    if p.samples and (p.sample_rate is None or not 0 < p.sample_rate <= 10_000):
        raise WireError("invalid observation", "a waveform block needs a sample_rate in (0, 10000] Hz")
    return Observation(
        site=topic.site,
        room=topic.room,
        device=topic.device,
        seq=p.seq,
        ts=parse_iso(p.ts),
        code=p.code,
        value=p.value,
        unit=p.unit,
        valid=p.valid,
        device_ts=parse_iso(p.device_ts) if p.device_ts else None,
        conditions=tuple(p.conditions),
        samples=tuple(p.samples),
        sample_rate=p.sample_rate,
    )


def encode_status(status: DeviceStatus) -> bytes:
    return _encoder.encode(
        {
            "ts": iso(status.ts),
            "state": status.state,
            "protocol": status.protocol,
            "conditions": list(status.conditions),
            "reason": status.reason,
            "counters": status.counters,
            "mode": status.mode,
            "details": status.details,
        }
    )


def decode_status(topic: Topic, data: bytes) -> DeviceStatus:
    _check_size(data, "status")
    try:
        p = _status_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError("invalid status", str(exc)) from exc
    except _NOT_JSON as exc:
        raise WireError("status is not JSON", str(exc)) from exc
    if p.state not in ("online", "offline"):
        raise WireError("invalid status", f"state {p.state!r} is not online/offline")
    return DeviceStatus(
        site=topic.site,
        room=topic.room,
        device=topic.device,
        ts=parse_iso(p.ts),
        state=p.state,
        protocol=p.protocol,
        conditions=tuple(p.conditions),
        reason=p.reason,
        counters=dict(p.counters),
        mode=p.mode,
        details=dict(p.details),
    )


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: dict[str, object]
    request_id: str
    requested_by: str


def encode_command(
    name: str, args: dict[str, object] | None = None, *, request_id: str = "", requested_by: str = ""
) -> bytes:
    return _encoder.encode(
        {"command": name, "args": args or {}, "request_id": request_id, "requested_by": requested_by}
    )


def decode_command(data: bytes) -> Command:
    _check_size(data, "command")
    try:
        p = _command_decoder.decode(data)
    except (msgspec.ValidationError, *_NOT_JSON) as exc:
        raise WireError("invalid command", str(exc)) from exc
    return Command(p.command, dict(p.args), p.request_id, p.requested_by)


def encode_reply(reply: CommandReply) -> bytes:
    return _encoder.encode(
        {
            "ts": iso(reply.ts),
            "command": reply.command,
            "accepted": reply.accepted,
            "reason": reply.reason,
            "request_id": reply.request_id,
        }
    )


def decode_reply(topic: Topic, data: bytes) -> CommandReply:
    _check_size(data, "reply")
    try:
        p = _reply_decoder.decode(data)
    except (msgspec.ValidationError, *_NOT_JSON) as exc:
        raise WireError("invalid reply", str(exc)) from exc
    return CommandReply(
        topic.site, topic.room, topic.device, parse_iso(p.ts), p.command, p.accepted, p.reason, p.request_id
    )


# ---- clinical events and alarm transitions ---------------------------------------------------------------

MAX_NOTE = 4000


class _ClinicalPayload(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    author: str
    ts: str | None = None
    event_id: str | None = None
    text: str = ""
    effect: str = ""
    severity: str = ""
    alarm_id: str = ""
    rule: str = ""
    limit: float | None = None
    # session_start
    patient_code: str = ""
    weight_kg: float | None = None
    drug: str = ""
    route: str = ""
    planned_mg: float | None = None
    planned_mg_per_kg: float | None = None
    duration_min: float | None = None
    nurse: str = ""
    concentration_mg_ml: float | None = None
    # dose
    mg: float | None = None
    mg_per_kg: float | None = None
    given_at: str | None = None
    supersedes: str = ""
    confirmed: bool = False
    # assessment
    kind: str = ""
    score: int | None = None
    answers: list[int] = []
    # session_end
    summary: dict[str, object] = {}
    # any type, from the dashboard: the signed-in author's address, and a name typed on the page
    client: str = ""
    typed_author: str = ""


#: a pseudonymous code, never a name: letters, digits and '-', with at least one digit
_PATIENT_CODE = re.compile(r"^(?=.*[0-9])[A-Za-z0-9][A-Za-z0-9-]{2,23}$")


def is_patient_code(text: object) -> bool:
    """Whether `text` is a pseudonymous patient code (never a name): what a session start must carry."""
    return isinstance(text, str) and _PATIENT_CODE.match(text) is not None
_ASSESSMENT_RANGES = {"pain_nrs": (0, 10, 0), "moaas": (0, 5, 0), "cadss6": (0, 4, 6), "aldrete": (0, 2, 5)}


def _positive(value: float | None, what: str, high: float) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= high:
        raise WireError("invalid clinical event", f"{what} {value:g} must be above 0 and at most {high:g}")
    return value


def _type_data(p: _ClinicalPayload) -> dict[str, object]:
    """The validated, type-specific part of a session start, dose, assessment or session end."""

    def bad(detail: str) -> WireError:
        return WireError("invalid clinical event", detail)

    if p.type == "session_start":
        if not _PATIENT_CODE.match(p.patient_code):
            raise bad(
                "patient_code must be a pseudonymous code (3-24 letters, digits or '-', with a digit), "
                "never a name"
            )
        if p.weight_kg is None or not 20 <= p.weight_kg <= 300:
            raise bad("weight_kg must be 20-300")
        if p.drug not in DRUGS or p.route not in ROUTES:
            raise bad(f"drug must be one of {', '.join(DRUGS)} and route one of {', '.join(ROUTES)}")
        if (p.planned_mg is None) == (p.planned_mg_per_kg is None):
            raise bad("give the planned dose as planned_mg or planned_mg_per_kg (one of them)")
        if p.route == "iv-infusion" and not p.duration_min:
            raise bad("an IV infusion needs duration_min")
        return {
            "patient_code": p.patient_code,
            "weight_kg": p.weight_kg,
            "drug": p.drug,
            "route": p.route,
            "planned_mg": _positive(p.planned_mg, "planned_mg", 1000),
            "planned_mg_per_kg": _positive(p.planned_mg_per_kg, "planned_mg_per_kg", 10),
            "duration_min": _positive(p.duration_min, "duration_min", 600),
            "nurse": p.nurse[:64],
            "concentration_mg_ml": _positive(p.concentration_mg_ml, "concentration_mg_ml", 100),
        }
    if p.type == "dose":
        if p.route not in ROUTES:
            raise bad(f"route must be one of {', '.join(ROUTES)}")
        if (p.mg is None) == (p.mg_per_kg is None):
            raise bad("give the dose as mg or mg_per_kg (one of them)")
        if p.route == "iv-infusion" and not p.duration_min:
            raise bad("an infusion dose needs duration_min")
        given_at = parse_iso(p.given_at) if p.given_at else None
        if p.supersedes and p.mg == 0:  # a correction to 0 mg voids a dose entered in error
            return {
                "route": p.route,
                "mg": 0.0,
                "mg_per_kg": None,
                "duration_min": None,
                "given_at": given_at,
                "supersedes": p.supersedes[:64],
                "confirmed": p.confirmed,
            }
        return {
            "route": p.route,
            "mg": _positive(p.mg, "mg", 1000),
            "mg_per_kg": _positive(p.mg_per_kg, "mg_per_kg", 10),
            "duration_min": _positive(p.duration_min, "duration_min", 600),
            "given_at": given_at,
            "supersedes": p.supersedes[:64],
            "confirmed": p.confirmed,
        }
    if p.type == "assessment":
        if p.kind not in _ASSESSMENT_RANGES:
            raise bad(f"kind must be one of {', '.join(ASSESSMENT_KINDS)}")
        low, high, items = _ASSESSMENT_RANGES[p.kind]
        if items:
            if len(p.answers) != items or not all(low <= a <= high for a in p.answers):
                raise bad(f"{p.kind} needs {items} answers, each {low}-{high}")
            score = sum(p.answers)
        else:
            if p.score is None or not low <= p.score <= high:
                raise bad(f"{p.kind} score must be {low}-{high}")
            score = p.score
        return {"kind": p.kind, "score": score, "answers": list(p.answers)}
    if p.type == "session_end":
        return {"summary": dict(p.summary)}
    return {}


_clinical_decoder = msgspec.json.Decoder(_ClinicalPayload)
_CLIENT_ADDRESS = re.compile(r"^[0-9A-Za-z.:_\-\[\]%]{1,64}$")


def _origin(p: _ClinicalPayload) -> dict[str, object]:
    """Where a dashboard action came from (an IP address or host name) and the name typed with it."""
    origin: dict[str, object] = {}
    if p.client:
        if not _CLIENT_ADDRESS.match(p.client):
            raise WireError("invalid clinical event", "client must be an address (1-64 of 0-9 A-Z.:_-[]%)")
        origin["client"] = p.client
    if p.typed_author.strip():
        origin["typed_author"] = p.typed_author.strip()[:64]
    return origin


def decode_clinical_event(topic: Topic, data: bytes, received_at: float) -> ClinicalEvent:
    """Validate a clinical event; the dashboard's own events pass through the same checks.

    Without an `event_id` the message's own bytes name it, so a redelivered copy is stored once; without a
    `ts` it happened when it was received.
    """
    _check_size(data, "clinical event")
    try:
        p = _clinical_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError("invalid clinical event", str(exc)) from exc
    except _NOT_JSON as exc:
        raise WireError("clinical event is not JSON", str(exc)) from exc

    def bad(detail: str) -> WireError:
        return WireError("invalid clinical event", detail)

    if p.type not in CLINICAL_EVENT_TYPES:
        raise bad(f"type {p.type!r} is not one of {', '.join(CLINICAL_EVENT_TYPES)}")
    if not p.author.strip() or len(p.author) > 64:
        raise bad("author must be 1-64 characters (who recorded it)")
    if p.type == "note" and not p.text.strip():
        raise bad("a note needs text")
    if len(p.text) > MAX_NOTE:
        raise bad(f"text is {len(p.text)} characters; at most {MAX_NOTE}")
    if p.type == "side_effect":
        if p.effect not in SIDE_EFFECTS:
            raise bad(f"effect {p.effect!r} is not one of {', '.join(SIDE_EFFECTS)}")
        if p.severity not in SEVERITIES:
            raise bad(f"severity {p.severity!r} is not one of {', '.join(SEVERITIES)}")
    if p.type == "limit_change" and (not p.rule or p.limit is None or not math.isfinite(p.limit)):
        raise bad("a limit change needs a rule and a finite limit")
    type_data = {**_type_data(p), **_origin(p)}
    event_id = p.event_id or hashlib.sha256(data).hexdigest()[:20]
    if not 1 <= len(event_id) <= 64:
        raise bad("event_id must be 1-64 characters")
    ts = parse_iso(p.ts) if p.ts else received_at
    return ClinicalEvent(
        topic.site,
        topic.room,
        ts,
        p.type,
        p.author.strip(),
        event_id,
        p.text,
        p.effect,
        p.severity,
        p.alarm_id,
        p.rule,
        p.limit,
        type_data,
    )


def encode_clinical_event(event: ClinicalEvent) -> bytes:
    payload: dict[str, object] = {
        "type": event.type,
        "author": event.author,
        "ts": iso(event.ts),
        "event_id": event.event_id,
    }
    for key in ("text", "effect", "severity", "alarm_id", "rule"):
        if getattr(event, key):
            payload[key] = getattr(event, key)
    if event.limit is not None:
        payload["limit"] = event.limit
    for key, value in event.data.items():
        if key == "given_at":
            if value is not None:
                payload[key] = iso(float(value))  # type: ignore[arg-type]
        elif key == "score" and event.data.get("answers"):
            continue  # a scale with items is scored from its answers
        elif value not in (None, "", False) or key in ("summary",):
            payload[key] = value
    return _encoder.encode(payload)


class _AlarmPayload(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    ts: str
    state: str
    priority: str
    kind: str
    condition: str
    message: str
    value: float | None = None
    limit: float | None = None
    device: str = ""
    user: str = ""
    source_event: str = ""
    latched: bool = False


_alarm_decoder = msgspec.json.Decoder(_AlarmPayload)


def encode_alarm(t: AlarmTransition) -> bytes:
    return _encoder.encode(
        {
            "id": t.id,
            "ts": iso(t.ts),
            "state": t.state,
            "priority": t.priority,
            "kind": t.kind,
            "condition": t.condition,
            "message": t.message,
            "value": t.value,
            "limit": t.limit,
            "device": t.device,
            "user": t.user,
            "source_event": t.source_event,
            "latched": t.latched,
        }
    )


def decode_alarm(topic: Topic, data: bytes) -> AlarmTransition:
    _check_size(data, "alarm")
    try:
        p = _alarm_decoder.decode(data)
    except (msgspec.ValidationError, *_NOT_JSON) as exc:
        raise WireError("invalid alarm", str(exc)) from exc
    if p.state not in ALARM_STATES or p.priority not in PRIORITIES or p.kind not in ALARM_KINDS:
        raise WireError("invalid alarm", f"state/priority/kind {p.state}/{p.priority}/{p.kind}")
    return AlarmTransition(
        topic.site,
        topic.room,
        p.id,
        parse_iso(p.ts),
        p.state,
        p.priority,
        p.kind,
        p.condition,
        p.message,
        p.value,
        p.limit,
        p.device,
        p.user,
        p.source_event,
        p.latched,
    )

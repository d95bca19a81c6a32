"""The events that flow from codecs to the gateway, and from the gateway over MQTT to the core.

Codec events (`Measurement`, `DeviceReading`, `RejectedFrame`) know nothing of rooms, clocks or sockets:
a codec turns bytes into them. The adapter stamps them with identity, time and sequence to make
`Observation`s and `DeviceStatus`es, which are what travel on the wire and what the event log stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value a device reported. `value` is None when the device sent dashes (no value)."""

    code: int  # MDC code, see monitor.mdc
    value: float | None
    unit: str  # UCUM
    valid: bool = True


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One complete report from a device (a Masimo line, a Nonin packet, an NIBP result...).

    `conditions` is the full set of technical conditions the device reports *now* (identifiers from
    monitor.conditions); an empty set means none. `device_time` is the device's own clock, if it sent one.
    """

    measurements: tuple[Measurement, ...]
    conditions: frozenset[str] = frozenset()
    device_time: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: the device's operating mode when it reports one (pump "running"/"stopped"/"set", cuff "measuring"...)
    mode: str | None = None


@dataclass(frozen=True, slots=True)
class WaveformBlock:
    """Consecutive samples of a waveform (the pleth): drawn as a moving trace, never stored per sample."""

    code: int  # MDC code of the waveform, e.g. mdc.PLETH
    sample_rate: float  # Hz
    samples: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """Input a codec could not decode. Counted and reported; never fatal; never hides good data."""

    reason: str
    data: bytes


CodecEvent = DeviceReading | WaveformBlock | RejectedFrame


@dataclass(frozen=True, slots=True)
class Observation:
    """A measurement with its identity and time: one MQTT message on `kap/<site>/<room>/<device>/obs`."""

    site: str
    room: str
    device: str
    seq: int
    ts: float  # receive time, UTC epoch seconds (device clocks are kept in device_ts, not trusted)
    code: int
    value: float | None
    unit: str
    valid: bool
    device_ts: float | None = None
    conditions: tuple[str, ...] = ()
    #: a waveform block (the pleth) carries its samples here, oldest first, and `value` is None
    samples: tuple[int, ...] = ()
    sample_rate: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's availability and its current technical conditions (retained on `.../status`)."""

    site: str
    room: str
    device: str
    ts: float
    state: str  # "online" | "offline"
    protocol: str = ""
    conditions: tuple[str, ...] = ()
    reason: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    mode: str = ""
    #: device-specific facts a screen needs (e.g. the cuff's cycle: {"interval_s": 300, "next_at": ...})
    details: dict[str, float | int | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The gateway's answer to a command on `.../cmd`, published on `.../reply`."""

    site: str
    room: str
    device: str
    ts: float
    command: str
    accepted: bool
    reason: str = ""
    request_id: str = ""


#: what the nurse (or another clinic system) records, on `kap/<site>/<room>/events`
CLINICAL_EVENT_TYPES = (
    "note",
    "side_effect",
    "alarm_ack",
    "audio_pause",
    "limit_change",
    "session_start",
    "session_end",
    "dose",
    "assessment",
)
ROUTES = ("iv-infusion", "iv-bolus", "im", "sublingual", "intranasal")
DRUGS = ("ketamine", "esketamine")
ASSESSMENT_KINDS = ("pain_nrs", "moaas", "cadss6", "aldrete")
SIDE_EFFECTS = (
    "nausea",
    "vomiting",
    "dizziness",
    "confusion",
    "agitation",
    "dissociation",
    "headache",
    "hypersalivation",
    "chest_pain",
    "other",
)
SEVERITIES = ("mild", "moderate", "severe")


@dataclass(frozen=True, slots=True)
class ClinicalEvent:
    """A note, a side-effect observation, or an operator's action on the room's alarms.

    `event_id` is the idempotency key (the sender's, or one the dashboard makes): stored once. Fields that
    do not belong to the `type` stay empty. A limit change names the profile rule and its new limit.
    """

    site: str
    room: str
    ts: float
    type: str  # one of CLINICAL_EVENT_TYPES
    author: str
    event_id: str
    text: str = ""  # note (and optional free text of a side effect)
    effect: str = ""  # side_effect: one of SIDE_EFFECTS
    severity: str = ""  # side_effect: one of SEVERITIES
    alarm_id: str = ""  # alarm_ack: the alarm acknowledged ("" = every active alarm of the room)
    rule: str = ""  # limit_change: the rule's id in the alarm profile
    limit: float | None = None  # limit_change: the new limit
    #: what a session start, a dose or an assessment says, validated per type (see monitor.wire)
    data: dict[str, object] = field(default_factory=dict, compare=True, hash=False)


ALARM_STATES = ("active", "acknowledged", "audio_paused", "escalated", "cleared")
PRIORITIES = ("high", "medium", "low")
ALARM_KINDS = ("physiological", "technical", "clinical")


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One change of one alarm, published on `kap/<site>/<room>/alarms` and kept in the event log.

    `id` names the alarm for its whole life (activation to clearing); `condition` names what raised it
    (a profile rule id, `device_offline:<device>`, `side_effect:<effect>`...). `value` and `limit` say what
    crossed what, for physiological alarms. `user` is who acknowledged or paused; `source_event` the
    clinical event (note, side effect) that raised it, if any.
    """

    site: str
    room: str
    id: str
    ts: float
    state: str  # one of ALARM_STATES
    priority: str  # one of PRIORITIES
    kind: str  # one of ALARM_KINDS
    condition: str
    message: str
    value: float | None = None
    limit: float | None = None
    device: str = ""
    user: str = ""
    source_event: str = ""
    latched: bool = False  # active only because it latches: its condition is gone

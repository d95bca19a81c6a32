"""The alarm engine: a pure, deterministic function of a room's events and of time.

    engine = AlarmEngine(load_profile(None))
    room = engine.new_room("clinic", "room1")
    transitions = engine.step(room, observation)      # advances to observation.ts, then applies it
    transitions += engine.advance(room, now)          # the clock: fires every deadline <= now
    engine.active(room)                               # what the screen shows, ranked

No clock reads, no randomness, no I/O: the output depends only on the sequence of events and `advance`
times, and every transition is dated by its rule (condition start + delay, activation + escalation time,
pause + audio pause time), never by when `advance` ran. Ticking every 0.1 s, every 5 s or only through
events therefore yields the same transitions, provided no `advance(now)` passes the ts of an event not yet
stepped. An event older than the room's time (late, out of order) is applied at the room's time and
counted in `RoomAlarms.late_events`. Deadlines falling at the same instant fire in a fixed order: audio
pause end, escalations, technical activations, stale data, physiological activations; within each, higher
priority first, then by condition id.

Alarm states (IEC 60601-1-8 vocabulary; model.ALARM_STATES). "latched" is the transition's flag.

| from                 | on                                             | to                                |
|----------------------|------------------------------------------------|-----------------------------------|
| (new)                | condition true for its delay; a clinical event | active; audio_paused if a pause   |
|                      |                                                | runs and it is not of higher prio |
| active, escalated,   | condition gone, the alarm latches              | the same state, latched=True      |
| audio_paused         | condition gone, the alarm does not latch       | cleared                           |
| active               | high, not acknowledged within escalation_s     | escalated                         |
| active, escalated    | audio pause                                    | audio_paused (user = who paused)  |
| audio_paused         | the pause ends (+audio_pause_s), or a higher-  | active (escalated if it was, or   |
|                      | priority alarm breaks through                  | its escalation time has passed)   |
| any but acknowledged | acknowledge, condition present                 | acknowledged (user)               |
| any but acknowledged | acknowledge; condition gone, or clinical alert | acknowledged, then cleared (user) |
| acknowledged         | condition gone                                 | cleared (returning = a new alarm) |

Decisions where the brief left room:

- Physiological conditions are Schmitt triggers: true from the first valid sample past the limit, false
  only at a valid sample back past limit ± hysteresis, also while the alarm is still pending its delay
  (so a value hovering at the limit for longer than the delay does alarm). Only valid samples from a
  healthy sensor count: an invalid value, a missing value, or a sensor problem (on the sample or on the
  device's current status) neither starts nor ends a condition; it is suspended as it was. A pending
  condition still matures at t0 + delay if nothing valid contradicts it: the last valid evidence says
  the patient was past the limit, and a probe falling off is no reason to stay silent.
- Several rules on one code are independent: SpO2 < 92 (medium) and < 88 (high) may both be active; the
  screen ranks them. Superseding would clear and re-raise the medium one as the high one came and went.
- `value` of a physiological alarm is the worst value since its condition began (updated without a
  transition as it worsens, so later transitions carry it); `limit` is the limit it was raised against.
- Audio pause is a room state with a level: the highest priority it silenced. A new alarm of higher
  priority than that breaks through (the pause ends for all); one of equal or lower priority starts
  audio_paused and ends with the pause. The level stays while the pause runs even if the alarms it
  silenced are acknowledged meanwhile. Pressing pause again restarts the countdown and adds any new
  alarms. A pause with nothing to pause is recorded in `rejected` and does nothing.
- Escalation waits for a running audio pause (pausing is a response at the bedside, though not an
  acknowledgement): an alarm whose escalation time passes while paused goes straight to escalated when
  the pause ends; the supervisor is told at most `audio_pause_s` later than otherwise. Escalated alarms
  can be audio paused like any other.
- Clinical alerts are never "latched" in the flag's sense (their condition is a report, never gone):
  acknowledging one emits acknowledged then cleared. A side effect that already has an open alert of the
  same or higher priority (from a structured entry or a note) is not raised again; that is recorded in
  `rejected`. A missing or unknown severity counts as the profile's default (moderate -> medium).
- Stale data ("stale:<device>") measures blind time: how long the device has given no usable data while
  nothing else explained it. For an oximeter, usable = a valid SpO2 from a healthy sensor (a device that
  never sent SpO2: any observation), so a pulse search that outlasts the limit alarms as well as silence
  does; for a cuff, a valid systolic, against interval_s (status details, else the profile's default) +
  margin; for a pump, any observation. Blind time does not run while the device is offline (its offline
  alarm says so) or, for an oximeter, while it reports a sensor problem (the sensor alarm, after its own
  delay, says so); it restarts at zero on usable data, when the device goes offline, and when a
  sensor-problem alarm is raised. It accumulates across short sensor-problem blips, so a probe flickering
  on and off (each blip shorter than the sensor delay) still ends in one stale alarm, not none and not
  one per flicker. Once raised, stale clears only when blind time falls under the limit (usable data, a
  longer cuff cycle) or the offline / sensor alarm takes over.
- A device that is offline raises only `device_offline:<device>`: its listed conditions end (their
  alarms clear) and its stale-data clock stops. Listed technical conditions come from DeviceStatus only
  (an observation's conditions are the same, sent with every sample) and are named "<condition>:<device>".
- Limit changes for an unknown rule, or without a finite limit, are ignored and recorded in
  `rejected`; so are acknowledgements of unknown or already acknowledged alarms and events of another
  room. For a baseline-relative rule, the new limit is the delta.
- Alarm ids are f"{room}:{condition}:{round(activation_ts * 1000)}", with "-2", "-3"... appended in the
  rare case of two activations of one condition in the same millisecond (two findings in one note).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from monitor import mdc
from monitor.alarm_profile import AlarmProfile, ThresholdRule
from monitor.conditions import SENSOR_PROBLEMS, condition_text
from monitor.model import PRIORITIES, AlarmTransition, ClinicalEvent, DeviceStatus, Observation
from monitor.views import NIBP_CODES, PUMP_CODES

Event = Observation | DeviceStatus | ClinicalEvent

_RANK = {p: i for i, p in enumerate(PRIORITIES)}  # 0 = high
_STATE_ORDER = {"escalated": 0, "active": 1, "audio_paused": 2, "acknowledged": 3}
OXIMETER_CODES = frozenset({mdc.SPO2.code, mdc.PLETH.code})
PUMP_DEVICE_CODES = PUMP_CODES | {mdc.PUMP_PRESSURE.code}
#: protocol name fragments that say what a device is before it has sent a number
_PROTOCOL_HINTS = (("nibp", "nibp"), ("alaris", "pump"), ("pump", "pump"), ("masimo", "oximeter"),
                   ("nonin", "oximeter"), ("oxim", "oximeter"))  # fmt: skip

# the order of deadlines that fall at the same instant
_PAUSE_END, _ESCALATE, _TECHNICAL, _STALE, _RULE = range(5)


class Finding(Protocol):
    """What a note scanner finds (monitor.notes.Finding)."""

    @property
    def effect(self) -> str: ...

    @property
    def severity(self) -> str | None: ...

    @property
    def text(self) -> str: ...


NoteScanner = Callable[[str], Sequence[Finding]]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event the engine ignored, and why (kept for the log and the screen)."""

    ts: float
    event_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class LimitChange:
    ts: float
    rule: str
    old: float
    new: float
    author: str
    event_id: str


@dataclass(slots=True)
class _Alarm:
    id: str
    kind: str
    condition: str
    priority: str
    activated_at: float
    latching: bool
    message: str
    owner: tuple[str, str]  # ("rule", rule id) | ("technical", key) | ("stale", device) | ("clinical", "")
    device: str = ""
    value: float | None = None
    limit: float | None = None
    source_event: str = ""
    present: bool = True  # its condition is still there
    acknowledged: bool = False
    paused: bool = False
    escalated: bool = False
    last: AlarmTransition | None = None

    @property
    def state(self) -> str:
        if self.acknowledged:
            return "acknowledged"
        if self.paused:
            return "audio_paused"
        return "escalated" if self.escalated else "active"


@dataclass(slots=True)
class RuleState:
    """One physiological rule in one room: its condition (a Schmitt trigger) and its open alarm."""

    since: float | None = None  # condition true since (None: false)
    worst: float | None = None
    device: str = ""
    alarm_id: str | None = None


@dataclass(slots=True)
class TechnicalCondition:
    """A technical condition that is present now, pending its delay or alarmed."""

    condition: str  # e.g. "sensor_off:ox1"
    since: float
    priority: str
    delay_s: float
    device: str
    message: str
    sensor_problem: bool = False
    alarm_id: str | None = None


@dataclass(slots=True)
class DeviceState:
    name: str
    kind: str | None = None  # "oximeter" | "nibp" | "pump" | None (not known yet)
    online: bool = True
    conditions: frozenset[str] = frozenset()
    interval_s: float | None = None  # the cuff's cycle, from status details
    reports_spo2: bool = False
    #: while blind time runs, it is `now - blind_start`; while it stands still, it is `blind_held`
    blind_start: float | None = None
    blind_held: float = 0.0
    stale_alarm: str | None = None

    def blind_time(self, now: float) -> float:
        return now - self.blind_start if self.blind_start is not None else self.blind_held

    def reset_blind(self, now: float) -> None:
        self.blind_held = 0.0
        if self.blind_start is not None:
            self.blind_start = now

    def run_blind(self, running: bool, now: float) -> None:
        if running and self.blind_start is None:
            self.blind_start = now - self.blind_held
        elif not running and self.blind_start is not None:
            self.blind_held = now - self.blind_start
            self.blind_start = None


@dataclass
class RoomAlarms:
    """The alarm state of one room's session. Mutated in place by the engine; read by screens.

    `audio_paused_until` is the end of the running audio pause (for the countdown), None when none runs.
    """

    site: str
    room: str
    now: float | None = None
    audio_paused_until: float | None = None
    audio_pause_priority: str | None = None
    audio_paused_by: str = ""
    baselines: dict[int, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)  # rule id -> limit set by a limit change
    limit_changes: list[LimitChange] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    late_events: int = 0
    alarms: dict[str, _Alarm] = field(default_factory=dict)  # open (not cleared) alarms, by id
    rules: dict[str, RuleState] = field(default_factory=dict)
    technical: dict[str, TechnicalCondition] = field(default_factory=dict)
    devices: dict[str, DeviceState] = field(default_factory=dict)
    used_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True, order=True)
class _Deadline:
    ts: float
    order: int
    rank: int
    key: str
    what: str = field(compare=False)


class AlarmEngine:
    def __init__(self, profile: AlarmProfile, *, note_scanner: NoteScanner | None = None) -> None:
        self.profile = profile
        self._note_scanner = note_scanner
        self._rules = {rule.id: rule for rule in profile.rules}
        self._rules_by_code: dict[int, tuple[ThresholdRule, ...]] = {}
        for rule in profile.rules:
            self._rules_by_code[rule.code] = (*self._rules_by_code.get(rule.code, ()), rule)

    # --- public API ---------------------------------------------------------------------------------

    def new_room(self, site: str, room: str) -> RoomAlarms:
        """Fresh state for one room's session."""
        return RoomAlarms(site, room, rules={rule.id: RuleState() for rule in self.profile.rules})

    def step(self, state: RoomAlarms, event: Event) -> list[AlarmTransition]:
        """Advance to the event's time (firing earlier deadlines in time order), then apply the event."""
        ts = event.ts
        if state.now is not None and ts < state.now:
            state.late_events += 1
            ts = state.now
        out = self.advance(state, ts)
        if (event.site, event.room) != (state.site, state.room):
            self._reject(state, ts, getattr(event, "event_id", ""), f"event of {event.site}/{event.room}")
            return out
        if isinstance(event, Observation):
            self._observation(state, event, ts, out)
        elif isinstance(event, DeviceStatus):
            self._status(state, event, ts, out)
        else:
            self._clinical_event(state, event, ts, out)
        self._fire_due(state, ts, out)  # what the event made due at once (delay 0, deadlines now past)
        return out

    def advance(self, state: RoomAlarms, now: float) -> list[AlarmTransition]:
        """The clock: fire every deadline <= now, each at its own time. Never goes back in time."""
        out: list[AlarmTransition] = []
        if state.now is not None and now < state.now:
            return out
        self._fire_due(state, now, out)
        state.now = now
        return out

    def next_deadline(self, state: RoomAlarms) -> float | None:
        """When the next transition falls due if no event comes first (None: nothing pending)."""
        first = min(self._deadlines(state), default=None)
        return None if first is None else first.ts

    def active(self, state: RoomAlarms) -> list[AlarmTransition]:
        """The latest transition of every alarm not cleared: highest priority first, then escalated,
        active, audio paused, acknowledged, then the newest first."""
        return [alarm.last for alarm in self._ranked(state.alarms.values()) if alarm.last is not None]

    def set_baseline(self, state: RoomAlarms, code: int, value: float) -> None:
        """Set the baseline of `code` for baseline-relative rules; it applies from the next sample.

        Call it at a fixed point of the event sequence (e.g. on the session's start event) so that a
        replay calls it at the same point.
        """
        state.baselines[code] = float(value)

    def limit(self, state: RoomAlarms, rule_id: str) -> float | None:
        """The rule's absolute limit in this room now (None: a relative rule with no baseline yet)."""
        rule = self._rules[rule_id]
        limit = state.limits.get(rule.id, rule.limit)
        if not rule.relative_to_baseline:
            return limit
        baseline = state.baselines.get(rule.code)
        return None if baseline is None else baseline + limit

    # --- observations: physiological rules and data freshness ---------------------------------------

    def _observation(
        self, state: RoomAlarms, obs: Observation, ts: float, out: list[AlarmTransition]
    ) -> None:
        device = self._device(state, obs.device)
        if device.kind is None:
            device.kind = _kind_by_code(obs.code)
            device.run_blind(self._counting(device), ts)
        value = obs.value
        healthy = (
            obs.valid
            and value is not None
            and math.isfinite(value)
            and not (SENSOR_PROBLEMS & (set(obs.conditions) | device.conditions))
        )
        if obs.code == mdc.SPO2.code:
            device.reports_spo2 = True
        if _usable(device, obs.code, healthy):
            device.reset_blind(ts)
            self._check_stale(state, device, ts, out)
        if not healthy or value is None:
            return
        state.baselines.setdefault(obs.code, value)
        for rule in self._rules_by_code.get(obs.code, ()):
            self._evaluate(state, rule, value, obs.device, ts, out)

    def _evaluate(
        self,
        state: RoomAlarms,
        rule: ThresholdRule,
        value: float,
        device: str,
        ts: float,
        out: list[AlarmTransition],
    ) -> None:
        limit = self.limit(state, rule.id)
        if limit is None:
            return
        rs = state.rules[rule.id]
        alarm = state.alarms.get(rs.alarm_id) if rs.alarm_id else None
        if rs.since is not None:  # condition true: only a value back past the hysteresis ends it
            if rule.recovered(value, limit):
                rs.since, rs.worst = None, None
                if alarm is not None:
                    self._condition_gone(state, alarm, ts, out)
            else:
                rs.worst = value if rs.worst is None else rule.worse(rs.worst, value)
                if alarm is not None:
                    self._worsen(state, rule, alarm, value)
        elif rule.violated(value, limit):
            rs.since, rs.worst, rs.device = ts, value, device
            if alarm is not None:  # a latched alarm whose condition returns: current again
                alarm.present = True
                self._worsen(state, rule, alarm, value)
                self._emit(state, alarm, ts, out)

    def _worsen(self, state: RoomAlarms, rule: ThresholdRule, alarm: _Alarm, value: float) -> None:
        worst = value if alarm.value is None else rule.worse(alarm.value, value)
        if worst != alarm.value:
            alarm.value = worst
            alarm.message = self._rule_message(state, rule, worst, alarm.limit)

    def _rule_message(self, state: RoomAlarms, rule: ThresholdRule, value: float, limit: float | None) -> str:
        metric = rule.metric
        baseline = state.baselines.get(rule.code) if rule.relative_to_baseline else None
        return rule.message.format(
            label=metric.label,
            value=_number(value),
            unit=_display_unit(metric.unit),
            op=rule.op,
            limit=_number(limit),
            baseline=_number(baseline),
            delta=_number(state.limits.get(rule.id, rule.limit)),
        )

    def _activate_rule(
        self, state: RoomAlarms, rule: ThresholdRule, ts: float, out: list[AlarmTransition]
    ) -> None:
        rs = state.rules[rule.id]
        limit = self.limit(state, rule.id)
        assert rs.worst is not None
        alarm = self._raise(
            state,
            ts,
            out,
            kind="physiological",
            condition=rule.id,
            priority=rule.priority,
            latching=rule.latching,
            message=self._rule_message(state, rule, rs.worst, limit),
            owner=("rule", rule.id),
            device=rs.device,
            value=rs.worst,
            limit=limit,
        )
        rs.alarm_id = alarm.id

    # --- device status: technical conditions ----------------------------------------------------------

    def _status(self, state: RoomAlarms, status: DeviceStatus, ts: float, out: list[AlarmTransition]) -> None:
        device = self._device(state, status.device)
        if device.kind is None:
            device.kind = _kind_by_protocol(status.protocol)
        interval = status.details.get("interval_s")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            device.interval_s = float(interval)
        online = status.state != "offline"
        conditions = frozenset(status.conditions) if online else frozenset()
        was_online, old_conditions = device.online, device.conditions
        device.online, device.conditions = online, conditions
        if was_online != online:  # offline: its own alarm says so; back online: a fresh start
            device.run_blind(False, ts)
            device.blind_held = 0.0
        device.run_blind(self._counting(device), ts)
        offline_key = f"device_offline:{device.name}"
        if not online and offline_key not in state.technical:
            text = f"{device.name}: offline" + (f" ({status.reason})" if status.reason else "")
            self._technical_start(state, offline_key, "device_offline", device.name, text, ts)
        elif online and offline_key in state.technical:
            self._technical_end(state, offline_key, ts, out)
        for condition in sorted(old_conditions - conditions):
            self._technical_end(state, f"{condition}:{device.name}", ts, out)
        for condition in sorted(conditions - old_conditions):
            text = f"{device.name}: {condition_text(condition)}"
            self._technical_start(state, f"{condition}:{device.name}", condition, device.name, text, ts)
        self._check_stale(state, device, ts, out)

    def _technical_start(
        self, state: RoomAlarms, key: str, condition: str, device: str, text: str, ts: float
    ) -> None:
        policy = self.profile.technical.policy(condition)
        state.technical[key] = TechnicalCondition(
            key,
            ts,
            policy.priority,
            policy.delay_s,
            device,
            text,
            sensor_problem=condition in SENSOR_PROBLEMS,
        )

    def _technical_end(self, state: RoomAlarms, key: str, ts: float, out: list[AlarmTransition]) -> None:
        pending = state.technical.pop(key, None)
        if pending is not None and pending.alarm_id in state.alarms:
            self._condition_gone(state, state.alarms[pending.alarm_id], ts, out)

    def _activate_technical(self, state: RoomAlarms, key: str, ts: float, out: list[AlarmTransition]) -> None:
        pending = state.technical[key]
        alarm = self._raise(
            state,
            ts,
            out,
            kind="technical",
            condition=pending.condition,
            priority=pending.priority,
            latching=False,
            message=pending.message,
            owner=("technical", key),
            device=pending.device,
        )
        pending.alarm_id = alarm.id
        device = state.devices.get(pending.device)
        if pending.sensor_problem and device is not None:  # the cause is named: stale data stands down
            device.reset_blind(ts)
            self._check_stale(state, device, ts, out)

    # --- stale data -----------------------------------------------------------------------------------

    def _counting(self, device: DeviceState) -> bool:
        """Whether the device's blind time runs: a known kind, online, and (oximeter) no sensor problem."""
        if device.kind is None or not device.online:
            return False
        return not (device.kind == "oximeter" and SENSOR_PROBLEMS & device.conditions)

    def _stale_limit(self, device: DeviceState) -> float:
        stale = self.profile.stale
        if device.kind == "oximeter":
            return stale.oximeter_s
        if device.kind == "pump":
            return stale.pump_s
        return (device.interval_s or stale.nibp_default_interval_s) + stale.nibp_margin_s

    def _check_stale(
        self, state: RoomAlarms, device: DeviceState, ts: float, out: list[AlarmTransition]
    ) -> None:
        """Clear the device's stale alarm when its blind time fell under the limit."""
        if device.stale_alarm is None or device.blind_time(ts) >= self._stale_limit(device):
            return
        alarm = state.alarms.get(device.stale_alarm)
        device.stale_alarm = None
        if alarm is not None:
            self._condition_gone(state, alarm, ts, out)

    def _activate_stale(self, state: RoomAlarms, name: str, ts: float, out: list[AlarmTransition]) -> None:
        device = state.devices[name]
        limit = self._stale_limit(device)
        if device.kind == "oximeter":
            what = "valid SpO2" if device.reports_spo2 else "data"
            text = f"{name}: no {what} for {_number(limit)} s"
        elif device.kind == "pump":
            text = f"{name}: no data for {_number(limit)} s"
        else:
            interval = device.interval_s or self.profile.stale.nibp_default_interval_s
            cycle = _number(interval / 60)
            text = f"{name}: no blood pressure for {_number(limit / 60)} min (cycle {cycle} min)"
        alarm = self._raise(
            state,
            ts,
            out,
            kind="technical",
            condition=f"stale:{name}",
            priority=self.profile.stale.priority,
            latching=False,
            message=text,
            owner=("stale", name),
            device=name,
        )
        device.stale_alarm = alarm.id

    # --- clinical events ----------------------------------------------------------------------------

    def _clinical_event(
        self, state: RoomAlarms, event: ClinicalEvent, ts: float, out: list[AlarmTransition]
    ) -> None:
        if event.type == "alarm_ack":
            self._acknowledge(state, event, ts, out)
        elif event.type == "audio_pause":
            self._audio_pause(state, event, ts, out)
        elif event.type == "limit_change":
            self._limit_change(state, event, ts)
        elif event.type == "side_effect":
            if not event.effect:
                self._reject(state, ts, event.event_id, "side effect without an effect")
                return
            detail = f" — {event.text}" if event.text else ""
            self._raise_clinical(state, event, event.effect, event.severity or None, detail, ts, out)
        elif event.type == "note":
            self._note(state, event, ts, out)
        else:
            self._reject(state, ts, event.event_id, f"unknown clinical event type {event.type!r}")

    def _note(self, state: RoomAlarms, event: ClinicalEvent, ts: float, out: list[AlarmTransition]) -> None:
        if not event.text.strip():
            return
        scanner = self._note_scanner
        if scanner is None:
            try:
                from monitor.notes import find_side_effects
            except ImportError as exc:
                self._reject(state, ts, event.event_id, f"note not scanned: {exc}")
                return
            scanner = find_side_effects
        try:
            findings = list(scanner(event.text))
        except Exception as exc:  # a scanner bug must not stop the room's alarms
            self._reject(state, ts, event.event_id, f"note not scanned: {type(exc).__name__}: {exc}")
            return
        for finding in findings:
            quote = finding.text.strip()
            self._raise_clinical(
                state,
                event,
                finding.effect,
                finding.severity,
                f" — note: “{quote}”" if quote else "",
                ts,
                out,
            )

    def _raise_clinical(
        self,
        state: RoomAlarms,
        event: ClinicalEvent,
        effect: str,
        severity: str | None,
        detail: str,
        ts: float,
        out: list[AlarmTransition],
    ) -> None:
        clinical = self.profile.clinical
        priority = clinical.priority(effect, severity)
        condition = f"side_effect:{effect}"
        for alarm in state.alarms.values():
            if alarm.condition == condition and _RANK[alarm.priority] <= _RANK[priority]:
                self._reject(state, ts, event.event_id, f"{condition} already alerted as {alarm.id}")
                return
        known = severity if severity in dict(clinical.severity_priority) else None
        shown = known or f"severity not given, taken as {clinical.default_severity}"
        self._raise(
            state,
            ts,
            out,
            kind="clinical",
            condition=condition,
            priority=priority,
            latching=True,
            message=f"Side effect: {effect.replace('_', ' ')} ({shown}){detail}",
            owner=("clinical", ""),
            source_event=event.event_id,
        )

    def _acknowledge(
        self, state: RoomAlarms, event: ClinicalEvent, ts: float, out: list[AlarmTransition]
    ) -> None:
        if event.alarm_id:
            alarm = state.alarms.get(event.alarm_id)
            if alarm is None:
                self._reject(state, ts, event.event_id, f"acknowledge: no open alarm {event.alarm_id!r}")
                return
            if alarm.acknowledged:
                self._reject(state, ts, event.event_id, f"acknowledge: {alarm.id} already acknowledged")
                return
            targets = [alarm]
        else:
            targets = [a for a in self._ranked(state.alarms.values()) if not a.acknowledged]
        for alarm in targets:
            alarm.acknowledged, alarm.paused = True, False
            self._emit(state, alarm, ts, out, user=event.author)
            if alarm.kind == "clinical" or not alarm.present:
                self._clear(state, alarm, ts, out, user=event.author)

    def _audio_pause(
        self, state: RoomAlarms, event: ClinicalEvent, ts: float, out: list[AlarmTransition]
    ) -> None:
        ranked = self._ranked(state.alarms.values())
        to_pause = [a for a in ranked if not a.acknowledged and not a.paused]
        paused = [a for a in ranked if a.paused]
        if not to_pause and not paused:
            self._reject(state, ts, event.event_id, "audio pause: no alarm to pause")
            return
        state.audio_paused_until = ts + self.profile.audio_pause_s
        state.audio_paused_by = event.author
        for alarm in to_pause:
            alarm.paused = True
            self._emit(state, alarm, ts, out, user=event.author)
        levels = [a.priority for a in to_pause + paused]
        if state.audio_pause_priority is not None:
            levels.append(state.audio_pause_priority)
        state.audio_pause_priority = min(levels, key=_RANK.__getitem__)

    def _end_pause(self, state: RoomAlarms, ts: float, out: list[AlarmTransition]) -> None:
        state.audio_paused_until, state.audio_pause_priority, state.audio_paused_by = None, None, ""
        for alarm in self._ranked([a for a in state.alarms.values() if a.paused]):
            alarm.paused = False
            due = self._escalation_due(alarm)
            if due is not None and due <= ts:  # escalation waited for the pause
                alarm.escalated = True
            self._emit(state, alarm, ts, out)

    def _limit_change(self, state: RoomAlarms, event: ClinicalEvent, ts: float) -> None:
        rule = self._rules.get(event.rule)
        if rule is None:
            self._reject(state, ts, event.event_id, f"limit change: unknown rule {event.rule!r}")
            return
        if event.limit is None or not math.isfinite(event.limit):
            self._reject(state, ts, event.event_id, f"limit change: {event.rule} needs a finite limit")
            return
        old = state.limits.get(rule.id, rule.limit)
        state.limits[rule.id] = float(event.limit)
        state.limit_changes.append(
            LimitChange(ts, rule.id, old, float(event.limit), event.author, event.event_id)
        )

    # --- the life of an alarm -------------------------------------------------------------------------

    def _raise(
        self,
        state: RoomAlarms,
        ts: float,
        out: list[AlarmTransition],
        *,
        kind: str,
        condition: str,
        priority: str,
        latching: bool,
        message: str,
        owner: tuple[str, str],
        device: str = "",
        value: float | None = None,
        limit: float | None = None,
        source_event: str = "",
    ) -> _Alarm:
        alarm_id = f"{state.room}:{condition}:{round(ts * 1000)}"
        if alarm_id in state.used_ids:
            n = 2
            while f"{alarm_id}-{n}" in state.used_ids:
                n += 1
            alarm_id = f"{alarm_id}-{n}"
        state.used_ids.add(alarm_id)
        alarm = _Alarm(
            alarm_id,
            kind,
            condition,
            priority,
            ts,
            latching,
            message,
            owner,
            device,
            value,
            limit,
            source_event,
        )
        user = ""
        if state.audio_pause_priority is not None:
            if _RANK[priority] < _RANK[state.audio_pause_priority]:
                self._end_pause(state, ts, out)  # break-through: the pause ends for every alarm
            else:
                alarm.paused, user = True, state.audio_paused_by
        state.alarms[alarm_id] = alarm
        self._emit(state, alarm, ts, out, user=user)
        return alarm

    def _condition_gone(
        self, state: RoomAlarms, alarm: _Alarm, ts: float, out: list[AlarmTransition]
    ) -> None:
        alarm.present = False
        if alarm.acknowledged or not alarm.latching:
            self._clear(state, alarm, ts, out)
        else:
            self._emit(state, alarm, ts, out)  # latched: same state, latched=True

    def _clear(
        self, state: RoomAlarms, alarm: _Alarm, ts: float, out: list[AlarmTransition], user: str = ""
    ) -> None:
        del state.alarms[alarm.id]
        kind, key = alarm.owner
        if kind == "rule" and state.rules[key].alarm_id == alarm.id:
            state.rules[key].alarm_id = None
        elif kind == "technical" and key in state.technical and state.technical[key].alarm_id == alarm.id:
            state.technical[key].alarm_id = None
        elif kind == "stale" and state.devices[key].stale_alarm == alarm.id:
            state.devices[key].stale_alarm = None
        self._emit(state, alarm, ts, out, user=user, cleared=True)

    def _emit(
        self,
        state: RoomAlarms,
        alarm: _Alarm,
        ts: float,
        out: list[AlarmTransition],
        *,
        user: str = "",
        cleared: bool = False,
    ) -> None:
        transition = AlarmTransition(
            site=state.site,
            room=state.room,
            id=alarm.id,
            ts=ts,
            state="cleared" if cleared else alarm.state,
            priority=alarm.priority,
            kind=alarm.kind,
            condition=alarm.condition,
            message=alarm.message,
            value=alarm.value,
            limit=alarm.limit,
            device=alarm.device,
            user=user,
            source_event=alarm.source_event,
            latched=not cleared and alarm.latching and not alarm.present,
        )
        alarm.last = transition
        out.append(transition)

    def _escalation_due(self, alarm: _Alarm) -> float | None:
        if alarm.priority != "high" or alarm.acknowledged or alarm.escalated:
            return None
        return alarm.activated_at + self.profile.escalation_s

    # --- deadlines ----------------------------------------------------------------------------------

    def _deadlines(self, state: RoomAlarms) -> Iterator[_Deadline]:
        if state.audio_paused_until is not None:
            yield _Deadline(state.audio_paused_until, _PAUSE_END, 0, "", "pause")
        for alarm in state.alarms.values():
            due = self._escalation_due(alarm)
            if due is not None and not alarm.paused:
                yield _Deadline(due, _ESCALATE, _RANK[alarm.priority], alarm.id, "escalate")
        for key, pending in state.technical.items():
            if pending.alarm_id is None:
                yield _Deadline(
                    pending.since + pending.delay_s, _TECHNICAL, _RANK[pending.priority], key, "technical"
                )
        stale_rank = _RANK[self.profile.stale.priority]
        for name, device in state.devices.items():
            if device.stale_alarm is None and device.blind_start is not None:
                due = device.blind_start + self._stale_limit(device)
                yield _Deadline(due, _STALE, stale_rank, name, "stale")
        for rule_id, rs in state.rules.items():
            if rs.since is not None and rs.alarm_id is None:
                rule = self._rules[rule_id]
                yield _Deadline(rs.since + rule.delay_s, _RULE, _RANK[rule.priority], rule_id, "rule")

    def _fire_due(self, state: RoomAlarms, now: float, out: list[AlarmTransition]) -> None:
        for _ in range(100_000):  # every firing removes its own deadline; this only guards a bug
            due = min(self._deadlines(state), default=None)
            if due is None or due.ts > now:
                return
            # a deadline computed by an event later than it (a cuff cycle shortened) fires at the event
            ts = due.ts if state.now is None else max(due.ts, state.now)
            state.now = ts
            if due.what == "pause":
                self._end_pause(state, ts, out)
            elif due.what == "escalate":
                alarm = state.alarms[due.key]
                alarm.escalated = True
                self._emit(state, alarm, ts, out)
            elif due.what == "technical":
                self._activate_technical(state, due.key, ts, out)
            elif due.what == "stale":
                self._activate_stale(state, due.key, ts, out)
            else:
                self._activate_rule(state, self._rules[due.key], ts, out)
        raise RuntimeError("alarm engine: deadlines do not converge")

    # --- helpers ------------------------------------------------------------------------------------

    def _device(self, state: RoomAlarms, name: str) -> DeviceState:
        device = state.devices.get(name)
        if device is None:
            device = state.devices[name] = DeviceState(name)
        return device

    @staticmethod
    def _ranked(alarms: Iterable[_Alarm]) -> list[_Alarm]:
        return sorted(
            alarms,
            key=lambda a: (_RANK[a.priority], _STATE_ORDER[a.state], -a.activated_at, a.id),
        )

    def _reject(self, state: RoomAlarms, ts: float, event_id: str, reason: str) -> None:
        state.rejected.append(Rejected(ts, event_id, reason))


def _kind_by_code(code: int) -> str | None:
    if code in OXIMETER_CODES:
        return "oximeter"
    if code in NIBP_CODES:
        return "nibp"
    if code in PUMP_DEVICE_CODES:
        return "pump"
    return None


def _kind_by_protocol(protocol: str) -> str | None:
    name = protocol.lower()
    return next((kind for hint, kind in _PROTOCOL_HINTS if hint in name), None)


def _usable(device: DeviceState, code: int, healthy: bool) -> bool:
    """Whether this observation is the data whose absence makes the device stale."""
    if device.kind == "oximeter":
        return (code == mdc.SPO2.code and healthy) or not device.reports_spo2
    if device.kind == "nibp":
        return code == mdc.NIBP_SYS.code and healthy
    return device.kind == "pump"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _display_unit(ucum: str) -> str:
    return ucum.replace("[", "").replace("]", "")

"""Projections of the event stream into what a screen shows: pure functions, no Dash, no I/O.

`RoomState` folds observations and status changes of one room; `bedside_view(state, now)` turns it into
the text and states the bedside page renders. The same code serves live pages and (later) replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor import mdc
from monitor.conditions import SENSOR_PROBLEMS, condition_text
from monitor.downsample import minmax_indices
from monitor.model import AlarmTransition, ClinicalEvent, CommandReply, DeviceStatus, Observation

#: an oximeter reading older than this is not shown as current (it sends one a second)
STALE_AFTER_S = 10.0
TREND_WINDOW_S = 30 * 60
#: the cuff's cycle when its gateway has not said (the gateway's default)
DEFAULT_NIBP_INTERVAL_S = 300.0
#: a BP is overdue when older than its cycle plus this margin (a measurement itself takes up to ~2 min)
NIBP_OVERDUE_MARGIN_S = 120.0
#: pump readings older than this are not shown as current (it is polled every second)
PUMP_STALE_AFTER_S = 10.0

#: the notes and side effects a bedside page lists
MAX_CLINICAL_SHOWN = 50
#: IEC 60601-1-8: audio paused for at most 2 minutes (the engine's profile may choose less)
AUDIO_PAUSE_S = 120.0
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}

NIBP_CODES = frozenset({mdc.NIBP_SYS.code, mdc.NIBP_DIA.code, mdc.NIBP_MEAN.code, mdc.NIBP_CUFF.code})
PUMP_CODES = frozenset({mdc.INFUSION_RATE.code, mdc.VOLUME_INFUSED.code, mdc.VTBI_REMAINING.code})


@dataclass
class RoomState:
    site: str
    room: str
    latest: dict[int, Observation] = field(default_factory=dict)
    devices: dict[str, DeviceStatus] = field(default_factory=dict)
    replies: dict[str, CommandReply] = field(default_factory=dict)
    #: the latest transition of every alarm that is not cleared
    alarms: dict[str, AlarmTransition] = field(default_factory=dict)
    #: the session's notes and side-effect observations, newest last
    clinical: list[ClinicalEvent] = field(default_factory=list)
    #: event_id of a note or side effect -> the alerts it raised (condition -> priority)
    raised_by: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the patient's session: its start event, its doses and assessments; `ended` once it is over
    session: ClinicalEvent | None = None
    ended: ClinicalEvent | None = None
    doses: list[ClinicalEvent] = field(default_factory=list)
    assessments: list[ClinicalEvent] = field(default_factory=list)
    #: the session's alarm limit changes, oldest first (the core's engine applies the same ones)
    limit_changes: list[ClinicalEvent] = field(default_factory=list)

    def apply(
        self, event: Observation | DeviceStatus | CommandReply | AlarmTransition | ClinicalEvent
    ) -> None:
        if isinstance(event, AlarmTransition):
            if event.source_event:
                self.raised_by.setdefault(event.source_event, {})[event.condition] = event.priority
            if event.state == "cleared":
                self.alarms.pop(event.id, None)
            else:
                self.alarms[event.id] = event
        elif isinstance(event, ClinicalEvent):
            self._apply_clinical(event)
        elif isinstance(event, CommandReply):
            self.replies[event.device] = event
        elif isinstance(event, Observation):
            current = self.latest.get(event.code)
            if current is None or (event.ts, event.seq) >= (current.ts, current.seq):
                self.latest[event.code] = event
        else:
            current_status = self.devices.get(event.device)
            if current_status is None or event.ts >= current_status.ts:
                self.devices[event.device] = event

    def _apply_clinical(self, event: ClinicalEvent) -> None:
        if event.type == "session_start":
            if self.session is None or self.session.event_id != event.event_id:
                # a new patient: the screen starts afresh (the core starts their alarms afresh too)
                self.session, self.ended = event, None
                self.clinical, self.doses, self.assessments, self.limit_changes = [], [], [], []
                self.alarms, self.raised_by = {}, {}
            return
        if event.type == "session_end":
            self.ended = event
            return
        kept = {
            "dose": self.doses,
            "assessment": self.assessments,
            "note": self.clinical,
            "side_effect": self.clinical,
            "limit_change": self.limit_changes,
        }.get(event.type)
        if kept is not None and all(e.event_id != event.event_id for e in kept):
            kept.append(event)
            del kept[:-MAX_CLINICAL_SHOWN]


@dataclass(frozen=True, slots=True)
class NumericView:
    """One big number. `state` is "ok", or why none is shown: "no-data", "sensor", "offline", "invalid";
    "absent" when no device in the room measures it."""

    label: str
    unit: str
    text: str
    state: str


@dataclass(frozen=True, slots=True)
class BedsideView:
    room: str
    spo2: NumericView
    pulse: NumericView
    perfusion: NumericView
    device_state: str  # "online" | "offline" | "sensor" | "no-data" | "unknown"
    device_text: str
    conditions: tuple[str, ...]
    last_reading_text: str
    blood_pressure: BloodPressureView
    pump: PumpView
    devices: tuple[DeviceBadge, ...]


@dataclass(frozen=True, slots=True)
class BloodPressureView:
    """The last BP and how old it is. `state`: "ok", "overdue", "none" (never measured), "error"."""

    text: str  # "128/82"
    mean_text: str  # "(96)"
    age_text: str  # "measured 14:03, 3 min ago"
    state: str
    measuring: bool
    cuff_text: str  # "Cuff 145 mmHg" while inflating
    problem: str  # the module's last error, in words
    device: str | None  # the cuff's device name, to send "measure" to
    feedback: str = ""  # what became of the last "measure" request
    interval_min: int | None = None  # the cuff's automatic cycle, as its gateway reports it


@dataclass(frozen=True, slots=True)
class PumpView:
    """The infusion pump. `state`: "running", "stopped", "set", "alarm", "offline", "none"."""

    rate_text: str
    volume_text: str
    mode_text: str
    state: str
    alarms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeviceBadge:
    device: str
    state: str  # "online" | "offline"
    text: str


def _age_text(age_s: float) -> str:
    if age_s < 90:
        return f"{age_s:.0f} s ago"
    if age_s < 3600 * 2:
        return f"{age_s / 60:.0f} min ago"
    return f"{age_s / 3600:.1f} h ago"


def _device_by(state: RoomState, codes: frozenset[int], protocol_hint: str) -> str | None:
    """The device that reports these codes (or whose protocol says it is that kind of device)."""
    for code in codes:
        obs = state.latest.get(code)
        if obs is not None:
            return obs.device
    return next((d for d, s in state.devices.items() if protocol_hint in s.protocol), None)


def blood_pressure_view(state: RoomState, now: float) -> BloodPressureView:
    device = _device_by(state, NIBP_CODES, "nibp")
    status = state.devices.get(device) if device else None
    measuring = bool(status and status.mode == "measuring" and status.state == "online")
    cuff = state.latest.get(mdc.NIBP_CUFF.code)
    cuff_text = f"Cuff {cuff.value:.0f} mmHg" if measuring and cuff and cuff.value is not None else ""
    if measuring and not cuff_text:
        cuff_text = "Measuring..."
    problems = [c for c in (status.conditions if status else ()) if c.startswith("nibp_")]
    problem = ", ".join(condition_text(c) for c in problems)
    feedback = command_feedback(state, device, now)
    interval = DEFAULT_NIBP_INTERVAL_S
    reported = status.details.get("interval_s") if status is not None else None
    if isinstance(reported, int | float) and reported > 0:
        interval = float(reported)
    interval_min = round(interval / 60) if status is not None else None
    sys_obs, dia_obs = state.latest.get(mdc.NIBP_SYS.code), state.latest.get(mdc.NIBP_DIA.code)
    mean_obs = state.latest.get(mdc.NIBP_MEAN.code)
    if sys_obs is None or dia_obs is None or sys_obs.value is None or dia_obs.value is None:
        return BloodPressureView(
            "--/--",
            "",
            "not measured yet",
            "error" if problems else "none",
            measuring,
            cuff_text,
            problem,
            device,
            feedback,
            interval_min,
        )
    if not (sys_obs.valid and dia_obs.valid):
        return BloodPressureView(
            "--/--",
            "",
            f"last attempt {_age_text(max(0.0, now - sys_obs.ts))}",
            "error",
            measuring,
            cuff_text,
            problem,
            device,
            feedback,
            interval_min,
        )
    age = max(0.0, now - sys_obs.ts)
    overdue = age > interval + NIBP_OVERDUE_MARGIN_S
    mean_text = (
        f"({mean_obs.value:.0f})" if mean_obs and mean_obs.value is not None and mean_obs.valid else ""
    )
    age_text = f"measured {_clock_text(sys_obs.ts)}, {_age_text(age)}" + (" — OVERDUE" if overdue else "")
    return BloodPressureView(
        f"{sys_obs.value:.0f}/{dia_obs.value:.0f}",
        mean_text,
        age_text,
        "overdue" if overdue else ("error" if problems else "ok"),
        measuring,
        cuff_text,
        problem,
        device,
        feedback,
        interval_min,
    )


def pump_view(state: RoomState, now: float) -> PumpView:
    device = _device_by(state, PUMP_CODES, "alaris")
    if device is None:
        return PumpView("--", "--", "no pump", "none", ())
    status = state.devices.get(device)
    alarms = tuple(condition_text(c) for c in (status.conditions if status else ()) if c.startswith("pump_"))
    if status is not None and status.state == "offline":
        return PumpView("--", "--", "pump offline", "offline", alarms)
    rate, volume = state.latest.get(mdc.INFUSION_RATE.code), state.latest.get(mdc.VOLUME_INFUSED.code)
    fresh = rate is not None and now - rate.ts <= PUMP_STALE_AFTER_S
    rate_text = f"{rate.value:.2f}" if fresh and rate and rate.valid and rate.value is not None else "--"
    volume_text = (
        f"{volume.value:.1f}" if fresh and volume and volume.valid and volume.value is not None else "--"
    )
    mode = status.mode if status and status.mode else ""
    pump_state = "alarm" if alarms else (mode if mode in ("running", "stopped", "set") else "set")
    return PumpView(rate_text, volume_text, mode.upper() or "--", pump_state if fresh else "offline", alarms)


def device_badges(state: RoomState) -> tuple[DeviceBadge, ...]:
    badges = []
    for name, status in sorted(state.devices.items()):
        text = f"{name}: {status.state}" + (
            f" ({status.reason})" if status.state == "offline" and status.reason else ""
        )
        badges.append(DeviceBadge(name, status.state, text))
    return tuple(badges)


def _clock_text(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _device_for(state: RoomState, code: int) -> DeviceStatus | None:
    obs = state.latest.get(code)
    if obs is not None and obs.device in state.devices:
        return state.devices[obs.device]
    return next(iter(state.devices.values()), None) if len(state.devices) == 1 else None


def _numeric(state: RoomState, metric: mdc.Metric, now: float, digits: int = 0) -> NumericView:
    obs = state.latest.get(metric.code)
    device = _device_for(state, metric.code)
    blank = "--"
    if device is not None and device.state == "offline":
        return NumericView(metric.label, metric.unit, blank, "offline")
    if device is not None and SENSOR_PROBLEMS & set(device.conditions):
        return NumericView(metric.label, metric.unit, blank, "sensor")
    if obs is None or now - obs.ts > STALE_AFTER_S:
        return NumericView(metric.label, metric.unit, blank, "no-data")
    if SENSOR_PROBLEMS & set(obs.conditions):
        return NumericView(metric.label, metric.unit, blank, "sensor")
    if not obs.valid or obs.value is None:
        return NumericView(metric.label, metric.unit, blank, "invalid")
    return NumericView(metric.label, metric.unit, f"{obs.value:.{digits}f}", "ok")


def bedside_view(state: RoomState, now: float) -> BedsideView:
    spo2 = _numeric(state, mdc.SPO2, now)
    pulse = _numeric(state, mdc.PULSE_RATE, now)
    perfusion = _numeric(state, mdc.PERFUSION_INDEX, now, digits=2)
    if mdc.PERFUSION_INDEX.code not in state.latest:  # this oximeter does not report PI: show nothing
        perfusion = NumericView(perfusion.label, perfusion.unit, "--", "absent")
    newest = max(
        (o.ts for c, o in state.latest.items() if c in (mdc.SPO2.code, mdc.PULSE_RATE.code)), default=None
    )
    conditions = tuple(sorted({c for d in state.devices.values() for c in d.conditions}))
    device = _device_for(state, mdc.SPO2.code)
    if device is None:
        device_state, device_text = "unknown", "No device has reported"
    elif device.state == "offline":
        device_state = "offline"
        device_text = f"{device.device}: OFFLINE" + (f" ({device.reason})" if device.reason else "")
    elif SENSOR_PROBLEMS & set(device.conditions):
        device_state = "sensor"
        device_text = f"{device.device}: " + ", ".join(
            condition_text(c).upper() for c in device.conditions if c in SENSOR_PROBLEMS
        )
    elif spo2.state == "no-data":
        device_state, device_text = "no-data", f"{device.device}: NO DATA"
    else:
        device_state, device_text = "online", f"{device.device}: online"
    if newest is None:
        last = "No reading yet"
    else:
        age = max(0.0, now - newest)
        last = f"Last reading {_clock_text(newest)} ({age:.0f} s ago)"
    return BedsideView(
        state.room,
        spo2,
        pulse,
        perfusion,
        device_state,
        device_text,
        tuple(condition_text(c) for c in conditions),
        last,
        blood_pressure_view(state, now),
        pump_view(state, now),
        device_badges(state),
    )


@dataclass(frozen=True, slots=True)
class TrendPoints:
    """New points for the trend chart: x as local clock strings, y values (None draws a gap)."""

    spo2_x: list[str]
    spo2_y: list[float | None]
    pulse_x: list[str]
    pulse_y: list[float | None]

    def __bool__(self) -> bool:
        return bool(self.spo2_x or self.pulse_x)


def pleth_samples(observations: list[Observation], bucket: int = 1) -> tuple[list[float], list[int | None]]:
    """Times and values of the new pleth samples; a block from a sensor that is off draws a gap.

    Each sample is placed at its own time (the block's receipt, back by one sample period per sample), in
    seconds within the day to the 10 ms (a pixel of a 6 s sweep is more): the sweep is right whichever
    stream sends it (a page's stream restarts when its WebSocket reconnects), and short numbers keep the
    bytes to the browser low. With `bucket` > 1, each run of `bucket` samples is drawn by its lowest and its
    highest sample, in their order (min/max decimation keeps every peak and trough the eye looks for; a
    bucket of 5 sends 30 points a second instead of 75). The store keeps every sample.
    """
    xs: list[float] = []
    ys: list[int | None] = []
    for obs in observations:
        if obs.code == mdc.PLETH.code and obs.samples and obs.sample_rate:
            n = len(obs.samples)
            first = (obs.ts % 86400) - (n - 1) / obs.sample_rate
            kept = range(n) if bucket <= 1 else _min_max_of_buckets(obs.samples, bucket)
            xs.extend(round(first + i / obs.sample_rate, 2) for i in kept)
            if obs.valid:
                ys.extend(obs.samples[i] for i in kept)
            else:
                ys.extend([None] * len(kept))
    return xs, ys


def _min_max_of_buckets(samples: tuple[int, ...], bucket: int) -> list[int]:
    """Indices of the lowest and the highest sample of each run of `bucket` samples, in time order (both
    even when the run is flat, so a window of points stays a window of time)."""
    buckets = -(-len(samples) // bucket)
    x = np.arange(len(samples), dtype=np.float64)
    return minmax_indices(x, np.asarray(samples, dtype=np.float64), 2 * buckets).tolist()


def command_feedback(state: RoomState, device: str | None, now: float) -> str:
    """What became of the last command sent to a device (shown for a minute)."""
    reply = state.replies.get(device) if device else None
    if reply is None or now - reply.ts > 60:
        return ""
    what = reply.command.replace("_", " ")
    if reply.accepted:
        return f"{what}: accepted at {_clock_text(reply.ts)}"
    return f"{what}: refused: {reply.reason}"


def chart_time(ts: float) -> str:
    """Plotly draws naive local times; the clinic reads its own wall clock."""
    return datetime.fromtimestamp(ts).isoformat(timespec="milliseconds")


def trend_points(observations: list[Observation]) -> TrendPoints:
    out = TrendPoints([], [], [], [])
    for obs in observations:
        y = obs.value if obs.valid and not (SENSOR_PROBLEMS & set(obs.conditions)) else None
        if obs.code == mdc.SPO2.code:
            out.spo2_x.append(chart_time(obs.ts))
            out.spo2_y.append(y)
        elif obs.code == mdc.PULSE_RATE.code:
            out.pulse_x.append(chart_time(obs.ts))
            out.pulse_y.append(y)
    return out


@dataclass(frozen=True, slots=True)
class RoomCardView:
    """A room on the home page."""

    site: str
    room: str
    spo2: str
    pulse: str
    device_state: str
    device_text: str
    alarm_text: str = ""  # the room's worst alarm, for a glance from the corridor
    alarm_css: str = ""


def room_card_view(state: RoomState, now: float) -> RoomCardView:
    view = bedside_view(state, now)
    panel = alarm_panel_view(state, now)
    if panel.alarms:
        worst = panel.alarms[0]
        more = f" (+{len(panel.alarms) - 1})" if len(panel.alarms) > 1 else ""
        escalated = "ESCALATED: " if worst.state == "escalated" else ""
        return RoomCardView(
            state.site,
            state.room,
            view.spo2.text,
            view.pulse.text,
            view.device_state,
            view.device_text,
            f"{escalated}{worst.message}{more}",
            worst.css,
        )
    return RoomCardView(
        state.site, state.room, view.spo2.text, view.pulse.text, view.device_state, view.device_text
    )


@dataclass(frozen=True, slots=True)
class AlarmView:
    """One alarm on the bedside list. `css` carries priority and whether it flashes (IEC 60601-1-8:
    high red ~2 Hz, medium yellow slower, low steady); acknowledged and paused alarms do not flash."""

    id: str
    priority: str
    state: str
    kind: str
    message: str
    detail: str  # "value 86 %, limit 88 %" / "acknowledged by Ana at 14:03"
    since: str
    css: str
    can_acknowledge: bool


@dataclass(frozen=True, slots=True)
class AlarmPanelView:
    alarms: tuple[AlarmView, ...]
    sound: str | None  # the priority the browser should sound now, None for silence
    paused_text: str  # "Audio paused 1:37" while paused
    summary: str  # "2 alarms: 1 high, 1 medium"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".strip()


def alarm_panel_view(state: RoomState, now: float) -> AlarmPanelView:
    ranked = sorted(
        state.alarms.values(), key=lambda a: (PRIORITY_RANK.get(a.priority, 3), a.state != "escalated", -a.ts)
    )
    views = []
    for a in ranked:
        metric = mdc.BY_CODE.get(_code_of(a))
        unit = metric.unit.replace("mm[Hg]", "mmHg") if metric else ""
        if a.state in ("acknowledged",) and a.user:
            detail = f"acknowledged by {a.user} at {_clock_text(a.ts)}"
        elif a.value is not None:
            detail = f"value {_number(a.value, unit)}" + (
                f", limit {_number(a.limit, unit)}" if a.limit is not None else ""
            )
        else:
            detail = a.kind
        if a.latched:
            detail += " (condition over; latched until acknowledged)"
        flashing = a.state in ("active", "escalated")
        css = f"alarm prio-{a.priority} state-{a.state}" + (" flashing" if flashing else "")
        views.append(
            AlarmView(
                a.id,
                a.priority,
                a.state,
                a.kind,
                a.message,
                detail,
                _age_text(max(0.0, now - a.ts)),
                css,
                a.state != "acknowledged",
            )
        )
    sounding = [a for a in ranked if a.state in ("active", "escalated")]
    sound = sounding[0].priority if sounding else None
    paused = [a for a in ranked if a.state == "audio_paused"]
    paused_text = ""
    if paused:
        left = max(0.0, max(a.ts for a in paused) + AUDIO_PAUSE_S - now)
        paused_text = f"Audio paused {int(left) // 60}:{int(left) % 60:02d}"
    counts = {p: sum(a.priority == p for a in ranked) for p in PRIORITY_RANK}
    summary = (
        (
            f"{len(ranked)} alarm{'s' if len(ranked) != 1 else ''}: "
            + ", ".join(f"{n} {p}" for p, n in counts.items() if n)
        )
        if ranked
        else "No active alarms"
    )
    return AlarmPanelView(tuple(views), sound, paused_text, summary)


def _code_of(alarm: AlarmTransition) -> int:
    """The MDC code an alarm's message is about, to print its unit (rules are named after their code)."""
    text = alarm.condition.lower()
    for needle, metric in (
        ("spo2", mdc.SPO2),
        ("pulse", mdc.PULSE_RATE),
        ("sys", mdc.NIBP_SYS),
        ("dia", mdc.NIBP_DIA),
        ("mean", mdc.NIBP_MEAN),
    ):
        if needle in text:
            return metric.code
    return 0


@dataclass(frozen=True, slots=True)
class NoteView:
    """A note or side effect in the bedside list, with the words that raised an alert marked."""

    event_id: str
    time: str
    author: str
    parts: tuple[tuple[str, str | None], ...]  # (text, effect that this text raised or None)
    raised: str  # "raised: nausea (medium)" / ""


def notes_view(state: RoomState) -> tuple[NoteView, ...]:
    from monitor.notes import highlight_spans

    out = []
    for event in reversed(state.clinical):
        if event.type == "side_effect":
            label = event.effect.replace("_", " ")
            parts: tuple[tuple[str, str | None], ...] = ((f"{event.severity} {label}", event.effect),)
            if event.text:
                parts += ((f": {event.text}", None),)
        else:
            pieces: list[tuple[str, str | None]] = []
            cursor = 0
            for start, end, effect in highlight_spans(event.text):
                if start > cursor:
                    pieces.append((event.text[cursor:start], None))
                pieces.append((event.text[start:end], effect))
                cursor = end
            if cursor < len(event.text):
                pieces.append((event.text[cursor:], None))
            parts = tuple(pieces)
        raised = ", ".join(
            f"{condition.removeprefix('side_effect:').replace('_', ' ')} ({priority})"
            for condition, priority in state.raised_by.get(event.event_id, {}).items()
        )
        out.append(
            NoteView(
                event.event_id,
                _clock_text(event.ts),
                event.author,
                parts,
                f"raised: {raised}" if raised else "",
            )
        )
    return tuple(out)

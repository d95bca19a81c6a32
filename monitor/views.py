"""Projections of the event stream into what a screen shows: pure functions, no Dash, no I/O.

`RoomState` folds observations and status changes of one room; `bedside_view(state, now)` turns it into
the text and states the bedside page renders. The same code serves live pages and (later) replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor import mdc
from monitor.conditions import SENSOR_PROBLEMS, condition_text
from monitor.model import DeviceStatus, Observation

#: an oximeter reading older than this is not shown as current (it sends one a second)
STALE_AFTER_S = 10.0
TREND_WINDOW_S = 30 * 60


@dataclass
class RoomState:
    site: str
    room: str
    latest: dict[int, Observation] = field(default_factory=dict)
    devices: dict[str, DeviceStatus] = field(default_factory=dict)

    def apply(self, event: Observation | DeviceStatus) -> None:
        if isinstance(event, Observation):
            current = self.latest.get(event.code)
            if current is None or (event.ts, event.seq) >= (current.ts, current.seq):
                self.latest[event.code] = event
        else:
            current_status = self.devices.get(event.device)
            if current_status is None or event.ts >= current_status.ts:
                self.devices[event.device] = event


@dataclass(frozen=True, slots=True)
class NumericView:
    """One big number. `state` is "ok", or why none is shown: "no-data", "sensor", "offline", "invalid"."""

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
    newest = max((o.ts for o in state.latest.values()), default=None)
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


def room_card_view(state: RoomState, now: float) -> RoomCardView:
    view = bedside_view(state, now)
    return RoomCardView(
        state.site, state.room, view.spo2.text, view.pulse.text, view.device_state, view.device_text
    )

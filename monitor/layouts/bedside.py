"""The bedside page of one room: large numbers, device state, and a live 30-minute trend.

The layout is built from a `BedsideView`; one persistent WebSocket callback per open page pushes only what
changed (text of a number, a state class) and extends the trend with only the new points.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import dash_mantine_components as dmc
import plotly.graph_objects as go
from dash import dcc, html, set_props
from dash.backends.ws import DashWebsocketCallback
from plotly.utils import PlotlyJSONEncoder

from monitor import mdc, session_view
from monitor.alarm_profile import AlarmProfile
from monitor.clock import Clock
from monitor.layouts import alarm_panel, clinical, limits, session_panel, timeline
from monitor.limits_view import limit_rows
from monitor.live import LiveHub
from monitor.model import Observation
from monitor.room_reads import IncrementalReads, RoomReads
from monitor.store import EventLog
from monitor.views import (
    TREND_WINDOW_S,
    BedsideView,
    NoteView,
    NumericView,
    RoomState,
    alarm_panel_view,
    bedside_view,
    blood_pressure_view,
    notes_view,
    pleth_samples,
    trend_points,
)

#: points kept per trace: 30 minutes at one reading a second, plus slack
MAX_TREND_POINTS = TREND_WINDOW_S + 120
#: the pleth is drawn from the lowest and highest of each 5 samples (30 points a second; views.pleth_samples)
PLETH_BUCKET = 5
#: the pleth sweep: 6 s
PLETH_POINTS = 6 * 75 * 2 // PLETH_BUCKET
#: the session timeline is redrawn when its events change, and at least this often (its vitals move)
TIMELINE_EVERY_S = 15.0
TIMELINE_AHEAD_S = 30 * 60.0
TIMELINE_VITALS = (mdc.SPO2.code, mdc.PULSE_RATE.code, mdc.NIBP_SYS.code, mdc.NIBP_DIA.code)
#: the cuff cycles a nurse can choose (the module takes 1-60 min)
BP_INTERVALS_MIN = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60)

NOTE_FOR_STATE = {
    "ok": "",
    "no-data": "NO DATA",
    "offline": "DEVICE OFFLINE",
    "sensor": "SENSOR OFF",
    "invalid": "NO VALUE",
}


def _numeric_block(key: str, view: NumericView) -> html.Div:
    return html.Div(
        id=f"{key}-block",
        className=f"numeric {key} state-{view.state}",
        children=[
            html.Div(
                [
                    html.Span(view.label, className="numeric-label"),
                    html.Span(view.unit, className="numeric-unit"),
                ]
            ),
            html.Div(view.text, id=f"{key}-value", className="numeric-value"),
            html.Div(NOTE_FOR_STATE.get(view.state, ""), id=f"{key}-note", className="numeric-note"),
        ],
    )


def _trend_figure(observations: list[Observation]) -> go.Figure:
    points = trend_points(observations)
    fig = go.Figure()
    fig.add_scatter(
        x=points.spo2_x,
        y=points.spo2_y,
        name="SpO2 %",
        mode="lines",
        line={"color": "#22d3ee", "width": 2},
        connectgaps=False,
    )
    fig.add_scatter(
        x=points.pulse_x,
        y=points.pulse_y,
        name="Pulse /min",
        mode="lines",
        yaxis="y2",
        line={"color": "#4ade80", "width": 2},
        connectgaps=False,
    )
    fig.update_layout(
        template="plotly_dark",
        paper_bgcolor="#111820",
        plot_bgcolor="#111820",
        height=320,
        margin={"l": 50, "r": 50, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12},
        uirevision="trend",
        xaxis={"type": "date", "title": None},
        yaxis={"title": "SpO2 %", "range": [70, 101], "dtick": 5, "color": "#22d3ee"},
        yaxis2={
            "title": "Pulse /min",
            "range": [30, 180],
            "dtick": 30,
            "overlaying": "y",
            "side": "right",
            "color": "#4ade80",
            "showgrid": False,
        },
    )
    return fig


def _pleth_figure(xs: list[float] | None = None, ys: list[int | None] | None = None) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(
        x=xs or [],
        y=ys or [],
        mode="lines",
        line={"color": "#22d3ee", "width": 2, "simplify": False},
        connectgaps=False,
        hoverinfo="skip",
    )
    fig.update_layout(
        template="plotly_dark",
        paper_bgcolor="#111820",
        plot_bgcolor="#111820",
        height=130,
        margin={"l": 10, "r": 10, "t": 24, "b": 10},
        showlegend=False,
        uirevision="pleth",
        title={"text": "Pleth", "font": {"size": 14, "color": "#94a3b8"}, "x": 0.01},
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


def _blood_pressure_block(view: BedsideView) -> html.Div:
    bp = view.blood_pressure
    return html.Div(
        id="bp-block",
        className=f"numeric bp state-{bp.state}",
        children=[
            html.Div(
                [html.Span("NIBP", className="numeric-label"), html.Span("mmHg", className="numeric-unit")]
            ),
            html.Div(
                [
                    html.Span(bp.text, id="bp-value", className="numeric-value"),
                    html.Span(bp.mean_text, id="bp-mean", className="bp-mean"),
                ]
            ),
            html.Div(bp.age_text, id="bp-age", className="bp-age"),
            html.Div(bp.cuff_text or bp.problem, id="bp-note", className="numeric-note"),
            dmc.Group(
                [
                    dmc.Select(
                        id="bp-interval",
                        data=[{"value": str(m), "label": f"every {m} min"} for m in BP_INTERVALS_MIN],
                        value=str(bp.interval_min) if bp.interval_min else None,
                        disabled=bp.device is None,
                        allowDeselect=False,
                        w=150,
                        size="md",
                        comboboxProps={"withinPortal": True},
                    ),
                    dmc.Button(
                        "Measure BP now",
                        id="measure-bp",
                        color="cyan",
                        variant="filled",
                        size="md",
                        disabled=bp.device is None or bp.measuring,
                    ),
                    html.Span("", id="measure-feedback", className="measure-feedback"),
                ],
                mt="xs",
            ),
        ],
    )


def _pump_block(view: BedsideView) -> html.Div:
    pump = view.pump
    return html.Div(
        id="pump-block",
        className=f"numeric pump state-{pump.state}",
        children=[
            html.Div(
                [
                    html.Span("Infusion", className="numeric-label"),
                    html.Span(pump.mode_text, id="pump-mode", className="pump-mode"),
                ]
            ),
            html.Div(
                [
                    html.Span(pump.rate_text, id="pump-rate", className="pump-value"),
                    html.Span("mL/h", className="numeric-unit"),
                ]
            ),
            html.Div(
                [
                    html.Span(pump.volume_text, id="pump-volume", className="pump-value small"),
                    html.Span("mL infused", className="numeric-unit"),
                ]
            ),
            html.Div(" · ".join(pump.alarms), id="pump-alarms", className="numeric-note"),
        ],
    )


def _view_props(view: BedsideView) -> dict[str, dict[str, Any]]:
    """Every prop the page shows, keyed by component id: what the stream compares and pushes."""
    props: dict[str, dict[str, Any]] = {}
    bp, pump = view.blood_pressure, view.pump
    props["bp-value"] = {"children": bp.text}
    props["bp-mean"] = {"children": bp.mean_text}
    props["bp-age"] = {"children": bp.age_text}
    props["bp-note"] = {"children": bp.cuff_text or bp.problem}
    props["bp-block"] = {"className": f"numeric bp state-{bp.state}" + (" measuring" if bp.measuring else "")}
    props["measure-bp"] = {"disabled": bp.device is None or bp.measuring}
    props["measure-feedback"] = {"children": bp.feedback}
    props["bp-interval"] = {
        "value": str(bp.interval_min) if bp.interval_min else None,
        "disabled": bp.device is None,
    }
    props["pump-rate"] = {"children": pump.rate_text}
    props["pump-volume"] = {"children": pump.volume_text}
    props["pump-mode"] = {"children": pump.mode_text}
    props["pump-alarms"] = {"children": " · ".join(pump.alarms)}
    props["pump-block"] = {"className": f"numeric pump state-{pump.state}"}
    props["devices"] = {
        "children": [html.Span(b.text, className=f"device-badge state-{b.state}") for b in view.devices]
    }
    for key, numeric in (("spo2", view.spo2), ("pulse", view.pulse), ("pi", view.perfusion)):
        props[f"{key}-value"] = {"children": numeric.text}
        props[f"{key}-note"] = {"children": NOTE_FOR_STATE.get(numeric.state, "")}
        props[f"{key}-block"] = {"className": f"numeric {key} state-{numeric.state}"}
    props["device-state"] = {
        "children": view.device_text,
        "className": f"device-state state-{view.device_state}",
    }
    props["last-reading"] = {"children": view.last_reading_text}
    props["conditions"] = {"children": " · ".join(view.conditions)}
    return props


def layout(state: RoomState, store: EventLog, clock: Clock, profile: AlarmProfile | None = None) -> html.Div:
    """The page as it stands now; with the clinic's alarm `profile`, the session's limits too (live only)."""
    now = clock.now()
    view = bedside_view(state, now)
    history = store.observations(
        state.site, state.room, since=now - TREND_WINDOW_S, codes=(mdc.SPO2.code, mdc.PULSE_RATE.code)
    )
    props = _view_props(view)
    return html.Div(
        [
            dmc.Group(
                [dmc.Title(f"Room {state.room}", order=2), html.A("All rooms", href="/")],
                justify="space-between",
            ),
            html.Div(
                className="device-line",
                children=[
                    html.Span(id="device-state", **props["device-state"]),
                    html.Span(id="last-reading", className="last-reading", **props["last-reading"]),
                ],
            ),
            html.Div(id="conditions", className="conditions", **props["conditions"]),
            html.Div(id="devices", className="devices", **props["devices"]),
            alarm_panel.panel(alarm_panel_view(state, now)),
            *([limits.section(limit_rows(profile, state.limit_changes))] if profile else []),
            _session_area(state, store, now),
            html.Div(
                className="numerics",
                children=[
                    _numeric_block("spo2", view.spo2),
                    _numeric_block("pulse", view.pulse),
                    _blood_pressure_block(view),
                ],
            ),
            dcc.Graph(
                id="pleth",
                figure=_pleth_figure(),
                config={"displayModeBar": False, "staticPlot": True},
                className="pleth",
            ),
            html.Div(
                className="numerics", children=[_pump_block(view), _numeric_block("pi", view.perfusion)]
            ),
            dcc.Graph(
                id="trend",
                figure=_trend_figure(history),
                config={"displaylogo": False},
                style={"marginTop": "16px"},
            ),
            dcc.Graph(
                id="timeline",
                figure=_timeline(state, store, now),
                config={"displaylogo": False},
                style={"marginTop": "16px", "display": "block" if _has_session(state) else "none"},
            ),
            dcc.Store(id="pending-dose"),
            dcc.Store(id="amend-target"),
            clinical.entry(),
            html.Div(clinical.note_items(notes_view(state)), id="notes", className="notes"),
        ]
    )


def _has_session(state: RoomState) -> bool:
    return state.session is not None and state.ended is None


def _pump_stream(state: RoomState, store: RoomReads) -> list[Observation]:
    if state.session is None:
        return []
    return store.observations(state.site, state.room, since=state.session.ts, codes=session_view.PUMP_CODES)


def _session_props(state: RoomState, store: RoomReads, now: float) -> dict[str, dict[str, Any]]:
    pump = _pump_stream(state, store)
    view = session_view.session_view(state, pump, now)
    baseline = ""
    if view.active and state.session is not None:
        vitals = store.observations(state.site, state.room, since=state.session.ts, codes=TIMELINE_VITALS)
        baseline = session_view.baseline_text(state, pump, vitals)
    due = [html.Span(f"{d.label}: {d.state.upper()}", className=f"due due-{d.state}") for d in view.due]
    return {
        "session-start": {"style": {"display": "none" if view.active else "block"}},
        "session-running": {"style": {"display": "block" if view.active else "none"}},
        "session-who": {"children": view.who},
        "session-dose": {"children": view.dose_text},
        "session-concentration": {"children": view.concentration_text},
        "session-baseline": {"children": baseline},
        "dose-list": {"children": session_panel.dose_list(session_view.dose_rows(state, pump))},
        "assessments-due": {"children": due or [html.Span("No assessment due", className="due")]},
        "timeline": {"style": {"marginTop": "16px", "display": "block" if view.active else "none"}},
    }


def _session_area(state: RoomState, store: EventLog, now: float) -> html.Div:
    props = _session_props(state, store, now)
    start, running = session_panel.start_form(), session_panel.running("", "", "")
    start.style, running.style = props["session-start"]["style"], props["session-running"]["style"]
    # the discharge check stays in view when the session ends and its panel closes
    return html.Div(
        [start, running, html.Div(id="discharge-check", className="discharge-check")], id="session-area"
    )


def _timeline(state: RoomState, store: RoomReads, now: float) -> dict:  # type: ignore[type-arg]
    """The session's timeline, from the store (vitals, pump) and the room's session events."""
    if state.session is None:
        return {}
    start = state.session.ts
    # a running session's estimate looks 30 min ahead: where the concentration is heading matters
    end = state.ended.ts if state.ended else now + TIMELINE_AHEAD_S
    vitals = store.observations(state.site, state.room, since=start, codes=TIMELINE_VITALS)
    doses = session_view.session_doses(state, _pump_stream(state, store))
    kg = session_view.weight(state.session)
    curves = {m: session_view.concentration(doses, kg, start, end, m) for m in ("clements", "domino")}
    alarms = store.alarms(state.site, state.room)
    return timeline.figure(
        vitals, doses, curves, state.clinical, state.assessments, [a for a in alarms if a.ts >= start]
    )


def _timeline_signature(state: RoomState) -> tuple[object, ...]:
    return (
        state.session.event_id if state.session else None,
        state.ended is not None,
        len(state.doses),
        len(state.clinical),
        len(state.assessments),
        len(state.alarms),
    )


def send_measure(hub: LiveHub, clock: Clock, page: dict[str, str] | None) -> str:
    """The "Measure BP now" button: ask the room's cuff for a measurement now."""
    if not page or page.get("page") != "bedside":
        return ""
    state = hub.room_state((page["site"], page["room"]))
    device = blood_pressure_view(state, clock.now()).device if state else None
    if device is None:
        return "no blood-pressure cuff in this room"
    hub.send_command(page["site"], page["room"], device, "measure", requested_by="bedside")
    return "measurement requested..."


def send_interval(hub: LiveHub, clock: Clock, page: dict[str, str] | None, minutes: str | None) -> str | None:
    """The cycle selector: change the room's automatic BP interval (the gateway owns the cycle).

    Returns None when there is nothing to say: the selector also changes when the screen shows the cycle
    the gateway reports, and that echo must neither send a command nor blank the feedback line."""
    if not page or page.get("page") != "bedside" or not minutes:
        return None
    state = hub.room_state((page["site"], page["room"]))
    bp = blood_pressure_view(state, clock.now()) if state else None
    if bp is None or bp.device is None or bp.interval_min == int(minutes):
        return None
    hub.send_command(
        page["site"],
        page["room"],
        bp.device,
        "set_interval",
        {"minutes": int(minutes)},
        requested_by="bedside",
    )
    return f"changing the cycle to every {minutes} min..."


def _push_changed(props: dict[str, dict[str, Any]], shown: dict[str, str]) -> None:
    """Push the props that differ from what the page shows. They are compared as JSON: Dash components
    compare by identity, so a re-rendered list of the same badges would otherwise be resent every time."""
    for component_id, values in props.items():
        seen = json.dumps(values, cls=PlotlyJSONEncoder, sort_keys=True)
        if shown.get(component_id) != seen:
            set_props(component_id, values)
            shown[component_id] = seen


async def stream(
    ws: DashWebsocketCallback,
    hub: LiveHub,
    store: EventLog,
    clock: Clock,
    room: dict[str, str],
    profile: AlarmProfile | None = None,
) -> None:
    """Push changed numbers and new trend points for one room until the page goes away."""
    key = (room["site"], room["room"])
    sub = hub.subscribe(key)
    shown: dict[str, str] = {}
    shown_notes: tuple[NoteView, ...] | None = None
    pleth_started = False
    timeline_shown: tuple[object, ...] | None = None
    timeline_at = clock.now()
    # the session panel and timeline read hours of pump and vitals readings: each row once per page
    reads = IncrementalReads(store, compact_codes=session_view.PUMP_CODES)
    try:
        while not ws.is_shutdown:
            batch = await sub.next_batch(timeout=1.0)
            state = hub.room_state(key)
            if state is None:
                continue
            now = clock.now()
            page_props = _view_props(bedside_view(state, now)) | alarm_panel.props(
                alarm_panel_view(state, now)
            )
            _push_changed(page_props, shown)
            session_props = await asyncio.to_thread(_session_props, state, reads, now)
            _push_changed(session_props, shown)
            if profile is not None:
                _push_changed(limits.props(limit_rows(profile, state.limit_changes)), shown)
            signature = _timeline_signature(state)
            if state.session is not None and (
                signature != timeline_shown or now - timeline_at > TIMELINE_EVERY_S
            ):
                set_props("timeline", {"figure": await asyncio.to_thread(_timeline, state, reads, now)})
                timeline_shown, timeline_at = signature, now
            notes = notes_view(state)
            if notes != shown_notes:
                set_props("notes", {"children": clinical.note_items(notes)})
                shown_notes = notes
            observations = [e for e in batch if isinstance(e, Observation)]
            xs, samples = pleth_samples(observations, PLETH_BUCKET)
            if samples and not pleth_started:
                # the first block as a figure: an extendData that reaches a graph still initialising is
                # applied twice (seen in Chromium with Dash 4.4), which drew a line back across the sweep
                set_props("pleth", {"figure": _pleth_figure(xs, samples).to_plotly_json()})
                pleth_started = True
            elif samples:
                set_props("pleth", {"extendData": [{"x": [xs], "y": [samples]}, [0], PLETH_POINTS]})
            points = trend_points(observations)
            if points:
                set_props(
                    "trend",
                    {
                        "extendData": [
                            {"x": [points.spo2_x, points.pulse_x], "y": [points.spo2_y, points.pulse_y]},
                            [0, 1],
                            MAX_TREND_POINTS,
                        ]
                    },
                )
    finally:
        hub.unsubscribe(sub)

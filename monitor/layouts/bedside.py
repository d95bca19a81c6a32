"""The bedside page of one room: large numbers, device state, and a live 30-minute trend.

The layout is built from a `BedsideView`; one persistent WebSocket callback per open page pushes only what
changed (text of a number, a state class) and extends the trend with only the new points.
"""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
import plotly.graph_objects as go
from dash import dcc, html, set_props
from dash.backends.ws import DashWebsocketCallback

from monitor import mdc
from monitor.clock import Clock
from monitor.live import LiveHub
from monitor.model import Observation
from monitor.store import EventLog
from monitor.views import TREND_WINDOW_S, BedsideView, NumericView, RoomState, bedside_view, trend_points

#: points kept per trace: 30 minutes at one reading a second, plus slack
MAX_TREND_POINTS = TREND_WINDOW_S + 120

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


def _view_props(view: BedsideView) -> dict[str, dict[str, Any]]:
    """Every prop the page shows, keyed by component id: what the stream compares and pushes."""
    props: dict[str, dict[str, Any]] = {}
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


def layout(state: RoomState, store: EventLog, clock: Clock) -> html.Div:
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
            html.Div(
                className="numerics",
                children=[
                    _numeric_block("spo2", view.spo2),
                    _numeric_block("pulse", view.pulse),
                    _numeric_block("pi", view.perfusion),
                ],
            ),
            dcc.Graph(
                id="trend",
                figure=_trend_figure(history),
                config={"displaylogo": False},
                style={"marginTop": "16px"},
            ),
        ]
    )


async def stream(ws: DashWebsocketCallback, hub: LiveHub, clock: Clock, room: dict[str, str]) -> None:
    """Push changed numbers and new trend points for one room until the page goes away."""
    key = (room["site"], room["room"])
    sub = hub.subscribe(key)
    shown: dict[str, dict[str, Any]] = {}
    try:
        while not ws.is_shutdown:
            batch = await sub.next_batch(timeout=1.0)
            state = hub.room_state(key)
            if state is None:
                continue
            for component_id, values in _view_props(bedside_view(state, clock.now())).items():
                if shown.get(component_id) != values:
                    set_props(component_id, values)
                    shown[component_id] = values
            points = trend_points([e for e in batch if isinstance(e, Observation)])
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

"""The bedside alarm list: ranked by priority, flashing as IEC 60601-1-8 asks, each with the value and
limit that raised it, Acknowledge per alarm or all, Pause audio with its countdown, and sound in the
browser once the nurse has enabled it (browsers only play sound after a user gesture)."""

from __future__ import annotations

import dash_mantine_components as dmc
from dash import dcc, html

from monitor.views import AlarmPanelView, AlarmView


def alarm_rows(panel: AlarmPanelView) -> list[html.Div]:
    """The rows; none when there is no alarm (the summary line already says so)."""
    return [_row(a) for a in panel.alarms]


def _row(alarm: AlarmView) -> html.Div:
    return html.Div(
        className=alarm.css,
        **{"data-alarm": alarm.id},
        children=[
            html.Span(alarm.priority.upper(), className="alarm-priority"),
            html.Div(
                [
                    html.Div(alarm.message, className="alarm-message"),
                    html.Div(f"{alarm.detail} · {alarm.since}", className="alarm-detail"),
                ],
                className="alarm-text",
            ),
            html.Span(alarm.state.replace("_", " "), className="alarm-state"),
            dmc.Button(
                "Acknowledge",
                id={"type": "ack-alarm", "alarm": alarm.id},
                size="sm",
                color="gray",
                variant="outline",
                disabled=not alarm.can_acknowledge,
            ),
        ],
    )


def panel(view: AlarmPanelView) -> html.Div:
    return html.Div(
        id="alarm-panel",
        className="alarm-panel",
        children=[
            html.Div(
                className="alarm-bar",
                children=[
                    html.Span(view.summary, id="alarm-summary", className="alarm-summary"),
                    html.Span(view.paused_text, id="audio-paused", className="audio-paused"),
                    dmc.Group(
                        [
                            dmc.Button("Acknowledge all", id="ack-all", color="gray", size="sm"),
                            dmc.Button(
                                "Pause audio 2:00",
                                id="pause-audio",
                                color="yellow",
                                size="sm",
                                variant="outline",
                            ),
                            dmc.Button(
                                "Enable sound", id="enable-sound", color="cyan", size="sm", variant="light"
                            ),
                        ],
                        gap="xs",
                    ),
                ],
            ),
            html.Div(alarm_rows(view), id="alarm-list"),
            dcc.Store(id="alarm-sound", data=view.sound),
            html.Span("", id="sound-state", className="sound-state"),
        ],
    )


def props(view: AlarmPanelView) -> dict[str, dict[str, object]]:
    return {
        "alarm-list": {"children": alarm_rows(view)},
        "alarm-summary": {"children": view.summary},
        "audio-paused": {"children": view.paused_text},
        "alarm-sound": {"data": view.sound},
    }

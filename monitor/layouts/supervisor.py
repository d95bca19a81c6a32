"""`/supervisor`: every room at a glance, worst first, one consolidated push a second for the whole wall."""

from __future__ import annotations

import asyncio

import dash_mantine_components as dmc
from dash import dcc, html, set_props
from dash.backends.ws import DashWebsocketCallback

from monitor.clock import Clock
from monitor.live import LiveHub
from monitor.supervisor_view import TileView, wall

WALL_EVERY_S = 1.0


def tiles(views: list[TileView]) -> list[html.Div] | dmc.Text:
    if not views:
        return dmc.Text("Nothing to show: every room is quiet.", c="dimmed")
    return [
        html.Div(
            className=v.css,
            **{"data-room": v.room},
            children=[
                html.Div(
                    [
                        html.A(v.room, href=f"/room/{v.room}", className="tile-room"),
                        html.Span(v.patient, className="tile-patient"),
                    ],
                    className="tile-head",
                ),
                html.Div(
                    [
                        html.Span(["SpO2 ", html.B(v.spo2)], className="tile-spo2"),
                        html.Span(["PR ", html.B(v.pulse)], className="tile-pulse"),
                    ],
                    className="tile-values",
                ),
                html.Div(f"BP {v.bp}", className="tile-line"),
                html.Div(v.infusion, className="tile-line") if v.infusion else None,
                html.Div(v.link, className=f"tile-link {'bad' if v.rank == 'link' else ''}"),
                html.Div(
                    [
                        html.Span(v.alarm, className="tile-alarm"),
                        dmc.Button(
                            "Acknowledge",
                            id={"type": "tile-ack", "room": v.room, "site": v.site, "alarm": v.alarm_id},
                            size="xs",
                            color="gray",
                        ),
                    ],
                    className="tile-alarm-line",
                )
                if v.alarm
                else None,
            ],
        )
        for v in views
    ]


def layout(hub: LiveHub, clock: Clock) -> html.Div:
    return html.Div(
        [
            dmc.Group(
                [
                    dmc.Title("Supervisor", order=2),
                    dmc.Switch(id="exceptions-only", label="Exceptions only", checked=False),
                    html.Span("", id="wall-feedback", className="measure-feedback"),
                    html.A("All rooms", href="/"),
                ],
                justify="space-between",
                mb="md",
            ),
            html.Div(
                tiles(wall(hub.rooms(), clock.now())), id="supervisor-grid", className="supervisor-grid"
            ),
            dcc.Store(id="wall-filter", data=False),
        ]
    )


async def stream(ws: DashWebsocketCallback, hub: LiveHub, clock: Clock) -> None:
    """The whole wall in one update, at most once a second, only when something on it changed."""
    shown: list[TileView] | None = None
    while not ws.is_shutdown:
        try:
            exceptions_only = bool(await ws.get_prop("exceptions-only", "checked", timeout=2.0))
        except Exception:  # the page is going away or slow to answer: keep the last choice
            exceptions_only = False
        views = wall(hub.rooms(), clock.now(), exceptions_only=exceptions_only)
        if views != shown:
            set_props("supervisor-grid", {"children": tiles(views)})
            shown = views
        await asyncio.sleep(WALL_EVERY_S)

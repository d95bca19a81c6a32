"""The home page: every room with its current SpO2 and pulse, each a link to its bedside page."""

from __future__ import annotations

import asyncio
import dataclasses

import dash_mantine_components as dmc
from dash import Patch, html, set_props
from dash.backends.ws import DashWebsocketCallback

from monitor.clock import Clock
from monitor.live import LiveHub
from monitor.views import RoomCardView, room_card_view

HOME_MIN_INTERVAL_S = 0.5


def room_cards(views: list[RoomCardView]) -> list[html.A] | dmc.Text:
    if not views:
        return dmc.Text("No room has reported yet. Start a gateway, or run `kap-monitor demo`.")
    return [
        html.A(
            href=f"/room/{v.room}",
            className="room-card",
            id={"type": "room-card", "room": v.room},
            children=[
                html.Div(v.room, className="room-card-name"),
                html.Div(
                    className="room-card-values",
                    children=[
                        html.Span(
                            [
                                html.Span("SpO2 %", className="room-label"),
                                html.Span(v.spo2, className="room-spo2"),
                            ],
                            className="spo2",
                        ),
                        html.Span(
                            [
                                html.Span("Pulse /min", className="room-label"),
                                html.Span(v.pulse, className="room-pulse"),
                            ],
                            className="pulse",
                        ),
                    ],
                ),
                html.Div(v.device_text, className=f"device-state state-{v.device_state}"),
                html.Div(v.alarm_text, className=f"room-alarm {v.alarm_css}") if v.alarm_text else None,
            ],
        )
        for v in views
    ]


def layout(hub: LiveHub, clock: Clock) -> html.Div:
    now = clock.now()
    return html.Div(
        [
            dmc.Group(
                [
                    dmc.Title("Rooms", order=2),
                    html.Span(
                        [html.A("Supervisor", href="/supervisor"), " · ", html.A("Alarm log", href="/alarms")]
                    ),
                ],
                justify="space-between",
                mb="md",
            ),
            html.Div(
                room_cards([room_card_view(r, now) for r in hub.rooms()]),
                id="room-grid",
                className="room-grid",
            ),
        ]
    )


def _changed_cards(shown: list[RoomCardView] | None, views: list[RoomCardView]) -> Patch | object:
    """Only the cards that changed, as a patch of the grid, while the same rooms stay in the same places:
    with many rooms a whole grid each time one number moves is most of the home page's bytes and work."""
    if shown is None or not shown or [v.room for v in views] != [v.room for v in shown]:
        return room_cards(views)
    patch = Patch()
    for index, (new, old) in enumerate(zip(views, shown, strict=True)):
        if new == old:
            continue
        if dataclasses.replace(old, spo2=new.spo2, pulse=new.pulse) != new:
            patch[index] = room_cards([new])[0]
            continue
        # only the numbers moved (each room, each second): just their text, as in room_cards' layout
        values = patch[index]["props"]["children"][1]["props"]["children"]
        for position, (text, before) in enumerate(((new.spo2, old.spo2), (new.pulse, old.pulse))):
            if text != before:
                values[position]["props"]["children"][1]["props"]["children"] = text
    return patch


async def stream(ws: DashWebsocketCallback, hub: LiveHub, clock: Clock) -> None:
    """Push room cards when what they show changes (at most twice a second, coalesced)."""
    sub = hub.subscribe(None)
    shown: list[RoomCardView] | None = None
    try:
        while not ws.is_shutdown:
            await sub.next_batch(timeout=1.0)
            now = clock.now()
            views = [room_card_view(r, now) for r in hub.rooms()]
            if views != shown:
                set_props("room-grid", {"children": _changed_cards(shown, views)})
                shown = views
            await asyncio.sleep(HOME_MIN_INTERVAL_S)
    finally:
        hub.unsubscribe(sub)

"""`/supervisor`: every room at a glance, worst first, one consolidated push a second for the whole wall."""

from __future__ import annotations

import asyncio

import dash_mantine_components as dmc
from dash import dcc, html, set_props
from dash.backends.ws import DashWebsocketCallback

from monitor.clock import Clock
from monitor.live import LiveHub
from monitor.room_reads import IncrementalReads
from monitor.session_view import PUMP_CODES
from monitor.store import EventLog
from monitor.supervisor_view import TileView, session_dose_text, wall
from monitor.views import RoomState

WALL_EVERY_S = 1.0
#: how often the tiles' doses are brought up to date from the pumps' records
DOSES_EVERY_S = 5.0


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


def _dose_texts(states: list[RoomState], reads: IncrementalReads, now: float) -> dict[tuple[str, str], str]:
    """Each running session's cumulative dose from its pump's record, each row read once."""
    texts = {}
    for state in states:
        if state.session is not None and state.ended is None:
            pump = reads.observations(state.site, state.room, since=state.session.ts, codes=PUMP_CODES)
            texts[(state.site, state.room)] = session_dose_text(state, pump, now)
    return texts


async def stream(ws: DashWebsocketCallback, hub: LiveHub, store: EventLog, clock: Clock) -> None:
    """The whole wall in one update, at most once a second, only when something on it changed.

    The doses given come from the pumps' records, read in a thread every DOSES_EVERY_S: a wall of long
    sessions must not wait on them, and a dose moves slowly enough for that."""
    shown: list[TileView] | None = None
    reads = IncrementalReads(store, compact_codes=PUMP_CODES)
    doses: dict[tuple[str, str], str] = {}
    refreshing: asyncio.Task[dict[tuple[str, str], str]] | None = None
    refreshed_at = float("-inf")
    try:
        while not ws.is_shutdown:
            try:
                exceptions_only = bool(await ws.get_prop("exceptions-only", "checked", timeout=2.0))
            except Exception:  # the page is going away or slow to answer: keep the last choice
                exceptions_only = False
            now, states = clock.now(), hub.rooms()
            if refreshing is not None and refreshing.done():
                doses = refreshing.result() if refreshing.exception() is None else doses
                refreshing = None
            if refreshing is None and now - refreshed_at >= DOSES_EVERY_S:
                refreshing = asyncio.create_task(asyncio.to_thread(_dose_texts, states, reads, now))
                refreshed_at = now
            views = wall(states, now, exceptions_only=exceptions_only, dose_texts=doses)
            if views != shown:
                set_props("supervisor-grid", {"children": tiles(views)})
                shown = views
            await asyncio.sleep(WALL_EVERY_S)
    finally:
        if refreshing is not None:
            refreshing.cancel()

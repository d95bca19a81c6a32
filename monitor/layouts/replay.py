"""`/replay`: pick a recorded session; `/replay/<id>`: play it back as the bedside page showed it.

The panels ARE the bedside page (`bedside.layout` and its view props, the alarm panel, the session panel,
the timeline), rendered from `monitor.replay`'s state at the replay time with that time as `now`; the
live-only controls (acknowledge, measure, entry forms) are hidden by `assets/kap-replay.css`. One persistent
WebSocket callback per page pushes each frame (changed props only; the pleth and trend as patches of
their data); play, pause, speed, the scrubber, a typed time and zooming are ordinary callbacks that move
the page's `ReplayCursor`, which wakes the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from datetime import datetime
from typing import Any

import dash_mantine_components as dmc
from dash import Dash, Input, Output, Patch, State, dcc, html, no_update, set_props
from dash.backends.ws import DashWebsocketCallback

from monitor import mdc
from monitor.layouts import alarm_panel, bedside, clinical
from monitor.replay import (
    SPEEDS,
    ModelCache,
    ReplayCursor,
    ReplayCursors,
    ReplayModel,
    SessionInfo,
    clock,
    elapsed,
    filter_sessions,
    parse_jump,
    sessions,
)
from monitor.store import EventLog
from monitor.views import (
    TREND_WINDOW_S,
    alarm_panel_view,
    bedside_view,
    chart_time,
    notes_view,
    pleth_samples,
    trend_points,
)

#: a frame every quarter second while playing (at 60x that is 15 s of the session per frame)
FRAME_S = 0.25
#: the session panel and the timeline are the costly projections: redrawn at most this often while playing
SESSION_EVERY_S = 1.0
TIMELINE_EVERY_S = 5.0
PLETH_SECONDS = 6.0
#: points per trace on screen; a zoomed span is re-read at full resolution up to this many
TREND_POINTS = 900
ZOOM_POINTS = 5000
TREND_CODES = (mdc.SPO2.code, mdc.PULSE_RATE.code)
#: sessions listed by the picker at once
MAX_LISTED = 200


class FixedClock:
    """The replay time as the clock the bedside layout reads."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


class Replays:
    """The replay pages of this web process: indexed sessions and the viewers' cursors."""

    def __init__(self, store: EventLog) -> None:
        self.store = store
        self.models = ModelCache(store)
        self.cursors = ReplayCursors()


def route(path: str, replays: Replays) -> tuple[Any, dict[str, str] | None] | None:
    """`/replay` (the picker) or `/replay/<session id>` (the player and what its stream follows)."""
    rest = path.removeprefix("/replay").strip("/")
    if not rest:
        return picker(replays.store), None
    session_id, _, offset = rest.partition("/")  # /replay/<session>/<seconds into it>
    if not session_id.isdigit() or not (offset.isdigit() or not offset):
        return None
    model = replays.models.get(int(session_id))
    if model is None:
        return None
    at = min(model.end, model.start + int(offset or 0))
    token = replays.cursors.open(model.start, model.end, at)
    return player(model, token, at), {"page": "replay", "session": session_id, "token": token}


# ---- the picker ---------------------------------------------------------------------------------------


def picker(store: EventLog) -> html.Div:
    found = sessions(store)
    rooms = sorted({s.room for s in found})
    return html.Div(
        [
            dmc.Group(
                [dmc.Title("Replay a session", order=2), html.A("All rooms", href="/")],
                justify="space-between",
            ),
            dmc.Group(
                [
                    dmc.Select(id="replay-room", data=rooms, label="Room", w=200, clearable=True),
                    dmc.TextInput(id="replay-day", label="Date", placeholder="YYYY-MM-DD", w=160),
                    dmc.TextInput(id="replay-code", label="Patient code", placeholder="K-1042", w=160),
                ],
                align="flex-end",
                my="md",
            ),
            html.Div(session_links(found), id="replay-sessions", className="replay-sessions"),
        ]
    )


def session_links(found: list[SessionInfo]) -> list[Any]:
    """The newest sessions that match, each a link to its replay (the filters narrow a long list)."""
    if not found:
        return [dmc.Text("No recorded session matches.", c="dimmed")]
    rows: list[Any] = []
    if len(found) > MAX_LISTED:
        rows.append(dmc.Text(f"The newest {MAX_LISTED} of {len(found)}: filter for older ones.", c="dimmed"))
    for s in found[:MAX_LISTED]:
        end = "open" if s.ended_at is None else elapsed(s.ended_at - s.started_at)
        rows.append(
            html.A(
                [
                    html.Span(s.room, className="replay-row-room"),
                    html.Span(f"{datetime.fromtimestamp(s.started_at):%Y-%m-%d %H:%M}"),
                    html.Span(s.patient_code or "no patient", className="replay-row-code"),
                    html.Span(end, className="replay-row-length"),
                ],
                href=f"/replay/{s.session_id}",
                className="replay-row",
                **{"data-session": str(s.session_id)},
            )
        )
    return rows


# ---- the player ---------------------------------------------------------------------------------------


def player(model: ReplayModel, token: str, at: float) -> html.Div:
    """The session at `at`: the bedside page at that time, under the replay controls."""
    info = model.info
    state = model.state_at(at)
    page = bedside.layout(state, model.at(at), FixedClock(at))  # type: ignore[arg-type]
    duration = max(1, round(model.duration))
    step = 1800 if duration > 3 * 3600 else (600 if duration > 3600 else 300)
    marks = {m: elapsed(m)[:-3] for m in range(0, duration + 1, step)}
    plan = info.protocol
    what = " · ".join(
        str(x)
        for x in (
            info.patient_code or "no patient",
            plan.get("drug"),
            plan.get("route"),
            f"{datetime.fromtimestamp(model.start):%Y-%m-%d %H:%M:%S} to {clock(model.end)}",
            elapsed(model.duration),
        )
        if x
    )
    return html.Div(
        className="replay-page",
        children=[
            dmc.Group(
                [
                    dmc.Title(f"Replay: room {info.room}", order=2),
                    html.A("Other sessions", href="/replay"),
                    html.A("Alarm log", href="/alarms"),
                ],
                justify="space-between",
            ),
            html.Div(what, id="replay-info", className="replay-info"),
            html.Div(export_links(info.session_id), id="replay-export", className="replay-export"),
            html.Div(
                className="replay-controls",
                children=[
                    dmc.Group(
                        [
                            dmc.Button("Play", id="replay-play", color="teal", w=100),
                            dmc.SegmentedControl(
                                id="replay-speed",
                                value="1",
                                data=[{"value": str(s), "label": f"{s}x"} for s in SPEEDS],
                            ),
                            html.Span(
                                _clock_text(model, at, False, 1.0),
                                id="replay-clock",
                                className="replay-clock",
                            ),
                            dmc.TextInput(id="replay-jump", placeholder="14:05:30 or +12:00", w=170),
                            dmc.Button("Go", id="replay-go", variant="outline"),
                            html.Span("", id="replay-feedback", className="measure-feedback"),
                        ],
                        gap="md",
                    ),
                    dcc.Slider(
                        id="replay-scrub",
                        min=0,
                        max=duration,
                        step=1,
                        value=int(at - model.start),
                        marks=marks,
                        updatemode="mouseup",
                        allow_direct_input=False,
                        className="replay-scrub",
                    ),
                ],
            ),
            page,
        ],
    )


#: what the replay page offers to download: (format, label); the server route is in monitor.app
EXPORTS = (
    ("html", "Session report (HTML)"),
    ("csv", "Observations (CSV)"),
    ("parquet", "Observations (Parquet)"),
    ("jsonl", "Event log (JSON lines)"),
)


def export_links(session_id: int) -> list[Any]:
    """Download links for the whole session (a file each; every download is audited)."""
    links: list[Any] = ["Export: "]
    for i, (fmt, label) in enumerate(EXPORTS):
        if i:
            links.append(" · ")
        links.append(html.A(label, href=f"/export/{session_id}/{fmt}", id=f"replay-export-{fmt}"))
    return links


def _clock_text(model: ReplayModel, t: float, playing: bool, speed: float) -> str:
    state = f"playing {speed:g}x" if playing else "paused"
    return f"{clock(t)} · {elapsed(t - model.start)} of {elapsed(model.duration)} · {state}"


#: the bedside ids the replay pushes (the live-only controls are left alone)
_LIVE_ONLY = frozenset({"measure-bp", "measure-feedback", "bp-interval", "alarm-sound"})


def frame_props(model: ReplayModel, t: float) -> dict[str, dict[str, Any]]:
    """Every prop the bedside shows at `t`, as the live stream computes them (numbers, alarms, notes)."""
    state = model.state_at(t)
    props = bedside._view_props(bedside_view(state, t)) | alarm_panel.props(alarm_panel_view(state, t))
    props["notes"] = {"children": clinical.note_items(notes_view(state))}
    return {k: v for k, v in props.items() if k not in _LIVE_ONLY}


def session_props(model: ReplayModel, t: float) -> dict[str, dict[str, Any]]:
    """The session panel at `t` (who, dose so far, estimated concentration, doses, assessments due)."""
    state = model.state_at(t)
    props = bedside._session_props(state, model.at(t), t)  # type: ignore[arg-type]
    props.pop("timeline", None)  # shown when the session has one, whatever the time
    return props


def timeline_figure(model: ReplayModel, t: float, zoom: tuple[float, float] | None) -> dict:  # type: ignore[type-arg]
    state = model.state_at(t)
    return bedside._timeline(state, model.at(t, zoom, bedside.TIMELINE_VITALS), t)  # type: ignore[arg-type]


def trend_patch(model: ReplayModel, t: float, zoom: tuple[float, float] | None, follow: str) -> Patch:
    """The trend's two traces: the 30 minutes up to `t`, or the zoomed span at full resolution."""
    if zoom is None:
        since, until, most = t - TREND_WINDOW_S, t, TREND_POINTS
    else:
        since, until, most = zoom[0], zoom[1], ZOOM_POINTS
    points = trend_points(model.observations(t, TREND_CODES, since, until, max_points=most))
    patch = Patch()
    patch["data"][0]["x"], patch["data"][0]["y"] = points.spo2_x, points.spo2_y
    patch["data"][1]["x"], patch["data"][1]["y"] = points.pulse_x, points.pulse_y
    if zoom is None:  # following the replay: our range wins over a zoom the viewer has reset
        patch["layout"]["uirevision"] = follow
        patch["layout"]["xaxis"]["range"] = [chart_time(since), chart_time(until)]
    return patch


def pleth_patch(model: ReplayModel, t: float) -> Patch:
    xs, ys = pleth_samples(model.pleth(t, PLETH_SECONDS))
    patch = Patch()
    patch["data"][0]["x"], patch["data"][0]["y"] = xs, ys
    return patch


class _Shown:
    """What the page shows, to push only what changed."""

    def __init__(self) -> None:
        self.props: dict[str, str] = {}

    def push(self, props: dict[str, dict[str, Any]]) -> int:
        pushed = 0
        for component_id, values in props.items():
            key = json.dumps(values, default=_plain, sort_keys=True)
            if self.props.get(component_id) != key:
                set_props(component_id, values)
                self.props[component_id] = key
                pushed += 1
        return pushed


def _plain(value: object) -> object:
    to_json = getattr(value, "to_plotly_json", None)
    return to_json() if to_json else str(value)


async def stream(
    ws: DashWebsocketCallback, models: ModelCache, cursors: ReplayCursors, page: dict[str, str]
) -> None:
    """Follow the page's cursor: a frame at each change, and every quarter second while playing."""
    cursor = cursors.get(page.get("token"))
    model = await asyncio.to_thread(models.get, int(page["session"])) if cursor else None
    if cursor is None or model is None:
        return
    await _Player(ws, model, cursor).run()


class _Player:
    """One page's stream. Each frame pushes at once what is quick (numbers, alarms, notes, pleth,
    trend); the session panel and the timeline, the costly projections, are computed beside it for the
    newest position, so a scrub never waits behind them and a stale one is never shown."""

    def __init__(self, ws: DashWebsocketCallback, model: ReplayModel, cursor: ReplayCursor) -> None:
        self.ws, self.model, self.cursor = ws, model, cursor
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.shown = _Shown()
        # the layout was drawn at the cursor's first position, with its session panel and timeline
        self.session_at = self.timeline_at = time.monotonic()
        self.timeline_key: tuple[object, ...] | None = _timeline_key(model, cursor.position(), cursor)
        self.seen_revision = cursor.revision
        self.slow_pending = False
        self.slow: asyncio.Task[None] | None = None
        self.follow_epoch = 0
        self.was_zoomed = False

    def notify(self) -> None:
        self.loop.call_soon_threadsafe(self.wake.set)

    async def run(self) -> None:
        self.cursor.listen(self.notify)
        warmed = None
        try:
            while not self.ws.is_shutdown:
                self.wake.clear()
                await self.frame()
                if warmed is None:  # the first frame is out: make the rest of the index now
                    warmed = self.loop.run_in_executor(None, self.model.warm)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), FRAME_S if self.cursor.playing else 2.0)
        finally:
            self.cursor.forget(self.notify)
            if self.slow is not None:
                await asyncio.gather(self.slow, return_exceptions=True)

    async def frame(self) -> None:
        cursor, model = self.cursor, self.model
        revision, t = cursor.revision, cursor.position()
        moved = revision != self.seen_revision
        self.seen_revision = revision
        props = await asyncio.to_thread(frame_props, model, t)
        props["replay-clock"] = {"children": _clock_text(model, t, cursor.playing, cursor.speed)}
        props["replay-play"] = {"children": "Pause" if cursor.playing else "Play"}
        props["replay-speed"] = {"value": str(int(cursor.speed))}
        slider = int(t - model.start)
        props["replay-scrub"] = {"value": slider}
        cursor.remember_slider(slider)
        self.shown.push(props)
        set_props("pleth", {"figure": await asyncio.to_thread(pleth_patch, model, t)})
        trend_zoom = cursor.zoom.get("trend")
        if trend_zoom is None and self.was_zoomed:
            self.follow_epoch += 1
        self.was_zoomed = trend_zoom is not None
        if trend_zoom is None or moved:
            follow = f"follow-{self.follow_epoch}"
            set_props("trend", {"figure": await asyncio.to_thread(trend_patch, model, t, trend_zoom, follow)})
        self.slow_pending |= moved
        due = time.monotonic() - self.session_at >= SESSION_EVERY_S
        if (self.slow_pending or due) and (self.slow is None or self.slow.done()):
            self.slow = asyncio.create_task(self.panels(t, revision, self.slow_pending))
            self.slow.add_done_callback(lambda _: self.wake.set())
            self.slow_pending = False

    def _stale(self, revision: int) -> bool:
        """The viewer moved since: what was computed for the old position must not be shown."""
        return self.cursor.revision != revision

    async def panels(self, t: float, revision: int, moved: bool) -> None:
        cursor, model = self.cursor, self.model
        props = await asyncio.to_thread(session_props, model, t)
        if self._stale(revision):
            return
        self.shown.push(props)
        now = self.session_at = time.monotonic()
        key = _timeline_key(model, t, cursor)
        if key == self.timeline_key or not (
            moved or not cursor.playing or now - self.timeline_at >= TIMELINE_EVERY_S
        ):
            return
        figure = await asyncio.to_thread(timeline_figure, model, t, cursor.zoom.get("timeline"))
        if not self._stale(revision):
            set_props("timeline", {"figure": figure})
            self.timeline_key, self.timeline_at = key, time.monotonic()


def _timeline_key(model: ReplayModel, t: float, cursor: ReplayCursor) -> tuple[object, ...]:
    """The timeline changes with the events shown and the zoom; while playing, its vitals grow too."""
    return (len(model.clinical(t)), len(model.alarms(t)), cursor.zoom.get("timeline"), int(t // 60))


# ---- the controls -------------------------------------------------------------------------------------

_RANGE_KEY = re.compile(r"^xaxis\d*\.range\[([01])\]$")


def zoom_span(relayout: dict[str, Any] | None) -> tuple[float, float] | bool | None:
    """The time span a chart was zoomed to; None when it was reset; False when the event is no zoom."""
    if not relayout:
        return False
    if any(k.endswith(".autorange") and v for k, v in relayout.items()):
        return None
    ends: dict[str, float] = {}
    for key, value in relayout.items():
        match = _RANGE_KEY.match(key)
        if match and match.group(1) not in ends:
            ends[match.group(1)] = _chart_ts(value)
        elif re.match(r"^xaxis\d*\.range$", key) and isinstance(value, list) and len(value) == 2:
            ends.setdefault("0", _chart_ts(value[0]))
            ends.setdefault("1", _chart_ts(value[1]))
    if "0" in ends and "1" in ends:
        return (min(ends["0"], ends["1"]), max(ends["0"], ends["1"]))
    return False


def _chart_ts(value: object) -> float:
    """A chart's x value back to epoch seconds (charts draw naive local times: `views.chart_time`)."""
    return datetime.fromisoformat(str(value).replace(" ", "T")).timestamp()


def register(app: Dash, store: EventLog, cursors: ReplayCursors) -> None:
    """The picker's filter and the player's controls: each moves the page's cursor, the stream follows."""

    @app.callback(
        Output("replay-sessions", "children"),
        Input("replay-room", "value"),
        Input("replay-day", "value"),
        Input("replay-code", "value"),
        prevent_initial_call=True,
    )
    def filter_list(room: str | None, day: str | None, code: str | None):  # type: ignore[no-untyped-def]
        return session_links(filter_sessions(sessions(store), room, day, code))

    @app.callback(Output("log-replay", "href"), Input("log-session", "value"))
    def replay_from_the_alarm_log(session_id: str | None) -> str:
        return f"/replay/{session_id}" if session_id else "/replay"

    def cursor_of(page: dict[str, str] | None) -> ReplayCursor | None:
        return cursors.get(page.get("token")) if page and page.get("page") == "replay" else None

    def control(*dependencies: Input | State) -> Any:
        """A control of the player: says what went wrong, if anything, beside the controls."""
        return app.callback(
            Output("replay-feedback", "children", allow_duplicate=True),
            *dependencies,
            State("page-live", "data"),
            prevent_initial_call=True,
        )

    @control(Input("replay-play", "n_clicks"))
    def play_pause(n: int | None, page: dict[str, str] | None) -> str:
        cursor = cursor_of(page)
        if not n or cursor is None:
            return no_update
        cursor.toggle()
        return ""

    @control(Input("replay-speed", "value"))
    def speed(value: str | None, page: dict[str, str] | None) -> str:
        cursor = cursor_of(page)
        if cursor is None or not value or float(value) == cursor.speed:
            return no_update
        cursor.set_speed(int(value))
        return ""

    @control(Input("replay-scrub", "value"))
    def scrub(value: int | None, page: dict[str, str] | None) -> str:
        cursor = cursor_of(page)
        # the stream moves the slider as the replay plays: that echo is not the viewer scrubbing
        if cursor is None or value is None or cursor.pushed_slider(int(value)):
            return no_update
        cursor.seek(cursor.start + int(value))
        return ""

    @control(
        Input("replay-go", "n_clicks"),
        Input("replay-jump", "n_submit"),
        State("replay-jump", "value"),
    )
    def jump(n: int | None, submitted: int | None, text: str | None, page: dict[str, str] | None) -> str:
        cursor = cursor_of(page)
        if cursor is None or not (n or submitted):
            return no_update
        try:
            cursor.seek(parse_jump(text or "", cursor.start, cursor.end))
        except ValueError as exc:
            return str(exc)
        return ""

    def zoom_of(chart: str) -> None:
        @control(Input(chart, "relayoutData"))
        def zoom(relayout: dict[str, Any] | None, page: dict[str, str] | None) -> str:
            cursor = cursor_of(page)
            span = zoom_span(relayout)
            if cursor is None or span is False:
                return no_update
            cursor.set_zoom(chart, span)  # type: ignore[arg-type]
            return ""

    zoom_of("trend")
    zoom_of("timeline")

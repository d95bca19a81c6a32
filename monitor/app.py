"""The dashboard's app factory: Dash on FastAPI, with callbacks pushed over Dash's native WebSocket.

Pages live in monitor/layouts/ and render view models from monitor.views; this module only wires them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update
from dash.backends.ws import DashWebsocketCallback
from dash.exceptions import WebsocketDisconnected
from fastapi.responses import PlainTextResponse, Response

from monitor import actions, alarm_log, export, session_view, wire
from monitor.alarm_profile import AlarmProfile, load_profile
from monitor.auth import Refused
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.layouts import alarm_log_page, bedside, home, session_panel, shell, signin, supervisor
from monitor.layouts import replay as replay_page
from monitor.layouts import whatif as whatif_page
from monitor.limits_view import check_limit
from monitor.live import LiveHub
from monitor.model import ClinicalEvent
from monitor.store import EventLog
from monitor.views import RoomState

ASSETS = Path(__file__).parent / "assets"
log = logging.getLogger(__name__)


def create_app(
    hub: LiveHub,
    store: EventLog,
    clock: Clock = SYSTEM_CLOCK,
    *,
    site: str = "clinic",
    profile: AlarmProfile | None = None,
) -> Dash:
    """`site` names the site of a room that has not reported yet, so its page can wait for it; `profile`
    is the clinic's alarm profile the core runs (default: the shipped one), whose limits the bedside shows."""
    profile = profile or load_profile(None)
    app = Dash(
        __name__,
        backend="fastapi",
        websocket_callbacks=True,
        suppress_callback_exceptions=True,
        title="KAP Monitor",
        update_title=None,
        assets_folder=str(ASSETS),
        on_error=signin.show_refusal,  # an action the server refuses is said on screen
    )
    signin.check_websockets()
    app.layout = shell.app_shell()
    replays = replay_page.Replays(store)
    replay_page.register(app, store, replays.cursors)
    whatif_page.register_whatif_callbacks(app, store)
    _serve_exports(app, hub, store)

    @app.callback(Output("page", "children"), Output("page-live", "data"), Input("url", "pathname"))
    def route(pathname: str | None):  # type: ignore[no-untyped-def]
        """The page for a path, and what its live stream should follow."""
        path = pathname or "/"
        if path in ("/", ""):
            return home.layout(hub, clock), {"page": "home"}
        if path.rstrip("/") == "/supervisor":
            return supervisor.layout(hub, clock), {"page": "supervisor"}
        if path.rstrip("/") == "/alarms":
            return alarm_log_page.layout(store), None
        if path.rstrip("/") == "/whatif":
            return whatif_page.layout(store), None
        if path.rstrip("/") == "/replay" or path.startswith("/replay/"):
            return replay_page.route(path, replays) or (shell.not_found(path), None)
        if path.startswith("/room/"):
            room = unquote(path.removeprefix("/room/").strip("/"))
            try:
                wire.check_name(room, "room")
            except ValueError:
                return shell.not_found(path), None
            state = hub.find_room(room) or RoomState(site, room)
            live = {"page": "bedside", "site": state.site, "room": state.room}
            return bedside.layout(state, store, clock, profile), live
        return shell.not_found(path), None

    @app.callback(
        Output("measure-feedback", "children", allow_duplicate=True),
        Input("measure-bp", "n_clicks"),
        State("page-live", "data"),
        prevent_initial_call=True,
    )
    def measure_now(n_clicks: int | None, page: dict[str, str] | None) -> str:
        return bedside.send_measure(hub, clock, page) if n_clicks else no_update

    @app.callback(
        Output("measure-feedback", "children", allow_duplicate=True),
        Input("bp-interval", "value"),
        State("page-live", "data"),
        prevent_initial_call=True,
    )
    def change_interval(minutes: str | None, page: dict[str, str] | None) -> str:
        said = bedside.send_interval(hub, clock, page, minutes)
        return no_update if said is None else said

    def record(event: ClinicalEvent | None, said: str) -> str:
        if event is None:
            return no_update
        hub.record(event)
        return said

    @app.callback(
        Output("limit-feedback", "children"),
        Input({"type": "limit-set", "rule": ALL}, "n_clicks"),
        State({"type": "limit-input", "rule": ALL}, "value"),
        State("page-live", "data"),
        prevent_initial_call=True,
    )
    def change_limit(clicks: list[int | None], values: list[object], page: dict[str, str] | None) -> str:
        """A supervisor's limit for this session (the server refuses anyone else, and says so)."""
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks) or bedside_page(page) is None:
            return no_update
        rules = [i["id"]["rule"] for i in ctx.states_list[0]]
        rule_id = str(trigger["rule"])
        try:
            limit = check_limit(profile, rule_id, values[rules.index(rule_id)])
        except ValueError as exc:
            return str(exc)
        assert page is not None
        return record(actions.limit_change(page, clock, rule_id, limit), f"limit {rule_id} set to {limit:g}")

    def bedside_page(page: dict[str, str] | None) -> dict[str, str] | None:
        return page if page and page.get("page") == "bedside" else None

    @app.callback(
        Output("clinical-feedback", "children", allow_duplicate=True),
        Input({"type": "ack-alarm", "alarm": ALL}, "n_clicks"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def acknowledge_one(clicks: list[int | None], page: dict[str, str] | None, author: str | None) -> str:
        trigger = ctx.triggered_id
        page = bedside_page(page)
        # a re-rendered alarm list brings new buttons with no clicks: that is not a user acknowledging
        if (
            page is None
            or not isinstance(trigger, dict)
            or not ctx.triggered
            or not ctx.triggered[0]["value"]
        ):
            return no_update
        return record(actions.acknowledge(page, clock, author, str(trigger["alarm"])), "acknowledged")

    @app.callback(
        Output("clinical-feedback", "children", allow_duplicate=True),
        Input("ack-all", "n_clicks"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def acknowledge_all(n: int | None, page: dict[str, str] | None, author: str | None) -> str:
        page = bedside_page(page)
        if not n or page is None:
            return no_update
        return record(actions.acknowledge(page, clock, author), "all alarms acknowledged")

    @app.callback(
        Output("clinical-feedback", "children", allow_duplicate=True),
        Input("pause-audio", "n_clicks"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def pause_audio(n: int | None, page: dict[str, str] | None, author: str | None) -> str:
        page = bedside_page(page)
        if not n or page is None:
            return no_update
        return record(actions.pause_audio(page, clock, author), "audio paused")

    @app.callback(
        Output("clinical-feedback", "children", allow_duplicate=True),
        Input({"type": "record-effect", "effect": ALL}, "n_clicks"),
        State("effect-severity", "value"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def record_side_effect(
        clicks: list[int | None], severity: str, page: dict[str, str] | None, author: str | None
    ) -> str:
        trigger = ctx.triggered_id
        page = bedside_page(page)
        if (
            page is None
            or not isinstance(trigger, dict)
            or not ctx.triggered
            or not ctx.triggered[0]["value"]
        ):
            return no_update
        effect = str(trigger["effect"])
        event = actions.side_effect(page, clock, author, effect, severity or "moderate")
        return record(event, f"recorded {severity} {effect.replace('_', ' ')}")

    @app.callback(
        Output("clinical-feedback", "children", allow_duplicate=True),
        Output("note-text", "value"),
        Input("add-note", "n_clicks"),
        State("note-text", "value"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def add_note(n: int | None, text: str | None, page: dict[str, str] | None, author: str | None):  # type: ignore[no-untyped-def]
        page = bedside_page(page)
        if not n or page is None:
            return no_update, no_update
        event = actions.note(page, clock, author, text or "")
        if event is None:
            return "a note needs some text", no_update
        return record(event, "note recorded"), ""

    def refused(exc: Exception) -> str:
        return f"refused: {getattr(exc, 'detail', exc)}"

    @app.callback(
        Output("start-feedback", "children"),
        Input("start-session", "n_clicks"),
        State("start-code", "value"),
        State("start-weight", "value"),
        State("start-drug", "value"),
        State("start-route", "value"),
        State("start-planned", "value"),
        State("start-duration", "value"),
        State("start-concentration", "value"),
        State("start-nurse", "value"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def start_session(n, code, weight, drug, route, planned, duration, concentration, nurse, page, author):  # type: ignore[no-untyped-def]
        page = bedside_page(page)
        if not n or page is None:
            return no_update
        try:
            event = actions.session_start(
                page,
                clock,
                author or nurse,
                patient_code=(code or "").strip(),
                weight_kg=weight,
                drug=drug,
                route=route,
                planned_mg_per_kg=planned,
                duration_min=duration,
                concentration_mg_ml=concentration,
                nurse=nurse or "",
            )
        except (ValueError, TypeError) as exc:
            return refused(exc)
        hub.record(event)
        return "session started"

    def _dose_fields(route, amount, unit, duration, given):  # type: ignore[no-untyped-def]
        fields: dict[str, object] = {"route": route, "duration_min": duration}
        fields["mg_per_kg" if unit == "mg/kg" else "mg"] = amount
        if given:
            hour, _, minute = str(given).strip().partition(":")
            today = datetime.fromtimestamp(clock.now())
            fields["given_at"] = today.replace(hour=int(hour), minute=int(minute or 0), second=0).timestamp()
        return fields

    @app.callback(
        Output("dose-feedback", "children", allow_duplicate=True),
        Output("dose-confirm", "opened"),
        Output("dose-confirm-text", "children"),
        Output("pending-dose", "data"),
        Output("amend-target", "data", allow_duplicate=True),
        Input("log-dose", "n_clicks"),
        State("dose-route", "value"),
        State("dose-amount", "value"),
        State("dose-unit", "value"),
        State("dose-duration", "value"),
        State("dose-time", "value"),
        State("page-live", "data"),
        State("amend-target", "data"),
        prevent_initial_call=True,
    )
    def log_dose(n, route, amount, unit, duration, given, page, amend):  # type: ignore[no-untyped-def]
        page = bedside_page(page)
        if not n or page is None:
            return no_update, no_update, no_update, no_update, no_update
        try:
            fields = _dose_fields(route, amount, unit, duration, given)
        except ValueError:
            return "refused: 'given at' must be HH:MM", False, "", None, no_update
        state = hub.room_state((page["site"], page["room"]))
        if state is None or state.session is None or state.ended is not None:
            return "start a session first", False, "", None, no_update
        if amend:
            fields["supersedes"] = amend
            original = next((e for e in state.doses if e.event_id == amend), None)
            if original is not None and "given_at" not in fields:  # a correction keeps the dose's time
                kept = session_view.dose_of(original, session_view.weight(state.session)).ts
                fields["given_at"] = kept
        kg = session_view.weight(state.session)
        mg = float(amount or 0) * (kg if unit == "mg/kg" else 1.0)
        if amend and mg == 0:  # voiding a dose entered in error
            fields.pop("mg_per_kg", None)
            fields["mg"] = 0.0
        pump = store.observations(
            state.site, state.room, since=state.session.ts, codes=session_view.PUMP_CODES
        )
        questions = session_view.dose_questions(state, pump, mg, replacing=amend) if mg > 0 else []
        if questions:
            return "", True, [html.P(q) for q in questions], fields, None
        return _give(page, fields), False, "", None, None

    @app.callback(
        Output("amend-target", "data"),
        Output("dose-feedback", "children", allow_duplicate=True),
        Input({"type": "amend", "dose": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def choose_correction(clicks):  # type: ignore[no-untyped-def]
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0]["value"]:
            return no_update, no_update
        return str(
            trigger["dose"]
        ), "correcting that dose: enter the corrected amount (0 voids it), then Log dose"

    @app.callback(
        Output("dose-feedback", "children", allow_duplicate=True),
        Output("dose-confirm", "opened", allow_duplicate=True),
        Input("dose-confirm-yes", "n_clicks"),
        Input("dose-confirm-no", "n_clicks"),
        State("pending-dose", "data"),
        State("page-live", "data"),
        prevent_initial_call=True,
    )
    def confirm_dose(yes, no, pending, page):  # type: ignore[no-untyped-def]
        page = bedside_page(page)
        if ctx.triggered_id != "dose-confirm-yes" or not pending or page is None:
            return "dose not given", False
        return _give(page, {**pending, "confirmed": True}), False

    def _give(page: dict[str, str], fields: dict[str, object]) -> str:
        try:
            event = actions.dose(page, clock, None, **fields)
        except (ValueError, TypeError) as exc:
            return refused(exc)
        hub.record(event)
        marked = " (confirmed over the limit)" if fields.get("confirmed") else ""
        return f"dose logged{marked}"

    @app.callback(
        Output("assessment-feedback", "children", allow_duplicate=True),
        Input({"type": "assess", "kind": ALL, "value": ALL}, "n_clicks"),
        Input("record-cadss", "n_clicks"),
        Input("record-aldrete", "n_clicks"),
        State({"type": "cadss", "item": ALL}, "value"),
        State({"type": "aldrete", "item": ALL}, "value"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def record_assessment(taps, cadss_n, aldrete_n, cadss, aldrete, page, author):  # type: ignore[no-untyped-def]
        page = bedside_page(page)
        trigger = ctx.triggered_id
        if page is None or not ctx.triggered or not ctx.triggered[0]["value"]:
            return no_update
        try:
            if trigger == "record-cadss":
                event = actions.assessment(page, clock, author, "cadss6", answers=[int(v) for v in cadss])
            elif trigger == "record-aldrete":
                event = actions.assessment(page, clock, author, "aldrete", answers=[int(v) for v in aldrete])
            else:
                event = actions.assessment(
                    page, clock, author, str(trigger["kind"]), score=int(trigger["value"])
                )
        except (ValueError, TypeError) as exc:
            return refused(exc)
        hub.record(event)
        return f"{event.data['kind']} {event.data['score']} recorded"

    @app.callback(
        Output("discharge-check", "children"),
        Input("check-discharge", "n_clicks"),
        Input("end-session", "n_clicks"),
        State("page-live", "data"),
        State("author", "value"),
        prevent_initial_call=True,
    )
    def discharge(check_n, end_n, page, author):  # type: ignore[no-untyped-def]
        page = bedside_page(page)
        if page is None or not ctx.triggered or not ctx.triggered[0]["value"]:
            return no_update
        state = hub.room_state((page["site"], page["room"]))
        if state is None or state.session is None or state.ended is not None:
            return "no session in this room"
        now = clock.now()
        pump = store.observations(
            state.site, state.room, since=state.session.ts, codes=session_view.PUMP_CODES
        )
        vitals = store.observations(
            state.site, state.room, since=state.session.ts, codes=tuple(session_view.VITAL_CODES_ALL)
        )
        check = session_view.discharge(state, pump, vitals, now)
        items = [(i.name, i.ok, i.detail) for i in check.items]
        shown = session_panel.discharge_items(check.ok, items)
        if ctx.triggered_id == "end-session":
            summary = session_view.session_summary(state, pump, check, now)
            hub.record(actions.session_end(page, clock, author, summary))
            return html.Div(
                [
                    html.P(
                        "Session ended" + ("" if check.ok else " before every discharge criterion was met")
                    ),
                    shown,
                ]
            )
        return shown

    @app.callback(
        Output("wall-feedback", "children"),
        Input({"type": "tile-ack", "room": ALL, "site": ALL, "alarm": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def acknowledge_from_tile(clicks):  # type: ignore[no-untyped-def]
        """Recorded as the supervisor (who exactly comes with sign-in)."""
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0]["value"]:
            return no_update
        room = {"site": str(trigger["site"]), "room": str(trigger["room"])}
        hub.record(actions.acknowledge(room, clock, None, str(trigger["alarm"])))  # as the signed-in user
        return f"acknowledged in {room['room']}"

    log_filters = ("log-session", "log-priority", "log-state", "log-kind", "log-text")

    @app.callback(
        Output("log-table", "children"),
        Output("log-count", "children"),
        *[Input(f, "value") for f in log_filters],
    )
    def show_log(*filters: object):  # type: ignore[no-untyped-def]
        rows = _log_rows(*filters)
        return alarm_log_page.table(rows), f"{len(rows)} transition{'s' if len(rows) != 1 else ''}"

    @app.callback(
        Output("log-download", "data"),
        Input("log-export", "n_clicks"),
        *[State(f, "value") for f in log_filters],
        prevent_initial_call=True,
    )
    def export_log(n: int | None, *filters: object):  # type: ignore[no-untyped-def]
        if not n or not filters[0]:
            return no_update
        csv = alarm_log.to_csv(_log_rows(*filters))
        return {"content": csv, "filename": f"kap-alarms-session-{filters[0]}.csv", "type": "text/csv"}

    def _log_rows(
        session: object, priorities: object, states: object, kinds: object, text: object
    ) -> list[dict[str, object]]:
        """The filtered rows of the chosen session (the filters as the page's inputs give them)."""
        if not session:
            return []

        def chosen(values: object) -> frozenset[str]:
            return frozenset(values) if isinstance(values, list) else frozenset()

        keep = alarm_log.AlarmFilter(
            chosen(priorities), chosen(states), chosen(kinds), str(text or "").strip()
        )
        return alarm_log.rows(store.alarm_log(int(str(session))), keep)

    app.clientside_callback(
        ClientsideFunction("kap", "enableSound"),
        Output("sound-state", "children"),
        Input("enable-sound", "n_clicks"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("kap", "sound"),
        Output("sound-state", "title"),
        Input("alarm-sound", "data"),
    )

    @app.callback(Input("url", "pathname"), persistent=True)
    async def stream_page(pathname: str | None) -> None:
        """The page's live feed: one persistent WebSocket callback per open page.

        It is triggered from the shell's `url` (a persistent callback whose input is rendered later by the
        router is never started), then waits until the router has mounted the page, which announces
        itself in a `page-live` store, before pushing anything.
        """
        ws = ctx.websocket
        if ws is None:
            return
        page = await _mounted_page(ws)
        if page is None:
            return
        log.debug("live stream for %s started", pathname)
        while not ws.is_shutdown:
            try:
                if page.get("page") == "bedside":
                    await bedside.stream(ws, hub, store, clock, page, profile)
                elif page.get("page") == "home":
                    await home.stream(ws, hub, clock)
                elif page.get("page") == "supervisor":
                    await supervisor.stream(ws, hub, store, clock)
                elif page.get("page") == "replay":
                    await replay_page.stream(ws, replays.models, replays.cursors, page)
                return
            except Exception:
                # a bug in a page's stream must not freeze the screen a nurse trusts: say it loudly and
                # start the stream again (it resends everything the page shows)
                log.exception("live stream for %s failed; restarting it", pathname)
                await asyncio.sleep(1.0)

    return app


def _serve_exports(app: Dash, hub: LiveHub, store: EventLog) -> None:
    """`/export/<session>/<format>`: a recorded session as a file (the replay page links here), for whoever
    may export it, written to the audit trail. A plain download, not a callback: an event log is megabytes."""

    @app.server.get("/export/{session_id}/{fmt}")
    async def download(session_id: int, fmt: str) -> Response:
        record = store.session(session_id)
        if record is None or fmt not in export.FORMATS:
            what = f"format {fmt!r}" if record else f"session {session_id}"
            return PlainTextResponse(f"no such {what}", status_code=404)
        try:
            hub.authorize_export(record.site, record.room, f"session {session_id} as {fmt}")
        except Refused as exc:
            return PlainTextResponse(f"refused: {exc}", status_code=403)
        data = await asyncio.to_thread(export.export_session, store, session_id, fmt)
        name = export.export_filename(store, session_id, fmt)
        return Response(
            data,
            media_type=export.MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )


async def _mounted_page(ws: DashWebsocketCallback, timeout: float = 15.0) -> dict[str, str] | None:
    deadline = time.monotonic() + timeout
    while not ws.is_shutdown and time.monotonic() < deadline:
        try:
            page = await ws.get_prop("page-live", "data", timeout=2.0)
        except (TimeoutError, WebsocketDisconnected):
            page = None
        if page:
            return dict(page)
        await asyncio.sleep(0.05)
    return None

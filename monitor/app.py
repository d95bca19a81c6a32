"""The dashboard's app factory: Dash on FastAPI, with callbacks pushed over Dash's native WebSocket.

Pages live in monitor/layouts/ and render view models from monitor.views; this module only wires them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from dash import Dash, Input, Output

from monitor import wire
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.layouts import bedside, home, shell
from monitor.live import LiveHub
from monitor.store import EventLog
from monitor.views import RoomState

ASSETS = Path(__file__).parent / "assets"


def create_app(hub: LiveHub, store: EventLog, clock: Clock = SYSTEM_CLOCK, *, site: str = "clinic") -> Dash:
    """`site` names the site of a room that has not reported yet, so its page can wait for it."""
    app = Dash(
        __name__,
        backend="fastapi",
        websocket_callbacks=True,
        suppress_callback_exceptions=True,
        title="KAP Monitor",
        update_title=None,
        assets_folder=str(ASSETS),
    )
    app.layout = shell.app_shell()

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(pathname: str | None):  # type: ignore[no-untyped-def]
        path = pathname or "/"
        if path in ("/", ""):
            return home.layout(hub, clock)
        if path.startswith("/room/"):
            room = unquote(path.removeprefix("/room/").strip("/"))
            try:
                wire.check_name(room, "room")
            except ValueError:
                return shell.not_found(path)
            state = hub.find_room(room) or RoomState(site, room)
            return bedside.layout(state, store, clock)
        return shell.not_found(path)

    home.register(app, hub, clock)
    bedside.register(app, hub, clock)
    return app

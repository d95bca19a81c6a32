"""Sign-in as the Dash app sees it: a refused action said on screen, and the WebSocket's second lock.

The sign-in page itself is served by the middleware (monitor.auth_pages), before any Dash script loads.
"""

from __future__ import annotations

import logging

from dash import ctx, hooks, set_props

from monitor import auth

log = logging.getLogger(__name__)
_registered = False


def show_refusal(error: Exception) -> None:
    """The app's `on_error`: an action refused by the server is said in the callback's feedback line (its
    first `children` output), as "refused: <why>"; any other error is raised as before."""
    if not isinstance(error, auth.Refused):
        raise error
    outputs = ctx.outputs_list
    first = outputs[0] if isinstance(outputs, list) and outputs else outputs
    if isinstance(first, dict) and str(first.get("property", "")).split("@")[0] == "children":
        set_props(first["id"], {"children": f"refused: {error}"})
    else:
        log.warning("refused, with no feedback line to say it in: %s", error)


def check_websockets() -> None:
    """Register `auth.websocket_allowed` as Dash's `websocket_connect` hook (once per process)."""
    global _registered
    if not _registered:
        hooks.websocket_connect()(auth.websocket_allowed)
        _registered = True

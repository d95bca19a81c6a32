"""Serving the dashboard: the live hub, the app, and uvicorn, started and stopped together."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from monitor.app import create_app
from monitor.live import LiveHub
from monitor.store import EventLog

log = logging.getLogger(__name__)


def serve_dashboard(
    broker: str, db: str, host: str, port: int, *, site: str = "clinic", announce: str | None = None
) -> None:
    """Runs until SIGINT/SIGTERM (uvicorn handles them), then closes the hub."""
    store = EventLog(db)
    hub = LiveHub(broker, store).start()
    app = create_app(hub, store, site=site)
    config = uvicorn.Config(
        app.server, host=host, port=port, log_level="warning", ws="websockets-sansio", lifespan="on"
    )
    server = uvicorn.Server(config)
    threading.Thread(
        target=_announce_when_started,
        args=(server, announce or f"dashboard: http://{host}:{port}/"),
        daemon=True,
    ).start()
    try:
        server.run()
    finally:
        hub.stop()
        store.close()


def _announce_when_started(server: uvicorn.Server, line: str) -> None:
    """Say the URL only when it answers, so whoever reads it (a person, a test) can use it at once."""
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.started:
        print(line, flush=True)

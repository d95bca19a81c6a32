"""Serving the dashboard: the live hub, the app, and uvicorn, started and stopped together."""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import uvicorn

from monitor.alarm_profile import AlarmProfile
from monitor.app import create_app
from monitor.audit import AuditLog
from monitor.auth import Guard, protect
from monitor.bus import Broker
from monitor.live import LiveHub
from monitor.signins import SessionStore, Throttle
from monitor.store import EventLog
from monitor.users import UserStore

log = logging.getLogger(__name__)


class _DashboardServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would kill the process before the demo
    closes its gateways, flushes the core and says where the recording is. We own the process's shutdown,
    so the signal only stops the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def serve_dashboard(
    broker: Broker,
    db: str,
    host: str,
    port: int,
    *,
    site: str = "clinic",
    announce: str | None = None,
    https: tuple[str, str] | None = None,
    profile: AlarmProfile | None = None,
) -> None:
    """Runs until SIGINT/SIGTERM (uvicorn handles them), then closes the hub.

    Everything is behind sign-in (monitor.auth); without a user who can sign in it refuses to start.
    `https` (certificate file, key file) serves HTTPS, and the sign-in cookie is then marked Secure."""
    users = UserStore(db)
    if users.active_count() == 0:
        print(
            f"kap-monitor web: nobody can sign in: {db} has no enabled user. Add one first:\n"
            f"  kap-monitor users add NAME --role admin --db {db}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2)
    store = EventLog(db)
    audit = AuditLog(db)
    sessions = SessionStore(db, users)
    hub = LiveHub(broker, store, guard=Guard(sessions, audit)).start()
    app = create_app(hub, store, site=site, profile=profile)
    warmup = secrets.token_urlsafe(16)
    asgi = protect(app, users, audit, sessions, throttle=Throttle(), warmup_token=warmup)
    tls = {"ssl_certfile": https[0], "ssl_keyfile": https[1]} if https else {}
    config = uvicorn.Config(
        asgi, host=host, port=port, log_level="warning", ws="websockets-sansio", lifespan="on", **tls
    )
    server = _DashboardServer(config)
    scheme = "https" if https else "http"
    line = announce or f"dashboard: {scheme}://{host}:{port}/"
    threading.Thread(
        target=_announce_when_started, args=(server, scheme, host, port, line, warmup), daemon=True
    ).start()
    try:
        server.run()
    finally:
        hub.stop()
        store.close()
        for part in (sessions, audit, users):
            part.close()


def _announce_when_started(
    server: uvicorn.Server, scheme: str, host: str, port: int, line: str, warmup: str
) -> None:
    """Say the URL only when it answers, so whoever reads it (a person, a test) can use it at once.

    It first fetches `/` itself: Dash 4.4's FastAPI backend runs its one-time setup (which collects
    `assets/`, our stylesheet) only on a request to `/` or `/_dash-*`, so a first visit straight to
    `/room/<room>` would otherwise get a page without its stylesheet: 16 px numbers on a bedside screen.
    """
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        return
    local = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    unverified = ssl._create_unverified_context()  # our own server: its certificate may name another host
    try:
        request = urllib.request.Request(f"{scheme}://{local}:{port}/", headers={"X-KAP-Warmup": warmup})
        with urllib.request.urlopen(request, timeout=10, context=unverified) as response:
            response.read()
    except OSError as exc:
        log.warning("dashboard warm-up request failed: %s", exc)
    print(line, flush=True)

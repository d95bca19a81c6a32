"""Roles, sign-in lifetimes, the brake on failed sign-ins and the audit trail, on an injected clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor import auth
from monitor.audit import REFUSED, AuditEntry, AuditLog, to_csv
from monitor.signins import SessionStore, Throttle
from monitor.users import User, UserStore
from tests.test_users import FAST


class FakeClock:
    def __init__(self, t: float = 1_795_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


NURSE = User("ana", "nurse", ("room1",))
SUPERVISOR, VIEWER, ADMIN = User("lee", "supervisor"), User("wall", "viewer"), User("it", "admin")


@pytest.mark.parametrize(
    ("user", "action", "room", "allowed"),
    [
        (NURSE, "alarm_ack", "room1", True),
        (NURSE, "dose", "room1", True),
        (NURSE, "command:measure", "room1", True),
        (NURSE, "alarm_ack", "room2", False),  # not her room
        (NURSE, "limit_change", "room1", False),  # a supervisor's
        (SUPERVISOR, "alarm_ack", "room7", True),
        (SUPERVISOR, "limit_change", "room7", True),
        (SUPERVISOR, "session_end", "room7", True),
        (VIEWER, "note", "room1", False),
        (VIEWER, "audio_pause", "room1", False),
        (ADMIN, "dose", "room1", False),
    ],
)
def test_each_role_may_take_only_its_actions(user: User, action: str, room: str, allowed: bool) -> None:
    assert (auth.refusal(user, action, room) is None) is allowed


def test_a_refusal_says_why() -> None:
    assert auth.refusal(NURSE, "note", "room2") == "ana is assigned to room1, not room2"
    assert auth.refusal(VIEWER, "audio_pause", "room1") == "wall is a viewer and may not pause audio"


@pytest.fixture
def parts(tmp_path: Path):  # type: ignore[no-untyped-def]
    db, clock = tmp_path / "kap.sqlite", FakeClock()
    users = UserStore(db, FAST)
    return users, SessionStore(db, users, clock), AuditLog(db), clock


def test_a_sign_in_ends_after_its_users_idle_time_and_activity_keeps_it(parts) -> None:  # type: ignore[no-untyped-def]
    users, sessions, _, clock = parts
    ana = users.add("ana", "nurse", "pw", rooms=["room1"])  # 30 min
    wall = users.add("wall", "viewer", "pw")  # 12 h
    ana_token, wall_token = sessions.create(ana, "10.0.0.5"), sessions.create(wall, "10.0.0.9")
    clock.t += 29 * 60
    signin, _ = sessions.check(ana_token)
    assert signin is not None and signin.user.name == "ana" and signin.client == "10.0.0.5"
    sessions.touch(signin.token_hash)  # a page load or an action
    clock.t += 29 * 60
    assert sessions.check(ana_token)[0] is not None, "activity restarted the idle time"
    clock.t += 31 * 60
    assert sessions.check(ana_token) == (None, "idle")
    clock.t -= 31 * 60
    assert sessions.check(ana_token) == (None, "ended"), "an ended sign-in stays ended"
    assert sessions.check(wall_token)[0] is not None, "a wall display stays signed in for 12 h"
    clock.t += 12 * 3600
    assert sessions.check(wall_token) == (None, "idle")
    assert sessions.check("forged") == (None, "unknown") and sessions.check(None) == (None, "")


def test_signing_out_or_disabling_ends_a_sign_in_at_once(parts) -> None:  # type: ignore[no-untyped-def]
    users, sessions, _, _ = parts
    lee = users.add("lee", "supervisor", "pw")
    first, second = sessions.create(lee, "a"), sessions.create(lee, "b")
    sessions.end(first, "signed out")
    assert sessions.check(first) == (None, "ended") and sessions.check(second)[0] is not None
    users.set_disabled("lee")
    assert sessions.check(second) == (None, "disabled")


def test_the_cookie_token_is_never_stored(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users, sessions, _, _ = parts
    token = sessions.create(users.add("lee", "supervisor", "pw"), "a")
    stored = (
        sqlite3.connect(tmp_path / "kap.sqlite").execute("SELECT token_hash FROM web_sessions").fetchall()
    )
    assert token not in str(stored)


def test_failed_sign_ins_are_slowed_exponentially_per_name_and_per_address() -> None:
    clock = FakeClock()
    throttle = Throttle(clock)
    assert throttle.wait_s("ana", "10.0.0.5") == 0
    waits = []
    for _ in range(5):
        throttle.failed("ana", "10.0.0.5")
        waits.append(throttle.wait_s("ana", "10.0.0.5"))
    assert waits == [1, 2, 4, 8, 16]
    assert throttle.wait_s("ana", "10.0.0.77") == 16, "another address does not reset the name's brake"
    assert throttle.wait_s("bob", "10.0.0.5") == 16, "another name from the same address is slowed too"
    assert throttle.wait_s("bob", "10.0.0.6") == 0
    clock.t += 16
    assert throttle.wait_s("ana", "10.0.0.5") == 0
    for _ in range(20):
        throttle.failed("eve", "10.6.6.6")
    assert throttle.wait_s("eve", "10.6.6.6") == 300, "at most 5 minutes"
    throttle.succeeded("ana", "10.0.0.5")
    assert throttle.wait_s("ana", "10.0.0.5") == 0


def test_the_guard_checks_the_signed_in_user_now_and_audits_refusals(parts) -> None:  # type: ignore[no-untyped-def]
    users, sessions, audit, clock = parts
    token = sessions.create(users.add("ana", "nurse", "pw", rooms=["room1"]), "10.0.0.5")
    guard = auth.Guard(sessions, audit, clock)
    with pytest.raises(auth.Refused, match="sign in first"):
        guard.authorize("note", "clinic", "room1")  # nobody in this context
    marker = auth.current_principal.set(auth.Principal(token, "10.0.0.5"))
    try:
        user, client = guard.authorize("note", "clinic", "room1")
        assert (user.name, client) == ("ana", "10.0.0.5")
        with pytest.raises(auth.Refused, match="assigned to room1, not room2"):
            guard.authorize("note", "clinic", "room2")
        clock.t += 31 * 60
        with pytest.raises(auth.Refused, match="idle time"):
            guard.authorize("note", "clinic", "room1")
    finally:
        auth.current_principal.reset(marker)
    refused = [(e.user, e.action, e.room, e.detail) for e in audit.entries()]
    assert refused == [
        ("-", REFUSED, "room1", "note: sign in first"),
        ("ana", REFUSED, "room2", "note: ana is assigned to room1, not room2"),
        ("ana", REFUSED, "room1", "note: your sign-in ended after its idle time: sign in again"),
    ]


def test_the_audit_trail_is_append_only(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "kap.sqlite")
    audit.append(AuditEntry(1.0, "ana", "sign_in", "10.0.0.5"))
    conn = sqlite3.connect(tmp_path / "kap.sqlite")
    for sql in ("UPDATE audit SET user = 'eve'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    assert [e.user for e in audit.entries()] == ["ana"]


def test_the_csv_export_turns_no_typed_name_into_a_formula() -> None:
    rows = to_csv([AuditEntry(0.0, "=HYPERLINK(1)", "sign_in_failed", "10.0.0.5")]).splitlines()
    assert rows[0] == "time (UTC),user,action,from,site,room,detail"
    assert rows[1].startswith("1970-01-01T00:00:00") and "'=HYPERLINK(1)" in rows[1]


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/room/room1", "/room/room1"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/signin", "/"),
    ],
)
def test_after_sign_in_only_a_path_of_this_server_is_followed(target: str, safe: str) -> None:
    assert auth.safe_next(target) == safe


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"host": "clinic:8050", "origin": "http://clinic:8050"}, True),
        ({"host": "clinic:8050", "referer": "http://clinic:8050/signin"}, True),
        ({"host": "clinic:8050", "origin": "http://evil.example"}, False),
        ({"host": "clinic:8050", "origin": "null"}, False),
        ({"host": "clinic:8050"}, False),
    ],
)
def test_a_form_post_must_come_from_this_server(headers: dict[str, str], ok: bool) -> None:
    scope = {"headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    assert auth.same_origin(scope) is ok


def run_asgi(app, path: str, cookie: str = "") -> tuple[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    """One GET through an ASGI app, as uvicorn would send it."""
    import asyncio

    headers = [(b"host", b"clinic:8050")] + ([(b"cookie", cookie.encode())] if cookie else [])
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": headers}
    scope["client"] = ("10.0.0.5", 50000)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


def test_a_page_load_after_the_idle_time_goes_to_the_sign_in_page_and_is_audited(parts) -> None:  # type: ignore[no-untyped-def]
    users, sessions, audit, clock = parts
    seen: list[auth.Principal | None] = []

    async def dashboard(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(auth.current_principal.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = auth.AuthMiddleware(
        dashboard, users=users, sessions=sessions, audit=audit, throttle=Throttle(clock), clock=clock
    )
    token = sessions.create(users.add("ana", "nurse", "pw", rooms=["room1"]), "10.0.0.5")
    cookie = f"{auth.COOKIE}={token}"
    assert run_asgi(app, "/room/room1", cookie)[0] == 200
    assert seen == [auth.Principal(token, "10.0.0.5")], "the dashboard knows who asks"
    clock.t += 25 * 60
    assert run_asgi(app, "/room/room1", cookie)[0] == 200, "a page load is activity"
    clock.t += 25 * 60
    assert run_asgi(app, "/_dash-update-component", cookie)[0] == 200, "still signed in: 25 min idle"
    clock.t += 6 * 60  # callbacks alone are not activity: 31 min since the last page load
    status, headers = run_asgi(app, "/room/room1", cookie)
    assert status == 303 and headers["location"] == "/signin?next=/room/room1"
    assert [(e.user, e.action, e.client) for e in audit.entries()] == [("ana", "sign_in_expired", "10.0.0.5")]
    assert len(seen) == 3


def test_dashs_websocket_hook_is_a_second_lock_behind_the_middleware() -> None:
    from types import SimpleNamespace

    from monitor.layouts import signin

    signin.check_websockets()
    from dash._hooks import HooksManager

    assert auth.websocket_allowed in [h.func for h in HooksManager.get_hooks("websocket_connect")]
    protected = SimpleNamespace(state=SimpleNamespace(kap_sign_in_required=True))
    unprotected = SimpleNamespace(state=SimpleNamespace())

    def socket(app, **scope):  # type: ignore[no-untyped-def]
        return SimpleNamespace(scope={"app": app, **scope})

    assert auth.websocket_allowed(socket(protected)) == (4003, "sign in first")
    assert auth.websocket_allowed(socket(protected, **{"kap.user": "ana"})) is True
    assert auth.websocket_allowed(socket(unprotected)) is True, "an app without sign-in is left alone"

"""Sign-in, roles and the server-side check of every action.

`AuthMiddleware` is plain ASGI around the dashboard's FastAPI server, so nothing reaches Dash without a
valid sign-in: pages, `/_dash-*` requests, assets and the WebSocket handshake (closed with 403 before it is
accepted). It serves the sign-in page, sign-out, `/auth/me` and the audit view itself. For the requests it
lets through it sets `current_principal`, a context variable that Dash copies into every callback (sync
callbacks run in a thread pool with a copy of the context; async ones in tasks that inherit it), so the
live hub can check each action against the role of whoever is signed in, as the users table says now.

Roles (checked on the server for every action, whatever the page shows):
- nurse: in the rooms assigned to them: acknowledge, pause audio, side effects, notes, doses,
  assessments, session start and end, BP commands;
- supervisor: all of that in every room (escalated alarms included), and limit changes;
- viewer: read-only (live pages, replay);
- admin: users, rooms and the clinic profile (not clinical actions); with supervisors, the audit view.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

from monitor import audit as audit_mod
from monitor.audit import AuditEntry, AuditLog
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.signins import SessionStore, SignIn, Throttle
from monitor.users import User, UserStore

log = logging.getLogger(__name__)

COOKIE = "kap_session"
SIGN_IN_PATH, SIGN_OUT_PATH, ME_PATH = "/signin", "/signout", "/auth/me"
AUDIT_PATH, AUDIT_CSV_PATH = "/audit", "/audit.csv"
MAX_FORM = 16 * 1024

CLINICAL_ACTIONS = frozenset(
    {"alarm_ack", "audio_pause", "side_effect", "note", "dose", "assessment", "session_start", "session_end"}
)
COMMANDS = frozenset({"command:measure", "command:set_interval", "command:abort"})
#: taking a recorded session out (CSV, Parquet, event log, report): a review task, audited like an action
SESSION_EXPORT = "session_export"
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "nurse": CLINICAL_ACTIONS | COMMANDS | {SESSION_EXPORT},
    "supervisor": CLINICAL_ACTIONS | COMMANDS | {"limit_change", SESSION_EXPORT},
    "viewer": frozenset({SESSION_EXPORT}),
    "admin": frozenset(),
}
AUDIT_ROLES = ("supervisor", "admin")
#: what each action is called in a refusal
ACTION_WORDS = {
    "alarm_ack": "acknowledge alarms",
    "audio_pause": "pause audio",
    "side_effect": "record side effects",
    "note": "add notes",
    "dose": "log doses",
    "assessment": "record assessments",
    "session_start": "start sessions",
    "session_end": "end sessions",
    "limit_change": "change alarm limits",
    "command:measure": "start a BP measurement",
    "command:set_interval": "change the BP cycle",
    "command:abort": "stop a BP measurement",
    SESSION_EXPORT: "export sessions",
}
_CLIENT = re.compile(r"[^0-9A-Za-z.:_\-\[\]%]")


class Refused(PermissionError):
    """An action the signed-in user may not take; its text is shown on screen as is."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request or a WebSocket comes from: the sign-in's cookie and the client's address."""

    token: str
    client: str


current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "kap_principal", default=None
)


def refusal(user: User, action: str, room: str) -> str | None:
    """Why `user` may not take `action` in `room`, or None when they may."""
    if action not in ROLE_ACTIONS.get(user.role, frozenset()):
        article = "an" if user.role[0] in "aeiou" else "a"
        return f"{user.name} is {article} {user.role} and may not {ACTION_WORDS.get(action, action)}"
    if user.role == "nurse" and room not in user.rooms:
        assigned = ", ".join(user.rooms) or "no room"
        return f"{user.name} is assigned to {assigned}, not {room}"
    return None


def client_address(scope: dict[str, Any]) -> str:
    """The peer's address as the server saw it (behind a reverse proxy: the proxy's)."""
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    return _CLIENT.sub("", host)[:64] or "unknown"


class Guard:
    """The server-side check every dashboard action passes (through the live hub)."""

    def __init__(self, sessions: SessionStore, audit: AuditLog, clock: Clock = SYSTEM_CLOCK) -> None:
        self.sessions = sessions
        self.audit = audit
        self.clock = clock

    def authorize(self, action: str, site: str, room: str) -> tuple[User, str]:
        """The signed-in user and their address, or Refused (audited) with the reason."""
        principal = current_principal.get()
        signin, why = self.sessions.check(principal.token if principal else None)
        client = principal.client if principal else "unknown"
        if signin is None:
            reason = {"idle": "your sign-in ended after its idle time: sign in again"}.get(
                why, "sign in first"
            )
            self._refused(
                self.sessions.owner(principal.token if principal else None),
                action,
                client,
                site,
                room,
                reason,
            )
        assert signin is not None
        reason = refusal(signin.user, action, room)
        if reason:
            self._refused(signin.user.name, action, client, site, room, reason)
        self.sessions.touch(signin.token_hash)
        return signin.user, client

    def _refused(self, user: str, action: str, client: str, site: str, room: str, reason: str) -> None:
        self.audit.append(
            AuditEntry(
                self.clock.now(), user or "-", audit_mod.REFUSED, client, site, room, f"{action}: {reason}"
            )
        )
        log.warning(
            "refused %s by %s from %s in %s/%s: %s", action, user or "nobody", client, site, room, reason
        )
        raise Refused(reason)


def websocket_allowed(websocket: Any) -> bool | tuple[int, str]:
    """Dash's `websocket_connect` hook, a second lock behind the middleware: an app that requires sign-in
    accepts only a WebSocket the middleware let through with a user."""
    app = websocket.scope.get("app")
    required = getattr(getattr(app, "state", None), "kap_sign_in_required", False)
    if required and not websocket.scope.get("kap.user"):
        return (4003, "sign in first")
    return True


class AuthMiddleware:
    def __init__(
        self,
        app: Any,
        *,
        users: UserStore,
        sessions: SessionStore,
        audit: AuditLog,
        throttle: Throttle,
        clock: Clock = SYSTEM_CLOCK,
        warmup_token: str = "",
    ) -> None:
        """`warmup_token`: the server's own first request for `/` carries it in `X-KAP-Warmup` (Dash's
        FastAPI backend collects its assets only on a request that reaches it); random per process."""
        self.app = app
        self.warmup_token = warmup_token
        self.users = users
        self.sessions = sessions
        self.audit = audit
        self.throttle = throttle
        self.clock = clock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        token = _cookie(scope)
        if scope["type"] == "websocket":
            signin, _ = self.sessions.check(token)
            if signin is None:
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
            await self._pass(token, client, {**scope, "kap.user": signin.user.name}, receive, send)
            return
        await self._http(scope, receive, send, client, token)

    async def _http(
        self, scope: dict[str, Any], receive: Any, send: Any, client: str, token: str | None
    ) -> None:
        from monitor import auth_pages

        path, method = scope["path"], scope["method"]
        if self._is_warmup(scope):
            await self.app(scope, receive, send)
            return
        if path == SIGN_IN_PATH:
            await (
                self._sign_in(scope, receive, send, client)
                if method == "POST"
                else auth_pages.signin_form(scope, send)
            )
            return
        if path == ME_PATH:
            signin, _ = self.sessions.check(token)
            await auth_pages.me(send, signin)
            return
        signin, why = self.sessions.check(token)
        if path == SIGN_OUT_PATH:
            if signin is not None and method == "POST":
                await self._sign_out(scope, send, signin, client)
            else:
                await auth_pages.redirect(send, SIGN_IN_PATH)
            return
        if signin is None:
            if why == "idle":
                who = self.sessions.owner(token) or "-"
                self.audit.append(AuditEntry(self.clock.now(), who, audit_mod.SIGN_IN_EXPIRED, client))
            if method == "GET" and not path.startswith("/_dash-"):
                target = path + (
                    ("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else ""
                )
                await auth_pages.redirect(send, f"{SIGN_IN_PATH}?next={quote(target)}")
            else:
                await auth_pages.plain(send, 401, "sign in first")
            return
        if path in (AUDIT_PATH, AUDIT_CSV_PATH):
            await auth_pages.audit_view(scope, send, signin, self.audit, self.clock, client)
            return
        if method == "GET" and not path.startswith(("/_dash-", "/assets/", "/_favicon")):
            self.sessions.touch(signin.token_hash)  # a page load is activity
        await self._pass(token, client, scope, receive, send)

    def _is_warmup(self, scope: dict[str, Any]) -> bool:
        given = _headers(scope).get("x-kap-warmup", "")
        return (
            bool(self.warmup_token and given)
            and scope["path"] == "/"
            and scope["method"] == "GET"
            and secrets.compare_digest(given, self.warmup_token)
        )

    async def _pass(
        self, token: str | None, client: str, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        marker = current_principal.set(Principal(token or "", client))
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(marker)

    async def _sign_in(self, scope: dict[str, Any], receive: Any, send: Any, client: str) -> None:
        from monitor import auth_pages

        if not same_origin(scope):
            await auth_pages.plain(send, 403, "sign-in refused: the form must come from this server")
            return
        form = await _read_form(receive)
        name, password = form.get("name", "").strip()[:64], form.get("password", "")
        target = safe_next(form.get("next", "/"))
        now = self.clock.now()
        wait = self.throttle.wait_s(name, client)
        if wait > 0:
            self.audit.append(
                AuditEntry(now, name or "-", audit_mod.SIGN_IN_THROTTLED, client, detail=f"{wait:.0f} s")
            )
            message = f"Too many failed sign-ins: try again in {wait:.0f} s."
            await auth_pages.signin_form(scope, send, status=429, message=message, name=name, target=target)
            return
        user = await asyncio.to_thread(self.users.verify, name, password)
        if user is None:
            failures = self.throttle.failed(name, client)
            self.audit.append(
                AuditEntry(now, name or "-", audit_mod.SIGN_IN_FAILED, client, detail=f"{failures} in a row")
            )
            log.warning("failed sign-in for %r from %s (%d in a row)", name, client, failures)
            message = "Wrong name or password, or the account is disabled."
            await auth_pages.signin_form(scope, send, status=401, message=message, name=name, target=target)
            return
        self.throttle.succeeded(name, client)
        token = self.sessions.create(user, client)
        self.audit.append(AuditEntry(now, user.name, audit_mod.SIGN_IN, client, detail=user.role))
        await auth_pages.redirect(send, target, cookie=_set_cookie(scope, token))

    async def _sign_out(self, scope: dict[str, Any], send: Any, signin: SignIn, client: str) -> None:
        from monitor import auth_pages

        if not same_origin(scope):
            await auth_pages.plain(send, 403, "sign-out refused: the form must come from this server")
            return
        self.sessions.end_hash(signin.token_hash, "signed out")
        self.audit.append(AuditEntry(self.clock.now(), signin.user.name, audit_mod.SIGN_OUT, client))
        await auth_pages.redirect(send, SIGN_IN_PATH, cookie=_set_cookie(scope, "", max_age=0))


def protect(
    dash_app: Any, users: UserStore, audit: AuditLog, sessions: SessionStore, **kwargs: Any
) -> AuthMiddleware:
    """The dashboard's ASGI app behind sign-in (serve the returned app, not `dash_app.server`)."""
    dash_app.server.state.kap_sign_in_required = True
    return AuthMiddleware(dash_app.server, users=users, sessions=sessions, audit=audit, **kwargs)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(scope: dict[str, Any]) -> str | None:
    raw = _headers(scope).get("cookie", "")
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE and value:
            return value
    return None


def _set_cookie(scope: dict[str, Any], token: str, max_age: int | None = None) -> str:
    """HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure over TLS."""
    parts = [f"{COOKIE}={token}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if scope.get("scheme") in ("https", "wss"):
        parts.append("Secure")
    return "; ".join(parts)


def same_origin(scope: dict[str, Any]) -> bool:
    """A form post's Origin (or Referer) names this server: another site cannot post it (CSRF)."""
    headers = _headers(scope)
    source = headers.get("origin") or headers.get("referer") or ""
    host = headers.get("host", "")
    return bool(host) and source not in ("", "null") and urlparse(source).netloc == host


def safe_next(target: str) -> str:
    """Only a path on this server: never `//evil.example` or `https://...` (an open redirect)."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or target.startswith(SIGN_IN_PATH)
    ):
        return "/"
    return target


async def _read_form(receive: Any) -> dict[str, str]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM or not message.get("more_body"):
            break
    fields = parse_qs(body[:MAX_FORM].decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}

"""The pages the sign-in middleware serves itself: the sign-in form, `/auth/me`, and the audit view.

Plain server-rendered HTML (every value escaped), so they work before any Dash script is allowed to load,
and the audit view is checked on the server for each request (a Dash page would be rendered by a callback
that a direct request can reach).
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from monitor import audit as audit_mod
from monitor import auth
from monitor.audit import AuditEntry, AuditLog
from monitor.clock import Clock
from monitor.signins import SignIn

MAX_ROWS_SHOWN = 2000
STYLE = """
body{background:#1a1b1e;color:#c1c2c5;font-family:system-ui,sans-serif;margin:2rem}
h1{font-size:1.4rem;color:#fff} a{color:#74c0fc} .msg{color:#ff8787}
form.signin{display:flex;flex-direction:column;gap:.6rem;max-width:20rem}
input,button{font-size:1rem;padding:.4rem;background:#25262b;color:#fff;border:1px solid #373a40;
  border-radius:4px}
button{background:#1971c2;cursor:pointer} table{border-collapse:collapse;font-size:.9rem}
td,th{border-bottom:1px solid #373a40;padding:.25rem .6rem;text-align:left} form.filters{margin:1rem 0}
"""


async def _send(response: Response, send: Any) -> None:
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} - KAP Monitor</title>"
        f"<meta name='viewport' content='width=device-width'><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


async def signin_form(
    scope: dict[str, Any],
    send: Any,
    *,
    status: int = 200,
    message: str = "",
    name: str = "",
    target: str = "",
) -> None:
    if not target:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        target = auth.safe_next(query.get("next", ["/"])[0])
    said = f"<p class='msg' id='signin-message'>{html.escape(message)}</p>" if message else ""
    body = (
        "<h1>KAP Monitor: sign in</h1>"
        f"{said}<form class='signin' method='post' action='{auth.SIGN_IN_PATH}'>"
        f"<label>Name <input id='signin-name' name='name' autocomplete='username' value='{html.escape(name)}'"
        " required autofocus></label>"
        "<label>Password <input id='signin-password' name='password' type='password'"
        " autocomplete='current-password' required></label>"
        f"<input type='hidden' name='next' value='{html.escape(target)}'>"
        "<button id='signin-submit' type='submit'>Sign in</button></form>"
    )
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    await _send(HTMLResponse(_page("Sign in", body), status_code=status, headers=headers), send)


async def me(send: Any, signin: SignIn | None) -> None:
    """Who is signed in, for the badge on every page (200 either way, so a browser logs no error)."""
    if signin is None:
        payload: dict[str, object] = {"signed_in": False}
    else:
        u = signin.user
        payload = {"signed_in": True, "name": u.name, "role": u.role, "rooms": list(u.rooms)}
        payload["audit"] = u.role in auth.AUDIT_ROLES
    await _send(JSONResponse(payload, headers={"Cache-Control": "no-store"}), send)


async def redirect(send: Any, location: str, *, cookie: str = "") -> None:
    headers = {"Location": location, "Cache-Control": "no-store"}
    response = Response(status_code=303, headers=headers)
    if cookie:
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
    await _send(response, send)


async def plain(send: Any, status: int, text: str) -> None:
    await _send(PlainTextResponse(text, status_code=status), send)


def _day(text: str, default: float) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return default


async def audit_view(
    scope: dict[str, Any], send: Any, signin: SignIn, log: AuditLog, clock: Clock, client: str
) -> None:
    """`/audit` (a table with filters) and `/audit.csv` (the same rows): supervisors and admins only."""
    user = signin.user
    if user.role not in auth.AUDIT_ROLES:
        log.append(AuditEntry(clock.now(), user.name, audit_mod.REFUSED, client, detail="audit view"))
        await plain(
            send, 403, f"{user.name} is a {user.role}: only supervisors and admins see the audit trail"
        )
        return
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    now = clock.now()
    since = _day(query.get("from", ""), now - 7 * 86400)
    until = _day(query.get("to", ""), now) + (86400 if query.get("to") else 1)
    who, what = query.get("user", "").strip()[:64], query.get("action", "").strip()[:64]
    rows = log.trail(since, until, user=who, action=what)
    first, last = (
        time.strftime("%Y-%m-%d", time.gmtime(since)),
        time.strftime("%Y-%m-%d", time.gmtime(until - 1)),
    )
    if scope["path"] == auth.AUDIT_CSV_PATH:
        log.append(
            AuditEntry(now, user.name, "audit_export", client, detail=f"{len(rows)} rows {first}..{last}")
        )
        disposition = f'attachment; filename="kap-audit-{first}-{last}.csv"'
        response = Response(
            audit_mod.to_csv(rows), media_type="text/csv", headers={"Content-Disposition": disposition}
        )
        await _send(response, send)
        return
    csv_link = f"{auth.AUDIT_CSV_PATH}?" + urlencode({"from": first, "to": last, "user": who, "action": what})
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(e)) + "</tr>"
        for e in rows[-MAX_ROWS_SHOWN:][::-1]
    )
    header = "".join(f"<th>{html.escape(h)}</th>" for h in audit_mod.CSV_HEADER)
    shown = f" (the latest {MAX_ROWS_SHOWN} shown; the CSV has all)" if len(rows) > MAX_ROWS_SHOWN else ""
    body = (
        f"<h1>Audit trail</h1><p><a href='/'>Home</a> · signed in as {html.escape(user.name)}</p>"
        "<form class='filters' method='get'>"
        f"From <input type='date' name='from' value='{first}'>"
        f" to <input type='date' name='to' value='{last}'>"
        f" user <input name='user' value='{html.escape(who)}'> action <input name='action'"
        f" value='{html.escape(what)}' placeholder='sign_in, dose...'>"
        " <button type='submit'>Show</button></form>"
        f"<p id='audit-count'>{len(rows)} entries{shown} · <a id='audit-csv' href='{html.escape(csv_link)}'>"
        f"Export CSV</a></p><table id='audit-table'><tr>{header}</tr>{cells}</table>"
    )
    await _send(HTMLResponse(_page("Audit", body), headers={"Cache-Control": "no-store"}), send)


def _cells(e: AuditEntry) -> list[str]:
    when = datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [when, e.user, e.action, e.client, e.site, e.room, e.detail]

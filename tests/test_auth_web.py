"""Sign-in enforced by the real `kap-monitor web` process: nothing reaches Dash without it, roles are checked
on the server for callbacks over HTTP and over the WebSocket, and every sign-in and action is audited."""

from __future__ import annotations

import http.client
import json
import ssl
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from monitor.audit import AuditLog
from monitor.store import EventLog
from monitor.users import UserStore
from tests.conftest import ensure_test_user, free_port
from tests.test_broker_acl import make_test_ca
from tests.test_users import FAST

PASSWORD = "s3cret-pass"


class Web:
    """An HTTP client for one server that follows no redirects and keeps one sign-in cookie."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.tls = tls
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.cookie = ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = (
            http.client.HTTPSConnection("127.0.0.1", self.port, timeout=20, context=self.tls)
            if self.tls
            else http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        )
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def sign_in(self, name: str, password: str = PASSWORD, *, origin: str | None = None, next_: str = "/"):  # type: ignore[no-untyped-def]
        form = urlencode({"name": name, "password": password, "next": next_}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin or self.origin}
        status, headers_back, text = self.request("POST", "/signin", form, headers)
        if status == 303 and "set-cookie" in headers_back:
            self.cookie = headers_back["set-cookie"].split(";")[0]
        return status, headers_back, text

    def websocket(self):  # type: ignore[no-untyped-def]
        headers = {"Origin": self.origin, **({"Cookie": self.cookie} if self.cookie else {})}
        scheme = "wss" if self.tls else "ws"
        url = f"{scheme}://127.0.0.1:{self.port}/_dash-ws-callback"
        return connect(url, additional_headers=headers, ssl=self.tls)

    def callback_body(self, trigger: str, page: dict[str, str]) -> dict[str, object]:
        """What the browser posts when `trigger` is clicked on a bedside page showing `page`."""
        status, _, text = self.request("GET", "/_dash-dependencies")
        assert status == 200, text
        dep = next(d for d in json.loads(text) if any(i["id"] == trigger for i in d["inputs"]))
        output_id, _, prop = dep["output"].partition(".")
        states = {"page-live": page}
        return {
            "output": dep["output"],
            "outputs": {"id": output_id, "property": prop},
            "inputs": [{"id": trigger, "property": "n_clicks", "value": 1}],
            "state": [{**s, "value": states.get(s["id"])} for s in dep["state"]],
            "changedPropIds": [f"{trigger}.n_clicks"],
        }

    def click_over_http(self, trigger: str, page: dict[str, str]) -> str:
        body = json.dumps(self.callback_body(trigger, page)).encode()
        status, _, text = self.request(
            "POST", "/_dash-update-component", body, {"Content-Type": "application/json"}
        )
        assert status in (200, 204), (status, text)
        return text

    def click_over_websocket(self, trigger: str, page: dict[str, str]) -> str:
        """The same click sent as the browser does with WebSocket callbacks: run in Dash's thread pool."""
        request_id = uuid.uuid4().hex
        message = {"type": "callback_request", "requestId": request_id, "rendererId": "test"}
        with self.websocket() as ws:
            ws.send(json.dumps({**message, "payload": self.callback_body(trigger, page)}))
            received = ""
            deadline = time.monotonic() + 15
            while request_id not in received and time.monotonic() < deadline:
                received += ws.recv(timeout=15)
        return received


def bedside(room: str) -> dict[str, str]:
    return {"page": "bedside", "site": "clinic", "room": room}


@pytest.fixture
def web(room1, mosquitto, procs) -> Web:  # type: ignore[no-untyped-def]
    """room1 recording, and the dashboard with a nurse of room1, a viewer and an admin besides the tests'
    supervisor."""
    users = UserStore(room1.db, FAST)
    users.add("nina", "nurse", PASSWORD, rooms=["room1"])
    users.add("wall", "viewer", PASSWORD)
    users.add("it", "admin", PASSWORD)
    ensure_test_user(room1.db)
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    return Web(port)


def audit_actions(db: Path) -> list[tuple[str, str, str]]:
    return [(e.user, e.action, e.client) for e in AuditLog(db).entries()]


def test_nothing_reaches_the_dashboard_without_a_sign_in(web: Web) -> None:
    status, headers, _ = web.request("GET", "/room/room1")
    assert status == 303 and headers["location"] == "/signin?next=/room/room1"
    for method, path in (("GET", "/_dash-layout"), ("GET", "/_dash-dependencies")):
        assert web.request(method, path)[0] == 401, path
    body = json.dumps({"output": "x.children", "inputs": [], "state": []}).encode()
    assert (
        web.request("POST", "/_dash-update-component", body, {"Content-Type": "application/json"})[0] == 401
    )
    assert web.request("GET", "/assets/kap.css")[0] == 303
    with pytest.raises(InvalidStatus) as refused:
        web.websocket()
    assert refused.value.response.status_code == 403
    web.cookie = "kap_session=forged-token"
    assert web.request("GET", "/")[0] == 303
    with pytest.raises(InvalidStatus):
        web.websocket()
    status, _, page = web.request("GET", "/signin?next=/room/room1")
    assert status == 200 and "signin-password" in page and "value='/room/room1'" in page


def test_sign_in_and_out_with_a_safe_cookie_and_every_step_audited(web: Web, room1) -> None:  # type: ignore[no-untyped-def]
    assert web.sign_in("nina", origin="http://evil.example")[0] == 403, "another site cannot post the form"
    status, _, text = web.sign_in("nina", "wrong-pass")
    assert status == 401 and "Wrong name or password" in text and not web.cookie
    time.sleep(1.1)  # the brake after one failure
    status, headers, _ = web.sign_in("nina", next_="/room/room1")
    assert status == 303 and headers["location"] == "/room/room1"
    flags = [f.strip() for f in headers["set-cookie"].split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Secure" not in flags, "plain HTTP here"
    status, _, page = web.request("GET", "/room/room1")
    assert status == 200 and "_dash-config" in page
    with web.websocket() as ws:
        ws.send(json.dumps({"type": "heartbeat"}))
        assert "heartbeat_ack" in ws.recv(timeout=10)
    status, _, me = web.request("GET", "/auth/me")
    assert json.loads(me) == {
        "signed_in": True,
        "name": "nina",
        "role": "nurse",
        "rooms": ["room1"],
        "audit": False,
    }
    assert web.request("POST", "/signout", b"", {"Origin": web.origin})[1]["location"] == "/signin"
    assert web.request("GET", "/")[0] == 303, "the cookie signs no one in after sign-out"
    assert json.loads(web.request("GET", "/auth/me")[2]) == {"signed_in": False}
    assert audit_actions(room1.db) == [
        ("nina", "sign_in_failed", "127.0.0.1"),
        ("nina", "sign_in", "127.0.0.1"),
        ("nina", "sign_out", "127.0.0.1"),
    ]


def test_failed_sign_ins_are_slowed_down_and_logged(web: Web, room1) -> None:  # type: ignore[no-untyped-def]
    assert web.sign_in("nina", "wrong-1")[0] == 401
    status, _, text = web.sign_in("nina")  # the right password, too soon: not even checked
    assert status == 429 and "try again in 1 s" in text
    time.sleep(1.1)
    assert web.sign_in("nina", "wrong-2")[0] == 401
    status, _, text = web.sign_in("nina")
    assert status == 429 and "try again in 2 s" in text, "the delay doubles"
    time.sleep(2.1)
    assert web.sign_in("nina")[0] == 303
    assert [a for _, a, _ in audit_actions(room1.db)] == [
        "sign_in_failed",
        "sign_in_throttled",
        "sign_in_failed",
        "sign_in_throttled",
        "sign_in",
    ]


def test_each_action_is_checked_on_the_server_and_recorded_as_the_signed_in_user(web: Web, room1) -> None:  # type: ignore[no-untyped-def]
    assert web.sign_in("nina")[0] == 303
    said = web.click_over_http("pause-audio", bedside("room2"))
    assert "refused: nina is assigned to room1, not room2" in said
    said = web.click_over_websocket("pause-audio", bedside("room2"))
    assert "refused: nina is assigned to room1, not room2" in said, "the same check in Dash's thread pool"
    assert "audio paused" in web.click_over_http("pause-audio", bedside("room1"))
    assert "all alarms acknowledged" in web.click_over_websocket("ack-all", bedside("room1"))

    store = EventLog(room1.db)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(store.clinical_events("clinic", "room1")) < 2:
        time.sleep(0.1)
    recorded = [(e.type, e.author, e.data["client"]) for e in store.clinical_events("clinic", "room1")]
    assert recorded == [("audio_pause", "nina", "127.0.0.1"), ("alarm_ack", "nina", "127.0.0.1")]
    assert store.clinical_events("clinic", "room2") == [], "a refused action reaches nobody"

    viewer = Web(web.port)
    assert viewer.sign_in("wall")[0] == 303
    assert "refused: wall is a viewer" in viewer.click_over_http("pause-audio", bedside("room1"))
    assert "refused: wall is a viewer" in viewer.click_over_websocket("ack-all", bedside("room1"))
    admin = Web(web.port)
    assert admin.sign_in("it")[0] == 303
    said = admin.click_over_http("pause-audio", bedside("room1"))
    assert "refused: it is an admin and may not pause audio" in said
    refusals = [(e.user, e.room, e.detail) for e in AuditLog(room1.db).entries() if e.action == "refused"]
    assert refusals[:2] == [("nina", "room2", "audio_pause: nina is assigned to room1, not room2")] * 2
    assert [u for u, _, _ in refusals[2:]] == ["wall", "wall", "it"]

    # the audit view: supervisors and admins only, with sign-ins and clinical actions, who, when, where
    assert web.request("GET", "/audit")[0] == 403
    status, _, page = admin.request("GET", "/audit")
    assert status == 200 and "audio_pause" in page and "alarm_ack" in page and "sign_in" in page
    status, headers, csv = admin.request("GET", "/audit.csv?action=audio_pause")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    rows = csv.strip().splitlines()
    assert rows[0] == "time (UTC),user,action,from,site,room,detail"
    assert len(rows) == 2 and ",nina,audio_pause,127.0.0.1,clinic,room1," in rows[1]


def test_a_session_is_downloaded_by_who_may_review_it_and_every_download_audited(web: Web, room1) -> None:  # type: ignore[no-untyped-def]
    store = EventLog(room1.db)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not store.session_records():
        time.sleep(0.1)
    (record,) = [r for r in store.session_records() if r.room == "room1"]
    path = f"/export/{record.id}"
    assert web.request("GET", f"{path}/csv")[0] == 303, "not signed in: to the sign-in page"
    assert web.sign_in("nina")[0] == 303  # room1's nurse
    status, headers, csv = web.request("GET", f"{path}/csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert f'filename="kap-session-{record.id}-room1-' in headers["content-disposition"]
    assert csv.splitlines()[0].startswith("session_id,site,room,time_utc,") and len(csv.splitlines()) > 1
    status, headers, report = web.request("GET", f"{path}/html")
    assert status == 200 and "<html" in report.lower()
    assert web.request("GET", f"{path}/xlsx")[0] == 404
    assert web.request("GET", "/export/99999/csv")[0] == 404
    viewer = Web(web.port)
    assert viewer.sign_in("wall")[0] == 303
    assert viewer.request("GET", f"{path}/jsonl")[0] == 200, "a viewer reviews sessions"
    admin = Web(web.port)
    assert admin.sign_in("it")[0] == 303
    status, _, said = admin.request("GET", f"{path}/csv")
    assert status == 403 and "it is an admin and may not export sessions" in said
    exports = [(e.user, e.action, e.room, e.detail) for e in AuditLog(room1.db).entries()]
    detail = f"session {record.id} as"
    assert [x for x in exports if x[1] == "session_export"] == [
        ("nina", "session_export", "room1", f"{detail} csv"),
        ("nina", "session_export", "room1", f"{detail} html"),
        ("wall", "session_export", "room1", f"{detail} jsonl"),
    ]
    assert ("it", "refused", "room1", "session_export: it is an admin and may not export sessions") in exports


def test_over_https_the_sign_in_cookie_is_secure(room1, mosquitto, procs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca, cert, key = make_test_ca(tmp_path / "tls")
    UserStore(room1.db, FAST).add("nina", "nurse", PASSWORD, rooms=["room1"])
    port = free_port()
    web = procs(
        "web",
        "--broker",
        mosquitto.address,
        "--db",
        str(room1.db),
        "--port",
        str(port),
        "--https-cert",
        str(cert),
        "--https-key",
        str(key),
    )
    assert f"dashboard: https://127.0.0.1:{port}/" in web.wait_for_output("dashboard:")
    client = Web(port, ssl.create_default_context(cafile=str(ca)))
    assert client.request("GET", "/")[0] == 303
    status, headers, _ = client.sign_in("nina")
    assert status == 303 and "Secure" in [f.strip() for f in headers["set-cookie"].split(";")]
    assert client.request("GET", "/room/room1")[0] == 200
    with client.websocket() as ws:
        ws.send(json.dumps({"type": "heartbeat"}))
        assert "heartbeat_ack" in ws.recv(timeout=10)


def test_web_wants_both_https_files(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "web",
            "--db",
            str(tmp_path / "k.sqlite"),
            "--https-cert",
            "c.pem",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "give both --https-cert and --https-key" in done.stderr

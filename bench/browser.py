"""Headless Chromium for the benchmarks: when a value reaches the DOM, and how many bytes a page receives.

Times. A MutationObserver installed in the page stamps each change of the watched element's text with
`performance.timeOrigin + performance.now()` (ms since the Unix epoch: Chromium anchors `timeOrigin` to
the wall clock at navigation and advances `now()` on a monotonic clock). Python stamps sends with
`time.time()`. Both read this machine's clock, but they are not the same call, so `clock_offset()` checks
the difference: it asks the page for its time between two `time.time()` readings many times and keeps the
reading with the shortest round trip (the offset is then known to within half that round trip). The
latencies subtract the offset measured before and after each run (their mean; both are reported).

Bytes. `NetworkMeter` sums the DevTools Network events of every target of the browser (the page, and
the SharedWorker in which Dash 4.4 keeps its callback WebSocket): `encodedDataLength` of each
`Network.loadingFinished` (a whole HTTP response as received: headers plus body, compressed if it was) and
the payload of each `Network.webSocketFrameReceived` plus its 2-10 frame header bytes (DevTools gives
WebSocket frames no encodedDataLength; the payload is what the page's JavaScript gets, after
permessage-deflate is undone). `bench.relay` counts the bytes on the wire as a cross-check.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psutil
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.remote_connection import RemoteConnection

#: seconds a WebDriver command may take before it fails
COMMAND_TIMEOUT_S = 30

CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--window-size=1400,1000",
)

OBSERVER_JS = """
const id = arguments[0];
const rec = window.__kapBench = {id: id, stamps: [], last: null};
const read = () => { const el = document.getElementById(id); return el ? el.textContent : null; };
rec.last = read();
new MutationObserver(() => {
  const v = read();
  if (v === rec.last) return;
  rec.last = v;
  const stamp = {v: v, t: performance.timeOrigin + performance.now(), f: null};
  rec.stamps.push(stamp);
  // the frame that paints it: stamped at the start of the next animation frame
  requestAnimationFrame(() => { stamp.f = performance.timeOrigin + performance.now(); });
}).observe(document.body, {subtree: true, childList: true, characterData: true});
return rec.last;
"""


#: the account every benchmark's dashboard has (`bench.harness.Stack.web` creates it)
BENCH_USER, BENCH_PASSWORD = "kap-bench", "kap-bench-password-1"


class SigningInChrome(webdriver.Chrome):
    """Chrome that signs in when a page answers with the sign-in form, as a nurse would once per browser."""

    def get(self, url: str) -> None:
        super().get(url)
        if "/signin" in self.current_url and "/signin" not in url:
            self.find_element(By.ID, "signin-name").send_keys(BENCH_USER)
            self.find_element(By.ID, "signin-password").send_keys(BENCH_PASSWORD)
            self.find_element(By.ID, "signin-submit").click()
            wait_until(lambda: "/signin" not in self.current_url, 20, "signed in")


def new_driver() -> webdriver.Chrome:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        raise RuntimeError("chromium and chromedriver are needed (make bench installs them with apt)")
    options = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="kap-bench-chromium-")
    for arg in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # a page too busy to answer (an overloaded machine) must fail a command, not hang the benchmark
    RemoteConnection.set_timeout(COMMAND_TIMEOUT_S)
    driver = SigningInChrome(service=Service(chromedriver), options=options)
    driver._kap_profile = profile  # type: ignore[attr-defined]
    return driver


def quit_driver(driver: webdriver.Chrome) -> None:
    """Quit, and end chromedriver's and Chromium's processes that did not go (a hung renderer)."""
    try:
        root = psutil.Process(driver.service.process.pid)
        tree = [root, *root.children(recursive=True)]
    except (psutil.Error, AttributeError):
        tree = []
    with contextlib.suppress(Exception):
        driver.quit()
    alive = [p for p in tree if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, still = psutil.wait_procs(alive, timeout=5)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()
    shutil.rmtree(getattr(driver, "_kap_profile", ""), ignore_errors=True)


def text_of(driver: webdriver.Chrome, element_id: str) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;", element_id
    )


def wait_until(predicate: Any, timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(poll)
    raise TimeoutError(f"{what} not within {timeout} s")


@dataclass
class ClockOffset:
    """browser clock minus time.time(), in seconds, known to within +- `uncertainty_s`."""

    offset_s: float
    uncertainty_s: float
    tries: int


def clock_offset(driver: webdriver.Chrome, tries: int = 30) -> ClockOffset:
    best: tuple[float, float] | None = None
    for _ in range(tries):
        t0 = time.time()
        browser_ms = driver.execute_script("return performance.timeOrigin + performance.now();")
        t1 = time.time()
        rtt = t1 - t0
        offset = browser_ms / 1000.0 - (t0 + t1) / 2
        if best is None or rtt < best[1]:
            best = (offset, rtt)
    assert best is not None
    return ClockOffset(best[0], best[1] / 2, tries)


def install_observer(driver: webdriver.Chrome, element_id: str) -> str | None:
    return driver.execute_script(OBSERVER_JS, element_id)  # type: ignore[no-any-return]


def take_stamps(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Every change seen so far: {"v": text, "t": ms epoch (DOM), "f": ms epoch (next frame) or None}."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "const r = window.__kapBench; const s = r.stamps; r.stamps = []; return s;"
    )


@dataclass
class ByteCount:
    http_bytes: int = 0
    ws_bytes: int = 0
    ws_frames: int = 0
    http_responses: int = 0
    by_url: dict[str, int] = field(default_factory=dict)
    #: WebSocket bytes by Dash message: "componentId.prop" of each set_props, else the message type
    by_component: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.http_bytes + self.ws_bytes


def _ws_frame_size(payload_len: int) -> int:
    header = 2 if payload_len < 126 else 4 if payload_len < 65536 else 10
    return header + payload_len


def _dash_messages(payload: str) -> dict[str, int]:
    """Approximate bytes of each message of a Dash WebSocket frame (one or a JSON array), by what it sets
    (re-encoded compactly, so the parts add up to about the frame, not exactly)."""
    try:
        decoded = json.loads(payload)
    except ValueError:
        return {"(not json)": len(payload)}
    out: dict[str, int] = {}
    for message in decoded if isinstance(decoded, list) else [decoded]:
        body = message.get("payload") if isinstance(message, dict) else None
        if isinstance(body, dict) and "componentId" in body:
            component = body["componentId"]
            name = component if isinstance(component, str) else json.dumps(component, sort_keys=True)
            key = f"{name}.{','.join(body.get('props', {}))}"
        else:
            key = str(message.get("type", "?")) if isinstance(message, dict) else "?"
        size = len(json.dumps(message, separators=(",", ":")).encode())
        out[key] = out.get(key, 0) + size
    return out


class NetworkMeter:
    """DevTools Network events of every target of the browser: the page and its workers.

    Dash 4.4 opens its callback WebSocket inside a SharedWorker (dash-ws-worker.js), a target of its own:
    chromedriver's `goog:loggingPrefs` performance log only follows the page, where that WebSocket is
    invisible. So the meter speaks CDP itself on Chromium's DevTools socket (chromedriver's
    `debuggerAddress`), auto-attaches to every target with `flatten`, enables Network in each session and
    sums what the events say was received.
    """

    def __init__(self, driver: webdriver.Chrome) -> None:
        from websockets.sync.client import connect

        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        with urllib.request.urlopen(f"http://{address}/json/version", timeout=10) as response:
            endpoint = json.load(response)["webSocketDebuggerUrl"]
        self._ws = connect(endpoint, max_size=None, open_timeout=10)
        self._lock = threading.Lock()
        self._next_id = 0
        self._count = ByteCount()
        self._urls: dict[str, str] = {}
        self.targets: dict[str, str] = {}  # session id -> target type
        self.ws_deflate: bool | None = None
        #: a list to keep the WebSocket payloads in (to see what a page is sent), or None
        self.keep_frames: list[str] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True, name="cdp-meter")
        self._reader.start()
        self._send(
            "Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": False, "flatten": True}
        )
        self._send("Target.setDiscoverTargets", {"discover": True})

    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> None:
        with self._lock:
            self._next_id += 1
            message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            self._ws.send(json.dumps(message))

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self._ws:
                self._on(json.loads(raw))

    def _on(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Target.targetCreated":
            info = params["targetInfo"]
            if info["type"] in ("page", "shared_worker", "worker", "service_worker") and not info.get(
                "attached"
            ):
                self._send("Target.attachToTarget", {"targetId": info["targetId"], "flatten": True})
        elif method == "Target.attachedToTarget":
            session = params["sessionId"]
            self.targets[session] = params["targetInfo"]["type"]
            self._send("Network.enable", {}, session)
            self._send("Runtime.runIfWaitingForDebugger", {}, session)
        elif method == "Network.responseReceived":
            self._urls[params["requestId"]] = params["response"].get("url", "")
        elif method == "Network.loadingFinished":
            size = int(params.get("encodedDataLength", 0))
            url = self._urls.pop(params["requestId"], "?").split("?")[0]
            key = "/" + url.split("/", 3)[-1] if "//" in url else url
            with self._lock:
                self._count.http_bytes += size
                self._count.http_responses += 1
                self._count.by_url[key] = self._count.by_url.get(key, 0) + size
        elif method == "Network.webSocketFrameReceived":
            response = params.get("response", {})
            payload = response.get("payloadData", "")
            size = len(base64.b64decode(payload)) if response.get("opcode") == 2 else len(payload.encode())
            if self.keep_frames is not None:
                self.keep_frames.append(payload)
            parts = _dash_messages(payload) if response.get("opcode") != 2 else {}
            with self._lock:
                self._count.ws_bytes += _ws_frame_size(size)
                self._count.ws_frames += 1
                self._count.by_url["(websocket)"] = self._count.by_url.get("(websocket)", 0) + size
                for key, n in parts.items():
                    self._count.by_component[key] = self._count.by_component.get(key, 0) + n
        elif method == "Network.webSocketHandshakeResponseReceived":
            headers = params.get("response", {}).get("headers", {})
            ext = " ".join(str(v) for k, v in headers.items() if k.lower() == "sec-websocket-extensions")
            self.ws_deflate = "permessage-deflate" in ext

    def take(self) -> ByteCount:
        """What was received since the last take."""
        with self._lock:
            count, self._count = self._count, ByteCount()
        return count

    def measure(self, seconds: float, windows: int = 1, relay: Any = None) -> list[dict[str, Any]]:
        """Bytes received per second, over `windows` consecutive windows of `seconds` each; with a
        bench.relay.CountingRelay between browser and server, also the bytes on the wire."""
        self.take()
        if relay is not None:
            relay.take()
        out = []
        for _ in range(windows):
            t0 = time.monotonic()
            time.sleep(seconds)
            count = self.take()
            wire = relay.take() if relay is not None else None
            elapsed = time.monotonic() - t0
            out.append(
                {
                    "seconds": round(elapsed, 3),
                    "bytes_per_s": count.total / elapsed,
                    "wire_bytes_per_s": None if wire is None else wire / elapsed,
                    "http_bytes_per_s": count.http_bytes / elapsed,
                    "ws_bytes_per_s": count.ws_bytes / elapsed,
                    "ws_frames_per_s": count.ws_frames / elapsed,
                    "http_responses_per_s": count.http_responses / elapsed,
                    "by_url_per_s": {k: round(v / elapsed, 1) for k, v in sorted(count.by_url.items())},
                    "ws_by_component_per_s": {
                        k: round(v / elapsed, 1)
                        for k, v in sorted(count.by_component.items(), key=lambda kv: -kv[1])
                    },
                }
            )
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
        self._reader.join(timeout=5)


def number_in(element_id: str) -> str:
    """JavaScript: true once `#element_id` shows a number (the page has live values)."""
    return f"const e = document.getElementById('{element_id}'); return !!e && /^[0-9]/.test(e.textContent);"


def page_bytes(
    driver: webdriver.Chrome, url: str, ready_js: str, seconds: float, windows: int
) -> dict[str, Any]:
    """Open `url` through a counting relay, wait until `ready_js` is true, then count what the browser
    receives over `windows` windows of `seconds`: DevTools' count and the wire's."""
    from urllib.parse import urlsplit

    from bench.relay import CountingRelay

    parsed = urlsplit(url)
    relay = CountingRelay(int(parsed.port or 80)).start()
    meter = NetworkMeter(driver)
    try:
        driver.get(f"http://127.0.0.1:{relay.port}{parsed.path}")
        wait_until(lambda: driver.execute_script(ready_js), 60, f"{url} showing live values")
        time.sleep(2.0)  # past the page load
        measured = meter.measure(seconds, windows, relay)
        return {"windows": measured, "ws_deflate": meter.ws_deflate}
    finally:
        meter.close()
        with contextlib.suppress(Exception):
            driver.get("about:blank")
        relay.stop()

"""`kap-monitor demo`: up within 30 s with four live rooms, and Ctrl-C leaves the recording in place."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.store import EventLog
from tests.conftest import free_port

pytestmark = pytest.mark.browser


def test_demo_runs_four_live_rooms_and_stops_cleanly(procs, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, port = tmp_path / "demo.sqlite", free_port()
    started = time.monotonic()
    demo = procs("demo", "--db", str(db), "--port", str(port))
    out = demo.wait_for_output("KAP Monitor demo is up", timeout=30)
    assert time.monotonic() - started < 30
    url = re.search(r"open (http://\S+)", out).group(1)  # type: ignore[union-attr]
    assert url == f"http://127.0.0.1:{port}/"
    assert "sign in as demo / demo" in out, "the demo says how to sign in"

    browser.get(url)
    # read in the page in one go: the cards are patched as values arrive, so a found element can go stale
    shown = "return [...document.querySelectorAll('.room-spo2')].map(e => e.textContent.trim())"
    WebDriverWait(browser, 15).until(lambda b: sum(t.isdigit() for t in b.execute_script(shown)) == 4)
    # read in one go: the cards re-render as values arrive, and a found element can go stale
    rooms = browser.execute_script(
        "return [...document.querySelectorAll('.room-card-name')].map(e => e.textContent.trim())"
    )
    assert rooms == ["room1", "room2", "room3", "room4"]
    browser.get(url + "room/room2")
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "spo2-value").text.isdigit())
    first = browser.find_element(By.ID, "last-reading").text
    WebDriverWait(browser, 5).until(lambda b: b.find_element(By.ID, "last-reading").text != first)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

    demo.kill(signal.SIGINT)  # Ctrl-C
    assert demo.process.returncode == 0
    assert "events recorded in" in demo.output()
    log = EventLog(db)
    assert {r.room for r in log.recordings()} == {"room1", "room2", "room3", "room4"}
    assert all(log.observations("clinic", room) for room in ("room1", "room2", "room3", "room4"))

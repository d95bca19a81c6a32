"""Replay in headless Chromium, all real: a scripted desaturation and a note recorded by the core from a
simulated oximeter, then `/replay` plays it at 16x and jumps to a moment, and the page shows the reading
recorded at that moment and exactly the alarms the core had recorded by then; the engine re-run over the
log reproduces those transitions."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from monitor import mdc, wire
from monitor.alarm_profile import load_profile
from monitor.alarm_runner import replay
from monitor.store import EventLog
from monitor.views import RoomState
from tests.conftest import free_port
from tests.test_alarms_live import AlarmTopic, wait_until
from tests.test_browser_room import text

pytestmark = pytest.mark.browser


def position(browser) -> int:  # type: ignore[no-untyped-def]
    """Seconds into the session, from the player's clock line ("14:03:07 · 0:00:42 of 0:01:10 · ...")."""
    shown = text(browser, "replay-clock").split(" · ")
    if len(shown) < 2:
        return -1
    hours, minutes, seconds = (int(p) for p in shown[1].split()[0].split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_a_recorded_session_replayed_at_16x_and_scrubbed_shows_what_was_recorded(  # type: ignore[no-untyped-def]
    room1, mosquitto, procs, browser
) -> None:
    topic = AlarmTopic(mosquitto.port)
    try:
        wait_until(lambda: EventLog(room1.db).observations("clinic", "room1"), 10, "first readings")
        topic.send_event(
            {
                "type": "session_start",
                "patient_code": "K-7001",
                "weight_kg": 70,
                "drug": "ketamine",
                "route": "im",
                "planned_mg_per_kg": 0.5,
                "nurse": "RN Ana",
                "author": "RN Ana",
            }
        )
        time.sleep(4)
        room1.sim.send("spo2 85")  # below 88 %: the high alarm after 10 s, the medium one after 15 s
        wait_until(lambda: topic.first("spo2_very_low", "active"), 20, "SpO2 alarm")
        wait_until(lambda: topic.first("spo2_low", "active"), 10, "the medium alarm too")
        topic.send_event({"type": "note", "text": "patient nauseous", "author": "RN Ana"})
        _, nausea = wait_until(lambda: topic.first("side_effect:nausea", "active"), 5, "the note's alert")  # type: ignore[misc]
        time.sleep(5)
        room1.sim.send("spo2 97")
        wait_until(lambda: topic.first("spo2_low", "cleared"), 30, "recovery")
        time.sleep(2)
    finally:
        topic.close()
    room1.core.stop()  # everything it received is committed

    store = EventLog(room1.db)
    sid = next(s.id for s in store.session_records() if s.patient_code == "K-7001")
    stored = store.alarm_log(sid)
    again = replay(load_profile(None), store.log("clinic", "room1", session_id=sid), until=stored[-1].ts)
    assert again == stored, "the engine re-run over the session's log gives the very transitions recorded"

    # a moment while SpO2 was 85 and the alarms sounded, away from any transition
    moment = float(int(wire.parse_iso(nausea["ts"]))) + 2
    while any(abs(moment - t.ts) < 1.5 for t in stored):
        moment += 1
    log = list(store.log("clinic", "room1", types=("obs", "status", "clinical", "alarm"), session_id=sid))
    spo2 = [e for r, e in log if r <= moment and getattr(e, "code", None) == mdc.SPO2.code][-1]
    expected = RoomState("clinic", "room1")
    for received, event in log:
        if received <= moment and event.__class__.__name__ in ("AlarmTransition", "ClinicalEvent"):
            expected.apply(event)  # type: ignore[arg-type]
    assert {a.condition for a in expected.alarms.values()} >= {"spo2_very_low", "side_effect:nausea"}

    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dashboard"
    )
    browser.get(f"http://127.0.0.1:{port}/")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda b: b.find_elements(By.ID, "nav-replay"))
    browser.find_element(By.ID, "nav-replay").click()  # from the header of every page
    wait.until(lambda b: "K-7001" in text(b, "replay-sessions"))
    browser.find_element(By.CSS_SELECTOR, f"[data-session='{sid}']").click()
    wait.until(lambda b: "paused" in text(b, "replay-clock"))
    assert "K-7001" in text(browser, "replay-info")

    browser.find_element(By.XPATH, "//label[normalize-space()='16x']").click()
    started, at = position(browser), time.monotonic()
    browser.find_element(By.ID, "replay-play").click()
    wait.until(lambda b: position(b) >= started + 16)  # the recording is ~30 s: 2 s at 16x
    assert time.monotonic() - at < 4.0, "16 s of the session in about a second (at 1x: 16 s)"
    wait.until(lambda b: "paused" in text(b, "replay-clock"))  # it stops at the end (or we pause it)
    shown_clock = datetime.fromtimestamp(moment).strftime("%H:%M:%S")
    browser.find_element(By.ID, "replay-jump").send_keys(shown_clock, Keys.TAB)
    browser.find_element(By.ID, "replay-go").click()
    wait.until(lambda b: text(b, "replay-clock").startswith(shown_clock))
    wait.until(lambda b: text(b, "spo2-value") == f"{spo2.value:.0f}")
    assert text(browser, "spo2-value") == "85"
    want = {a.id: a.state.replace("_", " ").upper() for a in expected.alarms.values()}

    def alarm_list(b):  # type: ignore[no-untyped-def]
        return b.execute_script(
            "return Array.from(document.querySelectorAll('#alarm-list [data-alarm]')).map(e =>"
            " [e.getAttribute('data-alarm'), e.querySelector('.alarm-state').textContent.toUpperCase()]);"
        )

    wait.until(lambda b: dict(alarm_list(b)) == want)
    assert len(alarm_list(browser)) == len(want)
    # the session's report, downloaded from the player with the viewer's own sign-in
    report = browser.find_element(By.ID, "replay-export-html").get_attribute("href")
    assert report.endswith(f"/export/{sid}/html")
    fetched = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.text().then(t => done([r.status, t.includes('K-7001')])));",
        report,
    )
    assert fetched == [200, True]
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

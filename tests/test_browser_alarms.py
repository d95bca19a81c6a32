"""Alarms at the bedside in headless Chromium: shown within 1 s of their transition, acknowledged from the
page (which the topic and the log then say), and raised by a one-tap side-effect button."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor import wire
from monitor.store import EventLog
from tests.conftest import TEST_USER, free_port
from tests.test_alarms_live import AlarmTopic

pytestmark = pytest.mark.browser


def alarm_row(browser, words: str) -> dict | None:  # type: ignore[no-untyped-def]
    """The first alarm row whose text has `words`: its id, classes and text, read in one go (the list is
    re-rendered as alarms change, so element handles go stale)."""
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#alarm-list .alarm')]"
        ".map(r => ({id: r.dataset.alarm, cls: r.className, text: r.innerText}))"
    )
    return next((r for r in rows if words in r["text"]), None)


def test_alarm_shown_acknowledged_from_the_page_and_side_effect_button(
    room1, mosquitto, procs, browser
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    topic = AlarmTopic(mosquitto.port)
    try:
        browser.get(f"http://127.0.0.1:{port}/room/room1")
        wait = WebDriverWait(browser, 30, poll_frequency=0.02)
        wait.until(lambda b: b.find_element(By.ID, "spo2-value").text == "94")
        assert browser.find_element(By.ID, "alarm-summary").text == "No active alarms"
        browser.find_element(By.ID, "author").send_keys("Nurse Ana")

        room1.sim.send("spo2 85")  # < 88 % for 10 s: high
        wait.until(lambda b: topic.first("spo2_very_low", "active"))
        arrived, raised = topic.first("spo2_very_low", "active")  # type: ignore[misc]
        wait.until(lambda b: alarm_row(b, "SpO2"))
        shown = time.time()
        assert shown - arrived < 1.0, f"on screen {shown - arrived:.2f} s after its transition"
        row = alarm_row(browser, "SpO2")
        assert row is not None and row["id"] == raised["id"]
        assert "prio-high" in row["cls"] and "flashing" in row["cls"]
        assert "85" in row["text"] and "88" in row["text"], "the value and the limit that raised it"

        browser.find_element(By.CSS_SELECTOR, f"[data-alarm='{raised['id']}'] button").click()
        wait.until(lambda b: topic.first("spo2_very_low", "acknowledged"))
        _, acked = topic.first("spo2_very_low", "acknowledged")  # type: ignore[misc]
        # recorded as the signed-in user; the name typed on the page is kept beside it
        assert acked["id"] == raised["id"] and acked["user"] == TEST_USER
        wait.until(lambda b: "flashing" not in (alarm_row(b, "SpO2") or {"cls": "flashing"})["cls"])
        stored = [t for t in EventLog(room1.db).alarms("clinic", "room1") if t.id == raised["id"]]
        assert [t.state for t in stored][:2] == ["active", "acknowledged"]
        assert stored[1].user == TEST_USER
        ack = next(e for e in EventLog(room1.db).clinical_events("clinic", "room1") if e.type == "alarm_ack")
        assert ack.data["typed_author"] == "Nurse Ana" and ack.data["client"] == "127.0.0.1"

        browser.find_element(By.CSS_SELECTOR, '[id*=\'"effect":"nausea"\']').click()
        wait.until(lambda b: topic.first("side_effect:nausea", "active"))
        _, nausea = topic.first("side_effect:nausea", "active")  # type: ignore[misc]
        assert nausea["priority"] == "medium" and nausea["user"] == ""
        wait.until(lambda b: alarm_row(b, "ausea"))
        wait.until(lambda b: "moderate nausea" in b.find_element(By.ID, "notes").text)

        note = browser.find_element(By.CSS_SELECTOR, "#note-text")
        note.send_keys("patient confused, denies headache")
        browser.find_element(By.ID, "add-note").click()
        wait.until(lambda b: topic.first("side_effect:confusion", "active"))

        def marks(b) -> list[str]:  # type: ignore[no-untyped-def]
            return b.execute_script(
                "return [...document.querySelectorAll('#notes mark.note-mark')].map(m => m.textContent)"
            )

        wait.until(lambda b: "confused" in marks(b))
        assert "headache" not in marks(browser), "a negated effect is not highlighted"
        assert topic.first("side_effect:headache", "active") is None
        assert wire.parse_iso(nausea["ts"]) > 0
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

        # the session's alarm log lists what happened, who acknowledged it, and filters
        browser.get(f"http://127.0.0.1:{port}/alarms")
        wait.until(lambda b: TEST_USER in b.find_element(By.ID, "log-table").text)
        log_text = browser.find_element(By.ID, "log-table").text.lower()
        assert "acknowledged" in log_text and "spo2" in log_text and "nausea" in log_text
        assert "offline" not in log_text, "a starting gateway raises no alarm"
        browser.find_element(By.CSS_SELECTOR, "#log-text").send_keys("nausea")
        wait.until(lambda b: "spo2" not in b.find_element(By.ID, "log-table").text.lower())
        assert "nausea" in browser.find_element(By.ID, "log-table").text.lower()
    finally:
        topic.close()

"""A nurse signs in with a real browser, acts, and the log names her; outside her rooms the screen says no."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.store import EventLog
from monitor.users import UserStore
from tests.conftest import TEST_PASSWORD, TEST_USER, free_port, sign_in
from tests.test_users import FAST

pytestmark = pytest.mark.browser


def text(browser, element_id: str) -> str:  # type: ignore[no-untyped-def]
    return browser.execute_script(
        f"const e = document.getElementById('{element_id}'); return e ? e.innerText : ''"
    )


def test_a_nurse_signs_in_acts_in_her_room_only_and_signs_out(room1, mosquitto, procs, browser) -> None:  # type: ignore[no-untyped-def]
    UserStore(room1.db, FAST).add("nina", "nurse", "nurse-pass", rooms=["room1"])
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    base = f"http://127.0.0.1:{port}"
    browser.credentials = None  # this test fills in the form itself
    browser.get(f"{base}/room/room1")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    assert "/signin?next=" in browser.current_url, "the page asks who you are first"
    sign_in(browser, "nina", "nurse-pass")
    assert browser.current_url == f"{base}/room/room1", "and then opens the page asked for"
    wait.until(lambda b: b.find_element(By.ID, "spo2-value").text == str(room1.START_SPO2))
    wait.until(lambda b: "nina (nurse: room1)" in text(b, "kap-user-name"))

    browser.find_element(By.CSS_SELECTOR, "#note-text").send_keys("calm, talking")
    browser.find_element(By.ID, "add-note").click()
    wait.until(lambda b: "calm, talking" in text(b, "notes"))
    assert "nina" in text(browser, "notes"), "the note names who wrote it"
    store = EventLog(room1.db)
    wait.until(lambda b: store.clinical_events("clinic", "room1"))
    (note,) = store.clinical_events("clinic", "room1")
    assert (note.type, note.author, note.data["client"]) == ("note", "nina", "127.0.0.1")

    browser.get(f"{base}/room/room2")  # not hers: the page opens (read-only) but acting is refused
    wait.until(lambda b: b.find_elements(By.ID, "pause-audio"))
    browser.find_element(By.ID, "pause-audio").click()
    wait.until(lambda b: "refused: nina is assigned to room1, not room2" in text(b, "clinical-feedback"))
    assert store.clinical_events("clinic", "room2") == []
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

    browser.find_element(By.ID, "kap-signout").click()
    wait.until(lambda b: "/signin" in b.current_url)
    browser.get(f"{base}/room/room1")
    assert "/signin" in browser.current_url, "signed out means signed out"

    sign_in(browser, TEST_USER, TEST_PASSWORD)  # a supervisor reads the audit trail
    browser.get(f"{base}/audit")
    table = browser.find_element(By.ID, "audit-table").text
    assert "nina sign_in 127.0.0.1" in table and "nina sign_out 127.0.0.1" in table
    assert "nina note 127.0.0.1 clinic room1 note of 13 characters" in table
    assert "calm, talking" not in table, "the trail never repeats a note's words"
    assert "nina refused 127.0.0.1 clinic room2 audio_pause" in table

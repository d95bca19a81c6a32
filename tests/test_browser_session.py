"""A KAP session at the bedside in headless Chromium: start it, log an IM dose and a note, see both on
the timeline with the estimated concentration, record an assessment, and end it seeing what blocks
discharge."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from monitor.store import EventLog
from tests.conftest import free_port

pytestmark = pytest.mark.browser


def text(browser, element_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return browser.find_element(By.ID, element_id).text
    except Exception:
        return ""


def typed(browser, element_id: str, value: str) -> None:  # type: ignore[no-untyped-def]
    box = browser.find_element(By.ID, element_id)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(value, Keys.TAB)  # leaving the field commits it, as a nurse moving on would


def trace(browser, name: str) -> dict:  # type: ignore[no-untyped-def]
    return browser.execute_script(
        "const g = document.querySelector('#timeline .js-plotly-plot');"
        " const t = g && g.data ? g.data.find(d => d.name === arguments[0]) : null;"
        " return t ? {n: t.x.length, max: Math.max(0, ...t.y.filter(v => v !== null))} : {n: 0, max: 0};",
        name,
    ) or {"n": 0, "max": 0}


def test_a_session_from_start_to_the_discharge_check(room1, mosquitto, procs, browser) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    browser.get(f"http://127.0.0.1:{port}/room/room1")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda b: b.find_element(By.ID, "session-start").is_displayed())

    typed(browser, "start-code", "Jane Doe")  # a name is refused
    typed(browser, "start-weight", "70")
    typed(browser, "start-planned", "0.5")
    browser.find_element(By.ID, "start-session").click()
    wait.until(lambda b: "never a name" in text(b, "start-feedback"))

    typed(browser, "start-code", "K-1042")
    typed(browser, "start-nurse", "RN Ana")
    browser.find_element(By.ID, "start-session").click()
    wait.until(lambda b: b.find_element(By.ID, "session-running").is_displayed())
    wait.until(lambda b: "K-1042" in text(b, "session-who") and "70 kg" in text(b, "session-who"))
    wait.until(lambda b: "SpO2 94 %" in text(b, "session-baseline"))  # the reference vitals

    typed(browser, "dose-amount", "35")  # IM is the default route; 35 mg = 0.50 mg/kg
    browser.find_element(By.ID, "log-dose").click()
    wait.until(lambda b: "Given 35.0 mg (0.50 mg/kg)" in text(b, "session-dose"))
    wait.until(lambda b: "Estimated plasma ketamine" in text(b, "session-concentration"))

    typed(browser, "dose-amount", "20")  # over the planned dose: asks first
    browser.find_element(By.ID, "log-dose").click()
    wait.until(lambda b: "exceeds the planned dose" in text(b, "dose-confirm-text"))
    browser.find_element(By.ID, "dose-confirm-no").click()
    wait.until(lambda b: "dose not given" in text(b, "dose-feedback"))
    assert "Given 35.0 mg" in text(browser, "session-dose")

    # a correction never overwrites: the 35 mg entry was really 30 mg
    wait.until(
        lambda b: b.execute_script(
            "const x = document.querySelector('#dose-list button'); if (x) x.click(); return !!x;"
        )
    )
    wait.until(lambda b: "correcting that dose" in text(b, "dose-feedback"))
    typed(browser, "dose-amount", "30")
    browser.find_element(By.ID, "log-dose").click()
    wait.until(lambda b: "Given 30.0 mg (0.43 mg/kg)" in text(b, "session-dose"))
    rows = text(browser, "dose-list")
    assert "35.0 mg" in rows and "SUPERSEDED" in rows.upper() and "30.0 mg" in rows

    browser.find_element(By.CSS_SELECTOR, "#note-text").send_keys("calm, mild dissociation")
    browser.find_element(By.ID, "add-note").click()
    wait.until(lambda b: trace(b, "doses")["n"] == 1 and trace(b, "notes")["n"] == 1)  # the effective dose
    assert trace(browser, "ketamine (clements, estimate)")["max"] > 0, "the concentration curve is drawn"

    browser.find_element(By.CSS_SELECTOR, '[id*=\'"kind":"moaas"\'][id*=\'"value":5\']').click()
    wait.until(lambda b: "moaas 5 recorded" in text(b, "assessment-feedback"))
    wait.until(lambda b: trace(b, "assessments")["n"] == 1)

    browser.find_element(By.ID, "end-session").click()
    wait.until(lambda b: "Session ended" in text(b, "discharge-check"))
    blocked = text(browser, "discharge-check")
    assert "Not ready for discharge" in blocked
    assert "Modified Aldrete" in blocked and "Observation time" in blocked, "it says what is still missing"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

    log = EventLog(room1.db)
    kinds = [e.type for e in log.clinical_events("clinic", "room1")]
    assert kinds.count("session_start") == 1 and "dose" in kinds and "assessment" in kinds
    assert kinds[-1] == "session_end"
    ends = [ended for _, _, _, _, ended in log.sessions()]
    assert sum(e is not None for e in ends) >= 2, "the earlier recording and the session are closed"

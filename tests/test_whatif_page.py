"""`/whatif` in headless Chromium: a recorded session re-run with the settings typed into the page."""

from __future__ import annotations

import json
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from monitor.store import EventLog
from simulators.recorded_session import record_session
from tests.conftest import ensure_test_user, free_port

ROWS_JS = """
return Array.from(document.querySelectorAll('#whatif-table tbody tr')).map(
    tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent));
"""


def counts(browser) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Rule -> (recorded, what-if) as the table shows them (read in one go: the table is re-rendered)."""
    return {row[0]: (int(row[5]), int(row[6])) for row in browser.execute_script(ROWS_JS)}


def test_whatif_page_counts_recorded_and_rerun_alarms_per_rule(
    mosquitto, procs, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "kap.sqlite"
    log = EventLog(db)
    rec = record_session(log, duration_s=25 * 60, room="room1", pleth=False)
    recorded_low = len({t.id for t in log.alarm_log(rec.session_id) if t.condition == "spo2_low"})
    assert recorded_low >= 2
    log.close()
    ensure_test_user(db)
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(db), "--port", str(port)).wait_for_output(
        "dashboard: http"
    )
    wait = WebDriverWait(browser, 20)
    browser.get(f"http://127.0.0.1:{port}/")
    wait.until(lambda b: b.find_elements(By.ID, "nav-whatif")).pop().click()  # from the header
    wait.until(lambda b: b.find_elements(By.ID, "whatif-run"))
    assert "K-4242" in browser.find_element(By.ID, "whatif-session").get_attribute("value")

    browser.find_element(By.ID, "whatif-run").click()
    wait.until(lambda b: b.find_elements(By.ID, "whatif-table"))
    shown = counts(browser)
    assert shown["spo2_low"] == (recorded_low, recorded_low), (
        "unchanged settings: exactly the recorded alarms"
    )
    assert all(recorded == whatif for recorded, whatif in shown.values())

    limit_id = json.dumps({"rule": "spo2_low", "type": "whatif-limit"}, separators=(",", ":"))
    limit = browser.execute_script("return document.getElementById(arguments[0])", limit_id)
    limit.send_keys(Keys.CONTROL, "a")
    limit.send_keys("85", Keys.TAB)  # Mantine's NumberInput commits on blur
    browser.find_element(By.ID, "whatif-run").click()
    wait.until(lambda b: counts(b).get("spo2_low", (0, 0))[1] < recorded_low)
    assert counts(browser)["spo2_low"][0] == recorded_low
    summary = browser.find_element(By.ID, "whatif-summary").text
    assert summary.startswith("1 session:") and "alarms recorded" in summary
    assert "92 → 85" in browser.find_element(By.ID, "whatif-table").text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

"""A session's alarm limits: shown at the bedside, changed by a supervisor, applied by the core's engine."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from monitor.alarm_profile import load_profile
from monitor.limits_view import check_limit, limit_rows
from monitor.model import ClinicalEvent
from monitor.store import EventLog
from monitor.views import RoomState
from tests.conftest import TEST_USER, free_port
from tests.test_alarms_live import AlarmTopic

PROFILE = load_profile(None)


def change(rule: str, limit: float, ts: float = 1_795_530_000.0, author: str = "lee") -> ClinicalEvent:
    return ClinicalEvent(
        "clinic", "r1", ts, "limit_change", author, f"lc-{rule}-{ts}", rule=rule, limit=limit
    )


def test_the_rows_show_the_profile_until_a_change_and_who_made_it() -> None:
    rows = {r.rule_id: r for r in limit_rows(PROFILE, [])}
    assert rows["spo2_low"].current == "92 %" and rows["spo2_low"].changed == ""
    assert rows["spo2_low"].label == "SpO2 below 92 % for 15 s (medium)"
    changed = {
        r.rule_id: r for r in limit_rows(PROFILE, [change("spo2_low", 90), change("spo2_low", 89, 2e9)])
    }
    assert changed["spo2_low"].current == "89 %", "the latest change holds"
    assert changed["spo2_low"].changed.startswith("set by lee at ")
    assert changed["spo2_low"].changed.endswith("(profile: 92 %)")
    assert changed["pulse_high"].current == "120 /min", "other rules keep the profile's limit"


def test_a_new_session_starts_from_the_profile_again() -> None:
    state = RoomState("clinic", "r1")
    start = ClinicalEvent("clinic", "r1", 1.0, "session_start", "ana", "s1", data={"patient_code": "K-1"})
    state.apply(start)
    state.apply(change("spo2_low", 90, 2.0))
    assert limit_rows(PROFILE, state.limit_changes)[0].current == "90 %"
    state.apply(
        ClinicalEvent("clinic", "r1", 3.0, "session_start", "ana", "s2", data={"patient_code": "K-2"})
    )
    assert state.limit_changes == []


@pytest.mark.parametrize(
    ("rule", "value", "said"),
    [
        ("spo2_low", 900, "SpO2: 900 % is outside 50 to 100; nothing changed"),
        ("spo2_low", None, "SpO2: type a number for the new limit"),
        ("spo2_low", float("nan"), "SpO2: type a number for the new limit"),
        ("no_such_rule", 90, "no alarm rule 'no_such_rule' in the profile ketamine-default"),
    ],
)
def test_an_implausible_limit_is_refused_with_the_reason(rule: str, value: object, said: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_limit(PROFILE, rule, value)
    assert str(refused.value) == said


@pytest.mark.browser
def test_a_supervisor_changes_a_limit_at_the_bedside_and_the_engine_alarms_on_it(
    room1, mosquitto, procs, browser
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    topic = AlarmTopic(mosquitto.port)
    browser.get(f"http://127.0.0.1:{port}/room/room1")
    wait = WebDriverWait(browser, 30, poll_frequency=0.05)
    wait.until(lambda b: b.find_element(By.ID, "spo2-value").text == "94")
    browser.find_element(By.CSS_SELECTOR, "#limits summary").click()
    current = browser.find_element(By.ID, "limit-current-spo2_very_low")
    assert current.text == "88 %"
    field = browser.find_element(By.CSS_SELECTOR, "[id*='limit-input'][id*='\"spo2_very_low\"']")
    setter = browser.find_element(By.CSS_SELECTOR, "[id*='limit-set'][id*='\"spo2_very_low\"']")

    field.send_keys("900", Keys.TAB)  # a typo is refused on the spot, and nothing is recorded
    setter.click()
    wait.until(lambda b: "outside 50 to 100" in b.find_element(By.ID, "limit-feedback").text)
    field.send_keys(*[Keys.BACKSPACE] * 4, "91", Keys.TAB)
    setter.click()
    # the change goes to the core and comes back over the broker: what the page shows is what was recorded
    wait.until(lambda b: b.find_element(By.ID, "limit-current-spo2_very_low").text == "91 %")
    changed = browser.find_element(By.ID, "limit-changed-spo2_very_low").text
    assert changed.startswith(f"set by {TEST_USER} at ") and changed.endswith("(profile: 88 %)")
    stored = [e for e in EventLog(room1.db).clinical_events("clinic", "room1") if e.type == "limit_change"]
    assert [(e.rule, e.limit, e.author) for e in stored] == [("spo2_very_low", 91.0, TEST_USER)]

    room1.sim.send("spo2 90")  # under the new limit (91), over the profile's (88): the high alarm
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and not topic.first("spo2_very_low", "active"):
        time.sleep(0.1)
    raised = topic.first("spo2_very_low", "active")
    assert raised is not None, "the core's engine applies the session's limit"
    assert raised[1]["limit"] == 91.0
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

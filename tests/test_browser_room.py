"""The bedside page of a whole room in headless Chromium: the pleth moving, the last BP with its age and
the "Measure BP now" button, the pump's rate and volume infused."""

from __future__ import annotations

import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.store import EventLog
from tests.conftest import free_port

pytestmark = pytest.mark.browser


def text(browser, element_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return browser.find_element(By.ID, element_id).text
    except Exception:
        return ""


def pleth_x_end(browser) -> float:  # type: ignore[no-untyped-def]
    return float(
        browser.execute_script(
            "const g = document.querySelector('#pleth .js-plotly-plot');"
            " if (!g || !g.data || !g.data[0].x.length) return -1;"
            " const x = g.data[0].x; return x[x.length - 1];"
        )
    )


def test_pleth_bp_and_pump_on_the_bedside_page(room, mosquitto, procs, browser) -> None:  # type: ignore[no-untyped-def]
    simulated, db = room
    simulated.pump.start_infusion(50.0, 100.0)
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(db), "--port", str(port)).wait_for_output(
        "dashboard"
    )
    browser.get(f"http://127.0.0.1:{port}/room/room1")

    wait = WebDriverWait(browser, 15, poll_frequency=0.05)
    wait.until(lambda b: pleth_x_end(b) > 0)
    first = pleth_x_end(browser)
    wait.until(lambda b: pleth_x_end(b) > first + 0.5)  # the sweep moves: new samples keep arriving (s)

    wait.until(lambda b: re.fullmatch(r"\d{2,3}/\d{2,3}", text(b, "bp-value")))
    assert re.search(r"measured \d\d:\d\d:\d\d, \d+ s ago", text(browser, "bp-age"))

    wait.until(lambda b: text(b, "pump-rate") == "50.00")
    assert text(browser, "pump-mode") == "RUNNING"
    wait.until(lambda b: text(b, "pump-volume") not in ("", "--", "0.0"))

    def measured_at(b) -> str:  # type: ignore[no-untyped-def]
        found = re.search(r"measured (\d\d:\d\d:\d\d)", text(b, "bp-age"))
        return found.group(1) if found else ""

    before = measured_at(browser)
    wait.until(lambda b: b.find_element(By.ID, "measure-bp").is_enabled())
    browser.find_element(By.ID, "measure-bp").click()
    wait.until(lambda b: "measure: accepted" in text(b, "measure-feedback"))
    wait.until(lambda b: measured_at(b) not in ("", before))  # a new BP, measured on request

    # the nurse changes the cycle to every 10 minutes; the gateway confirms and the screen follows
    wait.until(
        lambda b: b.find_element(By.CSS_SELECTOR, "#bp-interval").get_attribute("value") == "every 5 min"
    )
    browser.find_element(By.CSS_SELECTOR, "#bp-interval").click()
    wait.until(
        lambda b: [o for o in b.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == "every 10 min"]
    )
    next(
        o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == "every 10 min"
    ).click()
    try:
        wait.until(lambda b: "set interval: accepted" in text(b, "measure-feedback"))
    except Exception:
        raise AssertionError(f"feedback: {text(browser, 'measure-feedback')!r}") from None
    wait.until(
        lambda b: any(
            s.details.get("interval_s") == 600
            for s in EventLog(db).statuses("clinic", "room1")
            if s.device == "nibp"
        )
    )  # the change of cycle is recorded
    assert browser.find_element(By.CSS_SELECTOR, "#bp-interval").get_attribute("value") == "every 10 min"

    simulated.pump.raise_alarm("OCCLUSION")
    wait.until(lambda b: "occlusion" in text(b, "pump-alarms").lower())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

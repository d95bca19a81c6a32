"""The bedside page in headless Chromium, fed by a real simulator, gateway and broker.

What a nurse would notice: the simulator's SpO2 on screen, a change appearing within 2 s without a
reload, numbers big enough to read across a room, a clear state instead of a stale number, and a browser
console with no errors.
"""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import free_port

pytestmark = pytest.mark.browser


def text_of(browser, selector: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return browser.find_element(By.CSS_SELECTOR, selector).text
    except Exception:  # not rendered yet
        return ""


def wait_text(browser, selector: str, expected: str, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until the element shows `expected`; fails with what it showed instead."""
    start = time.monotonic()
    try:
        WebDriverWait(browser, timeout, poll_frequency=0.02).until(lambda b: text_of(b, selector) == expected)
    except Exception:
        raise AssertionError(
            f"{selector} showed {text_of(browser, selector)!r}, not {expected!r}, after {timeout} s"
        ) from None
    return time.monotonic() - start


def console_errors(browser) -> list[dict]:  # type: ignore[no-untyped-def]
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def trend_points(browser) -> int:  # type: ignore[no-untyped-def]
    return int(
        browser.execute_script(
            "const g = document.querySelector('#trend .js-plotly-plot');"
            " return g && g.data ? g.data[0].x.length : -1;"
        )
    )


@pytest.fixture
def live_room(room1, mosquitto, procs):  # type: ignore[no-untyped-def]
    """room1 plus the dashboard as its own process."""
    port = free_port()
    web = procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port))
    web.wait_for_output("dashboard: http")
    return room1.sim, f"http://127.0.0.1:{port}"


def test_bedside_page_shows_the_simulator_and_follows_it_live(live_room, browser) -> None:  # type: ignore[no-untyped-def]
    sim, url = live_room
    browser.get(f"{url}/room/room1")
    wait_text(browser, "#spo2-value", "94", timeout=10)
    assert "online" in text_of(browser, "#device-state")
    # numbers sized for reading across a room
    size = browser.execute_script(
        "return parseFloat(getComputedStyle(document.getElementById('spo2-value')).fontSize)"
    )
    assert size >= 96, f"SpO2 is {size}px"
    browser.execute_script("window.kapNoReload = 'still here'")
    points_before = trend_points(browser)

    sim.send("spo2 87")
    sim.send("pulse 121")
    assert wait_text(browser, "#spo2-value", "87", timeout=2.0) <= 2.0
    wait_text(browser, "#pulse-value", "121", timeout=2.0)
    assert browser.execute_script("return window.kapNoReload") == "still here", "the page was reloaded"
    WebDriverWait(browser, 3).until(lambda b: trend_points(b) > points_before)
    assert "Last reading" in text_of(browser, "#last-reading")
    assert console_errors(browser) == []


def test_sensor_off_and_a_lost_device_replace_the_numbers(live_room, browser) -> None:  # type: ignore[no-untyped-def]
    sim, url = live_room
    browser.get(f"{url}/room/room1")
    wait_text(browser, "#spo2-value", "94", timeout=10)

    sim.send("sensor off")
    wait_text(browser, "#spo2-value", "--", timeout=3)
    wait_text(browser, "#spo2-note", "SENSOR OFF", timeout=2)
    assert "SENSOR OFF" in text_of(browser, "#device-state")

    sim.send("sensor on")
    wait_text(browser, "#spo2-value", "94", timeout=3)

    sim.kill()  # the device's line goes dead
    wait_text(browser, "#spo2-value", "--", timeout=6)
    assert "OFFLINE" in text_of(browser, "#device-state")
    assert console_errors(browser) == []


def test_home_page_lists_the_room_and_links_to_its_bedside_page(live_room, browser) -> None:  # type: ignore[no-untyped-def]
    _, url = live_room
    browser.get(url)
    WebDriverWait(browser, 10).until(lambda b: text_of(b, ".room-card .room-spo2") == "94")
    browser.find_element(By.CSS_SELECTOR, ".room-card").click()
    wait_text(browser, "#spo2-value", "94", timeout=10)
    assert browser.current_url.endswith("/room/room1")
    assert console_errors(browser) == []

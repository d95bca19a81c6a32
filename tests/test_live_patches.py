"""What the pages push when little changes: the home page patches only the room cards that changed, and
the pleth travels thinned (min/max) yet keeps moving. Fed by a real simulator, gateway, broker and web."""

from __future__ import annotations

import pytest
from dash import Patch
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.layouts.home import _changed_cards, room_cards
from monitor.views import RoomCardView
from tests.conftest import free_port


def card(room: str, spo2: str) -> RoomCardView:
    return RoomCardView("clinic", room, spo2, "72", "ok", "oximeter: online")


def test_only_the_changed_card_is_sent_while_the_rooms_stay_in_place() -> None:
    before = [card("room1", "97"), card("room2", "95"), card("room3", "93")]
    after = [card("room1", "97"), card("room2", "88"), card("room3", "93")]
    patch = _changed_cards(before, after)
    assert isinstance(patch, Patch)
    operations = patch.to_plotly_json()["operations"]
    spo2_text = [1, *["props", "children", 1], *["props", "children", 0], *["props", "children", 1]]
    spo2_text += ["props", "children"]
    assert [(op["location"], op["params"]["value"]) for op in operations] == [(spo2_text, "88")]
    # the path leads to the SpO2 text of the card as room_cards draws it
    drawn = room_cards(after)[1].to_plotly_json()
    assert drawn["props"]["children"][1].children[0].children[1].children == "88"


def test_a_card_whose_state_changed_is_sent_whole() -> None:
    offline = RoomCardView("clinic", "room2", "--", "--", "offline", "oximeter: OFFLINE")
    patch = _changed_cards([card("room1", "97"), card("room2", "95")], [card("room1", "97"), offline])
    assert isinstance(patch, Patch)
    [operation] = patch.to_plotly_json()["operations"]
    assert operation["location"] == [1] and "OFFLINE" in str(operation["params"]["value"])


def test_a_new_room_redraws_the_whole_grid() -> None:
    grid = _changed_cards([card("room1", "97")], [card("room1", "97"), card("room2", "95")])
    assert isinstance(grid, list) and len(grid) == 2


@pytest.mark.browser
def test_home_card_follows_the_device_through_patches(room1, mosquitto, procs, browser) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    web = procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port))
    web.wait_for_output("dashboard: http")
    browser.get(f"http://127.0.0.1:{port}/")

    def spo2_on_card(b) -> str:  # type: ignore[no-untyped-def]
        try:
            return b.find_element(By.CSS_SELECTOR, ".room-card .room-spo2").text
        except Exception:
            return ""

    WebDriverWait(browser, 10).until(lambda b: spo2_on_card(b) == "94")
    for value in ("87", "91", "85"):
        room1.sim.send(f"spo2 {value}")
        WebDriverWait(browser, 3, poll_frequency=0.05).until(lambda b, v=value: spo2_on_card(b) == v)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".room-card")) == 1
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

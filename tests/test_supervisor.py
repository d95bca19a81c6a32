"""The supervisor's wall: worst first, exceptions only, a lost link shown plainly; acknowledge from a tile."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.model import AlarmTransition, DeviceStatus, Observation
from monitor.supervisor_view import wall
from monitor.views import RoomState
from tests.conftest import free_port
from tests.test_alarms_live import AlarmTopic

NOW = 1_800_000_000.0


def room(name: str, *alarms: tuple[str, str], online: bool = True) -> RoomState:
    state = RoomState("clinic", name)
    state.apply(
        DeviceStatus(
            "clinic",
            name,
            "oximeter",
            NOW - 60,
            "online" if online else "offline",
            "masimo-ascii",
            (),
            "" if online else "link lost",
        )
    )
    state.apply(Observation("clinic", name, "oximeter", 1, NOW - 1, 150456, 97.0, "%", True))
    for i, (priority, alarm_state) in enumerate(alarms):
        state.apply(
            AlarmTransition(
                "clinic",
                name,
                f"{name}:{i}",
                NOW - 5,
                alarm_state,
                priority,
                "physiological",
                "spo2_low",
                f"{priority} alarm",
            )
        )
    return state


def test_rooms_are_ranked_worst_first_and_quiet_ones_can_be_hidden() -> None:
    rooms = [
        room("a-quiet"),
        room("b-medium", ("medium", "active")),
        room("c-link", online=False),
        room("d-high", ("high", "active")),
        room("e-escalated", ("medium", "escalated")),
        room("f-low", ("low", "active")),
    ]
    tiles = wall(rooms, NOW)
    assert [t.room for t in tiles] == ["d-high", "e-escalated", "b-medium", "c-link", "f-low", "a-quiet"]
    assert "escalated" in tiles[1].css
    assert tiles[3].spo2 == "--" and "OFFLINE" in tiles[3].link, "a lost link never shows its last numbers"
    assert [t.room for t in wall(rooms, NOW, exceptions_only=True)][-1] == "f-low"


@pytest.mark.browser
def test_an_alarm_on_a_tile_is_acknowledged_by_the_supervisor(room1, mosquitto, procs, browser) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    topic = AlarmTopic(mosquitto.port)
    try:
        browser.get(f"http://127.0.0.1:{port}/supervisor")
        wait = WebDriverWait(browser, 30, poll_frequency=0.05)
        wait.until(lambda b: "room1" in b.find_element(By.ID, "supervisor-grid").text)
        room1.sim.send("spo2 85")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".tile.rank-high"))
        assert "SpO2" in browser.find_element(By.CSS_SELECTOR, ".tile.rank-high").text
        wait.until(
            lambda b: b.execute_script(
                "const x = document.querySelector('.tile.rank-high button'); if (x) x.click(); return !!x;"
            )
        )
        wait.until(lambda b: topic.first("spo2_very_low", "acknowledged"))
        _, acked = topic.first("spo2_very_low", "acknowledged")  # type: ignore[misc]
        assert acked["user"] == "supervisor"
        wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, ".tile.rank-high"))
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        topic.close()


def test_a_tile_counts_what_the_pump_delivered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from monitor import session_view
    from monitor.layouts.supervisor import _dose_texts
    from monitor.room_reads import IncrementalReads
    from monitor.store import EventLog
    from simulators.recorded_session import record_session

    store = EventLog(tmp_path / "kap.sqlite")
    rec = record_session(store, duration_s=30 * 60.0, pleth=False)  # a 0.5 mg/kg infusion over 40 min
    state = RoomState(rec.site, rec.room)
    for _, event in store.log(rec.site, rec.room, types=("obs", "status", "clinical", "alarm")):
        state.apply(event)
    now = rec.ended_at
    pump = store.observations(rec.site, rec.room, since=state.session.ts, codes=session_view.PUMP_CODES)
    expected = session_view.session_view(state, pump, now).dose_text
    assert expected.startswith("Given ") and not expected.startswith("Given 0.0 mg")
    reads = IncrementalReads(store, compact_codes=session_view.PUMP_CODES)
    texts = _dose_texts([state], reads, now)
    assert texts == {(rec.site, rec.room): expected}
    (tile,) = wall([state], now, dose_texts=texts)
    assert tile.infusion.endswith(expected), "the pump's record, as the session panel says it"


def tile_order(browser) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(room, classes) of every tile in screen order, read in one go (the grid is replaced each push)."""
    return [
        tuple(t)
        for t in browser.execute_script(
            "return [...document.querySelectorAll('#supervisor-grid [data-room]')]"
            ".map(t => [t.dataset.room, t.className]);"
        )
    ]


def test_twelve_rooms_a_desaturation_sorts_first_exceptions_only_and_a_click_opens_the_bedside(
    room1, mosquitto, procs, browser, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    links = tmp_path / "bays"
    procs("simulate", "--rooms", "11", "--link-dir", str(links), "--scenario", "stable", "--seed", "3")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (links / "rooms.toml").exists():
        time.sleep(0.1)
    # eleven whole rooms (oximeter, cuff, pump) beside room1, named bay1..bay11
    bays = tmp_path / "bays.toml"
    bays.write_text((links / "rooms.toml").read_text().replace('name = "room', 'name = "bay'))
    procs(
        "gateway",
        "--broker",
        mosquitto.address,
        "--config",
        str(bays),
        "--outbox",
        str(tmp_path / "ob.sqlite"),
    ).wait_for_output("gateway:")
    port = free_port()
    procs("web", "--broker", mosquitto.address, "--db", str(room1.db), "--port", str(port)).wait_for_output(
        "dash"
    )
    topic = AlarmTopic(mosquitto.port)
    try:
        browser.get(f"http://127.0.0.1:{port}/supervisor")
        wait = WebDriverWait(browser, 40, poll_frequency=0.05)
        wait.until(lambda b: len(tile_order(b)) == 12)
        wait.until(lambda b: all("rank-ok" in css for room, css in tile_order(b) if room == "room1"))
        assert tile_order(browser)[0][0] != "room1", "quiet, room1 sorts by name after the bays"

        room1.sim.send("spo2 85")  # < 88 % for 10 s: a high-priority alarm
        wait.until(lambda b: topic.first("spo2_very_low", "active"))
        arrived, _ = topic.first("spo2_very_low", "active")  # type: ignore[misc]
        wait.until(lambda b: tile_order(b)[0][0] == "room1")
        assert time.time() - arrived < 2.0, "the room in trouble is first within 2 s of its alarm"
        assert "rank-high" in tile_order(browser)[0][1]

        browser.find_element(By.XPATH, "//label[normalize-space()='Exceptions only']").click()
        wait.until(lambda b: len(tile_order(b)) < 12)
        shown = tile_order(browser)
        assert shown[0][0] == "room1" and all("rank-ok" not in css for _, css in shown)

        browser.find_element(By.CSS_SELECTOR, "[data-room='room1'] a.tile-room").click()
        wait.until(lambda b: b.current_url.endswith("/room/room1"))
        wait.until(lambda b: b.find_element(By.ID, "spo2-value").text == "85")
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        topic.close()

"""What the bedside page shows, from the events: never a stale or flagged number as if it were current."""

from __future__ import annotations

from monitor.model import DeviceStatus, Observation
from monitor.views import STALE_AFTER_S, RoomState, bedside_view, trend_points

NOW = 1_800_000_000.0


def room(*events: Observation | DeviceStatus) -> RoomState:
    state = RoomState("clinic", "room1")
    for event in events:
        state.apply(event)
    return state


def reading(
    code: int,
    value: float | None,
    ts: float = NOW - 1,
    valid: bool = True,
    conditions: tuple[str, ...] = (),
    seq: int = 1,
) -> Observation:
    return Observation("clinic", "room1", "oximeter", seq, ts, code, value, "%", valid, None, conditions)


def online(conditions: tuple[str, ...] = (), state: str = "online", reason: str = "") -> DeviceStatus:
    return DeviceStatus("clinic", "room1", "oximeter", NOW - 2, state, "masimo-ascii", conditions, reason)


def test_current_readings_are_shown() -> None:
    view = bedside_view(room(online(), reading(150456, 97), reading(149530, 72, seq=2)), NOW)
    assert (view.spo2.text, view.spo2.state) == ("97", "ok")
    assert view.pulse.text == "72"
    assert view.device_state == "online"
    assert "(1 s ago)" in view.last_reading_text


def test_a_reading_older_than_the_limit_is_not_shown_as_current() -> None:
    old = reading(150456, 97, ts=NOW - STALE_AFTER_S - 1)
    view = bedside_view(room(online(), old), NOW)
    assert (view.spo2.text, view.spo2.state) == ("--", "no-data")
    assert view.device_state == "no-data"


def test_sensor_off_blanks_the_numbers_and_says_so() -> None:
    view = bedside_view(room(online(("sensor_off",)), reading(150456, 97)), NOW)
    assert (view.spo2.text, view.spo2.state) == ("--", "sensor")
    assert view.device_state == "sensor"
    assert "SENSOR OFF PATIENT" in view.device_text


def test_an_offline_device_shows_no_numbers_and_why() -> None:
    view = bedside_view(room(reading(150456, 97), online(state="offline", reason="link lost")), NOW)
    assert (view.spo2.text, view.spo2.state) == ("--", "offline")
    assert view.device_text == "oximeter: OFFLINE (link lost)"


def test_a_value_the_device_flags_invalid_is_not_shown() -> None:
    view = bedside_view(room(online(), reading(150456, None, valid=False)), NOW)
    assert (view.spo2.text, view.spo2.state) == ("--", "invalid")


def test_an_older_event_arriving_late_does_not_replace_a_newer_one() -> None:
    state = room(online(), reading(150456, 95, ts=NOW - 1, seq=2), reading(150456, 99, ts=NOW - 3, seq=1))
    assert bedside_view(state, NOW).spo2.text == "95"


def test_trend_draws_gaps_for_flagged_values() -> None:
    points = trend_points(
        [reading(150456, 97), reading(150456, 96, conditions=("sensor_off",)), reading(149530, 70)]
    )
    assert points.spo2_y == [97, None]
    assert points.pulse_y == [70]

"""What the bedside page shows, from the events: never a stale or flagged number as if it were current."""

from __future__ import annotations

import itertools

from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation
from monitor.views import (
    NIBP_OVERDUE_MARGIN_S,
    STALE_AFTER_S,
    RoomState,
    alarm_panel_view,
    bedside_view,
    notes_view,
    pleth_samples,
    trend_points,
)

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


def cuff(mode: str = "idle", conditions: tuple[str, ...] = (), interval_s: float = 300) -> DeviceStatus:
    return DeviceStatus("clinic", "room1", "nibp", NOW - 500, "online", "suntech-nibp", conditions, "", {},
                        mode, {"interval_s": interval_s, "next_at": None})  # fmt: skip


def bp(sys_: float, dia: float, ts: float, valid: bool = True) -> list[Observation]:
    return [Observation("clinic", "room1", "nibp", 1, ts, 150021, sys_, "mm[Hg]", valid),
            Observation("clinic", "room1", "nibp", 2, ts, 150022, dia, "mm[Hg]", valid),
            Observation("clinic", "room1", "nibp", 3, ts, 150023, 96, "mm[Hg]", valid)]  # fmt: skip


def test_blood_pressure_shows_its_age_and_becomes_overdue_after_its_cycle_plus_margin() -> None:
    fresh = bedside_view(room(cuff(), *bp(128, 82, NOW - 65)), NOW).blood_pressure
    assert (fresh.text, fresh.mean_text, fresh.state, fresh.interval_min) == ("128/82", "(96)", "ok", 5)
    assert fresh.age_text.endswith("65 s ago")
    late = bedside_view(room(cuff(), *bp(128, 82, NOW - 300 - NIBP_OVERDUE_MARGIN_S - 1)), NOW).blood_pressure
    assert late.state == "overdue" and "OVERDUE" in late.age_text
    # a longer cycle chosen by the nurse moves the limit with it
    slow = bedside_view(room(cuff(interval_s=900), *bp(128, 82, NOW - 500)), NOW).blood_pressure
    assert (slow.state, slow.interval_min) == ("ok", 15)


def test_a_failed_measurement_says_why_and_shows_no_numbers() -> None:
    view = bedside_view(room(cuff(conditions=("nibp_loose_cuff",)), *bp(0, 0, NOW - 5, valid=False)), NOW)
    assert view.blood_pressure.text == "--/--"
    assert view.blood_pressure.state == "error"
    assert view.blood_pressure.problem == "BP: loose cuff or leak"


def test_cuff_pressure_is_shown_while_measuring() -> None:
    inflating = Observation("clinic", "room1", "nibp", 9, NOW - 0.2, 150036, 145, "mm[Hg]", True)
    view = bedside_view(room(cuff(mode="measuring"), inflating), NOW).blood_pressure
    assert view.measuring and view.cuff_text == "Cuff 145 mmHg"


def pump_status(
    mode: str = "running", conditions: tuple[str, ...] = (), state: str = "online"
) -> DeviceStatus:
    return DeviceStatus("clinic", "room1", "pump", NOW - 100, state, "alaris-asena", conditions, "", {}, mode)


def test_pump_rate_volume_mode_and_alarms() -> None:
    rate = Observation("clinic", "room1", "pump", 1, NOW - 1, 157784, 52.5, "mL/h", True)
    volume = Observation("clinic", "room1", "pump", 2, NOW - 1, 157864, 12.34, "mL", True)
    view = bedside_view(room(pump_status(), rate, volume), NOW).pump
    assert (view.rate_text, view.volume_text, view.mode_text, view.state) == (
        "52.50",
        "12.3",
        "RUNNING",
        "running",
    )
    alarm = bedside_view(room(pump_status(conditions=("pump_occlusion",)), rate, volume), NOW).pump
    assert alarm.state == "alarm" and alarm.alarms == ("Pump: occlusion",)
    gone = bedside_view(room(rate, volume, pump_status(state="offline")), NOW).pump
    assert (gone.rate_text, gone.state) == ("--", "offline")
    stale = bedside_view(room(pump_status(), rate, volume), NOW + 60).pump
    assert stale.rate_text == "--"


def test_perfusion_index_is_hidden_when_no_device_reports_it() -> None:
    assert bedside_view(room(online(), reading(150456, 97)), NOW).perfusion.state == "absent"
    assert bedside_view(room(online(), reading(150448, 3.6)), NOW).perfusion.text == "3.60"


def alarm(
    id_: str, priority: str, state: str = "active", ts: float = NOW - 5, **kw: object
) -> AlarmTransition:
    return AlarmTransition(
        "clinic",
        "room1",
        id_,
        ts,
        state,
        priority,
        kw.pop("kind", "physiological"),  # type: ignore[arg-type]
        kw.pop("condition", "spo2_low"),
        kw.pop("message", f"{id_} message"),
        **kw,
    )  # type: ignore[arg-type]


def test_alarms_are_ranked_flash_by_priority_and_sound_only_when_not_acknowledged_or_paused() -> None:
    state = room(
        alarm("a", "low", ts=NOW - 1),
        alarm("b", "high", value=86.0, limit=88.0),
        alarm("c", "medium", "acknowledged", user="Ana"),
        alarm("d", "high", "cleared"),
    )
    panel = alarm_panel_view(state, NOW)
    assert [a.id for a in panel.alarms] == ["b", "c", "a"], "high first; a cleared alarm is gone"
    assert "flashing" in panel.alarms[0].css and "prio-high" in panel.alarms[0].css
    assert "flashing" not in panel.alarms[1].css and "acknowledged by Ana" in panel.alarms[1].detail
    assert panel.alarms[0].detail == "value 86 %, limit 88 %"
    assert panel.sound == "high" and panel.summary == "3 alarms: 1 high, 1 medium, 1 low"
    paused = alarm_panel_view(room(alarm("b", "high", "audio_paused", ts=NOW - 23)), NOW)
    assert paused.sound is None and paused.paused_text == "Audio paused 1:37"


def test_a_note_lists_the_words_that_raised_an_alert() -> None:
    note = ClinicalEvent(
        "clinic", "room1", NOW - 30, "note", "Ana", "n1", text="patient nauseous, denies headache"
    )
    raised = alarm("x", "medium", condition="side_effect:nausea", kind="clinical", source_event="n1")
    view = notes_view(room(note, raised))
    assert [text for text, effect in view[0].parts if effect] == ["nauseous"]
    assert view[0].raised == "raised: nausea (medium)"


def test_pleth_samples_are_placed_at_their_own_times() -> None:
    block = Observation(
        "clinic", "room1", "oximeter", 1, 1000.0, 150452, None, "1", True, None, (), tuple(range(25)), 75.0
    )
    later = Observation(
        "clinic",
        "room1",
        "oximeter",
        2,
        1000.0 + 25 / 75,
        150452,
        None,
        "1",
        False,
        None,
        (),
        tuple(range(25)),
        75.0,
    )
    xs, ys = pleth_samples([block, later])
    assert xs[24] == 1000.0 and all(b > a for a, b in itertools.pairwise(xs))
    assert ys[:25] == list(range(25)) and ys[25:] == [None] * 25, "a flagged block draws a gap"


def test_pleth_drawn_by_the_lowest_and_highest_of_each_bucket_keeps_every_peak() -> None:
    wave = (50, 80, 120, 90, 60, 55, 52, 200, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40) + (60,) * 5
    block = Observation(
        "clinic", "room1", "oximeter", 1, 1000.0, 150452, None, "1", True, None, (), wave, 75.0
    )
    xs, ys = pleth_samples([block], bucket=5)
    assert ys == [50, 120, 200, 50, 49, 45, 44, 40, 60, 60]  # the 200 spike and the 40 trough survive
    assert len(xs) == 10 and all(b >= a for a, b in itertools.pairwise(xs))
    assert xs[2] == round(1000.0 - (24 - 7) / 75, 2)  # the spike at its own time

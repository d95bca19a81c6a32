"""The alarm engine and its profile: every test drives the engine with explicit timestamps, never a clock."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import mdc
from monitor.alarm_profile import AlarmProfile, AlarmProfileError, load_profile, parse_profile
from monitor.alarms import AlarmEngine, RoomAlarms
from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation

SITE, ROOM = "clinic", "r1"
PROFILE = load_profile(None)
_seq = itertools.count(1)

Event = Observation | DeviceStatus | ClinicalEvent


# --- building events ------------------------------------------------------------------------------------


def obs(
    ts: float,
    metric: mdc.Metric,
    value: float | None,
    *,
    device: str = "ox",
    valid: bool = True,
    conditions: tuple[str, ...] = (),
) -> Observation:
    return Observation(
        SITE, ROOM, device, next(_seq), ts, metric.code, value, metric.unit, valid, None, conditions
    )


def series(
    t0: float, metric: mdc.Metric, values: Iterable[float | None], *, device: str = "ox", step: float = 1.0
):
    """One sample a `step` from t0; None is an invalid sample (dashes)."""
    return [obs(t0 + i * step, metric, v, device=device, valid=v is not None) for i, v in enumerate(values)]


def status(
    ts: float,
    device: str,
    state: str = "online",
    conditions: tuple[str, ...] = (),
    *,
    protocol: str = "",
    details: dict[str, float | int | str | None] | None = None,
    reason: str = "",
) -> DeviceStatus:
    return DeviceStatus(
        SITE, ROOM, device, ts, state, protocol, conditions, reason, details=dict(details or {})
    )


def clinical(ts: float, type_: str, author: str = "nurse_a", **fields: object) -> ClinicalEvent:
    return ClinicalEvent(SITE, ROOM, ts, type_, author, f"ev-{next(_seq)}", **fields)  # type: ignore[arg-type]


def ack(ts: float, alarm_id: str = "", author: str = "nurse_a") -> ClinicalEvent:
    return clinical(ts, "alarm_ack", author, alarm_id=alarm_id)


def pause(ts: float, author: str = "nurse_a") -> ClinicalEvent:
    return clinical(ts, "audio_pause", author)


# --- running the engine ------------------------------------------------------------------------------


def run(
    events: Sequence[Event],
    until: float | None = None,
    *,
    engine: AlarmEngine | None = None,
    state: RoomAlarms | None = None,
    tick: float | None = None,
) -> list[AlarmTransition]:
    """Step through the events in order (ticking every `tick` s in between, if given), then advance."""
    engine = engine or AlarmEngine(PROFILE)
    state = state if state is not None else engine.new_room(SITE, ROOM)
    out: list[AlarmTransition] = []
    clock = None
    for event in events:
        if tick is not None:
            clock = event.ts if clock is None else clock
            while clock + tick < event.ts:
                clock += tick
                out += engine.advance(state, clock)
        out += engine.step(state, event)
    if until is not None:
        if tick is not None and clock is not None:
            while clock + tick < until:
                clock += tick
                out += engine.advance(state, clock)
        out += engine.advance(state, until)
    return out


def of(transitions: Iterable[AlarmTransition], condition: str) -> list[tuple[float, str]]:
    """(ts, state) of one condition's transitions."""
    return [(t.ts, t.state) for t in transitions if t.condition == condition]


def steady_spo2(t0: float, t1: float, value: float = 97, device: str = "ox") -> list[Observation]:
    return series(t0, mdc.SPO2, [value] * int(t1 - t0 + 1), device=device)


def merged(*streams: Sequence[Event]) -> list[Event]:
    return sorted(itertools.chain(*streams), key=lambda e: e.ts)


# --- the profile ----------------------------------------------------------------------------------------


def test_shipped_profile_has_the_documented_rules() -> None:
    rules = {r.id: r for r in PROFILE.rules}
    assert (rules["spo2_low"].limit, rules["spo2_low"].delay_s, rules["spo2_low"].priority) == (
        92,
        15,
        "medium",
    )
    assert (rules["spo2_very_low"].limit, rules["spo2_very_low"].delay_s) == (88, 10)
    assert rules["spo2_very_low"].latching and not rules["spo2_low"].latching
    assert rules["sys_very_high"].inclusive and rules["sys_very_high"].limit == 180
    assert rules["sys_rise"].relative_to_baseline and rules["sys_rise"].limit == 40
    assert (PROFILE.escalation_s, PROFILE.audio_pause_s) == (60, 120)
    assert PROFILE.technical.policy("pump_occlusion").priority == "high"
    assert PROFILE.technical.policy("nibp_weak_signal").priority == "low"
    assert PROFILE.technical.policy("nibp_no_response").priority == "medium"  # exact beats the nibp_* prefix
    assert PROFILE.technical.policy("never_heard_of").priority == "low"
    assert load_profile("ketamine-default") == PROFILE


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinic.toml"
    path.write_text(text)
    return path


_RULE = """
[[rule]]
id = "spo2_low"
code = "MDC_PULS_OXIM_SAT_O2"
comparison = "below"
limit = 92
priority = "medium"
"""


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (_RULE + "delay = 15\n", "rule[1] (spo2_low).delay", "unknown key"),
        (_RULE.replace('"medium"', '"urgent"'), "rule[1] (spo2_low).priority", "expected one of high"),
        (_RULE.replace("92", '"92"'), "rule[1] (spo2_low).limit", "expected a number"),
        (_RULE.replace('"MDC_PULS_OXIM_SAT_O2"', '"SPO2"'), "rule[1] (spo2_low).code", "unknown MDC code"),
        (_RULE + 'message = "{label} {valu}"\n', "rule[1] (spo2_low).message", "unknown field {valu}"),
        (_RULE + _RULE, "rule[2] (spo2_low).id", "used by an earlier rule"),
        ("audio_pause_s = 300\n", "audio_pause_s", "at most 120 s (IEC 60601-1-8)"),
        (
            '[technical.conditions]\npump_occlusion = { priority = "none" }\n',
            "technical.conditions.pump_occlusion.priority",
            "expected one of",
        ),
        ('[clinical.severity]\nfatal = "high"\n', "clinical.severity.fatal", "unknown key"),
        ("escalation = 60\n", "escalation", "unknown key"),
    ],
)
def test_a_bad_profile_names_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AlarmProfileError) as caught:
        load_profile(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert words in str(caught.value)


def test_unreadable_profiles_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AlarmProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(AlarmProfileError, match="not valid TOML"):
        load_profile(_write(tmp_path, "limit = = 3"))
    with pytest.raises(AlarmProfileError, match="no profile named 'nope'; available: ketamine-default"):
        load_profile("nope")


# --- physiological rules ------------------------------------------------------------------------------


def test_a_9_s_dip_under_a_10_s_delay_raises_nothing() -> None:
    events = series(0, mdc.SPO2, [97] * 10 + [85] * 9 + [97] * 5)  # below 88 from t=10 to the 97 at t=19
    assert run(events, until=23) == []


def test_an_11_s_dip_raises_at_exactly_t0_plus_delay_with_the_worst_value() -> None:
    dip = [86, 85, 84, 85, 83, 85, 86, 85, 84, 85, 86]  # t = 10..20; 83 is the worst before t = 20
    out = run(series(0, mdc.SPO2, [97] * 10 + dip + [97] * 3), until=23)
    first = out[0]
    assert (first.ts, first.state, first.priority, first.kind) == (20.0, "active", "high", "physiological")
    assert (first.condition, first.value, first.limit, first.device) == ("spo2_very_low", 83, 88, "ox")
    assert first.message == "SpO2 83 % < 88 %"
    assert first.id == "r1:spo2_very_low:20000"
    # recovery at t = 21: high priority latches; the 15 s medium rule never had 15 s
    assert [(t.ts, t.state, t.latched) for t in out] == [(20.0, "active", False), (21.0, "active", True)]


def test_hysteresis_a_sawtooth_at_the_limit_raises_once_and_clears_once() -> None:
    saw = [91, 92, 91, 92, 90, 92, 91, 92] * 5  # 40 s hovering at the 92 % limit (hysteresis 1: clear at 93)
    out = run(series(0, mdc.SPO2, [97] * 5 + saw + [93] * 5), until=52)
    assert of(out, "spo2_low") == [(20.0, "active"), (45.0, "cleared")]
    assert out[0].value == 90


def test_without_hysteresis_the_same_sawtooth_would_chatter() -> None:
    rules = tuple(
        dataclasses.replace(r, hysteresis=0, delay_s=0) for r in PROFILE.rules if r.id == "spo2_low"
    )
    engine = AlarmEngine(dataclasses.replace(PROFILE, rules=rules))
    out = run(series(0, mdc.SPO2, [91, 92, 91, 92, 91, 92]), until=6, engine=engine)
    assert len(of(out, "spo2_low")) == 6  # the reason for hysteresis
    engine = AlarmEngine(
        dataclasses.replace(PROFILE, rules=tuple(dataclasses.replace(r, hysteresis=1) for r in rules))
    )
    out = run(series(0, mdc.SPO2, [91, 92, 91, 92, 91, 92, 93]), until=7, engine=engine)
    assert of(out, "spo2_low") == [(0.0, "active"), (6.0, "cleared")]


def test_a_high_alarm_latches_until_acknowledged_then_clears() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    out = run(series(0, mdc.SPO2, [85] * 12 + [97] * 20), engine=engine, state=state)
    assert [(t.ts, t.state, t.latched) for t in of_full(out, "spo2_very_low")] == [
        (10.0, "active", False),
        (12.0, "active", True),
    ]
    alarm_id = out[0].id
    assert [t.id for t in engine.active(state)] == [alarm_id]  # still shown after recovery
    out = engine.step(state, ack(40, alarm_id, author="nurse_b"))
    assert [(t.ts, t.state, t.user) for t in out] == [
        (40, "acknowledged", "nurse_b"),
        (40, "cleared", "nurse_b"),
    ]
    assert engine.active(state) == []


def of_full(transitions: Iterable[AlarmTransition], condition: str) -> list[AlarmTransition]:
    return [t for t in transitions if t.condition == condition]


def test_a_medium_alarm_does_not_latch() -> None:
    out = run(series(0, mdc.SPO2, [90] * 20 + [97] * 5), until=25)
    assert of(out, "spo2_low") == [(15.0, "active"), (20.0, "cleared")]


def test_a_latched_alarm_whose_condition_returns_is_current_again_not_new() -> None:
    out = run(series(0, mdc.SPO2, [85] * 12 + [97] * 3 + [85] * 3), until=18)
    assert [(t.ts, t.latched) for t in of_full(out, "spo2_very_low")] == [
        (10, False),
        (12, True),
        (15, False),
    ]
    assert len({t.id for t in out}) == 1


def test_invalid_samples_and_sensor_problems_suspend_a_condition() -> None:
    # below 88 from t=0; invalid samples and a sensor-off sample carry nothing: no recovery before t0 + 10
    events = series(0, mdc.SPO2, [85, 85, None, None, 85])
    events.append(obs(5, mdc.SPO2, 97, conditions=("sensor_off",)))  # a "97" from a sensor that is off
    events += series(6, mdc.SPO2, [None] * 5 + [97])
    out = run(events, until=11)
    assert of(out, "spo2_very_low") == [(10.0, "active"), (11.0, "active")]  # 11: latched (recovered)
    # ...and a condition never starts on an invalid or unhealthy sample
    events = [
        obs(0, mdc.SPO2, 97),
        obs(1, mdc.SPO2, 80, valid=False),
        obs(2, mdc.SPO2, 80, conditions=("no_sensor",)),
    ]
    events += series(3, mdc.SPO2, [97] * 15)
    assert run(events, until=17) == []


def test_two_rules_on_one_code_are_both_raised_and_ranked() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    run(series(0, mdc.SPO2, [86] * 20), engine=engine, state=state)
    assert [(t.condition, t.priority) for t in engine.active(state)] == [
        ("spo2_very_low", "high"),
        ("spo2_low", "medium"),
    ]


def test_a_pulse_rule_with_the_acknowledgement_cycle() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    pulse = series(0, mdc.PULSE_RATE, [130] * 30 + [110] * 5 + [130] * 12)
    out = run([*pulse[:16], ack(15.5, author="nurse_b"), *pulse[16:]], engine=engine, state=state)
    first, acked, cleared, second = out
    assert (first.ts, first.state, first.message) == (10, "active", "Pulse 130 /min > 120 /min")
    assert (acked.ts, acked.state, acked.user, acked.id) == (15.5, "acknowledged", "nurse_b", first.id)
    assert (cleared.ts, cleared.state, cleared.id) == (30, "cleared", first.id)  # 110 <= 120 - 5
    assert (second.ts, second.state) == (45, "active")
    assert second.id != first.id


def test_acknowledging_unknown_or_acknowledged_alarms_is_recorded_not_raised() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    out = run(series(0, mdc.PULSE_RATE, [130] * 12), engine=engine, state=state)
    assert engine.step(state, ack(12, out[0].id)) and engine.step(state, ack(13, out[0].id)) == []
    assert engine.step(state, ack(14, "r1:nothing:1")) == []
    assert [r.reason for r in state.rejected] == [
        f"acknowledge: {out[0].id} already acknowledged",
        "acknowledge: no open alarm 'r1:nothing:1'",
    ]


# --- audio pause and escalation -----------------------------------------------------------------------


def test_audio_pause_ends_at_exactly_120_s() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    out = run([*series(0, mdc.PULSE_RATE, [130] * 12), pause(12, "nurse_c")], engine=engine, state=state)
    assert [(t.ts, t.state, t.user) for t in out] == [(10, "active", ""), (12, "audio_paused", "nurse_c")]
    assert state.audio_paused_until == 132
    assert engine.next_deadline(state) == 132
    assert engine.advance(state, 131.99) == []
    out = engine.advance(state, 500)
    assert [(t.ts, t.state) for t in out] == [(132, "active")]
    assert state.audio_paused_until is None


def test_a_higher_priority_alarm_breaks_through_the_pause() -> None:
    pulse = series(0, mdc.PULSE_RATE, [130] * 40)
    spo2 = series(0, mdc.SPO2, [97] * 20 + [85] * 20)  # < 88 from t = 20: high at t = 30
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    out = run(merged(pulse, spo2, [pause(12)]), engine=engine, state=state)
    assert [(t.ts, t.condition, t.state) for t in out] == [
        (10, "pulse_high", "active"),
        (12, "pulse_high", "audio_paused"),
        (30, "pulse_high", "active"),  # the pause ends for all...
        (30, "spo2_very_low", "active"),  # ...and the new one sounds
        (35, "spo2_low", "active"),
    ]
    assert state.audio_paused_until is None


def test_an_equal_priority_alarm_during_the_pause_starts_paused() -> None:
    pulse = series(0, mdc.PULSE_RATE, [130] * 60)
    spo2 = series(0, mdc.SPO2, [97] * 20 + [90] * 40)  # < 92 from t = 20: medium at t = 35
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    out = run(merged(pulse, spo2, [pause(12, "nurse_d")]), until=200, engine=engine, state=state)
    assert [
        (t.ts, t.condition, t.state, t.user) for t in out if t.condition in ("pulse_high", "spo2_low")
    ] == [
        (10, "pulse_high", "active", ""),
        (12, "pulse_high", "audio_paused", "nurse_d"),
        (35, "spo2_low", "audio_paused", "nurse_d"),
        (132, "spo2_low", "active", ""),  # ranked: same priority, newest first
        (132, "pulse_high", "active", ""),
    ]


def test_a_pause_with_nothing_to_pause_is_recorded() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    assert engine.step(state, pause(5)) == []
    assert state.audio_paused_until is None
    assert state.rejected[0].reason == "audio pause: no alarm to pause"


def test_escalation_at_exactly_60_s_and_acknowledging_it() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    out = run(series(0.5, mdc.SPO2, [85] * 80), engine=engine, state=state)  # high at t = 10.5
    assert of(out, "spo2_very_low") == [(10.5, "active"), (70.5, "escalated")]
    escalated = next(t for t in out if t.state == "escalated")
    out = engine.step(state, ack(81, escalated.id, "nurse_e"))
    assert [(t.ts, t.state, t.user) for t in out] == [
        (81, "acknowledged", "nurse_e")
    ]  # its condition persists


def test_no_escalation_when_acknowledged_in_time() -> None:
    events = [*series(0, mdc.SPO2, [85] * 40), ack(40)]
    events += series(41, mdc.SPO2, [85] * 60)
    out = run(events, until=101)
    assert "escalated" not in {t.state for t in out}


def test_escalation_waits_for_a_running_pause() -> None:
    events = [*series(0, mdc.SPO2, [85] * 15), pause(15)]
    events += series(16, mdc.SPO2, [85] * 130)
    out = run(events, until=145)
    assert of(out, "spo2_very_low") == [(10, "active"), (15, "audio_paused"), (135, "escalated")]


# --- technical conditions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "priority", "delay"),
    [
        ("sensor_off", "medium", 15),
        ("no_sensor", "medium", 15),
        ("no_cable", "medium", 15),
        ("nibp_weak_signal", "low", 0),
        ("nibp_loose_cuff", "low", 0),
        ("nibp_no_response", "medium", 0),
        ("pump_occlusion", "high", 0),
        ("pump_air_in_line", "high", 0),
        ("pump_end_of_infusion", "medium", 0),
        ("pump_near_end", "low", 0),
        ("pump_no_response", "medium", 0),
        ("device_spo2_low", "low", 0),
        ("device_alarm_active", "low", 0),
        ("low_battery", "low", 0),
        ("pulse_search", "low", 15),
        ("something_new", "low", 0),
    ],
)
def test_each_technical_condition_class(condition: str, priority: str, delay: float) -> None:
    events = [status(100, "dev1", conditions=(condition,)), status(150, "dev1")]
    out = run(events, until=300)
    raised, cleared = out
    assert (raised.ts, raised.state, raised.priority, raised.kind) == (
        100 + delay,
        "active",
        priority,
        "technical",
    )
    assert (raised.condition, raised.device, raised.latched) == (f"{condition}:dev1", "dev1", False)
    assert raised.message.startswith("dev1: ")
    assert (cleared.ts, cleared.state) == (150, "cleared")


def test_a_technical_condition_shorter_than_its_delay_raises_nothing() -> None:
    assert run([status(0, "ox", conditions=("sensor_off",)), status(10, "ox")], until=100) == []


def test_technical_alarms_never_latch_even_unacknowledged_and_high() -> None:
    out = run([status(0, "pump", conditions=("pump_occlusion",)), status(30, "pump")], until=100)
    assert of(out, "pump_occlusion:pump") == [(0, "active"), (30, "cleared")]


def test_device_offline_is_a_medium_technical_alarm() -> None:
    out = run([status(0, "cuff", "offline", reason="link lost"), status(50, "cuff")], until=60)
    assert [(t.ts, t.state, t.priority, t.condition, t.message) for t in out] == [
        (0, "active", "medium", "device_offline:cuff", "cuff: offline (link lost)"),
        (50, "cleared", "medium", "device_offline:cuff", "cuff: offline (link lost)"),
    ]


# --- stale data -----------------------------------------------------------------------------------------


def test_an_oximeter_silent_for_10_s_is_stale() -> None:
    events = [status(0, "ox", protocol="masimo-ascii"), *steady_spo2(0, 5), *steady_spo2(30, 32)]
    out = run(events, until=50)
    assert of(out, "stale:ox") == [(15, "active"), (30, "cleared"), (42, "active")]
    assert out[0].message == "ox: no valid SpO2 for 10 s" and out[0].priority == "medium"


def test_an_oximeter_sending_only_invalid_values_is_stale_too() -> None:
    out = run(series(0, mdc.SPO2, [97] * 5 + [None] * 20), until=24)
    assert of(out, "stale:ox") == [(14, "active")]


def test_nibp_is_stale_after_its_own_interval_plus_margin() -> None:
    cuff = [status(0, "cuff", protocol="suntech-nibp", details={"interval_s": 600, "next_at": 610})]
    cuff += [obs(10, mdc.NIBP_SYS, 120, device="cuff"), obs(10, mdc.NIBP_DIA, 80, device="cuff")]
    out = run(cuff, until=2000)
    assert of(out, "stale:cuff") == [(730, "active")]  # 10 + 600 + 120
    assert out[0].message == "cuff: no blood pressure for 12 min (cycle 10 min)"
    # without details, the profile's default cycle (300 s)
    out = run(
        [status(0, "cuff", protocol="suntech-nibp"), obs(10, mdc.NIBP_SYS, 120, device="cuff")], until=2000
    )
    assert of(out, "stale:cuff") == [(430, "active")]


def test_nibp_stale_follows_a_changed_cycle_and_failed_measurements_do_not_count() -> None:
    events = [status(0, "cuff", protocol="suntech-nibp", details={"interval_s": 300})]
    events.append(obs(10, mdc.NIBP_SYS, 120, device="cuff"))
    events.append(obs(320, mdc.NIBP_SYS, None, device="cuff", valid=False))  # a failed measurement
    events.append(status(500, "cuff", details={"interval_s": 900}))  # the nurse chose 15 min
    events.append(status(600, "cuff", details={"interval_s": 60}))  # ...then 1 min: overdue already
    out = run(events, until=700)
    assert of(out, "stale:cuff") == [(430, "active"), (500, "cleared"), (600, "active")]


def test_a_pump_silent_for_10_s_is_stale() -> None:
    events = [status(0, "pump", protocol="alaris-asena"), obs(1, mdc.INFUSION_RATE, 30, device="pump")]
    assert of(run(events, until=30), "stale:pump") == [(11, "active")]


def test_offline_suppresses_stale_and_sensor_alarms_of_that_device() -> None:
    events = [status(0, "ox", protocol="masimo-ascii"), *steady_spo2(0, 5)]
    events.append(status(6, "ox", conditions=("sensor_off",)))  # sensor alarm pending (15 s)
    events.append(status(10, "ox", "offline", reason="no data for 4 s"))
    events.append(status(100, "ox"))  # back, but no data follows
    out = run(events, until=200)
    assert [(t.ts, t.condition, t.state) for t in out] == [
        (10, "device_offline:ox", "active"),
        (100, "device_offline:ox", "cleared"),
        (110, "stale:ox", "active"),  # blind time restarts when it comes back
    ]


def test_going_offline_clears_a_sensor_alarm_already_raised() -> None:
    events = [status(0, "ox", conditions=("sensor_off",)), status(30, "ox", "offline")]
    assert of(run(events, until=40), "sensor_off:ox") == [(15, "active"), (30, "cleared")]


def test_a_probe_off_raises_the_sensor_alarm_only() -> None:
    events = [status(0, "ox", protocol="masimo-ascii"), *steady_spo2(0, 5)]
    events.append(status(5.5, "ox", conditions=("sensor_off",)))
    events += series(6, mdc.SPO2, [None] * 60)
    out = run(events, until=70)
    assert [(t.ts, t.condition, t.state) for t in out] == [(20.5, "sensor_off:ox", "active")]


def test_a_10_s_probe_off_blip_raises_nothing() -> None:
    events = [status(0, "ox", protocol="masimo-ascii"), *steady_spo2(0, 5)]
    events.append(status(5.5, "ox", conditions=("sensor_off",)))
    events += series(6, mdc.SPO2, [None] * 10)
    events.append(status(15.5, "ox"))  # back on; pulse search for 3 s
    events += series(16, mdc.SPO2, [None] * 3 + [97] * 20)
    assert run(events, until=40) == []


def test_a_flickering_probe_raises_one_stale_alarm() -> None:
    events: list[Event] = [status(0, "ox", protocol="masimo-ascii"), *steady_spo2(0, 5)]
    for t in range(6, 60, 10):  # off 5 s, on 5 s (no valid value), again and again
        events += [status(t, "ox", conditions=("sensor_off",)), status(t + 5, "ox")]
    out = run(events, until=70)
    # blind time runs only while the probe is on: 5-6, 11-16, 21-25 = 10 s
    assert [(t.ts, t.condition, t.state) for t in out] == [(25, "stale:ox", "active")]


# --- clinical alerts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effect", "severity", "priority"),
    [
        ("nausea", "mild", "low"),
        ("vomiting", "moderate", "medium"),
        ("agitation", "severe", "high"),
        ("dizziness", "", "medium"),
        ("chest_pain", "mild", "high"),  # chest pain is high whatever its recorded severity
        ("chest_pain", "severe", "high"),
    ],
)
def test_side_effects_alert_by_severity(effect: str, severity: str, priority: str) -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    event = clinical(50, "side_effect", effect=effect, severity=severity)
    (alert,) = engine.step(state, event)
    assert (alert.ts, alert.state, alert.kind, alert.priority) == (50, "active", "clinical", priority)
    assert (alert.condition, alert.source_event, alert.latched) == (
        f"side_effect:{effect}",
        event.event_id,
        False,
    )
    assert effect.replace("_", " ") in alert.message
    assert engine.advance(state, 1000) == [] or priority == "high"  # nothing clears it by itself
    assert [t.id for t in engine.active(state)] == [alert.id]
    out = engine.step(state, ack(2000, alert.id, "nurse_f"))
    assert [(t.state, t.user) for t in out] == [("acknowledged", "nurse_f"), ("cleared", "nurse_f")]


def test_a_side_effect_already_alerted_is_not_raised_twice() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    events = [clinical(1, "side_effect", effect="nausea", severity="moderate")]
    events += [clinical(2, "side_effect", effect="nausea", severity="mild")]
    events += [clinical(3, "side_effect", effect="nausea", severity="severe")]  # worse: a new alert
    out = run(events, engine=engine, state=state)
    assert [(t.ts, t.priority) for t in out] == [(1, "medium"), (3, "high")]
    assert "already alerted" in state.rejected[0].reason


@dataclasses.dataclass(frozen=True)
class FakeFinding:
    effect: str
    severity: str | None
    start: int
    end: int
    text: str


def test_a_note_raises_one_alert_per_finding() -> None:
    def scanner(note: str) -> list[FakeFinding]:
        assert note == "pt nauseous, some dizziness, severe headache"
        return [
            FakeFinding("nausea", None, 3, 11, "nauseous"),
            FakeFinding("headache", "severe", 31, 46, "severe headache"),
        ]

    engine = AlarmEngine(PROFILE, note_scanner=scanner)
    state = engine.new_room(SITE, ROOM)
    note = clinical(60, "note", text="pt nauseous, some dizziness, severe headache")
    out = engine.step(state, note)
    assert [(t.condition, t.priority, t.source_event, t.kind) for t in out] == [
        ("side_effect:nausea", "medium", note.event_id, "clinical"),
        ("side_effect:headache", "high", note.event_id, "clinical"),
    ]
    assert "“nauseous”" in out[0].message
    assert engine.step(state, clinical(61, "note", text="   ")) == []


def test_notes_go_through_the_real_scanner_by_default() -> None:
    engine = AlarmEngine(PROFILE)  # no scanner given: monitor.notes.find_side_effects, imported on first use
    state = engine.new_room(SITE, ROOM)
    note = clinical(5, "note", text="pt nauseous, denies headache. later: chest pain")
    out = engine.step(state, note)
    assert [(t.condition, t.priority) for t in out] == [
        ("side_effect:nausea", "medium"),  # no severity written: the default
        ("side_effect:chest_pain", "high"),
    ]
    assert {t.source_event for t in out} == {note.event_id}


def test_a_failing_note_scanner_is_recorded_not_fatal() -> None:
    def scanner(note: str) -> list[FakeFinding]:
        raise RuntimeError("boom")

    engine = AlarmEngine(PROFILE, note_scanner=scanner)
    state = engine.new_room(SITE, ROOM)
    assert engine.step(state, clinical(1, "note", text="anything")) == []
    assert state.rejected[0].reason == "note not scanned: RuntimeError: boom"


# --- limits and baselines -----------------------------------------------------------------------------


def test_a_limit_change_moves_the_threshold_from_then_on() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    change = clinical(5, "limit_change", "dr_x", rule="spo2_very_low", limit=85)
    out = run(
        [*series(0, mdc.SPO2, [97] * 5), change, *series(6, mdc.SPO2, [86] * 30)], engine=engine, state=state
    )
    assert of(out, "spo2_very_low") == []
    assert of(out, "spo2_low") == [(21, "active")]  # the other rule still applies
    assert [(c.rule, c.old, c.new, c.author) for c in state.limit_changes] == [
        ("spo2_very_low", 88, 85, "dr_x")
    ]
    out = run(series(36, mdc.SPO2, [84] * 11), engine=engine, state=state)
    assert [(t.ts, t.limit, t.message) for t in of_full(out, "spo2_very_low")] == [
        (46, 85, "SpO2 84 % < 85 %")
    ]


def test_raising_a_limit_clears_an_alarm_at_the_next_sample() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    pulse = series(0, mdc.PULSE_RATE, [130] * 20)
    change = clinical(14.5, "limit_change", "dr_y", rule="pulse_high", limit=140)
    out = run([*pulse[:15], change, *pulse[15:]], engine=engine, state=state)
    assert of(out, "pulse_high") == [(10, "active"), (15, "cleared")]


def test_a_limit_change_for_an_unknown_rule_is_rejected() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    event = clinical(1, "limit_change", "dr_x", rule="spo2_lo", limit=85)
    assert engine.step(state, event) == []
    assert state.rejected[0].event_id == event.event_id
    assert state.rejected[0].reason == "limit change: unknown rule 'spo2_lo'"
    assert state.limits == {}


def _bp(ts: float, systolic: float, diastolic: float = 80) -> list[Observation]:
    return [obs(ts, mdc.NIBP_SYS, systolic, device="cuff"), obs(ts, mdc.NIBP_DIA, diastolic, device="cuff")]


def test_systolic_rise_above_baseline() -> None:
    events = [*_bp(0, 100), *_bp(300, 135), *_bp(600, 145), *_bp(900, 130)]
    out = run(events, until=901)
    assert [(t.ts, t.condition, t.state, t.value, t.limit) for t in out] == [
        (600, "sys_rise", "active", 145, 140),  # one measurement raises it (delay 0)
        (900, "sys_rise", "cleared", 145, 140),  # 130 <= 140 - 5
    ]
    assert out[0].message == "Systolic 145 mmHg > 140 mmHg (baseline 100 + 40)"


def test_a_baseline_set_by_the_session_is_used() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    engine.set_baseline(state, mdc.NIBP_SYS.code, 90)
    out = run(_bp(0, 135), engine=engine, state=state)
    assert [(t.condition, t.limit) for t in out] == [("sys_rise", 130)]


def test_absolute_bp_limits_are_inclusive() -> None:
    out = run([*_bp(0, 120), *_bp(300, 160, 100), *_bp(600, 180, 110)], until=601)
    assert [(t.ts, t.condition, t.priority) for t in out if t.state == "active"] == [
        (300, "sys_high", "medium"),  # 160 >= 160, but not more than 40 above the baseline of 120
        (300, "dia_high", "medium"),
        (600, "sys_very_high", "high"),
        (600, "sys_rise", "medium"),
        (600, "dia_very_high", "high"),
    ]


# --- time, order and determinism ----------------------------------------------------------------------


def _session() -> list[Event]:
    """Ten minutes of a room: fractional times, dips, a probe off, a cuff, a pump, people acting."""
    events: list[Event] = [
        status(0.2, "ox", protocol="masimo-ascii"),
        status(0.4, "cuff", protocol="suntech-nibp", details={"interval_s": 120}),
        status(0.6, "pump", protocol="alaris-asena"),
    ]
    spo2 = (
        [97] * 30 + [89, 88, 87, 86, 85, 84, 86, 87] * 3 + [95] * 40 + [None] * 20 + [91, 90] * 20 + [97] * 60
    )
    events += series(0.37, mdc.SPO2, spo2)
    events += series(0.41, mdc.PULSE_RATE, [80] * 100 + [125] * 40 + [80] * 64)
    events += series(1.1, mdc.INFUSION_RATE, [30] * 150, device="pump")
    events += _bp(10.5, 120) + _bp(130.5, 165) + _bp(250.5, 182, 112)
    events += [status(140.2, "ox", conditions=("sensor_off",)), status(170.9, "ox")]
    events += [pause(62.3, "nurse_a"), ack(180.7, "", "nurse_b"), pause(260.1, "nurse_c")]
    events += [clinical(200.4, "side_effect", effect="nausea", severity="moderate")]
    events += [clinical(210.0, "limit_change", "dr_x", rule="pulse_high", limit=130)]
    events += [status(300.3, "pump", "offline", reason="link lost")]
    return merged(events)


def test_the_session_exercises_many_kinds_of_transition() -> None:
    out = run(_session(), until=600)
    assert {t.state for t in out} == {"active", "acknowledged", "audio_paused", "escalated", "cleared"}
    assert {t.kind for t in out} == {"physiological", "technical", "clinical"}


@pytest.mark.parametrize("tick", [0.1, 1.0, 5.0, 61.0])
def test_tick_granularity_does_not_change_the_transitions(tick: float) -> None:
    events = _session()
    assert run(events, until=600, tick=tick) == run(events, until=600)


def test_the_same_events_through_fresh_engines_give_identical_transitions() -> None:
    events = _session()
    first = run(events, until=600, engine=AlarmEngine(load_profile(None)))
    assert first == run(events, until=600, engine=AlarmEngine(load_profile(None)))
    assert len(first) > 20


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(80, 100)), min_size=1, max_size=80),
    ticks=st.lists(st.floats(0.05, 30.0), min_size=1, max_size=40),
    pause_at=st.one_of(st.none(), st.integers(0, 79)),
)
def test_property_ticks_never_change_what_is_raised(
    values: list[int | None], ticks: list[float], pause_at: int | None
) -> None:
    events: list[Event] = [
        *series(0.5, mdc.SPO2, values),
        *series(0.7, mdc.PULSE_RATE, [v and v + 40 for v in values]),
    ]
    if pause_at is not None:
        events.append(pause(pause_at + 0.9))
    events = merged(events)
    end = len(values) + 200.0
    plain = run(events, until=end)
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    ticked: list[AlarmTransition] = []
    clock, tick_iter = 0.0, itertools.cycle(ticks)
    for event in events:
        while clock + (step := next(tick_iter)) < event.ts:
            clock += step
            ticked += engine.advance(state, clock)
        ticked += engine.step(state, event)
    ticked += engine.advance(state, end)
    assert ticked == plain
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(plain))


def test_a_late_event_is_applied_at_the_rooms_time() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    engine.advance(state, 100)
    out = engine.step(state, clinical(90, "side_effect", effect="nausea", severity="mild"))
    assert out[0].ts == 100 and state.late_events == 1
    assert engine.advance(state, 50) == [] and state.now == 100  # the clock never goes back


def test_events_of_another_room_are_rejected() -> None:
    engine = AlarmEngine(PROFILE)
    state = engine.new_room(SITE, ROOM)
    other = dataclasses.replace(clinical(1, "side_effect", effect="nausea"), room="r2")
    assert engine.step(state, other) == []
    assert state.rejected[0].reason == "event of clinic/r2"


def test_alarm_ids_are_unique_within_a_millisecond() -> None:
    def scanner(note: str) -> list[FakeFinding]:
        return [FakeFinding("nausea", "mild", 0, 1, "a"), FakeFinding("nausea", "severe", 2, 3, "b")]

    engine = AlarmEngine(PROFILE, note_scanner=scanner)
    out = engine.step(engine.new_room(SITE, ROOM), clinical(1.0, "note", text="x"))
    assert [t.id for t in out] == ["r1:side_effect:nausea:1000", "r1:side_effect:nausea:1000-2"]


def test_profiles_can_be_built_in_code() -> None:
    rule = {"id": "rr_low", "code": "MDC_RESP_RATE", "comparison": "below", "limit": 8, "priority": "high"}
    profile = parse_profile({"rule": [{**rule, "delay_s": 20}]})
    assert isinstance(profile, AlarmProfile) and profile.rules[0].latching
    out = run(series(0, mdc.RESP_RATE, [6] * 25), engine=AlarmEngine(profile))
    assert [(t.ts, t.message) for t in out] == [(20, "RR 6 /min < 8 /min")]

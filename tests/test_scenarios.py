"""Scenario files, blood pressure and the ketamine response: what a trainer writes is what devices show."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.physiology import (
    SCENARIOS,
    Baseline,
    DeviceAction,
    Dose,
    KetamineModel,
    Scenario,
    ScenarioPlayer,
    SetTarget,
    SimulatedPatient,
    Vitals,
)
from simulators.scenario_files import (
    SCENARIO_DIR,
    ScenarioFileError,
    ScenarioSpec,
    available_scenarios,
    format_duration,
    load_scenario,
    parse_duration,
    pump_actions,
)

MIN = 60.0
REQUIRED = {
    "routine-iv-infusion",
    "hypertensive-surge",
    "desaturation",
    "probe-off",
    "cable-pull",
    "pump-occlusion",
    "nibp-error",
    "im-injection",
    "sublingual-lozenge",
    *SCENARIOS,  # the four in-code names: stable, ketamine-iv, desaturation, sensor-off
}


def _trace(spec: ScenarioSpec, minutes: float, every: float = MIN) -> list[tuple[float, Vitals, float]]:
    """(minute, vitals, plasma ng/mL) every `every` simulated seconds, with noise and drift off."""
    patient = spec.new_patient(1, drift=False, noise=False)
    player = spec.play(patient)
    points = []
    for tick in range(1, int(minutes * MIN / every) + 1):
        vitals = player.step(every)
        points.append((tick * every / MIN, vitals, patient.ketamine_ng_ml))
    return points


def _at(trace: list[tuple[float, Vitals, float]], minute: float) -> Vitals:
    return next(vitals for t, vitals, _ in trace if t >= minute)


# --- the shipped files ---------------------------------------------------------------------------------


def test_the_required_scenarios_are_shipped() -> None:
    assert set(available_scenarios()) >= REQUIRED
    assert (SCENARIO_DIR / "README.md").is_file()


@pytest.mark.parametrize("name", available_scenarios())
def test_every_shipped_file_loads_and_plays(name: str) -> None:
    spec = load_scenario(name)
    assert spec.name == name and spec.path == SCENARIO_DIR / f"{name}.toml"
    assert len(spec.description) > 80  # a trainer reads it: what happens, with sources
    assert load_scenario(spec.path) == spec  # by path as by name
    player = spec.play(seed=3, speed=spec.duration_s / 10)  # the whole script in 10 ticks
    for _ in range(10):
        player.step(1.0)
    assert player.sim_time == pytest.approx(spec.duration_s)
    times = [step.at for step in spec.scenario.steps]
    assert times == sorted(times) and all(0 <= t <= spec.duration_s for t in times)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_files_with_the_old_names_behave_like_the_in_code_scenarios(name: str) -> None:
    spec = load_scenario(name)
    assert spec.scenario.repeat_every == SCENARIOS[name].repeat_every
    from_file = spec.play(seed=9, speed=7)
    in_code = SCENARIOS[name].play(SimulatedPatient(seed=9), speed=7)
    for _ in range(900):  # 105 simulated minutes
        a, b = from_file.step(1.0), in_code.step(1.0)
        assert (a.spo2, a.pulse, a.pi, a.sensor, a.systolic, a.diastolic) == (
            b.spo2,
            b.pulse,
            b.pi,
            b.sensor,
            b.systolic,
            b.diastolic,
        )


# --- bad files --------------------------------------------------------------------------------------------

HEAD = 'description = "test"\nduration = "10m"\n'
INFUSION = '[[dose]]\nat = "1m"\nroute = "iv-infusion"\nmg = 35\nover = "5m"\n'


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('description = "x"\nduration = "5x"\n', "duration", '"90s", "5m", "1h30m"'),
        ('duration = "10m"\n', "description", "missing"),
        ('description = "x"\n', "duration", "missing"),
        (HEAD + 'durration = "5m"\n', "durration", "unknown key; expected one of name, description"),
        (HEAD + 'repeat = "yes"\n', "repeat", "true or false"),
        (HEAD + 'name = "other"\n', "name", "differs from the file's name 'bad.toml'"),
        (HEAD + '[dose]\nat = "1m"\n', "dose", "array of tables ([[dose]])"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "iv"\nmg = 10\n', "dose[1].route", "unknown route 'iv'"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "im"\nmg = -5\n', "dose[1].mg", "above 0"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "im"\nmg_per_kg = 0\n', "dose[1].mg_per_kg", "above 0"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "im"\nmg = 5\nmg_per_kg = 1\n', "dose[1].mg", "exactly one"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "im"\n', "dose[1].mg", "exactly one"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "iv-infusion"\nmg = 5\n', "dose[1].over", "missing"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "im"\nmg = 5\nover = "1m"\n', "dose[1].over", "only an iv-inf"),
        (
            HEAD + '[[dose]]\nat = "11m"\nroute = "im"\nmg = 5\n',
            "dose[1].at",
            "11m is after the end of the scenario (10m)",
        ),
        (HEAD + '[[dose]]\nat = "-1"\nroute = "im"\nmg = 5\n', "dose[1].at", "a number of seconds"),
        (HEAD + '[[dose]]\nroute = "im"\nmg = 5\n', "dose[1].at", "missing"),
        (HEAD + '[[dose]]\nat = "1m"\nroute = "im"\nmg = 5\ndrug = "x"\n', "dose[1].drug", "unknown key"),
        (
            HEAD + '[[dose]]\nat = "5m"\nroute = "iv-infusion"\nmg = 5\nover = "6m"\n',
            "dose[1].over",
            "the infusion would end at 11m, after the end of the scenario (10m)",
        ),
        (HEAD + INFUSION + INFUSION.replace('"1m"', '"3m"'), "dose[2].at", "overlaps dose[1]'s"),
        (HEAD + "[pump]\nconcentration_mg_per_ml = 0\n", "pump.concentration_mg_per_ml", "above 0"),
        (HEAD + "[patient]\nspo2 = 101\n", "patient.spo2", "50..100"),
        (HEAD + "[patient]\nweight_kg = 0\n", "patient.weight_kg", "above 0"),
        (HEAD + '[patient]\npulse = "fast"\n', "patient.pulse", "expected a number, got 'fast'"),
        (HEAD + "[patient]\nsystolic = 90\ndiastolic = 95\n", "patient.diastolic", "below systolic"),
        (HEAD + "[patient]\nheight_cm = 180\n", "patient.height_cm", "unknown key"),
        (HEAD + '[[event]]\nat = "5x"\nset = { spo2 = 91 }\n', "event[1].at", '"90s"'),
        (HEAD + '[[event]]\nat = "20m"\nset = { spo2 = 91 }\n', "event[1].at", "after the end"),
        (HEAD + 'repeat = true\n[[event]]\nat = "10m"\nset = { spo2 = 91 }\n', "event[1].at", "not before"),
        (
            HEAD + '[[event]]\nat = "1m"\nset = { temperature = 39 }\n',
            "event[1].set.temperature",
            "unknown vital",
        ),
        (HEAD + '[[event]]\nat = "1m"\nset = { spo2 = 105 }\n', "event[1].set.spo2", "50..100"),
        (HEAD + '[[event]]\nat = "1m"\nshift = { pulse = "up" }\n', "event[1].shift.pulse", "a number"),
        (HEAD + '[[event]]\nat = "1m"\nset = {}\n', "event[1].set", "a table of vitals"),
        (HEAD + '[[event]]\nat = "1m"\nset = { spo2 = 91 }\nramp = "5x"\n', "event[1].ramp", '"90s"'),
        (HEAD + '[[event]]\nat = "1m"\nset = { spo2 = 91 }\nfor = "1m"\n', "event[1].for", "device events"),
        (HEAD + '[[event]]\nat = "1m"\nramp = "1m"\n', "event[1].at", "needs set or shift"),
        (
            HEAD + '[[event]]\nat = "1m"\nset = { spo2 = 91 }\ndevice = "oximeter"\naction = "probe-off"\n',
            "event[1].device",
            "not both",
        ),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "ecg"\naction = "probe-off"\n',
            "event[1].device",
            "unknown device",
        ),
        (HEAD + '[[event]]\nat = "1m"\ndevice = "oximeter"\n', "event[1].action", "missing"),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "oximeter"\naction = "occlusion"\n',
            "event[1].action",
            "unknown oximeter action 'occlusion'; expected one of probe-off",
        ),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "pump"\naction = "start-infusion"\n',
            "event[1].action",
            "comes from an iv-infusion [[dose]]",
        ),
        (HEAD + '[[event]]\nat = "1m"\ndevice = "nibp"\naction = "nibp-error"\n', "event[1].code", "missing"),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "nibp"\naction = "nibp-error"\ncode = 5\n',
            "event[1].code",
            "SunTech return code (1, 2, 3, 4, 85",
        ),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "oximeter"\naction = "probe-off"\ncode = 87\n',
            "event[1].code",
            "only for action nibp-error",
        ),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "oximeter"\naction = "probe-on"\nfor = "1m"\n',
            "event[1].for",
            "probe-on has no opposite",
        ),
        (
            HEAD + '[[event]]\nat = "9m"\ndevice = "oximeter"\naction = "probe-off"\nfor = "2m"\n',
            "event[1].for",
            "the probe-on this schedules would come at 11m, after the end",
        ),
        (
            HEAD + '[[event]]\nat = "1m"\ndevice = "pump"\naction = "occlusion"\nramp = "1m"\n',
            "event[1].ramp",
            "only for events that change vitals",
        ),
    ],
)
def test_bad_files_are_refused_naming_file_and_key(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioFileError) as raised:
        load_scenario(path)
    assert raised.value.file == str(path) and raised.value.key == key
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fragment in message, message


def test_unreadable_files_and_unknown_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('description = "x"\nduration = \n')
    with pytest.raises(ScenarioFileError, match=r"broken\.toml: not valid TOML: .*line 2"):
        load_scenario(path)
    with pytest.raises(ScenarioFileError, match=r"missing\.toml: cannot read the file"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioFileError, match="no scenario named 'nope'; available: cable-pull, "):
        load_scenario("nope")


@given(st.integers(0, 30), st.integers(0, 59), st.integers(0, 59))
def test_durations_read_hours_minutes_seconds(hours: int, minutes: int, seconds: int) -> None:
    total = hours * 3600 + minutes * 60 + seconds
    text = format_duration(total)
    assert parse_duration(text) == total
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == total
    assert parse_duration(total) == total
    assert parse_duration(str(total)) == total


def test_duration_forms() -> None:
    assert parse_duration("90s") == 90.0
    assert parse_duration("5m") == 300.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("2.5m") == 150.0
    assert parse_duration(12.5) == 12.5
    assert format_duration(770) == "12m50s"
    for bad in ("5x", "", "m", "1m1h", "-5s", "5 min", -1, True, None, [1]):
        with pytest.raises(ValueError, match="a duration like"):
            parse_duration(bad)


# --- blood pressure and the ketamine response --------------------------------------------------------------


def test_patient_has_blood_pressure_and_controls_accept_it() -> None:
    patient = SimulatedPatient(seed=2)
    vitals = patient.step(1.0)
    assert 110 < vitals.systolic < 135 and 68 < vitals.diastolic < 88
    assert vitals.mean == pytest.approx(vitals.diastolic + (vitals.systolic - vitals.diastolic) / 3)
    patient.hold("systolic", 185)
    patient.hold("diastolic", 112)
    held = patient.step(5.0)
    assert (held.systolic, held.diastolic, round(held.mean, 6)) == (185.0, 112.0, round(136.333333, 6))
    patient.release("systolic")
    patient.set_target("systolic", 150, ramp_seconds=60)
    patient.shift_from_baseline("diastolic", 10)
    assert patient.signal("systolic").target == 150 and patient.signal("diastolic").target == 88
    with pytest.raises(ValueError):
        patient.hold("systolic", 270)
    assert Vitals(97, 72, 3.5) == Vitals(97, 72, 3.5, "on", systolic=140, diastolic=90)  # oximeter equality
    assert Vitals(97, 72, 3.5).mean == pytest.approx(92.666666)


def test_routine_iv_infusion_raises_bp_and_pulse_like_yale_and_returns() -> None:
    trace = _trace(load_scenario("routine-iv-infusion"), 110)
    base = Baseline()
    end_of_infusion = _at(trace, 42)  # 40 min into the 0.5 mg/kg infusion started at 2 min
    assert 15.0 <= end_of_infusion.systolic - base.systolic <= 20.0
    assert 9.0 <= end_of_infusion.diastolic - base.diastolic <= 12.0
    assert 0.08 <= end_of_infusion.pulse / base.pulse - 1 <= 0.12
    peak_minute, peak, _ = max(trace, key=lambda point: point[1].systolic)
    assert 40 <= peak_minute <= 48  # near the end of the infusion, lagging a little
    assert 15.0 <= peak.systolic - base.systolic <= 20.0
    assert 9.0 <= peak.diastolic - base.diastolic <= 12.0
    plasma_peak = max(plasma for _, _, plasma in trace)
    assert plasma_peak == pytest.approx(177, abs=5)  # clinical.md: Clements gives ~177 ng/mL
    assert max(v.spo2 for _, v, _ in trace) - min(v.spo2 for _, v, _ in trace) < 0.01  # SpO2 untouched
    after = _at(trace, 100)
    assert after.systolic - base.systolic < 4.0 and after.diastolic - base.diastolic < 3.0
    assert after.pulse / base.pulse - 1 < 0.03
    assert _at(trace, 60).systolic - base.systolic < peak.systolic - base.systolic - 4  # already falling


def test_routine_infusion_with_noise_still_shows_the_rise() -> None:
    spec = load_scenario("routine-iv-infusion")
    player = spec.play(seed=5)
    session = [player.step(10.0) for _ in range(6 * 50)]
    before = sum(v.systolic for v in session[:12]) / 12  # first 2 min
    peak = sum(v.systolic for v in session[6 * 41 : 6 * 47]) / 36  # 41-47 min
    assert 8.0 < peak - before < 26.0


def test_im_acts_sooner_and_stronger_than_a_sublingual_lozenge() -> None:
    base = Baseline().systolic
    im = _trace(load_scenario("im-injection"), 120)
    sublingual = _trace(load_scenario("sublingual-lozenge"), 120)

    def onset(trace: list[tuple[float, Vitals, float]]) -> float:  # first minute 10 mmHg above baseline
        return next(t for t, v, _ in trace if v.systolic >= base + 10)

    assert onset(im) < 10 < 15 < onset(sublingual)
    im_peak_minute, im_peak, _ = max(im, key=lambda point: point[1].systolic)
    sl_peak_minute, sl_peak, _ = max(sublingual, key=lambda point: point[1].systolic)
    assert im_peak_minute < sl_peak_minute
    assert sl_peak.systolic < im_peak.systolic - 5
    assert max(c for _, _, c in sublingual) < max(c for _, _, c in im)


def test_hypertensive_surge_crosses_180_systolic_around_40_minutes() -> None:
    trace = _trace(load_scenario("hypertensive-surge"), 90)
    crossing = next(t for t, v, _ in trace if v.systolic >= 180)
    assert 35 <= crossing <= 45
    assert max(v.diastolic for _, v, _ in trace) >= 110
    assert _at(trace, 90).systolic < 160  # it settles after the infusion
    noisy = load_scenario("hypertensive-surge").play(seed=11)
    assert max(noisy.step(10.0).systolic for _ in range(6 * 60)) >= 180


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.05, 90.0), min_size=1, max_size=30))
def test_concentration_does_not_depend_on_the_tick_size(ticks: list[float]) -> None:
    fine, coarse = KetamineModel(70), KetamineModel(70)
    for model in (fine, coarse):
        model.give("iv-infusion", 35, 600.5)
        model.give("im", 20)
    for tick in ticks:
        coarse.advance(tick)
    fine.advance(sum(ticks))
    assert coarse.plasma_ng_ml == pytest.approx(fine.plasma_ng_ml, rel=1e-6, abs=1e-9)
    assert coarse.effect_site_ng_ml == pytest.approx(fine.effect_site_ng_ml, rel=1e-6, abs=1e-9)


def test_doses_are_checked() -> None:
    for route, mg, over in (("iv-infusion", 35, 0), ("im", 35, 60), ("im", -1, 0), ("oral", 10, 0)):
        with pytest.raises(ValueError):
            Dose(0.0, route, mg, over)  # type: ignore[arg-type]
    patient = SimulatedPatient(seed=1)
    with pytest.raises(ValueError, match="unknown route"):
        patient.give("rectal", 50)  # type: ignore[arg-type]


def test_a_dose_step_gives_the_drug_at_its_time() -> None:
    scenario = Scenario("bolus", "test", (Dose(60.0, "iv-bolus", 35.0),))
    patient = SimulatedPatient(seed=1)
    player = ScenarioPlayer(scenario, patient, speed=30)
    player.step(1.9)  # 57 simulated seconds
    assert patient.ketamine_ng_ml == 0.0
    player.step(0.2)
    assert patient.ketamine.total_mg == 35.0
    assert patient.ketamine_ng_ml > 100  # 35 mg into ~123 L, minus 3 s of distribution
    assert patient.ketamine_effect_site_ng_ml < patient.ketamine_ng_ml  # the effect site lags


# --- device actions ------------------------------------------------------------------------------------


def test_device_actions_fire_once_at_scaled_times_and_for_reverses_them() -> None:
    fired: list[tuple[float, DeviceAction]] = []
    wall = [0.0]
    player = load_scenario("cable-pull").play(
        seed=1, speed=10, on_device_action=lambda a: fired.append((wall[0], a))
    )
    for _ in range(700):  # 70 wall seconds in 0.1 s ticks: 700 simulated seconds, two repetitions
        wall[0] = round(wall[0] + 0.1, 6)
        player.step(0.1)
    # script: cable-pull at 60 s for 20 s, repeating every 300 s; 10x faster on the wall clock
    assert [(t, a.device, a.action, a.at) for t, a in fired] == [
        (6.0, "oximeter", "cable-pull", 60.0),
        (8.0, "oximeter", "cable-return", 80.0),
        (36.0, "oximeter", "cable-pull", 360.0),
        (38.0, "oximeter", "cable-return", 380.0),
        (66.0, "oximeter", "cable-pull", 660.0),
        (68.0, "oximeter", "cable-return", 680.0),
    ]


def test_probe_actions_reach_the_patient_without_a_callback() -> None:
    player = load_scenario("probe-off").play(seed=1)
    states = [player.step(1.0).sensor for _ in range(360)]
    # step i returns the state at i + 1 s: off at 60-90 s and at 240-250 s
    assert states.count("off") == 40 and (states[58], states[59], states[88], states[89]) == (
        "on",
        "off",
        "off",
        "on",
    )


def test_nibp_errors_carry_their_code_and_clear() -> None:
    actions = [(a.at, a.device, a.action, dict(a.args)) for a in load_scenario("nibp-error").device_actions]
    nibp = [action for action in actions if action[1] == "nibp"]
    assert nibp == [
        (8 * MIN, "nibp", "nibp-error", {"code": 87}),
        (20 * MIN, "nibp", "clear-alarm", {}),
        (35 * MIN, "nibp", "nibp-error", {"code": 1}),
        (43 * MIN, "nibp", "clear-alarm", {}),
    ]


@pytest.mark.parametrize(
    ("name", "concentration", "rate_ml_h", "vtbi_ml"),
    [("routine-iv-infusion", 1.0, 52.5, 35.0), ("pump-occlusion", 0.35, 150.0, 100.0)],
)
def test_pump_start_and_stop_match_the_infusion_dose(
    name: str, concentration: float, rate_ml_h: float, vtbi_ml: float
) -> None:
    spec = load_scenario(name)
    (dose,) = spec.doses
    assert (dose.at, dose.route, dose.mg, dose.over_s) == (2 * MIN, "iv-infusion", 35.0, 40 * MIN)
    pump = [a for a in spec.device_actions if a.device == "pump" and a.action.endswith("-infusion")]
    start, stop = pump
    assert (start.at, start.action, stop.at, stop.action) == (
        120.0,
        "start-infusion",
        2520.0,
        "stop-infusion",
    )
    assert start.args["rate_ml_h"] == pytest.approx(rate_ml_h)
    assert start.args["vtbi_ml"] == pytest.approx(vtbi_ml)
    assert start.args["concentration_mg_ml"] == concentration and start.args["dose_mg"] == 35.0
    assert start.args["rate_ml_h"] * dose.over_s / 3600 == pytest.approx(start.args["vtbi_ml"])
    received: list[DeviceAction] = []
    player = spec.play(seed=1, speed=60, on_device_action=received.append)
    for _ in range(45):
        player.step(1.0)
    assert [(a.at, a.action) for a in received if a.action.endswith("-infusion")] == [
        (120.0, "start-infusion"),
        (2520.0, "stop-infusion"),
    ]
    with pytest.raises(ValueError, match="only an iv-infusion"):
        pump_actions(Dose(0.0, "im", 50.0), 1.0)


def test_a_failing_callback_is_logged_and_the_patient_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(action: DeviceAction) -> None:
        raise RuntimeError("pump simulator crashed")

    scenario = Scenario("x", "test", (DeviceAction(10.0, "pump", "occlusion"), SetTarget(20.0, "spo2", 90.0)))
    player = scenario.play(SimulatedPatient(seed=1), on_device_action=broken)
    with caplog.at_level(logging.ERROR):
        player.step(30.0)
    assert "device action" in caplog.text and len(player.fired) == 2
    assert player.patient.signal("spo2").target == 90.0
    with pytest.raises(ValueError, match="unknown pump action"):
        DeviceAction(0.0, "pump", "probe-off")

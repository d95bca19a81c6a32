"""Dose arithmetic, amendments, ceilings, and infusion segments from a recorded-like pump stream."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import mdc
from monitor.dosing import (
    DEFAULT_SESSION_CEILING_MG_PER_KG,
    Dose,
    check_dose,
    cumulative,
    dose_inputs,
    effective_doses,
    mg_from_mg_per_kg,
    mg_per_kg,
    pump_segments,
    resolve_amendments,
)
from monitor.model import Observation
from monitor.pk import DoseInput

T0 = 1_700_000_000.0


# --- mg <-> mg/kg -----------------------------------------------------------------------------------------


def test_mg_per_kg_and_back() -> None:
    assert mg_per_kg(35, 70) == pytest.approx(0.5)
    assert mg_from_mg_per_kg(0.5, 70) == pytest.approx(35.0)
    assert mg_from_mg_per_kg(0.35, 82.5) == pytest.approx(28.875)
    assert mg_per_kg(mg_from_mg_per_kg(0.42, 123.4), 123.4) == pytest.approx(0.42)


@pytest.mark.parametrize(
    ("mg", "weight", "message"),
    [
        (35, 19.9, "outside 20-300 kg"),
        (35, 301, "outside 20-300 kg"),
        (35, float("nan"), "weight must be a number"),
        (0, 70, "greater than 0"),
        (-5, 70, "greater than 0"),
        (float("inf"), 70, "must be a number"),
        (True, 70, "must be a number"),
    ],
)
def test_mg_per_kg_refuses_implausible_input(mg: float, weight: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mg_per_kg(mg, weight)
    with pytest.raises(ValueError, match=message):
        mg_from_mg_per_kg(mg, weight)


def test_weight_bounds_are_inclusive() -> None:
    assert mg_per_kg(20, 20) == 1.0
    assert mg_per_kg(300, 300) == 1.0


# --- the Dose record --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": "rectal"}, "unknown route"),
        ({"mg": -1.0}, "non-negative"),
        ({"duration_s": 60.0}, "only an iv-infusion"),
        ({"source": "robot"}, "source"),
        ({"supersedes": "d1"}, "supersede itself"),
        ({"dose_id": ""}, "needs a dose_id"),
    ],
)
def test_dose_validation(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"dose_id": "d1", "ts": T0, "route": "im", "mg": 20.0}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Dose(**fields)  # type: ignore[arg-type]


# --- amendments -------------------------------------------------------------------------------------------


def _dose(dose_id: str, ts: float, mg: float, supersedes: str | None = None, **kw: object) -> Dose:
    return Dose(dose_id, T0 + ts, kw.pop("route", "im"), mg, supersedes=supersedes, **kw)  # type: ignore[arg-type]


def test_an_amendment_replaces_the_dose_and_both_stay_in_the_log() -> None:
    original = _dose("a", 0, 50)
    correction = _dose("b", 0, 40, supersedes="a", author="nurse2")
    log = [original, correction]
    assert effective_doses(log) == [correction]
    resolved = resolve_amendments(log)
    assert resolved.replaced_by == {"a": "b"}
    assert resolved.dangling == []
    assert log == [original, correction]  # nothing overwritten
    assert cumulative(log, 80) == (40.0, 0.5)


def test_a_chain_of_amendments_resolves_to_the_last() -> None:
    log = [_dose("a", 0, 50), _dose("b", 0, 45, "a"), _dose("c", 60, 40, "b"), _dose("x", 600, 10)]
    assert [d.dose_id for d in effective_doses(log)] == ["c", "x"]
    assert resolve_amendments(log).replaced_by == {"a": "c", "b": "c"}


def test_the_order_recorded_does_not_matter_for_a_chain() -> None:
    log = [_dose("c", 60, 40, "b"), _dose("a", 0, 50), _dose("b", 0, 45, "a")]
    assert [d.dose_id for d in effective_doses(log)] == ["c"]


def test_an_amendment_of_an_unknown_dose_is_kept_and_flagged() -> None:
    orphan = _dose("b", 0, 40, "missing")
    resolved = resolve_amendments([_dose("a", 300, 10), orphan])
    assert [d.dose_id for d in resolved.effective] == ["b", "a"]  # time order
    assert resolved.dangling == [orphan]


def test_two_amendments_of_one_dose_count_once_the_last_recorded_wins() -> None:
    log = [_dose("a", 0, 50), _dose("b", 0, 45, "a"), _dose("c", 0, 30, "a")]
    assert [d.dose_id for d in effective_doses(log)] == ["c"]
    assert cumulative(log, 60) == (30.0, 0.5)


def test_a_repeated_dose_id_counts_once() -> None:
    log = [_dose("a", 0, 50), _dose("a", 0, 50)]
    assert cumulative(log, 50) == (50.0, 1.0)


def test_a_cycle_does_not_lose_the_dose() -> None:
    log = [_dose("a", 0, 50, "b"), _dose("b", 0, 40, "a")]
    assert [d.dose_id for d in effective_doses(log)] == ["b"]


def test_an_amendment_of_zero_mg_voids_a_dose_entered_in_error() -> None:
    log = [_dose("a", 0, 50), _dose("b", 60, 20), _dose("void-a", 0, 0, "a")]
    assert cumulative(log, 70) == (20.0, pytest.approx(20 / 70))
    assert dose_inputs(log) == [DoseInput(T0 + 60, "im", 20)]


def test_a_pump_segment_can_be_amended_by_its_stable_id() -> None:
    segment = Dose("pump:p1:1700000000000", T0, "iv-infusion", 8.75, 600.0, source="pump")
    fix = Dose("m1", T0, "iv-infusion", 7.0, 600.0, supersedes=segment.dose_id, author="dr a")
    assert effective_doses([segment, fix]) == [fix]


# --- cumulative -------------------------------------------------------------------------------------------


def test_cumulative_counts_an_infusion_pro_rata() -> None:
    infusion = Dose("i", T0, "iv-infusion", 35.0, 2400.0)
    bolus = Dose("b", T0 + 600, "iv-bolus", 5.0)
    assert cumulative([infusion, bolus], 70, until=T0 - 1) == (0.0, 0.0)
    assert cumulative([infusion, bolus], 70, until=T0 + 1200) == (
        pytest.approx(22.5),
        pytest.approx(22.5 / 70),
    )
    assert cumulative([infusion, bolus], 70, until=T0 + 600) == (
        pytest.approx(13.75),
        pytest.approx(13.75 / 70),
    )
    assert cumulative([infusion, bolus], 70, until=T0 + 599) == (
        pytest.approx(35 * 599 / 2400),
        pytest.approx(35 * 599 / 2400 / 70),
    )
    assert cumulative([infusion, bolus], 70, until=T0 + 9999) == (40.0, pytest.approx(40 / 70))
    assert cumulative([infusion, bolus], 70) == (40.0, pytest.approx(40 / 70))


def test_cumulative_is_nominal_mg_whatever_the_route() -> None:
    doses = [Dose("s", T0, "sublingual", 100.0), Dose("n", T0 + 300, "intranasal", 28.0)]
    assert cumulative(doses, 80, until=T0 + 300) == (128.0, 1.6)


def test_cumulative_validates_weight() -> None:
    with pytest.raises(ValueError, match="kg, not lb"):
        cumulative([], 400)


# --- confirmation checks ----------------------------------------------------------------------------------


def test_check_dose_within_plan_and_ceiling_is_fine() -> None:
    assert check_dose(5, 30, 35, 1.0, 70) == []
    assert check_dose(35, 0, 35, 1.0, 70) == []  # exactly the plan


def test_check_dose_over_the_plan() -> None:
    assert check_dose(5, 35, 35, 1.0, 70) == ["exceeds the planned dose of 35 mg by 5 mg"]
    assert check_dose(2.5, 34, 35, None, 70) == ["exceeds the planned dose of 35 mg by 1.5 mg"]


def test_check_dose_over_the_ceiling() -> None:
    reasons = check_dose(10, 65, None, 1.0, 70)
    assert reasons == [
        "exceeds the ceiling of 1.0 mg/kg (70 mg for 70 kg): the session total would be 75 mg, 1.07 mg/kg"
    ]


def test_check_dose_both_reasons_and_the_default_ceiling() -> None:
    assert DEFAULT_SESSION_CEILING_MG_PER_KG == 1.0
    reasons = check_dose(40, 40, 60, None, 70)
    assert len(reasons) == 2
    assert reasons[0] == "exceeds the planned dose of 60 mg by 20 mg"
    assert reasons[1].startswith("exceeds the ceiling of 1.0 mg/kg")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, 35, 1.0, 70), "new dose"),
        ((5, -1, 35, 1.0, 70), "already given"),
        ((5, 0, 0, 1.0, 70), "planned dose"),
        ((5, 0, 35, 0, 70), "ceiling"),
        ((5, 0, 35, 1.0, 10), "outside 20-300 kg"),
    ],
)
def test_check_dose_validation(args: tuple[float, float, float, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_dose(*args)


# --- pump segments ----------------------------------------------------------------------------------------

RATE = mdc.INFUSION_RATE.code
VOLUME = mdc.VOLUME_INFUSED.code


class RecordedPump:
    """A pump sampled every 10 s: each sample reports volume delivered so far, then the (new) rate.

    Builds the Observation stream a gateway would record.
    """

    def __init__(self, device: str = "pump1", start: float = T0, step: float = 10.0) -> None:
        self.device, self.t, self.step = device, start, step
        self.rate = 0.0
        self.delivered = 0.0
        self.offset = 0.0
        self.seq = 0
        self.stream: list[Observation] = []

    def _obs(self, code: int, value: float | None, valid: bool = True) -> None:
        self.seq += 1
        unit = "mL/h" if code == RATE else "mL"
        self.stream.append(Observation("s", "r1", self.device, self.seq, self.t, code, value, unit, valid))

    def sample(self, new_rate: float | None = None) -> None:
        self._obs(VOLUME, round(self.delivered - self.offset, 6))
        if new_rate is not None:
            self.rate = new_rate
        self._obs(RATE, self.rate)

    def reset_counter(self) -> None:
        self.offset = self.delivered


def _session_stream() -> list[Observation]:
    """The same session built sample by sample, each sample = volume, then rate (as the pump reports)."""
    pump = RecordedPump()
    schedule = {10.0: 150.0, 600.0: 75.0, 1200.0: 0.0, 1320.0: 75.0}  # start, change, pause, restart
    pump.sample()  # idle at T0
    elapsed = 0.0
    while elapsed < 2520:  # the recording ends at T0+2520 with the pump still running
        occluded = 1620 <= elapsed < 1920  # rate kept, nothing delivered
        if not occluded:
            pump.delivered += pump.rate * pump.step / 3600.0
        pump.t += pump.step
        elapsed += pump.step
        pump.sample(schedule.get(elapsed))
        if elapsed == 2210:
            pump.reset_counter()  # the counter is cleared just after this sample
    return pump.stream


CONCENTRATION = 0.35  # mg/mL: 35 mg in 100 mL


def test_segments_from_a_recorded_pump_session() -> None:
    stream = _session_stream()
    segments = pump_segments(stream, CONCENTRATION)
    assert [(d.dose_id, d.ts - T0, d.duration_s) for d in segments] == [
        ("pump:pump1:1700000010000", 10.0, 590.0),  # start -> rate change
        ("pump:pump1:1700000600000", 600.0, 600.0),  # rate change -> pause
        ("pump:pump1:1700001320000", 1320.0, 1200.0),  # restart -> end of stream (open segment)
    ]
    assert all(d.route == "iv-infusion" and d.source == "pump" for d in segments)
    # 150 mL/h x 590 s; 75 mL/h x 600 s; 75 mL/h x (1200 - 300 s occluded) across the counter reset
    expected_ml = [150 * 590 / 3600, 75 * 600 / 3600, 75 * 900 / 3600]
    assert [d.mg for d in segments] == pytest.approx([ml * CONCENTRATION for ml in expected_ml], abs=1e-6)
    # the occlusion shows: the last segment delivered less than its rate x time
    assert segments[2].mg < 75 * 1200 / 3600 * CONCENTRATION


def test_pump_segments_feed_cumulative_and_the_estimate() -> None:
    segments = pump_segments(_session_stream(), CONCENTRATION)
    total_mg, per_kg = cumulative(segments, 70)
    assert total_mg == pytest.approx((150 * 590 + 75 * 600 + 75 * 900) / 3600 * CONCENTRATION)
    assert per_kg == pytest.approx(total_mg / 70)
    assert len(dose_inputs(segments)) == 3


def test_invalid_and_unrelated_observations_are_skipped() -> None:
    stream = _session_stream()
    clean = pump_segments(stream, CONCENTRATION)
    noisy = list(stream)
    noisy.insert(50, Observation("s", "r1", "pump1", 9001, T0 + 495, VOLUME, 999.0, "mL", False))
    noisy.insert(60, Observation("s", "r1", "pump1", 9002, T0 + 595, RATE, None, "mL/h", True))
    noisy.insert(70, Observation("s", "r1", "pump1", 9003, T0 + 650, RATE, float("nan"), "mL/h", True))
    noisy.insert(80, Observation("s", "r1", "pump1", 9004, T0 + 700, RATE, -5.0, "mL/h", True))
    noisy.insert(90, Observation("s", "r1", "pump1", 9005, T0 + 720, mdc.SPO2.code, 97.0, "%", True))
    assert pump_segments(noisy, CONCENTRATION) == clean


def test_samples_out_of_order_are_put_in_time_order() -> None:
    stream = _session_stream()
    assert pump_segments(list(reversed(stream)), CONCENTRATION) == pump_segments(stream, CONCENTRATION)


def _obs(t: float, code: int, value: float, device: str = "p") -> Observation:
    return Observation("s", "r", device, 0, T0 + t, code, value, "", True)


def test_a_counter_reset_never_gives_negative_mg() -> None:
    stream = [
        _obs(0, VOLUME, 40.0),  # a counter left over from the last bag: not this patient's dose
        _obs(0, RATE, 60.0),
        _obs(60, VOLUME, 41.0),
        _obs(120, VOLUME, 0.0),  # reset to 0
        _obs(180, VOLUME, 1.0),
        _obs(240, VOLUME, 2.0),
        _obs(240, RATE, 0.0),
    ]
    (segment,) = pump_segments(stream, 1.0)
    assert segment.mg == pytest.approx(3.0)  # 1 before the reset + 2 after; the 1 min around it is lost
    assert segment.duration_s == 240


def test_volume_seen_after_the_stop_counts_for_the_last_segment() -> None:
    stream = [
        _obs(0, VOLUME, 0.0),
        _obs(0, RATE, 60.0),
        _obs(60, RATE, 0.0),  # the pump's rate message arrives before its volume message
        _obs(61, VOLUME, 1.0),
    ]
    (segment,) = pump_segments(stream, 2.0)
    assert (segment.duration_s, segment.mg) == (60.0, 2.0)


def test_a_pump_that_never_reports_volume_falls_back_to_rate_times_time() -> None:
    stream = [_obs(0, RATE, 120.0), _obs(300, RATE, 60.0), _obs(600, RATE, 0.0)]
    assert [d.mg for d in pump_segments(stream, 1.0)] == pytest.approx([10.0, 5.0])


def test_a_run_that_starts_at_the_last_sample_is_not_a_segment_yet() -> None:
    assert pump_segments([_obs(0, VOLUME, 0.0), _obs(0, RATE, 100.0)], 1.0) == []
    assert pump_segments([], 1.0) == []


def test_each_pump_device_is_cut_on_its_own() -> None:
    stream = [
        _obs(0, VOLUME, 0.0, "a"),
        _obs(0, RATE, 60.0, "a"),
        _obs(0, VOLUME, 0.0, "b"),
        _obs(30, RATE, 120.0, "b"),
        _obs(60, VOLUME, 1.0, "a"),
        _obs(60, RATE, 0.0, "a"),
        _obs(90, VOLUME, 2.0, "b"),
        _obs(90, RATE, 0.0, "b"),
    ]
    assert [(d.dose_id, d.mg) for d in pump_segments(stream, 1.0)] == [
        ("pump:a:1700000000000", 1.0),
        ("pump:b:1700000030000", 2.0),
    ]


def test_pump_segments_validates_concentration() -> None:
    with pytest.raises(ValueError, match="concentration"):
        pump_segments([], 0.0)


def _streams() -> st.SearchStrategy[list[Observation]]:
    sample = st.tuples(
        st.floats(0, 5), st.sampled_from([RATE, VOLUME]), st.floats(0, 500, allow_nan=False), st.booleans()
    )
    return st.lists(sample, max_size=40).map(lambda rows: list(_accumulate(rows)))


def _accumulate(rows: list[tuple[float, int, float, bool]]) -> Iterator[Observation]:
    t = 0.0
    for seq, (gap, code, value, valid) in enumerate(rows):
        t += gap
        yield Observation("s", "r", "p", seq, T0 + t, code, value, "", valid)


@settings(max_examples=60, deadline=None)
@given(_streams())
def test_any_stream_gives_consecutive_non_negative_segments(stream: list[Observation]) -> None:
    segments = pump_segments(stream, 0.5)
    assert all(d.mg >= 0 and d.duration_s >= 0 and math.isfinite(d.mg) for d in segments)
    assert all(a.ts + a.duration_s <= b.ts + 1e-6 for a, b in itertools.pairwise(segments))
    assert len({d.dose_id for d in segments}) == len(segments)
    # what the segments hold never exceeds the volume the pump's counter ever showed growing
    growth = 0.0
    last = None
    for obs in sorted((o for o in stream if o.code == VOLUME and o.valid), key=lambda o: o.ts):
        value = obs.value or 0.0
        if last is not None:
            growth += value - last if value >= last else value
        last = value
    if any(o.code == VOLUME and o.valid for o in stream):
        assert sum(d.mg for d in segments) <= growth * 0.5 + 1e-6

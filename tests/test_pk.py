"""The concentration ESTIMATE: published figures, linearity, routes, and an independent integrator."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from monitor.pk import (
    ABSORPTION_PER_MIN,
    BIOAVAILABILITY,
    MODELS,
    DoseInput,
    concentration_curve,
    curve_times,
)

T0 = 1_700_000_000.0
WEIGHT = 70.0
EMORY = DoseInput(T0, "iv-infusion", 0.5 * WEIGHT, 40 * 60.0)  # 0.5 mg/kg over 40 min


def _curve(
    model: str, doses: list[DoseInput], hours: float = 4.0, step: float = 15.0
) -> tuple[list[float], list[float]]:
    times = curve_times(T0, T0 + hours * 3600, step)
    return times, concentration_curve(model, WEIGHT, doses, times)  # type: ignore[arg-type]


def _auc_ng_min_ml(times: list[float], conc: list[float]) -> float:
    return float(np.trapezoid(conc, np.asarray(times) / 60.0))


@pytest.mark.parametrize(("model", "expected"), [("domino", 240.0), ("clements", 177.0)])
def test_emory_infusion_peaks_at_the_end_near_the_published_figure(model: str, expected: float) -> None:
    times, conc = _curve(model, [EMORY])
    peak = max(range(len(conc)), key=conc.__getitem__)
    assert times[peak] == T0 + 40 * 60  # the peak is at the end of the infusion
    assert conc[peak] == pytest.approx(expected, rel=0.02)
    assert conc[peak] == pytest.approx(185.0, rel=0.35)  # measured mean peak (PMC6020109 Table 1)


def test_exact_figures_for_70_kg() -> None:
    at_end = [T0 + 2400]
    assert concentration_curve("domino", WEIGHT, [EMORY], at_end)[0] == pytest.approx(240.33, abs=0.01)
    assert concentration_curve("clements", WEIGHT, [EMORY], at_end)[0] == pytest.approx(177.31, abs=0.01)


@pytest.mark.parametrize("model", ["domino", "clements"])
def test_concentration_decays_after_the_infusion_stops(model: str) -> None:
    times, conc = _curve(model, [EMORY])
    after = [c for t, c in zip(times, conc, strict=True) if t >= T0 + 2400]
    assert all(b < a for a, b in itertools.pairwise(after))
    assert after[-1] < 0.5 * after[0]


def test_nothing_before_the_dose_and_zero_without_doses() -> None:
    times = curve_times(T0 - 600, T0 + 600, 60)
    assert concentration_curve("domino", WEIGHT, [], times) == [0.0] * len(times)
    conc = concentration_curve("clements", WEIGHT, [EMORY], times)
    assert conc[:10] == [0.0] * 10 and conc[10] == 0.0 and conc[11] > 0
    assert concentration_curve("clements", WEIGHT, [EMORY], []) == []
    assert concentration_curve("clements", WEIGHT, [DoseInput(T0, "im", 0.0)], times) == [0.0] * len(times)


@pytest.mark.parametrize("model", ["domino", "clements"])
def test_superposition_two_doses_are_the_sum_of_each(model: str) -> None:
    first = DoseInput(T0, "iv-infusion", 20.0, 1200.0)
    second = DoseInput(T0 + 1800, "im", 25.0)
    _, both = _curve(model, [first, second])
    _, only_first = _curve(model, [first])
    _, only_second = _curve(model, [second])
    assert both == pytest.approx(
        [a + b for a, b in zip(only_first, only_second, strict=True)], rel=1e-12, abs=1e-12
    )


@pytest.mark.parametrize("model", ["domino", "clements"])
def test_im_peaks_later_and_lower_than_an_iv_bolus(model: str) -> None:
    times, bolus = _curve(model, [DoseInput(T0, "iv-bolus", 35.0)])
    _, im = _curve(model, [DoseInput(T0, "im", 35.0)])
    assert max(range(len(bolus)), key=bolus.__getitem__) == 0
    im_peak = max(range(len(im)), key=im.__getitem__)
    assert times[im_peak] > T0 and max(im) < max(bolus)


def test_time_to_peak_of_the_extravascular_routes_in_the_clements_model() -> None:
    # ka were chosen for these: IM ~18 min, intranasal ~30 min (label 20-40), sublingual ~44 (Rolan 0.75 h)
    expected_min = {"im": 18.25, "intranasal": 30.25, "sublingual": 43.75, "oral": 43.75}
    for route, minutes in expected_min.items():
        times, conc = _curve("clements", [DoseInput(T0, route, 35.0)], hours=3.0)
        peak = max(range(len(conc)), key=conc.__getitem__)
        assert (times[peak] - T0) / 60 == pytest.approx(minutes, abs=0.25), route


@pytest.mark.parametrize("model", ["domino", "clements"])
@pytest.mark.parametrize("route", ["iv-bolus", "im", "intranasal", "sublingual", "oral"])
def test_bioavailability_scales_exposure(model: str, route: str) -> None:
    # AUC to infinity of a linear model is F x D / CL, CL = V1 x k10; 72 h covers the tail
    times, conc = _curve(model, [DoseInput(T0, route, 35.0)], hours=72.0, step=20.0)
    params = MODELS[model]
    expected = BIOAVAILABILITY[route] * 35.0 / (params.v1_l_per_kg * WEIGHT * params.k10) * 1000.0
    assert _auc_ng_min_ml(times, conc) == pytest.approx(expected, rel=0.01)
    _, iv = _curve(model, [DoseInput(T0, "iv-bolus", 35.0)], hours=72.0, step=20.0)
    assert _auc_ng_min_ml(times, conc) / _auc_ng_min_ml(times, iv) == pytest.approx(
        BIOAVAILABILITY[route], rel=0.01
    )


def _rk4_reference(
    model: str, doses: list[DoseInput], times: list[float], h_min: float = 0.01
) -> list[float]:
    """An independent check: integrate the compartment ODEs (amounts in mg) with RK4 at 0.6 s steps."""
    p = MODELS[model]
    v1 = p.v1_l_per_kg * WEIGHT
    routes = sorted(ABSORPTION_PER_MIN)

    def inputs(t_min: float) -> float:
        rate = 0.0
        for d in doses:
            start = (d.start - T0) / 60
            if d.route == "iv-infusion" and start <= t_min < start + d.duration_s / 60:
                rate += d.mg / (d.duration_s / 60)
        return rate

    def deriv(t_min: float, y: np.ndarray) -> np.ndarray:
        a1, a2, a3 = y[0], y[1], y[2]
        depots = y[3:]
        absorbed = sum(ABSORPTION_PER_MIN[r] * depots[i] for i, r in enumerate(routes))
        return np.array(
            [
                inputs(t_min) + absorbed - (p.k10 + p.k12 + p.k13) * a1 + p.k21 * a2 + p.k31 * a3,
                p.k12 * a1 - p.k21 * a2,
                p.k13 * a1 - p.k31 * a3,
                *(-ABSORPTION_PER_MIN[r] * depots[i] for i, r in enumerate(routes)),
            ]
        )

    y = np.zeros(3 + len(routes))
    step = 0
    t = 0.0
    out = []
    pending = sorted((d for d in doses if d.route != "iv-infusion"), key=lambda d: d.start)
    end = (max(times) - T0) / 60
    targets = iter((ts - T0) / 60 for ts in times)
    target = next(targets)
    while t <= end + 1e-9:
        for d in [d for d in pending if (d.start - T0) / 60 <= t + 1e-9]:
            pending.remove(d)
            available = d.mg * BIOAVAILABILITY[d.route]
            if d.route == "iv-bolus":
                y[0] += available
            else:
                y[3 + routes.index(d.route)] += available
        while target is not None and abs(target - t) < h_min / 2:
            out.append(y[0] / v1 * 1000)
            target = next(targets, None)
        k1 = deriv(t, y)
        k2 = deriv(t + h_min / 2, y + h_min / 2 * k1)
        k3 = deriv(t + h_min / 2, y + h_min / 2 * k2)
        k4 = deriv(t + h_min, y + h_min * k3)
        y = y + h_min / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        step += 1
        t = step * h_min
    return out


@pytest.mark.parametrize("model", ["domino", "clements"])
def test_exact_solution_agrees_with_an_independent_integrator(model: str) -> None:
    doses = [
        DoseInput(T0, "iv-infusion", 35.0, 2400.0),
        DoseInput(T0 + 600, "im", 20.0),
        DoseInput(T0 + 900, "intranasal", 28.0),
        DoseInput(T0 + 1200, "sublingual", 50.0),
        DoseInput(T0 + 3000, "iv-bolus", 5.0),
    ]
    times = curve_times(T0, T0 + 90 * 60, 300)
    exact = concentration_curve(model, WEIGHT, doses, times)  # type: ignore[arg-type]
    reference = _rk4_reference(model, doses, times)
    assert len(reference) == len(times)
    # at the bolus instant the integrator samples just before the dose: compare the other points
    for t, a, b in zip(times, exact, reference, strict=True):
        if t != T0 + 3000:
            assert a == pytest.approx(b, rel=0.005, abs=1e-6), t


def test_an_infusion_of_zero_duration_is_a_bolus() -> None:
    times = curve_times(T0, T0 + 3600, 60)
    a = concentration_curve("domino", WEIGHT, [DoseInput(T0, "iv-infusion", 10.0, 0.0)], times)
    b = concentration_curve("domino", WEIGHT, [DoseInput(T0, "iv-bolus", 10.0)], times)
    assert a == b


def test_four_hours_at_15_s_is_fast() -> None:
    doses = [EMORY, DoseInput(T0 + 3600, "im", 20.0), DoseInput(T0 + 5400, "sublingual", 100.0)]
    times = curve_times(T0, T0 + 4 * 3600, 15)
    assert len(times) == 961
    started = time.perf_counter()
    for _ in range(10):
        concentration_curve("domino", WEIGHT, doses, times)
        concentration_curve("clements", WEIGHT, doses, times)
    assert (time.perf_counter() - started) / 20 < 0.05


def test_curve_times() -> None:
    assert curve_times(0, 60, 15) == [0, 15, 30, 45, 60]
    assert curve_times(0, 50, 15) == [0, 15, 30, 45, 50]
    assert curve_times(5, 5, 15) == [5]
    with pytest.raises(ValueError, match="step_s must be positive"):
        curve_times(0, 10, 0)
    with pytest.raises(ValueError, match="before start"):
        curve_times(10, 0, 1)


@pytest.mark.parametrize(
    ("dose", "message"),
    [
        (DoseInput(T0, "rectal", 10.0), "unknown route"),
        (DoseInput(T0, "im", -1.0), "non-negative"),
        (DoseInput(T0, "im", 10.0, 60.0), "only an iv-infusion"),
        (DoseInput(T0, "iv-infusion", 10.0, -5.0), "duration_s"),
        (DoseInput(float("nan"), "im", 10.0), "finite start"),
    ],
)
def test_invalid_doses_are_refused(dose: DoseInput, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        concentration_curve("domino", WEIGHT, [dose], [T0])


def test_invalid_model_and_weight_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        concentration_curve("marsh", WEIGHT, [EMORY], [T0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight_kg"):
        concentration_curve("domino", 0.0, [EMORY], [T0])

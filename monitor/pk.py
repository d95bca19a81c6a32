"""ESTIMATED plasma ketamine concentration from the doses given: population compartment models.

Everything here is an ESTIMATE for a typical patient of the given weight. It is never a measurement: the
real concentration of one patient can differ two-fold or more (body composition, CYP3A4/2B6 activity,
formulation, how much of a lozenge is swallowed). Screens must label it as an estimate.

Why two models: the published ketamine sets disagree. Domino (three compartments, a small central volume)
puts the end-of-infusion level of 0.5 mg/kg over 40 min at about 240 ng/mL for 70 kg; Clements (two
compartments, a large central volume) at about 177 ng/mL; the measured mean peak is about 185 ng/mL
(PMC6020109 Table 1, after Zarate 2006). Showing both is honest about the uncertainty.

Constants (per minute, V1 in L/kg) as in the opentiva project's ketamine models (../shared/reference/
clinical.md): Domino V1 0.063, k10 0.4381, k12 0.5921, k21 0.2470, k13 0.5900, k31 0.0146; Clements
(250 ug/kg) V1 1.7522, k10 0.0109, k12 0.0186, k21 0.0137.

Method: the exact solution of the linear compartment model, a sum of exponentials per dose (the impulse
response of a mammillary model, e.g. Gibaldi & Perrier, Pharmacokinetics, 2nd ed., 1982, ch. 2-3), added
up over doses (the model is linear, so superposition is exact). No integrator, no step size: exact to
floating point at every requested time, and vectorised with numpy (4 h at 15 s in well under a millisecond
per dose).

Units: dose in mg, V1 = L/kg x kg = L, so concentration comes out in mg/L (= ug/mL); x 1000 gives ng/mL.
This module never touches a clock: times are epoch seconds passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

ModelName = Literal["domino", "clements"]

#: How ketamine is given. "oral" is a swallowed dose (lower bioavailability than held sublingually).
ROUTES: Final[tuple[str, ...]] = ("iv-infusion", "iv-bolus", "im", "intranasal", "sublingual", "oral")

#: Fraction of the dose that reaches the systemic circulation, by route.
#: - iv: 1.0 by definition.
#: - im 0.93: Clements, Nimmo & Grant, J Pharm Sci 1982;71:539 (the figure as commonly cited; we did not
#:   read the paper itself).
#: - intranasal 0.45: Yanagihara et al., Biopharm Drug Dispos 2003;24:37 (racemic nasal spray, n = 3,
#:   "approximately 45 %"); esketamine nasal spray ~48 % (Janssen medical information on SPRAVATO).
#: - sublingual 0.29: Rolan et al., Br J Clin Pharmacol 2014;77:1011 (wafer, median 29 %, 90 % CI 27-31 %);
#:   Yanagihara 2003 found ~30 % for a sublingual tablet. Lozenges partly swallowed may give less.
#: - oral 0.20: Yanagihara 2003 (tablet ~20 %); Andrade, J Clin Psychiatry 2019 (oral 20-25 %).
BIOAVAILABILITY: Final[dict[str, float]] = {
    "iv-infusion": 1.0,
    "iv-bolus": 1.0,
    "im": 0.93,
    "intranasal": 0.45,
    "sublingual": 0.29,
    "oral": 0.20,
}

#: First-order absorption rate constant ka (/min) of the extravascular routes. No published ka was found
#: for these formulations: each is [unverified], chosen so that the Clements model peaks at the reported
#: time to peak. im 0.10 -> ~18 min (peak about 20 min after IM: Miller's Anesthesia, 6th ed., ketamine
#: chapter; 5-15 min in other summaries); intranasal 0.045 -> ~30 min (esketamine label: Tmax 20-40 min);
#: sublingual and oral 0.025 -> ~44 min (Rolan 2014: median Tmax 0.75 h, range 0.25-1 h).
ABSORPTION_PER_MIN: Final[dict[str, float]] = {
    "im": 0.10,
    "intranasal": 0.045,
    "sublingual": 0.025,
    "oral": 0.025,
}


@dataclass(frozen=True)
class PKModel:
    """A population compartment model: central volume per kg and rate constants per minute.

    A two-compartment model has k13 = k31 = 0.
    """

    name: str
    v1_l_per_kg: float
    k10: float
    k12: float
    k21: float
    k13: float = 0.0
    k31: float = 0.0
    source: str = ""


#: The two published models (opentiva's ketamine module; clinical.md table).
MODELS: Final[dict[str, PKModel]] = {
    "domino": PKModel(
        "domino", 0.063, 0.4381, 0.5921, 0.2470, 0.5900, 0.0146, "Domino 1984 via opentiva (3 compartments)"
    ),
    "clements": PKModel(
        "clements", 1.7522, 0.0109, 0.0186, 0.0137, source="Clements 1982, 250 ug/kg, via opentiva"
    ),
}


@dataclass(frozen=True)
class DoseInput:
    """One dose for the ESTIMATE: when (epoch s), how, how many mg (nominal, before bioavailability).

    An "iv-infusion" runs at a constant rate from `start` for `duration_s` (a zero duration is taken as
    an IV bolus); every other route is given at `start` (`duration_s` must be 0). Extravascular routes
    (im, intranasal, sublingual, oral) enter the central compartment by first-order absorption.
    """

    start: float
    route: str
    mg: float
    duration_s: float = 0.0


def curve_times(start: float, end: float, step_s: float) -> list[float]:
    """Times from `start` to `end` inclusive every `step_s` seconds (the end is added if off the grid).

    Computed as start + k x step (no accumulated rounding), so the same inputs give the same times.
    """
    if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(step_s)):
        raise ValueError("curve_times needs finite start, end and step_s")
    if step_s <= 0:
        raise ValueError(f"step_s must be positive, got {step_s}")
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    count = math.floor((end - start) / step_s + 1e-9)
    times = [start + k * step_s for k in range(count + 1)]
    if end - times[-1] > 1e-9 * max(1.0, abs(end)):
        times.append(end)
    return times


def _disposition(model: PKModel, weight_kg: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exponents alpha_i (/min) and coefficients A_i (1/L) of the central impulse response.

    A 1 mg bolus into the central compartment gives C(t) = sum_i A_i exp(-alpha_i t) mg/L. The alpha_i are
    the eigenvalues of the rate matrix (negated); A_i = (V e_i)(V^-1 e_1) / V1 from its eigenvectors, which
    equals the textbook product formula prod_j (k_j1 - alpha_i) / (V1 prod_{j!=i} (alpha_j - alpha_i)).
    """
    if model.k13 > 0.0:
        rates = np.array(
            [
                [-(model.k10 + model.k12 + model.k13), model.k21, model.k31],
                [model.k12, -model.k21, 0.0],
                [model.k13, 0.0, -model.k31],
            ]
        )
    else:
        rates = np.array([[-(model.k10 + model.k12), model.k21], [model.k12, -model.k21]])
    eigenvalues, vectors = np.linalg.eig(rates)
    inverse = np.linalg.inv(vectors)
    # a mammillary model has real, negative, distinct eigenvalues; drop round-off imaginary parts
    alphas = -eigenvalues.real
    coefficients = (vectors[0, :] * inverse[:, 0]).real / (model.v1_l_per_kg * weight_kg)
    order = np.argsort(alphas)
    return alphas[order], coefficients[order]


def _check_dose(dose: DoseInput) -> None:
    if dose.route not in BIOAVAILABILITY:
        raise ValueError(f"unknown route {dose.route!r}; expected one of {', '.join(ROUTES)}")
    if not math.isfinite(dose.mg) or dose.mg < 0:
        raise ValueError(f"a dose must be a non-negative number of mg, got {dose.mg}")
    if not math.isfinite(dose.start):
        raise ValueError(f"a dose needs a finite start time, got {dose.start}")
    if not math.isfinite(dose.duration_s) or dose.duration_s < 0:
        raise ValueError(f"duration_s must be a non-negative number of seconds, got {dose.duration_s}")
    if dose.route != "iv-infusion" and dose.duration_s != 0:
        raise ValueError(f"only an iv-infusion runs over time; a {dose.route} dose takes duration_s = 0")


def _one_dose(
    dose: DoseInput,
    t_min: npt.NDArray[np.float64],
    alphas: npt.NDArray[np.float64],
    coef: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Concentration (mg/L) of one dose at times `t_min` (minutes since the dose's start; < 0 gives 0)."""
    after = t_min >= 0.0
    tau = np.where(after, t_min, 0.0)[:, None]  # (n, 1) against (m,) exponents
    available = dose.mg * BIOAVAILABILITY[dose.route]
    if dose.route == "iv-infusion" and dose.duration_s > 0:
        length = dose.duration_s / 60.0
        rate = available / length  # mg/min
        elapsed = np.minimum(tau, length)
        conc = rate * np.sum(
            coef / alphas * (np.exp(-alphas * (tau - elapsed)) - np.exp(-alphas * tau)), axis=1
        )
    elif dose.route in ABSORPTION_PER_MIN:
        ka = ABSORPTION_PER_MIN[dose.route]
        gap = ka - alphas
        near = np.abs(gap) < 1e-9
        safe_gap = np.where(near, 1.0, gap)
        # (e^-a t - e^-ka t)/(ka - a) tends to t e^-a t when ka -> a
        shape = np.where(
            near, tau * np.exp(-alphas * tau), (np.exp(-alphas * tau) - np.exp(-ka * tau)) / safe_gap
        )
        conc = available * ka * np.sum(coef * shape, axis=1)
    else:  # iv-bolus, or an iv-infusion of zero duration
        conc = available * np.sum(coef * np.exp(-alphas * tau), axis=1)
    return np.where(after, conc, 0.0)


def concentration_curve(
    model: ModelName, weight_kg: float, doses: Sequence[DoseInput], times: Sequence[float]
) -> list[float]:
    """ESTIMATED plasma ketamine concentration (ng/mL) at each of `times` (epoch s) after `doses`.

    Exact piecewise solution of the chosen population model (see the module docstring); superposition
    of the doses; 0 before the first dose. `doses` are nominal mg: route bioavailability is applied here.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    if not math.isfinite(weight_kg) or weight_kg <= 0:
        raise ValueError(f"weight_kg must be a positive number, got {weight_kg}")
    for dose in doses:
        _check_dose(dose)
    at = np.asarray(times, dtype=float)
    total = np.zeros(at.shape, dtype=float)
    if at.size == 0:
        return []
    alphas, coef = _disposition(MODELS[model], weight_kg)
    for dose in doses:
        if dose.mg > 0:
            total += _one_dose(dose, (at - dose.start) / 60.0, alphas, coef)
    return [float(value) for value in total * 1000.0]

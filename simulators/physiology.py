"""A scripted patient whose numbers move like a patient's: smooth trends, bounded noise, no random jumps.

Why not `random.uniform` every second: a nurse (and an alarm engine with delays and hysteresis) reacts to
*trends*. A simulator that jumps 97 -> 91 -> 98 would make every alarm delay look wrong and every chart look
fake. So each vital sign is a level that follows a target with first-order dynamics, plus mean-reverting
(Ornstein-Uhlenbeck) noise and an optional slow mean-reverting drift, all seeded for repeatable tests.

Time here is always *simulated* seconds. Compressing time for demos and tests (`speed`) happens in
`ScenarioPlayer`, which advances the patient by `wall_seconds * speed`, so a 40-minute infusion played at
speed 60 is the same curve as the real one, sampled once per simulated minute.

Blood pressure (systolic and diastolic, mean derived) moves the same way. Ketamine doses drive a small
pharmacokinetic-pharmacodynamic model (`KetamineModel`): per-route bioavailability and absorption, the
Clements two-compartment plasma model, an effect compartment so the response lags the plasma, and a sigmoid
Emax response that adds to the blood pressure and pulse set points. See `KetamineModel` for the constants.

Physiology follows ../shared/reference/clinical.md (see the docstrings of the scenarios below). Scenarios
written as TOML files live in `simulators/scenarios/` and are loaded by `simulators.scenario_files`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal, get_args

log = logging.getLogger(__name__)

VitalName = Literal["spo2", "pulse", "pi", "systolic", "diastolic"]
SensorState = Literal["on", "off", "none"]
#: How a ketamine dose is given (see ROUTE_KINETICS).
Route = Literal["iv-infusion", "iv-bolus", "im", "sublingual", "intranasal"]
#: The simulated devices a scenario can act on (see DEVICE_ACTIONS).
Device = Literal["oximeter", "nibp", "pump"]

VITAL_NAMES: Final[tuple[VitalName, ...]] = get_args(VitalName)
SENSOR_STATES: Final[tuple[SensorState, ...]] = get_args(SensorState)
ROUTES: Final[tuple[Route, ...]] = get_args(Route)
DEVICES: Final[tuple[Device, ...]] = get_args(Device)

_VITAL_LOOKUP: Final[dict[str, VitalName]] = {name: name for name in VITAL_NAMES}
_SENSOR_LOOKUP: Final[dict[str, SensorState]] = {state: state for state in SENSOR_STATES}
_ROUTE_LOOKUP: Final[dict[str, Route]] = {route: route for route in ROUTES}
_DEVICE_LOOKUP: Final[dict[str, Device]] = {device: device for device in DEVICES}


def parse_vital(text: str) -> VitalName:
    """`text` as a vital's name ("spo2", "pulse", "pi", "systolic", "diastolic"), or ValueError."""
    try:
        return _VITAL_LOOKUP[text]
    except KeyError:
        raise ValueError(f"unknown vital {text!r}; expected one of {', '.join(VITAL_NAMES)}") from None


def parse_sensor_state(text: str) -> SensorState:
    """`text` as a sensor state ("on", "off", "none"), or ValueError naming the valid ones."""
    try:
        return _SENSOR_LOOKUP[text]
    except KeyError:
        raise ValueError(
            f"unknown sensor state {text!r}; expected one of {', '.join(SENSOR_STATES)}"
        ) from None


def parse_route(text: str) -> Route:
    """`text` as a route of administration ("iv-infusion", "im", ...), or ValueError naming the valid ones."""
    try:
        return _ROUTE_LOOKUP[text]
    except KeyError:
        raise ValueError(f"unknown route {text!r}; expected one of {', '.join(ROUTES)}") from None


def parse_device(text: str) -> Device:
    """`text` as a simulated device ("oximeter", "nibp", "pump"), or ValueError naming the valid ones."""
    try:
        return _DEVICE_LOOKUP[text]
    except KeyError:
        raise ValueError(f"unknown device {text!r}; expected one of {', '.join(DEVICES)}") from None


#: Longest time one internal integration step covers. Ramps are re-evaluated at least this often, so a
#: large `dt` (a sped-up demo) still follows a ramp's shape instead of cutting its corners.
MAX_SUBSTEP_SECONDS: Final = 1.0


def _ou_step(x: float, dt: float, sd: float, correlation_seconds: float, rng: random.Random) -> float:
    """Exact update of a zero-mean Ornstein-Uhlenbeck process with stationary standard deviation `sd`.

    Exact (not Euler) so that the statistics do not depend on the step size: one 60 s step and sixty 1 s
    steps give the same distribution, which is what makes `speed` honest.
    """
    if sd <= 0.0:
        return 0.0
    decay = math.exp(-dt / correlation_seconds)
    return x * decay + sd * math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)


class VitalSignal:
    """One vital sign: a level following a target, plus noise and slow drift, clamped to a range.

    output = clamp(level + noise + drift, lo, hi)

    - `level` approaches the (possibly ramping) target with time constant `response_seconds`: a change of
      target never shows up as a step, the way SpO2 or pulse never step on a real monitor.
    - `noise` is an OU process (stationary sd `noise_sd`, correlation time `noise_seconds`): beat-to-beat
      and averaging jitter that always pulls back toward zero, so it is bounded in practice.
    - `drift` is a second OU process with a long correlation time: the slow wander of a resting patient.

    `set_offset(delta)` shifts the set point by an amount computed elsewhere and updated continuously (the
    ketamine response): the level still follows it with its lag, and `target` stays the scripted set point.

    `hold(value)` pins the output to exactly `value` (tests and the nurse-facing control need exact,
    known numbers). `release()` resumes from the held value, which then relaxes toward the target: no jump
    back to where the signal was before the hold.
    """

    def __init__(
        self,
        initial: float,
        *,
        lo: float,
        hi: float,
        response_seconds: float = 10.0,
        noise_sd: float = 0.0,
        noise_seconds: float = 10.0,
        drift_sd: float = 0.0,
        drift_seconds: float = 900.0,
        seed: int | None = None,
    ) -> None:
        if not lo < hi:
            raise ValueError(f"lo ({lo}) must be below hi ({hi})")
        if response_seconds <= 0 or noise_seconds <= 0 or drift_seconds <= 0:
            raise ValueError("time constants must be positive")
        if noise_sd < 0 or drift_sd < 0:
            raise ValueError("noise and drift standard deviations must not be negative")
        self.lo = lo
        self.hi = hi
        self.response_seconds = response_seconds
        self.noise_sd = noise_sd
        self.noise_seconds = noise_seconds
        self.drift_sd = drift_sd
        self.drift_seconds = drift_seconds
        self._rng = random.Random(seed)
        start = self._clamp(initial)
        self._level = start
        self._noise = 0.0
        self._drift = 0.0
        self._ramp_from = start
        self._ramp_to = start
        self._ramp_seconds = 0.0
        self._ramp_elapsed = 0.0
        self._held: float | None = None
        self._value = start
        self._offset = 0.0

    def _clamp(self, x: float) -> float:
        return min(self.hi, max(self.lo, x))

    @property
    def value(self) -> float:
        """The last output (what `step` returned most recently), without advancing time."""
        return self._value

    @property
    def target(self) -> float:
        """Where the signal is heading once any ramp has finished."""
        return self._ramp_to

    @property
    def current_target(self) -> float:
        """The ramp's position now: the set point the level is following at this moment."""
        if self._ramp_seconds <= 0.0 or self._ramp_elapsed >= self._ramp_seconds:
            return self._ramp_to
        fraction = self._ramp_elapsed / self._ramp_seconds
        return self._ramp_from + (self._ramp_to - self._ramp_from) * fraction

    @property
    def held(self) -> bool:
        return self._held is not None

    @property
    def offset(self) -> float:
        """The shift added to the set point by `set_offset` (0 unless a drug effect is acting)."""
        return self._offset

    def set_offset(self, delta: float) -> None:
        """Add `delta` to the set point from now on, without a ramp.

        For effects computed elsewhere and updated every substep (the ketamine response), so already
        smooth. `target` and `current_target` stay the scripted set point; the sum is clamped to the range.
        """
        if math.isnan(delta):
            raise ValueError("offset must be a number")
        self._offset = float(delta)

    def set_target(self, value: float, ramp_seconds: float = 0.0) -> None:
        """Head for `value`, moving the set point linearly over `ramp_seconds` (0: at once).

        The ramp starts from the current set point, so retargeting mid-ramp is continuous. The target is
        clamped to the signal's range: asking for SpO2 105 % means "as high as it goes". A hold in force
        stays in force; the new target applies after `release()`.
        """
        if ramp_seconds < 0:
            raise ValueError("ramp_seconds must not be negative")
        if math.isnan(value):
            raise ValueError("target must be a number")
        self._ramp_from = self.current_target
        self._ramp_to = self._clamp(value)
        self._ramp_seconds = ramp_seconds
        self._ramp_elapsed = 0.0

    def hold(self, value: float) -> None:
        """Output exactly `value` from now on, with no noise, until `release()`.

        Out-of-range values are refused rather than clamped: a test or an operator asking for SpO2 150
        made a mistake and should hear about it.
        """
        if math.isnan(value) or not self.lo <= value <= self.hi:
            raise ValueError(f"{value} is outside {self.lo}..{self.hi}")
        self._held = float(value)
        self._value = float(value)

    def release(self) -> None:
        """Resume dynamics from the held value: level := held value, noise and drift restart at zero."""
        if self._held is None:
            return
        self._level = self._held
        self._noise = 0.0
        self._drift = 0.0
        self._held = None

    def step(self, dt_seconds: float) -> float:
        """Advance by `dt_seconds` of simulated time and return the new output (0 returns the current)."""
        if dt_seconds < 0:
            raise ValueError("dt_seconds must not be negative")
        remaining = dt_seconds
        while remaining > 0.0:
            h = min(remaining, MAX_SUBSTEP_SECONDS)
            self._advance(h)
            remaining -= h
        if self._held is not None:
            self._value = self._held
        elif dt_seconds > 0.0:
            self._value = self._clamp(self._level + self._noise + self._drift)
        return self._value

    def _advance(self, h: float) -> None:
        # The ramp clock runs even during a hold so that a scenario's timing is not stretched by it.
        self._ramp_elapsed = min(self._ramp_elapsed + h, max(self._ramp_seconds, 0.0))
        if self._held is not None:
            return
        goal = self._clamp(self.current_target + self._offset)
        self._level = goal + (self._level - goal) * math.exp(-h / self.response_seconds)
        self._noise = _ou_step(self._noise, h, self.noise_sd, self.noise_seconds, self._rng)
        self._drift = _ou_step(self._drift, h, self.drift_sd, self.drift_seconds, self._rng)


@dataclass(frozen=True, slots=True)
class Vitals:
    """One moment of the simulated patient: what an oximeter sees, plus the arterial blood pressure.

    The numbers are the patient's true physiology even when `sensor` is "off" or "none": the patient
    does not stop breathing when the probe falls off. Hiding them (dashes) is the device's job. Likewise
    the blood pressure is continuous here; an NIBP device samples it when it measures.

    Equality (and hashing) compares the oximeter's fields only: `systolic` and `diastolic` are
    `compare=False`, so code and tests written before the patient had a blood pressure keep comparing
    what they always compared. Compare the pressures explicitly when they matter.
    """

    spo2: float  # %
    pulse: float  # /min
    pi: float  # perfusion index, %
    sensor: SensorState = "on"
    systolic: float = field(default=122.0, compare=False)  # mmHg
    diastolic: float = field(default=78.0, compare=False)  # mmHg

    @property
    def mean(self) -> float:
        """Mean arterial pressure, mmHg: diastolic + (systolic - diastolic) / 3, the usual estimate."""
        return self.diastolic + (self.systolic - self.diastolic) / 3.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """Who the patient is before anything happens: resting values and what drives the ketamine response.

    Defaults: a healthy adult on room air (SpO2 97-98 %, pulse ~72/min, PI ~3.5 %), normotensive at
    122/78 mmHg, 70 kg. `ketamine_response` scales the blood pressure and pulse response to ketamine:
    1.0 reproduces the average rise of the Yale 2024 cohort (clinical.md); the 12.5 % of patients who had
    severe hypertension there respond more strongly (about 3 here) [practice, unverified].
    """

    spo2: float = 97.5
    pulse: float = 72.0
    pi: float = 3.5
    systolic: float = 122.0
    diastolic: float = 78.0
    weight_kg: float = 70.0
    ketamine_response: float = 1.0

    def of(self, vital: VitalName) -> float:
        return float(getattr(self, parse_vital(vital)))


# --- ketamine --------------------------------------------------------------------------------------------

#: Clements two-compartment ketamine model (clinical.md, "Pharmacokinetics"): V1 in L/kg, rates per minute.
#: For 0.5 mg/kg over 40 min in 70 kg it gives ~177 ng/mL at the end of the infusion; the measured mean
#: peak is ~185 ng/mL (PMC6020109, Table 1).
CLEMENTS_V1_L_PER_KG: Final = 1.7522
CLEMENTS_K10_PER_MIN: Final = 0.0109
CLEMENTS_K12_PER_MIN: Final = 0.0186
CLEMENTS_K21_PER_MIN: Final = 0.0137

#: Effect compartment: the haemodynamic response follows the plasma with rate ke0 (half-time ~3.5 min), so
#: after a 40-min infusion it peaks 2-3 min after the end, as in Yale 2024 (~40 min in) [practice,
#: unverified: no published ke0 for ketamine's blood-pressure effect was found].
KETAMINE_KE0_PER_MIN: Final = 0.2
#: Sigmoid Emax response: effect = Ce^n / (EC50^n + Ce^n). EC50 and the Hill coefficient n are tuned, not
#: measured: n = 3 makes the response fade within ~40 min of the end of an infusion although the plasma
#: level falls slowly (Clements: still ~40 % of the peak 1 h later) [practice, unverified].
KETAMINE_EC50_NG_ML: Final = 200.0
KETAMINE_HILL: Final = 3.0
#: Largest possible rises (Emax), tuned so that 0.5 mg/kg over 40 min in a 70 kg patient (effect ~0.36 at
#: the peak) gives about +16/+11 mmHg (Yale 2024, clinical.md) and +10 % pulse [practice, unverified]. The
#: saturation keeps big IM doses plausible (at most +46/+30 mmHg and +27.5 % pulse for response 1.0).
KETAMINE_SYSTOLIC_EMAX_MMHG: Final = 46.0
KETAMINE_DIASTOLIC_EMAX_MMHG: Final = 30.0
KETAMINE_PULSE_EMAX_FRACTION: Final = 0.275


@dataclass(frozen=True, slots=True)
class RouteKinetics:
    """How a dose by one route reaches the plasma: the fraction that does, and how fast.

    `absorption_per_min` is the first-order absorption rate constant ka from a depot; None means the
    drug enters the plasma directly (IV). Rates are tuned to the published time of the peak plasma level.
    """

    bioavailability: float
    absorption_per_min: float | None
    source: str


#: Per-route kinetics. Bioavailabilities: IV 1.0 by definition; IM 0.93 (Clements 1982, J Pharm Sci 71:539);
#: intranasal 0.45 (Yanagihara 2003, Biopharm Drug Dispos 24:37); sublingual 0.25, between oral 20-25 %
#: (Andrade 2019, clinical.md) and sublingual 29 % (Rolan 2014, PMC4093926), since part of a lozenge is
#: swallowed. Absorption rates [practice, unverified] give a plasma peak at ~14 min IM (5-15 min reported),
#: ~21 min intranasal (esketamine label: 20-40 min) and ~40 min sublingual (Rolan 2014: median 45 min).
ROUTE_KINETICS: Final[dict[Route, RouteKinetics]] = {
    "iv-infusion": RouteKinetics(1.0, None, "zero-order over the infusion time"),
    "iv-bolus": RouteKinetics(1.0, None, "immediate"),
    "im": RouteKinetics(0.93, 0.15, "Clements 1982; peak ~14 min"),
    "intranasal": RouteKinetics(0.45, 0.08, "Yanagihara 2003; peak ~21 min"),
    "sublingual": RouteKinetics(0.25, 0.03, "Andrade 2019, Rolan 2014; peak ~40 min"),
}

_ABSORBED_ROUTES: Final[tuple[Route, ...]] = tuple(
    route for route, kinetics in ROUTE_KINETICS.items() if kinetics.absorption_per_min is not None
)

#: State vector of KetamineModel: central mg, peripheral mg, effect-site ng/mL, then one depot per route.
_State = tuple[float, ...]


def _rk4(f: Callable[[_State], _State], y: _State, h: float) -> _State:
    k1 = f(y)
    k2 = f(tuple(a + 0.5 * h * b for a, b in zip(y, k1, strict=True)))
    k3 = f(tuple(a + 0.5 * h * b for a, b in zip(y, k2, strict=True)))
    k4 = f(tuple(a + h * b for a, b in zip(y, k3, strict=True)))
    return tuple(
        a + h / 6.0 * (b1 + 2.0 * b2 + 2.0 * b3 + b4)
        for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4, strict=True)
    )


def check_dose(route: str, mg: float, over_s: float = 0.0) -> Route:
    """The dose's route if the dose makes sense, else ValueError saying what is wrong."""
    checked = parse_route(route)
    if not math.isfinite(mg) or mg <= 0:
        raise ValueError(f"a dose must be a positive number of mg, got {mg}")
    if not math.isfinite(over_s) or over_s < 0:
        raise ValueError(f"over_s must be a non-negative number of seconds, got {over_s}")
    if checked == "iv-infusion" and over_s <= 0:
        raise ValueError("an iv-infusion needs over_s > 0 (use iv-bolus for an injection)")
    if checked != "iv-infusion" and over_s != 0:
        raise ValueError(f"only an iv-infusion runs over time; a {checked} dose takes over_s = 0")
    return checked


class KetamineModel:
    """Plasma and effect-site ketamine concentration of one patient, and the resulting effect (0..1).

    - Input by route (ROUTE_KINETICS): the bioavailable fraction of each dose enters the plasma at once
      (IV bolus), at a constant rate over the infusion (IV infusion), or from a depot by first-order
      absorption (IM, intranasal, sublingual).
    - Plasma: Clements two-compartment model, V1 = 1.7522 L/kg x weight, k10 0.0109, k12 0.0186,
      k21 0.0137 /min (clinical.md).
    - Effect site: dCe/dt = ke0 (Cp - Ce), ke0 = 0.2 /min.
    - Effect: Ce^3 / (200^3 + Ce^3) (EC50 200 ng/mL, Hill 3), tuned to the Yale/Emory magnitudes.

    Deterministic and linear in dose. Integrated with RK4 in steps of at most 1 s (rates are per minute,
    so the result does not depend on the step size to any visible precision).
    """

    def __init__(self, weight_kg: float = 70.0) -> None:
        if not math.isfinite(weight_kg) or weight_kg <= 0:
            raise ValueError(f"weight_kg must be a positive number, got {weight_kg}")
        self.weight_kg = weight_kg
        self.central_volume_l = CLEMENTS_V1_L_PER_KG * weight_kg
        self._state: _State = (0.0,) * (3 + len(_ABSORBED_ROUTES))
        self._ka = tuple(ROUTE_KINETICS[route].absorption_per_min or 0.0 for route in _ABSORBED_ROUTES)
        #: running infusions: (start s, end s, bioavailable mg per minute), in this model's clock
        self._infusions: list[tuple[float, float, float]] = []
        self._elapsed = 0.0
        self._dosed = False
        #: total nominal dose given so far, mg (before bioavailability)
        self.total_mg = 0.0

    @property
    def elapsed(self) -> float:
        """Simulated seconds this model has been advanced."""
        return self._elapsed

    @property
    def plasma_ng_ml(self) -> float:
        """Plasma (central compartment) concentration, ng/mL."""
        return self._state[0] / self.central_volume_l * 1000.0

    @property
    def effect_site_ng_ml(self) -> float:
        """Effect-site concentration, ng/mL: the plasma level, lagged."""
        return self._state[2]

    @property
    def effect(self) -> float:
        """Fraction of the maximal response now, 0..1 (sigmoid Emax of the effect-site concentration)."""
        ce = max(0.0, self.effect_site_ng_ml)
        if ce == 0.0:
            return 0.0
        ratio = (ce / KETAMINE_EC50_NG_ML) ** KETAMINE_HILL
        return ratio / (1.0 + ratio)

    def give(self, route: Route, mg: float, over_s: float = 0.0) -> None:
        """Give `mg` of ketamine now by `route`; an "iv-infusion" runs at a constant rate for `over_s`."""
        checked = check_dose(route, mg, over_s)
        available = mg * ROUTE_KINETICS[checked].bioavailability
        state = list(self._state)
        if checked == "iv-infusion":
            self._infusions.append((self._elapsed, self._elapsed + over_s, available / (over_s / 60.0)))
        elif checked == "iv-bolus":
            state[0] += available
        else:
            state[3 + _ABSORBED_ROUTES.index(checked)] += available
        self._state = tuple(state)
        self.total_mg += mg
        self._dosed = True

    def advance(self, dt_s: float) -> None:
        """Advance by `dt_s` simulated seconds (integrated in steps of at most 1 s)."""
        if dt_s < 0:
            raise ValueError("dt_s must not be negative")
        if not self._dosed:  # nothing given yet: everything stays zero
            self._elapsed += dt_s
            return
        remaining = dt_s
        while remaining > 0.0:
            h = min(remaining, MAX_SUBSTEP_SECONDS)
            self._substep(h)
            remaining -= h

    def _infusion_mg_per_min(self, start: float, end: float) -> float:
        """Mean infusion rate over [start, end]: exact delivered mass even when an infusion ends mid-step."""
        delivered = 0.0
        for begin, finish, mg_per_min in self._infusions:
            overlap = min(end, finish) - max(start, begin)
            if overlap > 0:
                delivered += mg_per_min * overlap
        return delivered / (end - start)

    def _substep(self, h: float) -> None:
        start, end = self._elapsed, self._elapsed + h
        rate = self._infusion_mg_per_min(start, end)
        v1 = self.central_volume_l
        ka = self._ka

        def derivative(y: _State) -> _State:
            central, peripheral, effect_site, *depots = y
            absorbed = [k * amount for k, amount in zip(ka, depots, strict=True)]
            d_central = (
                rate
                + sum(absorbed)
                - (CLEMENTS_K10_PER_MIN + CLEMENTS_K12_PER_MIN) * central
                + CLEMENTS_K21_PER_MIN * peripheral
            )
            d_peripheral = CLEMENTS_K12_PER_MIN * central - CLEMENTS_K21_PER_MIN * peripheral
            d_effect_site = KETAMINE_KE0_PER_MIN * (central / v1 * 1000.0 - effect_site)
            return (d_central, d_peripheral, d_effect_site, *(-a for a in absorbed))

        self._state = _rk4(derivative, self._state, h / 60.0)
        self._elapsed = end
        self._infusions = [infusion for infusion in self._infusions if infusion[1] > end]


#: Range each vital is clamped to: a target beyond it means "as far as it goes"; a hold beyond it is refused.
VITAL_RANGES: Final[dict[VitalName, tuple[float, float]]] = {
    "spo2": (50.0, 100.0),
    "pulse": (30.0, 200.0),
    "pi": (0.02, 20.0),
    "systolic": (60.0, 260.0),
    "diastolic": (30.0, 160.0),
}


@dataclass(frozen=True, slots=True)
class _Dynamics:
    response_seconds: float
    noise_sd: float
    noise_seconds: float
    drift_sd: float
    drift_seconds: float


#: Per-vital dynamics of SimulatedPatient (see its docstring for why).
_DYNAMICS: Final[dict[VitalName, _Dynamics]] = {
    "spo2": _Dynamics(15.0, 0.5, 12.0, 0.5, 900.0),
    "pulse": _Dynamics(15.0, 2.0, 8.0, 2.0, 900.0),
    "pi": _Dynamics(20.0, 0.25, 20.0, 0.4, 1200.0),
    "systolic": _Dynamics(30.0, 3.0, 30.0, 4.0, 1200.0),
    "diastolic": _Dynamics(30.0, 2.0, 30.0, 3.0, 1200.0),
}


class SimulatedPatient:
    """SpO2, pulse rate, perfusion index and blood pressure of one patient, the state of the oximeter
    probe, and the ketamine the patient has been given.

    Dynamics per vital (chosen so a resting patient reads like a real 1 Hz Masimo trend):
    - SpO2: clamp 50..100 %, follows targets with a 15 s time constant (blood and the oximeter's averaging
      window), noise sd 0.5 %-points (12 s correlation), slow drift sd 0.5 (15 min).
    - Pulse: clamp 30..200 /min, 15 s time constant, noise sd 2 /min (8 s), drift sd 2 (15 min).
    - PI: clamp 0.02..20 %, 20 s time constant, noise sd 0.25 (20 s), drift sd 0.4 (20 min).
    - Systolic: clamp 60..260 mmHg, 30 s time constant, noise sd 3 mmHg (30 s), drift sd 4 (20 min).
    - Diastolic: clamp 30..160 mmHg, 30 s time constant, noise sd 2 mmHg (30 s), drift sd 3 (20 min).
      (Blood-pressure noise is what repeated NIBP readings scatter by [practice, unverified].)

    Ketamine (`give`) adds to the set points of systolic, diastolic and pulse through `KetamineModel`;
    SpO2 and PI are not affected (scenarios script desaturations). Scripted targets stay the drug-free set
    points, so "shift systolic +20" during an infusion means 20 above baseline plus the drug's effect.

    `drift=False` and `noise=False` turn off the random parts (deterministic curves for tests). The
    random streams of SpO2, pulse and PI are drawn first, so a seed gives the same oximeter numbers as
    before blood pressure existed.

    Thread-safe: the simulator thread steps the patient while a control thread holds values.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        baseline: Baseline | None = None,
        drift: bool = True,
        noise: bool = True,
    ) -> None:
        self.baseline = baseline or Baseline()
        seeds = random.Random(seed)
        drift_scale = 1.0 if drift else 0.0
        noise_scale = 1.0 if noise else 0.0
        self._signals: dict[VitalName, VitalSignal] = {}
        for vital in VITAL_NAMES:  # in this order: each vital's random stream is seeded in turn
            lo, hi = VITAL_RANGES[vital]
            dynamics = _DYNAMICS[vital]
            self._signals[vital] = VitalSignal(
                self.baseline.of(vital),
                lo=lo,
                hi=hi,
                response_seconds=dynamics.response_seconds,
                noise_sd=dynamics.noise_sd * noise_scale,
                noise_seconds=dynamics.noise_seconds,
                drift_sd=dynamics.drift_sd * drift_scale,
                drift_seconds=dynamics.drift_seconds,
                seed=seeds.getrandbits(64),
            )
        self.ketamine = KetamineModel(self.baseline.weight_kg)
        self._sensor: SensorState = "on"
        self._elapsed = 0.0
        self._lock = threading.RLock()

    def signal(self, vital: VitalName) -> VitalSignal:
        """The underlying signal, for inspection (targets, held state)."""
        return self._signals[parse_vital(vital)]

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the patient was created."""
        return self._elapsed

    @property
    def sensor(self) -> SensorState:
        return self._sensor

    @property
    def ketamine_ng_ml(self) -> float:
        """Estimated plasma ketamine concentration now, ng/mL (for debugging and trainers' displays)."""
        with self._lock:
            return self.ketamine.plasma_ng_ml

    @property
    def ketamine_effect_site_ng_ml(self) -> float:
        """Estimated effect-site ketamine concentration now, ng/mL: what the response follows."""
        with self._lock:
            return self.ketamine.effect_site_ng_ml

    def give(self, route: Route, mg: float, over_s: float = 0.0) -> None:
        """Give `mg` of ketamine now by `route` ("iv-infusion" over `over_s` seconds; others at once)."""
        with self._lock:
            self.ketamine.give(route, mg, over_s)

    def set_sensor(self, state: SensorState) -> None:
        """Probe state: on the finger ("on"), fallen off the patient ("off"), not connected ("none")."""
        checked = parse_sensor_state(state)
        with self._lock:
            self._sensor = checked

    def set_target(self, vital: VitalName, value: float, ramp_seconds: float = 0.0) -> None:
        """Make `vital` head for `value` (ramping over `ramp_seconds`), with its usual lag and noise."""
        with self._lock:
            self.signal(vital).set_target(value, ramp_seconds)

    def shift_from_baseline(self, vital: VitalName, delta: float, ramp_seconds: float = 0.0) -> None:
        """Target `baseline + delta`: scenarios say "pulse +10" without knowing this patient's baseline."""
        self.set_target(vital, self.baseline.of(vital) + delta, ramp_seconds)

    def hold(self, vital: VitalName, value: float) -> None:
        """Report exactly `value` for `vital` (no noise) until released."""
        with self._lock:
            self.signal(vital).hold(value)

    def release(self, vital: VitalName | None = None) -> None:
        """Release one held vital, or all of them; each resumes from its held value toward its target."""
        with self._lock:
            for name in (vital,) if vital is not None else VITAL_NAMES:
                self.signal(name).release()

    def vitals(self) -> Vitals:
        """The current state without advancing time."""
        with self._lock:
            return Vitals(
                spo2=self._signals["spo2"].value,
                pulse=self._signals["pulse"].value,
                pi=self._signals["pi"].value,
                sensor=self._sensor,
                systolic=self._signals["systolic"].value,
                diastolic=self._signals["diastolic"].value,
            )

    def step(self, dt_seconds: float) -> Vitals:
        """Advance all vitals by `dt_seconds` of simulated time and return the new state.

        Advances in the same substeps as `VitalSignal.step` (at most 1 s), updating the ketamine response
        between substeps, so the random streams, and the numbers, are those of one big `step`.
        """
        if dt_seconds < 0:
            raise ValueError("dt_seconds must not be negative")
        with self._lock:
            remaining = dt_seconds
            while remaining > 0.0:
                h = min(remaining, MAX_SUBSTEP_SECONDS)
                self.ketamine.advance(h)
                self._apply_ketamine()
                for signal in self._signals.values():
                    signal.step(h)
                remaining -= h
            self._elapsed += dt_seconds
            return self.vitals()

    def _apply_ketamine(self) -> None:
        effect = self.ketamine.effect * self.baseline.ketamine_response
        self._signals["systolic"].set_offset(KETAMINE_SYSTOLIC_EMAX_MMHG * effect)
        self._signals["diastolic"].set_offset(KETAMINE_DIASTOLIC_EMAX_MMHG * effect)
        self._signals["pulse"].set_offset(KETAMINE_PULSE_EMAX_FRACTION * self.baseline.pulse * effect)


# --- scenarios -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetTarget:
    """At `at` simulated seconds, send `vital` toward an absolute `value` over `ramp_seconds`."""

    at: float
    vital: VitalName
    value: float
    ramp_seconds: float = 0.0

    def apply(self, patient: SimulatedPatient) -> None:
        patient.set_target(self.vital, self.value, self.ramp_seconds)


@dataclass(frozen=True, slots=True)
class ShiftFromBaseline:
    """At `at`, send `vital` toward the patient's baseline plus `delta` (0 returns it to baseline)."""

    at: float
    vital: VitalName
    delta: float
    ramp_seconds: float = 0.0

    def apply(self, patient: SimulatedPatient) -> None:
        patient.shift_from_baseline(self.vital, self.delta, self.ramp_seconds)


@dataclass(frozen=True, slots=True)
class SetSensor:
    """At `at`, change the oximeter probe's state ("on", "off", "none")."""

    at: float
    state: SensorState

    def apply(self, patient: SimulatedPatient) -> None:
        patient.set_sensor(self.state)


@dataclass(frozen=True, slots=True)
class Dose:
    """At `at`, give `mg` of ketamine by `route`; an "iv-infusion" runs for `over_s` seconds.

    The patient's ketamine response follows (see KetamineModel). `mg` is the nominal dose, before
    bioavailability.
    """

    at: float
    route: Route
    mg: float
    over_s: float = 0.0

    def __post_init__(self) -> None:
        check_dose(self.route, self.mg, self.over_s)

    def apply(self, patient: SimulatedPatient) -> None:
        patient.give(self.route, self.mg, self.over_s)


#: The actions each device understands. Oximeter: the probe falls off / goes back on / the sensor is
#: unplugged from the device (the patient's `sensor` state follows). cable-pull / cable-return: the
#: device's serial link disappears and comes back. NIBP: nibp-error (args: code, a SunTech return code)
#: makes measurements fail until clear-alarm. Pump: occlusion until clear-alarm; start-infusion (args:
#: rate_ml_h, vtbi_ml, dose_mg, concentration_mg_ml) and stop-infusion come from infusion doses.
DEVICE_ACTIONS: Final[dict[Device, tuple[str, ...]]] = {
    "oximeter": ("probe-off", "probe-on", "no-sensor", "cable-pull", "cable-return"),
    "nibp": ("nibp-error", "clear-alarm", "cable-pull", "cable-return"),
    "pump": ("occlusion", "clear-alarm", "start-infusion", "stop-infusion", "cable-pull", "cable-return"),
}

#: The action that undoes each action (a scenario's `for` schedules it automatically).
REVERSE_ACTION: Final[dict[str, str]] = {
    "probe-off": "probe-on",
    "no-sensor": "probe-on",
    "cable-pull": "cable-return",
    "nibp-error": "clear-alarm",
    "occlusion": "clear-alarm",
    "start-infusion": "stop-infusion",
}

_PROBE_STATES: Final[dict[str, SensorState]] = {"probe-off": "off", "probe-on": "on", "no-sensor": "none"}


@dataclass(frozen=True, slots=True)
class DeviceAction:
    """At `at`, something happens to a simulated device rather than to the patient.

    The ScenarioPlayer hands it to its `on_device_action` callback (the runner routes it to the device's
    simulator); without a callback it only does what it does to the patient: the oximeter's probe actions
    set the patient's `sensor` state, which every oximeter simulator reads. `args` holds the action's
    parameters (see DEVICE_ACTIONS); it is excluded from hashing.
    """

    at: float
    device: Device
    action: str
    args: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        device = parse_device(self.device)
        if self.action not in DEVICE_ACTIONS[device]:
            expected = ", ".join(DEVICE_ACTIONS[device])
            raise ValueError(f"unknown {device} action {self.action!r}; expected one of {expected}")

    def apply(self, patient: SimulatedPatient) -> None:
        if self.device == "oximeter" and self.action in _PROBE_STATES:
            patient.set_sensor(_PROBE_STATES[self.action])


ScenarioStep = SetTarget | ShiftFromBaseline | SetSensor | Dose | DeviceAction


@dataclass(frozen=True, slots=True)
class Scenario:
    """A script of timed steps, in simulated seconds from the start. Immutable, so `SCENARIOS` can share it.

    `repeat_every`: if set, the script starts over every that many simulated seconds (for demos that run
    for hours); it must be longer than the last step's time.
    """

    name: str
    description: str
    steps: tuple[ScenarioStep, ...] = ()
    repeat_every: float | None = None

    def __post_init__(self) -> None:
        times = [step.at for step in self.steps]
        if any(t < 0 for t in times):
            raise ValueError(f"scenario {self.name!r}: step times must not be negative")
        if times != sorted(times):
            raise ValueError(f"scenario {self.name!r}: steps must be in time order")
        if self.repeat_every is not None and (
            self.repeat_every <= 0 or (times and times[-1] >= self.repeat_every)
        ):
            raise ValueError(f"scenario {self.name!r}: repeat_every must exceed the last step's time")

    def play(
        self,
        patient: SimulatedPatient,
        speed: float = 1.0,
        on_device_action: Callable[[DeviceAction], None] | None = None,
    ) -> ScenarioPlayer:
        return ScenarioPlayer(self, patient, speed, on_device_action)


class ScenarioPlayer:
    """Plays a Scenario on a patient, with time compressed by `speed`.

    `step(wall_dt)` advances the patient by `wall_dt * speed` simulated seconds, firing each script step at
    its exact simulated time (the patient is advanced up to the step, the step applied, then the rest), so a
    step at t=60 s fires after 60 / speed wall seconds whatever the tick size. Ramps and time constants are
    in simulated time too, so the whole curve compresses, not just the schedule.

    `on_device_action` (settable later, e.g. on a MasimoSimulator's `player`) receives each DeviceAction
    once, when it fires, from the thread that steps the player, with `at` set to the simulated time it
    fired (script time plus the start of the current repetition). An exception in it is logged, not
    raised: a device that fails to react must not stop the patient.
    """

    def __init__(
        self,
        scenario: Scenario,
        patient: SimulatedPatient,
        speed: float = 1.0,
        on_device_action: Callable[[DeviceAction], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.scenario = scenario
        self.patient = patient
        self.speed = speed
        self.on_device_action = on_device_action
        self.sim_time = 0.0
        self._cycle_start = 0.0
        self._index = 0
        #: recently fired steps as (simulated time, step), newest last; bounded for hour-long demos
        self.fired: deque[tuple[float, ScenarioStep]] = deque(maxlen=256)

    def _next_fire_time(self) -> float | None:
        steps = self.scenario.steps
        if not steps:
            return None
        if self._index >= len(steps):
            if self.scenario.repeat_every is None:
                return None
            self._cycle_start += self.scenario.repeat_every
            self._index = 0
        return self._cycle_start + steps[self._index].at

    def step(self, wall_dt: float) -> Vitals:
        """Advance `wall_dt` wall-clock seconds (`wall_dt * speed` simulated); return the vitals."""
        if wall_dt < 0:
            raise ValueError("wall_dt must not be negative")
        end = self.sim_time + wall_dt * self.speed
        while (fire_at := self._next_fire_time()) is not None and fire_at <= end:
            if fire_at > self.sim_time:
                self.patient.step(fire_at - self.sim_time)
                self.sim_time = fire_at
            step = self.scenario.steps[self._index]
            self._index += 1
            step.apply(self.patient)
            self.fired.append((self.sim_time, step))
            if isinstance(step, DeviceAction) and self.on_device_action is not None:
                try:
                    self.on_device_action(replace(step, at=self.sim_time))
                except Exception:
                    log.exception("scenario %s: device action %s failed", self.scenario.name, step)
        vitals = self.patient.step(max(0.0, end - self.sim_time))
        self.sim_time = end
        return vitals


_MIN: Final = 60.0

#: Named scenarios. Times are simulated seconds; compress them with ScenarioPlayer(speed=...).
SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario(
            "stable",
            "Healthy adult at rest on room air: SpO2 ~97.5 %, pulse ~72/min, PI ~3.5 %, with beat-to-beat "
            "noise and slow drift and no events. The control case: a correct monitor raises no alarm here.",
        ),
        Scenario(
            "ketamine-iv",
            "IV ketamine 0.5 mg/kg over 40 min, the common depression regimen (Emory, PMID 29525051; "
            "clinical.md). Ketamine is sympathomimetic: pulse rises ~+10/min over the infusion and returns "
            "to baseline over the 30 min after it [practice, unverified magnitude]. Three brief "
            "desaturations to ~91 % (dissociated patient, shallow breathing or a chin drop) at 12, 26 and "
            "37 min, each recovering within about 2 min: below the OpenICE warning limit (95 %) and the "
            "Aldrete discharge threshold (92 %), above the critical limit (85 %). Blood pressure rises "
            "by +16/+11 mmHg over the infusion, peaking about 40 min in (Yale 2024), and returns over 30 "
            "min. All scripted, not pharmacological: the file scenario routine-iv-infusion derives the "
            "same kind of response from the dose.",
            (
                ShiftFromBaseline(0.0, "pulse", 10.0, ramp_seconds=40 * _MIN),
                ShiftFromBaseline(0.0, "systolic", 16.0, ramp_seconds=40 * _MIN),
                ShiftFromBaseline(0.0, "diastolic", 11.0, ramp_seconds=40 * _MIN),
                SetTarget(12 * _MIN, "spo2", 91.0, ramp_seconds=20.0),
                ShiftFromBaseline(12 * _MIN + 50, "spo2", 0.0, ramp_seconds=40.0),
                SetTarget(26 * _MIN, "spo2", 91.0, ramp_seconds=20.0),
                ShiftFromBaseline(26 * _MIN + 50, "spo2", 0.0, ramp_seconds=40.0),
                SetTarget(37 * _MIN, "spo2", 90.5, ramp_seconds=20.0),
                ShiftFromBaseline(37 * _MIN + 50, "spo2", 0.0, ramp_seconds=40.0),
                ShiftFromBaseline(40 * _MIN, "pulse", 0.0, ramp_seconds=30 * _MIN),
                ShiftFromBaseline(40 * _MIN, "systolic", 0.0, ramp_seconds=30 * _MIN),
                ShiftFromBaseline(40 * _MIN, "diastolic", 0.0, ramp_seconds=30 * _MIN),
            ),
        ),
        Scenario(
            "desaturation",
            "A clinically significant desaturation, repeated every 10 min for demos: from 1 min SpO2 falls "
            "to ~86 % over 1 min (hypoventilation), stays there ~1 min with a compensatory pulse rise of "
            "~+8/min, then recovers to baseline over ~1-2 min (stimulation, chin lift). 86 % is below "
            "the OpenICE warning (95 %) but just above its critical limit (85 %) (clinical.md).",
            (
                SetTarget(60.0, "spo2", 86.0, ramp_seconds=60.0),
                ShiftFromBaseline(60.0, "pulse", 8.0, ramp_seconds=90.0),
                ShiftFromBaseline(180.0, "spo2", 0.0, ramp_seconds=60.0),
                ShiftFromBaseline(180.0, "pulse", 0.0, ramp_seconds=120.0),
            ),
            repeat_every=600.0,
        ),
        Scenario(
            "sensor-off",
            "Stable physiology with intermittent probe problems, repeated every 5 min: the probe slips off "
            "(a dissociated patient moving a hand) at 30 s for 10 s and at 120 s for 20 s, and the sensor "
            "cable is unplugged at 200 s for 15 s. Exercises the technical (non-physiological) conditions.",
            (
                SetSensor(30.0, "off"),
                SetSensor(40.0, "on"),
                SetSensor(120.0, "off"),
                SetSensor(140.0, "on"),
                SetSensor(200.0, "none"),
                SetSensor(215.0, "on"),
            ),
            repeat_every=300.0,
        ),
    )
}

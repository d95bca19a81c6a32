"""A scripted patient whose numbers move like a patient's: smooth trends, bounded noise, no random jumps.

Why not `random.uniform` every second: a nurse (and an alarm engine with delays and hysteresis) reacts to
*trends*. A simulator that jumps 97 -> 91 -> 98 would make every alarm delay look wrong and every chart look
fake. So each vital sign is a level that follows a target with first-order dynamics, plus mean-reverting
(Ornstein-Uhlenbeck) noise and an optional slow mean-reverting drift, all seeded for repeatable tests.

Time here is always *simulated* seconds. Compressing time for demos and tests (`speed`) happens in
`ScenarioPlayer`, which advances the patient by `wall_seconds * speed`, so a 40-minute infusion played at
speed 60 is the same curve as the real one, sampled once per simulated minute.

Physiology follows ../shared/reference/clinical.md (see the docstrings of the scenarios below).
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal, get_args

VitalName = Literal["spo2", "pulse", "pi"]
SensorState = Literal["on", "off", "none"]

VITAL_NAMES: Final[tuple[VitalName, ...]] = get_args(VitalName)
SENSOR_STATES: Final[tuple[SensorState, ...]] = get_args(SensorState)

_VITAL_LOOKUP: Final[dict[str, VitalName]] = {name: name for name in VITAL_NAMES}
_SENSOR_LOOKUP: Final[dict[str, SensorState]] = {state: state for state in SENSOR_STATES}


def parse_vital(text: str) -> VitalName:
    """`text` as a vital's name ("spo2", "pulse", "pi"), or ValueError naming the valid ones."""
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
        goal = self.current_target
        self._level = goal + (self._level - goal) * math.exp(-h / self.response_seconds)
        self._noise = _ou_step(self._noise, h, self.noise_sd, self.noise_seconds, self._rng)
        self._drift = _ou_step(self._drift, h, self.drift_sd, self.drift_seconds, self._rng)


@dataclass(frozen=True, slots=True)
class Vitals:
    """One moment of the simulated patient, as an oximeter would see it.

    The numbers are the patient's true physiology even when `sensor` is "off" or "none": the patient
    does not stop breathing when the probe falls off. Hiding them (dashes) is the device's job.
    """

    spo2: float  # %
    pulse: float  # /min
    pi: float  # perfusion index, %
    sensor: SensorState = "on"


@dataclass(frozen=True, slots=True)
class Baseline:
    """Resting values of a healthy adult on room air (SpO2 97-98 %, pulse ~72/min, PI ~3.5 %)."""

    spo2: float = 97.5
    pulse: float = 72.0
    pi: float = 3.5

    def of(self, vital: VitalName) -> float:
        return float(getattr(self, vital))


class SimulatedPatient:
    """SpO2, pulse rate and perfusion index of one patient, plus the state of the oximeter probe.

    Dynamics per vital (chosen so a resting patient reads like a real 1 Hz Masimo trend):
    - SpO2: clamp 50..100 %, follows targets with a 15 s time constant (blood and the oximeter's averaging
      window), noise sd 0.5 %-points (12 s correlation), slow drift sd 0.5 (15 min).
    - Pulse: clamp 30..200 /min, 15 s time constant, noise sd 2 /min (8 s), drift sd 2 (15 min).
    - PI: clamp 0.02..20 %, 20 s time constant, noise sd 0.25 (20 s), drift sd 0.4 (20 min).

    Thread-safe: the simulator thread steps the patient while a control thread holds values.
    """

    def __init__(
        self, seed: int | None = None, *, baseline: Baseline | None = None, drift: bool = True
    ) -> None:
        self.baseline = baseline or Baseline()
        seeds = random.Random(seed)
        drift_scale = 1.0 if drift else 0.0
        self._signals: dict[VitalName, VitalSignal] = {
            "spo2": VitalSignal(
                self.baseline.spo2,
                lo=50.0,
                hi=100.0,
                response_seconds=15.0,
                noise_sd=0.5,
                noise_seconds=12.0,
                drift_sd=0.5 * drift_scale,
                drift_seconds=900.0,
                seed=seeds.getrandbits(64),
            ),
            "pulse": VitalSignal(
                self.baseline.pulse,
                lo=30.0,
                hi=200.0,
                response_seconds=15.0,
                noise_sd=2.0,
                noise_seconds=8.0,
                drift_sd=2.0 * drift_scale,
                drift_seconds=900.0,
                seed=seeds.getrandbits(64),
            ),
            "pi": VitalSignal(
                self.baseline.pi,
                lo=0.02,
                hi=20.0,
                response_seconds=20.0,
                noise_sd=0.25,
                noise_seconds=20.0,
                drift_sd=0.4 * drift_scale,
                drift_seconds=1200.0,
                seed=seeds.getrandbits(64),
            ),
        }
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
            )

    def step(self, dt_seconds: float) -> Vitals:
        """Advance all vitals by `dt_seconds` of simulated time and return the new state."""
        with self._lock:
            for signal in self._signals.values():
                signal.step(dt_seconds)
            self._elapsed += dt_seconds
            return self.vitals()


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


ScenarioStep = SetTarget | ShiftFromBaseline | SetSensor


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

    def play(self, patient: SimulatedPatient, speed: float = 1.0) -> ScenarioPlayer:
        return ScenarioPlayer(self, patient, speed)


class ScenarioPlayer:
    """Plays a Scenario on a patient, with time compressed by `speed`.

    `step(wall_dt)` advances the patient by `wall_dt * speed` simulated seconds, firing each script step at
    its exact simulated time (the patient is advanced up to the step, the step applied, then the rest), so a
    step at t=60 s fires after 60 / speed wall seconds whatever the tick size. Ramps and time constants are
    in simulated time too, so the whole curve compresses, not just the schedule.
    """

    def __init__(self, scenario: Scenario, patient: SimulatedPatient, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.scenario = scenario
        self.patient = patient
        self.speed = speed
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
            step.apply(self.patient)
            self.fired.append((self.sim_time, step))
            self._index += 1
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
            "Aldrete discharge threshold (92 %), above the critical limit (85 %). Blood pressure peaks "
            "about 40 min in (Yale 2024) but an oximeter does not measure it.",
            (
                ShiftFromBaseline(0.0, "pulse", 10.0, ramp_seconds=40 * _MIN),
                SetTarget(12 * _MIN, "spo2", 91.0, ramp_seconds=20.0),
                ShiftFromBaseline(12 * _MIN + 50, "spo2", 0.0, ramp_seconds=40.0),
                SetTarget(26 * _MIN, "spo2", 91.0, ramp_seconds=20.0),
                ShiftFromBaseline(26 * _MIN + 50, "spo2", 0.0, ramp_seconds=40.0),
                SetTarget(37 * _MIN, "spo2", 90.5, ramp_seconds=20.0),
                ShiftFromBaseline(37 * _MIN + 50, "spo2", 0.0, ramp_seconds=40.0),
                ShiftFromBaseline(40 * _MIN, "pulse", 0.0, ramp_seconds=30 * _MIN),
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

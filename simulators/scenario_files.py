"""Scenarios as TOML files: one file per scenario in `simulators/scenarios/`, documented in its README.md.

A trainer writes what happens and when (doses, vital-sign changes, device faults); `load_scenario` checks
every key and turns the file into a `ScenarioSpec`: the patient's baseline, the `Scenario` that a
`ScenarioPlayer` plays on a `SimulatedPatient` (doses included, so the ketamine response follows them), and
the timed `DeviceAction`s the player hands to the runner's `on_device_action` callback. Infusion doses also
become pump actions ("start-infusion" and "stop-infusion") so the simulated pump shows the infusion the
patient is receiving.

Errors are `ScenarioFileError`s whose message names the file, the key (`dose[2].route`, counted from 1)
and what was expected, so a typo in a scenario is fixed from the message alone.

Typical use by a runner:

    spec = load_scenario("routine-iv-infusion")
    patient = spec.new_patient(seed)
    player = spec.scenario.play(patient, speed, on_device_action=route_to_device_simulators)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from monitor.toml_files import load_named_toml
from simulators.physiology import (
    DEVICE_ACTIONS,
    REVERSE_ACTION,
    VITAL_NAMES,
    VITAL_RANGES,
    Baseline,
    DeviceAction,
    Dose,
    Scenario,
    ScenarioPlayer,
    ScenarioStep,
    SetTarget,
    ShiftFromBaseline,
    SimulatedPatient,
    VitalName,
    parse_device,
    parse_route,
    parse_vital,
)

#: Where the shipped scenario files live.
SCENARIO_DIR: Final = Path(__file__).resolve().with_name("scenarios")

#: Ketamine concentration in the pump's syringe or bag when a file does not say ([pump] table).
DEFAULT_CONCENTRATION_MG_PER_ML: Final = 1.0

#: SunTech Advantage NIBP return codes (../shared/reference/device-protocols.md, section 2): 1 weak signal,
#: 2 erratic signal, 3 out of range, 4 measurement timeout, 85 pneumatic blockage, 86 user abort, 87 loose
#: cuff or leak, 88 safety timeout, 89 over-pressure, 90 hardware or power, 91 auto-zero, 97 transducer
#: range, 99 EEPROM.
NIBP_ERROR_CODES: Final[tuple[int, ...]] = (1, 2, 3, 4, 85, 86, 87, 88, 89, 90, 91, 97, 99)

#: Actions a file may not script: they come from [[dose]] entries.
_GENERATED_ACTIONS: Final = frozenset({"start-infusion", "stop-infusion"})

_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")
_NUMBER = re.compile(r"\d+(?:\.\d*)?")
_DURATION_HELP: Final = 'a duration like "90s", "5m", "1h30m" or a number of seconds'


class ScenarioFileError(ValueError):
    """A scenario file that cannot be used. `file` and `key` say where; the message says what to write."""

    def __init__(self, file: Path | str, key: str | None, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {problem}")


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number of seconds (int or float) or a text like "90s", "5m", "1h30m", "2.5m".

    Raises ValueError for anything else, negative numbers included.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {_DURATION_HELP}, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            return float(text)
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            raise ValueError(f"expected {_DURATION_HELP}, got {value!r}")
        hours, minutes, seconds = (float(group) if group else 0.0 for group in match.groups())
        return hours * 3600.0 + minutes * 60.0 + seconds
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected {_DURATION_HELP}, got {value!r}")
    return float(value)


def format_duration(seconds: float) -> str:
    """`seconds` the way a file writes it: 5400 -> "1h30m", 770 -> "12m50s", 0 -> "0s"."""
    whole_minutes, rest = divmod(seconds, 60.0)
    hours, minutes = divmod(int(whole_minutes), 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if rest or not text:
        text += f"{rest:g}s"
    return text


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """One scenario file, checked and compiled.

    - `scenario`: every timed step (vital changes, doses, device actions) for a ScenarioPlayer.
    - `doses` and `device_actions`: the same doses and device actions on their own, in time order
      (device actions include the pump's start/stop for infusions and the automatic `for` reversals).
    - `baseline`: the patient before anything happens ([patient] table); `new_patient` builds one.
    - `duration_s`: how long the script runs; if `repeat`, it starts over every `duration_s` seconds.
    """

    name: str
    description: str
    path: Path
    duration_s: float
    repeat: bool
    baseline: Baseline
    pump_concentration_mg_per_ml: float
    doses: tuple[Dose, ...]
    device_actions: tuple[DeviceAction, ...]
    scenario: Scenario

    def new_patient(
        self, seed: int | None = None, *, drift: bool = True, noise: bool = True
    ) -> SimulatedPatient:
        """A patient with this scenario's baseline."""
        return SimulatedPatient(seed, baseline=self.baseline, drift=drift, noise=noise)

    def play(
        self,
        patient: SimulatedPatient | None = None,
        *,
        speed: float = 1.0,
        seed: int | None = None,
        on_device_action: Callable[[DeviceAction], None] | None = None,
    ) -> ScenarioPlayer:
        """A player for this scenario, on `patient` or on a new patient with this baseline and `seed`."""
        subject = patient if patient is not None else self.new_patient(seed)
        return ScenarioPlayer(self.scenario, subject, speed, on_device_action)


def pump_actions(dose: Dose, concentration_mg_per_ml: float) -> tuple[DeviceAction, DeviceAction]:
    """The pump's "start-infusion" at the dose's start and "stop-infusion" at its end, for an iv-infusion.

    start args: rate_ml_h, vtbi_ml (volume to be infused), dose_mg, concentration_mg_ml; stop has none.
    """
    if dose.route != "iv-infusion":
        raise ValueError(f"only an iv-infusion runs on the pump, not {dose.route}")
    if not concentration_mg_per_ml > 0:
        raise ValueError("concentration_mg_per_ml must be positive")
    volume_ml = dose.mg / concentration_mg_per_ml
    start = DeviceAction(
        dose.at,
        "pump",
        "start-infusion",
        {
            "rate_ml_h": volume_ml / (dose.over_s / 3600.0),
            "vtbi_ml": volume_ml,
            "dose_mg": dose.mg,
            "concentration_mg_ml": concentration_mg_per_ml,
        },
    )
    return start, DeviceAction(dose.at + dose.over_s, "pump", "stop-infusion")


def available_scenarios() -> list[str]:
    """Names of the shipped scenario files, sorted (what `load_scenario` accepts as a name)."""
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))


def load_scenario(path_or_name: str | Path) -> ScenarioSpec:
    """Load and check a scenario: a shipped one by name ("routine-iv-infusion") or any file by path.

    A string ending in ".toml" or containing a slash is a path. Raises ScenarioFileError.
    """
    path, document = load_named_toml(path_or_name, SCENARIO_DIR, "scenario", ScenarioFileError)
    return _Compiler(path).compile(document)


# --- reading and checking ----------------------------------------------------------------------------


class _Table:
    """One TOML table being read: typed getters that raise ScenarioFileError naming the key."""

    def __init__(self, path: Path, where: str, data: object, keys: Iterable[str]) -> None:
        self.path = path
        self.where = where
        if not isinstance(data, dict):
            raise ScenarioFileError(path, where, f"expected a table, got {_kind(data)}")
        self.data: dict[str, object] = data
        allowed = tuple(keys)
        for key in data:
            if key not in allowed:
                raise self.error(key, f"unknown key; expected one of {', '.join(allowed)}")

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, problem: str) -> ScenarioFileError:
        return ScenarioFileError(self.path, self.key(name), problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def require(self, name: str, what: str) -> object:
        if name not in self.data:
            raise self.error(name, f"missing; expected {what}")
        return self.data[name]

    def text(self, name: str, *, required: bool = False) -> str | None:
        if not required and name not in self.data:
            return None
        value = self.require(name, "a text")
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"expected a non-empty text, got {_kind(value)}")
        return value

    def number(
        self, name: str, *, lo: float | None = None, hi: float | None = None, above: float | None = None
    ) -> float | None:
        """The number at `name` (None if absent), checked against lo <= x <= hi and x > above."""
        if name not in self.data:
            return None
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(name, f"expected a number, got {_kind(value)}")
        _check_range(self, name, float(value), lo=lo, hi=hi, above=above)
        return float(value)

    def duration(self, name: str, *, required: bool = False) -> float | None:
        if not required and name not in self.data:
            return None
        value = self.require(name, _DURATION_HELP)
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_kind(value)}")
        return value

    def tables(self, name: str) -> list[object]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"expected an array of tables ([[{name}]]), got {_kind(value)}")
        return value


def _check_range(
    table: _Table,
    name: str,
    value: float,
    *,
    lo: float | None = None,
    hi: float | None = None,
    above: float | None = None,
) -> None:
    if above is not None and not value > above:
        raise table.error(name, f"expected a number above {above:g}, got {value:g}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low = "-inf" if lo is None else f"{lo:g}"
        high = "inf" if hi is None else f"{hi:g}"
        raise table.error(name, f"expected a number in {low}..{high}, got {value:g}")


def _kind(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


_TOP_KEYS: Final = ("name", "description", "duration", "repeat", "patient", "pump", "dose", "event")
_PATIENT_KEYS: Final = (*VITAL_NAMES, "weight_kg", "ketamine_response")
_DOSE_KEYS: Final = ("at", "route", "mg", "mg_per_kg", "over")
_EVENT_KEYS: Final = ("at", "set", "shift", "ramp", "device", "action", "for", "code")


class _Compiler:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.duration_s = 0.0
        self.repeat = False

    def compile(self, document: Mapping[str, object]) -> ScenarioSpec:
        top = _Table(self.path, "", document, _TOP_KEYS)
        name = top.text("name") or self.path.stem
        if name != self.path.stem:
            raise top.error(
                "name", f"{name!r} differs from the file's name {self.path.name!r}; make them match"
            )
        description = top.text("description", required=True) or ""
        self.duration_s = top.duration("duration", required=True) or 0.0
        if not self.duration_s > 0:
            raise top.error("duration", "expected a duration above 0")
        self.repeat = top.boolean("repeat", False)
        baseline = self._baseline(_Table(self.path, "patient", top.data.get("patient", {}), _PATIENT_KEYS))
        pump = _Table(self.path, "pump", top.data.get("pump", {}), ("concentration_mg_per_ml",))
        concentration = pump.number("concentration_mg_per_ml", above=0) or DEFAULT_CONCENTRATION_MG_PER_ML

        steps: list[ScenarioStep] = []
        doses: list[Dose] = []
        infusions: list[tuple[str, Dose]] = []
        for index, entry in enumerate(top.tables("dose"), start=1):
            table = _Table(self.path, f"dose[{index}]", entry, _DOSE_KEYS)
            dose = self._dose(table, baseline.weight_kg)
            doses.append(dose)
            steps.append(dose)
            if dose.route == "iv-infusion":
                for other_key, other in infusions:
                    if dose.at < other.at + other.over_s and other.at < dose.at + dose.over_s:
                        raise table.error(
                            "at",
                            f"this infusion overlaps {other_key}'s; the simulated pump has one channel",
                        )
                infusions.append((table.where, dose))
                steps.extend(pump_actions(dose, concentration))
        for index, entry in enumerate(top.tables("event"), start=1):
            steps.extend(self._event(_Table(self.path, f"event[{index}]", entry, _EVENT_KEYS), baseline))

        steps.sort(key=lambda step: step.at)  # stable: steps at the same time keep the file's order
        scenario = Scenario(name, description, tuple(steps), self.duration_s if self.repeat else None)
        return ScenarioSpec(
            name=name,
            description=description,
            path=self.path,
            duration_s=self.duration_s,
            repeat=self.repeat,
            baseline=baseline,
            pump_concentration_mg_per_ml=concentration,
            doses=tuple(sorted(doses, key=lambda dose: dose.at)),
            device_actions=tuple(step for step in steps if isinstance(step, DeviceAction)),
            scenario=scenario,
        )

    def _baseline(self, table: _Table) -> Baseline:
        values: dict[str, float] = {}
        for vital in VITAL_NAMES:
            lo, hi = VITAL_RANGES[vital]
            value = table.number(vital, lo=lo, hi=hi)
            if value is not None:
                values[vital] = value
        weight = table.number("weight_kg", above=0, hi=400)
        if weight is not None:
            values["weight_kg"] = weight
        response = table.number("ketamine_response", lo=0, hi=10)
        if response is not None:
            values["ketamine_response"] = response
        baseline = Baseline(**values)
        if not baseline.diastolic < baseline.systolic:
            raise table.error(
                "diastolic", f"{baseline.diastolic:g} must be below systolic ({baseline.systolic:g})"
            )
        return baseline

    def _time(self, table: _Table, name: str, seconds: float, subject: str = "{} is") -> float:
        """`seconds` checked to lie within the scenario (before its end if it repeats).

        `subject` says what happens then, for the message: "{} is", "the infusion would end at {},".
        """
        end = format_duration(self.duration_s)
        when = subject.format(format_duration(seconds))
        if self.repeat and seconds >= self.duration_s:
            raise table.error(name, f"{when} not before the end of this repeating scenario ({end})")
        if seconds > self.duration_s:
            raise table.error(name, f"{when} after the end of the scenario ({end})")
        return seconds

    def _dose(self, table: _Table, weight_kg: float) -> Dose:
        at = self._time(table, "at", table.duration("at", required=True) or 0.0)
        try:
            route = parse_route(table.text("route", required=True) or "")
        except ValueError as exc:
            raise table.error("route", str(exc)) from None
        if route == "iv-infusion" and not table.has("over"):
            raise table.error("over", f"missing; an iv-infusion needs {_DURATION_HELP} to run for")
        if route != "iv-infusion" and table.has("over"):
            raise table.error("over", f"only an iv-infusion runs over time; a {route} dose is given at once")
        if table.has("mg") == table.has("mg_per_kg"):
            raise table.error("mg", "give exactly one of mg or mg_per_kg")
        if table.has("mg"):
            mg = table.number("mg", above=0) or 0.0
        else:
            mg = (table.number("mg_per_kg", above=0) or 0.0) * weight_kg
        over = table.duration("over") or 0.0
        if route == "iv-infusion":
            if not over > 0:
                raise table.error("over", "expected a duration above 0")
            self._time(table, "over", at + over, "the infusion would end at {},")
        return Dose(at, route, mg, over)

    def _event(self, table: _Table, baseline: Baseline) -> list[ScenarioStep]:
        at = self._time(table, "at", table.duration("at", required=True) or 0.0)
        changes_vitals = table.has("set") or table.has("shift")
        acts_on_device = table.has("device") or table.has("action")
        if changes_vitals and acts_on_device:
            raise table.error(
                "device", "an event either changes vitals (set, shift) or acts on a device, not both"
            )
        if changes_vitals:
            for name in ("for", "code"):
                if table.has(name):
                    raise table.error(name, "only for device events (device, action)")
            return self._vital_event(table, at)
        if acts_on_device:
            if table.has("ramp"):
                raise table.error("ramp", "only for events that change vitals (set, shift)")
            return self._device_event(table, at)
        raise table.error("at", "an event needs set or shift (vitals), or device and action")

    def _vital_event(self, table: _Table, at: float) -> list[ScenarioStep]:
        ramp = table.duration("ramp") or 0.0
        steps: list[ScenarioStep] = []
        for kind in ("set", "shift"):
            if not table.has(kind):
                continue
            changes = table.data[kind]
            if not isinstance(changes, dict) or not changes:
                raise table.error(
                    kind, f"expected a table of vitals like {{ spo2 = 91 }}, got {_kind(changes)}"
                )
            for vital_text, value in changes.items():
                key = f"{kind}.{vital_text}"
                try:
                    vital: VitalName = parse_vital(vital_text)
                except ValueError as exc:
                    raise table.error(key, str(exc)) from None
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise table.error(key, f"expected a number, got {_kind(value)}")
                if kind == "set":
                    lo, hi = VITAL_RANGES[vital]
                    _check_range(table, key, float(value), lo=lo, hi=hi)
                    steps.append(SetTarget(at, vital, float(value), ramp))
                else:
                    steps.append(ShiftFromBaseline(at, vital, float(value), ramp))
        return steps

    def _device_event(self, table: _Table, at: float) -> list[ScenarioStep]:
        device_text = table.text("device", required=True) or ""
        try:
            device = parse_device(device_text)
        except ValueError as exc:
            raise table.error("device", str(exc)) from None
        action = table.text("action", required=True) or ""
        scriptable = [name for name in DEVICE_ACTIONS[device] if name not in _GENERATED_ACTIONS]
        if action in _GENERATED_ACTIONS:
            raise table.error("action", f"{action} comes from an iv-infusion [[dose]]; do not script it")
        if action not in scriptable:
            raise table.error(
                "action", f"unknown {device} action {action!r}; expected one of {', '.join(scriptable)}"
            )
        args: dict[str, float] = {}
        if action == "nibp-error":
            code = table.require("code", f"a SunTech return code ({_codes()})")
            if isinstance(code, bool) or not isinstance(code, int) or code not in NIBP_ERROR_CODES:
                raise table.error("code", f"expected a SunTech return code ({_codes()}), got {_kind(code)}")
            args["code"] = code
        elif table.has("code"):
            raise table.error("code", "only for action nibp-error")
        steps: list[ScenarioStep] = [DeviceAction(at, device, action, args)]
        lasting = table.duration("for")
        if lasting is not None:
            reverse = REVERSE_ACTION.get(action)
            if reverse is None:
                undoable = ", ".join(name for name in scriptable if name in REVERSE_ACTION)
                raise table.error("for", f"{action} has no opposite to schedule; for works with {undoable}")
            if not lasting > 0:
                raise table.error("for", "expected a duration above 0")
            ends = self._time(table, "for", at + lasting, f"the {reverse} this schedules would come at {{}},")
            steps.append(DeviceAction(ends, device, reverse))
        return steps


def _codes() -> str:
    return ", ".join(str(code) for code in NIBP_ERROR_CODES)

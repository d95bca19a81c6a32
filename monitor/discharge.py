"""The discharge check: is the patient ready to leave the room, and if not, what is still missing.

Decision support, not a decision: the clinician discharges. Each criterion is one `Item` whose detail is
a plain sentence a nurse reads ("MOAA/S not recorded since dosing started at 14:05", "observation time:
37 min left"). The criteria, with their sources:

- vitals back near the pre-dose baseline and measured recently: systolic and diastolic within 20 mmHg
  (modified Aldrete "circulation": BP within 20 mmHg of the pre-anaesthetic level scores 2; Aldrete,
  J Clin Anesth 1995;7:89), pulse within 20 % of baseline [practice, unverified], SpO2 >= 94 % on room
  air (or >= baseline - 2 for a patient whose own baseline is low, never below 93 %: modified Aldrete
  asks > 92 % on room air) [practice, unverified]; "recent" is within 15 min [practice, unverified];
- MOAA/S 5, responds readily to name in a normal tone (Chernik 1990; see monitor.assessments);
- modified Aldrete score >= 9 (Aldrete 1995: "a score of 9 or greater allows the patient to leave");
- no active alarm in the room;
- minimum observation after the end of dosing: 2 hours after esketamine nasal spray (SPRAVATO label,
  clinical.md), otherwise DEFAULT_OBSERVATION_S (60 min after the end of dosing) [practice, unverified].

Pure: `now` and every time are epoch seconds passed in; clock times in the details are written in the
time zone passed in (the clinic's; UTC by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Final

from monitor import mdc

SYSTOLIC: Final = "systolic"
DIASTOLIC: Final = "diastolic"
PULSE: Final = "pulse"
SPO2: Final = "spo2"

#: Which measurements feed which vital sign (the caller takes the latest of each name).
VITAL_CODES: Final[dict[int, str]] = {
    mdc.NIBP_SYS.code: SYSTOLIC,
    mdc.NIBP_DIA.code: DIASTOLIC,
    mdc.PULSE_RATE.code: PULSE,
    mdc.HEART_RATE.code: PULSE,
    mdc.NIBP_PULSE_RATE.code: PULSE,
    mdc.SPO2.code: SPO2,
}

#: modified Aldrete "circulation" 2 points: BP within 20 mmHg of the pre-anaesthetic level (Aldrete 1995)
BP_TOLERANCE_MMHG: Final = 20.0
#: pulse within 20 % of baseline [practice, unverified; by analogy with the original Aldrete BP +-20 %]
PULSE_TOLERANCE_FRACTION: Final = 0.20
#: SpO2 on room air [practice, unverified]; never accept below the modified Aldrete "> 92 %"
SPO2_MIN_PERCENT: Final = 94.0
SPO2_FLOOR_PERCENT: Final = 93.0
SPO2_BELOW_BASELINE: Final = 2.0
#: how old the latest vital sign may be [practice, unverified]: the Emory/Yale cadence is 10-15 min
VITALS_RECENT_S: Final = 15 * 60.0
#: how old the latest MOAA/S or Aldrete may be, when its time is given [practice, unverified]: the
#: recovery schedule asks for MOAA/S every 15 min, plus 5 min grace and some slack
ASSESSMENT_RECENT_S: Final = 30 * 60.0

MOAAS_REQUIRED: Final = 5
MOAAS_NEED: Final = "needs 5 (responds readily to name spoken in normal tone)"
ALDRETE_REQUIRED: Final = 9
ALDRETE_NEED: Final = "needs 9 or more"
#: SPRAVATO label: observe at least 2 hours after administration (clinical.md)
ESKETAMINE_OBSERVATION_S: Final = 2 * 3600.0
#: after the end of racemic ketamine dosing, any route [practice, unverified; configure per protocol]
DEFAULT_OBSERVATION_S: Final = 60 * 60.0

DRUGS: Final[tuple[str, ...]] = ("ketamine", "esketamine")

#: The modified Aldrete score (Aldrete, J Clin Anesth 1995;7:89, replacing colour by SpO2), five items
#: scored 0-2; descriptions paraphrased, index = points.
ALDRETE_ITEMS: Final[dict[str, tuple[str, str, str]]] = {
    "activity": (
        "moves no extremity voluntarily or on command",
        "moves two extremities",
        "moves all four extremities",
    ),
    "respiration": ("apnoeic", "dyspnoea or limited breathing", "breathes deeply and coughs freely"),
    "circulation": (
        "BP more than 50 mmHg from pre-anaesthetic level",
        "BP 20-50 mmHg from pre-anaesthetic level",
        "BP within 20 mmHg of pre-anaesthetic level",
    ),
    "consciousness": ("not responding", "arousable on calling", "fully awake"),
    "oxygen_saturation": (
        "SpO2 < 90 % even with oxygen",
        "needs oxygen to keep SpO2 > 90 %",
        "SpO2 > 92 % on room air",
    ),
}


def aldrete_score(answers: Mapping[str, int]) -> int:
    """The modified Aldrete total (0-10) from the five items, each 0-2; ValueError if any is wrong."""
    unknown = sorted(set(answers) - set(ALDRETE_ITEMS))
    if unknown:
        raise ValueError(f"modified Aldrete: unknown item(s) {', '.join(map(str, unknown))}")
    missing = [name for name in ALDRETE_ITEMS if name not in answers]
    if missing:
        raise ValueError(f"modified Aldrete: missing {', '.join(missing)}")
    total = 0
    for name in ALDRETE_ITEMS:
        value = answers[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2:
            raise ValueError(f"modified Aldrete {name}: must be 0, 1 or 2, got {value!r}")
        total += value
    return total


@dataclass(frozen=True)
class Item:
    """One discharge criterion: met or not, and in words what was found or what is still missing."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DischargeCheck:
    """All criteria; `ok` only when every one is met."""

    ok: bool
    items: list[Item] = field(default_factory=list)


def _clock(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M")


def _minutes(seconds: float) -> int:
    """Whole minutes, rounded up: "1 min left" until the time has really passed."""
    return max(0, math.ceil(seconds / 60.0 - 1e-9))


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _reading(name: str, latest: Mapping[str, tuple[float, float]], now: float, tz: tzinfo) -> float | str:
    """The value of a recent reading, or a sentence saying what is missing."""
    if name not in latest:
        return f"{name} not measured"
    value, ts = latest[name]
    age = now - ts
    if age > VITALS_RECENT_S:
        return f"{name} last measured at {_clock(ts, tz)} ({_minutes(age)} min ago): measure again"
    return float(value)


def _blood_pressure(
    baseline: Mapping[str, float], latest: Mapping[str, tuple[float, float]], now: float, tz: tzinfo
) -> Item:
    problems: list[str] = []
    found: list[str] = []
    for name in (SYSTOLIC, DIASTOLIC):
        value = _reading(name, latest, now, tz)
        if isinstance(value, str):
            problems.append(value)
            continue
        base = baseline.get(name)
        if base is None:
            problems.append(f"no baseline {name} recorded before dosing")
            continue
        change = value - base
        if abs(change) > BP_TOLERANCE_MMHG:
            direction = "above" if change > 0 else "below"
            problems.append(
                f"{name} {_fmt(value)} is {_fmt(abs(change))} mmHg {direction} baseline {_fmt(base)} "
                f"(within {_fmt(BP_TOLERANCE_MMHG)} needed)"
            )
        else:
            found.append(f"{name} {_fmt(value)} (baseline {_fmt(base)})")
    if problems:
        return Item("Blood pressure", False, "; ".join(problems))
    return Item(
        "Blood pressure", True, ", ".join(found) + f": within {_fmt(BP_TOLERANCE_MMHG)} mmHg of baseline"
    )


def _pulse(
    baseline: Mapping[str, float], latest: Mapping[str, tuple[float, float]], now: float, tz: tzinfo
) -> Item:
    value = _reading(PULSE, latest, now, tz)
    if isinstance(value, str):
        return Item("Pulse", False, value)
    base = baseline.get(PULSE)
    if base is None or base <= 0:
        return Item("Pulse", False, "no baseline pulse recorded before dosing")
    low, high = base * (1 - PULSE_TOLERANCE_FRACTION), base * (1 + PULSE_TOLERANCE_FRACTION)
    if not low <= value <= high:
        return Item(
            "Pulse",
            False,
            f"pulse {_fmt(value)}/min, baseline {_fmt(base)}: "
            f"needs {_fmt(math.ceil(low))}-{_fmt(math.floor(high))}",
        )
    return Item("Pulse", True, f"pulse {_fmt(value)}/min (baseline {_fmt(base)})")


def _spo2(
    baseline: Mapping[str, float], latest: Mapping[str, tuple[float, float]], now: float, tz: tzinfo
) -> Item:
    value = _reading(SPO2, latest, now, tz)
    if isinstance(value, str):
        return Item("SpO2", False, value.replace("spo2", "SpO2"))
    threshold = SPO2_MIN_PERCENT
    base = baseline.get(SPO2)
    if base is not None:
        threshold = max(SPO2_FLOOR_PERCENT, min(SPO2_MIN_PERCENT, base - SPO2_BELOW_BASELINE))
    if value < threshold:
        return Item("SpO2", False, f"SpO2 {_fmt(value)} %: needs {_fmt(threshold)} % or more on room air")
    return Item("SpO2", True, f"SpO2 {_fmt(value)} %")


def _assessment(
    name: str,
    latest: int | tuple[int, float] | None,
    required: int,
    need: str,
    dosing_start: float | None,
    now: float,
    tz: tzinfo,
) -> Item:
    since = f" since dosing started at {_clock(dosing_start, tz)}" if dosing_start is not None else ""
    if latest is None:
        return Item(name, False, f"{name} not recorded{since}")
    if isinstance(latest, tuple):
        score, ts = latest
        if dosing_start is not None and ts < dosing_start:
            return Item(name, False, f"{name} not recorded{since}")
        if now - ts > ASSESSMENT_RECENT_S:
            return Item(
                name,
                False,
                f"{name} last recorded at {_clock(ts, tz)} ({_minutes(now - ts)} min ago): reassess",
            )
        when = f" at {_clock(ts, tz)}"
    else:
        score, when = latest, ""
    if score < required:
        return Item(name, False, f"{name} {score}{when}: {need}")
    return Item(name, True, f"{name} {score}{when}")


def _observation(
    now: float,
    dosing_start: float | None,
    dosing_end: float | None,
    routes_given: set[str],
    drug: str,
    min_observation_s: float | None,
    tz: tzinfo,
) -> Item:
    name = "Observation time"
    if dosing_start is None:
        return Item(name, True, "no dose given")
    if drug == "esketamine" and (min_observation_s is None or min_observation_s < ESKETAMINE_OBSERVATION_S):
        required, why = ESKETAMINE_OBSERVATION_S, "esketamine label"  # a protocol may lengthen it, not cut it
    elif min_observation_s is not None:
        required, why = min_observation_s, "clinic protocol"
    else:
        required, why = DEFAULT_OBSERVATION_S, "default"
    if dosing_end is None:
        if "iv-infusion" in routes_given:
            return Item(name, False, "end of the infusion not recorded: observation time cannot be counted")
        dosing_end = dosing_start
    end = max(dosing_end, dosing_start)
    left = end + required - now
    minutes = _minutes(required)
    if left > 0:
        return Item(
            name,
            False,
            f"observation time: {_minutes(left)} min left ({minutes} min after dosing ended at "
            f"{_clock(end, tz)}, {why})",
        )
    return Item(name, True, f"{minutes} min observed since dosing ended at {_clock(end, tz)} ({why})")


def discharge_check(
    *,
    now: float,
    session_start: float,
    dosing_start: float | None,
    routes_given: set[str],
    drug: str,
    baseline: dict[str, float],
    latest_vitals: dict[str, tuple[float, float]],
    latest_moaas: int | tuple[int, float] | None,
    latest_aldrete: int | tuple[int, float] | None,
    active_alarms: int,
    min_observation_s: float | None = None,
    dosing_end: float | None = None,
    tz: tzinfo = UTC,
) -> DischargeCheck:
    """Check every discharge criterion (see the module docstring) and say what is still missing.

    - `baseline` and `latest_vitals` are keyed by SYSTOLIC, DIASTOLIC, PULSE, SPO2 (VITAL_CODES maps MDC
      codes to these names); `latest_vitals` holds (value, ts).
    - `latest_moaas` / `latest_aldrete`: the score, or (score, ts) to also check it was taken after dosing
      started and within ASSESSMENT_RECENT_S.
    - `dosing_end`: the end of the last dose (an infusion's stop). Unknown for an infusion, the
      observation time cannot be counted; for other routes it defaults to `dosing_start`.
    - `min_observation_s` overrides the default observation time (ketamine: 60 min); for esketamine it can
      only lengthen the label's 2 hours.
    - `session_start` only guards against a `now` before the session; `tz` is for the clock times shown.
    """
    if drug not in DRUGS:
        raise ValueError(f"unknown drug {drug!r}; expected one of {', '.join(DRUGS)}")
    if now < session_start:
        raise ValueError(f"now ({now}) is before the session started ({session_start})")
    if min_observation_s is not None and (not math.isfinite(min_observation_s) or min_observation_s < 0):
        raise ValueError(f"min_observation_s must be >= 0 seconds, got {min_observation_s}")
    items = [
        _blood_pressure(baseline, latest_vitals, now, tz),
        _pulse(baseline, latest_vitals, now, tz),
        _spo2(baseline, latest_vitals, now, tz),
        _assessment("MOAA/S", latest_moaas, MOAAS_REQUIRED, MOAAS_NEED, dosing_start, now, tz),
        _assessment(
            "Modified Aldrete", latest_aldrete, ALDRETE_REQUIRED, ALDRETE_NEED, dosing_start, now, tz
        ),
        Item("Alarms", True, "no active alarm")
        if active_alarms <= 0
        else Item("Alarms", False, f"{active_alarms} alarm{'s' if active_alarms != 1 else ''} still active"),
        _observation(now, dosing_start, dosing_end, routes_given, drug, min_observation_s, tz),
    ]
    return DischargeCheck(ok=all(item.ok for item in items), items=items)

"""Dose arithmetic for a KAP session: mg <-> mg/kg, amendments, cumulative dose, ceilings, pump segments.

Pure functions over values the caller reads from the event log: no I/O, no clock (times are epoch
seconds passed in), the same inputs always give the same result.

Two ways a dose enters the record:
- manual: the nurse records what was given (a bolus, an IM injection, a lozenge, a hand-timed infusion);
- pump: the infusion pump's own stream (rate and volume infused) is cut into consecutive infusion
  segments by `pump_segments`; the mg follow the VOLUME the pump reports delivered, not rate x time,
  because volume is what reached the line (an occlusion keeps the rate but stops the volume).
Where a pump stream exists, its segments are the record of that infusion; a manual "iv-infusion" entry
for the same bag would count the drug twice (the caller decides which to use).

Amendments never overwrite: a correction is a new `Dose` that names the dose it replaces in `supersedes`;
both stay in the log, and `effective_doses` works out what counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from monitor import mdc
from monitor.model import Observation
from monitor.pk import ROUTES, DoseInput

#: Plausible adult weights for mg/kg arithmetic; outside this range the weight is more likely a typo (lb
#: for kg, a missing digit) than a patient.
MIN_WEIGHT_KG: Final = 20.0
MAX_WEIGHT_KG: Final = 300.0

#: Default per-session ceiling, total nominal mg/kg (all routes), above which a dose needs an explicit
#: confirmation. 1.0 mg/kg is twice the 0.5 mg/kg / 40 min depression regimen (Emory, PMID 29525051)
#: [practice, unverified]. Chronic-pain protocols go higher (ASRA/AAPM/ASA 2018: 0.35 mg/kg/h over 4 h =
#: 1.4 mg/kg), and sublingual lozenges are dosed in nominal mg well above 1 mg/kg because only ~30 % is
#: absorbed: such clinics set their own ceiling per protocol. It asks for confirmation, it never blocks.
DEFAULT_SESSION_CEILING_MG_PER_KG: Final = 1.0

SOURCES: Final[tuple[str, ...]] = ("manual", "pump")

#: amounts this close are equal (doses are entered to 0.1 mg; this only absorbs float round-off)
_MG_EPSILON: Final = 1e-6


def _check_weight(weight_kg: float) -> float:
    if not isinstance(weight_kg, int | float) or isinstance(weight_kg, bool) or not math.isfinite(weight_kg):
        raise ValueError(f"weight must be a number of kg, got {weight_kg!r}")
    if not MIN_WEIGHT_KG <= weight_kg <= MAX_WEIGHT_KG:
        raise ValueError(
            f"weight {weight_kg:g} kg is outside {MIN_WEIGHT_KG:g}-{MAX_WEIGHT_KG:g} kg: "
            "check the weight (kg, not lb)"
        )
    return float(weight_kg)


def _check_positive(value: float, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be greater than 0, got {value:g}")
    return float(value)


def mg_per_kg(mg: float, weight_kg: float) -> float:
    """The dose `mg` expressed per kg of body weight (weight 20-300 kg, dose > 0, else ValueError)."""
    return _check_positive(mg, "dose (mg)") / _check_weight(weight_kg)


def mg_from_mg_per_kg(mg_per_kg_dose: float, weight_kg: float) -> float:
    """The mg for a weight-based dose: 0.5 mg/kg for 70 kg is 35 mg (same validation as mg_per_kg)."""
    return _check_positive(mg_per_kg_dose, "dose (mg/kg)") * _check_weight(weight_kg)


@dataclass(frozen=True)
class Dose:
    """One dose in the session record, as recorded: never edited, only superseded.

    `ts` is when the dose was given (an infusion's start), epoch s; `mg` the nominal amount (before
    bioavailability); `duration_s` the infusion's length (0 for every other route). `supersedes` names the
    `dose_id` this entry corrects; an amendment with mg = 0 voids a dose entered in error.
    `confirmed_over_limit` records that the clinician confirmed a dose `check_dose` questioned.
    """

    dose_id: str
    ts: float
    route: str
    mg: float
    duration_s: float = 0.0
    source: str = "manual"
    supersedes: str | None = None
    author: str = ""
    confirmed_over_limit: bool = False

    def __post_init__(self) -> None:
        if not self.dose_id:
            raise ValueError("a dose needs a dose_id")
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; expected one of {', '.join(ROUTES)}")
        if not math.isfinite(self.ts):
            raise ValueError(f"dose {self.dose_id}: time must be finite, got {self.ts}")
        if not math.isfinite(self.mg) or self.mg < 0:
            raise ValueError(f"dose {self.dose_id}: mg must be a non-negative number, got {self.mg}")
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ValueError(f"dose {self.dose_id}: duration_s must be >= 0, got {self.duration_s}")
        if self.route != "iv-infusion" and self.duration_s != 0:
            raise ValueError(f"dose {self.dose_id}: only an iv-infusion has a duration; {self.route} takes 0")
        if self.source not in SOURCES:
            raise ValueError(f"dose {self.dose_id}: source must be 'manual' or 'pump', got {self.source!r}")
        if self.supersedes == self.dose_id:
            raise ValueError(f"dose {self.dose_id} cannot supersede itself")


@dataclass(frozen=True)
class Amendments:
    """How amendments resolve: what counts, what was replaced by what, and what could not be resolved.

    `dangling` are amendments whose `supersedes` names no dose in the log (typo, or the original not yet
    received): they are kept in `effective` (a dose given must never silently vanish) and listed here so
    a screen can flag them for review.
    """

    effective: list[Dose]
    replaced_by: dict[str, str] = field(default_factory=dict)
    dangling: list[Dose] = field(default_factory=list)


def resolve_amendments(doses: Iterable[Dose]) -> Amendments:
    """Work out which recorded doses count, given `doses` in the order they were recorded.

    - A dose naming `supersedes=X` replaces X; chains resolve to their last link (C supersedes B
      supersedes A -> C counts).
    - Two amendments of the same dose (two people correcting at once): the one recorded last wins; the
      other is treated as replaced by it, so the dose is never counted twice.
    - A repeated dose_id (the same event delivered twice) counts once: the first recording is kept.
    - A cycle of supersedes (not producible by a correct client) resolves to the member recorded last.
    - An amendment of an unknown id is kept and reported in `dangling`.
    Effective doses come back in time order (ties in recording order).
    """
    recorded: list[Dose] = []
    by_id: dict[str, Dose] = {}
    for dose in doses:
        if dose.dose_id not in by_id:
            by_id[dose.dose_id] = dose
            recorded.append(dose)
    position = {dose.dose_id: index for index, dose in enumerate(recorded)}

    def root_of(dose: Dose) -> str:
        seen = {dose.dose_id}
        current = dose
        while current.supersedes is not None and current.supersedes in by_id:
            if current.supersedes in seen:  # a cycle: name it by its earliest-recorded member
                return min(seen, key=position.__getitem__)
            seen.add(current.supersedes)
            current = by_id[current.supersedes]
        return current.dose_id

    groups: dict[str, list[Dose]] = {}
    for dose in recorded:
        groups.setdefault(root_of(dose), []).append(dose)

    effective: list[Dose] = []
    replaced_by: dict[str, str] = {}
    for members in groups.values():
        superseded_in_group = {m.supersedes for m in members if m.supersedes is not None}
        leaves = [m for m in members if m.dose_id not in superseded_in_group] or members
        winner = max(leaves, key=lambda m: position[m.dose_id])
        effective.append(winner)
        for member in members:
            if member is not winner:
                replaced_by[member.dose_id] = winner.dose_id
    effective.sort(key=lambda d: (d.ts, position[d.dose_id]))
    dangling = [d for d in recorded if d.supersedes is not None and d.supersedes not in by_id]
    return Amendments(effective=effective, replaced_by=replaced_by, dangling=dangling)


def effective_doses(doses: Iterable[Dose]) -> list[Dose]:
    """The doses that count after amendments, in time order (see `resolve_amendments` for the rules)."""
    return resolve_amendments(doses).effective


def dose_inputs(doses: Iterable[Dose]) -> list[DoseInput]:
    """The effective doses as inputs for the concentration ESTIMATE (monitor.pk)."""
    return [DoseInput(d.ts, d.route, d.mg, d.duration_s) for d in effective_doses(doses) if d.mg > 0]


def _given_by(dose: Dose, until: float | None) -> float:
    """mg of `dose` given by `until`: an infusion pro rata of its elapsed time, any other dose at its ts."""
    if until is None:
        return dose.mg
    if until < dose.ts:
        return 0.0
    if dose.route == "iv-infusion" and dose.duration_s > 0:
        return dose.mg * min(1.0, (until - dose.ts) / dose.duration_s)
    return dose.mg


def cumulative(doses: Iterable[Dose], weight_kg: float, until: float | None = None) -> tuple[float, float]:
    """Total nominal dose (mg, mg/kg) of the effective doses given by `until` (None: all of them).

    Amendments are resolved first. An infusion counts pro rata up to `until`; a dose at exactly `until`
    counts. Nominal means before bioavailability: 100 mg sublingual counts 100 mg, as prescribed.
    """
    weight = _check_weight(weight_kg)
    total = sum(_given_by(dose, until) for dose in effective_doses(doses))
    return total, total / weight


def _fmt(value: float) -> str:
    """A dose figure for a sentence: 35, 5.5, 0.07 (no trailing zeros)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def check_dose(
    new_mg: float,
    given_mg: float,
    planned_mg: float | None,
    ceiling_mg_per_kg: float | None,
    weight_kg: float,
) -> list[str]:
    """Reasons to ask the clinician to confirm giving `new_mg` on top of `given_mg`; [] means none.

    - The plan: the session total would exceed `planned_mg` (None: no plan recorded, not checked).
    - The ceiling: the session total would exceed `ceiling_mg_per_kg` (None: the default,
      DEFAULT_SESSION_CEILING_MG_PER_KG; a ceiling is always checked).
    The reasons read as sentences a nurse sees: "exceeds the planned dose of 35 mg by 5 mg".
    """
    new = _check_positive(new_mg, "the new dose (mg)")
    weight = _check_weight(weight_kg)
    if not isinstance(given_mg, int | float) or not math.isfinite(given_mg) or given_mg < 0:
        raise ValueError(f"the dose already given must be a number >= 0 mg, got {given_mg!r}")
    ceiling = DEFAULT_SESSION_CEILING_MG_PER_KG if ceiling_mg_per_kg is None else ceiling_mg_per_kg
    _check_positive(ceiling, "the ceiling (mg/kg)")
    total = given_mg + new
    reasons: list[str] = []
    if planned_mg is not None:
        plan = _check_positive(planned_mg, "the planned dose (mg)")
        if total > plan + _MG_EPSILON:
            reasons.append(f"exceeds the planned dose of {_fmt(plan)} mg by {_fmt(total - plan)} mg")
    ceiling_mg = ceiling * weight
    if total > ceiling_mg + _MG_EPSILON:
        reasons.append(
            f"exceeds the ceiling of {ceiling:.1f} mg/kg ({_fmt(ceiling_mg)} mg for {_fmt(weight)} kg): "
            f"the session total would be {_fmt(total)} mg, {total / weight:.2f} mg/kg"
        )
    return reasons


# --- pump-derived segments ------------------------------------------------------------------------------

_RATE: Final = mdc.INFUSION_RATE.code
_VOLUME: Final = mdc.VOLUME_INFUSED.code


@dataclass
class _Segment:
    start: float
    rate_ml_h: float
    end: float | None = None
    volume_ml: float = 0.0


def _usable(obs: Observation) -> bool:
    return (
        obs.code in (_RATE, _VOLUME)
        and obs.valid
        and obs.value is not None
        and math.isfinite(obs.value)
        and obs.value >= 0
        and math.isfinite(obs.ts)
    )


def _device_segments(stream: list[Observation], has_volume: bool) -> list[_Segment]:
    segments: list[_Segment] = []
    running: _Segment | None = None
    last_volume: float | None = None
    for obs in stream:
        value = float(obs.value or 0.0)
        if obs.code == _VOLUME:
            if last_volume is not None:
                # a counter that went down was reset: what it shows now was delivered since the reset
                delivered = value - last_volume if value >= last_volume else value
                target = running or (segments[-1] if segments else None)
                if target is not None:
                    target.volume_ml += delivered
                # volume seen before any run is priming or a previous bag: not this patient's dose
            last_volume = value
            continue
        if running is not None and value == running.rate_ml_h:
            continue
        if running is not None:
            running.end = obs.ts
            segments.append(running)
            running = None
        if value > 0:
            running = _Segment(start=obs.ts, rate_ml_h=value)
    if running is not None:  # still running at the end of the stream: open segment up to the last sample
        running.end = stream[-1].ts
        segments.append(running)
    if not has_volume:  # a pump that never reports volume: fall back to rate x time
        for segment in segments:
            segment.volume_ml = segment.rate_ml_h * ((segment.end or segment.start) - segment.start) / 3600.0
    return segments


def pump_segments(observations: Sequence[Observation], concentration_mg_ml: float) -> list[Dose]:
    """Infusion segments (source "pump") from a recorded pump stream: what the pump actually delivered.

    Reads INFUSION_RATE (mL/h) and VOLUME_INFUSED (mL) observations; anything else, and invalid or
    missing values, are skipped. Each device is handled on its own (normally there is one pump).
    - A segment starts when the rate goes from 0 to > 0, and each rate change starts a new one; it ends
      at the next change, at a rate of 0 (stop or pause), or, still running, at the stream's last sample
      (an open segment; recomputing later extends it).
    - mg = volume delivered during the segment x `concentration_mg_ml`. Volume increments are credited to
      the segment running when the sample arrives (at equal times a volume sample is read before a rate
      change, so it closes the old segment), else to the last segment: volume that grows after a stop
      was still delivered, and under-counting a dose is the worse error.
    - A volume counter that goes back down was reset: no negative mg; the new reading counts from 0.
    - No volume observations at all from a device: mg fall back to rate x time (better than counting 0).
    dose_id is "pump:<device>:<start in ms>", stable as the stream grows, so an amendment can supersede it.
    Segments with no duration and no volume (a run that started at the very last sample) are left out.
    """
    concentration = _check_positive(concentration_mg_ml, "the concentration (mg/mL)")
    by_device: dict[str, list[tuple[int, Observation]]] = {}
    for index, obs in enumerate(observations):
        if _usable(obs):
            by_device.setdefault(obs.device, []).append((index, obs))
    doses: list[Dose] = []
    for device in sorted(by_device):
        # time order; at one time the volume first (it belongs to the segment that is ending)
        stream = [
            o for _, o in sorted(by_device[device], key=lambda p: (p[1].ts, p[1].code != _VOLUME, p[0]))
        ]
        has_volume = any(o.code == _VOLUME for o in stream)
        for segment in _device_segments(stream, has_volume):
            end = segment.end if segment.end is not None else segment.start
            if end <= segment.start and segment.volume_ml <= 0:
                continue
            doses.append(
                Dose(
                    dose_id=f"pump:{device}:{round(segment.start * 1000)}",
                    ts=segment.start,
                    route="iv-infusion",
                    mg=max(0.0, segment.volume_ml) * concentration,
                    duration_s=end - segment.start,
                    source="pump",
                )
            )
    doses.sort(key=lambda d: (d.ts, d.dose_id))
    return doses

"""Scheduled bedside assessments of a KAP session: the scales, their validation, and what is due now.

Three scales (../shared/reference/clinical.md, "Assessment scales"):
- pain NRS 0-10, the numeric rating scale (0 no pain, 10 worst pain imaginable);
- MOAA/S 5..0, the Modified Observer's Assessment of Alertness/Sedation (Chernik et al., J Clin
  Psychopharmacol 1990;10:244, as modified in sedation trials), to catch sedation deeper than intended;
- CADSS-6, the six-item short form of the 23-item Clinician-Administered Dissociative States Scale
  (Bremner et al., J Trauma Stress 1998;11:125): items 1, 2, 6, 7, 15 and 22, each 0-4, total 0-24
  (Rodrigues et al., "A simplified 6-item CADSS (CADSS-6) for monitoring dissociative effects of
  sub-anesthetic ketamine infusions", J Affect Disord 2021 [journal and year unverified]; correlates
  0.91-0.95 with the full scale).

The schedule is relative to the session's dosing start. The default is configurable practice, not a rule.
Pure functions: no clock; `now` and every time are epoch seconds passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

PAIN_NRS: Final = "pain_nrs"
MOAAS: Final = "moaas"
CADSS6: Final = "cadss6"
KINDS: Final[tuple[str, ...]] = (PAIN_NRS, MOAAS, CADSS6)


@dataclass(frozen=True)
class ScaleItem:
    """One question of a scale: its answer key, text, and the labels of each score from `low` up."""

    key: str
    text: str
    low: int
    high: int
    anchors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scale:
    """A bedside scale: the score is the sum of its items."""

    kind: str
    name: str
    items: tuple[ScaleItem, ...]
    source: str

    @property
    def low(self) -> int:
        return sum(item.low for item in self.items)

    @property
    def high(self) -> int:
        return sum(item.high for item in self.items)


#: MOAA/S labels, index = score (0..5), as printed in sedation trials (e.g. BMC Anesthesiol 2022,
#: doi 10.1186/s12871-022-01788-1, Table 2, after Chernik 1990).
MOAAS_LABELS: Final[tuple[str, ...]] = (
    "Does not respond to painful trapezius squeeze",
    "Responds only after painful trapezius squeeze",
    "Responds only after mild prodding or shaking",
    "Responds only after name is called loudly and/or repeatedly",
    "Lethargic response to name spoken in normal tone",
    "Responds readily to name spoken in normal tone (alert)",
)

#: CADSS rating anchors 0-4 [unverified: as commonly reproduced; check the licensed form].
CADSS_ANCHORS: Final[tuple[str, ...]] = ("Not at all", "Slightly", "Moderately", "Considerably", "Extremely")

#: The six CADSS-6 items. The texts are our PARAPHRASES of Bremner 1998, not the instrument's wording:
#: clinicians rate from the published form. Items 1-19 of the CADSS are the patient's answers "at this
#: time, in this room"; item 22 is one of the clinician-observed items, whose wording we could not verify.
CADSS6_ITEMS: Final[tuple[ScaleItem, ...]] = (
    ScaleItem("cadss_1", "Item 1 (paraphrase): things seem to move in slow motion", 0, 4, CADSS_ANCHORS),
    ScaleItem("cadss_2", "Item 2 (paraphrase): things seem unreal, as if in a dream", 0, 4, CADSS_ANCHORS),
    ScaleItem("cadss_6", "Item 6 (paraphrase): feels disconnected from own body", 0, 4, CADSS_ANCHORS),
    ScaleItem(
        "cadss_7",
        "Item 7 (paraphrase): sense of own body changed (unusually large or small)",
        0,
        4,
        CADSS_ANCHORS,
    ),
    ScaleItem(
        "cadss_15", "Item 15 (paraphrase): spaces out, loses track of what is going on", 0, 4, CADSS_ANCHORS
    ),
    ScaleItem(
        "cadss_22",
        "Item 22 (observer-rated; wording unverified): use the published form",
        0,
        4,
        CADSS_ANCHORS,
    ),
)

SCALES: Final[dict[str, Scale]] = {
    PAIN_NRS: Scale(
        PAIN_NRS,
        "Pain NRS",
        (ScaleItem("pain", "Pain now, 0 (no pain) to 10 (worst pain imaginable)", 0, 10),),
        "numeric rating scale 0-10",
    ),
    MOAAS: Scale(
        MOAAS,
        "MOAA/S",
        (ScaleItem("moaas", "Responsiveness (MOAA/S)", 0, 5, MOAAS_LABELS),),
        "Chernik et al., J Clin Psychopharmacol 1990;10:244 (modified)",
    ),
    CADSS6: Scale(
        CADSS6,
        "CADSS-6",
        CADSS6_ITEMS,
        "Bremner et al., J Trauma Stress 1998;11:125; short form: Rodrigues et al., J Affect Disord 2021",
    ),
}


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a whole number, got {value!r}")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{where}: expected a whole number, got {value!r}")
    return int(value)


def validate(kind: str, answers: Mapping[str, int] | int) -> int:
    """The score of one completed assessment, or ValueError saying exactly what is wrong.

    `answers` maps each item key of the scale (SCALES[kind].items) to its score; a single-item scale
    (pain NRS, MOAA/S) also takes the bare score. Every item must be answered, nothing else may be.
    """
    scale = SCALES.get(kind)
    if scale is None:
        raise ValueError(f"unknown assessment {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(answers, Mapping):
        if len(scale.items) != 1:
            raise ValueError(f"{scale.name} has {len(scale.items)} items: give a score for each item by key")
        answers = {scale.items[0].key: answers}
    keys = {item.key for item in scale.items}
    unknown = sorted(set(answers) - keys)
    if unknown:
        raise ValueError(f"{scale.name}: unknown item(s) {', '.join(map(str, unknown))}")
    missing = [item.key for item in scale.items if item.key not in answers]
    if missing:
        raise ValueError(f"{scale.name}: missing answer(s) for {', '.join(missing)}")
    total = 0
    for item in scale.items:
        score = _integer(answers[item.key], f"{scale.name} {item.key}")
        if not item.low <= score <= item.high:
            raise ValueError(f"{scale.name} {item.key}: {score} is outside {item.low}-{item.high}")
        total += score
    return total


# --- schedule ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleRule:
    """Assess `kind` at dosing start + `from_s`, then every `every_s` up to `until_s` (seconds).

    `every_s` = 0 gives a single slot; `until_s` None runs until the session ends. A slot is due from its
    time and overdue `grace_s` after it; an entry up to `grace_s` early counts for it. `before_dosing`
    marks a pre-dose assessment: it is due from the session's start, before dosing has started, any
    entry of its kind counts (a late one too: it stays listed as overdue until one is recorded).
    """

    kind: str
    every_s: float
    from_s: float
    until_s: float | None
    grace_s: float
    label: str = ""
    before_dosing: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SCALES:
            raise ValueError(f"unknown assessment {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.every_s < 0 or self.grace_s < 0:
            raise ValueError("every_s and grace_s must not be negative")
        if self.until_s is not None and self.until_s < self.from_s:
            raise ValueError(f"until_s ({self.until_s}) is before from_s ({self.from_s})")


@dataclass(frozen=True)
class Due:
    """An assessment to do now: `due_at` is the slot's time (None: before dosing, not started yet)."""

    kind: str
    due_at: float | None
    state: Literal["due", "overdue"]
    label: str


#: Grace after a slot before it is overdue [practice, unverified].
DEFAULT_GRACE_S: Final = 5 * 60.0
#: Assessment interval during dosing and recovery [practice, unverified]: the Emory/Yale IV protocols
#: take BP every 10-15 min (clinical.md, "Monitoring cadence"); assessments follow the same rhythm.
DEFAULT_INTERVAL_S: Final = 15 * 60.0


def default_schedule(dosing_window_s: float = 60 * 60.0) -> tuple[ScheduleRule, ...]:
    """The default protocol [practice, unverified; configure per clinic]:

    - pain NRS before dosing, and once at the end of the dosing window (the change is the outcome that
      matters for chronic pain);
    - MOAA/S and CADSS-6 every 15 min during the dosing window (15, 30, ... min after dosing start: the
      0-min state is the pre-dose baseline);
    - MOAA/S every 15 min during recovery, until discharge.
    `dosing_window_s` is 60 min for the 0.5 mg/kg / 40 min regimen; a 4-h pain infusion passes 4 h.
    """
    step, grace, end = DEFAULT_INTERVAL_S, DEFAULT_GRACE_S, dosing_window_s
    return (
        ScheduleRule(PAIN_NRS, 0.0, 0.0, 0.0, grace, "Pain NRS before dosing", before_dosing=True),
        ScheduleRule(PAIN_NRS, 0.0, end, end, grace, "Pain NRS at end of dosing"),
        ScheduleRule(MOAAS, step, step, end, grace, "MOAA/S"),
        ScheduleRule(CADSS6, step, step, end, grace, "CADSS-6"),
        ScheduleRule(MOAAS, step, end + step, None, grace, "MOAA/S (recovery)"),
    )


DEFAULT_SCHEDULE: Final[tuple[ScheduleRule, ...]] = default_schedule()


def _slot_label(rule: ScheduleRule, offset_s: float) -> str:
    name = rule.label or SCALES[rule.kind].name
    if rule.before_dosing or rule.every_s == 0:
        return name
    return f"{name} at {round(offset_s / 60)} min"


def _current_slot(rule: ScheduleRule, elapsed_s: float) -> tuple[float, float] | None:
    """(offset of the latest slot that has started, offset where its window closes), or None."""
    if elapsed_s < rule.from_s:
        return None
    if rule.every_s == 0:
        return rule.from_s, math.inf
    index = math.floor((elapsed_s - rule.from_s) / rule.every_s + 1e-9)
    if rule.until_s is not None:
        index = min(index, math.floor((rule.until_s - rule.from_s) / rule.every_s + 1e-9))
    offset = rule.from_s + index * rule.every_s
    return offset, offset + rule.every_s


def due_assessments(
    rules: Sequence[ScheduleRule],
    dosing_start: float | None,
    done: Sequence[tuple[str, float]],
    now: float,
) -> list[Due]:
    """The assessments to do now, "due" from their slot time and "overdue" from slot + grace.

    Only the latest slot of each rule that has started is considered: once the next slot starts, a
    missed one stops being listed (the nurse does the current one; the record shows the gap). The last
    slot of a periodic rule stays open one interval; a single-slot rule stays open until done. A slot is
    satisfied by an entry of its kind in [slot - grace, next slot). Future slots are never listed.
    Before dosing has started (`dosing_start` None) only pre-dose rules can be due. Sorted by slot time,
    then in the order of `rules`.
    """
    result: list[Due] = []
    for rule in rules:
        entries = [ts for kind, ts in done if kind == rule.kind]
        if rule.before_dosing:
            slot = None if dosing_start is None else dosing_start + rule.from_s
            if entries:
                continue
            if slot is not None and now >= slot + rule.grace_s:
                result.append(Due(rule.kind, slot, "overdue", _slot_label(rule, rule.from_s)))
            else:
                result.append(Due(rule.kind, slot, "due", _slot_label(rule, rule.from_s)))
            continue
        if dosing_start is None:
            continue
        window = _current_slot(rule, now - dosing_start)
        if window is None:
            continue
        offset, closes = window
        slot = dosing_start + offset
        if now >= dosing_start + closes:
            continue  # the last slot's window has closed
        if any(slot - rule.grace_s <= ts < dosing_start + closes for ts in entries):
            continue
        state: Literal["due", "overdue"] = "overdue" if now >= slot + rule.grace_s else "due"
        result.append(Due(rule.kind, slot, state, _slot_label(rule, offset)))
    result.sort(key=lambda d: -math.inf if d.due_at is None else d.due_at)  # stable: ties keep rule order
    return result

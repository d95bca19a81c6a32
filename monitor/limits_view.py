"""The alarm limits in force in a room's session: the profile's, and what a supervisor changed for it.

The core's engine starts every session from the clinic's profile and applies each `limit_change` event
of the session from then on; this view reads the same events, so the limits a page shows are the ones
the engine uses (both come from the event log).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.alarm_profile import AlarmProfile, ThresholdRule
from monitor.model import ClinicalEvent

#: a limit must lie in its metric's plausible range (a typo such as 900 for 90 is refused, not applied)
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "%": (50.0, 100.0),
    "/min": (20.0, 250.0),
    "mm[Hg]": (30.0, 260.0),
}
#: a limit relative to the baseline is a change of at most this much either way
PLAUSIBLE_DELTA = 100.0


@dataclass(frozen=True, slots=True)
class LimitRow:
    rule_id: str
    #: "SpO2 below 92 % for 15 s (medium)"
    label: str
    limit: float
    unit: str
    #: "92 %" or "+40 mmHg over baseline"
    current: str
    #: "" while the profile's limit holds, else who changed it, when, and from what
    changed: str


def _unit(rule: ThresholdRule) -> str:
    return rule.metric.unit.replace("mm[Hg]", "mmHg")


def _amount(rule: ThresholdRule, limit: float) -> str:
    if rule.relative_to_baseline:
        return f"{limit:+g} {_unit(rule)} over baseline"
    return f"{limit:g} {_unit(rule)}"


def limit_rows(profile: AlarmProfile, changes: Sequence[ClinicalEvent]) -> tuple[LimitRow, ...]:
    """Each physiological rule of the profile with the limit in force after `changes` (oldest first)."""
    latest: dict[str, ClinicalEvent] = {}
    for change in changes:
        if change.type == "limit_change" and change.limit is not None and math.isfinite(change.limit):
            latest[change.rule] = change
    rows = []
    for rule in profile.rules:
        change = latest.get(rule.id)
        limit = float(change.limit) if change is not None and change.limit is not None else rule.limit
        delay = f" for {rule.delay_s:g} s" if rule.delay_s else ""
        label = f"{rule.metric.label} {rule.comparison} {_amount(rule, rule.limit)}{delay} ({rule.priority})"
        changed = ""
        if change is not None:
            at = datetime.fromtimestamp(change.ts).strftime("%H:%M")
            changed = f"set by {change.author} at {at} (profile: {_amount(rule, rule.limit)})"
        rows.append(LimitRow(rule.id, label, limit, _unit(rule), _amount(rule, limit), changed))
    return tuple(rows)


def check_limit(profile: AlarmProfile, rule_id: str, value: object) -> float:
    """The new limit for `rule_id` as a number, or ValueError saying why it cannot be used."""
    rule = next((r for r in profile.rules if r.id == rule_id), None)
    if rule is None:
        raise ValueError(f"no alarm rule {rule_id!r} in the profile {profile.name}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{rule.metric.label}: type a number for the new limit")
    low, high = (
        (-PLAUSIBLE_DELTA, PLAUSIBLE_DELTA)
        if rule.relative_to_baseline
        else PLAUSIBLE.get(rule.metric.unit, (-math.inf, math.inf))
    )
    if not low <= value <= high:
        raise ValueError(
            f"{rule.metric.label}: {value:g} {_unit(rule)} is outside {low:g} to {high:g}; nothing changed"
        )
    return float(value)

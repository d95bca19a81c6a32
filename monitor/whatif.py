"""What-if: how many alarms would recorded sessions have raised with other limits and delays?

The alarm-fatigue analysis clinics tune their limits with (PMC4891882 re-ran recorded SpO2 through
other limits and delays the same way): the pure alarm engine is run again over each session's recorded
log, with the time the core received each event, under a changed profile, and the alarms it raises are
counted per rule against the alarms the session really raised (the transitions stored live). With the
profile the core ran, the re-run reproduces the recorded alarms exactly (monitor.alarm_runner).

Two choices, so the counts mean what a clinic expects:
- Recorded limit changes (a nurse setting spo2_low to 90 during the session) still apply from when they
  were made: the what-if changes the profile's defaults, not what the staff did.
- An acknowledgement names an alarm by its id, which holds its activation time; under other settings an
  alarm starts at another time and has another id. A recorded acknowledgement of an alarm the re-run never
  raised acknowledges the re-run's open alarm of the same condition instead, as the nurse would have.

Counts are distinct alarms (activations), per condition: a rule id (`spo2_low`), a technical condition
(`sensor_off`, `device_offline`, `stale:oximeter`) or a clinical alert (`side_effect:nausea`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from monitor.alarm_profile import AlarmProfile, TechnicalPolicy
from monitor.alarm_runner import AlarmRunner, EngineEvent
from monitor.conditions import CONDITION_TEXT
from monitor.model import AlarmTransition, ClinicalEvent
from monitor.store import EventLog, SessionRecord

#: what `--set RULE.FIELD=VALUE` may change: a threshold rule's limit, delay and hysteresis, and a
#: technical condition's delay
RULE_FIELDS: Final = ("limit", "delay", "hysteresis")
TECHNICAL_FIELDS: Final = ("delay",)
TECHNICAL_CONDITIONS: Final = (*sorted(CONDITION_TEXT), "device_offline")
_SETTING = re.compile(r"\s*([a-z][a-z0-9_]*)\.([a-z_]+)\s*=\s*(\S+)\s*")


@dataclass(frozen=True, slots=True)
class Setting:
    target: str  # a rule id or a technical condition
    field: str  # "limit" | "delay" | "hysteresis"
    value: float

    def __str__(self) -> str:
        return f"{self.target}.{self.field}={self.value:g}"


def parse_setting(text: str) -> Setting:
    """`spo2_low.limit=90`, `spo2_low.delay=30`, `sensor_off.delay=30`. Raises ValueError."""
    match = _SETTING.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r}: expected RULE.FIELD=NUMBER, e.g. spo2_low.limit=90 or spo2_low.delay=30")
    target, field_name, raw = match.groups()
    field_name = {"delay_s": "delay"}.get(field_name, field_name)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{text!r}: {raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r}: {raw!r} is not a finite number")
    return Setting(target, field_name, value)


def apply_settings(profile: AlarmProfile, settings: Iterable[Setting]) -> AlarmProfile:
    """The profile with the settings applied. Raises ValueError naming what cannot be set."""
    rules = {rule.id: rule for rule in profile.rules}
    technical = dict(profile.technical.entries)
    for s in settings:
        if s.target in rules:
            if s.field not in RULE_FIELDS:
                raise ValueError(f"{s}: a rule has {', '.join(RULE_FIELDS)}, not {s.field!r}")
            if s.field in ("delay", "hysteresis") and s.value < 0:
                raise ValueError(f"{s}: the {s.field} must not be negative")
            name = {"delay": "delay_s"}.get(s.field, s.field)
            rules[s.target] = dataclasses.replace(rules[s.target], **{name: s.value})
        elif s.target in TECHNICAL_CONDITIONS:
            if s.field not in TECHNICAL_FIELDS:
                raise ValueError(f"{s}: a technical condition has only a delay, not {s.field!r}")
            if s.value < 0:
                raise ValueError(f"{s}: the delay must not be negative")
            policy = profile.technical.policy(s.target)
            technical[s.target] = TechnicalPolicy(policy.priority, s.value)
        else:
            raise ValueError(
                f"{s}: no rule or technical condition {s.target!r}; rules: {', '.join(rules)}"
                f"; technical conditions: {', '.join(TECHNICAL_CONDITIONS)}"
            )
    return dataclasses.replace(
        profile,
        rules=tuple(rules.values()),
        technical=dataclasses.replace(profile.technical, entries=tuple(sorted(technical.items()))),
    )


# --- re-running sessions ---------------------------------------------------------------------------------


def rerun_session(store: EventLog, record: SessionRecord, profile: AlarmProfile) -> list[AlarmTransition]:
    """Every transition the engine raises over the session's log under `profile`, up to the session's last
    recorded event or alarm."""
    recorded = store.alarm_log(record.id)
    condition_of = {t.id: t.condition for t in recorded}
    runner = AlarmRunner(profile)
    out: list[AlarmTransition] = []
    raised: set[str] = set()
    last = record.started_at
    log: Iterator[tuple[float, EngineEvent]] = store.log(record.site, record.room, session_id=record.id)  # type: ignore[assignment]
    for received_at, event in log:
        if isinstance(event, ClinicalEvent) and event.type == "alarm_ack" and event.alarm_id not in raised:
            event = _same_condition_ack(runner, event, condition_of.get(event.alarm_id))
        new = runner.feed(received_at, event)
        raised.update(t.id for t in new)
        out += new
        last = max(last, received_at)
    out += runner.tick(max([last, *(t.ts for t in recorded)]))
    return out


def _same_condition_ack(runner: AlarmRunner, ack: ClinicalEvent, condition: str | None) -> ClinicalEvent:
    """An acknowledgement of an alarm the re-run never raised: of its open alarm of the same condition."""
    if condition is None:
        return ack
    for alarm in runner.active(ack.site, ack.room):
        if alarm.condition == condition and alarm.state != "acknowledged":
            return dataclasses.replace(ack, alarm_id=alarm.id)
    return ack


def parse_day(text: str, *, end: bool = False) -> float:
    """A date (local time; with `end`, the end of that day) or an ISO date and time, as epoch seconds.
    Raises ValueError."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: expected a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM") from None
    if end and len(text.strip()) <= 10:  # a date alone: up to the end of that day
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


def settings_from_table(
    profile: AlarmProfile, limits: Mapping[str, float | None], delays: Mapping[str, float | None]
) -> list[Setting]:
    """The settings a table of limits and delays (rule id -> value; None or unchanged: as the profile has
    it) makes to `profile`."""
    out = []
    for rule in profile.rules:
        limit, delay = limits.get(rule.id), delays.get(rule.id)
        if limit is not None and float(limit) != rule.limit:
            out.append(Setting(rule.id, "limit", float(limit)))
        if delay is not None and float(delay) != rule.delay_s:
            out.append(Setting(rule.id, "delay", float(delay)))
    return out


def sessions_between(store: EventLog, start: float, end: float) -> list[SessionRecord]:
    """Sessions that started in [start, end), oldest first."""
    return sorted(
        (r for r in store.session_records() if start <= r.started_at < end),
        key=lambda r: (r.started_at, r.id),
    )


# --- counting ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleCount:
    """One rule or condition: alarms raised as recorded and under the what-if settings."""

    condition: str
    kind: str
    priority: str
    recorded: int
    whatif: int
    #: the settings (limit, delay) as recorded and what-if; None where they do not apply
    limit: tuple[float | None, float] | None = None
    delay_s: tuple[float | None, float] | None = None

    @property
    def change(self) -> int:
        return self.whatif - self.recorded

    @property
    def change_text(self) -> str:
        return change_text(self.recorded, self.whatif)


def setting_text(pair: tuple[float | None, float] | None, unit: str = "", arrow: str = " -> ") -> str:
    """`92 -> 85` when the what-if changed a setting, `92` when it did not, "" where none applies."""
    if pair is None:
        return ""
    before, after = (f"{v:g}{unit}" if v is not None else "?" for v in pair)
    return after if before == after else f"{before}{arrow}{after}"


def change_text(recorded: int, whatif: int) -> str:
    """`-8 (-67 %)`: the change from the recorded count, and in per cent of it when there is one."""
    change = whatif - recorded
    if recorded == 0:
        return f"{change:+d}" if change else "0"
    return f"{change:+d} ({100 * change / recorded:+.0f} %)"


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    sessions: tuple[int, ...]
    rows: tuple[RuleCount, ...]
    settings: tuple[Setting, ...] = ()

    @property
    def recorded(self) -> int:
        return sum(r.recorded for r in self.rows)

    @property
    def whatif(self) -> int:
        return sum(r.whatif for r in self.rows)


def raised(transitions: Iterable[AlarmTransition]) -> dict[str, AlarmTransition]:
    """Each alarm once (its first transition, its activation), by id."""
    first: dict[str, AlarmTransition] = {}
    for t in transitions:
        first.setdefault(t.id, t)
    return first


def what_if(
    store: EventLog,
    sessions: Sequence[SessionRecord],
    profile: AlarmProfile,
    settings: Sequence[Setting] = (),
    *,
    recorded_profile: AlarmProfile | None = None,
) -> WhatIfResult:
    """Recorded against re-run alarm counts per condition over `sessions`: re-run with `profile` changed
    by `settings`. `recorded_profile` is the one the core ran (default: `profile`), shown beside the
    what-if settings. Raises ValueError for a setting that does not apply."""
    changed = apply_settings(profile, settings)
    base = recorded_profile or profile
    recorded: list[AlarmTransition] = []
    rerun: list[AlarmTransition] = []
    for record in sessions:
        recorded += raised(store.alarm_log(record.id)).values()
        rerun += raised(rerun_session(store, record, changed)).values()
    return WhatIfResult(tuple(r.id for r in sessions), _rows(base, changed, recorded, rerun), tuple(settings))


def _rows(
    base: AlarmProfile, changed: AlarmProfile, recorded: list[AlarmTransition], rerun: list[AlarmTransition]
) -> tuple[RuleCount, ...]:
    def count(transitions: list[AlarmTransition], condition: str) -> int:
        return sum(1 for t in transitions if t.condition == condition)

    rows = []
    for after in changed.rules:
        before = base.rule(after.id)
        rows.append(
            RuleCount(
                after.id,
                "physiological",
                after.priority,
                count(recorded, after.id),
                count(rerun, after.id),
                (before.limit if before else None, after.limit),
                (before.delay_s if before else None, after.delay_s),
            )
        )
    seen = {r.condition for r in rows}
    others: dict[str, AlarmTransition] = {}
    for t in recorded + rerun:
        if t.condition not in seen:
            others.setdefault(t.condition, t)
    for condition, t in sorted(others.items(), key=lambda item: (-count(recorded, item[0]), item[0])):
        delay = None
        if t.kind == "technical" and condition in TECHNICAL_CONDITIONS:
            delay = (base.technical.policy(condition).delay_s, changed.technical.policy(condition).delay_s)
        rows.append(
            RuleCount(
                condition,
                t.kind,
                t.priority,
                count(recorded, condition),
                count(rerun, condition),
                None,
                delay,
            )
        )
    return tuple(rows)

"""Alarm profiles: which conditions raise which alarms, at what priority and after what delay.

A profile is a TOML file (the shipped default is `monitor/profiles/ketamine-default.toml`, whose comments
cite the source of every number). `load_profile(path)` reads and checks it and returns a frozen
`AlarmProfile`; `load_profile(None)` returns the shipped default. The engine (`monitor.alarms`) reads
nothing else, so a clinic changes its alarms by editing a file, never the code.

Errors are `AlarmProfileError`s whose message names the file, the key (`rule[2].delay_s`, counted from 1,
with the rule's id) and what was expected, so a typo is fixed from the message alone.

Format (every key optional unless marked):

    name = "ketamine-default"
    description = "..."
    escalation_s = 60            # a high-priority alarm unacknowledged this long escalates
    audio_pause_s = 120          # one audio pause lasts this long (IEC 60601-1-8: at most 2 min)

    [[rule]]                     # one physiological threshold rule
    id = "spo2_low"              # required, unique, [a-z0-9_]
    code = "MDC_PULS_OXIM_SAT_O2"  # required: an MDC reference id from monitor.mdc (or its number)
    comparison = "below"         # required: "below" | "above"
    inclusive = false            # "below" with inclusive = true means value <= limit
    limit = 92                   # required; with relative_to_baseline, the delta added to the baseline
    relative_to_baseline = false
    priority = "medium"          # required: "high" | "medium" | "low"
    delay_s = 15                 # alarm-condition delay
    hysteresis = 1               # clears only when back past limit +/- hysteresis
    latching = false             # default: true for high priority
    message = "{label} {value} {unit} {op} {limit} {unit}"  # fields: label value unit op limit baseline delta

    [stale]                      # stale data, per device type
    oximeter_s = 10
    pump_s = 10
    nibp_default_interval_s = 300
    nibp_margin_s = 120
    priority = "medium"

    [technical]                  # technical conditions (monitor.conditions ids, plus device_offline)
    default = { priority = "low", delay_s = 0 }
    [technical.conditions]
    sensor_off = { priority = "medium", delay_s = 15 }
    "nibp_*" = { priority = "low" }   # a trailing * matches a prefix; the longest prefix wins

    [clinical]
    default_severity = "moderate"
    severity = { mild = "low", moderate = "medium", severe = "high" }
    minimum_priority = { chest_pain = "high" }

Priorities are only "high", "medium" and "low": every alarm this engine raises is audible (IEC 60601-1-8
has no silent priority), which is what "technical alarms are never silent" means.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from monitor import mdc
from monitor.model import PRIORITIES, SEVERITIES
from monitor.toml_files import load_named_toml

#: where the shipped profiles live
PROFILE_DIR: Final = Path(__file__).resolve().with_name("profiles")
DEFAULT_PROFILE: Final = "ketamine-default"

#: IEC 60601-1-8: an audio pause may last at most 2 min
MAX_AUDIO_PAUSE_S: Final = 120.0
COMPARISONS: Final = ("below", "above")
#: the fields a rule's message template may use
MESSAGE_FIELDS: Final = ("label", "value", "unit", "op", "limit", "baseline", "delta")
DEFAULT_MESSAGE: Final = "{label} {value} {unit} {op} {limit} {unit}"
DEFAULT_RELATIVE_MESSAGE: Final = "{label} {value} {unit} {op} {limit} {unit} (baseline {baseline} + {delta})"

_ID = re.compile(r"[a-z][a-z0-9_]*")
_CONDITION_KEY = re.compile(r"[a-z][a-z0-9_]*\*?")


class AlarmProfileError(ValueError):
    """A profile that cannot be used. `file` and `key` say where; the message says what to write."""

    def __init__(self, file: Path | str, key: str | None, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A physiological limit on one MDC code.

    The condition is a Schmitt trigger: true from the first valid sample past the limit, false again only
    at a valid sample back past `limit ± hysteresis`. The alarm activates when the condition has been true
    for `delay_s`. With `relative_to_baseline`, `limit` is a delta added to the room's baseline for `code`.
    """

    id: str
    code: int
    comparison: str  # "below" | "above"
    limit: float
    priority: str
    inclusive: bool = False
    delay_s: float = 0.0
    hysteresis: float = 0.0
    latching: bool = False
    relative_to_baseline: bool = False
    message: str = DEFAULT_MESSAGE

    @property
    def metric(self) -> mdc.Metric:
        return mdc.BY_CODE[self.code]

    @property
    def op(self) -> str:
        if self.comparison == "below":
            return "≤" if self.inclusive else "<"
        return "≥" if self.inclusive else ">"

    def violated(self, value: float, limit: float) -> bool:
        """Whether `value` is past `limit` (the condition starts)."""
        if self.comparison == "below":
            return value <= limit if self.inclusive else value < limit
        return value >= limit if self.inclusive else value > limit

    def recovered(self, value: float, limit: float) -> bool:
        """Whether `value` is back past the limit by the hysteresis (the condition ends)."""
        if self.comparison == "below":
            edge = limit + self.hysteresis
            return value > edge if self.inclusive else value >= edge
        edge = limit - self.hysteresis
        return value < edge if self.inclusive else value <= edge

    def worse(self, a: float, b: float) -> float:
        """The worse of two values for this rule (the lower for `below`)."""
        return min(a, b) if self.comparison == "below" else max(a, b)


@dataclass(frozen=True, slots=True)
class TechnicalPolicy:
    """How one technical condition alarms: its priority and its alarm-condition delay."""

    priority: str
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TechnicalTable:
    """Technical condition id -> policy. Keys ending in `*` match a prefix; the longest match wins."""

    entries: tuple[tuple[str, TechnicalPolicy], ...]
    default: TechnicalPolicy

    def policy(self, condition: str) -> TechnicalPolicy:
        exact = dict(self.entries)
        if condition in exact:
            return exact[condition]
        prefixes = [(key[:-1], p) for key, p in self.entries if key.endswith("*")]
        matches = [(len(prefix), p) for prefix, p in prefixes if condition.startswith(prefix)]
        if matches:
            return max(matches, key=lambda m: m[0])[1]
        return self.default


@dataclass(frozen=True, slots=True)
class StaleLimits:
    """When a device's data is too old: oximeter and pump by silence, the cuff against its own cycle."""

    oximeter_s: float = 10.0
    pump_s: float = 10.0
    nibp_default_interval_s: float = 300.0
    nibp_margin_s: float = 120.0
    priority: str = "medium"


@dataclass(frozen=True, slots=True)
class ClinicalPolicy:
    """Priorities of clinical alerts (side effects recorded or found in notes)."""

    severity_priority: tuple[tuple[str, str], ...] = (
        ("mild", "low"),
        ("moderate", "medium"),
        ("severe", "high"),
    )
    default_severity: str = "moderate"
    minimum_priority: tuple[tuple[str, str], ...] = (("chest_pain", "high"),)

    def priority(self, effect: str, severity: str | None) -> str:
        """The alert's priority: by severity (unknown or missing: the default), raised to the effect's
        minimum."""
        by_severity = dict(self.severity_priority)
        chosen = by_severity.get(severity or "", by_severity[self.default_severity])
        floor = dict(self.minimum_priority).get(effect)
        if floor is not None and PRIORITIES.index(floor) < PRIORITIES.index(chosen):
            return floor
        return chosen


@dataclass(frozen=True, slots=True)
class AlarmProfile:
    name: str
    rules: tuple[ThresholdRule, ...]
    technical: TechnicalTable
    stale: StaleLimits = StaleLimits()
    clinical: ClinicalPolicy = ClinicalPolicy()
    escalation_s: float = 60.0
    audio_pause_s: float = MAX_AUDIO_PAUSE_S
    description: str = ""
    source: str = ""  # the file it was read from

    def rule(self, rule_id: str) -> ThresholdRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def shipped_profiles() -> list[str]:
    """Names of the shipped profiles, sorted (what `load_profile` accepts as a name)."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.toml"))


def load_profile(path: str | Path | None = None) -> AlarmProfile:
    """Load and check a profile: None for the shipped default, a shipped name, or any file by path.

    A string ending in ".toml" or containing a slash is a path. Raises AlarmProfileError.
    """
    file, document = load_named_toml(
        DEFAULT_PROFILE if path is None else path, PROFILE_DIR, "profile", AlarmProfileError
    )
    return parse_profile(document, source=str(file))


def parse_profile(document: Mapping[str, object], source: str = "<profile>") -> AlarmProfile:
    """Check a decoded TOML document and build the profile (`source` names it in errors)."""
    top = _Table(source, "", document, _TOP_KEYS)
    rules: list[ThresholdRule] = []
    seen: set[str] = set()
    for i, entry in enumerate(top.list("rule")):
        named = entry.get("id") if isinstance(entry, dict) else None
        where = f"rule[{i + 1}]" + (f" ({named})" if isinstance(named, str) else "")
        rule = _rule(_Table(source, where, entry, _RULE_KEYS))
        if rule.id in seen:
            raise AlarmProfileError(source, f"{where}.id", f"{rule.id!r} is used by an earlier rule")
        seen.add(rule.id)
        rules.append(rule)
    escalation_s = top.number("escalation_s", 60.0, above=0)
    audio_pause_s = top.number("audio_pause_s", MAX_AUDIO_PAUSE_S, above=0)
    if audio_pause_s > MAX_AUDIO_PAUSE_S:
        raise top.error(
            "audio_pause_s",
            f"expected at most {MAX_AUDIO_PAUSE_S:g} s (IEC 60601-1-8), got {audio_pause_s:g}",
        )
    return AlarmProfile(
        name=top.text("name", Path(source).stem),
        description=top.text("description", ""),
        rules=tuple(rules),
        technical=_technical(_Table(source, "technical", top.data.get("technical", {}), _TECHNICAL_KEYS)),
        stale=_stale(_Table(source, "stale", top.data.get("stale", {}), _STALE_KEYS)),
        clinical=_clinical(_Table(source, "clinical", top.data.get("clinical", {}), _CLINICAL_KEYS)),
        escalation_s=escalation_s,
        audio_pause_s=audio_pause_s,
        source=source,
    )


# --- reading and checking ----------------------------------------------------------------------------

_TOP_KEYS: Final = ("name", "description", "escalation_s", "audio_pause_s", "rule", "stale", "technical",
                    "clinical")  # fmt: skip
_RULE_KEYS: Final = ("id", "code", "comparison", "inclusive", "limit", "relative_to_baseline", "priority",
                     "delay_s", "hysteresis", "latching", "message")  # fmt: skip
_STALE_KEYS: Final = ("oximeter_s", "pump_s", "nibp_default_interval_s", "nibp_margin_s", "priority")
_TECHNICAL_KEYS: Final = ("default", "conditions")
_POLICY_KEYS: Final = ("priority", "delay_s")
_CLINICAL_KEYS: Final = ("default_severity", "severity", "minimum_priority")


class _Table:
    """One TOML table being read: typed getters that raise AlarmProfileError naming the key."""

    def __init__(self, source: str, where: str, data: object, keys: Iterable[str] | None) -> None:
        self.source = source
        self.where = where
        if not isinstance(data, dict):
            raise AlarmProfileError(source, where or None, f"expected a table, got {_kind(data)}")
        self.data: dict[str, object] = data
        if keys is not None:
            allowed = tuple(keys)
            for key in data:
                if key not in allowed:
                    raise self.error(key, f"unknown key; expected one of {', '.join(allowed)}")

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, problem: str) -> AlarmProfileError:
        return AlarmProfileError(self.source, self.key(name), problem)

    def require(self, name: str, what: str) -> object:
        if name not in self.data:
            raise self.error(name, f"missing; expected {what}")
        return self.data[name]

    def text(self, name: str, default: str | None = None) -> str:
        value = self.require(name, "a text") if default is None else self.data.get(name, default)
        if not isinstance(value, str):
            raise self.error(name, f"expected a text, got {_kind(value)}")
        return value

    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        lo: float | None = None,
        hi: float | None = None,
        above: float | None = None,
    ) -> float:
        value = self.require(name, "a number") if default is None else self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(name, f"expected a number, got {_kind(value)}")
        if above is not None and not value > above:
            raise self.error(name, f"expected a number above {above:g}, got {value:g}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            low = "-inf" if lo is None else f"{lo:g}"
            high = "inf" if hi is None else f"{hi:g}"
            raise self.error(name, f"expected a number in {low}..{high}, got {value:g}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_kind(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise self.error(name, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def list(self, name: str) -> list[object]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"expected an array of tables ([[{name}]]), got {_kind(value)}")
        return value


def _rule(table: _Table) -> ThresholdRule:
    rule_id = table.text("id")
    if not _ID.fullmatch(rule_id):
        raise table.error(
            "id", f"expected lower-case letters, digits and _ (starting with a letter), got {rule_id!r}"
        )
    code = _code(table)
    priority = table.choice("priority", PRIORITIES)
    relative = table.boolean("relative_to_baseline", False)
    message = table.text("message", DEFAULT_RELATIVE_MESSAGE if relative else DEFAULT_MESSAGE)
    _check_template(table, message)
    return ThresholdRule(
        id=rule_id,
        code=code,
        comparison=table.choice("comparison", COMPARISONS),
        limit=table.number("limit"),
        priority=priority,
        inclusive=table.boolean("inclusive", False),
        delay_s=table.number("delay_s", 0.0, lo=0),
        hysteresis=table.number("hysteresis", 0.0, lo=0),
        latching=table.boolean("latching", priority == "high"),
        relative_to_baseline=relative,
        message=message,
    )


def _code(table: _Table) -> int:
    value = table.require("code", 'an MDC reference id such as "MDC_PULS_OXIM_SAT_O2"')
    by_ref = {m.ref_id: m.code for m in mdc.ALL_METRICS}
    if isinstance(value, str) and value in by_ref:
        return by_ref[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in mdc.BY_CODE:
        return value
    raise table.error("code", f"unknown MDC code {value!r}; known: {', '.join(sorted(by_ref))}")


def _check_template(table: _Table, message: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}
    except ValueError as exc:
        raise table.error("message", f"not a valid template: {exc}") from None
    unknown = sorted(fields - set(MESSAGE_FIELDS))
    if unknown:
        raise table.error(
            "message",
            f"unknown field {{{unknown[0]}}}; use {', '.join('{' + f + '}' for f in MESSAGE_FIELDS)}",
        )
    try:
        message.format(**dict.fromkeys(MESSAGE_FIELDS, "0"))
    except (ValueError, IndexError) as exc:
        raise table.error("message", f"not a valid template: {exc}") from None


def _policy(table: _Table, default: TechnicalPolicy | None) -> TechnicalPolicy:
    return TechnicalPolicy(
        priority=table.choice("priority", PRIORITIES, default.priority if default else None),
        delay_s=table.number("delay_s", default.delay_s if default else 0.0, lo=0),
    )


def _technical(table: _Table) -> TechnicalTable:
    default = _policy(
        _Table(table.source, table.key("default"), table.data.get("default", {}), _POLICY_KEYS),
        TechnicalPolicy("low", 0.0),
    )
    conditions = _Table(table.source, table.key("conditions"), table.data.get("conditions", {}), None)
    entries = []
    for key, value in sorted(conditions.data.items()):
        if not _CONDITION_KEY.fullmatch(key):
            raise conditions.error(
                key, "expected a condition id (lower-case, digits, _) with an optional trailing *"
            )
        entries.append((key, _policy(_Table(table.source, conditions.key(key), value, _POLICY_KEYS), None)))
    return TechnicalTable(tuple(entries), default)


def _stale(table: _Table) -> StaleLimits:
    return StaleLimits(
        oximeter_s=table.number("oximeter_s", 10.0, above=0),
        pump_s=table.number("pump_s", 10.0, above=0),
        nibp_default_interval_s=table.number("nibp_default_interval_s", 300.0, above=0),
        nibp_margin_s=table.number("nibp_margin_s", 120.0, lo=0),
        priority=table.choice("priority", PRIORITIES, "medium"),
    )


def _clinical(table: _Table) -> ClinicalPolicy:
    severity = _Table(table.source, table.key("severity"), table.data.get("severity", {}), SEVERITIES)
    default_map = dict(ClinicalPolicy().severity_priority)
    by_severity = tuple((s, severity.choice(s, PRIORITIES, default_map[s])) for s in SEVERITIES)
    minimum = _Table(
        table.source,
        table.key("minimum_priority"),
        table.data.get("minimum_priority", {"chest_pain": "high"}),
        None,
    )
    floors = []
    for effect in sorted(minimum.data):
        if not _ID.fullmatch(effect):
            raise minimum.error(effect, "expected a side-effect name (lower-case letters, digits, _)")
        floors.append((effect, minimum.choice(effect, PRIORITIES)))
    return ClinicalPolicy(
        severity_priority=by_severity,
        default_severity=table.choice("default_severity", SEVERITIES, "moderate"),
        minimum_priority=tuple(floors),
    )


def _kind(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"

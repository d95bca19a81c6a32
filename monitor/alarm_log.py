"""The alarm log of a session as a table: filtered, and exported as CSV (pandas), for review and audit.

Pure functions over alarm transitions; the page only renders their rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from monitor.model import AlarmTransition

COLUMNS = (
    "time",
    "room",
    "priority",
    "kind",
    "state",
    "message",
    "value",
    "limit",
    "device",
    "user",
    "condition",
    "alarm_id",
)


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    priorities: frozenset[str] = frozenset()  # empty = all
    states: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    text: str = ""  # in the message or condition, any case

    def keeps(self, t: AlarmTransition) -> bool:
        return (
            (not self.priorities or t.priority in self.priorities)
            and (not self.states or t.state in self.states)
            and (not self.kinds or t.kind in self.kinds)
            and (not self.text or self.text.lower() in f"{t.message} {t.condition}".lower())
        )


def rows(
    transitions: Iterable[AlarmTransition], keep: AlarmFilter = AlarmFilter()
) -> list[dict[str, object]]:
    """One row per transition, oldest first, in the clinic's local time."""
    return [
        {
            "time": datetime.fromtimestamp(t.ts).strftime("%Y-%m-%d %H:%M:%S"),
            "room": t.room,
            "priority": t.priority,
            "kind": t.kind,
            "state": t.state + (" (latched)" if t.latched else ""),
            "message": t.message,
            "value": t.value,
            "limit": t.limit,
            "device": t.device,
            "user": t.user,
            "condition": t.condition,
            "alarm_id": t.id,
        }
        for t in transitions
        if keep.keeps(t)
    ]


def to_csv(table: list[dict[str, object]]) -> str:
    return pd.DataFrame(table, columns=list(COLUMNS)).to_csv(index=False)

"""A live page's reads of its room's recorded history, grown row by row instead of re-read on each push.

The bedside page redraws its session panel and timeline from everything recorded since the session
started (the pump stream the doses come from, the vitals the baseline comes from). Read whole from the
store, a 4-hour session costs about half a second per redraw, and the page redraws on every push.
`IncrementalReads` answers the same `observations` calls from what it read before plus the rows stored
since, so each row is read and decoded once per page.

The pump's rate and volume counters are kept as their changes: a reading equal to the one before it
(same device, value and validity) only moves that run's last reading forward. The doses derived are the
same (a stopped pump's hours of identical readings start no segment and deliver nothing; the last reading
of a run is kept, so an open infusion still ends at the latest one), and a long session's dose
calculation stays small. The replay's `LogAt` does the same for recorded sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.model import AlarmTransition, Observation
from monitor.store import EventLog


class RoomReads(Protocol):
    """What the session panel and timeline read: the live store, this cache, or the replay's log-at-t."""

    def observations(
        self, site: str, room: str, *, since: float | None = None, codes: Iterable[int] | None = None
    ) -> list[Observation]: ...

    def alarms(self, site: str, room: str) -> list[AlarmTransition]: ...


def _reading_key(obs: Observation) -> tuple[object, ...]:
    return (obs.value, obs.valid, obs.conditions)


@dataclass
class _Entry:
    """One query's readings so far, the last row read, and where each compacted series' last run is."""

    #: time order, except that a compacted run's last reading sits where the run's second one was
    items: list[Observation] = field(default_factory=list)
    after_id: int = 0
    #: the newest reading's time: one stored later but older than this arrived late
    newest: float = float("-inf")
    #: (device, code) -> index in `items` of the series' last reading and whether it repeats the one before
    last: dict[tuple[str, int], tuple[int, bool]] = field(default_factory=dict)


class IncrementalReads:
    """The store's `observations` for one page, from the rows read before plus those stored since.

    A reading that arrives late (stored after a newer one, as a gateway's outbox delivers after an outage)
    cannot be slotted in by appending, so the query is read whole again then: correct first, fast after.
    """

    def __init__(self, store: EventLog, compact_codes: Iterable[int] = ()) -> None:
        self.store = store
        self.compact_codes = frozenset(compact_codes)
        self._entries: dict[tuple[object, ...], _Entry] = {}
        #: whole re-reads, for tests and the benchmark
        self.full_reads = 0

    def observations(
        self, site: str, room: str, *, since: float | None = None, codes: Iterable[int] | None = None
    ) -> list[Observation]:
        wanted = tuple(sorted(codes)) if codes is not None else None
        key = (site, room, wanted)
        entry = self._entries.get((*key, since))
        if entry is None:  # a new session (another `since`): what was kept for the old one goes
            self._entries = {k: e for k, e in self._entries.items() if k[:3] != key}
            entry = self._entries[(*key, since)] = _Entry()
            self.full_reads += 1
        new, entry.after_id = self.store.observations_after(
            site, room, entry.after_id, since=since, codes=wanted
        )
        if new and new[0].ts < entry.newest:
            entry.items, entry.last, entry.newest = [], {}, float("-inf")
            new, entry.after_id = self.store.observations_after(site, room, 0, since=since, codes=wanted)
            self.full_reads += 1
        for obs in new:
            self._add(entry, obs)
        return list(entry.items)

    def _add(self, entry: _Entry, obs: Observation) -> None:
        entry.newest = max(entry.newest, obs.ts)
        if obs.code not in self.compact_codes:
            entry.items.append(obs)
            return
        series = (obs.device, obs.code)
        previous = entry.last.get(series)
        if previous is not None:
            index, repeats = previous
            same = _reading_key(entry.items[index]) == _reading_key(obs)
            if same and repeats:  # the run goes on: its last reading moves forward
                entry.items[index] = obs
                return
            if same:
                entry.items.append(obs)
                entry.last[series] = (len(entry.items) - 1, True)
                return
        entry.items.append(obs)
        entry.last[series] = (len(entry.items) - 1, False)

    def alarms(self, site: str, room: str) -> list[AlarmTransition]:
        return self.store.alarms(site, room)

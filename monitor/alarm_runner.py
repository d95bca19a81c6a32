"""Runs the alarm engine over the event log, live in the core and again in replay, the same way.

The engine sees every event at the time the core received it (`received_at`, kept in the log) and the
clock only through `tick(now)`. The live core and a replay therefore feed it the very same sequence, and
because the engine dates each transition by its rule (condition start + delay, activation + 60 s...), not
by when it was ticked, a replay of the log reproduces the recorded transitions exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from monitor.alarm_profile import AlarmProfile
from monitor.alarms import AlarmEngine, RoomAlarms
from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation

EngineEvent = Observation | DeviceStatus | ClinicalEvent


class AlarmRunner:
    def __init__(self, profile: AlarmProfile) -> None:
        self.engine = AlarmEngine(profile)
        self.rooms: dict[tuple[str, str], RoomAlarms] = {}

    def state(self, site: str, room: str) -> RoomAlarms:
        key = (site, room)
        if key not in self.rooms:
            self.rooms[key] = self.engine.new_room(site, room)
        return self.rooms[key]

    def reset(self, site: str, room: str) -> None:
        """A session starts or ends in the room: its alarms start afresh, as in a replay of one session."""
        self.rooms.pop((site, room), None)

    def feed(self, received_at: float, event: EngineEvent) -> list[AlarmTransition]:
        """One event of the log, at the time the core received it."""
        at_receipt = dataclasses.replace(event, ts=received_at)
        return self.engine.step(self.state(event.site, event.room), at_receipt)

    def tick(self, now: float) -> list[AlarmTransition]:
        out: list[AlarmTransition] = []
        for state in self.rooms.values():
            out.extend(self.engine.advance(state, now))
        return out

    def active(self, site: str, room: str) -> list[AlarmTransition]:
        return self.engine.active(self.state(site, room))


def replay(
    profile: AlarmProfile, log: Iterable[tuple[float, EngineEvent]], until: float | None = None
) -> list[AlarmTransition]:
    """Every transition the engine raises over a recorded log (received_at, event), in order."""
    runner = AlarmRunner(profile)
    out: list[AlarmTransition] = []
    last = None
    for received_at, event in log:
        out.extend(runner.feed(received_at, event))
        last = received_at
    end = until if until is not None else last
    if end is not None:
        out.extend(runner.tick(end))
    return out

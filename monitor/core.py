"""The monitor core: subscribes to every room, validates what arrives, appends it to the event log, and
runs the alarm engine over it.

It is the single writer of clinical state. MQTT messages are decoded on paho's network thread and handed
to one writer thread that commits them in batches (one transaction per batch, so ingest keeps up with
many rooms), feeds every new event to the alarm engine, ticks the engine's clock every 0.2 s, and stores
and publishes each alarm transition once. Bad messages are counted by kind, logged once per kind, and
never stop the flow. On start it replays the open sessions' log through the engine, so a restarted core
knows every alarm that was active and raises what fell due while it was down.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter

from monitor import wire
from monitor.alarm_profile import AlarmProfile, load_profile
from monitor.alarm_runner import AlarmRunner, EngineEvent
from monitor.bus import MqttLink
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.model import AlarmTransition, ClinicalEvent
from monitor.store import EventLog

log = logging.getLogger(__name__)

_STOP = object()
#: how often the alarm engine's clock ticks: an alarm is raised at most this late after its rule says
TICK_S = 0.2


class Core:
    def __init__(
        self,
        broker: str,
        db_path: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        client_id: str = "kap-core",
        profile: AlarmProfile | None = None,
    ) -> None:
        self.log = EventLog(db_path)
        self.alarms = AlarmRunner(profile or load_profile(None))
        self.alarm_transitions = 0
        self.clock = clock
        self.stored = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()
        self._queue: queue.Queue[object] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="core-writer", daemon=True)
        self.link = MqttLink(
            broker,
            client_id,
            subscriptions=[f"{wire.ROOT}/#"],
            on_message=self._on_message,
            persistent_session=True,
        )

    def start(self) -> Core:
        self._rebuild_alarms()
        self._writer.start()
        self.link.start()
        return self

    def _rebuild_alarms(self) -> None:
        for rec in self.log.recordings():
            for received_at, event in self.log.log(rec.site, rec.room, session_id=rec.session_id):
                self.alarms.feed(received_at, event)  # type: ignore[arg-type]
        caught_up = self.alarms.tick(self.clock.now())
        if caught_up:  # deadlines that passed while the core was down (stored once; see _raise)
            self._raise(caught_up)

    def stop(self) -> None:
        self.link.stop()
        self._queue.put(_STOP)
        self._writer.join(timeout=10)
        self.log.close()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until everything received so far is committed (for tests and clean shutdowns)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            parsed = wire.parse_topic(topic)
            if parsed.kind == "obs":
                self._queue.put(wire.decode_observation(parsed, payload))
            elif parsed.kind == "status":
                self._queue.put(wire.decode_status(parsed, payload))
            elif parsed.kind == "events":
                self._queue.put(wire.decode_clinical_event(parsed, payload, self.clock.now()))
            # "cmd" and "reply" are between dashboards and gateways; "alarms" is the core's own output
        except wire.WireError as exc:
            self._reject(exc, topic)

    def _reject(self, exc: wire.WireError, topic: str) -> None:
        if self.rejected[exc.kind] == 0:
            log.warning(
                "rejected message on %s: %s (further '%s' rejects are counted, not logged)",
                topic,
                exc,
                exc.kind,
            )
        self.rejected[exc.kind] += 1

    def _store(self, batch: list[EngineEvent]) -> None:
        now = self.clock.now()
        try:
            new = self.log.append_new(batch, now)
        except Exception:
            # One bad event must not cost its neighbours: store them one by one, and say which failed.
            new = []
            for event in batch:
                try:
                    new += self.log.append_new([event], now)
                except Exception:
                    self.rejected["store failed"] += 1
                    log.exception("could not store %r", event)
        self.stored += len(new)
        self.duplicates += len(batch) - len(new)
        transitions: list[AlarmTransition] = []
        for event in new:
            if isinstance(event, ClinicalEvent) and event.type in ("session_start", "session_end"):
                self.alarms.reset(event.site, event.room)  # a session's alarms are its own
            try:
                transitions += self.alarms.feed(now, event)  # type: ignore[arg-type]
            except Exception:  # an engine bug must not stop recording; it is loud in the log
                log.exception("alarm engine failed on %r", event)
        if transitions:
            self._raise(transitions)

    def _tick(self) -> None:
        try:
            transitions = self.alarms.tick(self.clock.now())
        except Exception:
            log.exception("alarm engine failed on a clock tick")
            return
        if transitions:
            self._raise(transitions)

    def _raise(self, transitions: list[AlarmTransition]) -> None:
        """Store each transition once (a rebuilt engine raises the stored ones again) and publish the new."""
        new = self.log.append_new(transitions, self.clock.now())
        self.alarm_transitions += len(new)
        for t in new:
            if isinstance(t, AlarmTransition):
                self.link.publish(wire.alarms_topic(t.site, t.room), wire.encode_alarm(t))

    def _write_loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                self._tick()
                continue
            batch: list[EngineEvent] = []
            waiters: list[threading.Event] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= 2000:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._store(batch)
            self._tick()
            for waiter in waiters:
                waiter.set()
            if stop:
                return

"""The monitor core: subscribes to every room, validates what arrives, appends it to the event log, and
runs the alarm engine over it.

It is the single writer of clinical state. MQTT messages are decoded on paho's network thread and handed
to one writer thread that commits them in batches (one transaction per batch, so ingest keeps up with
many rooms), feeds every new event to the alarm engine, ticks the engine's clock every 0.2 s, and stores
and publishes each alarm transition once. Bad messages are counted by kind, logged once per kind, and
never stop the flow. On start it replays the open sessions' log through the engine, so a restarted core
knows every alarm that was active and raises what fell due while it was down.

Nothing the broker handed over is lost when the core dies (even `kill -9`): the session is persistent
(fixed client id, clean session off, QoS 1 subscription) and each message is acknowledged to the broker
only after the transaction holding it committed, so the broker redelivers whatever was not yet stored,
and the log stores each reading once. When the log cannot be written (disk full, read-only file, I/O
error) the core says so in its log, raises a high-priority technical alarm in every room it records, keeps
what it holds unacknowledged (the broker keeps the rest for its session) and retries every second; once a
write succeeds it stores all of it, clears the alarm and acknowledges.
"""

from __future__ import annotations

import logging
import queue
import signal
import sqlite3
import threading
import time
from collections import Counter

from monitor import wire
from monitor.alarm_profile import AlarmProfile, load_profile
from monitor.alarm_runner import AlarmRunner, EngineEvent
from monitor.bus import Broker, Delivery, MqttLink
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.model import AlarmTransition, ClinicalEvent
from monitor.store import EventLog

log = logging.getLogger(__name__)

_STOP = object()
#: how often the alarm engine's clock ticks: an alarm is raised at most this late after its rule says
TICK_S = 0.2
#: most events committed in one transaction
BATCH_MAX = 2000
#: how often a failing event log is tried again
STORE_RETRY_S = 1.0
#: the technical alarm raised in every recorded room while the event log cannot be written
STORE_ALARM = "event_log_write_failed"


class StoreUnavailable(Exception):
    """The event log refuses every write (disk full, read-only file, I/O error): no event is at fault."""


class Core:
    def __init__(
        self,
        broker: Broker,
        db_path: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        client_id: str = "kap-core",
        profile: AlarmProfile | None = None,
    ) -> None:
        try:
            self.log = EventLog(db_path, durable=True)  # acknowledged to the broker only once on disk
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the event log {db_path}: {exc}") from exc
        self.alarms = AlarmRunner(profile or load_profile(None))
        self.alarm_transitions = 0
        self.clock = clock
        self.stored = 0
        self.duplicates = 0
        #: failed attempts to write the event log
        self.rejected_writes = 0
        self.rejected: Counter[str] = Counter()
        self._queue: queue.Queue[object] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="core-writer", daemon=True)
        self.link = MqttLink(
            broker,
            client_id,
            subscriptions=[f"{wire.ROOT}/#"],
            on_delivery=self._on_delivery,
            persistent_session=True,
        )
        #: why the event log cannot be written, while it cannot (None when it can)
        self.store_error: str | None = None
        self._store_alarm_ids: dict[tuple[str, str], str] = {}
        self._store_alarm_raised: list[AlarmTransition] = []
        self._rooms: set[tuple[str, str]] = set()

    def start(self) -> Core:
        if threading.current_thread() is threading.main_thread():
            # past a file-size limit (ulimit -f) the kernel kills a writer with SIGXFSZ; ignored, the write
            # fails with EFBIG instead, and that is a failing event log the core reports and survives
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self._rooms.update((rec.site, rec.room) for rec in self.log.recordings())
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
        """Store and acknowledge what arrived, then leave: what comes after is the next core's (the broker
        keeps it for the session)."""
        self._queue.put(_STOP)
        self._writer.join(timeout=10)
        self.link.stop()
        self.log.close()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until everything received so far is committed (for tests and clean shutdowns)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _on_delivery(self, delivery: Delivery) -> None:
        """On paho's thread: decode, and hand to the writer, which acknowledges once it is committed."""
        topic, payload = delivery.topic, delivery.payload
        event: EngineEvent | None = None
        try:
            parsed = wire.parse_topic(topic)
            if parsed.kind == "obs":
                event = wire.decode_observation(parsed, payload)
            elif parsed.kind == "status":
                event = wire.decode_status(parsed, payload)
            elif parsed.kind == "events":
                event = wire.decode_clinical_event(parsed, payload, self.clock.now())
            # "cmd" and "reply" are between dashboards and gateways; "alarms" is the core's own output
        except wire.WireError as exc:
            self._reject(exc, topic)
        if event is None:
            self.link.ack(delivery)  # nothing to store: counted if refused, and done
        else:
            self._queue.put((event, delivery))

    def _reject(self, exc: wire.WireError, topic: str) -> None:
        if self.rejected[exc.kind] == 0:
            log.warning(
                "rejected message on %s: %s (further '%s' rejects are counted, not logged)",
                topic,
                exc,
                exc.kind,
            )
        self.rejected[exc.kind] += 1

    def _append(self, batch: list[EngineEvent], now: float) -> list[EngineEvent]:
        """The new events of a batch, committed; StoreUnavailable when the log takes no write at all."""
        try:
            return self.log.append_new(batch, now)  # type: ignore[return-value]
        except sqlite3.OperationalError as exc:  # full, read-only, I/O error, locked: not the events' fault
            raise StoreUnavailable(str(exc)) from exc
        except Exception:
            # One bad event must not cost its neighbours: store them one by one, and say which failed.
            new: list[EngineEvent] = []
            for event in batch:
                try:
                    new += self.log.append_new([event], now)  # type: ignore[arg-type]
                except sqlite3.OperationalError as exc:
                    raise StoreUnavailable(str(exc)) from exc
                except Exception:
                    self.rejected["store failed"] += 1
                    log.exception("could not store %r", event)
            return new

    def _commit(self, held: list[tuple[EngineEvent, Delivery]]) -> bool:
        """Store what is held, then acknowledge it to the broker; False (nothing acknowledged) when the log
        cannot be written."""
        now = self.clock.now()
        batch = [event for event, _ in held]
        try:
            new = self._append(batch, now)
        except StoreUnavailable as exc:
            self._rooms.update((event.site, event.room) for event in batch)  # a first batch has no rooms yet
            self._store_failed(str(exc), len(held))
            return False
        if self.store_error is not None:
            self._store_recovered(len(held))
        for _, delivery in held:
            self.link.ack(delivery)
        self._process(batch, new, now)
        return True

    def _process(self, batch: list[EngineEvent], new: list[EngineEvent], now: float) -> None:
        self._rooms.update((event.site, event.room) for event in new)
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
        try:
            new = self.log.append_new(transitions, self.clock.now())
        except sqlite3.OperationalError as exc:
            log.error("could not store %d alarm transitions (%s); published only", len(transitions), exc)
            new = list(transitions)
        self.alarm_transitions += len(new)
        for t in new:
            if isinstance(t, AlarmTransition):
                self.link.publish(wire.alarms_topic(t.site, t.room), wire.encode_alarm(t))

    # ---- a log that cannot be written --------------------------------------------------------------

    def _store_failed(self, error: str, held: int) -> None:
        if self.store_error is None:
            log.error(
                "cannot write the event log %s: %s (disk full, file or directory read-only, or a file-size "
                "limit?). Nothing is acknowledged to the broker until it can be written (it keeps the "
                "readings for this core's session); retrying every %g s",
                self.log.path,
                error,
                STORE_RETRY_S,
            )
            self._store_alarm_raised = self._announce_store_alarm(
                "active", f"Recording stopped: cannot write the event log ({error})"
            )
        self.store_error = error
        self.rejected_writes += 1
        log.debug("event log still failing (%s); %d events held", error, held)

    def _store_recovered(self, held: int) -> None:
        log.warning("event log writable again: %d held events stored", held)
        self.store_error = None
        transitions = self._store_alarm_raised + self._announce_store_alarm("cleared", "Recording resumed")
        try:  # now that it can, the log keeps the outage too
            self.log.append_new(transitions, self.clock.now())
        except sqlite3.OperationalError:
            log.exception("could not store the recording alarm")
        self._store_alarm_ids.clear()

    def _announce_store_alarm(self, state: str, message: str) -> list[AlarmTransition]:
        now = self.clock.now()
        transitions = []
        for site, room in sorted(self._rooms):
            alarm_id = self._store_alarm_ids.setdefault(
                (site, room), f"{room}:{STORE_ALARM}:{int(now * 1000)}"
            )
            transitions.append(
                AlarmTransition(site, room, alarm_id, now, state, "high", "technical", STORE_ALARM, message)
            )
        for t in transitions:
            self.link.publish(wire.alarms_topic(t.site, t.room), wire.encode_alarm(t))
        return transitions

    def _write_loop(self) -> None:
        held: list[tuple[EngineEvent, Delivery]] = []  # received, not yet committed nor acknowledged
        last_try = 0.0
        while True:
            try:
                item: object = self._queue.get(timeout=STORE_RETRY_S if held else TICK_S)
            except queue.Empty:
                item = None
            waiters: list[threading.Event] = []
            stop = False
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    held.append(item)  # type: ignore[arg-type]
                if len(held) >= BATCH_MAX and self.store_error is None:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            # a failing log is tried once a second, not once per message
            due = self.store_error is None or time.monotonic() - last_try >= STORE_RETRY_S
            if held and due:
                last_try = time.monotonic()
                if self._commit(held):
                    held = []
            if self.store_error is None:  # the engine sees only what the log keeps
                self._tick()
            for waiter in waiters:
                waiter.set()
            if stop:
                if held:
                    log.warning(
                        "stopping with %d events not stored: the broker delivers them again", len(held)
                    )
                return

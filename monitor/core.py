"""The monitor core: subscribes to every room, validates what arrives, and appends it to the event log.

It is the single writer of clinical state. MQTT messages are decoded on paho's network thread and handed
to one writer thread that commits them in batches (one transaction per batch, so ingest keeps up with
many rooms). Bad messages are counted by kind, logged once per kind, and never stop the flow.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter

from monitor import wire
from monitor.bus import MqttLink
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.model import DeviceStatus, Observation
from monitor.store import EventLog

log = logging.getLogger(__name__)

_STOP = object()


class Core:
    def __init__(
        self, broker: str, db_path: str, *, clock: Clock = SYSTEM_CLOCK, client_id: str = "kap-core"
    ):
        self.log = EventLog(db_path)
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
        self._writer.start()
        self.link.start()
        return self

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
            # "cmd" and "reply" are between dashboards and gateways; the core only listens (for now)
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

    def _store(self, batch: list[Observation | DeviceStatus]) -> None:
        now = self.clock.now()
        try:
            new = self.log.append(batch, now)
        except Exception:
            # One bad event must not cost its neighbours: store them one by one, and say which failed.
            new = 0
            for event in batch:
                try:
                    new += self.log.append([event], now)
                except Exception:
                    self.rejected["store failed"] += 1
                    log.exception("could not store %r", event)
        self.stored += new
        self.duplicates += len(batch) - new

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Observation | DeviceStatus] = []
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
            for waiter in waiters:
                waiter.set()
            if stop:
                return

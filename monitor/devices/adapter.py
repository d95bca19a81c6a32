"""An adapter = transport + driver (codec and schedule), run in a thread of its own.

It owns the device's link: opens the port, lets the driver speak (`poll`) and decode (`feed`), stamps
readings with identity, time and sequence, reconnects with backoff when the port goes, and decides when the
device counts as offline (port lost, or silent past the protocol's timeout). Commands from the `cmd` topic
are queued and handed to the driver on the adapter's own thread, so a driver is never entered twice.
What it produces goes to a `sink`, which the gateway wires to MQTT; tests can wire it anywhere.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.devices.protocols import CommandRejected, ProtocolSpec, bytes_wanted
from monitor.devices.transport import LinkLost, MqttTransport, SerialTransport, open_transport
from monitor.model import CommandReply, DeviceReading, DeviceStatus, Observation, RejectedFrame, WaveformBlock

log = logging.getLogger(__name__)

BACKOFF_STEPS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """`--device NAME:PROTOCOL:URL`"""

    name: str
    protocol: str
    url: str

    @classmethod
    def parse(cls, text: str) -> DeviceSpec:
        parts = text.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"device {text!r}: expected NAME:PROTOCOL:URL, e.g. oximeter:masimo-ascii:/dev/ttyUSB0"
            )
        return cls(*parts)


class SequenceCounter:
    """Per-device message sequence that keeps increasing across gateway restarts.

    It starts at the start time in microseconds, so a restarted gateway never reuses a number the core has
    already stored (the core stores each (device, seq) once).
    """

    def __init__(self, clock: Clock) -> None:
        self._next = int(clock.now() * 1_000_000)
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value


class DeviceAdapter:
    def __init__(
        self,
        site: str,
        room: str,
        spec: DeviceSpec,
        protocol: ProtocolSpec,
        sink: Callable[[Observation | DeviceStatus | CommandReply], None],
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.site, self.room, self.spec, self.protocol = site, room, spec, protocol
        self._sink = sink
        self._clock = clock
        self.seq = SequenceCounter(clock)
        self.driver = protocol.make_driver()
        self.reconnects = 0
        self.mode = ""
        self._commands: queue.SimpleQueue[tuple[str, dict[str, object], str]] = queue.SimpleQueue()
        self.link_up = False
        self.state = "offline"
        self.conditions: frozenset[str] = frozenset()
        self.reason = "waiting for data"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"adapter-{room}-{spec.name}", daemon=True)
        # no status until the device speaks or 10 s pass: an "offline, waiting for data" at every gateway
        # start would raise a technical alarm for a device that is about to report
        self._last_status_sent = time.monotonic()
        self._last_numeric_at = 0.0
        self._last_key: tuple[str, str, frozenset[str], str] | None = None
        self._reject_kinds_logged: set[str] = set()

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> DeviceAdapter:
        self._thread.start()
        return self

    def stop(self, reason: str = "gateway stopped") -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._set_state("offline", reason, self.conditions, force=True)

    @property
    def counters(self) -> dict[str, int]:
        return {
            "frames_ok": self.driver.frames_ok,
            "rejected": self.driver.rejected,
            "reconnects": self.reconnects,
        }

    def offline_status(self, reason: str) -> DeviceStatus:
        return DeviceStatus(
            self.site,
            self.room,
            self.spec.name,
            self._clock.now(),
            "offline",
            self.protocol.name,
            (),
            reason,
            self.counters,
        )

    # ---- the read loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                transport = open_transport(
                    self.spec.url, self.protocol.baudrate, read_timeout=self.protocol.read_timeout_s
                )
            except ValueError as exc:  # a URL that can never work: say so and stop trying
                log.error("%s/%s: %s", self.room, self.spec.name, exc)
                self._set_state("offline", str(exc), frozenset(), force=False)
                return
            try:
                transport.open()
                self.link_up = True
                attempt = 0
                log.info("%s/%s: opened %s", self.room, self.spec.name, self.spec.url)
                self.driver.connected(self._clock.now())
                self._converse_until_lost(transport)
            except LinkLost as exc:
                if self.link_up or self.state != "offline" or self.reason != str(exc):
                    log.warning("%s/%s: %s", self.room, self.spec.name, exc)
                self._set_state("offline", _short_reason(exc), frozenset(), force=False)
            except Exception:
                # A bug in a driver must not silently end the device's monitoring: say so loudly, show the
                # device offline, and start the conversation again.
                log.exception("%s/%s: adapter failed; reconnecting", self.room, self.spec.name)
                self._set_state("offline", "internal error (see gateway log)", frozenset(), force=False)
            finally:
                transport.close()
                if self.link_up:
                    self.link_up = False
                    self.reconnects += 1
            delay = BACKOFF_STEPS[min(attempt, len(BACKOFF_STEPS) - 1)]
            attempt += 1
            self._stop.wait(delay)

    def command(self, name: str, args: dict[str, object], request_id: str = "") -> None:
        """Called from any thread (the MQTT one): the adapter's thread hands it to the driver."""
        self._commands.put((name, args, request_id))

    def _converse_until_lost(self, transport: SerialTransport | MqttTransport) -> None:
        last_reading = time.monotonic()
        while not self._stop.is_set():
            now = self._clock.now()
            self._take_commands(now)
            transport.write(self.driver.poll(now))
            data = transport.read(bytes_wanted(self.driver))
            # fed even when nothing came: a driver notices a device that stopped answering only with time
            events = self.driver.feed(data, self._clock.now())
            for event in events:
                if isinstance(event, DeviceReading):
                    last_reading = time.monotonic()
                    self._publish_reading(event)
                elif isinstance(event, WaveformBlock):
                    last_reading = time.monotonic()
                    self._publish_waveform(event)
                elif isinstance(event, RejectedFrame):
                    self._note_reject(event)
            silent_for = time.monotonic() - last_reading
            timeout = self.protocol.silence_timeout
            if timeout is not None and silent_for > timeout and self.state == "online":
                self._set_state("offline", f"no data for {silent_for:.0f} s", frozenset(), force=False)
            self._maybe_refresh_status()

    def _take_commands(self, now: float) -> None:
        while True:
            try:
                name, args, request_id = self._commands.get_nowait()
            except queue.Empty:
                return
            accepted, reason = True, ""
            try:
                self.driver.command(name, args, now)
            except CommandRejected as exc:
                accepted, reason = False, str(exc)
            reply = CommandReply(
                self.site, self.room, self.spec.name, now, name, accepted, reason, request_id
            )
            log.info(
                "%s/%s: command %r %s",
                self.room,
                self.spec.name,
                name,
                "accepted" if reply.accepted else f"rejected: {reply.reason}",
            )
            self._sink(reply)
            self._send_status()  # a command may change the schedule the status shows

    def _publish_reading(self, reading: DeviceReading) -> None:
        now = self._clock.now()
        period = self.protocol.numeric_period_s
        unchanged = reading.conditions == self.conditions and (reading.mode in (None, self.mode))
        if period and unchanged and self.state == "online" and now - self._last_numeric_at < period:
            return  # thinned: the next reading within the period carries the same news
        self._last_numeric_at = now
        device_ts = reading.device_time.timestamp() if reading.device_time else None
        conditions = tuple(sorted(reading.conditions))
        if reading.mode is not None:
            self.mode = reading.mode
        self._set_state("online", "", reading.conditions, force=False)
        for m in reading.measurements:
            self._sink(
                Observation(
                    self.site,
                    self.room,
                    self.spec.name,
                    self.seq.take(),
                    now,
                    m.code,
                    m.value,
                    m.unit,
                    m.valid,
                    device_ts,
                    conditions,
                )
            )

    def _publish_waveform(self, block: WaveformBlock) -> None:
        self._sink(
            Observation(
                self.site,
                self.room,
                self.spec.name,
                self.seq.take(),
                self._clock.now(),
                block.code,
                None,
                "1",
                "sensor_off" not in self.conditions,
                None,
                tuple(sorted(self.conditions)),
                block.samples,
                block.sample_rate,
            )
        )

    def _note_reject(self, event: RejectedFrame) -> None:
        kind = event.reason.split(":")[0]
        if kind not in self._reject_kinds_logged:  # log each kind once; the counter counts them all
            self._reject_kinds_logged.add(kind)
            log.warning(
                "%s/%s: rejected input (%s): %r", self.room, self.spec.name, event.reason, event.data[:60]
            )

    # ---- status ---------------------------------------------------------------------------------------

    def _set_state(self, state: str, reason: str, conditions: frozenset[str], *, force: bool) -> None:
        key = (state, reason, conditions, self.mode)
        changed = key != self._last_key
        self.state, self.reason, self.conditions = state, reason, conditions
        if changed or force:
            self._send_status()

    def refresh_status(self) -> None:
        """Send the status again soon (any thread): after a broker restart the retained copy may be the
        Last Will the broker published when it went down."""
        self._last_status_sent = 0.0

    def _maybe_refresh_status(self) -> None:
        """Counters change all the time; resend them every 10 s rather than with every line."""
        if time.monotonic() - self._last_status_sent > 10:
            self._send_status()

    def _send_status(self) -> None:
        self._last_status_sent = time.monotonic()
        self._last_key = (self.state, self.reason, self.conditions, self.mode)
        details_of = getattr(self.driver, "details", None)
        details = details_of() if callable(details_of) else {}
        self._sink(
            DeviceStatus(
                self.site,
                self.room,
                self.spec.name,
                self._clock.now(),
                self.state,
                self.protocol.name,
                tuple(sorted(self.conditions)),
                self.reason,
                self.counters,
                self.mode,
                details,
            )
        )


def _short_reason(exc: Exception) -> str:
    text = str(exc)
    return "link lost: " + text if "open" not in text else "link down: " + text

"""A thin serial transport: open any pyserial URL, read and write bytes, nothing else.

pyserial's `serial_for_url` covers a device path (`/dev/ttyUSB0`), a pty (`/dev/pts/5`), a serial-to-Ethernet
converter (`socket://host:port`) and `loop://`/`spy://` for debugging, all through one call. Interpreting
the bytes is the codec's job; reconnecting is the adapter's.
"""

from __future__ import annotations

import contextlib
import queue
import uuid
from urllib.parse import urlsplit

import serial

from monitor.bus import MqttLink


class LinkLost(Exception):
    """The port went away (unplugged, pty closed, TCP peer gone). The adapter reconnects."""


class SerialTransport:
    def __init__(self, url: str, baudrate: int, *, read_timeout: float = 0.2) -> None:
        self.url = url
        self.baudrate = baudrate
        self.read_timeout = read_timeout
        self._port: serial.SerialBase | None = None

    def open(self) -> None:
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                bytesize=8,
                parity="N",
                stopbits=1,
                timeout=self.read_timeout,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkLost(f"cannot open {self.url}: {exc}") from exc

    def read(self) -> bytes:
        """Whatever arrived within the read timeout (possibly b"")."""
        if self._port is None:
            raise LinkLost("port is not open")
        try:
            waiting = self._port.in_waiting if hasattr(self._port, "in_waiting") else 0
            return bytes(self._port.read(max(1, waiting)))
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"read from {self.url} failed: {exc}") from exc

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._port is None:
            raise LinkLost("port is not open")
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"write to {self.url} failed: {exc}") from exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):  # already gone: best effort
                port.close()


class MqttTransport:
    """`mqtt://HOST:PORT/topic/of/the/device`: each `read()` returns one whole message (or b"").

    Message boundaries are the framing of an MQTT device, so the codec receives exactly one message per
    feed. The device's broker may be the clinic's one or its own.
    """

    def __init__(self, url: str, *, read_timeout: float = 0.2, client_id: str = "") -> None:
        parsed = urlsplit(url)
        if parsed.scheme != "mqtt" or not parsed.hostname or not parsed.path.strip("/"):
            raise ValueError(f"{url!r}: expected mqtt://HOST:PORT/topic")
        self.url = url
        self.topic = parsed.path.lstrip("/")
        self.read_timeout = read_timeout
        self._messages: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._link = MqttLink(
            f"{parsed.hostname}:{parsed.port or 1883}",
            client_id or f"kap-mqtt-device-{uuid.uuid4().hex[:8]}",
            subscriptions=[self.topic],
            on_message=self._on_message,
        )
        self._opened = False

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self._messages.put(payload)

    def open(self) -> None:
        self._link.start()
        self._opened = True
        if not self._link.wait_connected(5):
            self.close()
            raise LinkLost(f"cannot reach the device's broker for {self.url}")

    def read(self) -> bytes:
        if not self._link.connected:
            raise LinkLost(f"lost the device's broker for {self.url}")
        try:
            return self._messages.get(timeout=self.read_timeout)
        except queue.Empty:
            return b""

    def write(self, data: bytes) -> None:
        """MQTT devices take no commands from us; anything a driver sends is dropped."""

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._link.stop()


def open_transport(url: str, baudrate: int, *, read_timeout: float) -> SerialTransport | MqttTransport:
    """The transport a device URL names: `mqtt://...` subscribes, anything else is a pyserial URL."""
    if url.startswith("mqtt://"):
        return MqttTransport(url, read_timeout=read_timeout)
    return SerialTransport(url, baudrate, read_timeout=read_timeout)

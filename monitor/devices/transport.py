"""A thin serial transport: open any pyserial URL, read and write bytes, nothing else.

pyserial's `serial_for_url` covers a device path (`/dev/ttyUSB0`), a pty (`/dev/pts/5`), a serial-to-Ethernet
converter (`socket://host:port`) and `loop://`/`spy://` for debugging, all through one call. Interpreting
the bytes is the codec's job; reconnecting is the adapter's.

Waiting for bytes is this module's own, for a local port (a tty or a pty), because of what a gateway with
many devices costs:

- **One wake-up per message, not per byte.** `read(wanted)` waits with poll() and then takes everything
  that arrived in one `os.read`. With `wanted` > 1 (a Nonin packet is 125 bytes, sent as 25 frames over a
  third of a second) the port's VMIN is set to it, and the kernel's tty layer reports the port readable only
  once that many bytes are there: the thread sleeps through the frames and wakes once the packet is
  complete, adding no delay. At the read timeout whatever arrived is returned all the same.
- **No limit on descriptor numbers.** pyserial waits with select(), which refuses descriptors numbered
  1024 and up ("filedescriptor out of range in select()"): a gateway with some 40 rooms has more. poll()
  has no such limit, for reading and for writing.

Other URLs (`socket://`, `loop://`...) use pyserial's own read and write.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import termios
import time
import uuid
from urllib.parse import urlsplit

import serial
from serial.serialposix import Serial as PosixSerial

from monitor.bus import MqttLink

#: the most bytes one read takes (about 4 s of a 9600-baud line)
READ_SIZE = 4096
#: VMIN is one byte in termios
MAX_VMIN = 255
#: a port that takes no bytes for this long while we write is gone (a device that stopped reading)
WRITE_TIMEOUT_S = 2.0
_BROKEN = select.POLLERR | select.POLLHUP | select.POLLNVAL


class LinkLost(Exception):
    """The port went away (unplugged, pty closed, TCP peer gone). The adapter reconnects."""


class SerialTransport:
    def __init__(self, url: str, baudrate: int, *, read_timeout: float = 0.2) -> None:
        self.url = url
        self.baudrate = baudrate
        self.read_timeout = read_timeout
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None  # a local port's descriptor, waited on with poll()
        self._is_tty = False
        self._vmin = 0
        self._readable = select.poll()
        self._writable = select.poll()

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
        if isinstance(self._port, PosixSerial):
            self._fd = self._port.fileno()
            self._is_tty = os.isatty(self._fd)
            self._vmin = 0  # pyserial's setting: readable from the first byte
            self._readable.register(self._fd, select.POLLIN)
            self._writable.register(self._fd, select.POLLOUT)

    def read(self, wanted: int = 1) -> bytes:
        """Whatever arrived within the read timeout (possibly b""), returned as soon as `wanted` bytes
        are there (a local tty; elsewhere as soon as any byte is)."""
        if self._port is None:
            raise LinkLost("port is not open")
        if self._fd is None:
            return self._pyserial_read()
        try:
            if self._is_tty:
                self._set_vmin(min(max(wanted, 1), MAX_VMIN))
            self._readable.poll(self.read_timeout * 1000)
            return self._drain(self._fd)
        except (OSError, termios.error) as exc:
            raise LinkLost(f"read from {self.url} failed: {exc}") from exc

    def _drain(self, fd: int) -> bytes:
        """Everything waiting, in as many reads as it takes (a tty hands over at most 64 bytes a read when
        VMIN is above 1); b"" when nothing is."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(fd, READ_SIZE)
            except BlockingIOError:  # all taken, or nothing arrived before the timeout
                return b"".join(chunks)
            if not chunk:
                if chunks:
                    return b"".join(chunks)
                # readable but empty: the other end hung up (an unplugged USB adapter does this)
                raise OSError("the device hung up")
            chunks.append(chunk)
            if sum(map(len, chunks)) >= READ_SIZE:
                return b"".join(chunks)

    def _set_vmin(self, vmin: int) -> None:
        """How many bytes must be waiting before poll() calls the port readable (n_tty: with VTIME 0)."""
        if vmin == self._vmin:
            return
        assert self._fd is not None
        attrs = termios.tcgetattr(self._fd)
        attrs[6][termios.VMIN] = vmin
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        self._vmin = vmin

    def _pyserial_read(self) -> bytes:
        assert self._port is not None
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
            if self._fd is None:
                self._port.write(data)
            else:
                self._write_fd(self._fd, memoryview(data))
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"write to {self.url} failed: {exc}") from exc

    def _write_fd(self, fd: int, rest: memoryview) -> None:
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while rest:
            try:
                rest = rest[os.write(fd, rest) :]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            events = self._writable.poll(max(left, 0) * 1000) if left > 0 else []
            if not events:
                raise OSError(f"the port took no bytes for {WRITE_TIMEOUT_S:.0f} s")
            if events[0][1] & _BROKEN:
                raise OSError("the device hung up")

    def close(self) -> None:
        port, self._port = self._port, None
        fd, self._fd = self._fd, None
        if fd is not None:
            for poller in (self._readable, self._writable):
                with contextlib.suppress(KeyError, ValueError):
                    poller.unregister(fd)
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

    def read(self, wanted: int = 1) -> bytes:
        """The next message, or b"" after the read timeout (`wanted` is moot: a message is whole)."""
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

"""A thin serial transport: open any pyserial URL, read and write bytes, nothing else.

pyserial's `serial_for_url` covers a device path (`/dev/ttyUSB0`), a pty (`/dev/pts/5`), a serial-to-Ethernet
converter (`socket://host:port`) and `loop://`/`spy://` for debugging, all through one call. Interpreting
the bytes is the codec's job; reconnecting is the adapter's.
"""

from __future__ import annotations

import contextlib

import serial


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

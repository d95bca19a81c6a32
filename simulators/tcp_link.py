"""Serve a simulated device's bytes over TCP, as a serial-to-Ethernet converter serves a real one.

Clinics often reach bedside devices through terminal servers; pyserial opens them as
`socket://host:port`. This link listens, accepts any number of clients, and sends every line to each.
Like a converter, it does not buffer for absent clients: bytes written while nobody is connected are lost,
and a client that stops reading (its socket buffer full) is disconnected rather than fed stale data.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class TcpLink:
    """A listening TCP socket whose `write(data)` goes to every connected client; never blocks.

    New clients are accepted at each `write()` (once per device line), which keeps the link free of
    threads; with a 1 s line period a client waits at most a second for its first line.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = socket.create_server((host, port))
        self._server.setblocking(False)
        self._clients: list[socket.socket] = []
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); port 0 at construction becomes the port the OS chose."""
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """What pyserial opens: `serial.serial_for_url(link.url)`."""
        host, port = self.address
        return f"socket://{host}:{port}"

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def _accept_new(self) -> None:
        while True:
            try:
                client, peer = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            client.setblocking(False)
            self._clients.append(client)
            log.info("tcp client connected from %s:%s", *peer[:2])

    def _drop(self, client: socket.socket, reason: str) -> None:
        log.info("tcp client dropped: %s", reason)
        self._clients.remove(client)
        client.close()

    def write(self, data: bytes) -> int:
        """Send `data` to every client; returns len(data) (clients that cannot take it are dropped)."""
        if self._closed:
            raise OSError("tcp link closed")
        self._accept_new()
        for client in list(self._clients):
            try:
                if client.recv(4096, socket.MSG_PEEK) == b"":
                    self._drop(client, "closed by peer")
                    continue
                client.recv(65536)  # a device ignores what it is sent; do not let it pile up
            except (BlockingIOError, InterruptedError):
                pass  # nothing sent to us: the normal case
            except OSError as exc:
                self._drop(client, str(exc))
                continue
            try:
                sent = client.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._drop(client, str(exc))
                continue
            if sent < len(data):
                self._drop(client, "not reading (send buffer full)")
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._server.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

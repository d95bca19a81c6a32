"""The embedded MQTT broker for `kap-monitor demo`: amqtt on loopback, nothing to install, no root.

A clinic runs mosquitto; the demo must work on a bare machine, so it starts this pure-Python broker in a
thread of its own with its own event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from amqtt.broker import Broker

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Starts amqtt on `host:port` in a background thread; `stop()` shuts it down."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: Broker | None = None

    def start(self) -> EmbeddedBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread.start()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def _start() -> Broker:
            broker = Broker(config, loop=self._loop)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout=15)
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=10)
            except Exception:  # shutting down anyway; say so, don't mask the caller's exit
                log.exception("embedded broker did not shut down cleanly")
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

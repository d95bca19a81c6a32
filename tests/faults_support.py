"""Real parts the fault tests break on purpose: a mosquitto that can be stopped and started again on the
same port with its persistence (as a clinic's broker configured by `kap-monitor broker-config`), and a
subscriber that records what reaches the broker."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port, need, wait_for_port


class RestartableMosquitto:
    """mosquitto with persistence on: a graceful stop (SIGTERM, what `systemctl restart` sends) saves the
    persistent sessions and their queued QoS 1 messages, and `start()` brings them back on the same port."""

    def __init__(self, directory: Path) -> None:
        self.binary = need(
            "mosquitto",
            shutil.which("mosquitto")
            or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None),
        )
        self.port = free_port()
        data = directory / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        # `user root`: started as root, mosquitto would drop to user mosquitto, which cannot write its
        # persistence file under the test's private directory (and would say so only in its own log)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\nautosave_interval 30\nmax_queued_messages 100000\nuser root\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RestartableMosquitto:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None


class Recorder:
    """A plain MQTT client subscribed to a topic filter: every message that reached the broker."""

    def __init__(self, broker: RestartableMosquitto, topic: str, client_id: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect_async("127.0.0.1", broker.port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _, p in self.messages]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def stored_seqs(db: Path, device: str) -> list[int]:
    """The sequence numbers of a device's observations in the event log, in log order."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "SELECT seq FROM events WHERE type = 'obs' AND device = ? ORDER BY id", (device,)
        ).fetchall()
    return [int(r[0]) for r in rows]

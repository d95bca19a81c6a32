"""Many MQTT links on one shared network loop, against a real mosquitto that is restarted: every link
connects, delivers, reconnects by itself, keeps its own Last Will, and costs one descriptor and no thread."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest

from monitor.bus import MqttLink
from monitor.mqtt_loop import NetworkLoop
from tests.faults_support import Recorder, RestartableMosquitto, wait_until

pytestmark = pytest.mark.integration

LINKS = 30


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_links_one_thread_reconnect_and_deliver(tmp_path: Path) -> None:
    broker = RestartableMosquitto(tmp_path).start()
    recorder = Recorder(broker, "loop/#", "loop-test-recorder")
    network = NetworkLoop().start()
    links: list[MqttLink] = []
    try:
        wait_until(lambda: recorder.client.is_connected(), 10, "recorder connected")
        gc.collect()  # sockets an earlier test left to the garbage collector must not close meanwhile
        fds, threads = open_descriptors(), threading.active_count()
        links = [
            MqttLink(
                broker.address, f"loop-test-{i}", will=(f"loop/{i}/status", b"gone"), network=network
            ).start()
            for i in range(LINKS)
        ]
        wait_until(lambda: all(link.connected for link in links), 20, "all links connected")
        assert open_descriptors() - fds == LINKS  # one socket each: no socketpair
        assert threading.active_count() == threads  # and no thread of their own

        for i, link in enumerate(links):
            for n in range(10):
                link.publish(f"loop/{i}/obs", f"{i}:{n}".encode())
        wait_until(lambda: len(recorder.payloads()) >= LINKS * 10, 20, "every message delivered")

        broker.stop()
        wait_until(lambda: not any(link.connected for link in links), 20, "all links noticed the outage")
        broker.start()
        wait_until(lambda: all(link.connected for link in links), 30, "all links reconnected by themselves")
        for i, link in enumerate(links):
            link.publish(f"loop/{i}/obs", f"{i}:after".encode())
        expected = {f"{i}:{n}".encode() for i in range(LINKS) for n in [*range(10), "after"]}
        wait_until(
            lambda: expected <= set(recorder.payloads()), 10, "everything delivered, after the restart too"
        )

        # a link whose connection dies without a DISCONNECT gets its own Last Will published (mosquitto
        # also publishes some wills of the clients it had when it was restarted: those are not counted)
        wills_before = len(recorder.messages)
        links[3].client.socket().close()  # type: ignore[union-attr]
        wait_until(lambda: b"gone" in recorder.payloads()[wills_before:], 20, "link 3's Last Will")
        assert [t for t, p in recorder.messages[wills_before:] if p == b"gone"] == ["loop/3/status"]
    finally:
        for link in links:
            link.stop()
        network.stop()
        recorder.stop()
        broker.stop()

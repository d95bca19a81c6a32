"""The gateway's outbox against a real mosquitto that is stopped and started again: nothing the broker did
not acknowledge is lost, it arrives in order, the normal case writes nothing to disk, and the bound holds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.bus import MqttLink
from monitor.outbox import Outbox, OutboxFile
from tests.conftest import ROOT
from tests.faults_support import Recorder, RestartableMosquitto, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = RestartableMosquitto(tmp_path).start()
    yield broker
    broker.stop()


class Sender:
    """An MqttLink wired to an outbox, as a gateway wires each device."""

    def __init__(self, broker: RestartableMosquitto, file: OutboxFile, name: str = "dev") -> None:
        self.link = MqttLink(
            broker.address,
            f"outbox-test-{name}",
            keepalive=5,
            on_published=lambda mid: self.outbox.on_published(mid),
            on_disconnect=lambda: self.outbox.on_disconnect(),
        )
        self.outbox: Outbox = file.outbox(f"{broker.address}/{name}", self.link)
        self.link.start()
        assert self.link.wait_connected(5)

    def send(self, first: int, last: int) -> None:
        for i in range(first, last):
            self.outbox.publish("t/dev/obs", str(i).encode())

    def stop(self) -> None:
        self.outbox.close()
        self.link.stop()


def numbers(recorder: Recorder) -> list[int]:
    return [int(p) for p in recorder.payloads()]


def test_broker_up_nothing_is_written_to_disk(broker: RestartableMosquitto, tmp_path: Path) -> None:
    recorder = Recorder(broker, "t/#", "outbox-test-recorder")
    wait_until(lambda: recorder.client.is_connected(), 10, "recorder connected")
    file = OutboxFile(tmp_path / "outbox.sqlite").start()
    sender = Sender(broker, file)
    sender.send(0, 500)
    wait_until(lambda: len(recorder.payloads()) == 500, 20, "500 messages received")
    wait_until(lambda: sender.outbox.acknowledged == 500, 10, "500 PUBACKs taken")
    assert numbers(recorder) == list(range(500))
    assert sender.outbox.written == 0
    assert sender.outbox.pending == 0
    sender.stop()
    file.close()
    recorder.stop()


def test_outage_kept_on_disk_and_delivered_in_order(broker: RestartableMosquitto, tmp_path: Path) -> None:
    recorder = Recorder(broker, "t/#", "outbox-test-recorder")  # persistent session: queued while away
    wait_until(lambda: recorder.client.is_connected(), 10, "recorder connected")
    file = OutboxFile(tmp_path / "outbox.sqlite").start()
    sender = Sender(broker, file)
    sender.send(0, 100)
    wait_until(lambda: sender.outbox.acknowledged == 100, 10, "first 100 acknowledged")
    broker.stop()
    wait_until(lambda: not sender.link.connected, 10, "link down")
    sender.send(100, 300)  # the broker is away: every one goes to the file at once
    assert sender.outbox.written >= 200
    assert file.stats(sender.outbox.stream)[0] == 200
    broker.start()
    sender.send(300, 400)  # while the backlog drains, new ones queue behind it
    wait_until(lambda: len(recorder.payloads()) >= 400, 30, "all 400 received")
    wait_until(lambda: sender.outbox.pending == 0, 10, "outbox empty")
    assert numbers(recorder) == list(range(400))  # each once, in order
    assert file.stats(sender.outbox.stream)[0] == 0
    assert sender.outbox.evicted == 0
    sender.stop()
    file.close()
    recorder.stop()


KILLED_SENDER = """
import sys, time
from monitor.outbox import OutboxFile
from tests.test_outbox import Sender
from tests.faults_support import RestartableMosquitto
broker = RestartableMosquitto.__new__(RestartableMosquitto)
broker.port = int(sys.argv[1])
file = OutboxFile(sys.argv[2]).start()
sender = Sender(broker, file)
print("connected", flush=True)
sys.stdin.readline()  # the broker is stopped now
sender.send(0, 50)
print("sent", flush=True)
time.sleep(60)
"""


def test_killed_during_outage_the_next_process_delivers_first(
    broker: RestartableMosquitto, tmp_path: Path
) -> None:
    recorder = Recorder(broker, "t/#", "outbox-test-recorder")
    wait_until(lambda: recorder.client.is_connected(), 10, "recorder connected")
    path = tmp_path / "outbox.sqlite"
    first = subprocess.Popen(
        [sys.executable, "-c", KILLED_SENDER, str(broker.port), str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline() == b"connected\n"
        broker.stop()
        first.stdin.write(b"go\n")
        first.stdin.flush()
        assert first.stdout.readline() == b"sent\n"
    finally:
        first.kill()  # SIGKILL: nothing flushed, nothing closed
        first.wait()
    broker.start()
    file = OutboxFile(path).start()
    restarted = Sender(broker, file)
    restarted.send(50, 60)
    wait_until(lambda: len(recorder.payloads()) >= 60, 30, "60 received")
    wait_until(lambda: restarted.outbox.pending == 0, 10, "outbox empty")
    assert numbers(recorder) == list(range(60))
    restarted.stop()
    file.close()
    recorder.stop()


def test_bounded_oldest_evicted_and_counted(broker: RestartableMosquitto, tmp_path: Path) -> None:
    recorder = Recorder(broker, "t/#", "outbox-test-recorder")
    wait_until(lambda: recorder.client.is_connected(), 10, "recorder connected")
    file = OutboxFile(tmp_path / "outbox.sqlite", limit=40).start()
    sender = Sender(broker, file)
    broker.stop()
    wait_until(lambda: not sender.link.connected, 10, "link down")
    sender.send(0, 100)
    assert sender.outbox.evicted == 60
    assert file.stats(sender.outbox.stream)[0] == 40
    broker.start()
    wait_until(lambda: len(recorder.payloads()) >= 40, 30, "the 40 kept received")
    wait_until(lambda: sender.outbox.pending == 0, 10, "outbox empty")
    assert numbers(recorder) == list(range(60, 100))  # the newest, in order
    sender.stop()
    file.close()
    recorder.stop()


def test_limit_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OutboxFile(tmp_path / "outbox.sqlite", limit=0)


def test_gateway_reports_evictions_in_its_status(broker: RestartableMosquitto, procs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A gateway whose outbox overflows during an outage says so where people look: the device's status
    (`details.outbox_evicted`, retained) and its log; what it kept arrives, oldest dropped first."""
    link = tmp_path / "ox"
    sim = procs("simulate", "--device", "oximeter:masimo-ascii", "--link", str(link), "--period", "0.1")
    sim.wait_for_output("simulating")
    gateway = procs(
        "gateway", "--broker", broker.address, "--room", "room1", "--device", f"oximeter:masimo-ascii:{link}",
        "--outbox", str(tmp_path / "outbox.sqlite"), "--outbox-limit", "5",
    )  # fmt: skip
    gateway.wait_for_output("gateway: clinic/room1/oximeter")
    statuses = Recorder(broker, "kap/clinic/room1/oximeter/status", "outbox-test-status")
    wait_until(lambda: bool(statuses.payloads()), 20, "a first status")
    broker.stop()
    time.sleep(3)  # ~20 readings a second: far more than 5 wait in the outbox
    broker.start()
    evicted = lambda: [  # noqa: E731
        json.loads(p)["details"].get("outbox_evicted", 0) for p in statuses.payloads()
    ]
    wait_until(lambda: max(evicted()) > 0, 20, "a status reporting evictions")
    assert "outbox" in gateway.output() and "dropped the oldest" in gateway.output()
    statuses.stop()

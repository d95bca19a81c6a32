"""All real: simulator process -> pty -> gateway process -> mosquitto -> core process -> SQLite file."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor import mdc
from monitor.store import EventLog

pytestmark = pytest.mark.integration


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored_values(db: Path, code: int) -> list[float | None]:
    if not db.exists():
        return []
    return [o.value for o in EventLog(db).observations("clinic", "room1", codes=[code])]


class StatusWatcher:
    """Subscribes to a device's status topic and records (arrival time, payload)."""

    def __init__(self, broker_port: int, topic: str) -> None:
        self.seen: list[tuple[float, dict]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *_: (c.subscribe(topic, qos=1), self._ready.set())
        self.client.on_message = lambda c, u, m: self.seen.append((time.monotonic(), json.loads(m.payload)))
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        assert self._ready.wait(5)

    def first_state_after(self, state: str, since: float) -> float | None:
        return next((t for t, p in self.seen if t >= since and p["state"] == state), None)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_stored_values_equal_what_the_simulator_wrote(room1) -> None:  # type: ignore[no-untyped-def]
    sim, db = room1.sim, room1.db
    for spo2, pulse in ((91, 77), (88, 104), (96, 65)):
        sim.send(f"spo2 {spo2}")
        sim.send(f"pulse {pulse}")
        wait_until(lambda s=spo2: s in stored_values(db, mdc.SPO2.code), 10, f"SpO2 {spo2} stored")
        wait_until(lambda p=pulse: p in stored_values(db, mdc.PULSE_RATE.code), 10, f"pulse {pulse} stored")
    spo2_values = stored_values(db, mdc.SPO2.code)
    # the held values arrived in the order the simulator wrote them
    order = [spo2_values.index(v) for v in (91, 88, 96)]
    assert order == sorted(order)
    log = EventLog(db)
    obs = log.observations("clinic", "room1", codes=[mdc.SPO2.code])
    assert all(o.unit == "%" and o.device == "oximeter" for o in obs)
    seqs = [o.seq for o in obs]
    assert len(seqs) == len(set(seqs)), "each (device, seq) is stored once"
    assert "online" in [s.state for s in log.statuses("clinic", "room1")]


def test_killing_the_simulator_makes_the_device_offline_within_5_seconds(room1, mosquitto) -> None:  # type: ignore[no-untyped-def]
    sim, db = room1.sim, room1.db
    wait_until(lambda: stored_values(db, mdc.SPO2.code), 10, "first reading stored")
    watcher = StatusWatcher(mosquitto.port, "kap/clinic/room1/oximeter/status")
    try:
        wait_until(lambda: any(p["state"] == "online" for _, p in watcher.seen), 5, "retained online status")
        killed_at = time.monotonic()
        sim.kill()
        offline_at = wait_until(
            lambda: watcher.first_state_after("offline", killed_at), 5.0, "offline status"
        )
        assert isinstance(offline_at, float) and offline_at - killed_at < 5.0
        payload = next(p for t, p in watcher.seen if t >= killed_at and p["state"] == "offline")
        assert payload["reason"], "offline says why"
        wait_until(
            lambda: EventLog(db).statuses("clinic", "room1")[-1].state == "offline", 5, "offline stored"
        )
    finally:
        watcher.close()


def test_gateway_death_is_announced_by_the_last_will(room1, mosquitto) -> None:  # type: ignore[no-untyped-def]
    gateway, db = room1.gateway, room1.db
    wait_until(lambda: stored_values(db, mdc.SPO2.code), 10, "first reading stored")
    watcher = StatusWatcher(mosquitto.port, "kap/clinic/room1/oximeter/status")
    try:
        killed_at = time.monotonic()
        gateway.kill()  # SIGKILL: no goodbye; the broker must say it
        wait_until(lambda: watcher.first_state_after("offline", killed_at), 15, "Last Will offline")
        payload = next(p for t, p in watcher.seen if t >= killed_at and p["state"] == "offline")
        assert payload["reason"] == "gateway connection lost"
    finally:
        watcher.close()


def test_the_core_rejects_bad_messages_and_keeps_storing_good_ones(room1, mosquitto) -> None:  # type: ignore[no-untyped-def]
    sim, core, db = room1.sim, room1.core, room1.db
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bad-publisher")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        for topic, payload in [
            ("kap/clinic/room1/oximeter/obs", b"\xff\xfe garbage"),
            ("kap/clinic/room1/oximeter/obs", b'{"ts": "2026-11-24T10:00:00Z", "seq": 5}'),
            (
                "kap/clinic/room1/oximeter/obs",
                b'{"ts": "2026-11-24T10:00:00Z", "seq": 5, "code": 150456, '
                b'"value": NaN, "unit": "%", "valid": true}',
            ),
            ("kap/clinic/room1/oximeter/status", b'{"ts": "2026-11-24T10:00:00Z", "state": "sleepy"}'),
            ("kap/clinic/room1/nonsense", b"{}"),
            ("kap/clinic/room 1/oximeter/obs", b"{}"),
        ]:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    sim.send("spo2 90")
    wait_until(lambda: 90 in stored_values(db, mdc.SPO2.code), 10, "good reading after the bad ones")
    assert core.process.poll() is None, "the core is still running"
    core.stop()
    out = core.output()
    assert "rejected message" in out
    for kind in ("observation is not JSON", "invalid observation", "invalid status", "unknown topic"):
        assert kind in out, f"{kind!r} reported"


def test_status_command_lists_the_devices_with_their_counters(room1, mosquitto, procs) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: stored_values(room1.db, mdc.SPO2.code), 10, "first reading stored")
    time.sleep(0.5)
    status = procs("status", "--broker", mosquitto.address, "--wait", "1")
    assert status.process.wait(timeout=20) == 0
    out = status.output()
    line = next(line for line in out.splitlines() if "oximeter" in line)
    assert "room1" in line and "masimo-ascii" in line and "online" in line
    assert "FRAMES OK" in out and "RECONNECTS" in out


def test_status_command_says_when_there_is_no_broker(procs) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    status = procs("status", "--broker", f"127.0.0.1:{free_port()}", "--wait", "0.1")
    assert status.process.wait(timeout=30) == 1
    assert "cannot reach the broker" in status.output()

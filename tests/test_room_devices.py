"""A whole simulated room (Nonin, SunTech, Alaris on real ptys) through a gateway process, mosquitto and
the core: BP on demand from MQTT, the pump's numbers and alarms, and a pulled cable."""

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
from monitor.model import Observation
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


class Broker:
    """A test client on the broker: records messages by topic (with arrival time) and publishes."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[tuple[float, str, dict]] = []
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{time.monotonic_ns()}")

        def on_connect(client, *_):  # type: ignore[no-untyped-def]
            for topic in topics:
                client.subscribe(topic, qos=1)
            ready.set()

        self.client.on_connect = on_connect
        self.client.on_message = lambda c, u, m: self.messages.append(
            (time.monotonic(), m.topic, json.loads(m.payload))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5)

    def on(self, topic: str, since: float = 0.0) -> list[dict]:
        return [p for t, top, p in self.messages if top == topic and t >= since]

    def publish(self, topic: str, payload: dict) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def values(db: Path, code: int) -> list[float | None]:
    return (
        [o.value for o in EventLog(db).observations("clinic", "room1", codes=[code])] if db.exists() else []
    )


def test_blood_pressure_is_measured_on_the_cycle_and_on_demand_from_mqtt(room, mosquitto) -> None:  # type: ignore[no-untyped-def]
    _, db = room
    wait_until(lambda: values(db, mdc.NIBP_SYS.code), 15, "the first BP (2 s after connect)")
    systolic = values(db, mdc.NIBP_SYS.code)[0]
    assert systolic is not None and 90 < systolic < 160
    assert values(db, mdc.NIBP_CUFF.code), "cuff pressure was published while inflating"
    first_count = len(values(db, mdc.NIBP_SYS.code))

    broker = Broker(mosquitto.port, "kap/clinic/room1/nibp/reply")
    try:
        sent = time.monotonic()
        broker.publish("kap/clinic/room1/nibp/cmd", {"command": "measure", "request_id": "t1"})
        broker.publish("kap/clinic/room1/nibp/cmd", {"command": "measure", "request_id": "t2"})
        replies = wait_until(
            lambda: (
                len(broker.on("kap/clinic/room1/nibp/reply", sent)) >= 2
                and broker.on("kap/clinic/room1/nibp/reply", sent)
            ),
            5,
            "replies",
        )
        by_id = {r["request_id"]: r for r in replies}  # type: ignore[union-attr]
        assert by_id["t1"]["accepted"] is True
        assert by_id["t2"]["accepted"] is False and "already running" in by_id["t2"]["reason"]
        wait_until(lambda: len(values(db, mdc.NIBP_SYS.code)) > first_count, 10, "the requested BP stored")
        broker.publish("kap/clinic/room1/nibp/cmd", {"command": "inflate-to-the-moon"})
        wait_until(
            lambda: any(
                not r["accepted"] and "inflate" in r["reason"]
                for r in broker.on("kap/clinic/room1/nibp/reply", sent)
            ),
            5,
            "refusal",
        )
    finally:
        broker.close()


def test_a_module_error_becomes_a_technical_condition_with_its_text(room, mosquitto) -> None:  # type: ignore[no-untyped-def]
    simulated, db = room
    wait_until(lambda: values(db, mdc.NIBP_SYS.code), 15, "the first BP")
    simulated.nibp.fail_next(87)
    broker = Broker(mosquitto.port, "kap/clinic/room1/nibp/status")
    try:
        broker.publish("kap/clinic/room1/nibp/cmd", {"command": "measure"})
        wait_until(
            lambda: any(
                "nibp_loose_cuff" in s["conditions"] for s in broker.on("kap/clinic/room1/nibp/status")
            ),
            10,
            "loose cuff condition",
        )
    finally:
        broker.close()


def test_pump_rate_volume_and_occlusion(room, mosquitto) -> None:  # type: ignore[no-untyped-def]
    simulated, db = room
    simulated.pump.start_infusion(50.0, 100.0)
    wait_until(lambda: 50.0 in values(db, mdc.INFUSION_RATE.code), 10, "rate 50 mL/h stored")
    wait_until(lambda: (values(db, mdc.VOLUME_INFUSED.code) or [0])[-1] > 0, 10, "volume infused growing")
    simulated.pump.raise_alarm("OCCLUSION")
    wait_until(
        lambda: any("pump_occlusion" in s.conditions for s in EventLog(db).statuses("clinic", "room1")),
        10,
        "occlusion stored as a technical condition",
    )
    assert any(s.mode == "running" for s in EventLog(db).statuses("clinic", "room1") if s.device == "pump")


def test_a_pulled_cable_is_offline_within_5_s_and_back_after_return(room, mosquitto) -> None:  # type: ignore[no-untyped-def]
    simulated, db = room
    wait_until(lambda: values(db, mdc.SPO2.code), 10, "oximeter readings")
    broker = Broker(mosquitto.port, "kap/clinic/room1/oximeter/status")
    try:
        pulled = time.monotonic()
        simulated.ports["oximeter"].unplug()
        wait_until(
            lambda: any(
                s["state"] == "offline" for s in broker.on("kap/clinic/room1/oximeter/status", pulled)
            ),
            5.0,
            "offline within 5 s",
        )
        returned = time.monotonic()
        count = len(values(db, mdc.SPO2.code))
        simulated.ports["oximeter"].plug()
        wait_until(
            lambda: any(
                s["state"] == "online" for s in broker.on("kap/clinic/room1/oximeter/status", returned)
            ),
            10,
            "online again after the cable returns",
        )
        wait_until(lambda: len(values(db, mdc.SPO2.code)) > count, 10, "publishing again")
        reconnects = broker.on("kap/clinic/room1/oximeter/status", returned)[-1]["counters"]["reconnects"]
        assert reconnects >= 1
    finally:
        broker.close()


def test_the_pleth_is_recorded_as_sample_blocks(room) -> None:  # type: ignore[no-untyped-def]
    _, db = room

    def pleth_blocks() -> list[Observation] | None:
        found = [o for o in EventLog(db).observations("clinic", "room1", codes=[mdc.PLETH.code]) if o.samples]
        return found if len(found) >= 6 else None  # 2 s of pleth: whole heartbeats, not one slice of one

    blocks = wait_until(pleth_blocks, 10, "2 s of pleth blocks")
    assert all(len(b.samples) == 25 and b.sample_rate == 75.0 for b in blocks)  # type: ignore[union-attr]
    assert len({s for b in blocks for s in b.samples}) > 10, "a waveform, not a flat line"  # type: ignore[union-attr]

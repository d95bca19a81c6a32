"""Alarms live, all real: simulator -> gateway -> mosquitto -> core (engine) -> `alarms` topic and log.

Then the proof that replay is exact: the recorded log fed through the engine again gives the very
transitions the core stored live.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor import wire
from monitor.alarm_profile import load_profile
from monitor.alarm_runner import replay
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


class AlarmTopic:
    """Records every transition on kap/clinic/room1/alarms with the wall time it arrived."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[float, dict]] = []
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"alarms-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *_: (c.subscribe("kap/clinic/room1/alarms", qos=1), ready.set())
        self.client.on_message = lambda c, u, m: self.seen.append((time.time(), json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5)

    def first(self, condition: str, state: str) -> tuple[float, dict] | None:
        return next(
            ((t, p) for t, p in self.seen if p["condition"] == condition and p["state"] == state), None
        )

    def send_event(self, payload: dict) -> None:
        self.client.publish("kap/clinic/room1/events", json.dumps(payload), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_desaturation_alarm_raised_on_time_acknowledged_cleared_and_replayed_exactly(
    room1, mosquitto
) -> None:  # type: ignore[no-untyped-def]
    profile = load_profile(None)
    delay = next(r.delay_s for r in profile.rules if r.id == "spo2_low")
    topic = AlarmTopic(mosquitto.port)
    try:
        wait_until(lambda: EventLog(room1.db).observations("clinic", "room1"), 10, "first readings")
        dipped = time.time()
        room1.sim.send("spo2 90")  # below 92 % (medium, 15 s), above 88 % (high)
        arrival, raised = wait_until(lambda: topic.first("spo2_low", "active"), delay + 5, "SpO2 alarm")  # type: ignore[misc]
        raised_ts = wire.parse_iso(raised["ts"])
        assert delay <= raised_ts - dipped <= delay + 1.5, "raised after its condition delay, not before"
        assert arrival - raised_ts < 1.0, "published within 1 s of the moment its delay ran out"
        assert raised["priority"] == "medium" and raised["kind"] == "physiological"
        assert raised["value"] == 90 and raised["limit"] == 92 and raised["device"] == "oximeter"

        topic.send_event({"type": "alarm_ack", "alarm_id": raised["id"], "author": "Nurse Ana"})
        _, acked = wait_until(lambda: topic.first("spo2_low", "acknowledged"), 5, "acknowledged")  # type: ignore[misc]
        assert acked["user"] == "Nurse Ana" and acked["id"] == raised["id"]

        room1.sim.send("spo2 97")
        wait_until(lambda: topic.first("spo2_low", "cleared"), 10, "cleared after recovery")
    finally:
        topic.close()
    room1.core.stop()  # everything it received is committed

    log = EventLog(room1.db)
    stored = log.alarms("clinic", "room1")
    assert [t.state for t in stored if t.condition == "spo2_low"] == ["active", "acknowledged", "cleared"]
    again = replay(profile, log.log("clinic", "room1"), until=stored[-1].ts)
    assert again == stored, "re-running the engine over the log reproduces the live transitions exactly"
    assert replay(profile, log.log("clinic", "room1"), until=stored[-1].ts) == again, "deterministic"


def test_a_side_effect_from_another_system_raises_its_alert_and_bad_events_are_refused(
    room1, mosquitto
) -> None:  # type: ignore[no-untyped-def]
    topic = AlarmTopic(mosquitto.port)
    try:
        topic.send_event({"type": "side_effect", "effect": "vomiting", "severity": "severe", "author": "EHR"})
        topic.send_event({"type": "side_effect", "effect": "itching", "severity": "mild", "author": "EHR"})
        topic.send_event({"type": "note", "text": "denies nausea, mildly dizzy", "author": "EHR"})
        _, vomiting = wait_until(lambda: topic.first("side_effect:vomiting", "active"), 5, "vomiting alert")  # type: ignore[misc]
        assert vomiting["priority"] == "high" and vomiting["kind"] == "clinical"
        _, dizzy = wait_until(
            lambda: topic.first("side_effect:dizziness", "active"), 5, "dizziness from the note"
        )  # type: ignore[misc]
        assert dizzy["priority"] == "low" and dizzy["source_event"]
        time.sleep(0.5)
        assert topic.first("side_effect:nausea", "active") is None, "a negated effect raises nothing"
    finally:
        topic.close()
    room1.core.stop()
    assert "invalid clinical event" in room1.core.output()
    assert {e.effect or e.type for e in EventLog(room1.db).clinical_events("clinic", "room1")} == {
        "vomiting",
        "note",
    }

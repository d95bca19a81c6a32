"""`mqtt-json` devices: every message validated; bad ones refused with a reason; good data around kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor import mdc
from monitor.devices.mqtt_json import MqttJsonCodec
from monitor.model import DeviceReading, RejectedFrame
from monitor.store import EventLog


def feed(*messages: bytes) -> tuple[list[DeviceReading], list[str], MqttJsonCodec]:
    codec = MqttJsonCodec()
    events = [e for m in messages for e in codec.feed(m)]
    readings = [e for e in events if isinstance(e, DeviceReading)]
    reasons = [e.reason for e in events if isinstance(e, RejectedFrame)]
    return readings, reasons, codec


def test_a_full_reading_and_the_single_measurement_shorthand() -> None:
    full = json.dumps(
        {
            "ts": "2026-11-24T14:00:00Z",
            "conditions": ["low_perfusion"],
            "mode": "idle",
            "measurements": [
                {"code": 150456, "value": 97, "unit": "%"},
                {"code": 149530, "value": 71, "unit": "/min", "valid": False},
            ],
        }
    )
    readings, reasons, codec = feed(full.encode(), b'{"code": 150021, "value": 128, "unit": "mm[Hg]"}')
    assert reasons == []
    assert [(m.code, m.value, m.valid) for m in readings[0].measurements] == [
        (150456, 97, True),
        (149530, 71, False),
    ]
    assert readings[0].conditions == {"low_perfusion"} and readings[0].mode == "idle"
    assert readings[0].device_time is not None
    assert readings[1].measurements[0].value == 128
    assert (codec.frames_ok, codec.rejected) == (2, 0)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"code": 150456, "value": 97}', "schema"),
        (b'{"code": 150456, "value": 97, "unit": "%", "colour": "red"}', "schema"),
        (b'{"code": 150456, "value": 150, "unit": "%"}', "outside 0..100"),
        (b'{"code": 157784, "value": -5, "unit": "mL/h"}', "outside 0..2000"),
        (b'{"code": 150456, "value": 97, "unit": "percent"}', "wrong unit"),
        (b'{"measurements": [], "conditions": ["haunted"]}', "unknown condition"),
        (b'{"measurements": [], "ts": "noon"}', "not an RFC 3339 time"),
        (b'{"code": 150456, "value": 97, "unit": "%", "pad": "' + b"x" * 20000 + b'"}', "oversized"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(message: bytes, reason: str) -> None:
    readings, reasons, codec = feed(message)
    assert readings == []
    assert len(reasons) == 1 and reason in reasons[0]
    assert codec.rejected == 1


def test_one_bad_measurement_does_not_cost_the_good_ones() -> None:
    message = json.dumps(
        {
            "measurements": [
                {"code": 150456, "value": 150, "unit": "%"},
                {"code": 149530, "value": 80, "unit": "/min"},
            ]
        }
    ).encode()
    readings, reasons, _ = feed(b"garbage", message, b'{"code": 150456, "value": 95, "unit": "%"}')
    assert [m.value for r in readings for m in r.measurements] == [80, 95]
    assert len(reasons) == 2


@pytest.mark.integration
def test_an_mqtt_device_reaches_the_event_log_through_a_gateway(mosquitto, procs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "kap.sqlite"
    procs("core", "--broker", mosquitto.address, "--db", str(db)).wait_for_output("core: recording")
    url = f"mqtt://127.0.0.1:{mosquitto.port}/vendor/capno-7/data"
    procs(
        "gateway", "--broker", mosquitto.address, "--room", "room3", "--device", f"capno:mqtt-json:{url}"
    ).wait_for_output("gateway:")
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="capno-7")
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    try:
        deadline = time.monotonic() + 15
        stored: list[float | None] = []
        while time.monotonic() < deadline and 14.0 not in stored:
            for payload in (
                b"\x00garbage",
                b'{"code": 151562, "value": 999, "unit": "/min"}',
                b'{"code": 151562, "value": 14, "unit": "/min"}',
            ):
                device.publish("vendor/capno-7/data", payload, qos=1).wait_for_publish(5)
            time.sleep(0.3)
            stored = [
                o.value for o in EventLog(db).observations("clinic", "room3", codes=[mdc.RESP_RATE.code])
            ]
        assert stored and set(stored) == {14.0}, "only the valid respiration rate is stored"
        statuses = EventLog(db).statuses("clinic", "room3")
        assert statuses and statuses[-1].state == "online" and statuses[-1].protocol == "mqtt-json"
    finally:
        device.loop_stop()
        device.disconnect()

"""The MQTT contract: what goes on the wire comes back the same; what breaks it is refused by kind."""

from __future__ import annotations

import json

import pytest

from monitor import wire
from monitor.model import CommandReply, DeviceStatus, Observation

TOPIC = wire.parse_topic("kap/clinic/room1/oximeter/obs")


def test_observation_round_trip_keeps_every_field() -> None:
    obs = Observation(
        "clinic",
        "room1",
        "oximeter",
        42,
        1795558934.412,
        150456,
        97.0,
        "%",
        True,
        1795558934.0,
        ("low_perfusion",),
    )
    payload = json.loads(wire.encode_observation(obs))
    assert payload["ts"] == "2026-11-24T22:22:14.412Z"
    assert payload["code"] == 150456 and payload["unit"] == "%" and payload["valid"] is True
    assert wire.decode_observation(TOPIC, wire.encode_observation(obs)) == obs


def test_status_round_trip() -> None:
    status = DeviceStatus(
        "clinic",
        "room1",
        "oximeter",
        1795558934.5,
        "offline",
        "masimo-ascii",
        ("sensor_off",),
        "link lost",
        {"frames_ok": 3, "rejected": 1, "reconnects": 0},
    )
    status_topic = wire.parse_topic("kap/clinic/room1/oximeter/status")
    assert wire.decode_status(status_topic, wire.encode_status(status)) == status


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("kap/clinic/room1/oximeter", "unknown topic"),
        ("other/clinic/room1/oximeter/obs", "unknown topic"),
        ("kap/clinic/room1/oximeter/bogus", "unknown topic"),
        ("kap/clinic/room 1/oximeter/obs", "bad topic name"),
    ],
)
def test_topics_outside_the_contract_are_refused(topic: str, kind: str) -> None:
    with pytest.raises(wire.WireError) as err:
        wire.parse_topic(topic)
    assert err.value.kind == kind


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"not json", "observation is not JSON"),
        (b'{"ts": "2026-11-24T14:00:00Z", "seq": 1}', "invalid observation"),
        (
            b'{"ts": "2026-11-24T14:00:00Z", "seq": 1, "code": "x", "value": 1, "unit": "%", "valid": true}',
            "invalid observation",
        ),
        (
            b'{"ts": "yesterday", "seq": 1, "code": 1, "value": 1, "unit": "%", "valid": true}',
            "bad timestamp",
        ),
        (
            b'{"ts": "2026-11-24T14:00:00", "seq": 1, "code": 1, "value": 1, "unit": "%", "valid": true}',
            "bad timestamp",
        ),
        (
            b'{"ts": "2026-11-24T14:00:00Z", "seq": -1, "code": 1, "value": 1, "unit": "%", "valid": true}',
            "invalid observation",
        ),
    ],
)
def test_bad_observations_are_refused_with_a_reason(payload: bytes, kind: str) -> None:
    with pytest.raises(wire.WireError) as err:
        wire.decode_observation(TOPIC, payload)
    assert err.value.kind == kind
    assert str(err.value)


def test_status_must_be_online_or_offline() -> None:
    topic = wire.parse_topic("kap/clinic/room1/oximeter/status")
    with pytest.raises(wire.WireError, match="online/offline"):
        wire.decode_status(topic, b'{"ts": "2026-11-24T14:00:00Z", "state": "maybe"}')


def test_a_waveform_block_travels_with_its_samples() -> None:
    block = Observation(
        "clinic",
        "room1",
        "oximeter",
        7,
        1795558934.0,
        150452,
        None,
        "1",
        True,
        None,
        (),
        (120, 130, 140),
        75.0,
    )
    assert wire.decode_observation(TOPIC, wire.encode_observation(block)) == block


def test_a_waveform_block_without_a_sample_rate_is_refused() -> None:
    payload = (
        b'{"ts": "2026-11-24T14:00:00Z", "seq": 1, "code": 150452, "value": null, "unit": "1", '
        b'"valid": true, "samples": [1, 2, 3]}'
    )
    with pytest.raises(wire.WireError, match="sample_rate"):
        wire.decode_observation(TOPIC, payload)


def test_oversized_payloads_are_refused_before_parsing() -> None:
    with pytest.raises(wire.WireError) as err:
        wire.decode_observation(TOPIC, b"[" + b"1," * wire.MAX_PAYLOAD + b"1]")
    assert err.value.kind == "oversized observation"


def test_commands_and_replies_round_trip() -> None:
    command = wire.decode_command(wire.encode_command("measure", request_id="r1", requested_by="nurse"))
    assert (command.name, command.args, command.request_id, command.requested_by) == (
        "measure",
        {},
        "r1",
        "nurse",
    )
    with pytest.raises(wire.WireError, match="invalid command"):
        wire.decode_command(b'{"cmd": "measure"}')
    reply = CommandReply("clinic", "room1", "nibp", 1795558934.5, "measure", False, "busy", "r1")
    topic = wire.parse_topic("kap/clinic/room1/nibp/reply")
    assert wire.decode_reply(topic, wire.encode_reply(reply)) == reply


EVENTS = wire.parse_topic("kap/clinic/room1/events")


def test_events_and_alarms_topics_have_no_device() -> None:
    assert (EVENTS.site, EVENTS.room, EVENTS.device, EVENTS.kind) == ("clinic", "room1", "", "events")
    assert wire.parse_topic("kap/clinic/room1/alarms").kind == "alarms"
    with pytest.raises(wire.WireError):
        wire.parse_topic("kap/clinic/room1/gossip")


def test_a_note_from_another_system_is_accepted_and_named_by_its_bytes() -> None:
    payload = b'{"type": "note", "text": "patient nauseous", "author": "EHR"}'
    event = wire.decode_clinical_event(EVENTS, payload, received_at=1000.0)
    assert (event.type, event.text, event.author, event.ts) == ("note", "patient nauseous", "EHR", 1000.0)
    again = wire.decode_clinical_event(EVENTS, payload, received_at=1005.0)
    assert again.event_id == event.event_id, "a redelivered copy is the same event"
    round_trip = wire.decode_clinical_event(EVENTS, wire.encode_clinical_event(event), received_at=2000.0)
    assert round_trip == event


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b'{"type": "gossip", "author": "x"}', "is not one of"),
        (b'{"type": "note", "author": "x", "text": "  "}', "needs text"),
        (b'{"type": "note", "author": "", "text": "hi"}', "author"),
        (
            b'{"type": "side_effect", "author": "x", "effect": "itching", "severity": "mild"}',
            "effect 'itching'",
        ),
        (
            b'{"type": "side_effect", "author": "x", "effect": "nausea", "severity": "awful"}',
            "severity 'awful'",
        ),
        (b'{"type": "limit_change", "author": "x", "rule": "spo2_low"}', "finite limit"),
        (b'{"type": "note", "author": "x", "text": "hi", "patient_name": "Jane"}', "unknown field"),
        (b'{"type": "note", "author": "x", "text": "' + b"a" * 5000 + b'"}', "at most 4000"),
    ],
)
def test_bad_clinical_events_are_refused_with_a_reason(payload: bytes, detail: str) -> None:
    with pytest.raises(wire.WireError) as err:
        wire.decode_clinical_event(EVENTS, payload, received_at=1.0)
    assert detail in str(err.value)


def test_alarm_transitions_round_trip() -> None:
    from monitor.model import AlarmTransition

    t = AlarmTransition(
        "clinic",
        "room1",
        "room1:spo2_low_high:1000",
        1000.0,
        "acknowledged",
        "high",
        "physiological",
        "spo2_low_high",
        "SpO2 86 % < 88 %",
        86.0,
        88.0,
        "oximeter",
        "Ana",
        "",
        True,
    )
    assert wire.decode_alarm(wire.parse_topic("kap/clinic/room1/alarms"), wire.encode_alarm(t)) == t


def test_session_start_dose_and_assessment_are_validated_and_round_trip() -> None:
    start = wire.decode_clinical_event(
        EVENTS,
        b'{"type": "session_start", "author": "RN Ana", "patient_code": '
        b'"K-1042", "weight_kg": 70, "drug": "ketamine", "route": "iv-infusion", '
        b'"planned_mg_per_kg": 0.5, "duration_min": 40, "nurse": "RN Ana"}',
        1.0,
    )
    assert start.data["patient_code"] == "K-1042" and start.data["weight_kg"] == 70
    assert wire.decode_clinical_event(EVENTS, wire.encode_clinical_event(start), 2.0) == start
    dose = wire.decode_clinical_event(
        EVENTS,
        b'{"type": "dose", "author": "x", "route": "im", "mg": 35, "given_at": "2026-11-24T14:00:00Z"}',
        1.0,
    )
    assert dose.data["mg"] == 35 and dose.data["given_at"] == wire.parse_iso("2026-11-24T14:00:00Z")
    assert wire.decode_clinical_event(EVENTS, wire.encode_clinical_event(dose), 2.0) == dose
    cadss = wire.decode_clinical_event(
        EVENTS, b'{"type": "assessment", "author": "x", "kind": "cadss6", "answers": [1, 0, 2, 0, 1, 0]}', 1.0
    )
    assert cadss.data["score"] == 4
    assert wire.decode_clinical_event(EVENTS, wire.encode_clinical_event(cadss), 2.0) == cadss


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (
            b'{"type": "session_start", "author": "x", "patient_code": "Jane Doe", "weight_kg": 70, "drug": '
            b'"ketamine", "route": "im", "planned_mg": 35}',
            "never a name",
        ),
        (
            b'{"type": "session_start", "author": "x", "patient_code": "K-1", "weight_kg": 7, "drug": '
            b'"ketamine", "route": "im", "planned_mg": 35}',
            "weight_kg",
        ),
        (
            b'{"type": "session_start", "author": "x", "patient_code": "K-1", "weight_kg": 70, "drug": '
            b'"ketamine", "route": "iv-infusion", "planned_mg": 35}',
            "needs duration_min",
        ),
        (b'{"type": "dose", "author": "x", "route": "im"}', "mg or mg_per_kg"),
        (b'{"type": "dose", "author": "x", "route": "im", "mg": -3}', "must be above 0"),
        (b'{"type": "dose", "author": "x", "route": "rectal", "mg": 3}', "route must be one of"),
        (b'{"type": "assessment", "author": "x", "kind": "moaas", "score": 7}', "moaas score must be 0-5"),
        (b'{"type": "assessment", "author": "x", "kind": "cadss6", "answers": [1, 2]}', "needs 6 answers"),
    ],
)
def test_bad_session_events_are_refused_with_a_reason(payload: bytes, detail: str) -> None:
    with pytest.raises(wire.WireError) as err:
        wire.decode_clinical_event(EVENTS, payload, received_at=1.0)
    assert detail in str(err.value)

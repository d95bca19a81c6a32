"""AlarisAsenaDriver (bytes and a fake `now` in, events and bytes out) and AlarisPumpSimulator."""

from __future__ import annotations

import itertools
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import mdc
from monitor.conditions import CONDITION_TEXT
from monitor.devices.alaris_asena import (
    ALARM_CONDITIONS,
    MODE_WORDS,
    REMOTE_CONTROL_REFUSED,
    AlarisAsenaDriver,
    FrameSplitter,
    crc16_ccitt_false,
    encode_frame,
)
from monitor.devices.protocols import CommandRejected, Driver
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame
from simulators.alaris import AlarisPumpSimulator, format_inf_reply
from simulators.pty_link import PtyLink

# The reference example (device-protocols.md section 3); a real pump's reply quoted in mdpnp AlarisMITM.java.
EXAMPLE = b"!INF^8002-51740^-^SET^5.00^ml/h^^12.345^ml^17.91^mmHg^24+^EVENT^127904|A13E\r"
CAPTURED_HOLD = b"!INF^8002-51733^A^HLD^0.00^ml/h^^0.969^ml^530.15^mmHg^00:04:09^EVENT^214725|DB9D\r"
EXAMPLE_EXTRA = {
    "serial": "8002-51740",
    "device_mode": "SET",
    "time_remaining": "24+",
    "log_type": "EVENT",
    "log_id": "127904",
}
INF_COMMAND = b"!INF|4961\r"
ALARM_COMMAND = b"!ALARM|50B2\r"
GOOD_TEXT = "INF^8002-51740^-^SET^5.00^ml/h^^12.345^ml^17.91^mmHg^24+^EVENT^1"
NO_RESPONSE = DeviceReading(measurements=(), conditions=frozenset({"pump_no_response"}))


def rate(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(mdc.INFUSION_RATE.code, value, "mL/h", valid)


def volume(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(mdc.VOLUME_INFUSED.code, value, "mL", valid)


def pressure(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(mdc.PUMP_PRESSURE.code, value, "mm[Hg]", valid)


def inf(**fields: object) -> bytes:
    """An INF reply frame; defaults are the reference example's values."""
    values: dict[str, object] = {
        "serial": "8002-51740", "alarm": "-", "mode": "SET", "rate": 5.0, "volume": 12.345, "pressure": 17.91,
    }  # fmt: skip
    values.update(fields)
    return encode_frame(format_inf_reply(**values))  # type: ignore[arg-type]


def polling_driver(now: float = 0.0, **kwargs: float) -> AlarisAsenaDriver:
    """A driver past its identity queries (answered), with an INF just sent at `now`."""
    driver = AlarisAsenaDriver(**kwargs)
    driver.connected(now)
    for reply in (
        b"INST_SERIALNO^8002-51740",
        b"COMMS_RESPONSE_MAX^4000^ms",
        b"COMMS_PROTOCOL^Asena Rev 2.1.5",
    ):
        assert driver.poll(now) != b""
        assert driver.feed(encode_frame(reply.decode()), now) == []
    assert driver.poll(now) == INF_COMMAND
    return driver


def decode(data: bytes, now: float = 0.0) -> list[CodecEvent]:
    return polling_driver(now).feed(data, now)


def only_reading(data: bytes) -> DeviceReading:
    events = decode(data)
    assert len(events) == 1, events
    assert isinstance(events[0], DeviceReading), events
    return events[0]


def readings(events: list[CodecEvent]) -> list[DeviceReading]:
    return [e for e in events if isinstance(e, DeviceReading)]


def rejects(events: list[CodecEvent]) -> list[RejectedFrame]:
    return [e for e in events if isinstance(e, RejectedFrame)]


# --- CRC and frames -------------------------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize(
    "frame",
    [
        EXAMPLE,
        CAPTURED_HOLD,
        INF_COMMAND,
        ALARM_COMMAND,
        b"!INST_SERIALNO|457D\r",
        b"!COMMS_PROTOCOL|E8DA\r",
        b"!COMMS_RESPONSE_MAX|7E29\r",
        b"!INST_SERIALNO^8002-51740|050B\r",
        b"!COMMS_PROTOCOL^Asena Rev 2.1.5|661A\r",
        b"!COMMS_RESPONSE_MAX^4000^ms|DFDF\r",
        b"!ALARM^AL_NOALM^ ^ |C73B\r",
        b"!REMOTE_CTRL^ENABLED^3CC1|B1F1\r",  # the key 3CC1 is itself the CRC of the serial 8002-51740
        b"!INF_RATE^0.10^ml/h|D407\r",
    ],
)
def test_encode_frame_reproduces_the_frames_quoted_in_the_sources(frame: bytes) -> None:
    text = frame[1 : frame.rindex(b"|")].decode()
    assert encode_frame(text) == frame


def test_encode_frame_refuses_text_that_would_break_the_frame() -> None:
    for text in ("A|B", "A!B", "A\rB", "A\nB"):
        with pytest.raises(ValueError, match="must not contain"):
            encode_frame(text)


# --- the reference example and the captured reply -------------------------------------------------------


def test_reference_example_decodes() -> None:
    driver = polling_driver()
    assert driver.feed(EXAMPLE, 0.1) == [
        DeviceReading(
            measurements=(rate(5.0), volume(12.345), pressure(17.91)), extra=EXAMPLE_EXTRA, mode="set"
        )
    ]
    assert (driver.frames_ok, driver.rejected) == (4, 0)  # 3 identity replies + INF
    assert driver.details() == {
        "serial": "8002-51740",
        "protocol_revision": "Asena Rev 2.1.5",
        "response_max": "4000 ms",
        "poll_interval_s": 1.0,
    }


def test_alarm_flag_is_resolved_with_the_alarm_query() -> None:
    driver = polling_driver()
    assert driver.feed(CAPTURED_HOLD, 0.1) == []  # held until the ALARM answer
    assert driver.poll(0.1) == ALARM_COMMAND
    events = driver.feed(encode_frame("ALARM^AL_OCCLU^OCCLUSION^ "), 0.2)
    assert events == [
        DeviceReading(
            measurements=(rate(0.0), volume(0.969), pressure(530.15)),
            conditions=frozenset({"pump_occlusion"}),
            extra={
                "serial": "8002-51733",
                "device_mode": "HLD",
                "alarm": "AL_OCCLU",
                "alarm_text": "OCCLUSION",
                "time_remaining": "00:04:09",
                "log_type": "EVENT",
                "log_id": "214725",
            },
            mode="stopped",
        )
    ]
    assert driver.poll(0.5) == b""
    assert driver.poll(1.0) == INF_COMMAND  # the INF schedule is kept


@pytest.mark.parametrize(
    ("code", "text", "condition"),
    [
        ("AL_OCCLU", "OCCLUSION", "pump_occlusion"),
        ("AL_NEOIN", " ", "pump_near_end"),
        ("AL_EOIST", "", "pump_end_of_infusion"),
        ("AL_EOIKV", "", "pump_end_of_infusion"),
        ("AL_VTBIS", "", "pump_end_of_infusion"),
        ("AL_VTBIK", "", "pump_end_of_infusion"),
        ("AL_VTBIC", "", "pump_end_of_infusion"),
        ("AL_LWBAT", "", "pump_low_battery"),
        ("AL_EMBAT", "", "pump_low_battery"),
        ("AL_FAULT", "", "pump_alarm"),
        ("AL_DRDIS", "DRIVER DISENGAGED", "pump_alarm"),
        ("AL_XYZZY", "AIR IN LINE", "pump_air_in_line"),  # unknown code, known text
        ("AL_NOALM", " ", "pump_alarm"),  # cleared in between: INF did say alarm
    ],
)
def test_alarm_codes(code: str, text: str, condition: str) -> None:
    driver = polling_driver()
    assert driver.feed(inf(alarm="A", mode="INF"), 0.1) == []
    assert driver.poll(0.1) == ALARM_COMMAND
    [reading] = driver.feed(encode_frame(f"ALARM^{code}^{text}^ "), 0.2)
    assert isinstance(reading, DeviceReading)
    assert reading.conditions == {condition}
    assert reading.extra["alarm"] == code
    assert reading.measurements == (rate(5.0), volume(12.345), pressure(17.91))


def test_unanswered_alarm_query_publishes_the_reading_with_a_generic_alarm() -> None:
    driver = polling_driver()
    assert driver.feed(inf(alarm="A"), 0.1) == []
    assert driver.poll(0.1) == ALARM_COMMAND
    assert driver.feed(b"", 3.0) == []
    [reading] = driver.feed(b"", 3.1)
    assert isinstance(reading, DeviceReading)
    assert reading.conditions == {"pump_alarm"}
    assert reading.extra["alarm"] == "A"
    assert reading.measurements[0] == rate(5.0)


def test_malformed_alarm_reply_is_rejected_and_the_reading_still_published() -> None:
    driver = polling_driver()
    driver.feed(inf(alarm="A"), 0.1)
    assert driver.poll(0.1) == ALARM_COMMAND
    events = driver.feed(encode_frame("ALARM"), 0.2)
    assert [type(e) for e in events] == [RejectedFrame, DeviceReading]
    assert readings(events)[0].conditions == {"pump_alarm"}


def test_a_newer_inf_reply_releases_a_reading_still_waiting_for_its_alarm() -> None:
    driver = polling_driver()
    driver.feed(inf(alarm="A", volume=1.0), 0.1)
    events = driver.feed(inf(volume=2.0), 0.2)
    assert [r.measurements[1].value for r in readings(events)] == [1.0, 2.0]
    assert [r.conditions for r in readings(events)] == [{"pump_alarm"}, set()]


# --- modes and alarm words ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "mode"),
    [
        ("SET", "set"),
        ("HLD", "stopped"),
        ("INF", "running"),
        ("INFUSING", "running"),
        ("RUNNING", "running"),
        ("KVO", "running"),
        ("BOLUS", "running"),
        ("STOPPED", "stopped"),
        ("PAUSED", "stopped"),
        ("ON_HOLD", "stopped"),
        ("on hold", "stopped"),
        ("Standby", "stopped"),
        ("PRIMING", "priming"),  # unknown: kept, lower case
        ("", None),
    ],
)
def test_mode_mapping(word: str, mode: str | None) -> None:
    reading = only_reading(inf(mode=word))
    assert reading.mode == mode
    assert reading.extra["device_mode"] == word


def test_every_mode_word_maps_to_a_known_mode() -> None:
    assert set(MODE_WORDS.values()) == {"running", "stopped", "set"}


@pytest.mark.parametrize(
    ("word", "condition"),
    [
        ("OCCLUSION", "pump_occlusion"),
        ("AL_OCCLU", "pump_occlusion"),
        ("AIR_IN_LINE", "pump_air_in_line"),
        ("air in line", "pump_air_in_line"),
        ("END_OF_INFUSION", "pump_end_of_infusion"),
        ("VTBI_DONE", "pump_end_of_infusion"),
        ("VTBI-COMPLETE", "pump_end_of_infusion"),
        ("NEAR_END", "pump_near_end"),
        ("DOOR_OPEN", "pump_door_open"),
        ("BATTERY_LOW", "pump_low_battery"),
        ("LOW_BATTERY", "pump_low_battery"),
    ],
)
def test_known_alarm_words_in_the_inf_reply_are_mapped_at_once(word: str, condition: str) -> None:
    driver = polling_driver()
    [reading] = driver.feed(inf(alarm=word), 0.1)
    assert isinstance(reading, DeviceReading)
    assert reading.conditions == {condition}
    assert reading.extra["alarm"] == word
    assert driver.poll(0.2) == b""  # no ALARM query needed


def test_no_alarm_is_a_dash() -> None:
    reading = only_reading(inf(alarm="-"))
    assert reading.conditions == frozenset()
    assert "alarm" not in reading.extra


def test_every_alarm_condition_is_a_known_condition() -> None:
    assert set(ALARM_CONDITIONS.values()) <= set(CONDITION_TEXT)
    assert "pump_no_response" in CONDITION_TEXT
    assert "pump_alarm" in CONDITION_TEXT


# --- values and units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected", "extra"),
    [
        ({"rate": 2.5, "rate_unit": "ml/min"}, rate(150.0), {"rate_unit": "ml/min"}),
        ({"rate": 0.12, "rate_unit": "l/h"}, rate(120.0), {"rate_unit": "l/h"}),
        ({"rate": 5.0, "rate_unit": "mL/h"}, rate(5.0), {}),
        ({"rate": 5.0, "rate_unit": "mg/h"}, rate(None, False), {"rate": "5.00", "rate_unit": "mg/h"}),
        (
            {"rate": 0.5, "rate_unit": "ug/kg/min"},
            rate(None, False),
            {"rate": "0.50", "rate_unit": "ug/kg/min"},
        ),
        ({"rate": 5.0, "rate_unit": ""}, rate(None, False), {"rate": "5.00", "rate_unit": ""}),
        ({"volume": 0.5, "volume_unit": "l"}, volume(500.0), {"volume_unit": "l"}),
        (
            {"volume": 12.0, "volume_unit": "mg"},
            volume(None, False),
            {"volume": "12.000", "volume_unit": "mg"},
        ),
        ({"pressure": 2.0, "pressure_unit": "kPa"}, pressure(15.00124), {"pressure_unit": "kPa"}),
        ({"pressure": 10.0, "pressure_unit": "cmH2O"}, pressure(7.35559), {"pressure_unit": "cmH2O"}),
        (
            {"pressure": 1.0, "pressure_unit": "psi"},
            pressure(None, False),
            {"pressure": "1.00", "pressure_unit": "psi"},
        ),
    ],
)
def test_units_are_converted_when_safe_and_never_mislabelled(
    fields: dict[str, object], expected: Measurement, extra: dict[str, str]
) -> None:
    reading = only_reading(inf(**fields))
    assert expected in reading.measurements
    assert {k: v for k, v in reading.extra.items() if k not in EXAMPLE_EXTRA} == extra
    metrics = (mdc.INFUSION_RATE, mdc.VOLUME_INFUSED, mdc.PUMP_PRESSURE)
    assert [m.unit for m in reading.measurements] == [metric.unit for metric in metrics]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"rate": -1.0}, (rate(-1.0, False), volume(12.345), pressure(17.91))),
        ({"volume": -0.5}, (rate(5.0), volume(-0.5, False), pressure(17.91))),
        ({"pressure": -50.0}, (rate(5.0), volume(12.345), pressure(-50.0, False))),
        ({"rate": 1200.01}, (rate(1200.01, False), volume(12.345), pressure(17.91))),
        ({"rate": 1200.0, "volume": 0.0, "pressure": 0.0}, (rate(1200.0), volume(0.0), pressure(0.0))),
        ({"pressure": 2000.5}, (rate(5.0), volume(12.345), pressure(2000.5, False))),
        (
            {"rate": "", "volume": "---", "pressure": "--.--"},
            (rate(None, False), volume(None, False), pressure(None, False)),
        ),
    ],
)
def test_implausible_or_missing_values_are_invalid(
    fields: dict[str, object], expected: tuple[Measurement, ...]
) -> None:
    assert only_reading(inf(**fields)).measurements == expected


def test_drug_field_is_kept_when_present() -> None:
    assert only_reading(inf(drug="KETAMINE")).extra["drug"] == "KETAMINE"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (GOOD_TEXT.rsplit("^", 1)[0], "INF reply has 13 fields, expected 14"),
        (GOOD_TEXT + "^2", "INF reply has 15 fields, expected 14"),
        ("INF", "INF reply has 1 fields, expected 14"),
        (GOOD_TEXT.replace("5.00", "5,00"), "INF rate '5,00' is not a number"),
        (GOOD_TEXT.replace("12.345", "1e3"), "INF volume '1e3' is not a number"),
        (GOOD_TEXT.replace("17.91", "high"), "INF pressure 'high' is not a number"),
    ],
)
def test_malformed_inf_replies_are_rejected_with_a_reason(text: str, reason: str) -> None:
    driver = polling_driver()
    events = driver.feed(encode_frame(text) + EXAMPLE, 0.1)
    assert events[0] == RejectedFrame(reason, encode_frame(text)[:-1])
    assert readings(events)[0].measurements == (rate(5.0), volume(12.345), pressure(17.91))
    assert (driver.frames_ok - 3, driver.rejected) == (1, 1)


# --- CRC errors and framing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (EXAMPLE.replace(b"|A13E", b"|A13F"), "bad CRC: frame says A13F, its text gives A13E"),
        (EXAMPLE.replace(b"5.00", b"9.00"), "bad CRC: frame says A13E, its text gives "),  # corrupted value
        (EXAMPLE.replace(b"|A13E", b"|A13"), "malformed CRC field b'A13': expected 4 hex digits"),
        (EXAMPLE.replace(b"|A13E", b"|A13G"), "malformed CRC field b'A13G': expected 4 hex digits"),
        (EXAMPLE.replace(b"|A13E", b""), "no '|' before a CRC: incomplete frame"),
        (b"!|FFFF\r", "empty command name"),
    ],
)
def test_bad_crc_is_rejected_and_never_decoded(frame: bytes, reason: str) -> None:
    driver = polling_driver()
    events = driver.feed(frame, 0.1)
    assert len(events) == 1
    assert isinstance(events[0], RejectedFrame)
    assert events[0].reason.startswith(reason)
    assert events[0].data == frame[:-1]
    assert (driver.frames_ok - 3, driver.rejected) == (0, 1)
    assert driver.feed(b"", 1.0) == []  # not decoded later either
    assert driver.poll(1.0) == b""  # and a garbled reply is no answer: still waiting for one


def test_lower_case_crc_digits_are_accepted() -> None:
    assert only_reading(EXAMPLE.replace(b"|A13E", b"|a13e")).measurements[0] == rate(5.0)


def test_invalid_utf8_with_a_good_crc_is_rejected() -> None:
    body = GOOD_TEXT.encode().replace(b"SET", b"S\xffT")
    frame = b"!" + body + b"|" + f"{crc16_ccitt_false(body):04X}".encode() + b"\r"
    driver = polling_driver()
    reject = driver.feed(frame + EXAMPLE, 0.1)[0]
    assert reject == RejectedFrame("invalid UTF-8 at offset 19 of the frame", frame[:-1])
    assert driver.rejected == 1


def test_utf8_text_is_accepted_and_control_characters_are_not() -> None:
    assert only_reading(inf(drug="Kétamine")).extra["drug"] == "Kétamine"
    body = b"INF^8002\x0751740^-^SET^5.00^ml/h^^12.345^ml^17.91^mmHg^24+^EVENT^1"
    frame = b"!" + body + b"|" + f"{crc16_ccitt_false(body):04X}".encode() + b"\r"
    [reject] = decode(frame)
    assert reject == RejectedFrame("control character 0x07 at offset 9 of the frame", frame[:-1])


def test_junk_is_one_reject_per_run_and_costs_no_frame() -> None:
    driver = polling_driver()
    stream = (
        b"\x00\xffnoise"
        + EXAMPLE
        + b"more junk\r\nand more"
        + inf(volume=20.0)
        + b"\r\n"
        + inf(volume=21.0)
        + b"tail"
    )
    events = driver.feed(stream, 0.1)
    assert [type(e) for e in events] == [
        RejectedFrame,
        DeviceReading,
        RejectedFrame,
        DeviceReading,
        DeviceReading,
    ]
    assert [(r.reason, r.data) for r in rejects(events)] == [
        ("bytes outside a frame (a frame starts with '!')", b"\x00\xffnoise"),
        ("bytes outside a frame (a frame starts with '!')", b"more junk\r\nand more"),
    ]  # "tail" is not a finished run yet
    assert [r.measurements[1].value for r in readings(events)] == [12.345, 20.0, 21.0]
    assert driver.rejected == 2


def test_whitespace_between_frames_is_not_junk() -> None:
    events = decode(b"\r\n" + EXAMPLE + b"\n \t\r\n" + EXAMPLE + b"\n")
    assert [type(e) for e in events] == [DeviceReading, DeviceReading]


def test_truncated_frame_is_rejected_and_the_next_one_kept() -> None:
    driver = polling_driver()
    events = driver.feed(EXAMPLE[:30] + EXAMPLE, 0.1)
    assert events[0] == RejectedFrame("incomplete frame: a new '!' came before its '\\r'", EXAMPLE[:30])
    assert events[1] == only_reading(EXAMPLE)
    assert len(events) == 2
    assert driver.feed(EXAMPLE[:40], 0.2) == []  # a partial frame waits for its end
    assert driver.feed(EXAMPLE[40:], 0.3) == [only_reading(EXAMPLE)]


def test_over_long_frame_is_rejected_once_and_decoding_resyncs() -> None:
    driver = polling_driver()
    assert driver.feed(b"!INF^" + b"9" * 500, 0.1) == []  # 505 bytes: not over the bound yet
    [reject] = driver.feed(b"9" * 10, 0.2)
    assert reject == RejectedFrame(
        "frame longer than 512 bytes without '\\r'; dropped up to the next '\\r' or '!'",
        b"!INF^" + b"9" * 195,
    )
    for _ in range(50):  # a device spewing without frame ends must not grow memory or the reject count
        assert driver.feed(b"9" * 1000, 0.3) == []
    assert driver.rejected == 1
    assert driver.feed(b"99|ABCD\r" + EXAMPLE, 0.4) == [only_reading(EXAMPLE)]  # the rest of it is dropped
    assert driver.rejected == 1


def test_over_long_frame_resyncs_at_a_new_start() -> None:
    events = decode(b"!" + b"x" * 600 + EXAMPLE)
    assert [type(e) for e in events] == [RejectedFrame, DeviceReading]


def test_long_junk_run_is_reported_once_before_it_ends() -> None:
    splitter = FrameSplitter(max_frame=64)
    assert splitter.feed(b"z" * 64) == []
    [reject] = splitter.feed(b"z")
    assert isinstance(reject, RejectedFrame)
    assert reject.data == b"z" * 65
    assert splitter.feed(b"z" * 5000 + b"!A|") == []  # same run: not reported again


# --- chunking and round trip ----------------------------------------------------------------------------

MIXED_STREAM = (
    b"\x00\xff"
    + EXAMPLE
    + inf(alarm="OCCLUSION", mode="HLD", rate=0.0)
    + EXAMPLE.replace(b"|A13E", b"|0000")
    + b"\r\n"
    + EXAMPLE[:25]
    + b"!"
    + b"Q" * 700
    + b"\r"
    + inf(rate=2.0, rate_unit="ml/min")
    + b"garbage"
    + encode_frame("UNKNOWN_REPLY^1")
    + inf(volume=-1.0)
    + EXAMPLE[:33]
)


def feed_in_chunks(chunks: list[bytes]) -> tuple[list[CodecEvent], int, int]:
    driver = polling_driver()
    events: list[CodecEvent] = []
    for chunk in chunks:
        events.extend(driver.feed(chunk, 0.5))
    return events, driver.frames_ok, driver.rejected


def test_mixed_stream_in_one_chunk() -> None:
    events, frames_ok, rejected = feed_in_chunks([MIXED_STREAM])
    assert [type(e).__name__ for e in events] == [
        "RejectedFrame", "DeviceReading", "DeviceReading", "RejectedFrame", "RejectedFrame", "RejectedFrame",
        "DeviceReading", "RejectedFrame", "DeviceReading",
    ]  # fmt: skip
    assert [r.measurements[0] for r in readings(events)] == [rate(5.0), rate(0.0), rate(120.0), rate(5.0)]
    assert readings(events)[1].conditions == {"pump_occlusion"}
    assert readings(events)[3].measurements[1] == volume(-1.0, False)
    assert (frames_ok - 3, rejected) == (5, 5)  # the unknown reply is a good frame with nothing to publish


def test_byte_at_a_time_equals_one_chunk() -> None:
    whole = feed_in_chunks([MIXED_STREAM])
    assert feed_in_chunks([MIXED_STREAM[i : i + 1] for i in range(len(MIXED_STREAM))]) == whole


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(MIXED_STREAM)), max_size=40))
def test_random_chunking_equals_one_chunk(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(MIXED_STREAM)]
    chunks = [MIXED_STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert feed_in_chunks(chunks) == feed_in_chunks([MIXED_STREAM])


_words = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+:. ", max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    serial=st.text(alphabet="0123456789-ABCXYZ", min_size=1, max_size=12),
    alarm=st.sampled_from(["-", *ALARM_CONDITIONS]),
    mode=st.sampled_from(sorted(MODE_WORDS)),
    rate_value=st.decimals(min_value=0, max_value=1200, places=2),
    volume_value=st.decimals(min_value=0, max_value=99999, places=3),
    pressure_value=st.decimals(min_value=0, max_value=2000, places=2),
    time_remaining=st.sampled_from(["24+", "00:04:09", "23:59:59", ""]),
    log_id=st.integers(min_value=0, max_value=10**9),
    drug=_words,
)
def test_inf_reply_round_trip(
    serial: str, alarm: str, mode: str, rate_value: object, volume_value: object, pressure_value: object,
    time_remaining: str, log_id: int, drug: str,
) -> None:  # fmt: skip
    frame = encode_frame(
        format_inf_reply(serial=serial, alarm=alarm, mode=mode, rate=float(rate_value),  # type: ignore[arg-type]
                         volume=float(volume_value), pressure=float(pressure_value),  # type: ignore[arg-type]
                         time_remaining=time_remaining, log_id=log_id, drug=drug)
    )  # fmt: skip
    reading = only_reading(frame)
    assert reading.measurements == (
        rate(float(rate_value)),  # type: ignore[arg-type]
        volume(float(volume_value)),  # type: ignore[arg-type]
        pressure(float(pressure_value)),  # type: ignore[arg-type]
    )
    assert reading.mode == MODE_WORDS[mode]
    assert reading.conditions == (frozenset() if alarm == "-" else {ALARM_CONDITIONS[alarm]})
    assert reading.extra["serial"] == serial
    assert reading.extra["time_remaining"] == time_remaining
    assert reading.extra["log_id"] == str(log_id)
    assert reading.extra.get("drug", "") == drug


# --- conversation and schedule --------------------------------------------------------------------------


def test_driver_implements_the_protocol() -> None:
    driver: Driver = AlarisAsenaDriver()
    assert (driver.frames_ok, driver.rejected) == (0, 0)
    assert driver.poll(0.0) == b""  # not connected yet
    with pytest.raises(ValueError, match="positive"):
        AlarisAsenaDriver(poll_interval_s=0)


def test_connect_asks_identity_one_at_a_time_then_polls_inf_on_schedule() -> None:
    driver = AlarisAsenaDriver(poll_interval_s=1.0)
    driver.connected(100.0)
    assert driver.poll(100.0) == b"!INST_SERIALNO|457D\r"
    assert driver.poll(100.1) == b""  # waits for the answer
    driver.feed(b"!INST_SERIALNO^8002-51740|050B\r", 100.2)
    assert driver.poll(100.2) == b"!COMMS_RESPONSE_MAX|7E29\r"
    driver.feed(b"!COMMS_RESPONSE_MAX^4000^ms|DFDF\r", 100.3)
    assert driver.poll(100.3) == b"!COMMS_PROTOCOL|E8DA\r"
    driver.feed(b"!COMMS_PROTOCOL^Asena Rev 2.1.5|661A\r", 100.4)
    assert driver.poll(100.4) == INF_COMMAND  # due since connect
    driver.feed(EXAMPLE, 100.45)
    sent: list[float] = []
    now = 100.4
    while now < 104.9:  # the adapter calls poll every few tens of ms
        now = round(now + 0.05, 2)
        if driver.poll(now):
            sent.append(now)
            driver.feed(EXAMPLE, now + 0.01)
    assert sent == [101.0, 102.0, 103.0, 104.0]  # every second from the connect, no drift
    assert b"REMOTE_CTRL" not in b"".join(driver.poll(t) for t in (106.0, 107.0))


def test_no_answer_within_3_s_is_reported_and_polling_goes_on() -> None:
    driver = polling_driver(0.0)
    assert driver.feed(b"", 2.99) == []
    assert driver.poll(2.99) == b""
    assert driver.feed(b"", 3.0) == [NO_RESPONSE]
    assert driver.feed(b"", 3.5) == []  # once per unanswered command
    assert driver.poll(3.5) == INF_COMMAND  # the next poll goes out at once after a timeout
    assert driver.poll(6.49) == b""
    assert driver.poll(6.5) == INF_COMMAND  # timeouts found by poll() come out of the next feed()
    assert driver.feed(b"", 6.5) == [NO_RESPONSE]
    events = driver.feed(EXAMPLE, 7.0)  # the pump is back
    assert events == [only_reading(EXAMPLE)]
    assert driver.poll(7.5) == INF_COMMAND


def test_a_silent_pump_at_connect_is_reported_too() -> None:
    driver = AlarisAsenaDriver()
    driver.connected(0.0)
    assert driver.poll(0.0) == b"!INST_SERIALNO|457D\r"
    assert driver.poll(3.0) == b"!COMMS_RESPONSE_MAX|7E29\r"
    assert driver.feed(b"", 3.0) == [NO_RESPONSE]


def test_late_reply_is_still_decoded() -> None:
    driver = polling_driver(0.0)
    assert driver.poll(3.2) == INF_COMMAND
    assert driver.feed(EXAMPLE, 3.3) == [NO_RESPONSE, only_reading(EXAMPLE)]


def test_poll_command_forces_an_immediate_inf() -> None:
    driver = polling_driver(0.0)
    driver.feed(EXAMPLE, 0.1)
    assert driver.poll(0.3) == b""
    driver.command("poll", {}, 0.3)
    assert driver.poll(0.3) == INF_COMMAND
    driver.feed(EXAMPLE, 0.35)
    assert driver.poll(0.9) == b""
    assert driver.poll(1.3) == INF_COMMAND


@pytest.mark.parametrize("name", ["start", "stop", "set_rate", "measure", "remote_enable", "INF_START", ""])
def test_every_other_command_is_refused(name: str) -> None:
    driver = polling_driver(0.0)
    with pytest.raises(CommandRejected) as refused:
        driver.command(name, {"rate_ml_h": 5.0}, 0.1)
    assert str(refused.value) == REMOTE_CONTROL_REFUSED
    assert driver.poll(0.2) == b""


def test_reconnect_forgets_partial_frames_and_restarts_the_conversation() -> None:
    driver = polling_driver(0.0)
    driver.feed(EXAMPLE[:30], 0.1)
    driver.feed(inf(alarm="A"), 0.2)  # would be held for ALARM
    driver.connected(10.0)
    assert driver.poll(10.0) == b"!INST_SERIALNO|457D\r"
    assert driver.feed(EXAMPLE[30:], 10.1) == []  # the tail of a frame from before the reconnect is junk
    assert driver.feed(b"!INST_SERIALNO^8002-51740|050B\r", 10.2) == [
        RejectedFrame("bytes outside a frame (a frame starts with '!')", EXAMPLE[30:])
    ]
    assert driver.feed(b"", 20.0) == []  # nothing held any more, nothing outstanding


# --- the simulator --------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def quiet_port() -> tuple[object, object]:
    return (lambda: b""), (lambda data: len(data))


def sim_inf(sim: AlarisPumpSimulator) -> DeviceReading:
    reply = sim.handle(INF_COMMAND)
    assert reply.startswith(b"!INF^") and reply.endswith(b"\r")
    return only_reading(reply)


def test_simulator_answers_the_queries_with_the_sources_frames() -> None:
    sim = AlarisPumpSimulator(quiet_port(), seed=1)  # type: ignore[arg-type]
    assert sim.handle(b"!INST_SERIALNO|457D\r") == b"!INST_SERIALNO^8002-51740|050B\r"
    assert sim.handle(b"!COMMS_PROTOCOL|E8DA\r") == b"!COMMS_PROTOCOL^Asena Rev 2.1.5|661A\r"
    assert sim.handle(b"!COMMS_RESPONSE_MAX|7E29\r") == b"!COMMS_RESPONSE_MAX^4000^ms|DFDF\r"
    assert sim.handle(ALARM_COMMAND) == b"!ALARM^AL_NOALM^ ^ |C73B\r"
    reply = sim.handle(INF_COMMAND[:4]) + sim.handle(INF_COMMAND[4:] + b"\n")  # any chunking, LF tolerated
    assert reply.startswith(b"!INF^8002-51740^-^SET^0.00^ml/h^^0.000^ml^")
    assert reply.endswith(b"^mmHg^24+^EVENT^127904|" + reply[-5:-1] + b"\r")
    assert sim.commands_answered == 5


def test_simulator_stays_silent_on_bad_crc_and_unknown_commands() -> None:
    sim = AlarisPumpSimulator(quiet_port())  # type: ignore[arg-type]
    assert sim.handle(b"!INF|4960\r") == b""
    assert sim.handle(b"garbage\r!INF") == b""
    assert sim.handle(b"!REMOTE_CTRL^ENABLED^3CC1|B1F1\r!INF_START|38F3\r") == b""
    # bad CRC, the junk run "garbage\r", and "!INF" cut short by the next "!"
    assert (sim.bad_commands, sim.unknown_commands, sim.commands_answered) == (3, 2, 0)
    sim.responding = False  # a mute pump
    assert sim.handle(INF_COMMAND) == b""
    assert sim.commands_answered == 0


def test_simulator_integrates_volume_with_speed_and_ends_at_vtbi() -> None:
    clock = FakeClock()
    sim = AlarisPumpSimulator(quiet_port(), speed=60.0, clock=clock, near_end_s=0.0)  # type: ignore[arg-type]
    sim.start_infusion(rate_ml_h=120.0, vtbi_ml=10.0)
    clock.now = 1.0  # one simulated minute at 120 mL/h: 2 mL
    reading = sim_inf(sim)
    assert reading.mode == "running"
    assert reading.measurements[:2] == (rate(120.0), volume(2.0))
    assert reading.extra["time_remaining"] == "00:04:00"
    sim.set_rate(60.0)
    clock.now = 2.0  # one more minute at 60 mL/h
    assert sim.snapshot().volume_infused_ml == pytest.approx(3.0)
    clock.now = 100.0  # far past the VTBI
    state = sim.snapshot()
    assert (state.mode, state.volume_infused_ml, state.alarm_code) == ("HLD", pytest.approx(10.0), "AL_EOIST")
    driver = polling_driver()
    assert driver.feed(sim.handle(INF_COMMAND), 0.1) == []
    assert driver.poll(0.1) == ALARM_COMMAND
    [reading] = driver.feed(sim.handle(ALARM_COMMAND), 0.2)
    assert isinstance(reading, DeviceReading)
    assert reading.conditions == {"pump_end_of_infusion"}
    assert reading.mode == "stopped"
    assert reading.measurements[0] == rate(0.0)


def test_simulator_near_end_alarm_is_raised_once_while_infusing() -> None:
    clock = FakeClock()
    sim = AlarisPumpSimulator(quiet_port(), clock=clock, near_end_s=300.0)  # type: ignore[arg-type]
    sim.start_infusion(rate_ml_h=36.0, vtbi_ml=4.0)  # 400 s
    clock.now = 150.0
    assert sim.snapshot().alarm_code == "AL_NEOIN"
    assert sim.snapshot().mode == "INF"
    sim.clear_alarm()
    clock.now = 200.0
    assert sim.snapshot().alarm_code is None


def test_simulator_occlusion_stops_delivery_and_raises_pressure() -> None:
    clock = FakeClock()
    sim = AlarisPumpSimulator(quiet_port(), clock=clock, seed=3)  # type: ignore[arg-type]
    sim.start_infusion(rate_ml_h=3600.0 / 10, vtbi_ml=None)  # 0.1 mL/s
    clock.now = 10.0
    assert sim.snapshot().pressure_mmhg < 30
    sim.raise_alarm("OCCLUSION")
    clock.now = 20.0
    state = sim.snapshot()
    assert (state.mode, state.volume_infused_ml, state.alarm_code) == ("HLD", pytest.approx(1.0), "AL_OCCLU")
    assert state.pressure_mmhg > 500
    assert sim.handle(ALARM_COMMAND) == encode_frame("ALARM^AL_OCCLU^OCCLUSION^ ")
    with pytest.raises(RuntimeError, match="clear the AL_OCCLU alarm"):
        sim.start_infusion(rate_ml_h=5.0)
    sim.clear_alarm()
    assert sim.snapshot().pressure_mmhg < 30
    sim.resume_infusion()
    clock.now = 30.0
    assert sim.snapshot().volume_infused_ml == pytest.approx(2.0)


def test_simulator_unknown_alarm_word_reaches_the_driver_as_a_generic_alarm() -> None:
    sim = AlarisPumpSimulator(quiet_port())  # type: ignore[arg-type]
    sim.raise_alarm("AL_FAULT", "SYSTEM FAULT")
    driver = polling_driver()
    driver.feed(sim.handle(INF_COMMAND), 0.1)
    [reading] = driver.feed(sim.handle(driver.poll(0.1)), 0.2)
    assert isinstance(reading, DeviceReading)
    assert reading.conditions == {"pump_alarm"}
    assert (reading.extra["alarm"], reading.extra["alarm_text"]) == ("AL_FAULT", "SYSTEM FAULT")


def test_simulator_thread_survives_eagain_and_eio() -> None:
    calls = {"read": 0, "write": 0}

    def read() -> bytes:
        calls["read"] += 1
        if calls["read"] % 3 == 0:
            raise OSError(5, "Input/output error")
        if calls["read"] % 3 == 1:
            raise BlockingIOError
        return INF_COMMAND

    def write(data: bytes) -> int:
        calls["write"] += 1
        if calls["write"] % 2:
            raise BlockingIOError
        raise OSError(5, "Input/output error")

    with AlarisPumpSimulator((read, write)) as sim:
        deadline = time.monotonic() + 2.0
        while calls["write"] < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.running
    assert not sim.running
    assert calls["write"] >= 4
    assert sim.replies_dropped == calls["write"]


# --- end to end over a pty ------------------------------------------------------------------------------


def converse(
    driver: AlarisAsenaDriver, port: serial.Serial, until: object, timeout: float = 5.0
) -> list[DeviceReading]:
    """Run the adapter's loop (poll, write, read, feed) until `until(readings)` or the timeout."""
    got: list[DeviceReading] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.time()
        port.write(driver.poll(now))
        data = port.read(max(1, port.in_waiting))
        got.extend(e for e in driver.feed(data, time.time()) if isinstance(e, DeviceReading))
        if until(got):  # type: ignore[operator]
            return got
    raise AssertionError(f"condition not met in {timeout} s; got {got}")


def test_end_to_end_over_a_pty() -> None:
    with PtyLink() as link, AlarisPumpSimulator(link, speed=60.0, seed=7) as sim:
        sim.start_infusion(rate_ml_h=120.0, vtbi_ml=50.0)
        port = serial.Serial(link.slave_path, 38400, timeout=0.02)
        try:
            driver = AlarisAsenaDriver(poll_interval_s=0.1)
            driver.connected(time.time())
            got = converse(driver, port, lambda r: len(r) >= 4)
            assert all(r.mode == "running" and not r.conditions for r in got)
            assert all(r.measurements[0] == rate(120.0) for r in got)
            volumes = [r.measurements[1].value for r in got]
            assert volumes == sorted(volumes) and volumes[-1] > volumes[0] > 0  # type: ignore[operator]
            assert driver.details()["protocol_revision"] == "Asena Rev 2.1.5"
            assert driver.serial == "8002-51740"

            sim.raise_alarm("OCCLUSION")
            got = converse(driver, port, lambda r: bool(r) and "pump_occlusion" in r[-1].conditions)
            last = got[-1]
            assert last.mode == "stopped"
            assert last.measurements[0] == rate(0.0)
            assert last.measurements[2].value > 500  # type: ignore[operator]
            assert sim.bad_commands == 0
            assert driver.rejected == 0
        finally:
            port.close()

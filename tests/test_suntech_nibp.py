"""SunTech Advantage NIBP: framing, the measurement cycle on a fake clock, the simulator over a real pty."""

from __future__ import annotations

import errno
import itertools
import time
from collections.abc import Sequence

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import mdc
from monitor.conditions import CONDITION_TEXT
from monitor.devices.protocols import CommandRejected, Driver
from monitor.devices.suntech_nibp import (
    ABORT,
    FIRST_MEASUREMENT_DELAY_S,
    GET_BP_DATA,
    GET_CUFF_PRESSURE,
    GET_MODULE_DATA,
    JUNK_REPORT_BYTES,
    RESET,
    RETURN_CODE_CONDITIONS,
    START_ADULT,
    START_NEONATE,
    START_PAEDIATRIC,
    BpDataReply,
    CuffPressureReply,
    LetterReply,
    NibpState,
    SuntechFrameError,
    SuntechNibpDriver,
    SuntechReplyDecoder,
    checksum,
    decode_reply,
    encode_command,
    result_reading,
)
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame
from simulators.pty_link import PtyLink
from simulators.suntech import (
    SuntechModule,
    SuntechModuleSimulator,
    encode_bp_data,
    encode_cuff_pressure,
    encode_reply,
)

# device-protocols.md section 2: 120/80, MAP 93, PR 72
REFERENCE_BP = bytes.fromhex("3E 18 78 00 50 00 00 00 00 00 00 00 00 00 00 00 48 00 5D 00 00 00 00 3D")
ACK = bytes.fromhex("3E 04 4F 6F")  # 'O'
DONE = bytes.fromhex("3E 04 4B 73")  # 'K'
T0 = 1_700_000_000.0  # epoch seconds: the fake clock's connect time


def bp(sys: float, dia: float, mean: float, pulse: float, valid: bool = True) -> tuple[Measurement, ...]:
    return (
        Measurement(mdc.NIBP_SYS.code, sys, "mm[Hg]", valid),
        Measurement(mdc.NIBP_DIA.code, dia, "mm[Hg]", valid),
        Measurement(mdc.NIBP_MEAN.code, mean, "mm[Hg]", valid),
        Measurement(mdc.NIBP_PULSE_RATE.code, pulse, "/min", valid),
    )


def cuff(mmhg: float) -> tuple[Measurement, ...]:
    return (Measurement(mdc.NIBP_CUFF.code, mmhg, "mm[Hg]"),)


def readings(events: list[CodecEvent]) -> list[DeviceReading]:
    return [event for event in events if isinstance(event, DeviceReading)]


def rejects(events: Sequence[object]) -> list[RejectedFrame]:
    return [event for event in events if isinstance(event, RejectedFrame)]


# --- framing ------------------------------------------------------------------------------------------


def test_host_commands_are_the_reference_bytes() -> None:
    reference = {
        "3A 20 A6": START_ADULT,
        "3A 87 3F": START_PAEDIATRIC,
        "3A 28 9E": START_NEONATE,
        "3A 79 01 00 4C": ABORT,
        "3A 79 05 00 48": GET_CUFF_PRESSURE,
        "3A 79 03 00 4A": GET_BP_DATA,
        "3A 00 C6": GET_MODULE_DATA,
        "3A 8A 3C": RESET,
    }
    assert {text: command.hex(" ").upper() for text, command in reference.items()} == {
        t: t for t in reference
    }
    for command in (START_ADULT, ABORT, GET_CUFF_PRESSURE, GET_BP_DATA, RESET):
        assert sum(command) % 256 == 0
        assert encode_command(command[1:-1]) == command


def test_reference_bp_example_decodes_to_120_80_map_93_pr_72() -> None:
    assert checksum(REFERENCE_BP[:-1]) == 0x3D
    reply = decode_reply(REFERENCE_BP)
    assert reply == BpDataReply(systolic=120, diastolic=80, mean=93, pulse=72, return_code=0)
    assert result_reading(reply) == DeviceReading(
        measurements=bp(120, 80, 93, 72), conditions=frozenset(), extra={"return_code": "0"}, mode="idle"
    )


def test_simulator_encoders_emit_the_reference_bytes() -> None:
    assert encode_bp_data(120, 80, 93, 72) == REFERENCE_BP
    assert encode_reply("O") == ACK
    assert encode_reply("K") == DONE
    assert encode_cuff_pressure(0x012C) == bytes(
        (0x3E, 0x05, 0x2C, 0x01, -(0x3E + 0x05 + 0x2C + 0x01) & 0xFF)
    )


def test_replies_decode_by_length() -> None:
    assert [decode_reply(encode_reply(letter)) for letter in "OKABENST"] == [
        LetterReply(letter) for letter in "OKABENST"
    ]
    assert decode_reply(encode_cuff_pressure(187)) == CuffPressureReply(187)
    with pytest.raises(SuntechFrameError, match="checksum mismatch: expected 0x6f, got 0x70"):
        decode_reply(ACK[:-1] + b"\x70")
    with pytest.raises(SuntechFrameError, match="unknown reply length 6"):
        decode_reply(b"\x3e\x06\x00\x00\x00\xbc")


@pytest.mark.parametrize(("code", "condition"), sorted(RETURN_CODE_CONDITIONS.items()))
def test_every_return_code_becomes_its_condition_with_invalid_numbers(code: int, condition: str) -> None:
    reading = result_reading(decode_reply(encode_bp_data(120, 80, 93, 72, return_code=code)))
    assert reading.conditions == {condition}
    assert condition in CONDITION_TEXT
    assert reading.measurements == bp(120, 80, 93, 72, valid=False)
    assert reading.extra == {"return_code": str(code)}


def test_the_reference_return_codes_are_all_mapped() -> None:
    assert set(RETURN_CODE_CONDITIONS) == {1, 2, 3, 4, 85, 86, 87, 88, 89, 90, 91, 97, 99}
    assert RETURN_CODE_CONDITIONS[87] == "nibp_loose_cuff"


@pytest.mark.parametrize("code", [5, 42, 0x85, 255])
def test_an_unknown_return_code_is_a_module_error(code: int) -> None:
    reading = result_reading(decode_reply(encode_bp_data(120, 80, 93, 72, return_code=code)))
    assert reading.conditions == {"nibp_module_error"}
    assert not any(m.valid for m in reading.measurements)


@pytest.mark.parametrize(
    "values",
    [
        (0, 0, 0, 0),
        (301, 80, 93, 72),
        (120, 120, 120, 72),
        (80, 120, 93, 72),
        (120, 80, 130, 72),
        (120, 80, 93, 0),
    ],
)
def test_implausible_numbers_are_kept_invalid_and_flagged_out_of_range(
    values: tuple[int, int, int, int],
) -> None:
    reading = result_reading(decode_reply(encode_bp_data(*values)))
    assert reading.measurements == bp(*values, valid=False)
    assert reading.conditions == {"nibp_out_of_range"}


# --- the reply decoder: garbage, checksums, chunking --------------------------------------------------

STREAM = b"\x00\xff" + ACK + encode_cuff_pressure(42) + b"junk" + DONE + REFERENCE_BP + b"\x3e\x99" + ACK
STREAM_REPLIES = [
    LetterReply("O"),
    CuffPressureReply(42),
    LetterReply("K"),
    BpDataReply(120, 80, 93, 72, 0),
    LetterReply("O"),
]


def test_garbage_is_one_rejected_frame_per_run_and_costs_no_reply() -> None:
    decoder = SuntechReplyDecoder()
    events = decoder.feed(STREAM)
    assert [e for e in events if not isinstance(e, RejectedFrame)] == STREAM_REPLIES
    assert [r.data for r in rejects(events)] == [b"\x00\xff", b"junk", b"\x3e\x99"]
    assert (decoder.frames_ok, decoder.rejected) == (5, 3)
    assert isinstance(events[0], RejectedFrame)  # in stream order: the junk before the first reply first


def test_bad_checksums_are_rejected_counted_and_never_decoded() -> None:
    decoder = SuntechReplyDecoder()
    bad_ack = ACK[:-1] + b"\x00"
    bad_bp = REFERENCE_BP[:-1] + b"\x3c"
    events = decoder.feed(bad_ack + bad_ack + DONE + bad_bp)
    assert events == [
        RejectedFrame("checksum mismatch: expected 0x6f, got 0x00", bad_ack),
        RejectedFrame("checksum mismatch: expected 0x6f, got 0x00", bad_ack),
        LetterReply("K"),
        RejectedFrame("checksum mismatch: expected 0x3d, got 0x3c", bad_bp),
    ]
    assert (decoder.frames_ok, decoder.rejected) == (1, 3)


def test_a_reply_inside_a_false_start_is_found_without_waiting_for_more_bytes() -> None:
    decoder = SuntechReplyDecoder()
    # 3E 18 announces a 24-byte packet; the ack behind it must not wait for 20 more bytes that never come
    events = decoder.feed(b"\x3e\x18\x01" + ACK)
    assert [e for e in events if not isinstance(e, RejectedFrame)] == [LetterReply("O")]
    assert [r.data for r in rejects(events)] == [b"\x3e\x18\x01"]
    # a bad-checksum candidate with a 3E inside it: only its first byte is junk, the ack inside survives
    events = decoder.feed(b"\x3e\x05\x00" + ACK)
    assert [e for e in events if not isinstance(e, RejectedFrame)] == [LetterReply("O")]
    assert decoder.rejected == 2


def test_a_long_garbage_run_is_reported_once_as_soon_as_it_is_long() -> None:
    decoder = SuntechReplyDecoder()
    events = decoder.feed(b"\x55" * JUNK_REPORT_BYTES)
    assert rejects(events) == [
        RejectedFrame("garbage: bytes that form no valid reply", b"\x55" * JUNK_REPORT_BYTES)
    ]
    events = decoder.feed(b"\x55" * 1000 + ACK)
    assert events == [LetterReply("O")]
    assert decoder.rejected == 1


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 24])
def test_chunking_does_not_change_the_events(size: int) -> None:
    whole = SuntechReplyDecoder().feed(STREAM)
    decoder = SuntechReplyDecoder()
    chunked = [event for i in range(0, len(STREAM), size) for event in decoder.feed(STREAM[i : i + size])]
    assert chunked == whole


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    decoder = SuntechReplyDecoder()
    events = [e for a, b in itertools.pairwise(points) for e in decoder.feed(STREAM[a:b])]
    assert events == SuntechReplyDecoder().feed(STREAM)


REPLIES = st.one_of(
    st.sampled_from("OKABENST").map(encode_reply),
    st.integers(min_value=0, max_value=400).map(encode_cuff_pressure),
    st.tuples(*[st.integers(min_value=0, max_value=0xFFFF)] * 4, st.integers(0, 255)).map(
        lambda values: encode_bp_data(*values)
    ),
)
JUNK = st.binary(max_size=30).map(lambda junk: junk.replace(b"\x3e", b""))


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.tuples(JUNK, REPLIES), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_every_reply_survives_garbage_around_it_in_any_chunking(
    pieces: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(junk + reply for junk, reply in pieces)
    points = [0, *sorted(cut for cut in cuts if cut < len(stream)), len(stream)]
    decoder = SuntechReplyDecoder()
    events = [e for a, b in itertools.pairwise(points) for e in decoder.feed(stream[a:b])]
    assert [e for e in events if not isinstance(e, RejectedFrame)] == [decode_reply(r) for _, r in pieces]
    assert [r.data for r in rejects(events)] == [junk for junk, _ in pieces if junk]
    assert (decoder.frames_ok, decoder.rejected) == (len(pieces), sum(1 for junk, _ in pieces if junk))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=11, max_value=250).flatmap(
        lambda dia: st.tuples(
            st.integers(min_value=max(dia + 1, 30), max_value=300),
            st.just(dia),
            st.integers(min_value=20, max_value=300),
            st.sampled_from([0, *RETURN_CODE_CONDITIONS]),
            st.floats(min_value=0, max_value=1),
        )
    )
)
def test_encode_bp_data_round_trips_through_the_driver(values: tuple[int, int, int, int, float]) -> None:
    sys, dia, pulse, code, where = values
    mean = dia + round((sys - dia) * where)
    packet = encode_bp_data(sys, dia, mean, pulse, code)
    assert decode_reply(packet) == BpDataReply(sys, dia, mean, pulse, code)
    driver = connected_driver()
    start_measurement(driver, T0)
    assert finish_measurement(driver, T0 + 25, packet) == DeviceReading(
        bp(sys, dia, mean, pulse, valid=code == 0),
        frozenset() if code == 0 else frozenset({RETURN_CODE_CONDITIONS[code]}),
        extra={"return_code": str(code)},
        mode="idle",
    )


# --- the measurement cycle on a fake clock ------------------------------------------------------------


def connected_driver(interval_s: float = 300.0) -> SuntechNibpDriver:
    driver = SuntechNibpDriver(interval_s)
    driver.connected(T0)
    return driver


def start_measurement(driver: SuntechNibpDriver, now: float) -> list[CodecEvent]:
    """Measure now; the module acknowledges; returns the events up to and including the 'O'."""
    driver.command("measure", {}, now)
    assert driver.poll(now) == START_ADULT
    return driver.feed(ACK, now)


def finish_measurement(driver: SuntechNibpDriver, now: float, packet: bytes = REFERENCE_BP) -> DeviceReading:
    events = driver.feed(DONE, now)
    assert driver.poll(now) == GET_BP_DATA
    events += driver.feed(packet, now + 0.05)
    *modes, result = readings(events)
    assert not modes
    return result


def test_the_driver_implements_the_driver_protocol() -> None:
    driver: Driver = SuntechNibpDriver()
    assert driver.frames_ok == 0 and driver.rejected == 0
    assert driver.poll(T0) == b""  # not connected yet: nothing to say


def test_a_full_automatic_cycle_byte_for_byte() -> None:
    driver = SuntechNibpDriver(interval_s=300)
    assert driver.next_measurement_at is None
    driver.connected(T0)
    assert driver.next_measurement_at == T0 + FIRST_MEASUREMENT_DELAY_S
    assert driver.poll(T0 + 1.9) == b""

    now = T0 + 2.0
    assert driver.poll(now) == START_ADULT
    assert driver.next_measurement_at == now + 300
    assert driver.feed(b"", now) == [DeviceReading((), mode="measuring")]
    assert driver.feed(ACK, now + 0.02) == []
    assert driver.state is NibpState.MEASURING

    assert driver.poll(now + 0.05) == GET_CUFF_PRESSURE
    assert driver.poll(now + 0.10) == b""  # one request at a time
    assert driver.feed(encode_cuff_pressure(40), now + 0.1) == [DeviceReading(cuff(40), mode="measuring")]
    assert driver.poll(now + 0.20) == b""  # 0.2 s between polls
    assert driver.poll(now + 0.3) == GET_CUFF_PRESSURE
    assert driver.feed(encode_cuff_pressure(50), now + 0.31) == [DeviceReading(cuff(50), mode="measuring")]

    assert finish_measurement(driver, now + 25) == DeviceReading(
        bp(120, 80, 93, 72), frozenset(), extra={"return_code": "0"}, mode="idle"
    )
    assert driver.state is NibpState.IDLE
    assert driver.poll(now + 299.9) == b""
    assert driver.poll(now + 300) == START_ADULT
    assert driver.frames_ok == 5 and driver.rejected == 0  # O, 2 cuff pressures, K, BP data


def test_measure_now_starts_at_once_and_restarts_the_cycle() -> None:
    driver = connected_driver(interval_s=600)
    driver.command("measure", {}, T0 + 0.5)
    assert driver.poll(T0 + 0.5) == START_ADULT
    assert driver.next_measurement_at == T0 + 600.5


def test_measure_while_measuring_is_rejected() -> None:
    driver = connected_driver()
    driver.command("measure", {}, T0)
    with pytest.raises(CommandRejected, match="a measurement is already running"):
        driver.command("measure", {}, T0)  # requested, not yet sent
    driver.poll(T0)
    driver.feed(ACK, T0)
    with pytest.raises(CommandRejected, match="a measurement is already running"):
        driver.command("measure", {}, T0 + 1)
    with pytest.raises(CommandRejected, match="not connected"):
        SuntechNibpDriver().command("measure", {}, T0)


def test_set_interval_accepts_1_to_60_minutes_and_moves_the_next_measurement() -> None:
    driver = connected_driver()
    start_measurement(driver, T0 + 10)
    driver.command("set_interval", {"minutes": 15}, T0 + 20)
    assert driver.interval_s == 900
    assert driver.next_measurement_at == T0 + 10 + 900
    for minutes in (1, 60, 2.5):
        driver.command("set_interval", {"minutes": minutes}, T0)
        assert driver.interval_s == minutes * 60
    for bad in (0, 61, -5, "5", None, True):
        with pytest.raises(CommandRejected, match="between 1 and 60"):
            driver.command("set_interval", {"minutes": bad}, T0)
    with pytest.raises(CommandRejected, match="between 1 and 60"):
        driver.command("set_interval", {}, T0)
    assert driver.interval_s == 150


def test_unknown_commands_are_rejected_with_the_known_ones() -> None:
    with pytest.raises(
        CommandRejected, match="unknown NIBP command 'inflate'; known: abort, measure, set_interval"
    ):
        connected_driver().command("inflate", {}, T0)


def test_a_silent_module_is_no_response_after_2_s_and_is_retried_at_the_next_cycle() -> None:
    driver = connected_driver()
    now = T0 + 2
    assert driver.poll(now) == START_ADULT
    assert driver.feed(b"", now) == [DeviceReading((), mode="measuring")]
    assert driver.poll(now + 2.0) == b""
    assert driver.poll(now + 2.1) == ABORT  # the cuff may be up: deflate it
    assert driver.feed(b"", now + 2.1) == [DeviceReading((), frozenset({"nibp_no_response"}), mode="idle")]
    assert driver.poll(now + 299) == b""
    assert driver.poll(now + 300) == START_ADULT


def test_a_module_that_stops_answering_mid_measurement_is_no_response() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    assert driver.poll(T0 + 0.1) == GET_CUFF_PRESSURE
    assert driver.poll(T0 + 2.0) == b""
    assert driver.poll(T0 + 2.2) == ABORT
    assert readings(driver.feed(b"", T0 + 2.2)) == [
        DeviceReading((), frozenset({"nibp_no_response"}), mode="idle")
    ]


@pytest.mark.parametrize(
    ("letter", "condition"),
    [
        ("B", "nibp_busy"),
        ("E", "nibp_module_error"),
        ("N", "nibp_module_error"),
        ("T", "nibp_measurement_timeout"),
    ],
)
def test_a_start_refused_by_the_module(letter: str, condition: str) -> None:
    driver = connected_driver()
    driver.command("measure", {}, T0)
    driver.poll(T0)
    assert readings(driver.feed(encode_reply(letter), T0 + 0.05)) == [
        DeviceReading((), mode="measuring"),
        DeviceReading((), frozenset({condition}), mode="idle"),
    ]
    assert driver.poll(T0 + 0.1) == b""  # no abort for a start that never began
    assert driver.state is NibpState.IDLE


def test_a_measurement_longer_than_180_s_is_aborted() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    for step in range(1, 899):  # answered cuff polls up to 179.6 s
        now = T0 + 0.2 * step
        if driver.poll(now) == GET_CUFF_PRESSURE:
            driver.feed(encode_cuff_pressure(60), now)
    assert driver.state is NibpState.MEASURING
    assert driver.poll(T0 + 180.1) == ABORT  # the 300 s cycle is not due yet
    assert driver.feed(b"", T0 + 180.1) == [
        DeviceReading((), frozenset({"nibp_measurement_timeout"}), mode="idle")
    ]


def test_an_overdue_measurement_starts_one_poll_after_the_abort_of_a_failed_one() -> None:
    driver = connected_driver(interval_s=60)
    start_measurement(driver, T0)
    for step in range(1, 899):
        if driver.poll(T0 + 0.2 * step) == GET_CUFF_PRESSURE:
            driver.feed(encode_cuff_pressure(60), T0 + 0.2 * step)
    assert driver.next_measurement_at == T0 + 60  # overdue since long
    assert driver.poll(T0 + 180.1) == ABORT  # not ABORT + START in one write
    assert driver.poll(T0 + 180.15) == START_ADULT


def test_a_failure_stays_in_every_reading_until_a_success_clears_it() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    loose = finish_measurement(driver, T0 + 20, encode_bp_data(0, 0, 0, 0, 87))
    assert loose.conditions == {"nibp_loose_cuff"}
    assert driver.conditions == {"nibp_loose_cuff"}

    events = start_measurement(driver, T0 + 60)
    assert driver.poll(T0 + 60.1) == GET_CUFF_PRESSURE
    events += driver.feed(encode_cuff_pressure(80), T0 + 60.1)
    assert readings(events) == [
        DeviceReading((), frozenset({"nibp_loose_cuff"}), mode="measuring"),
        DeviceReading(cuff(80), frozenset({"nibp_loose_cuff"}), mode="measuring"),
    ]
    assert finish_measurement(driver, T0 + 90).conditions == frozenset()
    assert driver.conditions == frozenset()


def test_abort_command_aborts_and_abort_is_always_sent() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    driver.command("abort", {}, T0 + 3)
    assert driver.poll(T0 + 3) == ABORT
    assert driver.feed(encode_reply("A") + DONE, T0 + 3.01) == [
        DeviceReading((), frozenset({"nibp_aborted"}), mode="idle")
    ]
    driver.command("abort", {}, T0 + 4)  # idle: still sent, nothing else happens
    assert driver.poll(T0 + 4) == ABORT
    assert driver.feed(b"", T0 + 4) == []


def test_late_abort_replies_do_not_fail_the_next_start() -> None:
    driver = connected_driver()
    driver.command("abort", {}, T0)
    driver.command("measure", {}, T0)
    assert driver.poll(T0) == ABORT + START_ADULT
    events = driver.feed(encode_reply("A") + DONE + ACK, T0 + 0.02)
    assert readings(events) == [DeviceReading((), mode="measuring")]
    assert driver.state is NibpState.MEASURING


def test_a_garbled_result_is_asked_for_again() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    driver.feed(DONE, T0 + 20)
    assert driver.poll(T0 + 20) == GET_BP_DATA
    bad = REFERENCE_BP[:-1] + b"\x00"
    assert rejects(driver.feed(bad, T0 + 20.05)) == [
        RejectedFrame("checksum mismatch: expected 0x3d, got 0x00", bad)
    ]
    assert driver.poll(T0 + 20.06) == GET_BP_DATA
    assert readings(driver.feed(REFERENCE_BP, T0 + 20.1))[0].measurements == bp(120, 80, 93, 72)
    assert driver.rejected == 1


def test_no_result_after_three_attempts_is_no_response() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    driver.feed(DONE, T0 + 20)
    sent = [driver.poll(T0 + 20 + 0.5 * i) for i in range(20)]
    assert sent.count(GET_BP_DATA) == 3
    assert driver.feed(b"", T0 + 30) == [DeviceReading((), frozenset({"nibp_no_response"}), mode="idle")]


def test_a_reconnect_mid_measurement_deflates_the_cuff_and_measures_again_soon() -> None:
    driver = connected_driver()
    start_measurement(driver, T0)
    driver.connected(T0 + 10)
    assert driver.state is NibpState.IDLE
    assert driver.poll(T0 + 10) == ABORT
    assert driver.next_measurement_at == T0 + 10 + FIRST_MEASUREMENT_DELAY_S
    assert driver.poll(T0 + 12) == START_ADULT


def test_garbage_on_the_line_does_not_disturb_the_cycle() -> None:
    driver = connected_driver()
    driver.command("measure", {}, T0)
    driver.poll(T0)
    events = driver.feed(b"\x00\x3e" + ACK + b"\xff\xfe", T0)
    assert driver.state is NibpState.MEASURING
    assert driver.poll(T0 + 0.05) == GET_CUFF_PRESSURE
    events += driver.feed(encode_cuff_pressure(30), T0 + 0.06)
    assert readings(events) == [
        DeviceReading((), mode="measuring"),
        DeviceReading(cuff(30), mode="measuring"),
    ]
    assert [r.data for r in rejects(events)] == [b"\x00\x3e", b"\xff\xfe"]
    assert driver.rejected == 2


# --- driver <-> simulated module on a fake clock ------------------------------------------------------


def converse(
    driver: SuntechNibpDriver, module: SuntechModule, start: float, seconds: float
) -> list[CodecEvent]:
    """Run the pair in 50 ms steps of fake time, as the adapter's loop would."""
    events: list[CodecEvent] = []
    steps = round(seconds / 0.05)
    for step in range(steps):
        now = start + step * 0.05
        answer = module.receive(driver.poll(now), now)
        events += driver.feed(answer, now)
    return events


def test_a_full_25_s_measurement_against_the_simulated_module() -> None:
    driver = connected_driver()
    module = SuntechModule(bp_source=lambda: (150, 95, 113, 88), measure_seconds=25)
    events = converse(driver, module, T0, 30)
    shown = readings(events)
    pressures = [
        r.measurements[0].value
        for r in shown
        if r.measurements and r.measurements[0].code == mdc.NIBP_CUFF.code
    ]
    assert shown[0] == DeviceReading((), mode="measuring")
    assert shown[-1] == DeviceReading(
        bp(150, 95, 113, 88), frozenset(), extra={"return_code": "0"}, mode="idle"
    )
    assert 95 <= len(pressures) <= 130  # one every 0.2 s (0.25 s on this 50 ms loop) for ~25 s
    assert max(pressures) == 180  # SYS + 30
    assert 0 < pressures[1] - pressures[0] <= 15  # ~10 mmHg per 0.2 s
    assert driver.rejected == 0


def test_the_simulated_module_answers_busy_invalid_and_fails_on_demand() -> None:
    module = SuntechModule(measure_seconds=1)
    assert module.receive(START_ADULT, 0) == ACK
    assert module.receive(START_ADULT, 0.1) == encode_reply("B")
    assert module.receive(b"\x3a\x20\xa7", 0.1) == encode_reply("N")  # bad checksum
    assert module.receive(GET_BP_DATA, 0.2) == encode_reply("B")  # no result while measuring
    assert module.advance(1.0) == DONE
    assert module.receive(GET_BP_DATA, 1.1) == REFERENCE_BP
    module.fail_next(87)
    module.receive(START_ADULT, 2)
    assert module.receive(GET_CUFF_PRESSURE + GET_CUFF_PRESSURE[:2], 3.5) == DONE + encode_cuff_pressure(0)
    assert module.receive(GET_CUFF_PRESSURE[2:] + GET_BP_DATA, 3.6) == encode_cuff_pressure(
        0
    ) + encode_bp_data(0, 0, 0, 0, 87)
    module.stop_answering()
    assert module.receive(START_ADULT, 4) == b""
    module.resume_answering()
    assert module.receive(START_ADULT, 5) == ACK
    assert module.receive(ABORT, 5.1) == encode_reply("A") + DONE
    assert module.receive(GET_BP_DATA, 5.2) == encode_bp_data(0, 0, 0, 0, 86)


# --- end to end over a real pty -----------------------------------------------------------------------


def measure_over(port: serial.Serial, driver: SuntechNibpDriver, timeout: float) -> list[DeviceReading]:
    """The adapter's loop in miniature: poll, write, read, feed, until a result or the timeout."""
    driver.command("measure", {}, time.time())
    shown: list[DeviceReading] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        port.write(driver.poll(time.time()))
        shown += readings(driver.feed(port.read(port.in_waiting or 1), time.time()))
        if shown and shown[-1].mode == "idle":
            return shown
    raise AssertionError(f"no result in {timeout} s; saw {shown[-3:]}")


def test_end_to_end_over_a_pty_with_pyserial() -> None:
    with (
        PtyLink() as link,
        SuntechModuleSimulator(link, bp_source=lambda: (142, 91, 108, 77), measure_seconds=1.0) as simulator,
        serial.serial_for_url(link.slave_path, baudrate=9600, timeout=0.02) as port,
    ):
        driver = SuntechNibpDriver()
        driver.connected(time.time())

        shown = measure_over(port, driver, timeout=5)
        assert shown[0] == DeviceReading((), mode="measuring")
        assert any(r.measurements and r.measurements[0].value for r in shown[1:-1])  # the cuff went up
        assert shown[-1] == DeviceReading(
            bp(142, 91, 108, 77), frozenset(), extra={"return_code": "0"}, mode="idle"
        )

        simulator.fail_next(87)
        failed = measure_over(port, driver, timeout=5)[-1]
        assert failed.conditions == {"nibp_loose_cuff"}
        assert not any(m.valid for m in failed.measurements)
        assert simulator.measurements_completed == 2 and simulator.running
        assert driver.rejected == 0


def test_the_simulator_plays_dead_and_the_driver_notices() -> None:
    with (
        PtyLink() as link,
        SuntechModuleSimulator(link, measure_seconds=1.0) as simulator,
        serial.serial_for_url(link.slave_path, baudrate=9600, timeout=0.02) as port,
    ):
        driver = SuntechNibpDriver()
        driver.connected(time.time())
        simulator.stop_answering()
        assert measure_over(port, driver, timeout=4)[-1].conditions == {"nibp_no_response"}
        simulator.resume_answering()
        assert measure_over(port, driver, timeout=5)[-1].conditions == frozenset()


def test_the_simulator_thread_lives_through_eagain_and_eio_over_callables() -> None:
    inbox = [START_ADULT, b"", GET_CUFF_PRESSURE]
    sent: list[bytes] = []
    failures = {"write": 3, "read": 3}

    def read() -> bytes:
        if failures["read"]:
            failures["read"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        return inbox.pop(0) if inbox else b""

    def write(data: bytes) -> int:
        if failures["write"]:
            failures["write"] -= 1
            raise BlockingIOError
        sent.append(data)
        return len(data)

    with SuntechModuleSimulator(read=read, write=write, measure_seconds=0.3, tick_seconds=0.002) as simulator:
        deadline = time.monotonic() + 3
        while DONE not in sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert simulator.running
    assert failures == {"write": 0, "read": 0}
    assert sent[-1] == DONE  # the answers lost to EAGAIN are dropped; the module goes on
    assert simulator.bytes_dropped > 0

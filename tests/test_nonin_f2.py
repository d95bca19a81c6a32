"""NoninF2Codec (bytes in, events out) and the Nonin simulator that must emit the same bytes as the device."""

from __future__ import annotations

import inspect
import itertools
import random
import re
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import mdc
from monitor.conditions import CONDITION_TEXT, SENSOR_PROBLEMS
from monitor.devices.nonin_f2 import (
    LONG_RUN,
    PERFUSION_HOLD_PACKETS,
    SET_DATA_FORMAT_2,
    SET_DATA_FORMAT_7,
    NoninF2Codec,
    NoninF7Codec,
    checksum,
    frame_checksums,
)
from monitor.devices.protocols import Codec
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame, WaveformBlock
from simulators.masimo import MasimoSimulator
from simulators.nonin import NoninSimulator, PlethGenerator, encode_packet
from simulators.physiology import SimulatedPatient, Vitals
from simulators.pty_link import PtyLink

# A public capture from a Nonin 9560: the frames in the comment at the end of mattjlewis/NoninPulseOx
# DataFormat2FrameSerialiser.java (reference section 1b). The reader joined mid-packet: four frames without
# SYNC, then one whole packet (SpO2 96, HR 74, firmware 0x94, perfusion bits 00), then the next SYNC frame.
CAPTURE_HEAD = bytes.fromhex("01804900CA 0180464A11 01804400C5 01804300C4")
CAPTURE_PACKET = bytes.fromhex(
    "01814300C5 0180434A0E 0180436024 0180439458 01804300C4 01804100C2 01803E17D6 01803C04C1 018039601A "
    "0180366017 0180356016 01803400B5 01803400B5 01803400B5 0180354A00 0180366017 0180376018 01803A00BB "
    "01804000C1 01804A00CB 0180574A22 01806900EA 01807C4A47 0180900011 0180A10022"
)
CAPTURE_TAIL = bytes.fromhex("0181AF0031")
CAPTURE_PLETH = (
    0x43, 0x43, 0x43, 0x43, 0x43, 0x41, 0x3E, 0x3C, 0x39, 0x36, 0x35, 0x34, 0x34,
    0x34, 0x35, 0x36, 0x37, 0x3A, 0x40, 0x4A, 0x57, 0x69, 0x7C, 0x90, 0xA1,
)  # fmt: skip

RUN_TAIL = "bytes skipped up to the next packet start"
LONG_RUN_REASON = (
    f"bytes that are not Nonin frames (over {LONG_RUN} bytes skipped so far, hunting for a packet start)"
)


# --- building packets by hand (independently of the simulator's encoder) --------------------------------


def frame(status: int, pleth: int, value: int) -> bytes:
    return bytes((0x01, status, pleth, value, (0x01 + status + pleth + value) % 256))


def packet(
    floats: dict[int, int] | None = None,
    *,
    status: int = 0x82,
    pleth: tuple[int, ...] = tuple(range(100, 125)),
    statuses: dict[int, int] | None = None,
) -> bytes:
    """25 frames; `floats` and `statuses` by 1-based frame number; SYNC is added to frame 1."""
    floats = {1: 0x00, 2: 72, 3: 97, 4: 0x94} | (floats or {})
    statuses = statuses or {}
    return b"".join(
        frame(statuses.get(n, status) | (0x01 if n == 1 else 0x00), pleth[n - 1], floats.get(n, 0))
        for n in range(1, 26)
    )


def spo2(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(code=mdc.SPO2.code, value=value, unit=mdc.SPO2.unit, valid=valid)


def pulse(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(code=mdc.PULSE_RATE.code, value=value, unit=mdc.PULSE_RATE.unit, valid=valid)


def readings(events: list[CodecEvent]) -> list[DeviceReading]:
    return [event for event in events if isinstance(event, DeviceReading)]


def rejects(events: list[CodecEvent]) -> list[RejectedFrame]:
    return [event for event in events if isinstance(event, RejectedFrame)]


def only_reading(data: bytes, codec: NoninF2Codec | None = None) -> DeviceReading:
    codec = codec or NoninF2Codec()
    events = codec.feed(data)
    assert [type(e) for e in events] == [DeviceReading, WaveformBlock], events
    assert isinstance(events[0], DeviceReading)
    return events[0]


def feed_chunks(chunks: list[bytes], codec: NoninF2Codec | None = None) -> tuple[list[CodecEvent], int, int]:
    codec = codec or NoninF2Codec()
    events: list[CodecEvent] = []
    for chunk in chunks:
        events.extend(codec.feed(chunk))
    return events, codec.frames_ok, codec.rejected


def values(reading: DeviceReading) -> tuple[float | None, float | None]:
    return reading.measurements[0].value, reading.measurements[1].value


# --- decoding ---------------------------------------------------------------------------------------------


def test_public_capture_decodes_exactly() -> None:
    codec = NoninF2Codec()
    events = codec.feed(CAPTURE_HEAD + CAPTURE_PACKET + CAPTURE_TAIL)
    assert events == [
        RejectedFrame(
            reason=f"frames of a packet whose first (SYNC) frame was not received (20 {RUN_TAIL})",
            data=CAPTURE_HEAD,
        ),
        DeviceReading(
            measurements=(spo2(96.0), pulse(74.0)),
            extra={
                "FIRMWARE": "148",
                "STAT2": "04",
                "SPO2-D": "96",
                "SPO2-FAST": "96",
                "SPO2-BB": "96",
                "E-SPO2": "96",
                "E-SPO2-D": "96",
                "E-HR": "74",
                "HR-D": "74",
                "E-HR-D": "74",
            },
        ),
        WaveformBlock(code=mdc.PLETH.code, sample_rate=75.0, samples=CAPTURE_PLETH),
    ]
    assert (codec.frames_ok, codec.rejected) == (1, 1)
    assert codec._buffer == CAPTURE_TAIL  # the next packet's SYNC frame waits for the rest of its packet


def test_hand_built_packet() -> None:
    # HR 300 = 0b10_0101100: MSB 0x02, LSB 0x2C. SpO2 93. Perfusion green (0x82) on every frame.
    data = packet({1: 0x02, 2: 0x2C, 3: 93, 4: 0x31, 8: 0x20, 9: 94, 14: 0x02, 15: 0x2B})
    codec = NoninF2Codec()
    events = codec.feed(data)
    assert len(events) == 2
    reading, waveform = events
    assert isinstance(reading, DeviceReading)
    assert reading.measurements == (spo2(93.0), pulse(300.0))
    assert reading.conditions == frozenset()  # green perfusion and SmartPoint (0x20) are not conditions
    assert reading.extra["FIRMWARE"] == "49"
    assert reading.extra["STAT2"] == "20"
    assert reading.extra["SPO2-D"] == "94"
    assert reading.extra["E-HR"] == "299"
    assert reading.device_time is None
    assert waveform == WaveformBlock(code=mdc.PLETH.code, sample_rate=75.0, samples=tuple(range(100, 125)))
    assert (codec.frames_ok, codec.rejected) == (1, 0)


@pytest.mark.parametrize(
    ("msb", "lsb", "expected"),
    [(0x00, 0x00, 0.0), (0x00, 0x7F, 127.0), (0x01, 0x00, 128.0), (0x03, 0x7E, 510.0), (0xFD, 0xC8, 200.0)],
)
def test_hr_is_split_over_two_frames(msb: int, lsb: int, expected: float) -> None:
    # MSB bits 1-0 are HR bits 8-7, LSB bits 6-0 are HR bits 6-0; the other bits are ignored
    reading = only_reading(packet({1: msb, 2: lsb}))
    assert reading.measurements[1].value == expected


@pytest.mark.parametrize(
    ("bit", "condition", "numbers_valid"),
    [
        (0x40, "sensor_off", False),  # SNSD: a SENSOR_PROBLEMS condition
        (0x20, "artifact", True),
        (0x10, "out_of_track", True),
        (0x08, "sensor_alarm", True),
    ],
)
def test_each_status_flag(bit: int, condition: str, numbers_valid: bool) -> None:
    reading = only_reading(packet(status=0x82 | bit))
    assert reading.conditions == {condition}
    assert condition in CONDITION_TEXT
    assert (condition in SENSOR_PROBLEMS) is not numbers_valid
    assert reading.measurements == (spo2(97.0, numbers_valid), pulse(72.0, numbers_valid))


def test_a_flag_on_a_single_frame_counts_for_the_packet() -> None:
    reading = only_reading(packet(statuses={17: 0x82 | 0x20 | 0x10}))
    assert reading.conditions == {"artifact", "out_of_track"}


def test_all_flags_at_once() -> None:
    reading = only_reading(packet({8: 0x21}, status=0x80 | 0x40 | 0x20 | 0x10 | 0x08 | 0x04))
    assert reading.conditions == {
        "sensor_off",
        "artifact",
        "out_of_track",
        "sensor_alarm",
        "low_perfusion",
        "low_battery",
    }


@pytest.mark.parametrize(
    ("perfusion_bits", "conditions"),
    [(0x00, set()), (0x02, set()), (0x04, {"low_perfusion"}), (0x06, {"perfusion_marginal"})],
)
def test_perfusion_colours(perfusion_bits: int, conditions: set[str]) -> None:
    reading = only_reading(packet(status=0x80 | perfusion_bits))
    assert reading.conditions == conditions
    assert reading.measurements == (spo2(97.0), pulse(72.0))  # perfusion alone never hides the numbers


def test_perfusion_colour_is_held_between_beats_then_dropped() -> None:
    codec = NoninF2Codec()
    red_beat = packet(statuses={5: 0x84}, status=0x80)  # one frame flags a red beat, the rest say nothing
    between_beats = packet(status=0x80)
    assert only_reading(red_beat, codec).conditions == {"low_perfusion"}
    held = [only_reading(between_beats, codec).conditions for _ in range(PERFUSION_HOLD_PACKETS)]
    assert held == [{"low_perfusion"}] * (PERFUSION_HOLD_PACKETS - 1) + [set()]
    # a new colour replaces the held one at once
    assert only_reading(red_beat, codec).conditions == {"low_perfusion"}
    assert only_reading(packet(statuses={9: 0x86}, status=0x80), codec).conditions == {"perfusion_marginal"}
    assert only_reading(packet(statuses={3: 0x82}, status=0x80), codec).conditions == set()
    assert only_reading(between_beats, codec).conditions == set()


def test_two_colours_in_one_packet_give_both_conditions() -> None:
    reading = only_reading(packet(statuses={2: 0x84, 20: 0x86}, status=0x80))
    assert reading.conditions == {"low_perfusion", "perfusion_marginal"}


def test_low_battery_from_stat2() -> None:
    assert only_reading(packet({8: 0x01})).conditions == {"low_battery"}
    assert only_reading(packet({8: 0x21})).conditions == {"low_battery"}
    assert only_reading(packet({8: 0x20})).conditions == set()


@pytest.mark.parametrize(
    ("floats", "expected"),
    [
        ({1: 0x03, 2: 0x7F}, (spo2(97.0), pulse(None, valid=False))),  # HR 511: missing
        ({3: 127}, (spo2(None, valid=False), pulse(72.0))),  # SpO2 127: missing
        ({1: 0x03, 2: 0x7F, 3: 127}, (spo2(None, valid=False), pulse(None, valid=False))),
        ({3: 101}, (spo2(101.0, valid=False), pulse(72.0))),  # out of range: value kept, invalid
        ({3: 0xE0}, (spo2(224.0, valid=False), pulse(72.0))),  # bit 7 is not masked away
        ({1: 0x02, 2: 0x5F}, (spo2(97.0), pulse(351.0, valid=False))),
        ({1: 0x02, 2: 0x5E, 3: 100}, (spo2(100.0), pulse(350.0))),  # the bounds are valid
        ({1: 0x00, 2: 0x00, 3: 0}, (spo2(0.0), pulse(0.0))),
    ],
)
def test_missing_and_out_of_range_values(floats: dict[int, int], expected: tuple[Measurement, ...]) -> None:
    codec = NoninF2Codec()
    assert only_reading(packet(floats), codec).measurements == expected
    assert (codec.frames_ok, codec.rejected) == (1, 0)


def test_sensor_off_packet_as_the_device_sends_it() -> None:
    reading = only_reading(packet({1: 0x03, 2: 0x7F, 3: 127}, status=0xC0))
    assert reading.measurements == (spo2(None, valid=False), pulse(None, valid=False))
    assert reading.conditions == {"sensor_off"}


# --- framing, checksums, garbage ---------------------------------------------------------------------------

GOOD = packet()
OTHER = packet({3: 91, 2: 110}, pleth=tuple(range(25)))


def test_bad_checksum_in_the_sync_frame_is_rejected_and_never_decoded() -> None:
    corrupt = bytearray(OTHER)
    corrupt[4] ^= 0xFF
    codec = NoninF2Codec()
    events = codec.feed(bytes(corrupt) + GOOD)
    assert events[0] == RejectedFrame(
        reason=f"a frame with a bad checksum (125 {RUN_TAIL})", data=bytes(corrupt)
    )
    assert [values(r) for r in readings(events)] == [(97.0, 72.0)]  # OTHER (91 %) was never decoded
    assert len(events) == 3
    assert (codec.frames_ok, codec.rejected) == (1, 1)


def test_bad_checksum_inside_a_packet_drops_the_packet() -> None:
    corrupt = bytearray(OTHER)
    corrupt[5 * 12 + 2] ^= 0x01  # frame 13's pleth changes; its checksum no longer matches
    codec = NoninF2Codec()
    events = codec.feed(GOOD + bytes(corrupt) + GOOD)
    assert [type(e) for e in events] == [
        DeviceReading,
        WaveformBlock,
        RejectedFrame,
        DeviceReading,
        WaveformBlock,
    ]
    assert events[2] == RejectedFrame(
        reason="packet dropped at frame 13 of 25: a frame with a bad checksum; decoding resumes at the next "
        f"SYNC (125 {RUN_TAIL})",
        data=bytes(corrupt),
    )
    assert [values(r) for r in readings(events)] == [(97.0, 72.0), (97.0, 72.0)]
    assert (codec.frames_ok, codec.rejected) == (2, 1)


def test_packet_interrupted_by_junk_is_dropped_and_says_so() -> None:
    junk = b"\xaa\x55\x00"
    codec = NoninF2Codec()
    events = codec.feed(OTHER[:50] + junk + OTHER[50:] + GOOD)
    assert rejects(events) == [
        RejectedFrame(
            reason="packet dropped at frame 11 of 25: junk instead of a frame; decoding resumes at the next "
            f"SYNC (128 {RUN_TAIL})",
            data=OTHER[:50] + junk + OTHER[50:],
        )
    ]
    assert [values(r) for r in readings(events)] == [(97.0, 72.0)]
    assert (codec.frames_ok, codec.rejected) == (1, 1)


def test_lost_frames_then_an_early_sync() -> None:
    truncated = OTHER[:-5]  # the last frame never arrived (a UART overrun): the next SYNC comes early
    codec = NoninF2Codec()
    events = codec.feed(truncated + GOOD)
    assert rejects(events) == [
        RejectedFrame(
            reason="packet dropped at frame 25 of 25: a new packet started early (frames lost); decoding "
            f"resumes at the next SYNC (120 {RUN_TAIL})",
            data=truncated,
        )
    ]
    assert len(readings(events)) == 1


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_truncated_frame_inside_a_packet(cut: int) -> None:
    # frame 7 lost its last `cut` bytes: the next frame's bytes land where frame 7's should be
    damaged = OTHER[:30] + OTHER[30 : 35 - cut] + OTHER[35:]
    codec = NoninF2Codec()
    events = codec.feed(GOOD + damaged + GOOD)
    assert [values(r) for r in readings(events)] == [(97.0, 72.0), (97.0, 72.0)]
    [reject] = rejects(events)
    assert reject.reason.startswith("packet dropped at frame 7 of 25")
    assert reject.data == damaged
    assert (codec.frames_ok, codec.rejected) == (2, 1)


def test_truncated_packet_at_the_end_waits_for_more_bytes() -> None:
    codec = NoninF2Codec()
    assert codec.feed(GOOD[:3]) == []
    assert codec.feed(GOOD[3:124]) == []
    assert (codec.frames_ok, codec.rejected) == (0, 0)
    events = codec.feed(GOOD[124:] + OTHER[:7])
    assert [type(e) for e in events] == [DeviceReading, WaveformBlock]
    assert codec.feed(OTHER[7:]) == NoninF2Codec().feed(OTHER)
    assert (codec.frames_ok, codec.rejected) == (2, 0)


def test_garbage_before_between_and_after_packets() -> None:
    before, between, after = b"\xff\x00\x42\x13\x37", b"hello", b"\x80" * (LONG_RUN + 10)
    codec = NoninF2Codec()
    events = codec.feed(before + GOOD + between + OTHER + after)
    assert [type(e) for e in events] == [
        RejectedFrame,
        DeviceReading,
        WaveformBlock,
        RejectedFrame,
        DeviceReading,
        WaveformBlock,
        RejectedFrame,
    ]
    assert rejects(events) == [
        RejectedFrame(f"bytes that are not Nonin frames (5 {RUN_TAIL})", before),
        RejectedFrame(f"bytes that are not Nonin frames (5 {RUN_TAIL})", between),
        RejectedFrame(LONG_RUN_REASON, after[:200]),
    ]
    assert [values(r) for r in readings(events)] == [(97.0, 72.0), (91.0, 110.0)]
    assert (codec.frames_ok, codec.rejected) == (2, 3)
    # the long run was reported once; more of it is not reported again, and the next packet is found
    assert codec.feed(b"\x80" * 1000) == []
    assert [type(e) for e in codec.feed(GOOD)] == [DeviceReading, WaveformBlock]
    assert (codec.frames_ok, codec.rejected) == (3, 3)
    assert len(codec._buffer) == 0


def test_short_garbage_at_the_end_is_reported_when_the_next_packet_comes() -> None:
    codec = NoninF2Codec()
    assert len(codec.feed(GOOD + b"\x99\x98")) == 2
    assert codec.rejected == 0  # cannot know yet where the run ends
    events = codec.feed(GOOD)
    assert events[0] == RejectedFrame(f"bytes that are not Nonin frames (2 {RUN_TAIL})", b"\x99\x98")
    assert codec.rejected == 1


def test_buffer_stays_bounded_on_endless_junk() -> None:
    codec = NoninF2Codec()
    rng = random.Random(3)
    for _ in range(50):
        codec.feed(bytes(rng.randrange(256) for _ in range(1000)))
        assert len(codec._buffer) < 125
    assert codec.rejected <= 50  # one per run, and a run ends only at a packet
    assert codec.frames_ok == 0


def test_arbitrary_junk_with_frame_lookalikes_loses_no_packet_after_it() -> None:
    lone_sync_frame = frame(0x83, 10, 0)  # valid on its own: 01 + checksum + SYNC
    # `01 83` right before a packet whose first pleth byte is 8 forms a valid-looking SYNC frame
    # `01 83 01 83 08` overlapping the real one; a frame-by-frame decoder would lose that packet.
    tricky = packet(pleth=(8, *range(1, 25)))
    junk = (
        b"\x01\x01\x01"
        + lone_sync_frame
        + frame(0x80, 1, 1)
        + b"\x06\x15"
        + GOOD[:60]  # a packet cut off
        + bytes(random.Random(9).randrange(256) for _ in range(300))
        + lone_sync_frame * 3
        + b"\x01\x83"
    )
    false_frame = junk[-2:] + tricky[:3]
    assert false_frame == frame(0x83, 0x01, 0x83)  # valid, with SYNC
    codec = NoninF2Codec()
    events = codec.feed(junk + tricky + GOOD + OTHER)
    assert [r.measurements for r in readings(events)] == [(spo2(97.0), pulse(72.0))] * 2 + [
        (spo2(91.0), pulse(110.0))
    ]
    waveforms = [e for e in events if isinstance(e, WaveformBlock)]
    assert waveforms[0].samples == (8, *range(1, 25))
    assert codec.frames_ok == 3
    assert len(junk) > LONG_RUN  # one run, reported once as soon as it was LONG_RUN bytes long
    assert rejects(events) == [RejectedFrame(LONG_RUN_REASON, junk[:200])]
    assert codec.rejected == 1


def test_ack_and_nak_before_the_stream_are_replies_not_garbage() -> None:
    codec = NoninF2Codec()
    events = codec.feed(b"\x06" + GOOD + b"\x15\x06" + GOOD)
    assert [type(e) for e in events] == [DeviceReading, WaveformBlock] * 2
    assert (codec.frames_ok, codec.rejected, codec.acks, codec.naks) == (2, 0, 2, 1)


def test_ack_mixed_with_junk_is_junk() -> None:
    codec = NoninF2Codec()
    events = codec.feed(b"\x06\x99" + GOOD + b"\x99\x15" + GOOD + b"\x06" * 9 + GOOD)
    assert rejects(events) == [
        RejectedFrame(f"bytes that are not Nonin frames (2 {RUN_TAIL})", b"\x06\x99"),
        RejectedFrame(f"bytes that are not Nonin frames (2 {RUN_TAIL})", b"\x99\x15"),
        RejectedFrame(f"bytes that are not Nonin frames (9 {RUN_TAIL})", b"\x06" * 9),
    ]
    assert (codec.frames_ok, codec.rejected, codec.acks, codec.naks) == (3, 3, 0, 0)


MIXED_STREAM = (
    b"\x06"
    + CAPTURE_HEAD
    + CAPTURE_PACKET
    + b"\x00\x01\x81"
    + GOOD
    + OTHER[:75]
    + b"\xde\xad"
    + OTHER
    + packet({8: 0x01}, status=0xC4)
    + bytes(range(256)) * 2
    + GOOD
    + GOOD[:90]
)


def test_mixed_stream_in_one_chunk() -> None:
    events, frames_ok, rejected = feed_chunks([MIXED_STREAM])
    assert [values(r) for r in readings(events)] == [
        (96.0, 74.0),
        (97.0, 72.0),
        (91.0, 110.0),
        (97.0, 72.0),
        (97.0, 72.0),
    ]
    assert readings(events)[3].conditions == {"sensor_off", "low_perfusion", "low_battery"}
    assert [r.reason.split(" (")[0] for r in rejects(events)] == [
        "bytes that are not Nonin frames",  # the ACK glued to the capture's partial packet
        "bytes that are not Nonin frames",
        "packet dropped at frame 16 of 25: junk instead of a frame; decoding resumes at the next SYNC",
        "bytes that are not Nonin frames",
    ]
    assert (frames_ok, rejected) == (5, 4)


def test_byte_at_a_time_equals_one_chunk() -> None:
    whole = feed_chunks([MIXED_STREAM])
    one_by_one = feed_chunks([MIXED_STREAM[i : i + 1] for i in range(len(MIXED_STREAM))])
    assert one_by_one == whole


@pytest.mark.parametrize("seed", range(10))
def test_random_chunking_equals_one_chunk(seed: int) -> None:
    rng = random.Random(seed)
    chunks: list[bytes] = []
    position = 0
    while position < len(MIXED_STREAM):
        size = rng.choice([1, 2, 3, 4, 5, 6, 124, 125, 126, 300])
        chunks.append(MIXED_STREAM[position : position + size])
        position += size
    assert feed_chunks(chunks) == feed_chunks([MIXED_STREAM])


def test_codec_interface() -> None:
    codec: Codec = NoninF2Codec()
    assert NoninF2Codec.protocol == "nonin-f2"
    assert codec.initial_commands() == SET_DATA_FORMAT_2 == bytes.fromhex("027002020203")
    assert NoninF7Codec().initial_commands() == SET_DATA_FORMAT_7 == bytes.fromhex("027002020703")
    assert (codec.frames_ok, codec.rejected) == (0, 0)
    assert codec.feed(b"") == []


# --- properties ---------------------------------------------------------------------------------------------

pleth_bytes = st.lists(st.integers(0, 255), min_size=25, max_size=25)


@st.composite
def packet_args(draw: st.DrawFn) -> dict[str, object]:
    return {
        "spo2": draw(st.none() | st.integers(0, 100)),
        "pulse": draw(st.none() | st.integers(0, 300)),
        "pleth": draw(pleth_bytes),
        "sensor": draw(st.sampled_from(["on", "off", "none"])),
        "artifact": draw(st.booleans()),
        "out_of_track": draw(st.booleans()),
        "sensor_alarm": draw(st.booleans()),
        "perfusion": draw(st.sampled_from(["green", "red", "yellow"])),
        "low_battery": draw(st.booleans()),
        "smartpoint": draw(st.booleans()),
        "firmware": draw(st.integers(0, 255)),
    }


def expected_reading(args: dict[str, object]) -> tuple[tuple[Measurement, ...], set[str]]:
    on = args["sensor"] == "on"
    conditions = {
        name
        for name, present in [
            ("sensor_off", not on),
            ("artifact", args["artifact"]),
            ("out_of_track", args["out_of_track"]),
            ("sensor_alarm", args["sensor_alarm"]),
            ("low_perfusion", args["perfusion"] == "red"),
            ("perfusion_marginal", args["perfusion"] == "yellow"),
            ("low_battery", args["low_battery"]),
        ]
        if present
    }
    spo2_value = args["spo2"] if on else None
    pulse_value = args["pulse"] if on else None
    assert spo2_value is None or isinstance(spo2_value, int)
    assert pulse_value is None or isinstance(pulse_value, int)
    measurements = (
        spo2(None, False) if spo2_value is None else spo2(float(spo2_value)),
        pulse(None, False) if pulse_value is None else pulse(float(pulse_value)),
    )
    return measurements, conditions


@settings(max_examples=200, deadline=None)
@given(packet_args())
def test_property_encode_decode_round_trip(args: dict[str, object]) -> None:
    data = encode_packet(**args)  # type: ignore[arg-type]
    assert len(data) == 125
    codec = NoninF2Codec()
    reading, waveform = codec.feed(data)
    measurements, conditions = expected_reading(args)
    assert isinstance(reading, DeviceReading)
    assert reading.measurements == measurements
    assert reading.conditions == conditions
    assert reading.extra["FIRMWARE"] == str(args["firmware"])
    assert waveform == WaveformBlock(mdc.PLETH.code, 75.0, tuple(args["pleth"]))  # type: ignore[arg-type]
    assert (codec.frames_ok, codec.rejected) == (1, 0)


@settings(max_examples=100, deadline=None)
@given(
    spo2_value=st.integers(0, 100),
    pulse_value=st.integers(0, 300),
    pleth=st.lists(st.integers(0, 0xFFFF), min_size=25, max_size=25),
    junk=st.binary(max_size=40).map(lambda b: bytes(x & 0x7F for x in b)),  # no STATUS byte: no frame
)
def test_property_format_7_round_trip(
    spo2_value: int, pulse_value: int, pleth: list[int], junk: bytes
) -> None:
    data = encode_packet(spo2_value, pulse_value, pleth, data_format=7)
    codec = NoninF7Codec()
    events = codec.feed(junk + data + data)
    good = readings(events)
    assert [r.measurements for r in good] == [(spo2(float(spo2_value)), pulse(float(pulse_value)))] * 2
    assert [e.samples for e in events if isinstance(e, WaveformBlock)] == [tuple(pleth)] * 2
    assert codec.frames_ok == 2


no_frame_start = st.binary(max_size=300).map(lambda b: b.replace(b"\x01", b""))


def is_reply(run: bytes) -> bool:
    return 0 < len(run) <= 8 and set(run) <= {0x06, 0x15}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(no_frame_start, packet_args()), min_size=1, max_size=5),
    no_frame_start,
    st.lists(st.integers(1, 130), min_size=1, max_size=20),
)
def test_property_garbage_between_packets_loses_no_packet(
    parts: list[tuple[bytes, dict[str, object]]], trailing: bytes, chunk_sizes: list[int]
) -> None:
    final = encode_packet(97, 72, [128] * 25)
    stream = b"".join(junk + encode_packet(**args) for junk, args in parts) + trailing + final  # type: ignore[arg-type]
    runs = [junk for junk, _ in parts] + [trailing]

    chunks, position, sizes = [], 0, iter(chunk_sizes * (len(stream) // len(chunk_sizes) + 1))
    while position < len(stream):
        size = next(sizes)
        chunks.append(stream[position : position + size])
        position += size
    events, frames_ok, rejected = feed_chunks(chunks)
    assert (events, frames_ok, rejected) == feed_chunks([stream])  # chunking never matters

    expected = [expected_reading(args)[0] for _, args in parts] + [(spo2(97.0), pulse(72.0))]
    assert [r.measurements for r in readings(events)] == expected
    assert frames_ok == len(parts) + 1
    garbage_runs = [run for run in runs if run and not is_reply(run)]
    assert [r.data for r in rejects(events)] == [run[:200] for run in garbage_runs]
    assert rejected == len(garbage_runs)


class FrameByFrameF2(NoninF2Codec):
    """The codec without its bulk paths: every packet checked frame by frame, every skipped byte one at a
    time (the decoder as first written). The bulk paths must accept and reject exactly the same bytes."""

    _frame_candidate = re.compile(b"[\\x00-\\xff]")

    def _valid_packets(self, buffer: bytes, position: int) -> int:
        return 0


class FrameByFrameF7(NoninF7Codec):
    _frame_candidate = FrameByFrameF2._frame_candidate

    def _valid_packets(self, buffer: bytes, position: int) -> int:
        return 0


@st.composite
def damaged_stream(draw: st.DrawFn, data_format: int) -> bytes:
    """Valid packets, then bytes flipped, dropped, inserted (frame look-alikes, replies, SYNC frames)."""
    packets = [
        encode_packet(
            draw(st.integers(0, 100)),
            draw(st.integers(0, 300)),
            [draw(st.integers(0, 255))] * 25,
            perfusion=draw(st.sampled_from(["green", "red", "yellow"])),
            artifact=draw(st.booleans()),
            data_format=data_format,
        )
        for _ in range(draw(st.integers(1, 8)))
    ]
    stream = bytearray(b"".join(packets))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(stream)))
        action = draw(st.sampled_from(["flip", "drop", "insert", "frame"]))
        if action == "flip" and at < len(stream):
            stream[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "drop":
            del stream[at : at + draw(st.integers(1, 130))]
        elif action == "insert":
            stream[at:at] = draw(st.binary(min_size=1, max_size=40) | st.sampled_from([b"\x06", b"\x15\x06"]))
        else:
            stream[at:at] = frame(draw(st.sampled_from([0x81, 0x83, 0x80, 0x82])), 1, 1)
    return bytes(stream)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([2, 7]).flatmap(lambda f: st.tuples(st.just(f), damaged_stream(f))), st.data())
def test_property_bulk_checks_equal_the_frame_by_frame_decoder(
    format_and_stream: tuple[int, bytes], data: st.DataObject
) -> None:
    data_format, stream = format_and_stream
    bulk, reference = (
        (NoninF2Codec(), FrameByFrameF2()) if data_format == 2 else (NoninF7Codec(), FrameByFrameF7())
    )
    sizes = data.draw(st.lists(st.integers(1, 700), min_size=1, max_size=10))
    chunks, position = [], 0
    for size in itertools.cycle(sizes):
        if position >= len(stream):
            break
        chunks.append(stream[position : position + size])
        position += size
    counters = ("frames_ok", "rejected", "acks", "naks")
    bulk_events = [event for chunk in chunks for event in bulk.feed(chunk)]
    assert bulk_events == reference.feed(stream)
    assert [getattr(bulk, c) for c in counters] == [getattr(reference, c) for c in counters]


def test_long_junk_is_skipped_as_one_run_by_either_path() -> None:
    junk = bytes(random.Random(5).randrange(2, 256) for _ in range(3 * LONG_RUN))  # no 01: nothing to check
    for codec in (NoninF2Codec(), FrameByFrameF2()):
        events = codec.feed(junk + GOOD)
        assert rejects(events) == [RejectedFrame(LONG_RUN_REASON, junk[:200])]
        assert len(readings(events)) == 1


def test_frame_checksums_of_many_frames_at_once() -> None:
    rng = random.Random(11)
    frames = bytes(rng.randrange(256) for _ in range(5 * 400))
    assert frame_checksums(frames, 400) == bytes(
        checksum(frames[i : i + 4]) for i in range(0, len(frames), 5)
    )


# --- the simulator -----------------------------------------------------------------------------------------


def test_encode_packet_is_exact() -> None:
    data = encode_packet(97, 72, list(range(100, 125)), perfusion="green")
    spo2_frames = {n: 97 for n in (3, 9, 10, 11, 16, 17)}  # SpO2 and its -D, fast, B-B, E-, E-D variants
    hr_frames = {n: 72 for n in (2, 15, 21, 23)} | {n: 0 for n in (1, 14, 20, 22)}  # HR, E-HR, HR-D, E-HR-D
    assert data == packet(spo2_frames | hr_frames | {4: 0x94})
    frames = [data[i : i + 5] for i in range(0, 125, 5)]
    assert [f[1] & 0x01 for f in frames] == [1] + [0] * 24
    assert all(f[0] == 0x01 and f[4] == sum(f[:4]) % 256 and f[1] & 0x80 for f in frames)


def test_encode_packet_sensor_off_sends_missing_values_and_snsd() -> None:
    for sensor in ("off", "none"):
        data = encode_packet(97, 72, [128] * 25, sensor=sensor, perfusion="none")  # type: ignore[arg-type]
        frames = [data[i : i + 5] for i in range(0, 125, 5)]
        assert (frames[0][3], frames[1][3], frames[2][3]) == (0x03, 0x7F, 127)
        assert all(f[1] & 0x7E == 0x40 for f in frames)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spo2": 128},
        {"pulse": 512},
        {"pulse": -1},
        {"pleth": [0] * 24},
        {"pleth": [256] + [0] * 24},
        {"sensor": "loose"},
        {"perfusion": "blue"},
        {"firmware": 256},
        {"data_format": 8},
    ],
)
def test_encode_packet_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"spo2": 97, "pulse": 72, "pleth": [0] * 25} | kwargs
    with pytest.raises(ValueError):
        encode_packet(**args)  # type: ignore[arg-type]


def test_pleth_is_a_pulse_wave_at_the_pulse_rate_scaled_by_perfusion() -> None:
    samples = PlethGenerator(seed=1).next_samples(Vitals(97, 60, 3.5), 75 * 10)  # 10 s at 60 /min
    peaks = [
        i
        for i in range(1, len(samples) - 1)
        if samples[i] > samples[i - 1] and samples[i] == max(samples[max(0, i - 20) : i + 21])
    ]
    assert len(peaks) == 10
    assert all(70 <= b - a <= 80 for a, b in itertools.pairwise(peaks))  # one beat every 75 samples
    assert all(0 <= s <= 255 for s in samples)
    strong = max(samples) - min(samples)
    weak = PlethGenerator(seed=1).next_samples(Vitals(97, 60, 0.2), 75 * 3)
    assert 5 < max(weak) - min(weak) < strong / 3


def test_pleth_beat_has_a_steep_upstroke_and_a_dicrotic_notch() -> None:
    beat = PlethGenerator(noise=0.0).next_samples(Vitals(97, 60, 3.5), 75)  # exactly one beat
    peak = beat.index(max(beat))
    assert 10 <= peak <= 17  # systolic peak at ~18 % of the beat
    assert beat[peak] - beat[peak - 8] > 1.5 * (beat[peak] - beat[peak + 8])  # rises faster than it falls
    diastole = beat[peak + 5 : peak + 30]
    notch = diastole.index(min(diastole[:15]))
    assert max(diastole[notch:]) >= diastole[notch] + 2  # the reflected wave after the notch
    assert abs(beat[0] - beat[-1]) <= 2  # beats join without a step


def test_pleth_phase_runs_on_across_packets() -> None:
    vitals = Vitals(97, 72, 3.5)
    split = PlethGenerator(noise=0.0)
    whole = PlethGenerator(noise=0.0)
    assert split.next_samples(vitals) + split.next_samples(vitals) == whole.next_samples(vitals, 50)
    flat = PlethGenerator().next_samples(Vitals(97, 72, 3.5, sensor="off"))
    assert flat == [128] * 25


def test_simulator_packets_decode_and_follow_the_patient() -> None:
    taken: list[bytes] = []
    patient = SimulatedPatient(seed=3)
    sim = NoninSimulator(taken.append, patient=patient, seed=3)
    patient.hold("spo2", 91)
    patient.hold("pulse", 64)
    packets = [sim.tick() for _ in range(3)]
    patient.set_sensor("off")
    packets.append(sim.tick())
    patient.set_sensor("on")
    patient.hold("pi", 0.2)
    packets.append(sim.tick())
    assert all(len(p) == 125 for p in packets)
    assert b"".join(taken) == b"".join(packets)
    codec = NoninF2Codec()
    events = codec.feed(b"".join(taken))
    assert [(r.measurements, r.conditions) for r in readings(events)] == [
        ((spo2(91.0), pulse(64.0)), set()),
        ((spo2(91.0), pulse(64.0)), set()),
        ((spo2(91.0), pulse(64.0)), set()),
        ((spo2(None, False), pulse(None, False)), {"sensor_off"}),
        ((spo2(91.0), pulse(64.0)), {"low_perfusion"}),
    ]
    assert (codec.frames_ok, codec.rejected) == (5, 0)
    assert sim.last_packet == packets[-1]
    assert (sim.packets_written, sim.packets_dropped) == (5, 0)


def test_simulator_writes_whole_packets_and_counts_what_was_dropped() -> None:
    taken: list[bytes] = []
    budget = [10, None, None, 0]  # part of packet 1, its rest, all of packet 2, nothing (EAGAIN) for packet 3

    def output(data: bytes) -> int | None:
        allowance = budget.pop(0)
        if allowance == 0:
            raise BlockingIOError
        taken.append(data if allowance is None else data[:allowance])
        return allowance

    sim = NoninSimulator(output, seed=5)
    packets = [sim.tick() for _ in range(3)]
    assert b"".join(taken) == packets[0] + packets[1]
    assert (sim.packets_written, sim.packets_dropped) == (2, 1)


def test_simulator_takes_the_same_keywords_as_the_masimo_one() -> None:
    masimo = inspect.signature(MasimoSimulator).parameters
    nonin = inspect.signature(NoninSimulator).parameters
    for name in ("output", "patient", "scenario", "speed", "period", "seed"):
        assert nonin[name].kind == masimo[name].kind
    assert nonin["period"].default == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="period"):
        NoninSimulator(lambda data: None, period=0)


def test_simulator_over_a_real_pty_read_with_pyserial() -> None:
    codec = NoninF2Codec()
    arrivals: list[float] = []
    with PtyLink() as link, NoninSimulator(link.write, seed=2) as sim:  # the real period: 1/3 s
        with serial.serial_for_url(link.slave_path, timeout=0.05) as port:
            deadline = time.monotonic() + 1.6
            while time.monotonic() < deadline:
                for event in codec.feed(port.read(512)):
                    if isinstance(event, DeviceReading):
                        arrivals.append(time.monotonic())
                        assert event.measurements[0].valid and event.measurements[1].valid
        assert sim.running
    assert 3 <= len(arrivals) <= 6, arrivals
    intervals = [b - a for a, b in itertools.pairwise(arrivals)]
    assert 0.25 < sum(intervals) / len(intervals) < 0.42, intervals
    assert codec.frames_ok == len(arrivals)
    assert codec.rejected <= 1  # at most the packet cut when the port was opened

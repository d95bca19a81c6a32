"""The malformed-input corpus: every protocol gets at least 1,000 generated bad frames plus hand-made ones.

The bad frames are derived from valid frames made by the simulators' own encoders (truncation, bit flips,
wrong checksums, oversized lines, invalid UTF-8, garbage; NaN, Infinity and enormous numbers in JSON) with a
seeded generator, so a run is reproducible and its counts are stable. Each bad frame is fed between two
valid frames, as a cable or a buggy device would deliver it, and the corpus checks what a clinic relies on:

- no exception escapes a codec or a wire decoder;
- every frame is counted: the codec's `frames_ok` and `rejected` counters equal the events it returned, and
  each bad frame moved one of them (a frame of only line noise, CR/LF and spaces, is not an error);
- the valid frame after each bad one is decoded with its own values, so bad input never costs good data.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from monitor import mdc, wire
from monitor.devices.alaris_asena import AlarisAsenaDriver, encode_frame
from monitor.devices.masimo_ascii import MasimoAsciiCodec
from monitor.devices.mqtt_json import MqttJsonCodec
from monitor.devices.nonin_f2 import NoninF2Codec
from monitor.devices.suntech_nibp import BpDataReply, CuffPressureReply, LetterReply, SuntechReplyDecoder
from monitor.model import ClinicalEvent, DeviceReading, DeviceStatus, Observation, RejectedFrame
from simulators.alaris import format_inf_reply
from simulators.masimo import format_masimo_line
from simulators.nonin import encode_packet
from simulators.physiology import Vitals
from simulators.suntech import encode_bp_data, encode_cuff_pressure, encode_reply

SEED = 20261125
GENERATED = 1000  # generated malformed frames per protocol, on top of the hand-made ones

INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xfe",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
)
HUGE_NUMBERS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e308",
    "9" * 40,
    "-" + "9" * 30,
    "1e-999",
)


# ---- generic mutations -------------------------------------------------------------------------------


def bit_flips(rng: random.Random, frame: bytes, count: int) -> bytes:
    data = bytearray(frame)
    for _ in range(count):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def generic_mutation(rng: random.Random, frame: bytes, max_len: int) -> bytes:
    """One malformation of a valid frame (or plain garbage), chosen at random."""
    kind = rng.randrange(10)
    if kind == 0:  # truncated: the cable was pulled, or the buffer cut
        return frame[: rng.randrange(1, len(frame))]
    if kind == 1:  # the start lost
        return frame[rng.randrange(1, len(frame)) :]
    if kind == 2:
        return bit_flips(rng, frame, rng.randint(1, 3))
    if kind == 3:  # a byte replaced
        i = rng.randrange(len(frame))
        return frame[:i] + bytes([rng.randrange(256)]) + frame[i + 1 :]
    if kind == 4:  # bytes lost in the middle
        i = rng.randrange(len(frame))
        return frame[:i] + frame[i + rng.randint(1, 8) :]
    if kind == 5:  # invalid UTF-8 spliced in
        i = rng.randrange(len(frame))
        return frame[:i] + rng.choice(INVALID_UTF8) + frame[i:]
    if kind == 6:  # oversized: far past the codec's limit
        return frame[:-2] + bytes(rng.choice(b"0123456789ABC=% ") for _ in range(max_len + rng.randrange(50)))
    if kind == 7:  # random garbage
        return rng.randbytes(rng.randint(1, 300))
    if kind == 8:  # two frames' halves spliced
        cut = rng.randrange(1, len(frame))
        return frame[:cut] + frame[rng.randrange(len(frame)) :]
    return frame + frame[: rng.randrange(1, len(frame))]  # a frame and the start of another


# ---- the harness --------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a protocol's corpus did, for the assertions and for the failure message."""

    protocol: str
    bad_frames: int = 0
    rejected: int = 0  # bad frames the codec refused
    accepted: int = 0  # bad frames that still decoded (possible without a checksum: a digit flipped)
    noise_only: int = 0  # frames of CR/LF/spaces only, ignored by design
    replies: int = 0  # bad frames that were the device's ACK/NAK replies
    lost: list[str] = field(default_factory=list)
    insane: list[str] = field(default_factory=list)  # accepted events carrying NaN, Infinity, ...

    def __str__(self) -> str:
        return (
            f"{self.protocol}: {self.bad_frames} bad frames, {self.rejected} rejected, {self.accepted} "
            f"accepted, {self.noise_only} line noise; {len(self.lost)} valid frames lost"
        )


@dataclass(frozen=True)
class StreamCodec:
    """A codec under test: feed bytes, read its counters, and say which events are accepted frames."""

    feed: Callable[[bytes], list[object]]
    counters: Callable[[], tuple[int, int]]  # (frames_ok, rejected)
    accepted: Callable[[object], bool]
    #: input neither decoded nor rejected but accounted for otherwise (the Nonin's ACK/NAK replies)
    replies: Callable[[], int] = lambda: 0
    #: every accepted frame gives one event (the Alaris also accepts replies it has no reading for)
    one_event_per_frame: bool = True


def run_corpus(
    protocol: str,
    codec: StreamCodec,
    valid: list[tuple[bytes, object]],
    bad: list[bytes],
    value_of: Callable[[object], object],
    sane: Callable[[object], bool] = lambda event: True,
) -> Tally:
    """Feeds valid, bad, valid, bad, ... and checks each valid frame and the counters (module docstring)."""
    tally = Tally(protocol)
    ok_events = rejected_events = 0
    for index, bad_frame in enumerate(bad):
        frame, expected = valid[index % len(valid)]
        before_ok, before_rejected = codec.counters()
        before_replies = codec.replies()
        events = codec.feed(bad_frame)
        after_bad = codec.counters()
        valid_events = codec.feed(frame)
        after_ok, after_rejected = codec.counters()
        events += valid_events
        tally.insane += [f"#{index}: {e!r:.200}" for e in events if codec.accepted(e) and not sane(e)]
        ok_events += sum(codec.accepted(e) for e in events)
        rejected_events += sum(isinstance(e, RejectedFrame) for e in events)
        readings = [value_of(e) for e in valid_events if codec.accepted(e)]
        if not readings or readings[-1] != expected:
            tally.lost.append(f"#{index}: bad {bad_frame[:80]!r} then valid -> {readings}")
        tally.bad_frames += 1
        if after_rejected > before_rejected:
            tally.rejected += 1
        elif after_bad[0] > before_ok or after_ok - before_ok >= 2:
            tally.accepted += 1
        elif not bad_frame.strip():
            tally.noise_only += 1
        elif codec.replies() > before_replies:
            tally.replies += 1
        else:
            tally.lost.append(f"#{index}: bad {bad_frame[:80]!r} counted neither rejected nor accepted")
    frames_ok, rejected = codec.counters()
    assert rejected == rejected_events, f"{protocol}: {rejected} counted rejected, {rejected_events} events"
    if codec.one_event_per_frame:
        assert frames_ok == ok_events, f"{protocol}: {frames_ok} counted decoded, {ok_events} events"
    else:
        assert frames_ok >= ok_events, f"{protocol}: {frames_ok} counted decoded, {ok_events} events"
    return tally


def check(tally: Tally, *, min_rejected_share: float) -> None:
    assert tally.bad_frames >= GENERATED, str(tally)
    assert not tally.lost, f"{tally}\n" + "\n".join(tally.lost[:10])
    assert not tally.insane, f"{tally}\naccepted but not sane:\n" + "\n".join(tally.insane[:10])
    assert tally.rejected >= min_rejected_share * tally.bad_frames, str(tally)


def finite_readings(event: object) -> bool:
    """What a codec passes on carries finite numbers or none: never NaN or Infinity."""
    if isinstance(event, DeviceReading):
        return all(m.value is None or math.isfinite(m.value) for m in event.measurements)
    return True


# ---- Masimo ASCII --------------------------------------------------------------------------------------


def masimo_valid(rng: random.Random, count: int) -> list[tuple[bytes, object]]:
    frames = []
    for i in range(count):
        spo2, pulse = rng.randint(70, 100), rng.randint(40, 180)
        when = datetime(2026, 11, 25, 1, i // 60 % 60, i % 60)
        frames.append((format_masimo_line(Vitals(spo2, pulse, 3.5), when), (spo2, pulse)))
    return frames


def masimo_values(event: object) -> object:
    assert isinstance(event, DeviceReading)
    by_code = {m.code: m.value for m in event.measurements}
    return (by_code[mdc.SPO2.code], by_code[mdc.PULSE_RATE.code])


MASIMO_HAND_MADE = [
    b"02/22/16 22:47:45 SN=0000056661 SPO2=NaN% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n",
    b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=Infinity PI=03.60% ALARM=0000 EXC=000800\r\n",
    b"02/22/16 22:47:45 SN=0000056661 SPO2=1e999% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n",
    b"02/22/16 22:47:45 SN=0000056661 SPO2=" + b"9" * 400 + b"% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n",
    b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% ALARM=" + b"F" * 300 + b" EXC=000800\r\n",
    b"02/22/16 22:47:45 SN=0000056661 SPO2=098% SPO2=097% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n",
    b"02/22/16 22:47:45 SN=\xff\xfe SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n",
    b"99/99/99 99:99:99 SPO2=-98% BPM=+97 PI=0x10% ALARM=-1 EXC=zz\r\n",
    b"SPO2=\r\n",
    b"=\r\n",
    b"\x00" * 2000,
    b"\r\n\r\n\r\n",
    b"11/25/26 01:00:0",  # a timestamp cut off, glued to the next line's
    b"A" * 5000 + b"\r\n",
    "02/22/16 22:47:45 SN=0000056661 SPO2=٩٨% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n".encode(),
]


def masimo_bad(rng: random.Random, valid: list[tuple[bytes, object]]) -> list[bytes]:
    bad = list(MASIMO_HAND_MADE)
    fields = (b"SPO2=", b"BPM=", b"PI=", b"ALARM=", b"EXC=")
    for _ in range(GENERATED):
        frame = rng.choice(valid)[0]
        if rng.random() < 0.2:  # a number the device never sends, in a field we interpret
            key = rng.choice(fields)
            start = frame.index(key) + len(key)
            end = frame.index(b" ", start) if b" " in frame[start:] else len(frame) - 2
            frame = frame[:start] + rng.choice(HUGE_NUMBERS).encode() + frame[end:]
        bad.append(generic_mutation(rng, frame, 1100))
    return bad


def test_masimo_ascii_corpus() -> None:
    rng = random.Random(SEED)
    masimo = MasimoAsciiCodec()
    codec = StreamCodec(
        masimo.feed, lambda: (masimo.frames_ok, masimo.rejected), lambda e: isinstance(e, DeviceReading)
    )
    valid = masimo_valid(rng, 50)
    tally = run_corpus("masimo-ascii", codec, valid, masimo_bad(rng, valid), masimo_values, finite_readings)
    check(tally, min_rejected_share=0.6)  # no checksum: a flipped digit is a plausible reading


# ---- Nonin Data Format 2 -------------------------------------------------------------------------------


def nonin_valid(rng: random.Random, count: int) -> list[tuple[bytes, object]]:
    frames = []
    for _ in range(count):
        spo2, pulse = rng.randint(70, 100), rng.randint(40, 250)
        pleth = [rng.randrange(256) for _ in range(25)]
        frames.append((encode_packet(spo2, pulse, pleth), (spo2, pulse)))
    return frames


def nonin_values(event: object) -> object:
    return masimo_values(event)


def nonin_bad(rng: random.Random, valid: list[tuple[bytes, object]]) -> list[bytes]:
    packet = valid[0][0]
    bad = [
        packet[:5] * 25,  # 25 SYNC frames
        packet[5:],  # a packet without its SYNC frame
        bytes([packet[0], packet[1], packet[2], packet[3], (packet[4] + 1) & 0xFF]) + packet[5:],  # checksum
        packet[:60] + packet,  # cut off at frame 13, then a whole packet: the whole one is kept
        b"\x01" * 400,
        b"\x06\x15" * 3,  # ACK / NAK replies
        b"\x06" * 500,  # too many to be replies
        bytes(range(256)) * 2,
    ]
    for _ in range(GENERATED):
        frame = rng.choice(valid)[0]
        if rng.random() < 0.2:  # a wrong checksum in one frame
            k = rng.randrange(25) * 5 + 4
            frame = frame[:k] + bytes([(frame[k] + rng.randint(1, 255)) & 0xFF]) + frame[k + 1 :]
        bad.append(generic_mutation(rng, frame, 200))
    return bad


def test_nonin_f2_corpus() -> None:
    rng = random.Random(SEED + 1)
    nonin = NoninF2Codec()
    codec = StreamCodec(
        nonin.feed,
        lambda: (nonin.frames_ok, nonin.rejected),
        lambda e: isinstance(e, DeviceReading),
        replies=lambda: nonin.acks + nonin.naks,
    )
    valid = nonin_valid(rng, 50)
    tally = run_corpus("nonin-f2", codec, valid, nonin_bad(rng, valid), nonin_values)
    check(tally, min_rejected_share=0.95)


# ---- SunTech Advantage NIBP ----------------------------------------------------------------------------


def suntech_valid(rng: random.Random, count: int) -> list[tuple[bytes, object]]:
    frames: list[tuple[bytes, object]] = []
    for i in range(count):
        if i % 3 == 0:
            sys_, dia, pulse = rng.randint(90, 180), rng.randint(50, 85), rng.randint(45, 140)
            mean = (sys_ + 2 * dia) // 3
            frames.append((encode_bp_data(sys_, dia, mean, pulse), BpDataReply(sys_, dia, mean, pulse, 0)))
        elif i % 3 == 1:
            mmhg = rng.randint(0, 300)
            frames.append((encode_cuff_pressure(mmhg), CuffPressureReply(mmhg)))
        else:
            letter = rng.choice("OKABENST")
            frames.append((encode_reply(letter), LetterReply(letter)))
    return frames


def suntech_bad(rng: random.Random, valid: list[tuple[bytes, object]]) -> list[bytes]:
    bp = encode_bp_data(120, 80, 93, 70)
    bad = [
        bp[:-1] + bytes([(bp[-1] + 1) & 0xFF]),  # wrong checksum
        bp[:10],  # truncated BP packet: the next reply must not be swallowed
        b"\x3e\x18",  # a BP start and nothing else
        b"\x3e\x05",
        b"\x3e" * 100,
        b"\x3e\xff\x00\x00",
        bytes(range(256)),
        b"\x00" * 1000,
    ]
    for _ in range(GENERATED):
        frame = rng.choice(valid)[0]
        if rng.random() < 0.2:
            frame = frame[:-1] + bytes([(frame[-1] + rng.randint(1, 255)) & 0xFF])
        bad.append(generic_mutation(rng, frame, 100))
    return bad


def test_suntech_nibp_corpus() -> None:
    rng = random.Random(SEED + 2)
    decoder = SuntechReplyDecoder()
    codec = StreamCodec(
        decoder.feed,
        lambda: (decoder.frames_ok, decoder.rejected),
        lambda e: not isinstance(e, RejectedFrame),
    )
    valid = suntech_valid(rng, 60)
    tally = run_corpus("suntech-nibp", codec, valid, suntech_bad(rng, valid), lambda e: e)
    check(tally, min_rejected_share=0.9)


# ---- Alaris Asena (INF polling) ------------------------------------------------------------------------


def alaris_valid(rng: random.Random, count: int) -> list[tuple[bytes, object]]:
    frames = []
    for _ in range(count):
        rate, volume, pressure = (
            rng.randint(0, 90000) / 100,
            rng.randint(0, 500000) / 1000,
            rng.randint(0, 900),
        )
        text = format_inf_reply(
            serial="1234-56789", alarm="-", mode="INFUSING", rate=rate, volume=volume, pressure=pressure
        )
        frames.append((encode_frame(text), (rate, volume, float(pressure))))
    return frames


def alaris_values(event: object) -> object:
    assert isinstance(event, DeviceReading)
    by_code = {m.code: m.value for m in event.measurements}
    return (
        by_code[mdc.INFUSION_RATE.code],
        by_code[mdc.VOLUME_INFUSED.code],
        by_code[mdc.PUMP_PRESSURE.code],
    )


def alaris_bad(rng: random.Random, valid: list[tuple[bytes, object]]) -> list[bytes]:
    frame = valid[0][0]
    text = frame[1 : frame.rindex(b"|")].decode()
    bad = [
        frame[:-6] + b"0000\r",  # wrong CRC
        frame[:-6] + b"ZZZZ\r",
        frame[:-1] + b"!",  # a new frame before the end
        encode_frame(text.replace("INFUSING", "INFUSING^extra")),  # CRC right, one field too many
        encode_frame(text.replace("^ml/h^", "^ml/h^").replace("INF^", "INF^^", 1)),
        encode_frame("INF" + "^NaN" * 13),
        encode_frame("INF^1^-^RUNNING^1e999^ml/h^^Infinity^ml^NaN^mmHg^24+^EVENT^1"),
        encode_frame("INF^1^-^RUNNING^" + "9" * 300 + "^ml/h^^1^ml^1^mmHg^24+^EVENT^1"),
        encode_frame("INF^1^-^RUNNING^1^ml/h^^" + "9" * 400 + "^ml^1^mmHg^24+^EVENT^1"),  # Infinity
        encode_frame("ALARM^^"),  # an ALARM reply nobody asked for
        encode_frame("\u00e9\u4e2d^\U0001f600"),
        b"!" + b"A" * 5000 + b"\r",
        b"\r\r\r",
        b"!|\r",
        b"!" * 300,
    ]
    for _ in range(GENERATED):
        frame = rng.choice(valid)[0]
        if rng.random() < 0.2:  # a CRC that does not match
            frame = frame[:-5] + f"{rng.randrange(0x10000):04X}".encode() + b"\r"
        bad.append(generic_mutation(rng, frame, 600))
    return bad


def test_alaris_asena_corpus() -> None:
    rng = random.Random(SEED + 3)
    driver = AlarisAsenaDriver()
    driver.connected(0.0)
    codec = StreamCodec(
        lambda data: driver.feed(data, 0.0),
        lambda: (driver.frames_ok, driver.rejected),
        lambda e: isinstance(e, DeviceReading) and bool(e.measurements),
        one_event_per_frame=False,
    )
    valid = alaris_valid(rng, 50)
    tally = run_corpus("alaris-asena", codec, valid, alaris_bad(rng, valid), alaris_values, finite_readings)
    check(tally, min_rejected_share=0.9)


# ---- JSON: the mqtt-json devices and the wire contract -------------------------------------------------


def json_mutation(rng: random.Random, message: bytes, max_size: int) -> bytes:
    """A JSON message made wrong: NaN/Infinity/enormous numbers, wrong types, or a generic malformation."""
    kind = rng.randrange(6)
    text = message.decode()
    if kind == 0:  # a number replaced by one JSON does not have, or cannot hold
        numbers = [(m, n) for m, n in enumerate(text) if n.isdigit()]
        if numbers:
            i = rng.choice(numbers)[0]
            j = i
            while j < len(text) and (text[j].isdigit() or text[j] in ".e-+"):
                j += 1
            return (text[:i] + rng.choice(HUGE_NUMBERS) + text[j:]).encode()
    if kind == 1:  # a value of the wrong type
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data:
            key = rng.choice(sorted(data))
            data[key] = rng.choice([None, "", "x" * 100, [], {}, True, -1, 2**64, 1.5, [[[]]], {"a": {}}])
            return json.dumps(data).encode()
    if kind == 2:  # deeply nested
        depth = rng.choice((100, 1000, 10_000))
        return text.replace("{", "{" + '"deep": ' + "[" * depth + "]" * depth + ", ", 1).encode()
    if kind == 3:  # oversized
        return text[:-1].encode() + b', "pad": "' + b"x" * (max_size + 10) + b'"}'
    return generic_mutation(rng, message, max_size)


JSON_HAND_MADE = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"string"',
    b"NaN",
    b"{" * 5000,
    b"[" * 50_000 + b"]" * 50_000,
    b'{"code": 150456, "value": NaN, "unit": "%"}',
    b'{"code": 150456, "value": 1e999, "unit": "%"}',
    b'{"code": 150456, "value": -Infinity, "unit": "%"}',
    b'{"code": 1' + b"0" * 400 + b', "value": 97, "unit": "%"}',
    b'{"code": 150456, "value": 97, "unit": "\xff"}',
    b'{"code": 150456, "value": 97, "unit": "%", "unit": "%"}',
    b'{"code": 150456, "value": 97, "unit": "\\ud800"}',
    b"\xef\xbb\xbf{}",
    b'{"ts": "9999-99-99T99:99:99Z", "seq": 1}',
    b'{"ts": "0001-01-01T00:00:00+23:59", "seq": 1, "code": 1, "value": 1, "unit": "", "valid": true}',
    b'{"ts": "2026-01-01T00:00:00Z", "seq": 18446744073709551615, "code": 1, "value": 1, "unit": ""}',
    b'{"ts": "2026-01-01T00:00:00Z", "seq": 1, "code": 18446744073709551615, "value": 1, "unit": "%"}',
    b'{"ts": "2026-01-01T00:00:00Z", "seq": -1, "code": -5, "value": 1, "unit": "", "valid": true}',
]


def json_bad(rng: random.Random, valid: list[tuple[bytes, object]], max_size: int) -> list[bytes]:
    return list(JSON_HAND_MADE) + [
        json_mutation(rng, rng.choice(valid)[0], max_size) for _ in range(GENERATED)
    ]


def mqtt_json_valid(rng: random.Random, count: int) -> list[tuple[bytes, object]]:
    frames = []
    for i in range(count):
        spo2, pulse = rng.randint(70, 100), rng.randint(40, 180)
        message = {
            "ts": "2026-11-25T01:00:00Z",
            "measurements": [
                {"code": mdc.SPO2.code, "value": spo2, "unit": "%"},
                {"code": mdc.PULSE_RATE.code, "value": pulse, "unit": mdc.PULSE_RATE.unit, "valid": True},
            ],
            "mode": "running",
        }
        if i % 2:  # the one-measurement form
            message = {"code": mdc.SPO2.code, "value": spo2, "unit": "%"}
            frames.append((json.dumps(message).encode(), (float(spo2),)))
        else:
            frames.append((json.dumps(message).encode(), (float(spo2), float(pulse))))
    return frames


def test_mqtt_json_corpus() -> None:
    rng = random.Random(SEED + 4)
    json_codec = MqttJsonCodec()
    codec = StreamCodec(
        json_codec.feed,
        lambda: (json_codec.frames_ok, json_codec.rejected),
        lambda e: isinstance(e, DeviceReading),
    )
    valid = mqtt_json_valid(rng, 40)

    def values(event: object) -> object:
        assert isinstance(event, DeviceReading)
        return tuple(m.value for m in event.measurements)

    tally = run_corpus("mqtt-json", codec, valid, json_bad(rng, valid, 16 * 1024), values, finite_readings)
    check(tally, min_rejected_share=0.75)


# ---- the wire decoders: obs, status, events ------------------------------------------------------------


class WireCodec:
    """A wire decoder as a counting codec: a WireError is a rejected message, anything else a crash."""

    def __init__(self, decode: Callable[[bytes], object]) -> None:
        self.decode = decode
        self.frames_ok = 0
        self.rejected = 0

    def feed(self, data: bytes) -> list[object]:
        try:
            decoded = self.decode(data)
        except wire.WireError as exc:
            self.rejected += 1
            return [RejectedFrame(str(exc), data[:200])]
        self.frames_ok += 1
        return [decoded]

    def as_stream(self) -> StreamCodec:
        return StreamCodec(
            self.feed, lambda: (self.frames_ok, self.rejected), lambda e: not isinstance(e, RejectedFrame)
        )


def _obs(rng: random.Random, seq: int) -> Observation:
    return Observation(
        "clinic",
        "room1",
        "oximeter",
        seq,
        1_795_000_000 + seq / 4,
        mdc.SPO2.code,
        float(rng.randint(70, 100)),
        "%",
        True,
        conditions=("low_perfusion",) if seq % 5 == 0 else (),
    )


WIRE_CASES: dict[str, tuple[str, Callable[[random.Random, int], tuple[bytes, object]]]] = {
    "obs": (
        wire.obs_topic("clinic", "room1", "oximeter"),
        lambda rng, i: ((o := _obs(rng, i)) and wire.encode_observation(o), o),
    ),
    "status": (
        wire.status_topic("clinic", "room1", "oximeter"),
        lambda rng, i: (
            (
                s := DeviceStatus(
                    "clinic",
                    "room1",
                    "oximeter",
                    1_795_000_000.0 + i,
                    "online",
                    "masimo-ascii",
                    counters={"frames_ok": i, "rejected": rng.randrange(9)},
                )
            )
            and wire.encode_status(s),
            s,
        ),
    ),
    "events": (
        wire.events_topic("clinic", "room1"),
        lambda rng, i: (
            wire.encode_clinical_event(
                e := ClinicalEvent(
                    "clinic",
                    "room1",
                    1_795_000_000.0 + i,
                    "note",
                    "nurse-a",
                    f"ev-{i}",
                    f"note {rng.randrange(10**6)}: patient calm",
                    "",
                    "",
                    "",
                    "",
                    None,
                    {},
                )
            ),
            e,
        ),
    ),
}


def storable(event: object) -> bool:
    """What the core would store: finite values, and numbers SQLite holds (an INTEGER is 64-bit signed)."""
    if isinstance(event, Observation):
        return (event.value is None or math.isfinite(event.value)) and 0 <= event.seq < 2**63
    return True


@pytest.mark.parametrize("kind", sorted(WIRE_CASES))
def test_wire_decoder_corpus(kind: str) -> None:
    rng = random.Random(SEED + 10 + sorted(WIRE_CASES).index(kind))
    topic_text, make = WIRE_CASES[kind]
    topic = wire.parse_topic(topic_text)
    decode = {
        "obs": lambda data: wire.decode_observation(topic, data),
        "status": lambda data: wire.decode_status(topic, data),
        "events": lambda data: wire.decode_clinical_event(topic, data, 1_795_000_000.0),
    }[kind]
    wire_codec = WireCodec(decode)
    valid = [make(rng, i) for i in range(40)]
    bad = json_bad(rng, valid, wire.MAX_PAYLOAD)
    tally = run_corpus(kind, wire_codec.as_stream(), valid, bad, lambda e: e, storable)
    check(tally, min_rejected_share=0.7)

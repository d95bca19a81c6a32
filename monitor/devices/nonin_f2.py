"""Nonin pulse oximeters (OEM III, 9560, Xpod) in serial Data Format 2, decoded without I/O.

Source: ../shared/reference/device-protocols.md section 1b, which cites mattjlewis/NoninPulseOx
(`DataFormat2FrameSerialiser.java`, `DataFormat2PacketSerialiser.java`, the vendor PDFs in that repository)
and mdpnp/mdpnp devices/nonin. The public capture in the comment of `DataFormat2FrameSerialiser.java` is
the first test vector in tests/test_nonin_f2.py.

The wire format, 9600 8N1. The oximeter sends 75 five-byte frames per second::

    01  STATUS  PLETH  FLOAT  CHK        CHK = (01 + STATUS + PLETH + FLOAT) mod 256

25 frames make a packet (three packets a second). STATUS bit 0 (SYNC) marks frame 1 of a packet; the other
STATUS bits are flags (see `STATUS_CONDITIONS`, `PERFUSION_*`). PLETH is one 75 Hz pleth sample per frame.
FLOAT means something different in each frame of the packet (`FLOAT_FRAME`): HR is split over frames 1-2,
SpO2 is frame 3, STAT2 (low battery) is frame 8, and so on.

Why sans-I/O (like h11, and like `masimo_ascii`): `feed()` takes whatever bytes the transport read, in any
chunking, and returns events; the codec owns no socket, thread, clock or logger.

Decisions where the sources are silent (each is tested in tests/test_nonin_f2.py):

- **Which SpO2.** The DeviceReading carries the SpO2 of frame 3 and the HR of frames 1-2: the standard
  (4-beat average) pair, the first values the reference lists and the ones NoninPulseOx decodes first. The
  display (`-D`) variants are formatted for a local screen and may be smoothed or held through a brief loss
  of signal **[unverified]**, and a monitor that alarms must not show a held number as current; the fast,
  beat-to-beat and extended (`E-`) variants use other averaging. All of them are kept in
  `DeviceReading.extra` as decimal strings (HR variants already combined) so nothing the device said is lost;
  the reserved and timer frames are not.
- **Validity.** SpO2 127 and HR 511 mean "no value": `Measurement(value=None, valid=False)`. Other values
  outside 0..100 % (SpO2) or 0..350 /min (HR, the same bound as the Masimo codec) keep their value but are
  `valid=False`. The SpO2 byte is not masked to 7 bits: a set bit 7 reads as out of range (invalid), the safe
  direction, where a mask could make a corrupted byte look plausible. Any condition in
  monitor.conditions.SENSOR_PROBLEMS (here: `sensor_off`, from SNSD) makes both numbers invalid.
- **Conditions** are the union over the packet's 25 STATUS bytes, plus `low_battery` from STAT2 bit 0.
- **Perfusion is held across packets [unverified].** The public capture shows perfusion bits 00 ("no
  indication") on every frame of a packet with a good SpO2 and HR, which fits Nonin's pulse-quality LED that
  blinks green/yellow/red at each detected beat. Were the colour only the packet's own, `low_perfusion` would
  flicker on and off three times a second between beats. So the colours last indicated are held for
  `PERFUSION_HOLD_PACKETS` packets (2 s: one beat at 30 /min) and then dropped. Green maps to no condition,
  red to `low_perfusion`, yellow to `perfusion_marginal`; 00 keeps the held colour.
- **Resynchronisation, by packet.** A packet is accepted only when 25 consecutive frames all start with 01,
  have STATUS bit 7 set and a matching checksum, and only the first has SYNC. Until such a packet starts at
  the current byte, that byte is skipped and the hunt moves on by one byte. Checking the whole packet (not
  one frame) means junk that happens to look like a frame, or a stray 01 just before a real packet, cannot
  swallow the real packet: it takes 125 bytes of junk forming a perfect packet to fool the decoder.
- **One reject per run of skipped bytes.** Consecutive skipped bytes are one `RejectedFrame`, emitted when
  the next packet is found (or, for a long run, once as soon as it reaches `LONG_RUN` bytes, so a device in
  the wrong format or at the wrong baud rate is reported at once, and never again until a packet is seen).
  Its reason says what the first skipped byte began: junk, a frame with a bad checksum, frames of a packet
  whose SYNC frame was not received (normal right after connecting mid-packet), or a packet cut off at frame
  k (by junk, a bad checksum, or a SYNC arriving early because frames were lost), which is dropped whole:
  decoding resumes at the next SYNC. A frame with a bad checksum is never decoded. A short run still going
  at the end of the input is reported only when it ends: what follows may yet be a packet.
- **Replies.** The device answers `initial_commands()` with ACK (06) or NAK (15). A run of skipped bytes
  made only of those (at most `MAX_REPLY_BYTES`) is a reply, not garbage: it is counted in `acks` / `naks`
  and not in `rejected`. Anything else in the run makes the whole run garbage.
- `frames_ok` counts decoded packets (each is one DeviceReading), as the Masimo codec counts lines.

`NoninF7Codec` decodes Data Format 7 (`STATUS PLETH_MSB PLETH_LSB FLOAT CHK`, no leading 01, 16-bit
pleth) with the same rules. The reference only says it is "the same" as format 2 otherwise: the checksum
(sum of the first four bytes) is **[unverified]** and it has not been checked against a device.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from monitor import mdc
from monitor.conditions import SENSOR_PROBLEMS
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame, WaveformBlock

FRAME_SIZE: Final = 5
FRAMES_PER_PACKET: Final = 25
PACKET_SIZE: Final = FRAME_SIZE * FRAMES_PER_PACKET
SAMPLE_RATE: Final = 75.0  # frames (pleth samples) per second

FRAME_START: Final = 0x01  # byte 1 of every Data Format 2 frame

# host commands, `STX op len data... ETX` (reference 1b); the device replies ACK or NAK
SET_DATA_FORMAT_2: Final = bytes((0x02, 0x70, 0x02, 0x02, 0x02, 0x03))
SET_DATA_FORMAT_7: Final = bytes((0x02, 0x70, 0x02, 0x02, 0x07, 0x03))
ACK: Final = 0x06
NAK: Final = 0x15
#: a skipped run of at most this many ACK/NAK bytes is a reply to our commands, not garbage
MAX_REPLY_BYTES: Final = 8

# STATUS byte
STATUS_ALWAYS_SET: Final = 0x80
STATUS_SNSD: Final = 0x40  # sensor disconnected
STATUS_ARTF: Final = 0x20  # artifact
STATUS_OOT: Final = 0x10  # out of track
STATUS_SNSA: Final = 0x08  # sensor alarm
STATUS_PERFUSION_MASK: Final = 0x06
STATUS_SYNC: Final = 0x01  # frame 1 of a packet

#: STATUS flag -> condition id (monitor.conditions)
STATUS_CONDITIONS: Final[Mapping[int, str]] = {
    STATUS_SNSD: "sensor_off",
    STATUS_ARTF: "artifact",
    STATUS_OOT: "out_of_track",
    STATUS_SNSA: "sensor_alarm",
}

#: STATUS bits 2-1 -> perfusion colour; 00 is "no indication" (between beats, see module docstring)
PERFUSION_COLOURS: Final[Mapping[int, str]] = {0x02: "green", 0x04: "red", 0x06: "yellow"}
PERFUSION_CONDITIONS: Final[Mapping[str, str]] = {"red": "low_perfusion", "yellow": "perfusion_marginal"}
#: packets a perfusion colour is held without a new indication (6 packets = 2 s = one beat at 30 /min)
PERFUSION_HOLD_PACKETS: Final = 6

# STAT2 (FLOAT of frame 8)
STAT2_LOW_BATTERY: Final = 0x01
STAT2_SMARTPOINT: Final = 0x20

#: meaning of FLOAT -> frame number in the packet (1-based, as the reference numbers them)
FLOAT_FRAME: Final[Mapping[str, int]] = {
    "HR_MSB": 1,
    "HR_LSB": 2,
    "SPO2": 3,
    "FIRMWARE": 4,
    "STAT2": 8,
    "SPO2-D": 9,
    "SPO2-FAST": 10,
    "SPO2-BB": 11,
    "E-HR_MSB": 14,
    "E-HR_LSB": 15,
    "E-SPO2": 16,
    "E-SPO2-D": 17,
    "HR-D_MSB": 20,
    "HR-D_LSB": 21,
    "E-HR-D_MSB": 22,
    "E-HR-D_LSB": 23,
}
_SPO2_EXTRAS: Final = ("SPO2-D", "SPO2-FAST", "SPO2-BB", "E-SPO2", "E-SPO2-D")
_HR_EXTRAS: Final = ("E-HR", "HR-D", "E-HR-D")

MISSING_SPO2: Final = 127
MISSING_HR: Final = 511
SPO2_RANGE: Final = (0, 100)
HR_RANGE: Final = (0, 350)

#: a run of skipped bytes this long is reported at once instead of when the next packet is found
LONG_RUN: Final = 2 * PACKET_SIZE
REJECT_DATA_LIMIT: Final = 200  # bytes of a skipped run kept in RejectedFrame.data
_REPLY_BYTES: Final = bytes((ACK, NAK))


def hr_from_bytes(msb: int, lsb: int) -> int:
    """HR = ((MSB & 0x03) << 7) | (LSB & 0x7F): bits 8-7 ride in MSB bits 1-0, bits 6-0 in LSB (ref. 1b)."""
    return ((msb & 0x03) << 7) | (lsb & 0x7F)


def checksum(frame_head: bytes | bytearray) -> int:
    """CHK = sum of the frame's first four bytes mod 256 (reference 1b)."""
    return sum(frame_head) & 0xFF


#: STATUS byte -> its class in a packet: "S" a first (SYNC) frame, "n" any other frame, "x" no frame at all
_STATUS_CLASS: Final = bytes(
    ord("S") if status & 0x81 == 0x81 else ord("n") if status & STATUS_ALWAYS_SET else ord("x")
    for status in range(256)
)
_PACKET_CLASSES: Final = b"S" + b"n" * (FRAMES_PER_PACKET - 1)
#: the STATUS bits that are conditions, and the conditions of every combination of them
_CONDITION_BITS: Final = STATUS_SNSD | STATUS_ARTF | STATUS_OOT | STATUS_SNSA
_CONDITIONS_OF_FLAGS: Final = tuple(
    frozenset(condition for bit, condition in STATUS_CONDITIONS.items() if flags & bit)
    for flags in range(_CONDITION_BITS + 1)
)
# FLOAT indices (0-based frame numbers) of what a packet is decoded into
_SPO2_AT: Final = FLOAT_FRAME["SPO2"] - 1
_HR_AT: Final = (FLOAT_FRAME["HR_MSB"] - 1, FLOAT_FRAME["HR_LSB"] - 1)
_FIRMWARE_AT: Final = FLOAT_FRAME["FIRMWARE"] - 1
_STAT2_AT: Final = FLOAT_FRAME["STAT2"] - 1
_SPO2_EXTRAS_AT: Final = tuple((name, FLOAT_FRAME[name] - 1) for name in _SPO2_EXTRAS)
_HR_EXTRAS_AT: Final = tuple(
    (name, FLOAT_FRAME[f"{name}_MSB"] - 1, FLOAT_FRAME[f"{name}_LSB"] - 1) for name in _HR_EXTRAS
)


def frame_checksums(frames: bytes, count: int) -> bytes:
    """The checksum each of `count` consecutive frames should carry, computed for all of them at once.

    Why not a loop: at 75 frames a second per room a per-frame Python sum is most of the decoding time.
    Each of the four summed byte columns is widened to 16-bit lanes of one big integer, so one integer
    addition adds every frame's bytes (at most 4 * 255, never carrying into the next lane) and the low byte
    of each lane is that frame's sum mod 256.
    """
    lanes = bytearray(2 * count)
    total = 0
    for column in range(4):
        lanes[1::2] = frames[column : FRAME_SIZE * count : FRAME_SIZE]
        total += int.from_bytes(lanes, "big")
    return total.to_bytes(2 * count, "big")[1::2]


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why no packet starts at a byte: the frame (1-based) where the check failed and what was wrong."""

    frame: int
    problem: str

    def describe(self) -> str:
        if self.frame == 1:
            return {
                "bad checksum": "a frame with a bad checksum",
                "no SYNC": "frames of a packet whose first (SYNC) frame was not received",
            }.get(self.problem, "bytes that are not Nonin frames")
        cause = {
            "bad checksum": "a frame with a bad checksum",
            "SYNC": "a new packet started early (frames lost)",
        }.get(self.problem, "junk instead of a frame")
        return (
            f"packet dropped at frame {self.frame} of {FRAMES_PER_PACKET}: {cause}; "
            "decoding resumes at the next SYNC"
        )


_INCOMPLETE: Final = "incomplete"  # the bytes so far are fine, more are needed to decide


class NoninF2Codec:
    """Bytes from a Nonin oximeter in Data Format 2 in; DeviceReading, WaveformBlock and RejectedFrame out.

    Per complete packet: one DeviceReading (SpO2, pulse rate, conditions) then one WaveformBlock (the 25 pleth
    samples, 75 Hz). See the module docstring for resynchronisation and the decisions behind each value.

    Two paths, one rule. Consecutive whole packets are checked together with bytes-level operations (every
    frame start, STATUS class and checksum of the run at once: `_valid_packets`); only where that finds no
    packet does the frame-by-frame check (`_check_packet`) say why, and the hunt move on, skipping in one
    step the bytes that cannot begin a frame. Both accept exactly the same packets.
    """

    protocol: ClassVar[str] = "nonin-f2"
    data_format: ClassVar[int] = 2
    #: where STATUS sits in a frame, the byte every frame starts with (None: none), and a packet's fields
    _status_at: ClassVar[int] = 1
    _frame_start: ClassVar[bytes | None] = bytes((FRAME_START,))
    #: per frame: STATUS, pleth sample, FLOAT (start and checksum bytes skipped)
    _packet_fields: ClassVar[struct.Struct] = struct.Struct(">" + "xBBBx" * FRAMES_PER_PACKET)
    #: a byte that may begin a frame; any other byte is skipped without a packet check
    _frame_candidate: ClassVar[re.Pattern[bytes]] = re.compile(re.escape(bytes((FRAME_START,))))

    def __init__(self) -> None:
        self.frames_ok = 0  # packets decoded
        self.rejected = 0  # runs of skipped bytes reported
        self.acks = 0  # ACK bytes skipped as replies to our commands
        self.naks = 0  # NAK bytes skipped as replies (the device refused a command)
        self._buffer = b""
        self._run = bytearray()  # the current run of skipped bytes, first REJECT_DATA_LIMIT of them
        self._run_length = 0
        self._run_failure: _Failure | None = None  # why the run's first byte was skipped
        self._run_reported = False  # a long run was already reported
        self._run_is_reply = True  # every byte of the run so far is ACK or NAK
        self._perfusion: frozenset[str] = frozenset()  # colours last indicated
        self._perfusion_age = 0  # packets since they were indicated

    def initial_commands(self) -> bytes:
        """Select this data format (the device may have been configured for another one); ACK/NAK follows."""
        return SET_DATA_FORMAT_2

    def bytes_wanted(self) -> int:
        """Bytes still missing from the packet begun at the end of the input (a whole packet after a whole
        one): the transport can sleep until they are there instead of waking at every frame."""
        return PACKET_SIZE - len(self._buffer)

    def feed(self, data: bytes) -> list[CodecEvent]:
        """Take the next bytes from the device, in any chunking; return the events they complete."""
        buffer = self._buffer + data
        events: list[CodecEvent] = []
        position = 0
        while True:
            packets = self._valid_packets(buffer, position)
            if packets:
                self._end_run(events)
                for _ in range(packets):
                    events.extend(self._decode(buffer, position))
                    position += PACKET_SIZE
                continue
            verdict = self._check_packet(buffer, position)
            if verdict is None:  # the bulk check and this one disagree: never expected, decode it anyway
                self._end_run(events)
                events.extend(self._decode(buffer, position))
                position += PACKET_SIZE
                continue
            if isinstance(verdict, str):  # _INCOMPLETE: wait for more bytes
                break
            self._skip(buffer[position : position + 1], verdict, events)
            position += 1
            candidate = self._frame_candidate.search(buffer, position)
            hunt_to = candidate.start() if candidate else len(buffer)
            if hunt_to > position:
                self._skip(buffer[position:hunt_to], verdict, events)
                position = hunt_to
        self._buffer = buffer[position:]
        return events

    # --- framing -------------------------------------------------------------------------------------

    def _valid_packets(self, buffer: bytes, position: int) -> int:
        """How many whole, valid packets follow each other from `position` (0 if none starts there)."""
        good, whole = 0, (len(buffer) - position) // PACKET_SIZE
        if whole and self._all_valid(buffer[position : position + whole * PACKET_SIZE], whole):
            return whole
        bad = whole  # a run with an invalid packet: the valid ones before it, by bisection
        while bad - good > 1:
            middle = (good + bad) // 2
            if self._all_valid(buffer[position : position + middle * PACKET_SIZE], middle):
                good = middle
            else:
                bad = middle
        return good

    def _all_valid(self, packets: bytes, count: int) -> bool:
        """Whether `packets` are `count` valid packets: the same rules as `_check_packet`, on all frames at
        once (slices, `bytes.translate`, `frame_checksums`) rather than byte by byte."""
        frames = count * FRAMES_PER_PACKET
        if self._frame_start is not None and packets[::FRAME_SIZE] != self._frame_start * frames:
            return False
        statuses = packets[self._status_at :: FRAME_SIZE]
        if statuses.translate(_STATUS_CLASS) != _PACKET_CLASSES * count:
            return False
        return frame_checksums(packets, frames) == packets[4::FRAME_SIZE]

    def _frame_problem(self, buffer: bytes, start: int) -> str | None:
        """What is wrong with the frame starting at `start` (None: nothing), or _INCOMPLETE."""
        available = len(buffer) - start
        if buffer[start] != FRAME_START:
            return "not a frame start"
        if available >= 2 and not buffer[start + 1] & STATUS_ALWAYS_SET:
            return "status bit 7 clear"
        if available < FRAME_SIZE:
            return _INCOMPLETE
        if checksum(buffer[start : start + 4]) != buffer[start + 4]:
            return "bad checksum"
        return None

    def _check_packet(self, buffer: bytes, position: int) -> _Failure | str | None:
        """None when a valid packet starts at `position`; else why none starts there, or _INCOMPLETE."""
        for index in range(FRAMES_PER_PACKET):
            start = position + index * FRAME_SIZE
            if start >= len(buffer):
                return _INCOMPLETE
            problem = self._frame_problem(buffer, start)
            if problem is not None:
                return problem if problem == _INCOMPLETE else _Failure(index + 1, problem)
            sync = bool(buffer[start + self._status_at] & STATUS_SYNC)
            if index == 0 and not sync:
                return _Failure(1, "no SYNC")
            if index > 0 and sync:
                return _Failure(index + 1, "SYNC")
        return None

    # --- skipped runs --------------------------------------------------------------------------------

    def _skip(self, skipped: bytes, failure: _Failure, events: list[CodecEvent]) -> None:
        """Add `skipped` to the current run; `failure` says why, when they are the run's first bytes."""
        if self._run_length == 0:
            self._run_failure = failure
        before = self._run_length
        self._run_length += len(skipped)
        room = REJECT_DATA_LIMIT - len(self._run)
        if room > 0:
            self._run += skipped[:room]
        self._run_is_reply = self._run_is_reply and not skipped.translate(None, _REPLY_BYTES)
        if before < LONG_RUN <= self._run_length and not self._run_reported:
            self._run_reported = True
            events.append(self._reject(f"over {LONG_RUN} bytes skipped so far, hunting for a packet start"))

    def _end_run(self, events: list[CodecEvent]) -> None:
        if self._run_length == 0:
            return
        if self._run_is_reply and self._run_length <= MAX_REPLY_BYTES:
            self.acks += self._run.count(ACK)
            self.naks += self._run.count(NAK)
        elif not self._run_reported:
            events.append(self._reject(f"{self._run_length} bytes skipped up to the next packet start"))
        self._run = bytearray()
        self._run_length = 0
        self._run_failure = None
        self._run_reported = False
        self._run_is_reply = True

    def _reject(self, how_many: str) -> RejectedFrame:
        self.rejected += 1
        assert self._run_failure is not None
        return RejectedFrame(reason=f"{self._run_failure.describe()} ({how_many})", data=bytes(self._run))

    # --- decoding ------------------------------------------------------------------------------------

    def _decode(self, buffer: bytes, start: int) -> tuple[DeviceReading, WaveformBlock]:
        """The reading and the pleth block of the valid packet at `start`."""
        fields = self._packet_fields.unpack_from(buffer, start)
        floats = fields[2::3]
        flags = 0
        indicated: set[str] = set()
        for status in set(fields[0::3]):  # a packet has few distinct STATUS bytes
            flags |= status
            if colour := PERFUSION_COLOURS.get(status & STATUS_PERFUSION_MASK):
                indicated.add(colour)
        conditions = set(_CONDITIONS_OF_FLAGS[flags & _CONDITION_BITS])
        conditions.update(
            PERFUSION_CONDITIONS[c] for c in self._held_perfusion(indicated) if c in PERFUSION_CONDITIONS
        )
        stat2 = floats[_STAT2_AT]
        if stat2 & STAT2_LOW_BATTERY:
            conditions.add("low_battery")
        sensor_problem = not SENSOR_PROBLEMS.isdisjoint(conditions)

        measurements = (
            _measurement(mdc.SPO2, floats[_SPO2_AT], MISSING_SPO2, SPO2_RANGE, sensor_problem),
            _measurement(
                mdc.PULSE_RATE,
                hr_from_bytes(*(floats[i] for i in _HR_AT)),
                MISSING_HR,
                HR_RANGE,
                sensor_problem,
            ),
        )
        extra = {
            "FIRMWARE": str(floats[_FIRMWARE_AT]),
            "STAT2": f"{stat2:02X}",
            **{name: str(floats[at]) for name, at in _SPO2_EXTRAS_AT},
            **{name: str(hr_from_bytes(floats[msb], floats[lsb])) for name, msb, lsb in _HR_EXTRAS_AT},
        }
        self.frames_ok += 1
        reading = DeviceReading(measurements=measurements, conditions=frozenset(conditions), extra=extra)
        waveform = WaveformBlock(code=mdc.PLETH.code, sample_rate=SAMPLE_RATE, samples=fields[1::3])
        return reading, waveform

    def _held_perfusion(self, indicated: set[str]) -> frozenset[str]:
        if indicated:
            self._perfusion, self._perfusion_age = frozenset(indicated), 0
        else:
            self._perfusion_age += 1
            if self._perfusion_age >= PERFUSION_HOLD_PACKETS:
                self._perfusion = frozenset()
        return self._perfusion


def _measurement(
    metric: mdc.Metric, raw: int, missing: int, plausible: tuple[int, int], sensor_problem: bool
) -> Measurement:
    if raw == missing:
        return Measurement(code=metric.code, value=None, unit=metric.unit, valid=False)
    lowest, highest = plausible
    valid = lowest <= raw <= highest and not sensor_problem
    return Measurement(code=metric.code, value=float(raw), unit=metric.unit, valid=valid)


class NoninF7Codec(NoninF2Codec):
    """Data Format 7: `STATUS PLETH_MSB PLETH_LSB FLOAT CHK`, a 16-bit pleth and no leading 01 (ref. 1b).

    Everything else is format 2's. Without the 01, a frame is found by STATUS bit 7 and the checksum
    (assumed to be the sum of the first four bytes, **[unverified]**); the 25-frame packet check still makes
    a false start practically impossible.
    """

    protocol: ClassVar[str] = "nonin-f7"
    data_format: ClassVar[int] = 7
    _status_at: ClassVar[int] = 0
    _frame_start: ClassVar[bytes | None] = None
    #: per frame: STATUS, the 16-bit pleth sample (big-endian), FLOAT (checksum skipped)
    _packet_fields: ClassVar[struct.Struct] = struct.Struct(">" + "BHBx" * FRAMES_PER_PACKET)
    _frame_candidate: ClassVar[re.Pattern[bytes]] = re.compile(b"[\x80-\xff]")

    def initial_commands(self) -> bytes:
        return SET_DATA_FORMAT_7

    def _frame_problem(self, buffer: bytes, start: int) -> str | None:
        available = len(buffer) - start
        if not buffer[start] & STATUS_ALWAYS_SET:
            return "status bit 7 clear"
        if available < FRAME_SIZE:
            return _INCOMPLETE
        if checksum(buffer[start : start + 4]) != buffer[start + 4]:
            return "bad checksum"
        return None

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


def hr_from_bytes(msb: int, lsb: int) -> int:
    """HR = ((MSB & 0x03) << 7) | (LSB & 0x7F): bits 8-7 ride in MSB bits 1-0, bits 6-0 in LSB (ref. 1b)."""
    return ((msb & 0x03) << 7) | (lsb & 0x7F)


def checksum(frame_head: bytes | bytearray) -> int:
    """CHK = sum of the frame's first four bytes mod 256 (reference 1b)."""
    return sum(frame_head) & 0xFF


@dataclass(frozen=True, slots=True)
class Frame:
    """One checked frame: its STATUS byte, its pleth sample, and its FLOAT byte."""

    status: int
    pleth: int
    value: int


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
    """

    protocol: ClassVar[str] = "nonin-f2"
    data_format: ClassVar[int] = 2

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

    def feed(self, data: bytes) -> list[CodecEvent]:
        """Take the next bytes from the device, in any chunking; return the events they complete."""
        buffer = self._buffer + data
        events: list[CodecEvent] = []
        position = 0
        while True:
            verdict = self._check_packet(buffer, position)
            if isinstance(verdict, str):  # _INCOMPLETE: wait for more bytes
                break
            if isinstance(verdict, _Failure):
                self._skip(buffer[position], verdict, events)
                position += 1
                continue
            self._end_run(events)
            events.extend(self._decode(verdict))
            position += PACKET_SIZE
        self._buffer = buffer[position:]
        return events

    # --- framing -------------------------------------------------------------------------------------

    def _frame_at(self, buffer: bytes, start: int) -> Frame | str:
        """The frame starting at `start`, or what is wrong with it, or _INCOMPLETE."""
        available = len(buffer) - start
        if buffer[start] != FRAME_START:
            return "not a frame start"
        if available >= 2 and not buffer[start + 1] & STATUS_ALWAYS_SET:
            return "status bit 7 clear"
        if available < FRAME_SIZE:
            return _INCOMPLETE
        if checksum(buffer[start : start + 4]) != buffer[start + 4]:
            return "bad checksum"
        return Frame(status=buffer[start + 1], pleth=buffer[start + 2], value=buffer[start + 3])

    def _check_packet(self, buffer: bytes, position: int) -> list[Frame] | _Failure | str:
        """The packet starting at `position`, why none starts there, or _INCOMPLETE."""
        frames: list[Frame] = []
        for index in range(FRAMES_PER_PACKET):
            start = position + index * FRAME_SIZE
            if start >= len(buffer):
                return _INCOMPLETE
            frame = self._frame_at(buffer, start)
            if isinstance(frame, str):
                return frame if frame == _INCOMPLETE else _Failure(index + 1, frame)
            sync = bool(frame.status & STATUS_SYNC)
            if index == 0 and not sync:
                return _Failure(1, "no SYNC")
            if index > 0 and sync:
                return _Failure(index + 1, "SYNC")
            frames.append(frame)
        return frames

    # --- skipped runs --------------------------------------------------------------------------------

    def _skip(self, byte: int, failure: _Failure, events: list[CodecEvent]) -> None:
        if self._run_length == 0:
            self._run_failure = failure
        self._run_length += 1
        if len(self._run) < REJECT_DATA_LIMIT:
            self._run.append(byte)
        self._run_is_reply = self._run_is_reply and byte in (ACK, NAK)
        if self._run_length == LONG_RUN and not self._run_reported:
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

    def _decode(self, frames: list[Frame]) -> tuple[DeviceReading, WaveformBlock]:
        def value(name: str) -> int:
            return frames[FLOAT_FRAME[name] - 1].value

        def hr(prefix: str) -> int:
            return hr_from_bytes(value(f"{prefix}_MSB"), value(f"{prefix}_LSB"))

        conditions = {
            condition
            for frame in frames
            for bit, condition in STATUS_CONDITIONS.items()
            if frame.status & bit
        }
        conditions |= {
            PERFUSION_CONDITIONS[c] for c in self._held_perfusion(frames) if c in PERFUSION_CONDITIONS
        }
        stat2 = value("STAT2")
        if stat2 & STAT2_LOW_BATTERY:
            conditions.add("low_battery")
        sensor_problem = not SENSOR_PROBLEMS.isdisjoint(conditions)

        measurements = (
            _measurement(mdc.SPO2, value("SPO2"), MISSING_SPO2, SPO2_RANGE, sensor_problem),
            _measurement(mdc.PULSE_RATE, hr("HR"), MISSING_HR, HR_RANGE, sensor_problem),
        )
        extra = {
            "FIRMWARE": str(value("FIRMWARE")),
            "STAT2": f"{stat2:02X}",
            **{name: str(value(name)) for name in _SPO2_EXTRAS},
            **{name: str(hr(name)) for name in _HR_EXTRAS},
        }
        self.frames_ok += 1
        reading = DeviceReading(measurements=measurements, conditions=frozenset(conditions), extra=extra)
        waveform = WaveformBlock(
            code=mdc.PLETH.code, sample_rate=SAMPLE_RATE, samples=tuple(frame.pleth for frame in frames)
        )
        return reading, waveform

    def _held_perfusion(self, frames: list[Frame]) -> frozenset[str]:
        indicated = frozenset(
            colour
            for frame in frames
            if (colour := PERFUSION_COLOURS.get(frame.status & STATUS_PERFUSION_MASK)) is not None
        )
        if indicated:
            self._perfusion, self._perfusion_age = indicated, 0
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

    def initial_commands(self) -> bytes:
        return SET_DATA_FORMAT_7

    def _frame_at(self, buffer: bytes, start: int) -> Frame | str:
        available = len(buffer) - start
        if not buffer[start] & STATUS_ALWAYS_SET:
            return "status bit 7 clear"
        if available < FRAME_SIZE:
            return _INCOMPLETE
        if checksum(buffer[start : start + 4]) != buffer[start + 4]:
            return "bad checksum"
        pleth = (buffer[start + 1] << 8) | buffer[start + 2]
        return Frame(status=buffer[start], pleth=pleth, value=buffer[start + 3])

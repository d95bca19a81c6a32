"""Masimo Radical-7 / Rad-8 / Radical-5 "ASCII 1" serial output, decoded without I/O.

The oximeter talks and never listens: 9600 8N1, one line per second, `MM/DD/YY HH:MM:SS` followed by
space-separated `KEY=value` pairs, for example (one line, wrapped here)::

    02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=--
        PIDELTA=+-- ALARM=0000 EXC=000800

Why sans-I/O (like h11): `MasimoAsciiCodec.feed()` takes whatever bytes the transport happened to read and
returns codec events (`DeviceReading`, `RejectedFrame`). It owns no socket, thread, clock or logger, so the
same object decodes a real serial port, a pty simulator or a byte string in a test, and a codec test is
just bytes in, events out.

Why generic parsing: the field set differs by model and firmware (Radical-7 `SN SPO2 BPM PI SPCO SPMET DESAT
PIDELTA PVI ALARM EXC`, Rad-8 without `PVI`, Radical-5 `SPO2 BPM PI ALARM EXC` with a 3-digit EXC, some
Radical-7 builds add `SPHB SPOC RESVD EXC1`). Every line is therefore read as an unordered set of
`KEY=value` pairs; nothing depends on a field's position or on a fixed list.

Decisions where the sources are silent (each is tested in tests/test_masimo_ascii.py):

- Units ride in the value and a trailing `%` is stripped. Dashes (`---`, `--.--%`, `+--`) mean "no value":
  `Measurement(value=None, valid=False)`.
- SPO2, BPM and PI become Measurements (monitor.mdc SPO2, PULSE_RATE, PERFUSION_INDEX), always in that
  order. Every other pair, including the raw `ALARM`/`EXC`/`EXC1` words, goes into `DeviceReading.extra`
  as the string the device sent, so nothing the device said is lost (unmapped bits stay visible there).
- A well-formed number outside its plausible range (SpO2 0..100 %, pulse 0..350 /min, PI 0..100 %) keeps
  its value but is `valid=False`: `value` None is reserved for "the device sent dashes", and the value
  helps whoever debugs the device. The rest of the line is still used.
- A malformed value for a field we interpret (SPO2, BPM, PI, or a non-hex ALARM/EXC/EXC1) makes the whole
  line a `RejectedFrame`: such a line is corrupted, and a corrupted EXC would hide a sensor problem.
- When any condition in monitor.conditions.SENSOR_PROBLEMS is active, SpO2, pulse and PI are
  `valid=False` even if digits are present (value kept).
- `EXC1` **[unverified]**: no public source documents its bits. We assume it uses the EXC bit layout and
  OR it into EXC. An unknown layout can only add conditions, and an added sensor problem only makes the
  numbers invalid, which is the safe direction. The raw word stays in `extra`.
- The timestamp is parsed as a naive datetime (`%m/%d/%y %H:%M:%S`, 24 h). A missing or malformed
  timestamp does not cost the values: the line is decoded with `device_time=None`. Tokens before the first
  `KEY=value` pair are the timestamp; after it, every token must be a `KEY=value` pair (a stray token or a
  repeated key means corruption, and the line is rejected).
- Junk glued in front of a line (no line end between them, e.g. a line that lost its CR LF, or noise at
  power-up) is cut off at the last `MM/DD/YY HH:MM:SS` in the line: the junk is one `RejectedFrame` and
  the line from the timestamp on is decoded, so a good line is not lost to the garbage before it.
- A line longer than `max_line` bytes (default 1024) is rejected once, as soon as the buffer overflows,
  and dropped up to the next line end, so a stream without line ends cannot grow the buffer. Only its
  last `max_line` bytes are kept: if they hold a timestamp, the line from there is decoded, because that
  is a good line whose predecessor lost its line end (the same cut-at-the-last-timestamp rule as above).

Sources (see ../shared/reference/device-protocols.md section 1a): mdpnp/mdpnp (OpenICE)
masimo-radical-7.spec and DemoRadical7.java; remkolems/masimo-datacapture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Final

from monitor import mdc
from monitor.conditions import SENSOR_PROBLEMS
from monitor.model import DeviceReading, Measurement, RejectedFrame

#: ALARM word bit -> condition id (monitor.conditions)
ALARM_CONDITIONS: Final[Mapping[int, str]] = {
    0x0001: "device_spo2_high",
    0x0002: "device_spo2_low",
    0x0004: "device_pulse_high",
    0x0008: "device_pulse_low",
    0x0010: "device_alarm_active",
    0x0020: "device_alarm_silenced",
    0x0040: "low_battery",
    0x0100: "device_spco_high",
    0x0200: "device_spco_low",
    0x0400: "device_spmet_high",
    0x0800: "device_spmet_low",
    0x1000: "device_desat_index",
    0x2000: "device_pi_delta",
}

#: EXC (exception) word bit -> condition id. 0x800 is absent on purpose: see EXC_MASIMO_SET.
EXCEPTION_CONDITIONS: Final[Mapping[int, str]] = {
    0x0001: "no_sensor",
    0x0002: "sensor_defective",
    0x0004: "low_perfusion",
    0x0008: "pulse_search",
    0x0010: "interference",
    0x0020: "sensor_off",
    0x0040: "ambient_light",
    0x0080: "sensor_unrecognized",
    0x0100: "sensor_incompatible",
    0x0400: "low_signal_iq",
    0x1000: "no_cable",
}

#: "Masimo SET" bit: set in normal operation (`EXC=000800` is healthy), so it maps to no condition.
EXC_MASIMO_SET: Final[int] = 0x0800

#: plausible range of each interpreted field: key -> (metric, lowest, highest)
MEASURED_FIELDS: Final[Mapping[str, tuple[mdc.Metric, float, float]]] = {
    "SPO2": (mdc.SPO2, 0.0, 100.0),
    "BPM": (mdc.PULSE_RATE, 0.0, 350.0),
    "PI": (mdc.PERFUSION_INDEX, 0.0, 100.0),
}

BITFIELD_KEYS: Final[Mapping[str, Mapping[int, str]]] = {
    "ALARM": ALARM_CONDITIONS,
    "EXC": EXCEPTION_CONDITIONS,
    "EXC1": EXCEPTION_CONDITIONS,  # [unverified] assumed to share EXC's layout, see module docstring
}

DEFAULT_MAX_LINE: Final[int] = 1024
REJECT_DATA_LIMIT: Final[int] = 200  # bytes of a rejected frame kept in RejectedFrame.data

_TIMESTAMP_FORMAT: Final[str] = "%m/%d/%y %H:%M:%S"
_LINE_END = re.compile(rb"[\r\n]")
#: every place a timestamp starts, overlapping ones included: a cut-off timestamp glued to the next line's
#: ("11/25/26 01:00:0" + "11/25/26 01:00:01 SN=...") reads as a whole one up to the next line's first digit,
#: and only an overlapping search finds where the good line really starts
_TIMESTAMP_IN_LINE = re.compile(rb"(?=\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})")
_PAIR = re.compile(r"([A-Za-z][A-Za-z0-9_]*)=(\S*)")
#: at most 6 digits each side: the device writes 3-4, and 400 digits would be Infinity as a float
_NUMBER = re.compile(r"[+-]?\d{1,6}(?:\.\d{0,6})?%?")
_DASHES = re.compile(r"[+-]?[-.]*-[-.]*%?")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_PRINTABLE_ASCII = frozenset(range(0x20, 0x7F)) | {0x09}


class MasimoLineError(ValueError):
    """A line that cannot be decoded; the message is the human-readable reason."""


def parse_line(line: bytes) -> DeviceReading:
    """Decode one complete line (without its line end) into a DeviceReading.

    Pure and stateless, for the codec, tests and simulators. Raises MasimoLineError with the reason.
    """
    for offset, byte in enumerate(line):
        if byte not in _PRINTABLE_ASCII:
            raise MasimoLineError(f"non-ASCII or control byte 0x{byte:02x} at offset {offset}")
    tokens = line.decode("ascii").split()

    prefix: list[str] = []
    pairs: dict[str, str] = {}
    for token in tokens:
        pair = _PAIR.fullmatch(token)
        if pair is None:
            if pairs:
                raise MasimoLineError(f"malformed token {token!r}: expected KEY=value")
            prefix.append(token)
            continue
        key, value = pair.groups()
        if key in pairs:
            raise MasimoLineError(f"duplicate key {key!r}")
        pairs[key] = value
    if not pairs:
        raise MasimoLineError("no KEY=value pair in line")

    conditions: set[str] = set()
    for key, bit_conditions in BITFIELD_KEYS.items():
        if key in pairs:
            conditions |= _bitfield_conditions(key, pairs[key], bit_conditions)
    sensor_problem = not SENSOR_PROBLEMS.isdisjoint(conditions)

    measurements = tuple(
        _measurement(key, pairs[key], metric, lowest, highest, sensor_problem)
        for key, (metric, lowest, highest) in MEASURED_FIELDS.items()
        if key in pairs
    )
    extra = {key: value for key, value in pairs.items() if key not in MEASURED_FIELDS}
    return DeviceReading(
        measurements=measurements,
        conditions=frozenset(conditions),
        device_time=_device_time(prefix),
        extra=extra,
    )


def _bitfield_conditions(key: str, value: str, bit_conditions: Mapping[int, str]) -> set[str]:
    if _HEX.fullmatch(value) is None:
        raise MasimoLineError(f"{key} value {value!r} is not a hexadecimal bitfield")
    word = int(value, 16)
    return {condition for bit, condition in bit_conditions.items() if word & bit}


def _measurement(
    key: str, value: str, metric: mdc.Metric, lowest: float, highest: float, sensor_problem: bool
) -> Measurement:
    if _DASHES.fullmatch(value):
        return Measurement(code=metric.code, value=None, unit=metric.unit, valid=False)
    if _NUMBER.fullmatch(value) is None:
        raise MasimoLineError(f"{key} value {value!r} is neither a number nor dashes")
    number = float(value.rstrip("%"))
    plausible = lowest <= number <= highest
    return Measurement(
        code=metric.code, value=number, unit=metric.unit, valid=plausible and not sensor_problem
    )


def _device_time(prefix: list[str]) -> datetime | None:
    if len(prefix) != 2:
        return None
    try:
        return datetime.strptime(" ".join(prefix), _TIMESTAMP_FORMAT)
    except ValueError:
        return None


def _rejected(reason: str, data: bytes) -> RejectedFrame:
    return RejectedFrame(reason=reason, data=data[:REJECT_DATA_LIMIT])


class MasimoAsciiCodec:
    """Bytes from a Masimo oximeter in, DeviceReading / RejectedFrame events out (see module docstring).

    Lines end in CR, LF, CR LF or LF CR; blank lines are skipped; a partial line waits in the buffer for
    its line end. Garbage is reported as RejectedFrame and never costs a good line before or after it.
    """

    protocol: ClassVar[str] = "masimo-ascii"

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self.frames_ok = 0  # lines decoded
        self.rejected = 0  # lines or junk rejected
        self._buffer = b""
        self._discarding = False  # inside an over-long line that was already reported

    def initial_commands(self) -> bytes:
        """Nothing: the Masimo serial port only talks."""
        return b""

    def feed(self, data: bytes) -> list[DeviceReading | RejectedFrame]:
        """Take the next bytes from the device, in any chunking; return the events they complete."""
        *lines, rest = _LINE_END.split(self._buffer + data)
        events: list[DeviceReading | RejectedFrame] = []
        for line in lines:
            events.extend(self._decode(line))
        if len(rest) > self.max_line:
            if not self._discarding:
                events.append(self._reject(self._too_long_reason(), rest))
                self._discarding = True
            rest = rest[-self.max_line :]  # bounded; may hold the start of a good line, see _decode
        self._buffer = rest
        return events

    def _decode(self, line: bytes) -> list[DeviceReading | RejectedFrame]:
        events: list[DeviceReading | RejectedFrame] = []
        over_long = self._discarding or len(line) > self.max_line
        if self._discarding:
            self._discarding = False  # already reported when the buffer overflowed
        elif over_long:
            events.append(self._reject(self._too_long_reason(), line))
        if over_long:
            # A good line whose line end was lost with the junk before it may sit at the end: keep the
            # same last max_line bytes whatever the chunking, and decode from a timestamp in them.
            line = line[-self.max_line :]
        elif not line.strip():
            return events
        timestamps = list(_TIMESTAMP_IN_LINE.finditer(line))
        if over_long and not timestamps:
            return events
        start = timestamps[-1].start() if timestamps else 0
        junk, line = line[:start], line[start:]
        if junk.strip() and not over_long:
            events.append(self._reject("incomplete or garbled data before a line's timestamp", junk))
        try:
            reading = parse_line(line)
        except MasimoLineError as error:
            events.append(self._reject(str(error), line))
        else:
            self.frames_ok += 1
            events.append(reading)
        return events

    def _reject(self, reason: str, data: bytes) -> RejectedFrame:
        self.rejected += 1
        return _rejected(reason, data)

    def _too_long_reason(self) -> str:
        return f"line longer than {self.max_line} bytes without a line end; dropped up to the next line end"

"""BD (CareFusion) Alaris Asena GH / CC syringe pumps over RS-232, read-only, decoded without I/O.

The pump answers commands; it never talks unasked. 38400 8N1. Every message, both ways, is one frame::

    !CMD[^arg...]|XXXX\\r

where XXXX is the CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) of the text
between `!` and `|`, in upper-case hex. The status query `INF` is answered with (one line, wrapped here)::

    !INF^8002-51740^-^SET^5.00^ml/h^^12.345^ml^17.91^mmHg^24+^EVENT^127904|A13E\\r
         serial     alarm mode rate unit ? volume unit pressure unit timeRemaining logType logId

Sources (../shared/reference/device-protocols.md section 3): mdpnp/mdpnp (OpenICE) Asena.java (driver),
SingleSimAlaris.java (simulator), AlarisMITM.java (a logging proxy between a real EasyTIVA and real pumps:
it quotes a captured reply `!INF^8002-51733^A^HLD^0.00^ml/h^^0.969^ml^530.15^mmHg^00:04:09^EVENT^214725|DB9D`
and lists the pump's `ALARM` codes) and AlarisToNeurowave.java (answers `ALARM` as `ALARM^<code>^<text>^`).
Every CRC those files quote, and the reference example's A13E, agree with CRC-16/CCITT-FALSE.

Why sans-I/O (like h11 and masimo_ascii): `AlarisAsenaDriver` is handed bytes and the time; it returns
events (`DeviceReading`, `RejectedFrame`) and the bytes to send. It owns no port, thread, clock or logger.

**Read-only on purpose.** A clinical infusion pump must be programmed at the bedside by the clinician, not
from a monitoring screen. The driver never sends `REMOTE_CTRL^ENABLED^<key>` (which the sources send before
every command, to program the pump), never `INF_START`/`INF_STOP`/`INF_RATE`/..., and `command()` refuses
everything except "poll". Enabling remote control also has a side effect a monitor must not cause: a pump
under remote control alarms and may stop infusing when the computer stops talking (Alaris CC user manual,
"RS232 / Nurse call feature"; the ALARM code list includes AL_COMTO, communications timeout).

Conversation (`connected`, `poll`): on (re)connect the driver sends the read-only identity queries the
sources start with, one at a time, `INST_SERIALNO`, `COMMS_RESPONSE_MAX`, `COMMS_PROTOCOL` (their answers
only feed `details()`), then `INF` every `poll_interval_s`. One command is outstanding at a time, as in the
sources (the pump is half-duplex command/response). A command unanswered for `response_timeout_s` (3 s)
yields `DeviceReading(measurements=(), conditions={"pump_no_response"})` and the schedule goes on.
Note that the pump itself declares `COMMS_RESPONSE_MAX^4000^ms` in the sources: a pump that really takes
3-4 s would be reported as not responding; the declared value is kept in `details()`.

Decisions where the sources are silent (each is tested in tests/test_alaris_asena.py):

- CRC: a reply whose CRC does not match is rejected and never decoded, whatever it says. Lower-case hex
  digits are accepted (the CRC value is what matters); the driver itself sends upper case.
- Framing: `!` starts a frame and `\\r` ends it. Bytes outside a frame are junk, reported as one
  RejectedFrame per run (a run ends at the next `!`, or is reported early once longer than `max_frame`);
  runs of only spaces, tabs, CR and LF are skipped silently (a pump or adapter adding LF is harmless).
  A `!` inside a frame means the frame lost its end: the partial frame is rejected and a new one starts
  there, so a good frame after a truncated one is not lost. A frame longer than `max_frame` (512) bytes
  is rejected once and dropped up to the next `\\r` or `!`; memory stays bounded. Text must be UTF-8
  (the sources only ever send ASCII) without control characters.
- INF replies must have exactly 14 fields. The fields are positional, so a reply of another length may
  have its numbers in other places: it is rejected rather than guessed at.
- Numbers: an empty value or one of only dashes and dots (`---`, `--.--`) means "no value"
  (`value=None, valid=False`); anything else that is not a decimal number makes the reply a RejectedFrame
  (corrupted despite its CRC).
- Units: only what can be converted exactly is converted: rate ml/h (also ml/hr), ml/min (x60), l/h
  (x1000); volume ml, l (x1000), ul (/1000); pressure mmHg, kPa (x7.50062), cmH2O (x0.735559); matched
  case-insensitively. Any other unit (mg/h, ug/kg/min... need a concentration we do not know) gives
  `value=None, valid=False`, and the raw number and unit go into `extra` ("rate"/"rate_unit"...), so no
  number is ever published in a unit it is not in. The raw unit is also in `extra` after a conversion.
- Plausibility: a negative rate, volume or pressure, a rate above 1200 mL/h (the Asena's maximum, as
  `INF_RATE_MAX_SYRINGE^1200.00^ml/h` in the sources) or a pressure above 2000 mmHg keeps its value but is
  `valid=False`. (A Neurowave bridge in the sources sends -50.00 mmHg as "no pressure available".)
- Mode **[unverified]**: only `SET` (reference example) and `HLD` (captured, "hold") are attested.
  `MODE_WORDS` maps running words (INF, INFUSING, RUN, RUNNING, BOL, BOLUS, KVO, PRG, PURGE: the pump is
  delivering), stopped words (HLD, HOLD, ON_HOLD, STP, STOP, STOPPED, PAUSE, PAUSED, STBY, STANDBY) and
  SET/SETUP -> "set". An unknown word is passed on lower-cased; the raw word is always in
  `extra["device_mode"]`.
- Alarms: `-` is "no alarm". The captured reply shows that the real pump puts only a flag (`A`) there; the
  alarm itself is read with the `ALARM` query, answered `ALARM^<code>^<text>^`. So: a word in the INF
  alarm field that `ALARM_CONDITIONS` knows is mapped at once; any other value (`A`) makes the driver hold
  that reading, send `ALARM`, and publish the reading when the answer comes, with the condition the code
  (or failing that the text) maps to. An unknown code, `AL_NOALM` (the alarm cleared in between: the INF
  reply did say alarm, so we keep saying it), or no answer within the timeout gives "pump_alarm". The most
  specific raw word the pump gave is in `extra["alarm"]`, its text in `extra["alarm_text"]`.
- Alarm codes **[unverified]**: the code list comes from AlarisMITM.java without meanings; the mapping
  reads the abbreviations: AL_OCCLU occlusion; AL_NEOIN near end of infusion; AL_EOIKV/AL_EOIST end of
  infusion (KVO / stopped) and AL_VTBIC/AL_VTBIK/AL_VTBIS VTBI complete, all end of infusion; AL_LWBAT low
  and AL_EMBAT empty battery, both battery low. Every other code (AL_FAULT, AL_DRDIS, AL_COMTO...) is
  "pump_alarm" with the code in `extra`. Plain words (OCCLUSION, AIR_IN_LINE, DOOR_OPEN...) are mapped
  too, for firmware or bridges that send words; spaces and hyphens count as underscores.
- VTBI: the INF reply carries no VTBI, so no VTBI_REMAINING measurement is published. The sources also
  query `INF_VTBI`, but whether its volume is the programmed or the remaining VTBI is not documented, and a
  programmed VTBI shown as "remaining" would overstate what is left. `timeRemaining` (`24+` or `HH:MM:SS`),
  the log type and id, the serial number and the unnamed sixth field (a drug name, says AlarisToNeurowave,
  "empty for now") go into `extra` as sent.
"""

from __future__ import annotations

import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from monitor import mdc
from monitor.devices.protocols import CommandRejected
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame

DEFAULT_MAX_FRAME: Final = 512
DEFAULT_RESPONSE_TIMEOUT_S: Final = 3.0
REJECT_DATA_LIMIT: Final = 200  # bytes of a rejected frame kept in RejectedFrame.data
INF_FIELD_COUNT: Final = 14  # INF^serial^alarm^mode^rate^unit^^volume^unit^pressure^unit^time^logType^logId

NO_RESPONSE: Final = "pump_no_response"
GENERIC_ALARM: Final = "pump_alarm"
NO_ALARM: Final = "-"
REMOTE_CONTROL_REFUSED: Final = "remote control of the pump is not enabled: KAP Monitor only reads the pump"

#: read-only queries sent after each (re)connect, in the sources' order; their answers feed details()
IDENTITY_QUERIES: Final[tuple[str, ...]] = ("INST_SERIALNO", "COMMS_RESPONSE_MAX", "COMMS_PROTOCOL")
STATUS_QUERY: Final = "INF"
ALARM_QUERY: Final = "ALARM"
_OUR_QUERIES: Final = frozenset({*IDENTITY_QUERIES, STATUS_QUERY, ALARM_QUERY})

#: device mode word (upper case) -> DeviceReading.mode. [unverified] except SET and HLD, see module docstring
MODE_WORDS: Final[Mapping[str, str]] = {
    **dict.fromkeys(("INF", "INFUSING", "RUN", "RUNNING", "BOL", "BOLUS", "KVO", "PRG", "PURGE"), "running"),
    **dict.fromkeys(
        ("HLD", "HOLD", "ON_HOLD", "STP", "STOP", "STOPPED", "PAUSE", "PAUSED", "STBY", "STANDBY"), "stopped"
    ),
    **dict.fromkeys(("SET", "SETUP"), "set"),
}

#: ALARM codes meaning "no alarm"
NO_ALARM_CODES: Final = frozenset({"AL_NOALM"})

#: alarm word or code (normalised: upper case, spaces and hyphens as "_") -> condition (monitor.conditions)
ALARM_CONDITIONS: Final[Mapping[str, str]] = {
    # Asena ALARM codes (AlarisMITM.java), meanings read from the abbreviations [unverified]
    "AL_OCCLU": "pump_occlusion",
    "AL_NEOIN": "pump_near_end",
    **dict.fromkeys(("AL_EOIKV", "AL_EOIST", "AL_VTBIC", "AL_VTBIK", "AL_VTBIS"), "pump_end_of_infusion"),
    **dict.fromkeys(("AL_LWBAT", "AL_EMBAT"), "pump_low_battery"),
    # plain words
    **dict.fromkeys(("OCCLUSION", "OCCLUDED"), "pump_occlusion"),
    **dict.fromkeys(("AIR_IN_LINE", "AIR", "AIL"), "pump_air_in_line"),
    **dict.fromkeys(
        ("END_OF_INFUSION", "EOI", "VTBI_DONE", "VTBI_COMPLETE", "INFUSION_COMPLETE"), "pump_end_of_infusion"
    ),
    **dict.fromkeys(("NEAR_END", "NEAR_END_OF_INFUSION"), "pump_near_end"),
    **dict.fromkeys(("DOOR_OPEN", "DOOR"), "pump_door_open"),
    **dict.fromkeys(("BATTERY_LOW", "LOW_BATTERY", "LOW_BATT"), "pump_low_battery"),
}

#: unit (lower case) -> factor to the metric's unit; a unit not listed is never converted
RATE_UNITS: Final[Mapping[str, float]] = {"ml/h": 1.0, "ml/hr": 1.0, "ml/min": 60.0, "l/h": 1000.0}
VOLUME_UNITS: Final[Mapping[str, float]] = {"ml": 1.0, "l": 1000.0, "ul": 0.001, "µl": 0.001}
PRESSURE_UNITS: Final[Mapping[str, float]] = {"mmhg": 1.0, "kpa": 7.50062, "cmh2o": 0.735559}

_WHITESPACE: Final = frozenset(b" \t\r\n")
_FRAME_DELIMITER = re.compile(rb"[\r!]")
_CRC_FIELD = re.compile(rb"[0-9A-Fa-f]{4}")
#: bounded: the pump writes a few digits, and 400 of them would be Infinity as a float
_NUMBER = re.compile(r"[+-]?(?:\d{1,9}(?:\.\d{0,9})?|\.\d{1,9})")
_DASHES = re.compile(r"[-.]*")  # "", "---", "--.--": no value


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0); b"123456789" -> 0x29B1.

    binascii.crc_hqx is this CRC (the XMODEM polynomial, MSB first) with the initial value passed in.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(text: str) -> bytes:
    """`text` as one frame: `!text|XXXX\\r` with its CRC. Raises ValueError for text that would break it."""
    if any(c in text for c in "!|\r\n"):
        raise ValueError(f"frame text must not contain '!', '|', CR or LF: {text!r}")
    body = text.encode("utf-8")
    return b"!" + body + b"|" + f"{crc16_ccitt_false(body):04X}".encode("ascii") + b"\r"


class FrameError(ValueError):
    """A frame that cannot be used; the message is the human-readable reason."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose CRC checked: `INF^a^b` is command "INF", fields ("a", "b")."""

    command: str
    fields: tuple[str, ...]


def parse_frame(frame: bytes) -> Frame:
    """Check and split one frame, from its `!` up to (without) its `\\r`. Raises FrameError with the reason.

    The CRC is checked on the raw bytes before anything else is looked at: a frame that fails it is
    never decoded.
    """
    if not frame.startswith(b"!"):
        raise FrameError("frame does not start with '!'")
    text_bytes, separator, crc_field = frame[1:].rpartition(b"|")
    if not separator:
        raise FrameError("no '|' before a CRC: incomplete frame")
    if _CRC_FIELD.fullmatch(crc_field) is None:
        raise FrameError(f"malformed CRC field {crc_field[:8]!r}: expected 4 hex digits")
    computed = crc16_ccitt_false(text_bytes)
    if int(crc_field, 16) != computed:
        raise FrameError(f"bad CRC: frame says {crc_field.decode('ascii')}, its text gives {computed:04X}")
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FrameError(f"invalid UTF-8 at offset {error.start + 1} of the frame") from None
    for offset, char in enumerate(text):
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise FrameError(f"control character 0x{ord(char):02x} at offset {offset + 1} of the frame")
    command, *fields = text.split("^")
    if not command:
        raise FrameError("empty command name")
    return Frame(command, tuple(fields))


def _rejected(reason: str, data: bytes | bytearray) -> RejectedFrame:
    return RejectedFrame(reason=reason, data=bytes(data[:REJECT_DATA_LIMIT]))


class FrameSplitter:
    """Cuts a byte stream into `!...` frames (without their `\\r`) and RejectedFrames, in any chunking.

    See the module docstring ("Framing") for the rules. Shared by the driver and the simulator.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 8:
            raise ValueError("max_frame must allow at least '!X|XXXX'")
        self.max_frame = max_frame
        self.reset()

    def reset(self) -> None:
        """Forget any partial frame or junk (a new connection starts clean)."""
        self._frame: bytearray | None = None  # inside a frame: its bytes from the '!'
        self._discarding = False  # inside an over-long frame already reported
        self._junk = bytearray()  # the first REJECT_DATA_LIMIT bytes of the current run outside frames
        self._junk_length = 0
        self._junk_significant = False  # the run holds more than whitespace
        self._junk_reported = False

    def feed(self, data: bytes) -> list[bytes | RejectedFrame]:
        out: list[bytes | RejectedFrame] = []
        position = 0
        while position < len(data):
            if self._frame is not None:
                position = self._in_frame(data, position, out)
            elif self._discarding:
                position = self._in_discard(data, position)
            else:
                position = self._outside(data, position, out)
        return out

    def _in_frame(self, data: bytes, position: int, out: list[bytes | RejectedFrame]) -> int:
        assert self._frame is not None
        match = _FRAME_DELIMITER.search(data, position)
        stop = match.start() if match else len(data)
        room = self.max_frame - len(self._frame)
        if stop - position > room:
            limit = min(REJECT_DATA_LIMIT, self.max_frame + 1)
            head = self._frame + data[position : position + limit]
            out.append(_rejected(self._too_long_reason(), head[:limit]))
            self._frame = None
            self._discarding = True
            return stop
        self._frame += data[position:stop]
        if match is None:
            return stop
        if data[stop : stop + 1] == b"\r":
            out.append(bytes(self._frame))
        else:
            out.append(_rejected("incomplete frame: a new '!' came before its '\\r'", self._frame))
            self._frame = bytearray(b"!")
            return stop + 1
        self._frame = None
        return stop + 1

    def _in_discard(self, data: bytes, position: int) -> int:
        match = _FRAME_DELIMITER.search(data, position)
        if match is None:
            return len(data)
        self._discarding = False
        if data[match.start() : match.start() + 1] == b"!":
            self._frame = bytearray(b"!")
        return match.start() + 1

    def _outside(self, data: bytes, position: int, out: list[bytes | RejectedFrame]) -> int:
        start = data.find(b"!", position)
        stop = start if start >= 0 else len(data)
        run = data[position:stop]
        if run:
            if len(self._junk) < REJECT_DATA_LIMIT:
                self._junk += run[: REJECT_DATA_LIMIT - len(self._junk)]
            self._junk_length += len(run)
            self._junk_significant = self._junk_significant or not _WHITESPACE.issuperset(run)
            if self._junk_significant and self._junk_length > self.max_frame:
                self._report_junk(out)
        if start < 0:
            return stop
        self._report_junk(out)
        self._junk, self._junk_length = bytearray(), 0
        self._junk_significant = self._junk_reported = False
        self._frame = bytearray(b"!")
        return start + 1

    def _report_junk(self, out: list[bytes | RejectedFrame]) -> None:
        if self._junk_significant and not self._junk_reported:
            out.append(_rejected("bytes outside a frame (a frame starts with '!')", self._junk))
            self._junk_reported = True

    def _too_long_reason(self) -> str:
        return f"frame longer than {self.max_frame} bytes without '\\r'; dropped up to the next '\\r' or '!'"


def normalise_word(word: str) -> str:
    """`near end` / `Near-End` -> `NEAR_END`: how alarm and mode words are looked up."""
    return re.sub(r"[\s-]+", "_", word.strip()).upper()


def alarm_condition(word: str) -> str | None:
    """The condition a pump alarm word or ALARM code maps to, or None if it is not a known alarm."""
    return ALARM_CONDITIONS.get(normalise_word(word))


def normalise_mode(word: str) -> str | None:
    """The device's mode word as "running" / "stopped" / "set", an unknown word lower-cased, "" as None."""
    if not word.strip():
        return None
    return MODE_WORDS.get(normalise_word(word), word.strip().lower())


def _quantity(
    name: str,
    raw_value: str,
    raw_unit: str,
    metric: mdc.Metric,
    units: Mapping[str, float],
    highest: float,
    extra: dict[str, str],
) -> Measurement:
    """One INF value in the metric's unit (see "Units" and "Plausibility" in the module docstring)."""
    value_text = raw_value.strip()
    if _DASHES.fullmatch(value_text):
        return Measurement(code=metric.code, value=None, unit=metric.unit, valid=False)
    if _NUMBER.fullmatch(value_text) is None:
        raise FrameError(f"INF {name} {raw_value!r} is not a number")
    factor = units.get(raw_unit.strip().lower())
    if factor is None:
        extra[name] = raw_value
        extra[f"{name}_unit"] = raw_unit
        return Measurement(code=metric.code, value=None, unit=metric.unit, valid=False)
    if raw_unit.strip().lower() != next(iter(units)):  # the first unit listed is the metric's own
        extra[f"{name}_unit"] = raw_unit
    number = float(value_text) if factor == 1.0 else round(float(value_text) * factor, 6)
    return Measurement(code=metric.code, value=number, unit=metric.unit, valid=0.0 <= number <= highest)


def parse_inf_reply(frame: Frame) -> DeviceReading:
    """Decode an INF reply whose CRC checked. Pure; raises FrameError with the reason.

    The alarm field is mapped when its word is known; otherwise the reading says "pump_alarm" (and the
    driver asks `ALARM` for the details before publishing it, see `needs_alarm_query`).
    """
    if frame.command != STATUS_QUERY:
        raise FrameError(f"not an INF reply: {frame.command!r}")
    if len(frame.fields) + 1 != INF_FIELD_COUNT:
        raise FrameError(f"INF reply has {len(frame.fields) + 1} fields, expected {INF_FIELD_COUNT}")
    (serial, alarm, mode, rate, rate_unit, drug, volume, volume_unit, pressure, pressure_unit,
     time_remaining, log_type, log_id) = frame.fields  # fmt: skip
    extra: dict[str, str] = {"serial": serial, "device_mode": mode}
    measurements = (
        _quantity("rate", rate, rate_unit, mdc.INFUSION_RATE, RATE_UNITS, 1200.0, extra),
        _quantity("volume", volume, volume_unit, mdc.VOLUME_INFUSED, VOLUME_UNITS, float("inf"), extra),
        _quantity("pressure", pressure, pressure_unit, mdc.PUMP_PRESSURE, PRESSURE_UNITS, 2000.0, extra),
    )
    conditions: frozenset[str] = frozenset()
    if alarm != NO_ALARM:
        extra["alarm"] = alarm
        conditions = frozenset({alarm_condition(alarm) or GENERIC_ALARM})
    if drug:
        extra["drug"] = drug
    extra |= {"time_remaining": time_remaining, "log_type": log_type, "log_id": log_id}
    return DeviceReading(
        measurements=measurements, conditions=conditions, extra=extra, mode=normalise_mode(mode)
    )


def needs_alarm_query(reading: DeviceReading) -> bool:
    """The INF alarm field held a flag (the real pump's `A`), not a word we could map: ask `ALARM`."""
    alarm = reading.extra.get("alarm")
    return alarm is not None and alarm_condition(alarm) is None


def with_alarm_detail(reading: DeviceReading, frame: Frame) -> DeviceReading:
    """The held INF reading, its alarm made specific by the `ALARM^<code>^<text>^` reply."""
    if frame.command != ALARM_QUERY or not frame.fields or not frame.fields[0].strip():
        raise FrameError("ALARM reply without an alarm code")
    code = frame.fields[0].strip()
    text = frame.fields[1].strip() if len(frame.fields) > 1 else ""
    extra = {**reading.extra, "alarm": code}
    if text:
        extra["alarm_text"] = text
    conditions = reading.conditions
    if code not in NO_ALARM_CODES:
        conditions = frozenset({alarm_condition(code) or alarm_condition(text) or GENERIC_ALARM})
    return dataclasses.replace(reading, conditions=conditions, extra=extra)


class AlarisAsenaDriver:
    """Polls an Alaris Asena GH/CC with `INF` and turns its replies into DeviceReadings (module docstring).

    Implements monitor.devices.protocols.Driver. Monitoring only: `command()` refuses every command but
    "poll", because KAP Monitor does not remote-control infusion pumps.
    """

    protocol: ClassVar[str] = "alaris-asena"

    def __init__(
        self,
        poll_interval_s: float = 1.0,
        *,
        response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if not poll_interval_s > 0 or not response_timeout_s > 0:
            raise ValueError("poll_interval_s and response_timeout_s must be positive")
        self.poll_interval_s = poll_interval_s
        self.response_timeout_s = response_timeout_s
        self.frames_ok = 0  # frames whose CRC checked and that decoded
        self.rejected = 0  # RejectedFrames returned
        self.serial: str | None = None
        self.protocol_revision: str | None = None
        self.response_max: str | None = None
        self._splitter = FrameSplitter(max_frame)
        self._started = False
        self._queue: list[str] = []
        self._outstanding: tuple[str, float] | None = None  # (command, sent at)
        self._next_poll_at: float | None = None
        self._held: DeviceReading | None = None  # INF reading waiting for its ALARM details
        self._later: list[CodecEvent] = []  # events found outside decoding, returned by the next feed()

    # --- Driver ------------------------------------------------------------------------------------------

    def connected(self, now: float) -> None:
        """The port (re)opened: forget the old conversation, ask who the pump is, then poll INF."""
        self._splitter.reset()
        self._started = True
        self._queue = list(IDENTITY_QUERIES)
        self._outstanding = None
        self._held = None
        self._later = []
        self._next_poll_at = now

    def poll(self, now: float) -> bytes:
        """The next command to send, or b"" (one at a time; INF every poll_interval_s)."""
        if not self._started:
            return b""
        self._expire(now)
        if self._outstanding is not None:
            return b""
        if self._queue:
            command = self._queue.pop(0)
        elif self._next_poll_at is not None and now >= self._next_poll_at:
            command = STATUS_QUERY
            due = self._next_poll_at
            # keep to the schedule, but after a long gap (timeouts) restart it rather than burst
            late = now - due >= self.poll_interval_s
            self._next_poll_at = now + self.poll_interval_s if late else due + self.poll_interval_s
        else:
            return b""
        self._outstanding = (command, now)
        return encode_frame(command)

    def feed(self, data: bytes, now: float) -> list[CodecEvent]:
        """Decode the pump's bytes, in any chunking; also report commands unanswered by `now`.

        Call it with b"" when nothing arrived: a silent pump is only reported from here.
        """
        events, self._later = self._later, []
        for item in self._splitter.feed(data):
            if isinstance(item, RejectedFrame):
                self.rejected += 1
                events.append(item)
                continue
            try:
                events.extend(self._handle(parse_frame(item)))
            except FrameError as error:
                self.rejected += 1
                events.append(_rejected(str(error), item))
        self._expire(now)
        events.extend(self._later)
        self._later = []
        return events

    def command(self, name: str, args: dict[str, object], now: float) -> None:
        """Only "poll" (query the pump now). Remote control of a clinical pump is out of scope on purpose."""
        if name != "poll":
            raise CommandRejected(REMOTE_CONTROL_REFUSED)
        self._next_poll_at = now if self._next_poll_at is None else min(self._next_poll_at, now)

    def details(self) -> dict[str, float | int | str | None]:
        """What the pump said about itself, for the status topic."""
        return {
            "serial": self.serial,
            "protocol_revision": self.protocol_revision,
            "response_max": self.response_max,
            "poll_interval_s": self.poll_interval_s,
        }

    # --- replies and timeouts ----------------------------------------------------------------------------

    def _handle(self, frame: Frame) -> list[CodecEvent]:
        if self._outstanding is not None and (
            frame.command == self._outstanding[0] or frame.command not in _OUR_QUERIES
        ):
            self._outstanding = None  # answered (an unknown reply still is an answer)
        events: list[CodecEvent] = []
        if frame.command == STATUS_QUERY:
            reading = parse_inf_reply(frame)
            if self._held is not None:  # its ALARM answer never came; a newer reading is here
                events.append(self._held)
                self._held = None
            if needs_alarm_query(reading):
                self._held = reading
                if ALARM_QUERY not in self._queue:
                    self._queue.insert(0, ALARM_QUERY)
            else:
                events.append(reading)
            self.serial = reading.extra["serial"]
        elif frame.command == ALARM_QUERY and self._held is not None:
            held, self._held = self._held, None
            try:
                events.append(with_alarm_detail(held, frame))
            except FrameError:
                self._later.append(held)  # the frame is rejected; the reading goes out with "pump_alarm"
                raise
        elif frame.command == "INST_SERIALNO" and frame.fields:
            self.serial = frame.fields[0]
        elif frame.command == "COMMS_PROTOCOL" and frame.fields:
            self.protocol_revision = frame.fields[0]
        elif frame.command == "COMMS_RESPONSE_MAX" and frame.fields:
            self.response_max = " ".join(frame.fields)
        self.frames_ok += 1
        return events

    def _expire(self, now: float) -> None:
        if self._outstanding is None:
            return
        command, sent_at = self._outstanding
        if now - sent_at < self.response_timeout_s:
            return
        self._outstanding = None
        if command == ALARM_QUERY and self._held is not None:
            self._later.append(self._held)  # published with its generic "pump_alarm"
            self._held = None
        else:
            self._later.append(DeviceReading(measurements=(), conditions=frozenset({NO_RESPONSE})))

"""SunTech Advantage / Advantage A+ OEM NIBP module: command encoder, reply decoder and measurement cycle.

The module never measures by itself: the host (our gateway) decides when, sends a start command, polls the
cuff pressure while the module inflates and deflates, and fetches the result when the module says it is
done. 9600 8N1, binary (../shared/reference/device-protocols.md section 2; source: 519984307/Appciton
Providers/SuntechProvider/SuntechProvider.cpp)::

    host -> module   3A <command bytes> chk          start adult 3A 20 A6, abort 3A 79 01 00 4C,
                                                    cuff pressure 3A 79 05 00 48, BP data 3A 79 03 00 4A
    module -> host   3E LEN <data> chk              LEN is the whole packet's length
                     3E 04 <letter> chk             O received, K done, A abort, B busy, E error,
                                                    N invalid, S sleep, T timeout
                     3E 05 <lo> <hi> chk            cuff pressure, mmHg
                     3E 18 <21 data bytes> chk      BP data: SYS 0-1, DIA 2-3, PR 14-15, MAP 16-17
                                                    (little-endian), return code at 18
    chk = (-sum(previous bytes)) & 0xFF

Why sans-I/O (like h11 and monitor.devices.masimo_ascii): `SuntechNibpDriver` owns no port, thread, clock
or logger. The adapter passes `now` (epoch seconds) in, writes what `poll()` returns and hands received
bytes to `feed()`; a test drives a whole measurement with byte strings and a fake clock.

The measurement cycle (`SuntechNibpDriver.state`; "mode" is what a screen shows)::

    state      mode       on                                    does                                next
    ---------  ---------  ------------------------------------  ----------------------------------  ---------
    idle       idle       interval due, or command "measure"    send start, emit mode=measuring     starting
    starting   measuring  'O'                                   poll cuff pressure every 0.2 s      measuring
    starting   measuring  'B'                                   emit nibp_busy                      idle
    starting   measuring  'E' 'N' 'S' or an unknown letter      emit nibp_module_error              idle
    starting   measuring  'T'                                   emit nibp_measurement_timeout       idle
    starting   measuring  'A' / 'K'                             ignore (late replies to an abort)   starting
    starting   measuring  no reply for 2 s                      send abort, emit nibp_no_response   idle
    measuring  measuring  cuff pressure reply                   emit a cuff pressure reading        measuring
    measuring  measuring  'K' (or 'A' / 'T': the module ended   send get BP data                    fetching
                          it; the return code says why)
    measuring  measuring  garbled reply, 'N' or 'B' to a poll   ask again at the next poll          measuring
    measuring  measuring  'E' / 'S'                             send abort, emit nibp_module_error  idle
    measuring  measuring  180 s since start                     send abort, emit                    idle
                                                                nibp_measurement_timeout
    measuring  measuring  a cuff request unanswered for 2 s     send abort, emit nibp_no_response   idle
    fetching   measuring  BP data reply                         emit SYS/DIA/MAP/PR, conditions     idle
    fetching   measuring  garbled reply, 'E' 'N' 'B', or none   ask again; after 3 attempts emit    idle
                          for 2 s                               nibp_module_error / no_response
    any        measuring  command "abort"                       send abort, emit nibp_aborted       idle
    idle       idle       command "abort"                       send abort                          idle

Decisions where the sources are silent (each is tested in tests/test_suntech_nibp.py):

- Cadence: the first measurement starts `FIRST_MEASUREMENT_DELAY_S` (2 s) after the first `connected()`;
  then one starts `interval_s` after the previous one *started* (a manual "measure" restarts the cycle).
  A measurement that fails is retried at the next cycle, not sooner. After a reconnect the schedule is
  kept (but nothing starts sooner than 2 s after it); if a measurement was running when the link went,
  its result is lost: the driver sends abort first (a cuff must not stay inflated) and starts again 2 s
  later. A start that is due when a failed measurement is being aborted goes out one poll after the
  abort, never in the same write.
- Sticky conditions: a failed measurement's condition (return code, no response, busy...) stays in every
  reading the driver emits (mode changes, cuff pressures) until a measurement succeeds, because the last
  blood pressure a nurse can see is then stale, and that must stay visible. A success clears it. A user
  abort is treated the same way (`nibp_aborted` until the next success): the cycle's reading is missing.
- Implausible numbers: a result with return code 0 whose numbers are not physiological (SYS outside
  30-300, DIA outside 10-250 or not below SYS, MAP not between DIA and SYS, PR outside 20-300) is reported,
  not dropped: all four values keep the device's numbers with valid=False and the reading carries
  `nibp_out_of_range`, like the module's own return code 3. One inconsistent number makes the whole
  packet untrustworthy. With a non-zero return code the numbers are always valid=False.
- Return codes are read as decimal, as the reference says (85 pneumatic blockage...). Appciton's
  `isResult()` compares them with 0x85, 0x87... but its `getMeasureResultInfo()`, which it actually uses,
  passes the byte on unchanged. An unknown code becomes `nibp_module_error`; the raw code is always in
  `DeviceReading.extra["return_code"]`.
- Replies are framed by their LEN byte (as Appciton does): 4 letter, 5 cuff pressure, 0x18 BP data; a
  `3E` followed by any other LEN is not a reply start. What a valid reply means depends on what was asked:
  a cuff pressure only counts while measuring, a BP data packet only while fetching, and a letter only
  as the table says. Others (late replies to an abandoned request, the 'A'/'K' that follow an abort) are
  counted in `frames_ok` and otherwise ignored.
- One request is outstanding at a time (a cuff pressure poll waits for its reply). A garbled reply
  (checksum or framing wrong) or 'N' to a cuff or BP data request frees the request, so the next poll
  asks again; a garbled reply to start does not (resending start to a measuring module would get 'B'):
  the 2 s timeout decides.
- Timer-driven events (no response, 180 s timeout) are checked in `poll()` and in `feed()`. When `poll()`
  finds one it can only return bytes, so the reading is queued and returned by the next `feed()`. The
  adapter therefore calls `feed(b"", now)` when a read returned nothing, so those readings are not held
  back until the module talks again.
- Resynchronisation: bytes that cannot start a reply are garbage; one RejectedFrame is reported per
  contiguous run of garbage, when the run ends (at the next valid reply) or as soon as it reaches
  `JUNK_REPORT_BYTES`, whichever comes first, so the count and the events do not depend on how the bytes
  were chunked. A candidate whose checksum happens to match (one in 256) while a complete valid reply
  starts inside it and ends at or past its end is a cut-off reply glued to (the head of) the next one: it
  is garbage and the reply inside is decoded (a physiological reply holds no `3E` followed by a reply
  length, so a real one never loses to this rule; if the inner reply has not fully arrived yet, the
  candidate wins: the one case where chunking matters). A candidate with a bad checksum that contains no
  other `3E` is one corrupted reply and is rejected as such; if it contains a `3E`, only its first byte is
  garbage and the hunt goes on inside it, so a valid reply glued behind junk is never lost. For the same
  reason a candidate still waiting for its bytes gives way to a complete valid reply that starts inside
  it. (The price: a BP data packet cut by the transport whose first part happened to hold a complete valid
  reply would be lost and re-asked; with physiological numbers the documented fields cannot form one.)
- Abort is always sent when asked, even when the driver believes the module idle: a nurse pressing abort
  wants the cuff down, whatever the driver thinks.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from monitor import mdc
from monitor.devices.protocols import CommandRejected
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame

HOST_START: Final = 0x3A
REPLY_START: Final = 0x3E
LETTER_LENGTH: Final = 0x04
CUFF_PRESSURE_LENGTH: Final = 0x05
BP_DATA_LENGTH: Final = 0x18
#: LEN values of the replies this driver understands; a 3E followed by anything else starts no reply
REPLY_LENGTHS: Final = frozenset({LETTER_LENGTH, CUFF_PRESSURE_LENGTH, BP_DATA_LENGTH})

REPLY_TIMEOUT_S: Final = 2.0
CUFF_POLL_PERIOD_S: Final = 0.2
MAX_MEASUREMENT_S: Final = 180.0
FIRST_MEASUREMENT_DELAY_S: Final = 2.0
FETCH_ATTEMPTS: Final = 3
DEFAULT_INTERVAL_S: Final = 300.0
INTERVAL_MINUTES_RANGE: Final = (1, 60)

JUNK_REPORT_BYTES: Final = 64  # a garbage run is reported by this length at the latest; data kept up to it

#: return code (decimal, byte 18 of BP data) -> condition id (monitor.conditions)
RETURN_CODE_CONDITIONS: Final[Mapping[int, str]] = {
    1: "nibp_weak_signal",
    2: "nibp_erratic_signal",
    3: "nibp_out_of_range",
    4: "nibp_measurement_timeout",
    85: "nibp_pneumatic_blockage",
    86: "nibp_aborted",
    87: "nibp_loose_cuff",
    88: "nibp_safety_timeout",
    89: "nibp_over_pressure",
    90: "nibp_hardware",
    91: "nibp_auto_zero",
    97: "nibp_transducer_range",
    99: "nibp_eeprom",
}
UNKNOWN_RETURN_CODE_CONDITION: Final = "nibp_module_error"

SYSTOLIC_RANGE: Final = (30, 300)
DIASTOLIC_RANGE: Final = (10, 250)
PULSE_RANGE: Final = (20, 300)
CUFF_RANGE: Final = (0, 350)


def checksum(data: bytes) -> int:
    """The byte that makes the packet sum to zero modulo 256 (both directions use it)."""
    return -sum(data) & 0xFF


def encode_command(body: bytes) -> bytes:
    """`3A` + body + checksum: the bytes the host sends."""
    packet = bytes((HOST_START, *body))
    return packet + bytes((checksum(packet),))


START_ADULT: Final = encode_command(b"\x20")
START_PAEDIATRIC: Final = encode_command(b"\x87")
START_NEONATE: Final = encode_command(b"\x28")
ABORT: Final = encode_command(b"\x79\x01\x00")
GET_CUFF_PRESSURE: Final = encode_command(b"\x79\x05\x00")
GET_BP_DATA: Final = encode_command(b"\x79\x03\x00")
GET_MODULE_DATA: Final = encode_command(b"\x00")
RESET: Final = encode_command(b"\x8a")


# --- replies ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LetterReply:
    """`3E 04 <letter> chk`: O received, K done, A abort, B busy, E error, N invalid, S sleep, T timeout."""

    letter: str


@dataclass(frozen=True, slots=True)
class CuffPressureReply:
    mmhg: int


@dataclass(frozen=True, slots=True)
class BpDataReply:
    systolic: int
    diastolic: int
    mean: int
    pulse: int
    return_code: int


Reply = LetterReply | CuffPressureReply | BpDataReply


class SuntechFrameError(ValueError):
    """A packet that is not a valid module reply; the message is the reason."""


def _u16(data: bytes, offset: int) -> int:
    return data[offset] | data[offset + 1] << 8


def _checksum_reason(packet: bytes) -> str:
    return f"checksum mismatch: expected 0x{checksum(packet[:-1]):02x}, got 0x{packet[-1]:02x}"


def decode_reply(packet: bytes) -> Reply:
    """Decode one complete reply packet (`3E` LEN ... chk). Pure; raises SuntechFrameError with the reason."""
    if len(packet) < 2 or packet[0] != REPLY_START:
        raise SuntechFrameError("a reply starts with 0x3e")
    length = packet[1]
    if length not in REPLY_LENGTHS:
        raise SuntechFrameError(f"unknown reply length {length}")
    if len(packet) != length:
        raise SuntechFrameError(f"LEN says {length} bytes, packet has {len(packet)}")
    if checksum(packet[:-1]) != packet[-1]:
        raise SuntechFrameError(_checksum_reason(packet))
    data = packet[2:-1]
    if length == LETTER_LENGTH:
        return LetterReply(chr(data[0]))
    if length == CUFF_PRESSURE_LENGTH:
        return CuffPressureReply(_u16(data, 0))
    return BpDataReply(
        systolic=_u16(data, 0),
        diastolic=_u16(data, 2),
        mean=_u16(data, 16),
        pulse=_u16(data, 14),
        return_code=data[18],
    )


class SuntechReplyDecoder:
    """Module bytes in any chunking -> replies and RejectedFrames (see the resynchronisation decision)."""

    def __init__(self) -> None:
        self.frames_ok = 0
        self.rejected = 0
        self._buffer = bytearray()
        self._junk = bytearray()  # the current garbage run, its first JUNK_REPORT_BYTES bytes
        self._junk_length = 0
        self._junk_reported = False

    def reset(self) -> list[RejectedFrame]:
        """Forget a partial reply (the link was reopened); a pending garbage run is reported now."""
        events: list[Reply | RejectedFrame] = []
        self._add_junk(bytes(self._buffer), events)
        self._buffer.clear()
        self._end_junk(events)
        return [event for event in events if isinstance(event, RejectedFrame)]

    def feed(self, data: bytes) -> list[Reply | RejectedFrame]:
        buffer = self._buffer
        buffer += data
        events: list[Reply | RejectedFrame] = []
        position = 0
        while position < len(buffer):
            start = buffer.find(REPLY_START, position)
            if start < 0:
                self._add_junk(buffer[position:], events)
                position = len(buffer)
                break
            self._add_junk(buffer[position:start], events)
            position = start
            if start + 1 >= len(buffer):
                break  # wait for LEN
            length = buffer[start + 1]
            if length not in REPLY_LENGTHS:
                self._add_junk(buffer[start : start + 1], events)
                position = start + 1
                continue
            if start + length > len(buffer):
                inner = _complete_reply_at_or_after(buffer, start + 1)
                if inner is None:
                    break  # wait for the rest of the candidate
                self._add_junk(buffer[start:inner], events)
                position = inner
                continue
            packet = bytes(buffer[start : start + length])
            good = checksum(packet[:-1]) == packet[-1]
            inner = _complete_reply_at_or_after(buffer, start + 1, before=start + length) if good else None
            if inner is not None:
                self._add_junk(buffer[start:inner], events)  # a cut-off reply and the head of the next
                position = inner
            elif good:
                self._end_junk(events)
                self.frames_ok += 1
                events.append(decode_reply(packet))
                position = start + length
            elif REPLY_START in packet[1:]:
                self._add_junk(buffer[start : start + 1], events)  # a reply may start inside: hunt on
                position = start + 1
            else:
                self._end_junk(events)
                self.rejected += 1
                events.append(RejectedFrame(_checksum_reason(packet), packet))
                position = start + length
        del buffer[:position]
        return events

    def _add_junk(self, junk: bytes | bytearray, events: list[Reply | RejectedFrame]) -> None:
        if not junk:
            return
        room = JUNK_REPORT_BYTES - len(self._junk)
        if room > 0:
            self._junk += junk[:room]
        self._junk_length += len(junk)
        if not self._junk_reported and self._junk_length >= JUNK_REPORT_BYTES:
            events.append(self._junk_frame())
            self._junk_reported = True

    def _end_junk(self, events: list[Reply | RejectedFrame]) -> None:
        if self._junk_length and not self._junk_reported:
            events.append(self._junk_frame())
        self._junk.clear()
        self._junk_length = 0
        self._junk_reported = False

    def _junk_frame(self) -> RejectedFrame:
        self.rejected += 1
        return RejectedFrame("garbage: bytes that form no valid reply", bytes(self._junk))


def _complete_reply_at_or_after(buffer: bytearray, position: int, *, before: int | None = None) -> int | None:
    """Where the first complete reply with a good checksum starts at or after `position`, if any. With
    `before`, only one that starts before it and ends at or after it: the tail of the reply ending there,
    or a reply overlapping it."""
    start = buffer.find(REPLY_START, position, len(buffer) if before is None else before)
    while start >= 0 and start + 1 < len(buffer):
        length = buffer[start + 1]
        end = start + length
        if (
            length in REPLY_LENGTHS
            and (before or 0) <= end <= len(buffer)
            and checksum(buffer[start : end - 1]) == buffer[end - 1]
        ):
            return start
        start = buffer.find(REPLY_START, start + 1, len(buffer) if before is None else before)
    return None


# --- readings -----------------------------------------------------------------------------------------


def return_code_condition(return_code: int) -> str | None:
    """The condition id of a BP data return code; None for 0 (success)."""
    if return_code == 0:
        return None
    return RETURN_CODE_CONDITIONS.get(return_code, UNKNOWN_RETURN_CODE_CONDITION)


def plausible(result: BpDataReply) -> bool:
    """Whether a result's numbers can be a patient's (see the implausible-numbers decision)."""
    return (
        SYSTOLIC_RANGE[0] <= result.systolic <= SYSTOLIC_RANGE[1]
        and DIASTOLIC_RANGE[0] <= result.diastolic <= DIASTOLIC_RANGE[1]
        and result.diastolic < result.systolic
        and result.diastolic <= result.mean <= result.systolic
        and PULSE_RANGE[0] <= result.pulse <= PULSE_RANGE[1]
    )


def result_reading(result: BpDataReply) -> DeviceReading:
    """A BP data reply as the reading the gateway publishes: SYS, DIA, MAP, PR (in that order), mode idle."""
    condition = return_code_condition(result.return_code)
    if condition is None and not plausible(result):
        condition = "nibp_out_of_range"
    valid = condition is None
    measurements = tuple(
        Measurement(code=metric.code, value=float(value), unit=metric.unit, valid=valid)
        for metric, value in (
            (mdc.NIBP_SYS, result.systolic),
            (mdc.NIBP_DIA, result.diastolic),
            (mdc.NIBP_MEAN, result.mean),
            (mdc.NIBP_PULSE_RATE, result.pulse),
        )
    )
    return DeviceReading(
        measurements=measurements,
        conditions=frozenset() if condition is None else frozenset({condition}),
        extra={"return_code": str(result.return_code)},
        mode="idle",
    )


# --- the driver ---------------------------------------------------------------------------------------


class NibpState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    MEASURING = "measuring"
    FETCHING = "fetching"


class _Request(enum.Enum):
    START = enum.auto()
    CUFF_PRESSURE = enum.auto()
    BP_DATA = enum.auto()


#: what a letter other than 'O' does to a start not yet acknowledged ('A' and 'K' are ignored there:
#: they are the late replies to an abort sent just before; any other letter is a module error)
_LETTER_WHILE_STARTING: Final[Mapping[str, str]] = {
    "B": "nibp_busy",
    "E": "nibp_module_error",
    "N": "nibp_module_error",
    "S": "nibp_module_error",
    "T": "nibp_measurement_timeout",
}

COMMANDS: Final = ("abort", "measure", "set_interval")


class SuntechNibpDriver:
    """The gateway's side of a SunTech Advantage module (implements monitor.devices.protocols.Driver).

    See the module docstring for the cycle and the decisions. `frames_ok` counts valid replies, `rejected`
    counts corrupted replies and garbage runs.
    """

    protocol: ClassVar[str] = "suntech-nibp"

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self._interval_s = float(interval_s)
        self._decoder = SuntechReplyDecoder()
        self._connected = False
        self._state = NibpState.IDLE
        self._next_at: float | None = None
        self._last_start: float | None = None
        self._measure_requested = False
        self._awaiting: _Request | None = None
        self._asked_at = 0.0
        self._last_cuff_request_at = float("-inf")
        self._fetch_attempts = 0
        self._fetch_failure = "nibp_no_response"
        self._conditions: frozenset[str] = frozenset()
        self._outbox = bytearray()
        self._events: list[CodecEvent] = []

    # --- read-only state for screens and tests ----------------------------------------------------------

    @property
    def frames_ok(self) -> int:
        return self._decoder.frames_ok

    @property
    def rejected(self) -> int:
        return self._decoder.rejected

    @property
    def interval_s(self) -> float:
        return self._interval_s

    @property
    def next_measurement_at(self) -> float | None:
        """When the next automatic measurement starts (epoch s); None before the first connect."""
        return self._next_at

    def details(self) -> dict[str, float | int | str | None]:
        """What a screen needs to judge the cycle: its interval and when the next measurement is due."""
        return {"interval_s": self._interval_s, "next_at": self._next_at}

    @property
    def state(self) -> NibpState:
        return self._state

    @property
    def mode(self) -> str:
        return "idle" if self._state is NibpState.IDLE else "measuring"

    @property
    def conditions(self) -> frozenset[str]:
        """The conditions every reading carries now (the last failure's, until a success)."""
        return self._conditions

    # --- Driver ------------------------------------------------------------------------------------------

    def connected(self, now: float) -> None:
        self._events.extend(self._decoder.reset())
        self._outbox.clear()
        if self._state is not NibpState.IDLE:
            self._outbox += ABORT  # the result is lost with the link; the cuff must not stay up
            self._state = NibpState.IDLE
            self._awaiting = None
            self._next_at = now + FIRST_MEASUREMENT_DELAY_S
        elif self._next_at is None:
            self._next_at = now + FIRST_MEASUREMENT_DELAY_S
        else:
            self._next_at = max(self._next_at, now + FIRST_MEASUREMENT_DELAY_S)
        self._connected = True

    def feed(self, data: bytes, now: float) -> list[CodecEvent]:
        for item in self._decoder.feed(data):
            if isinstance(item, RejectedFrame):
                self._events.append(item)
                self._on_garbled()
            else:
                self._on_reply(item)
        self._check_timers(now)
        events, self._events = self._events, []
        return events

    def poll(self, now: float) -> bytes:
        if not self._connected:
            return b""
        was_idle = self._state is NibpState.IDLE
        self._check_timers(now)
        state = self._state
        if state is NibpState.IDLE:
            # not in the same write as the abort of a measurement that just failed: one poll later
            due = self._measure_requested or (self._next_at is not None and now >= self._next_at)
            if due and was_idle:
                self._start(now)
        elif state is NibpState.MEASURING:
            if self._awaiting is None and now - self._last_cuff_request_at >= CUFF_POLL_PERIOD_S:
                self._last_cuff_request_at = now
                self._ask(_Request.CUFF_PRESSURE, GET_CUFF_PRESSURE, now)
        elif state is NibpState.FETCHING and self._awaiting is None:
            if self._fetch_attempts >= FETCH_ATTEMPTS:
                self._fail(self._fetch_failure, send_abort=False)
            else:
                self._fetch_attempts += 1
                self._ask(_Request.BP_DATA, GET_BP_DATA, now)
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def command(self, name: str, args: dict[str, object], now: float) -> None:
        if name == "measure":
            if not self._connected:
                raise CommandRejected("the NIBP module is not connected")
            if self._state is not NibpState.IDLE or self._measure_requested:
                raise CommandRejected("a measurement is already running")
            self._measure_requested = True
        elif name == "set_interval":
            self._set_interval(args)
        elif name == "abort":
            if not self._connected:
                raise CommandRejected("the NIBP module is not connected")
            self._measure_requested = False
            self._outbox += ABORT
            if self._state is not NibpState.IDLE:
                self._fail("nibp_aborted", send_abort=False)
        else:
            raise CommandRejected(f"unknown NIBP command {name!r}; known: {', '.join(COMMANDS)}")

    # --- the cycle ---------------------------------------------------------------------------------------

    def _set_interval(self, args: dict[str, object]) -> None:
        minutes = args.get("minutes")
        low, high = INTERVAL_MINUTES_RANGE
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not low <= minutes <= high:
            raise CommandRejected(f"set_interval needs 'minutes' between {low} and {high}, got {minutes!r}")
        self._interval_s = float(minutes) * 60.0
        if self._last_start is not None:
            self._next_at = self._last_start + self._interval_s

    def _start(self, now: float) -> None:
        self._measure_requested = False
        self._last_start = now
        self._next_at = now + self._interval_s
        self._state = NibpState.STARTING
        self._fetch_attempts = 0
        self._fetch_failure = "nibp_no_response"
        self._last_cuff_request_at = float("-inf")
        self._ask(_Request.START, START_ADULT, now)
        self._emit_mode()

    def _ask(self, request: _Request, command: bytes, now: float) -> None:
        self._awaiting = request
        self._asked_at = now
        self._outbox += command

    def _emit_mode(self, measurements: tuple[Measurement, ...] = ()) -> None:
        self._events.append(
            DeviceReading(measurements=measurements, conditions=self._conditions, mode=self.mode)
        )

    def _fail(self, condition: str, *, send_abort: bool) -> None:
        if send_abort:
            self._outbox += ABORT
        self._state = NibpState.IDLE
        self._awaiting = None
        self._conditions = frozenset({condition})
        self._emit_mode()

    def _check_timers(self, now: float) -> None:
        state = self._state
        waited = now - self._asked_at
        if state is NibpState.STARTING and waited > REPLY_TIMEOUT_S:
            self._fail("nibp_no_response", send_abort=True)
        elif state is NibpState.MEASURING:
            if self._last_start is not None and now - self._last_start > MAX_MEASUREMENT_S:
                self._fail("nibp_measurement_timeout", send_abort=True)
            elif self._awaiting is not None and waited > REPLY_TIMEOUT_S:
                self._fail("nibp_no_response", send_abort=True)
        elif state is NibpState.FETCHING and self._awaiting is not None and waited > REPLY_TIMEOUT_S:
            self._retry_fetch("nibp_no_response")

    def _retry_fetch(self, condition: str) -> None:
        """Free the BP data request: the next poll asks again, or fails with `condition` after the last try.

        The failure waits for that poll so that a valid reply arriving in the same bytes still counts.
        """
        self._awaiting = None
        self._fetch_failure = condition

    def _on_garbled(self) -> None:
        if self._awaiting is _Request.CUFF_PRESSURE:
            self._awaiting = None
        elif self._awaiting is _Request.BP_DATA:
            self._retry_fetch("nibp_no_response")

    def _on_reply(self, reply: Reply) -> None:
        state = self._state
        if isinstance(reply, LetterReply):
            self._on_letter(reply.letter)
        elif isinstance(reply, CuffPressureReply):
            # accepted whatever is awaited: a garbage run is only reported when the reply after it
            # arrives, and that report has already freed the request (see _on_garbled)
            if state is NibpState.MEASURING:
                if self._awaiting is _Request.CUFF_PRESSURE:
                    self._awaiting = None
                low, high = CUFF_RANGE
                cuff = Measurement(
                    code=mdc.NIBP_CUFF.code,
                    value=float(reply.mmhg),
                    unit=mdc.NIBP_CUFF.unit,
                    valid=low <= reply.mmhg <= high,
                )
                self._emit_mode((cuff,))
        elif state is NibpState.FETCHING:
            reading = result_reading(reply)
            self._state = NibpState.IDLE
            self._awaiting = None
            self._conditions = reading.conditions
            self._events.append(reading)

    def _on_letter(self, letter: str) -> None:
        state = self._state
        if state is NibpState.STARTING:
            if letter == "O":
                self._state = NibpState.MEASURING
                self._awaiting = None
            elif letter not in "AK":  # late replies to an abort sent just before the start
                self._fail(_LETTER_WHILE_STARTING.get(letter, "nibp_module_error"), send_abort=False)
        elif state is NibpState.MEASURING:
            if letter in "KAT":
                self._state = NibpState.FETCHING
                self._awaiting = None  # a late cuff pressure reply is ignored in fetching
            elif letter in "ES":
                self._fail("nibp_module_error", send_abort=True)
            elif letter in "NB" and self._awaiting is _Request.CUFF_PRESSURE:
                self._awaiting = None  # the request was not taken: ask again at the next poll
        elif state is NibpState.FETCHING and letter in "ENB" and self._awaiting is _Request.BP_DATA:
            self._retry_fetch("nibp_module_error")

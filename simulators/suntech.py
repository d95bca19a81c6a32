"""A SunTech Advantage / Advantage A+ OEM NIBP module that answers the host's commands byte for byte.

The bytes are the module's bytes (../shared/reference/device-protocols.md section 2; source:
519984307/Appciton Providers/SuntechProvider/SuntechProvider.cpp), so that the gateway that measures with
this simulator measures with a real module the same way. The encoders here are written independently of
monitor.devices.suntech_nibp on purpose: a test that decodes what this module sends then checks the
driver against the reference bytes, not against itself.

What the module does (`SuntechModule`, pure: time is passed in, as in the driver):

- start (adult `3A 20 A6`, paediatric `3A 87 3F`, neonate `3A 28 9E`) -> 'O', and a measurement begins:
  the cuff inflates about 10 mmHg per 0.2 s to SYS + 30 mmHg, then deflates in steps of about 8 mmHg and
  dumps to 0 at the end. After `measure_seconds` (default 25 s, compressible for tests) the module sends
  'K' unsolicited. Inflation takes at most 30 % of `measure_seconds`, so a 1 s measurement still has
  both phases. A start while measuring -> 'B'.
- get cuff pressure (`3A 79 05 00 48`) -> `3E 05 lo hi chk` with the pressure now.
- get BP data (`3A 79 03 00 4A`) -> the 24-byte BP data packet of the last measurement ('B' while one is
  running). The BP comes from `bp_source()`, read once when the measurement starts (it sets the
  inflation target too). A measurement that fails (see `fail_next`) reports zeros with its return code.
- abort (`3A 79 01 00 4C`) -> 'A' then 'K' (Appciton's provider expects "AK" or "OK" after an abort;
  the exact pair is **[unverified]**); a running measurement ends with return code 86 (user abort).
- reset (`3A 8A 3C`) -> ends any measurement and answers 'O' **[unverified]**.
- module data (`3A 00 C6`): its reply format is not in the reference, so the module answers 'N'.
- a command with a bad checksum or an unknown command byte -> 'N'; the parser then hunts for the next
  `3A`, so one corrupted command does not cost the next one.

Errors on demand: `fail_next(return_code)` (the next measurement to end fails with it), `stop_answering()`
/ `resume_answering()` (a dead module: the bytes it is sent are read and dropped, nothing is sent, and a
running measurement is lost).

`SuntechModuleSimulator` runs a `SuntechModule` in a thread over a PtyLink (reading the host's bytes from
the same non-blocking master descriptor), a file descriptor, or a pair of callables.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from simulators.device_thread import DeviceThread, writer
from simulators.pty_link import PtyLink

log = logging.getLogger(__name__)

BpSource = Callable[[], tuple[int, int, int, int]]

DEFAULT_BP: Final = (120, 80, 93, 72)  # sys, dia, map, pulse: the reference example
DEFAULT_MEASURE_SECONDS: Final = 25.0

HOST_START: Final = 0x3A
REPLY_START: Final = 0x3E
INFLATE_MMHG_PER_S: Final = 50.0  # ~10 mmHg per 0.2 s cuff-pressure poll
INFLATE_ABOVE_SYSTOLIC: Final = 30
DEFLATE_STEP_MMHG: Final = 8
MAX_INFLATE_SHARE: Final = 0.3  # of measure_seconds
USER_ABORT: Final = 86

# host command byte -> number of command bytes (after 3A, before the checksum)
_COMMAND_LENGTHS: Final = {0x20: 1, 0x87: 1, 0x28: 1, 0x8A: 1, 0x00: 1, 0x79: 3}
_STARTS: Final = frozenset({b"\x20", b"\x87", b"\x28"})
_ABORT: Final = b"\x79\x01\x00"
_GET_CUFF_PRESSURE: Final = b"\x79\x05\x00"
_GET_BP_DATA: Final = b"\x79\x03\x00"
_RESET: Final = b"\x8a"


def fixed_bp() -> tuple[int, int, int, int]:
    """The default `bp_source`: 120/80, MAP 93, pulse 72."""
    return DEFAULT_BP


def _checksum(data: bytes) -> int:
    return -sum(data) & 0xFF


def _reply(data: bytes) -> bytes:
    packet = bytes((REPLY_START, len(data) + 3, *data))
    return packet + bytes((_checksum(packet),))


def encode_reply(letter: str) -> bytes:
    """`3E 04 <letter> chk`, e.g. encode_reply("O") == bytes.fromhex("3E 04 4F 6F")."""
    if len(letter) != 1 or not letter.isascii():
        raise ValueError(f"a reply letter is one ASCII character, got {letter!r}")
    return _reply(letter.encode("ascii"))


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} must fit in 16 bits, got {value}")
    return value.to_bytes(2, "little")


def encode_cuff_pressure(mmhg: int) -> bytes:
    """`3E 05 lo hi chk`."""
    return _reply(_u16(mmhg, "cuff pressure"))


def encode_bp_data(sys: int, dia: int, map: int, pulse: int, return_code: int = 0) -> bytes:
    """The 24-byte BP data reply: SYS 0-1, DIA 2-3, PR 14-15, MAP 16-17, return code 18 (data offsets).

    The other data bytes are **[unverified]** in the reference and sent as zeros.
    """
    if not 0 <= return_code <= 0xFF:
        raise ValueError(f"return code must fit in one byte, got {return_code}")
    data = bytearray(21)
    data[0:2] = _u16(sys, "systolic")
    data[2:4] = _u16(dia, "diastolic")
    data[14:16] = _u16(pulse, "pulse")
    data[16:18] = _u16(map, "mean")
    data[18] = return_code
    return _reply(bytes(data))


@dataclass(frozen=True, slots=True)
class _Measurement:
    started_at: float
    bp: tuple[int, int, int, int]

    def target(self) -> int:
        return max(60, min(300, self.bp[0] + INFLATE_ABOVE_SYSTOLIC))


class SuntechModule:
    """The module's behaviour without threads or I/O: bytes in at `now`, bytes out (see module docstring)."""

    def __init__(self, bp_source: BpSource = fixed_bp, measure_seconds: float = DEFAULT_MEASURE_SECONDS):
        if not measure_seconds > 0:
            raise ValueError("measure_seconds must be positive")
        self.bp_source = bp_source
        self.measure_seconds = measure_seconds
        self.answering = True
        self.commands_received = 0
        self.measurements_completed = 0
        self._buffer = bytearray()
        self._measurement: _Measurement | None = None
        self._result = encode_bp_data(0, 0, 0, 0)
        self._fail_next: int | None = None

    @property
    def measuring(self) -> bool:
        return self._measurement is not None

    def fail_next(self, return_code: int) -> None:
        """The next measurement to end (the running one, if any) ends with this code and zeros for numbers.

        An abort still ends a running measurement with 86 (user abort); the failure then waits for the next.
        """
        if not 1 <= return_code <= 0xFF:
            raise ValueError(f"a failure return code is 1..255, got {return_code}")
        self._fail_next = return_code

    def stop_answering(self) -> None:
        """Play dead: read and drop everything, send nothing; a running measurement is lost."""
        self.answering = False
        self._measurement = None
        self._buffer.clear()

    def resume_answering(self) -> None:
        self.answering = True

    def cuff_pressure(self, now: float) -> int:
        measurement = self._measurement
        if measurement is None:
            return 0
        elapsed = now - measurement.started_at
        target = measurement.target()
        inflate_s = min(target / INFLATE_MMHG_PER_S, MAX_INFLATE_SHARE * self.measure_seconds)
        if elapsed < inflate_s:
            return round(target * max(0.0, elapsed) / inflate_s)
        if elapsed >= self.measure_seconds:
            return 0
        steps = max(1, target // DEFLATE_STEP_MMHG)
        step_s = (self.measure_seconds - inflate_s) / steps
        step = int((elapsed - inflate_s) // step_s)
        return max(0, round(target * (1 - step / steps)))

    def receive(self, data: bytes, now: float) -> bytes:
        """Take the host's bytes; return the replies, in order."""
        if not self.answering:
            return b""
        out = bytearray(self.advance(now))  # a measurement that ended before this command sends 'K' first
        buffer = self._buffer
        buffer += data
        while True:
            start = buffer.find(HOST_START)
            if start < 0:
                buffer.clear()
                break
            del buffer[:start]
            if len(buffer) < 2:
                break
            length = _COMMAND_LENGTHS.get(buffer[1])
            if length is None:
                out += encode_reply("N")
                del buffer[:1]
                continue
            if len(buffer) < length + 2:
                break
            frame = bytes(buffer[: length + 2])
            if _checksum(frame[:-1]) != frame[-1]:
                out += encode_reply("N")
                del buffer[:1]  # a lost byte may have merged two commands: hunt again from the next byte
                continue
            del buffer[: length + 2]
            self.commands_received += 1
            out += self._execute(frame[1:-1], now)
        return bytes(out)

    def advance(self, now: float) -> bytes:
        """Unsolicited output due by `now`: 'K' when a measurement has finished."""
        measurement = self._measurement
        if not self.answering or measurement is None or now - measurement.started_at < self.measure_seconds:
            return b""
        return_code, self._fail_next = self._fail_next or 0, None
        self._finish(measurement.bp, return_code)
        return encode_reply("K")

    def _finish(self, bp: tuple[int, int, int, int], return_code: int) -> None:
        self._measurement = None
        self.measurements_completed += 1
        if return_code:
            self._result = encode_bp_data(0, 0, 0, 0, return_code)
        else:
            self._result = encode_bp_data(*bp)

    def _execute(self, command: bytes, now: float) -> bytes:
        if command in _STARTS:
            if self._measurement is not None:
                return encode_reply("B")
            bp = tuple(int(value) for value in self.bp_source())
            if len(bp) != 4:
                raise ValueError(f"bp_source must return (sys, dia, map, pulse), got {bp!r}")
            self._measurement = _Measurement(now, (bp[0], bp[1], bp[2], bp[3]))
            return encode_reply("O")
        if command == _GET_CUFF_PRESSURE:
            return encode_cuff_pressure(self.cuff_pressure(now))
        if command == _GET_BP_DATA:
            return encode_reply("B") if self._measurement is not None else self._result
        if command == _ABORT:
            if self._measurement is not None:
                self._finish((0, 0, 0, 0), USER_ABORT)
            return encode_reply("A") + encode_reply("K")
        if command == _RESET:
            self._measurement = None
            return encode_reply("O")
        return encode_reply("N")  # known length, unknown meaning (e.g. 79 xx 00, module data)


#: The module's output: a callable with os.write's contract (returns the bytes taken, None for all; raises
#: BlockingIOError when it can take none). Input: a callable returning what has arrived (b"" for nothing;
#: BlockingIOError is taken to mean nothing too).
Output = Callable[[bytes], int | None]
Input = Callable[[], bytes]


class SuntechModuleSimulator(DeviceThread):
    """A SuntechModule answering over a serial-like link from a background thread.

    `port` is a PtyLink (read and write its master), or a file descriptor (read and write it); or pass
    `read` and `write` callables. Nothing blocks and nothing kills the thread: EAGAIN and EIO on either
    side mean "nothing now"; bytes the output cannot take are dropped and counted in `bytes_dropped`, as
    a serial line drops bytes nobody reads (a partial write's rest is sent first next time). The thread
    and the non-blocking write are simulators.device_thread's, shared with the other device simulators.
    """

    _device = "suntech"
    _port_error = "link error, going on"
    _port_recovered = "link usable again"

    def __init__(
        self,
        port: PtyLink | int | None = None,
        *,
        read: Input | None = None,
        write: Output | None = None,
        bp_source: BpSource = fixed_bp,
        measure_seconds: float = DEFAULT_MEASURE_SECONDS,
        tick_seconds: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.module = SuntechModule(bp_source, measure_seconds)
        #: the descriptor the host's bytes are read from, when there is one (the thread select()s on it)
        self._input_fd: int | None = None
        if isinstance(port, PtyLink):
            self._input_fd = port.master_fd
            if write is None:
                write = port.write
        elif isinstance(port, int):
            self._input_fd = port
            fd_write = writer(port)  # makes the descriptor non-blocking, whoever writes
            if write is None:
                write = fd_write
        elif read is None or write is None:
            raise ValueError("give a PtyLink or a file descriptor, or both read and write callables")
        if read is not None:
            self._input_fd = None
            self._read: Input = read
        else:
            self._read = self._read_fd
        super().__init__(write)
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.bytes_dropped = 0
        self._read_failed = False
        self._lock = threading.Lock()

    # --- errors on demand (thread-safe) -------------------------------------------------------------

    def fail_next(self, return_code: int) -> None:
        with self._lock:
            self.module.fail_next(return_code)

    def stop_answering(self) -> None:
        with self._lock:
            self.module.stop_answering()

    def resume_answering(self) -> None:
        with self._lock:
            self.module.resume_answering()

    @property
    def measuring(self) -> bool:
        return self.module.measuring

    @property
    def measurements_completed(self) -> int:
        return self.module.measurements_completed

    # --- one step, usable without the thread --------------------------------------------------------

    def step(self) -> bytes:
        """Read what the host sent, answer it, send what is due; return the bytes offered to the output."""
        data = self._safe_read()
        with self._lock:
            out = self.module.receive(data, self.clock()) if data else self.module.advance(self.clock())
        self._send(out)
        return out

    def _read_fd(self) -> bytes:
        if self._input_fd is None:
            return b""
        return os.read(self._input_fd, 4096)

    def _safe_read(self) -> bytes:
        self._read_failed = False
        try:
            return self._read()
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO: no one has the other side open; anything else: log once, go on
            self._read_failed = True
            self._note_error(exc)
            return b""

    def _send(self, data: bytes) -> None:
        if self._pending:
            self._pending = self._pending[self._offer(self._pending) :]
        if not data:
            return
        if self._pending:
            self.bytes_dropped += len(data)  # the line is still busy with an older reply
            return
        taken = self._offer(data)
        if taken == 0:
            self.bytes_dropped += len(data)
        self._pending = data[taken:]

    # --- the thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._wait_for_input()
                self.step()
            except Exception:  # a simulator that dies mid-demo is worse than one that logs and goes on
                log.exception("suntech simulator: step failed")
                self._stop.wait(self.tick_seconds)

    def _wait_for_input(self) -> None:
        """Sleep until the host sends something or a tick passes (answers go out within a tick).

        After a failed read (EIO reads as "readable" at once) it sleeps the whole tick, not to spin.
        """
        if self._input_fd is None or self._read_failed:
            self._stop.wait(self.tick_seconds)
            return
        try:
            select.select([self._input_fd], [], [], self.tick_seconds)
        except (OSError, ValueError):  # closed under us: the next read reports it
            self._stop.wait(self.tick_seconds)

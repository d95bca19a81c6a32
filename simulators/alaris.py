"""A BD Alaris Asena GH/CC syringe pump answering its RS-232 protocol, byte for byte, from a thread.

The pump only answers: the host writes `!CMD|XXXX\\r` frames, the pump replies with one frame each
(../shared/reference/device-protocols.md section 3; monitor/devices/alaris_asena.py has the frame format
and the sources). This simulator answers the read-only queries KAP Monitor sends, with the replies the
sources quote (mdpnp/mdpnp SingleSimAlaris.java, AlarisToNeurowave.java, AlarisMITM.java):

- `INST_SERIALNO` -> `INST_SERIALNO^8002-51740`
- `COMMS_RESPONSE_MAX` -> `COMMS_RESPONSE_MAX^4000^ms`
- `COMMS_PROTOCOL` -> `COMMS_PROTOCOL^Asena Rev 2.1.5`
- `INF` -> `INF^serial^alarm^mode^rate^ml/h^^volume^ml^pressure^mmHg^timeRemaining^EVENT^logId`
  with the alarm field `-` (none) or `A` (an alarm is active), as the captured real reply shows
  (`!INF^8002-51733^A^HLD^0.00^ml/h^^0.969^ml^530.15^mmHg^00:04:09^EVENT^214725|DB9D`)
- `ALARM` -> `ALARM^<code>^<text>^ `, e.g. `ALARM^AL_NOALM^ ^ ` (CRC C73B, quoted in SingleSimAlaris)

Decisions where the sources are silent:

- A command with a bad CRC, or one this simulator does not implement (`REMOTE_CTRL`, `INF_START`,
  `INF_RATE`... : remote control is out of KAP Monitor's scope), gets no answer. No source shows an error
  reply from the pump; the sources' hosts resend a command after 500 ms of silence, which is how a host
  experiences a pump that ignored it. Both are counted (`bad_commands`, `unknown_commands`).
- Modes: `SET` (set up, not started), `INF` while infusing [unverified word], `HLD` on hold (captured).
  On hold the reported rate is 0.00, as in the captured `HLD` reply; in `SET` and `INF` it is the set rate.
- `timeRemaining` is the time to reach the VTBI at the set rate as `HH:MM:SS`, or `24+` from 24 hours
  on or with no VTBI (both forms appear in the sources).
- Alarms: `raise_alarm()` takes the pump's codes (`AL_OCCLU`) or words (`OCCLUSION`, see `ALARM_WORDS`).
  Occlusion, end of infusion, VTBI done, air in line and door open put the pump on hold; an occlusion
  also raises the line pressure to `occlusion_pressure_mmhg` (530 mmHg, as in the captured reply).
  Reaching the VTBI puts the pump on hold with AL_EOIST (end of infusion); when less than
  `near_end_s` of infusion is left, AL_NEOIN (near end) is raised while it keeps infusing. Syringe pumps
  have no air detector or door: AIR_IN_LINE and DOOR_OPEN are sent as words, for scenarios only.
- The log id (last field) goes up by one at every event (start, hold, alarm), as an event log would.

Volume infused integrates the rate over simulated time: `speed` simulated seconds per real second.
Reading and writing never block and never kill the thread: EAGAIN or EIO on the port just means nothing
to read, or a reply lost, as on a real serial line nobody listens to.
"""

from __future__ import annotations

import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from monitor.devices.alaris_asena import (
    FrameError,
    FrameSplitter,
    crc16_ccitt_false,
    encode_frame,
    normalise_word,
    parse_frame,
)
from monitor.model import RejectedFrame
from simulators.device_thread import DeviceThread, Writer, writer
from simulators.pty_link import PtyLink

__all__ = [
    "ALARM_WORDS",
    "AlarisPumpSimulator",
    "PumpState",
    "crc16_ccitt_false",
    "encode_frame",
    "format_inf_reply",
]

log = logging.getLogger(__name__)

DEFAULT_SERIAL: Final = "8002-51740"
PROTOCOL_REVISION: Final = "Asena Rev 2.1.5"
RESPONSE_MAX: Final = "4000^ms"
BASE_PRESSURE_MMHG: Final = 17.91  # the reference example's line pressure
OCCLUSION_PRESSURE_MMHG: Final = 530.0  # about the captured HLD + alarm reply's 530.15 mmHg

#: (word, ALARM code, ALARM text, puts the pump on hold)
_ALARMS: Final[tuple[tuple[str, str, str, bool], ...]] = (
    ("OCCLUSION", "AL_OCCLU", "OCCLUSION", True),
    ("END_OF_INFUSION", "AL_EOIST", "END OF INFUSION", True),
    ("VTBI_DONE", "AL_VTBIS", "VTBI COMPLETE", True),
    ("NEAR_END", "AL_NEOIN", "NEAR END OF INFUSION", False),
    ("LOW_BATTERY", "AL_LWBAT", "LOW BATTERY", False),
    ("AIR_IN_LINE", "AIR_IN_LINE", "AIR IN LINE", True),
    ("DOOR_OPEN", "DOOR_OPEN", "DOOR OPEN", True),
)
#: word or code (normalised) -> (ALARM code, ALARM text, puts the pump on hold)
ALARM_WORDS: Final[dict[str, tuple[str, str, bool]]] = {
    **{word: (code, text, stops) for word, code, text, stops in _ALARMS},
    **{code: (code, text, stops) for _, code, text, stops in _ALARMS},
}

Reader = Callable[[], bytes]
#: a PtyLink (the simulator reads and writes its master), a file descriptor, or (read, write) callables:
#: read returns what arrived (b"" for nothing); write returns the bytes taken (None: all) or raises
#: BlockingIOError when it can take none
Port = PtyLink | int | tuple[Reader, Writer]


def format_inf_reply(
    *,
    serial: str,
    alarm: str,
    mode: str,
    rate: float | str,
    volume: float | str,
    pressure: float | str,
    time_remaining: str = "24+",
    log_type: str = "EVENT",
    log_id: int | str = 127904,
    drug: str = "",
    rate_unit: str = "ml/h",
    volume_unit: str = "ml",
    pressure_unit: str = "mmHg",
) -> str:
    """The text of an INF reply (without `!`, `|CRC` and CR). Numbers as the pump writes them (%.2f,
    %.3f, %.2f); a str is written as given, for tests of odd values."""

    def number(value: float | str, decimals: int) -> str:
        return value if isinstance(value, str) else f"{value:.{decimals}f}"

    return "^".join(
        ("INF", serial, alarm, mode, number(rate, 2), rate_unit, drug, number(volume, 3), volume_unit,
         number(pressure, 2), pressure_unit, time_remaining, log_type, str(log_id))
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PumpState:
    """A consistent copy of the simulated pump's state."""

    mode: str  # "SET", "INF" or "HLD"
    rate_ml_h: float  # the set rate
    vtbi_ml: float | None  # volume to be infused in this program, None: no VTBI
    infused_in_program_ml: float
    volume_infused_ml: float  # total since power-on
    pressure_mmhg: float
    alarm_code: str | None
    alarm_text: str | None
    log_id: int


def _time_remaining(state: PumpState) -> str:
    if state.vtbi_ml is None or state.rate_ml_h <= 0:
        return "24+"
    seconds = round((state.vtbi_ml - state.infused_in_program_ml) / state.rate_ml_h * 3600)
    if seconds >= 24 * 3600:
        return "24+"
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class AlarisPumpSimulator(DeviceThread):
    """A simulated Alaris Asena GH/CC on a port: answers host commands from a thread (module docstring).

    Control methods (`start_infusion`, `stop_infusion`, `raise_alarm`...) may be called from any thread.
    `handle(data)` answers host bytes without the thread, for tests. `clock` gives monotonic seconds.
    The thread and the non-blocking write are simulators.device_thread's, shared with the other device
    simulators; what happens to a reply the port cannot take is the pump's own (`_send`).
    """

    _device = "alaris"
    _port_error = "port error"

    def __init__(
        self,
        port: Port,
        *,
        serial: str = DEFAULT_SERIAL,
        speed: float = 1.0,
        seed: int | None = None,
        pressure_noise_mmhg: float = 0.3,
        occlusion_pressure_mmhg: float = OCCLUSION_PRESSURE_MMHG,
        near_end_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        if not serial or any(c in serial for c in "^!|\r\n"):
            raise ValueError(f"serial must be non-empty without '^', '!', '|' or line ends: {serial!r}")
        self._fd: int | None = None
        if isinstance(port, PtyLink):
            link = port
            self._fd = link.master_fd
            self._read: Reader = lambda: os.read(link.master_fd, 4096)
            write: Writer = link.write
        elif isinstance(port, int):
            fd = port
            write = writer(fd)  # makes the descriptor non-blocking
            self._fd = fd
            self._read = lambda: os.read(fd, 4096)
        else:
            self._read, write = port
        super().__init__(write)
        self.serial = serial
        self.speed = speed
        self.pressure_noise_mmhg = pressure_noise_mmhg
        self.occlusion_pressure_mmhg = occlusion_pressure_mmhg
        self.near_end_s = near_end_s
        self.clock = clock
        #: False: the pump ignores everything (a pump that stopped answering)
        self.responding = True
        self.commands_answered = 0
        self.bad_commands = 0  # bad CRC or not a frame: not answered
        self.unknown_commands = 0  # not implemented (remote control...): not answered
        self.replies_dropped = 0  # the port could take nothing
        self._random = random.Random(seed)
        self._splitter = FrameSplitter()
        self._lock = threading.RLock()
        self._mode = "SET"
        self._rate = 0.0
        self._vtbi: float | None = None
        self._infused_in_program = 0.0
        self._volume = 0.0
        self._alarm: tuple[str, str, bool] | None = None
        self._near_end_raised = False  # once per program, as a pre-alarm
        self._log_id = 127904
        self._last_sync = clock()

    # --- control -----------------------------------------------------------------------------------------

    def start_infusion(self, rate_ml_h: float, vtbi_ml: float | None = None) -> None:
        """Program a rate and optional VTBI and start infusing (a new program: its infused count restarts)."""
        if not 0 < rate_ml_h <= 1200:
            raise ValueError("rate must be in (0, 1200] mL/h")
        if vtbi_ml is not None and not vtbi_ml > 0:
            raise ValueError("vtbi_ml must be positive (or None)")
        with self._lock:
            self._sync()
            if self._alarm is not None and self._alarm[2]:
                raise RuntimeError(f"clear the {self._alarm[0]} alarm before starting")
            self._rate, self._vtbi, self._infused_in_program = float(rate_ml_h), vtbi_ml, 0.0
            self._near_end_raised = False
            self._mode = "INF"
            self._log_id += 1

    def stop_infusion(self) -> None:
        """Put the pump on hold (HLD): delivery stops, the program is kept."""
        with self._lock:
            self._sync()
            if self._mode != "HLD":
                self._mode = "HLD"
                self._log_id += 1

    pause_infusion = stop_infusion  # the Alaris has one "hold" state for both

    def resume_infusion(self) -> None:
        """Restart the held program (refused while an alarm that stopped it is active)."""
        with self._lock:
            self._sync()
            if self._vtbi is not None and self._infused_in_program >= self._vtbi:
                raise RuntimeError("the program is complete: start a new one")
            if self._alarm is not None and self._alarm[2]:
                raise RuntimeError(f"clear the {self._alarm[0]} alarm before resuming")
            if self._rate <= 0:
                raise RuntimeError("no rate set")
            self._mode = "INF"
            self._log_id += 1

    def set_rate(self, rate_ml_h: float) -> None:
        """Change the rate; an infusion goes on at the new rate from now."""
        if not 0 < rate_ml_h <= 1200:
            raise ValueError("rate must be in (0, 1200] mL/h")
        with self._lock:
            self._sync()
            self._rate = float(rate_ml_h)
            self._log_id += 1

    def raise_alarm(self, word: str, text: str | None = None) -> None:
        """Raise an alarm by code (`AL_OCCLU`) or word (`OCCLUSION`); an unknown word is sent as its code."""
        key = normalise_word(word)
        code, default_text, stops = ALARM_WORDS.get(key, (key, key.replace("_", " "), False))
        text = default_text if text is None else text
        if not code or any(c in code + text for c in "^!|\r\n"):
            raise ValueError(f"alarm code and text must be non-empty of '^', '!', '|', CR, LF: {word!r}")
        with self._lock:
            self._sync()
            self._set_alarm(code, text, stops)

    def clear_alarm(self) -> None:
        """The nurse acknowledged the alarm: it clears; a pump it put on hold stays on hold."""
        with self._lock:
            self._sync()
            if self._alarm is not None:
                self._alarm = None
                self._log_id += 1

    def snapshot(self) -> PumpState:
        with self._lock:
            self._sync()
            return self._state()

    # --- the protocol, without the thread ----------------------------------------------------------------

    def handle(self, data: bytes) -> bytes:
        """Take host bytes in any chunking; return the reply frames for the commands they complete."""
        replies: list[bytes] = []
        for item in self._splitter.feed(data):
            if not self.responding:
                continue
            if isinstance(item, RejectedFrame):
                self.bad_commands += 1
                continue
            try:
                frame = parse_frame(item)
            except FrameError:
                self.bad_commands += 1  # no documented error reply: the pump stays silent
                continue
            reply = self._reply(frame.command)
            if reply is None:
                self.unknown_commands += 1
                continue
            self.commands_answered += 1
            replies.append(encode_frame(reply))
        return b"".join(replies)

    def _reply(self, command: str) -> str | None:
        with self._lock:
            self._sync()
            state = self._state()
        if command == "INF":
            return format_inf_reply(
                serial=self.serial,
                alarm="-" if state.alarm_code is None else "A",
                mode=state.mode,
                rate=state.rate_ml_h if state.mode != "HLD" else 0.0,
                volume=state.volume_infused_ml,
                pressure=state.pressure_mmhg,
                time_remaining=_time_remaining(state),
                log_id=state.log_id,
            )
        if command == "ALARM":
            if state.alarm_code is None:
                return "ALARM^AL_NOALM^ ^ "
            return f"ALARM^{state.alarm_code}^{state.alarm_text}^ "
        if command == "INST_SERIALNO":
            return f"INST_SERIALNO^{self.serial}"
        if command == "COMMS_PROTOCOL":
            return f"COMMS_PROTOCOL^{PROTOCOL_REVISION}"
        if command == "COMMS_RESPONSE_MAX":
            return f"COMMS_RESPONSE_MAX^{RESPONSE_MAX}"
        return None

    # --- the pump's physics (under the lock) -------------------------------------------------------------

    def _state(self) -> PumpState:
        occluded = self._alarm is not None and self._alarm[0] == "AL_OCCLU"
        base = self.occlusion_pressure_mmhg if occluded else BASE_PRESSURE_MMHG
        pressure = max(0.0, base + self._random.gauss(0.0, self.pressure_noise_mmhg))
        return PumpState(
            mode=self._mode,
            rate_ml_h=self._rate,
            vtbi_ml=self._vtbi,
            infused_in_program_ml=self._infused_in_program,
            volume_infused_ml=self._volume,
            pressure_mmhg=pressure,
            alarm_code=None if self._alarm is None else self._alarm[0],
            alarm_text=None if self._alarm is None else self._alarm[1],
            log_id=self._log_id,
        )

    def _set_alarm(self, code: str, text: str, stops: bool) -> None:
        self._alarm = (code, text, stops)
        if stops:
            self._mode = "HLD"
        self._log_id += 1

    def _sync(self) -> None:
        """Advance the pump to the clock's now: integrate the volume, end the program at its VTBI."""
        now = self.clock()
        elapsed = max(0.0, now - self._last_sync) * self.speed
        self._last_sync = now
        if self._mode != "INF" or self._rate <= 0 or elapsed == 0:
            return
        delivered = self._rate * elapsed / 3600.0
        if self._vtbi is not None:
            delivered = min(delivered, self._vtbi - self._infused_in_program)
        self._volume += delivered
        self._infused_in_program += delivered
        if self._vtbi is None:
            return
        remaining_s = (self._vtbi - self._infused_in_program) / self._rate * 3600.0
        if remaining_s <= 1e-9:
            self._infused_in_program = self._vtbi
            self._set_alarm(*ALARM_WORDS["END_OF_INFUSION"])
        elif remaining_s <= self.near_end_s and self._alarm is None and not self._near_end_raised:
            self._near_end_raised = True
            self._set_alarm(*ALARM_WORDS["NEAR_END"])

    # --- the thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._receive()
                reply = self.handle(data) if data else b""
                if reply or self._pending:
                    self._send(reply)
                with self._lock:
                    self._sync()  # VTBI and near-end alarms happen even when nobody asks
            except Exception:  # a simulator that dies mid-demo is worse than one that logs and goes on
                log.exception("alaris simulator: step failed")
            self._wait()

    def _wait(self) -> None:
        if self._fd is None:
            self._stop.wait(0.005)
            return
        try:
            select.select([self._fd], [], [], 0.02)
        except (OSError, ValueError):  # closed under us: keep the loop polite until stop()
            self._stop.wait(0.05)

    def _receive(self) -> bytes:
        try:
            return self._read()
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO: no reader on the other side yet; EBADF: closed under us
            self._note_error(exc)
            self._stop.wait(0.05)
            return b""

    def _send(self, reply: bytes) -> None:
        data = self._pending + reply
        taken = self._offer(data)
        if taken == 0:
            self.replies_dropped += 1  # nobody reads: lost, as on a real line
            self._pending = b""
            return
        self._pending = data[taken:]  # a partly taken reply is finished first, never spliced

    def _note_recovered(self) -> None:
        """Keep `last_error` after a good write: here it is the last port error seen, not the current one."""

"""A Masimo Radical-7 / Rad-8 / Radical-5 pulse oximeter speaking its ASCII serial output ("ASCII 1").

The bytes must be the device's bytes, so that the gateway that reads this simulator reads a real Masimo
the same way (../shared/reference/device-protocols.md section 1a). Layouts, field widths and quirks come
from published captures and drivers:

- Radical-7: the reference example `02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60%
  SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800` (mdpnp/mdpnp OpenICE;
  the same layout with dashes is in the Radical-7 service manual as quoted by remkolems/masimo-datacapture).
- Rad-8: the Radical-7 line without PVI (masimo-datacapture, `_parse_rad8_serial_1`).
- Radical-5: `09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800` (mdpnp poxrad_discrete.h):
  no serial number, a 2-digit ALARM and a 3-digit EXC.
- Radical-7 with SpHb ("radical7-sphb"): a captured line from masimo-datacapture, `SN=---------- SPO2=098%
  BPM=123 PI=00.55 SPCO=--% SPMET=--.-% SPHB=--.- SPOC=-- RESVD=--- DESAT=-- PIDELTA=+-- PVI=---
  ALARM=000000 EXC=0000C00 EXC1=00000000`. Its quirks are kept on purpose (PI without `%`, `SPCO=--%`,
  6/7/8-digit ALARM/EXC/EXC1) because a parser that only works on the tidy layout will meet this one.

Only SpO2, pulse rate and PI are simulated; the other parameters are sent as the device sends parameters
it is not measuring: dashes.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from simulators.device_thread import Output, PeriodicDevice, writer
from simulators.physiology import SCENARIOS, Scenario, ScenarioPlayer, SimulatedPatient, Vitals

log = logging.getLogger(__name__)

DEFAULT_SERIAL: Final = "0000056661"

# EXC exception bits (device-protocols.md 1a)
EXC_NO_SENSOR: Final = 0x1
EXC_SENSOR_OFF: Final = 0x20
EXC_MASIMO_SET: Final = 0x800  # set in normal operation: the SET algorithm is running on a good signal


@dataclass(frozen=True, slots=True)
class _Layout:
    """One model's line: which keys in which order, hex widths, and the constant (unmeasured) fields."""

    keys: str  # space-separated, in line order, as the manuals write them
    alarm_digits: int
    exc_digits: int
    pi_unit: str = "%"
    constants: dict[str, str] = field(default_factory=dict)


_UNMEASURED: Final[dict[str, str]] = {
    "SPCO": "--.-%",
    "SPMET": "--.-%",
    "DESAT": "--",
    "PIDELTA": "+--",
    "PVI": "---",
}

LAYOUTS: Final[dict[str, _Layout]] = {
    "radical7": _Layout(
        "SN SPO2 BPM PI SPCO SPMET DESAT PIDELTA PVI ALARM EXC",
        alarm_digits=4,
        exc_digits=6,
        constants=_UNMEASURED,
    ),
    "rad8": _Layout(
        "SN SPO2 BPM PI SPCO SPMET DESAT PIDELTA ALARM EXC",
        alarm_digits=4,
        exc_digits=6,
        constants=_UNMEASURED,
    ),
    "radical5": _Layout("SPO2 BPM PI ALARM EXC", alarm_digits=2, exc_digits=3),
    "radical7-sphb": _Layout(
        "SN SPO2 BPM PI SPCO SPMET SPHB SPOC RESVD DESAT PIDELTA PVI ALARM EXC EXC1",
        alarm_digits=6,
        exc_digits=7,
        pi_unit="",
        constants={**_UNMEASURED, "SPCO": "--%", "SPHB": "--.-", "SPOC": "--", "RESVD": "---"},
    ),
}
VARIANTS: Final[tuple[str, ...]] = tuple(LAYOUTS)


def _round_half_up(x: float) -> int:
    """Device-style rounding (97.5 -> 98); Python's round() would give banker's rounding."""
    return math.floor(x + 0.5)


def format_masimo_line(
    vitals: Vitals,
    when: datetime,
    *,
    variant: str = "radical7",
    serial: str = DEFAULT_SERIAL,
    alarm: int = 0,
    exc: int = EXC_MASIMO_SET,
    exc1: int = 0,
    line_ending: bytes = b"\r\n",
) -> bytes:
    """One ASCII output line of a Masimo oximeter, byte for byte, ending in `line_ending`.

    `alarm`, `exc` and `exc1` are written as upper-case hex at the model's width (wider if the value needs
    it). When the sensor is off the patient (`vitals.sensor == "off"`) or absent ("none"), SpO2, BPM and PI
    are dashes and EXC gets 0x20 (sensor off) or 0x1 (no sensor), with the 0x800 "Masimo SET" bit cleared:
    with no signal the SET algorithm is not running, and real captures show `EXC=000001` in that state.
    `exc1` is only sent by "radical7-sphb".
    """
    layout = LAYOUTS.get(variant)
    if layout is None:
        raise ValueError(f"unknown Masimo variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if not serial or any(c.isspace() or c == "=" for c in serial):
        raise ValueError(f"serial must be non-empty without spaces or '=': {serial!r}")
    if min(alarm, exc, exc1) < 0:
        raise ValueError("alarm, exc and exc1 are bitfields and must not be negative")

    measuring = vitals.sensor == "on"
    if not measuring:
        exc = (exc & ~EXC_MASIMO_SET) | (EXC_SENSOR_OFF if vitals.sensor == "off" else EXC_NO_SENSOR)

    values: dict[str, str] = {
        **layout.constants,
        "SN": serial,
        "ALARM": f"{alarm:0{layout.alarm_digits}X}",
        "EXC": f"{exc:0{layout.exc_digits}X}",
        "EXC1": f"{exc1:08X}",
    }
    if measuring:
        spo2 = min(100, max(0, _round_half_up(vitals.spo2)))
        pulse = min(999, max(0, _round_half_up(vitals.pulse)))
        pi = min(99.99, max(0.0, vitals.pi))
        values |= {"SPO2": f"{spo2:03d}%", "BPM": f"{pulse:03d}", "PI": f"{pi:05.2f}{layout.pi_unit}"}
    else:
        values |= {"SPO2": "---%", "BPM": "---", "PI": f"--.--{layout.pi_unit}"}

    text = when.strftime("%m/%d/%y %H:%M:%S") + "".join(
        f" {key}={values[key]}" for key in layout.keys.split()
    )
    return text.encode("ascii") + line_ending


class MasimoSimulator(PeriodicDevice):
    """Writes one Masimo line per `period` seconds from a background thread, like the device's serial port.

    The patient is advanced `period * speed` simulated seconds per line (through a ScenarioPlayer), so the
    numbers on consecutive lines are consecutive moments of one patient. Timestamps come from `clock`
    (the device's own wall clock; it is not sped up, as a real device's clock would not be).

    Writing never blocks and never kills the thread. A serial line has no memory: a device talking to
    nobody loses its bytes. So when the output cannot take a line (EAGAIN on a full pty, EIO, a broken
    socket), the line is dropped and counted in `lines_dropped`. If an output takes only part of a line,
    the rest is sent first at the next tick so the reader never sees two lines spliced together (the
    thread and the writing are simulators.device_thread's, shared with the other device simulators).

    `output` is a file descriptor, which the simulator puts in non-blocking mode (it owns the writing
    side), or a callable with os.write's contract (see simulators.device_thread.Output).
    """

    _device = "masimo"
    _port_error = "output error, dropping lines"
    _port_recovered = "output writable again"

    def __init__(
        self,
        output: Output,
        *,
        patient: SimulatedPatient | None = None,
        scenario: Scenario | None = None,
        speed: float = 1.0,
        period: float = 1.0,
        variant: str = "radical7",
        serial: str = DEFAULT_SERIAL,
        line_ending: bytes = b"\r\n",
        clock: Callable[[], datetime] = datetime.now,
        seed: int | None = None,
    ) -> None:
        if variant not in LAYOUTS:
            raise ValueError(f"unknown Masimo variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        if not period > 0:
            raise ValueError("period must be positive")
        super().__init__(writer(output))
        self.patient = patient if patient is not None else SimulatedPatient(seed)
        self.player = ScenarioPlayer(scenario or SCENARIOS["stable"], self.patient, speed)
        self.period = period
        self.variant = variant
        self.serial = serial
        self.line_ending = line_ending
        self.clock = clock
        #: the most recent line generated (whether or not the output took it)
        self.last_line: bytes | None = None
        self.last_vitals: Vitals | None = None
        #: lines the output accepted (a partly accepted line counts: its rest goes out first next tick)
        self.lines_written = 0
        #: lines generated but lost because the output could take nothing (no reader, buffer full, error)
        self.lines_dropped = 0
        self._tick_lock = threading.Lock()

    # --- one tick, usable without the thread --------------------------------------------------------

    def tick(self) -> bytes:
        """Advance the patient by one period, format a line, offer it to the output; return the line."""
        with self._tick_lock:
            vitals = self.player.step(self.period)
            line = format_masimo_line(
                vitals, self.clock(), variant=self.variant, serial=self.serial, line_ending=self.line_ending
            )
            self.last_vitals = vitals
            self.last_line = line
            if self._deliver(line):
                self.lines_written += 1
            else:
                self.lines_dropped += 1
            return line

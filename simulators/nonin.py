"""A Nonin pulse oximeter (OEM III, 9560, Xpod) streaming serial Data Format 2: 75 frames a second.

The bytes must be the device's bytes, so that the gateway that reads this simulator reads a real Nonin the
same way (../shared/reference/device-protocols.md section 1b; the codec is monitor.devices.nonin_f2).
`encode_packet` builds one packet: 25 five-byte frames `01 STATUS PLETH FLOAT CHK`, SYNC on frame 1, the
checksum right, HR split over frames 1-2, SpO2 in frame 3, firmware in frame 4, STAT2 in frame 8, and the
display / fast / beat-to-beat / extended variants in frames 9-23 (set equal to the main values: the
simulated patient has one SpO2 and one pulse). Reserved and timer frames carry 0. `data_format=7` builds
the 16-bit-pleth format 7 instead (its checksum is assumed, see the codec).

Choices where no source says what a real device does (simulator only; the codec does not rely on them):

- Sensor "off" (off the patient) and "none" (unplugged) both set SNSD, the one "sensor" bit Data Format 2
  has, send the missing values (SpO2 127, HR 511), no perfusion colour, and a flat pleth.
- Perfusion colour from the perfusion index: red below 0.3 %, yellow below 1 %, green otherwise, set on
  every frame of the packet.
- The pleth is a pulse wave at the patient's pulse rate (steep systolic upstroke, dicrotic notch,
  diastolic run-off), 8-bit, centred on 128, its amplitude growing with the perfusion index, with one
  count of noise. Its phase runs on across packets, so consecutive packets join into one trace.

A real device powers up streaming in its configured format and needs no host command; neither does this
one (its output is write-only: commands sent to it are ignored).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Sequence
from typing import Final, Literal

from monitor.devices.nonin_f2 import (
    FLOAT_FRAME,
    FRAME_START,
    FRAMES_PER_PACKET,
    MISSING_HR,
    MISSING_SPO2,
    SAMPLE_RATE,
    STAT2_LOW_BATTERY,
    STAT2_SMARTPOINT,
    STATUS_ALWAYS_SET,
    STATUS_ARTF,
    STATUS_OOT,
    STATUS_SNSA,
    STATUS_SNSD,
    STATUS_SYNC,
    checksum,
)
from simulators.device_thread import Output, PeriodicDevice, writer
from simulators.physiology import SCENARIOS, Scenario, ScenarioPlayer, SensorState, SimulatedPatient, Vitals

log = logging.getLogger(__name__)

Perfusion = Literal["green", "red", "yellow", "none"]

DEFAULT_FIRMWARE: Final = 0x94  # the firmware byte of the public capture (NoninPulseOx, reference 1b)
DEFAULT_PERIOD: Final = FRAMES_PER_PACKET / SAMPLE_RATE  # one packet per third of a second

_PERFUSION_BITS: Final[dict[str, int]] = {"none": 0x00, "green": 0x02, "red": 0x04, "yellow": 0x06}
_SENSORS: Final = ("on", "off", "none")
_DATA_FORMATS: Final = (2, 7)


def encode_frame(status: int, pleth: int, value: int, *, data_format: int = 2) -> bytes:
    """One frame: `01 STATUS PLETH FLOAT CHK` (format 2) or `STATUS PLETH_MSB PLETH_LSB FLOAT CHK` (7)."""
    if data_format == 7:
        head = bytes((status, pleth >> 8, pleth & 0xFF, value))
    else:
        head = bytes((FRAME_START, status, pleth, value))
    return head + bytes((checksum(head),))


def encode_packet(
    spo2: int | None,
    pulse: int | None,
    pleth: Sequence[int],
    *,
    sensor: SensorState = "on",
    artifact: bool = False,
    out_of_track: bool = False,
    sensor_alarm: bool = False,
    perfusion: Perfusion = "green",
    low_battery: bool = False,
    smartpoint: bool = False,
    firmware: int = DEFAULT_FIRMWARE,
    data_format: int = 2,
) -> bytes:
    """One packet, exactly 25 frames (125 bytes) of valid Data Format 2 (or 7) as the device sends it.

    `spo2` 0..127 and `pulse` 0..511 are the raw values; None sends the "missing" value (127, 511), and so
    does any `sensor` other than "on" (SNSD is then set). `pleth` is the 25 samples, 0..255 (0..65535 in
    format 7). Out-of-range arguments raise ValueError rather than being clamped: the caller made a mistake.
    """
    if data_format not in _DATA_FORMATS:
        raise ValueError(f"data_format must be one of {_DATA_FORMATS}, not {data_format}")
    if sensor not in _SENSORS:
        raise ValueError(f"sensor must be one of {_SENSORS}, not {sensor!r}")
    if perfusion not in _PERFUSION_BITS:
        raise ValueError(f"perfusion must be one of {tuple(_PERFUSION_BITS)}, not {perfusion!r}")
    if len(pleth) != FRAMES_PER_PACKET:
        raise ValueError(f"a packet has {FRAMES_PER_PACKET} pleth samples, not {len(pleth)}")
    pleth_max = 0xFFFF if data_format == 7 else 0xFF
    if any(not 0 <= sample <= pleth_max for sample in pleth):
        raise ValueError(f"pleth samples must be 0..{pleth_max}")
    if spo2 is not None and not 0 <= spo2 <= MISSING_SPO2:
        raise ValueError(f"spo2 must be 0..{MISSING_SPO2} or None, not {spo2}")
    if pulse is not None and not 0 <= pulse <= MISSING_HR:
        raise ValueError(f"pulse must be 0..{MISSING_HR} or None, not {pulse}")
    if not 0 <= firmware <= 0xFF:
        raise ValueError("firmware is one byte")

    if sensor != "on" or spo2 is None:
        spo2 = MISSING_SPO2
    if sensor != "on" or pulse is None:
        pulse = MISSING_HR
    hr_msb, hr_lsb = (pulse >> 7) & 0x03, pulse & 0x7F
    values = [0] * FRAMES_PER_PACKET
    for name, value in {
        "HR_MSB": hr_msb,
        "HR_LSB": hr_lsb,
        "SPO2": spo2,
        "FIRMWARE": firmware,
        "STAT2": (STAT2_LOW_BATTERY if low_battery else 0) | (STAT2_SMARTPOINT if smartpoint else 0),
        "SPO2-D": spo2,
        "SPO2-FAST": spo2,
        "SPO2-BB": spo2,
        "E-HR_MSB": hr_msb,
        "E-HR_LSB": hr_lsb,
        "E-SPO2": spo2,
        "E-SPO2-D": spo2,
        "HR-D_MSB": hr_msb,
        "HR-D_LSB": hr_lsb,
        "E-HR-D_MSB": hr_msb,
        "E-HR-D_LSB": hr_lsb,
    }.items():
        values[FLOAT_FRAME[name] - 1] = value

    status = STATUS_ALWAYS_SET | _PERFUSION_BITS[perfusion]
    status |= STATUS_SNSD if sensor != "on" else 0
    status |= STATUS_ARTF if artifact else 0
    status |= STATUS_OOT if out_of_track else 0
    status |= STATUS_SNSA if sensor_alarm else 0
    return b"".join(
        encode_frame(
            status | (STATUS_SYNC if index == 0 else 0), pleth[index], values[index], data_format=data_format
        )
        for index in range(FRAMES_PER_PACKET)
    )


def perfusion_colour(pi: float) -> Perfusion:
    """The pulse-quality colour a Nonin would show for this perfusion index (simulator assumption)."""
    if pi < 0.3:
        return "red"
    if pi < 1.0:
        return "yellow"
    return "green"


def _beat_shape(phase: float) -> float:
    """One beat of a finger pleth, phase 0..1 -> about 0..1, zero at both ends so beats join smoothly.

    A fast systolic upstroke peaking at 18 % of the beat, a slower fall to the dicrotic notch (~36 %), the
    reflected diastolic wave (~42 %), then an exponential diastolic run-off.
    """

    def raw(p: float) -> float:
        systolic = math.exp(-(((p - 0.18) / (0.06 if p < 0.18 else 0.12)) ** 2))
        if p < 0.42:
            diastolic = 0.35 * math.exp(-(((p - 0.42) / 0.09) ** 2))
        else:
            diastolic = 0.35 * math.exp(-(p - 0.42) / 0.2)
        return systolic + diastolic

    return raw(phase) - phase * raw(1.0)


class PlethGenerator:
    """A continuous pleth waveform: each call returns the next samples at 75 Hz, phase carried over."""

    def __init__(
        self, seed: int | None = None, *, sample_rate: float = SAMPLE_RATE, noise: float = 1.0
    ) -> None:
        self.sample_rate = sample_rate
        self.noise = noise  # standard deviation, in counts
        self.phase = 0.0  # position in the current beat, 0..1
        self._rng = random.Random(seed)

    @staticmethod
    def amplitude(pi: float) -> float:
        """Peak-to-trough counts: grows with perfusion and saturates below the 8-bit range."""
        return 120.0 * pi / (pi + 1.0)

    def next_samples(self, vitals: Vitals, count: int = FRAMES_PER_PACKET) -> list[int]:
        """The next `count` samples for this patient; a flat line at 128 when the sensor is not on."""
        step = max(vitals.pulse, 0.0) / 60.0 / self.sample_rate
        amplitude = self.amplitude(vitals.pi)
        samples: list[int] = []
        for _ in range(count):
            self.phase = (self.phase + step) % 1.0
            if vitals.sensor != "on":
                samples.append(128)
                continue
            level = (
                128.0 - amplitude / 2 + amplitude * _beat_shape(self.phase) + self._rng.gauss(0.0, self.noise)
            )
            samples.append(min(255, max(0, round(level))))
        return samples


def _round_half_up(x: float) -> int:
    """Device-style rounding (97.5 -> 98); Python's round() would give banker's rounding."""
    return math.floor(x + 0.5)


class NoninSimulator(PeriodicDevice):
    """Writes one Data Format 2 packet per `period` seconds (1/3 s, as the device) from a background thread.

    Mirrors simulators.masimo.MasimoSimulator and shares its thread and writing (simulators.device_thread):
    the patient is advanced `period * speed` simulated seconds per packet (through a ScenarioPlayer);
    writing never blocks and never kills the thread; a packet the output cannot take (EAGAIN on a full
    pty, EIO, a broken socket) is dropped and counted in `packets_dropped`, as a serial line with nobody
    listening loses bytes; if the output takes only part of a packet, the rest goes out first at the next
    tick so the reader never sees a packet cut by another. `output` is a file descriptor, which the
    simulator puts in non-blocking mode (it owns the writing side), or a callable with os.write's contract.
    """

    _device = "nonin"
    _port_error = "output error, dropping packets"
    _port_recovered = "output writable again"

    def __init__(
        self,
        output: Output,
        *,
        patient: SimulatedPatient | None = None,
        scenario: Scenario | None = None,
        speed: float = 1.0,
        period: float = DEFAULT_PERIOD,
        firmware: int = DEFAULT_FIRMWARE,
        data_format: int = 2,
        seed: int | None = None,
    ) -> None:
        if not period > 0:
            raise ValueError("period must be positive")
        if data_format not in _DATA_FORMATS:
            raise ValueError(f"data_format must be one of {_DATA_FORMATS}, not {data_format}")
        super().__init__(writer(output))
        self.patient = patient if patient is not None else SimulatedPatient(seed)
        self.player = ScenarioPlayer(scenario or SCENARIOS["stable"], self.patient, speed)
        self.period = period
        self.firmware = firmware
        self.data_format = data_format
        self.pleth = PlethGenerator(seed)
        #: the most recent packet generated (whether or not the output took it)
        self.last_packet: bytes | None = None
        self.last_vitals: Vitals | None = None
        #: packets the output accepted (a partly accepted one counts: its rest goes out first next tick)
        self.packets_written = 0
        #: packets generated but lost because the output could take nothing (no reader, buffer full, error)
        self.packets_dropped = 0
        self._tick_lock = threading.Lock()

    # --- one tick, usable without the thread --------------------------------------------------------

    def make_packet(self, vitals: Vitals) -> bytes:
        """The packet the device sends for these vitals (advances the pleth by 25 samples)."""
        samples = self.pleth.next_samples(vitals)
        if self.data_format == 7:
            samples = [sample << 8 for sample in samples]  # same trace on the 16-bit scale
        measuring = vitals.sensor == "on"
        return encode_packet(
            min(100, max(0, _round_half_up(vitals.spo2))) if measuring else None,
            min(MISSING_HR - 1, max(0, _round_half_up(vitals.pulse))) if measuring else None,
            samples,
            sensor=vitals.sensor,
            perfusion=perfusion_colour(vitals.pi) if measuring else "none",
            firmware=self.firmware,
            data_format=self.data_format,
        )

    def tick(self) -> bytes:
        """Advance the patient by one period, encode a packet, offer it to the output; return the packet."""
        with self._tick_lock:
            vitals = self.player.step(self.period)
            packet = self.make_packet(vitals)
            self.last_vitals = vitals
            self.last_packet = packet
            if self._deliver(packet):
                self.packets_written += 1
            else:
                self.packets_dropped += 1
            return packet

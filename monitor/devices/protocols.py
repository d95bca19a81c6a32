"""Which codec speaks which protocol name, at what line settings, and how long silence may last.

`--device NAME:PROTOCOL:URL` names a protocol from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from monitor.model import CodecEvent


class Codec(Protocol):
    """A device that only talks (Masimo, Nonin): bytes in, events out."""

    frames_ok: int
    rejected: int

    def feed(self, data: bytes) -> list[CodecEvent]: ...

    def initial_commands(self) -> bytes: ...


class CommandRejected(ValueError):
    """A command the device cannot take now (unknown, busy...): the reason goes back to whoever asked."""


class Driver(Protocol):
    """A device the gateway converses with (NIBP cuff, infusion pump): still sans-I/O.

    The adapter calls `poll(now)` every few tens of milliseconds and writes what it returns; `feed` decodes
    replies; `command` takes a request from the `cmd` topic (e.g. "measure"). `now` is passed in (epoch
    seconds from the adapter's injected clock): the driver reads no clock, opens no port, starts no thread.
    `connected(now)` is called each time the port (re)opens, so the driver restarts its conversation.
    """

    frames_ok: int
    rejected: int

    def connected(self, now: float) -> None: ...

    def feed(self, data: bytes, now: float) -> list[CodecEvent]: ...

    def poll(self, now: float) -> bytes: ...

    def command(self, name: str, args: dict[str, object], now: float) -> None: ...


def bytes_wanted(decoder: Codec | Driver) -> int:
    """Bytes `decoder` needs before it can decode anything more: the transport sleeps until they are there
    (or its read timeout). 1, as soon as any byte comes, unless the decoder can tell (`bytes_wanted()`)."""
    wanted = getattr(decoder, "bytes_wanted", None)
    return wanted() if callable(wanted) else 1


class StreamDriver:
    """Makes a talk-only codec a Driver: sends its initial commands on connect, takes no commands."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._pending = b""

    @property
    def frames_ok(self) -> int:
        return self.codec.frames_ok

    @property
    def rejected(self) -> int:
        return self.codec.rejected

    def connected(self, now: float) -> None:
        self._pending = self.codec.initial_commands()

    def feed(self, data: bytes, now: float) -> list[CodecEvent]:
        return self.codec.feed(data)

    def poll(self, now: float) -> bytes:
        pending, self._pending = self._pending, b""
        return pending

    def bytes_wanted(self) -> int:
        """Bytes the codec needs before it can decode anything more (1 when it cannot tell)."""
        return bytes_wanted(self.codec)

    def command(self, name: str, args: dict[str, object], now: float) -> None:
        raise CommandRejected(f"this device takes no commands (asked for {name!r})")


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    name: str
    make_driver: Callable[[], Driver]
    baudrate: int
    #: a device that says nothing for this long is reported offline ("no data"); None for devices that only
    #: speak when asked (their driver reports a missing answer itself)
    silence_timeout: float | None
    description: str
    #: publish numerics at most this often (a device reporting faster is thinned; a change of its
    #: conditions or mode is always published at once). 0 publishes every reading.
    numeric_period_s: float = 0.0
    #: longest wait for bytes before the adapter's loop turns again (polls the driver, checks for silence,
    #: takes commands): short for a device the gateway converses with on a schedule (the cuff's 0.2 s
    #: pressure polls), longer for one that only talks, whose bytes wake the loop anyway. Every turn costs
    #: CPU in every device of every room, so idle turns are kept few.
    read_timeout_s: float = 0.5


def _masimo() -> Driver:
    from monitor.devices.masimo_ascii import MasimoAsciiCodec

    return StreamDriver(MasimoAsciiCodec())


def _nonin_f2() -> Driver:
    from monitor.devices.nonin_f2 import NoninF2Codec

    return StreamDriver(NoninF2Codec())


def _alaris() -> Driver:
    from monitor.devices.alaris_asena import AlarisAsenaDriver

    return AlarisAsenaDriver()


def _suntech() -> Driver:
    from monitor.devices.suntech_nibp import SuntechNibpDriver

    return SuntechNibpDriver()


def _mqtt_json() -> Driver:
    from monitor.devices.mqtt_json import MqttJsonCodec

    return StreamDriver(MqttJsonCodec())


PROTOCOLS: dict[str, ProtocolSpec] = {
    "masimo-ascii": ProtocolSpec(
        "masimo-ascii", _masimo, 9600, 3.5, "Masimo Radical-7 / Rad-8 / Radical-5 ASCII serial, 1 line/s"
    ),
    "nonin-f2": ProtocolSpec(
        "nonin-f2",
        _nonin_f2,
        9600,
        2.0,
        "Nonin OEM III / 9560 / Xpod Data Format 2: 75 Hz frames, pleth waveform",
        numeric_period_s=1.0,
    ),
    "alaris-asena": ProtocolSpec(
        "alaris-asena",
        _alaris,
        38400,
        10.0,
        "BD Alaris Asena GH/CC infusion pump, read-only INF poll each second",
        read_timeout_s=0.25,
    ),
    "suntech-nibp": ProtocolSpec(
        "suntech-nibp",
        _suntech,
        9600,
        None,
        "SunTech Advantage OEM NIBP module: the gateway runs the cycle (default 5 min) and measure-now",
        read_timeout_s=0.2,
    ),
    "mqtt-json": ProtocolSpec(
        "mqtt-json", _mqtt_json, 0, 15.0, "a device publishing our JSON schema on its own MQTT topic"
    ),
}


def protocol(name: str) -> ProtocolSpec:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}") from None

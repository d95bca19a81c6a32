"""Which codec speaks which protocol name, at what line settings, and how long silence may last.

`--device NAME:PROTOCOL:URL` names a protocol from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from monitor.model import CodecEvent


class Codec(Protocol):
    frames_ok: int
    rejected: int

    def feed(self, data: bytes) -> list[CodecEvent]: ...

    def initial_commands(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    name: str
    make_codec: Callable[[], Codec]
    baudrate: int
    #: a device that says nothing for this long is reported offline ("no data")
    silence_timeout: float
    description: str


def _masimo() -> Codec:
    from monitor.devices.masimo_ascii import MasimoAsciiCodec

    return MasimoAsciiCodec()


PROTOCOLS: dict[str, ProtocolSpec] = {
    "masimo-ascii": ProtocolSpec(
        "masimo-ascii", _masimo, 9600, 3.5, "Masimo Radical-7 / Rad-8 / Radical-5 ASCII serial, 1 line/s"
    ),
}


def protocol(name: str) -> ProtocolSpec:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}") from None

"""`mqtt-json`: devices that publish JSON themselves, validated and normalised like any serial device.

The device publishes on a topic of its own (`--device NAME:mqtt-json:mqtt://HOST:PORT/its/topic`); the
gateway checks every message against the schema below, stamps it with our identity, time and sequence,
and republishes it on `kap/<site>/<room>/<device>/obs`, with the device's `status` (online while messages
arrive, offline after 15 s of silence). Bad messages are refused with a reason and counted; the good
measurements of a message are kept even when one of its measurements is refused.

Schema (one message = one reading):

    {"ts": "2026-11-24T14:03:07Z",                # optional, the device's clock (kept, not trusted)
     "measurements": [{"code": 150456, "value": 97, "unit": "%", "valid": true}],
     "conditions": ["low_perfusion"],             # optional, ids from monitor/conditions.py
     "mode": "running"}                            # optional
    or, for one measurement: {"code": 150456, "value": 97, "unit": "%"}

Sans-I/O: each `feed()` call is one whole MQTT message (the MQTT transport keeps message boundaries).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import ClassVar

import msgspec

from monitor import mdc
from monitor.conditions import CONDITION_TEXT
from monitor.model import CodecEvent, DeviceReading, Measurement, RejectedFrame

MAX_MESSAGE = 16 * 1024
MAX_CODE = 2**32 - 1  # an MDC code is 32 bits (partition << 16 | term)

#: plausible ranges of known measurements: a value outside is refused, not passed on
PLAUSIBLE: dict[int, tuple[float, float]] = {
    mdc.SPO2.code: (0, 100),
    mdc.PULSE_RATE.code: (0, 350),
    mdc.PERFUSION_INDEX.code: (0, 100),
    mdc.HEART_RATE.code: (0, 350),
    mdc.RESP_RATE.code: (0, 150),
    mdc.NIBP_SYS.code: (0, 350),
    mdc.NIBP_DIA.code: (0, 300),
    mdc.NIBP_MEAN.code: (0, 320),
    mdc.NIBP_PULSE_RATE.code: (0, 350),
    mdc.INFUSION_RATE.code: (0, 2000),
    mdc.VOLUME_INFUSED.code: (0, 10000),
    mdc.VTBI_REMAINING.code: (0, 10000),
}


class _Measurement(msgspec.Struct, forbid_unknown_fields=True):
    code: int
    value: float | None
    unit: str
    valid: bool = True


class _Reading(msgspec.Struct, forbid_unknown_fields=True):
    measurements: list[_Measurement]
    ts: str | None = None
    conditions: list[str] = []
    mode: str | None = None


_reading_decoder = msgspec.json.Decoder(_Reading)
_single_decoder = msgspec.json.Decoder(_Measurement)


class MqttJsonCodec:
    protocol: ClassVar[str] = "mqtt-json"

    def __init__(self) -> None:
        self.frames_ok = 0
        self.rejected = 0

    def initial_commands(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> list[CodecEvent]:
        events: list[CodecEvent] = []
        reading = self._decode(data, events)
        if reading is not None:
            self.frames_ok += 1
            events.append(reading)
        self.rejected += sum(isinstance(e, RejectedFrame) for e in events)
        return events

    def _decode(self, data: bytes, rejects: list[CodecEvent]) -> DeviceReading | None:
        def reject(reason: str) -> None:
            rejects.append(RejectedFrame(reason, data[:200]))

        if len(data) > MAX_MESSAGE:
            reject(f"oversized message: {len(data)} bytes > {MAX_MESSAGE}")
            return None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            reject(f"invalid UTF-8 at byte {exc.start}")
            return None
        try:
            if data.lstrip().startswith(b"{") and b'"measurements"' in data:
                parsed = _reading_decoder.decode(data)
            else:
                parsed = _Reading([_single_decoder.decode(data)])
        except msgspec.ValidationError as exc:
            reject(f"schema: {exc}")
            return None
        except msgspec.DecodeError as exc:
            reject(f"not JSON: {exc}")
            return None
        except RecursionError:  # msgspec's own limit on nesting, past anything a device sends
            reject("not JSON: nested too deeply")
            return None
        device_time = None
        if parsed.ts is not None:
            try:
                device_time = datetime.fromisoformat(parsed.ts.replace("Z", "+00:00"))
            except ValueError:
                reject(f"schema: ts {parsed.ts[:40]!r} is not an RFC 3339 time")
                return None
        unknown = [c for c in parsed.conditions if c not in CONDITION_TEXT]
        if unknown:
            reject(f"unknown condition {unknown[0]!r}")
            return None
        kept = []
        for m in parsed.measurements:
            problem = _check(m)
            if problem:
                reject(problem)
            else:
                kept.append(Measurement(m.code, m.value, m.unit, m.valid))
        if not kept and parsed.measurements:
            return None
        return DeviceReading(tuple(kept), frozenset(parsed.conditions), device_time, mode=parsed.mode)


def _check(m: _Measurement) -> str:
    if not 0 <= m.code <= MAX_CODE:
        return f"code {m.code} is not an MDC code (0..{MAX_CODE})"
    metric = mdc.BY_CODE.get(m.code)
    if metric is not None and m.unit != metric.unit:
        return f"wrong unit for {metric.ref_id}: {m.unit!r}, expected {metric.unit!r}"
    if m.value is None:
        return ""
    if not math.isfinite(m.value):
        return f"code {m.code}: value is not a finite number"
    low, high = PLAUSIBLE.get(m.code, (-math.inf, math.inf))
    if not low <= m.value <= high:
        return f"code {m.code}: value {m.value:g} outside {low:g}..{high:g}"
    return ""

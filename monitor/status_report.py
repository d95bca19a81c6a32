"""`kap-monitor status`: every device's retained status, with its counters, as a table.

It reads what the gateways keep retained on `kap/+/+/+/status`, so it needs no database and shows the
state of the whole clinic as the broker knows it now.
"""

from __future__ import annotations

import time

from monitor import wire
from monitor.bus import Broker, MqttLink
from monitor.conditions import condition_text
from monitor.model import DeviceStatus


def collect_statuses(broker: Broker, wait_s: float = 1.5) -> list[DeviceStatus]:
    """Retained statuses arrive right after subscribing; wait a moment for all of them."""
    found: dict[tuple[str, str, str], DeviceStatus] = {}

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        try:
            status = wire.decode_status(wire.parse_topic(topic), payload)
        except wire.WireError:
            return
        found[(status.site, status.room, status.device)] = status

    link = MqttLink(
        broker,
        f"kap-status-{time.monotonic_ns()}",
        subscriptions=[f"{wire.ROOT}/+/+/+/status"],
        on_message=on_message,
    ).start()
    try:
        if not link.wait_connected(5):
            if link.refused is not None:
                raise ConnectionError(f"the broker at {link.config} refused the connection: {link.refused}")
            raise ConnectionError(f"cannot reach the broker at {link.config}")
        time.sleep(wait_s)
    finally:
        link.stop()
    return [found[k] for k in sorted(found)]


def format_table(statuses: list[DeviceStatus]) -> str:
    if not statuses:
        return "no device has reported a status"
    header = (
        "SITE",
        "ROOM",
        "DEVICE",
        "PROTOCOL",
        "STATE",
        "MODE",
        "FRAMES OK",
        "REJECTED",
        "RECONNECTS",
        "CONDITIONS / REASON",
    )
    rows = [header]
    for s in statuses:
        notes = ", ".join(condition_text(c) for c in s.conditions) or s.reason
        rows.append(
            (
                s.site,
                s.room,
                s.device,
                s.protocol,
                s.state,
                s.mode or "-",
                str(s.counters.get("frames_ok", "-")),
                str(s.counters.get("rejected", "-")),
                str(s.counters.get("reconnects", "-")),
                notes or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    )

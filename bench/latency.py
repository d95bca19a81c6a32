"""1. Device byte to pixel: from a Masimo line written on a pty to the new SpO2 in the bedside page's DOM.

The whole product path, each part as its own process: the bench writes Masimo lines on ptys
(bench.devices) -> `kap-monitor gateway --config rooms.toml` -> mosquitto on loopback -> `kap-monitor
core` (recording into SQLite) and `kap-monitor web` -> the bedside page `/room/<room>` in headless
Chromium, where a MutationObserver stamps each change of `#spo2-value` (bench.browser). Every room sends
a line with a new SpO2 every 0.5 s; one page is open, on the measured room. Run with 1 room and with 20
rooms streaming (one gateway for all, as `--config` allows).
"""

from __future__ import annotations

import time
from typing import Any

from bench import browser as br
from bench.devices import MasimoRooms, Send, match_latencies
from bench.harness import ResourceSampler, Stack, dist
from monitor import mdc, wire
from monitor.bus import MqttLink

WARMUP_SENDS = 4


def measure_page(
    driver: Any,
    url: str,
    rooms: MasimoRooms,
    room: str,
    samples: int,
    element: str = "spo2-value",
    tail_s: float = 1.0,
    broker: str | None = None,
) -> dict[str, Any]:
    """Open `url`, wait for live values, then time `samples` sends of `room` to the DOM of `element`
    (waiting `tail_s` after the last send for it to show). With `broker`, a subscriber in this process
    also stamps each SpO2 observation of the room as the broker delivers it, which splits the latency
    into device -> gateway -> broker and broker -> web -> DOM."""
    tap = BrokerTap(broker, room).start() if broker else None
    driver.get(url)
    br.wait_until(lambda: (br.text_of(driver, element) or "").isdigit(), 60, f"a number in #{element}")
    br.install_observer(driver, element)
    time.sleep(WARMUP_SENDS * rooms.period)
    before = br.clock_offset(driver)
    br.take_stamps(driver)
    rooms.sends.clear()
    rooms.record(room)
    time.sleep(samples * rooms.period)
    rooms.record(room, False)
    time.sleep(tail_s)  # the last sends' way to the screen
    stamps = br.take_stamps(driver)
    after = br.clock_offset(driver)
    offset = (before.offset_s + after.offset_s) / 2
    matched = match_latencies(list(rooms.sends), stamps, offset)
    split: dict[str, Any] = {}
    if tap is not None:
        tap.stop()
        to_broker = tap.delays(list(rooms.sends))
        split = {"device_to_mqtt_subscriber_ms": dist(to_broker)}
    return split | {
        "sends": len(rooms.sends),
        "superseded": matched["superseded"],
        "never_shown": matched["never_shown"],
        "dom_ms": dist(matched["fresh"]),
        "next_frame_ms": dist(matched["fresh_frame"]),
        "exact_value_ms": dist(matched["exact"]),
        "dom_raw_ms": [round(x, 2) for x in matched["fresh"]],
        "clock_offset_ms": {
            "before": before.offset_s * 1000,
            "after": after.offset_s * 1000,
            "uncertainty": max(before.uncertainty_s, after.uncertainty_s) * 1000,
            "applied": offset * 1000,
        },
    }


class BrokerTap:
    """The room's SpO2 observations as an MQTT subscriber receives them: (value, time.time())."""

    def __init__(self, broker: str, room: str) -> None:
        self.arrivals: list[tuple[float, float]] = []
        self.link = MqttLink(
            broker,
            f"kap-bench-tap-{room}-{time.monotonic_ns()}",
            subscriptions=[f"kap/+/{room}/+/obs"],
            on_message=self._on_message,
        )

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        t = time.time()
        obs = wire.decode_observation(wire.parse_topic(topic), payload)
        if obs.code == mdc.SPO2.code and obs.value is not None:
            self.arrivals.append((obs.value, t))

    def start(self) -> BrokerTap:
        self.link.start()
        self.link.wait_connected(10)
        return self

    def stop(self) -> None:
        self.link.stop()

    def delays(self, sends: list[Send]) -> list[float]:
        """ms from each send to the first arrival of its value after it."""
        out = []
        for send in sends:
            hit = next((t for v, t in self.arrivals if v == send.value and t >= send.t), None)
            if hit is not None and hit - send.t < 5:
                out.append((hit - send.t) * 1000)
        return out


def run_product(n_rooms: int, samples: int) -> dict[str, Any]:
    """One stack of `n_rooms` bench-written Masimo rooms and one bedside page on the first."""
    with Stack(f"latency{n_rooms}") as st:
        broker = st.mosquitto()
        rooms = MasimoRooms(st.dir, n_rooms).start()
        st.on_close(rooms.stop)
        config = st.dir / "rooms.toml"
        config.write_text(rooms.rooms_toml())
        db = st.dir / "kap.sqlite"
        core = st.core(broker, db)
        web, url = st.web(broker, db)
        gateway = st.gateway(broker, config, expect=f"/{rooms.names[-1]}/oximeter")
        driver = br.new_driver()
        st.on_close(lambda: br.quit_driver(driver))
        procs = {"gateway": gateway.ps, "core": core.ps, "web": web.ps, "mosquitto": st.procs[0].ps}
        sampler = ResourceSampler(procs).start()
        result = measure_page(
            driver, f"{url}/room/{rooms.names[0]}", rooms, rooms.names[0], samples, broker=broker
        )
        result["processes"] = sampler.stop()
        result["rooms"] = n_rooms
        result.pop("dom_raw_ms", None)
        return result


def run(
    samples_one: int, samples_many: int, many: int = 20, one_room: dict[str, Any] | None = None
) -> dict[str, Any]:
    """1 room (taken from the baseline benchmark's stack when it ran in this session) and `many` rooms."""
    if one_room is None:
        one_room = run_product(1, samples_one)
        one_room["source"] = "own stack"
    else:
        one_room = dict(one_room, source="the baseline benchmark's stack (same 1-room setup)")
    return {"one_room": one_room, "many_rooms": run_product(many, samples_many)}

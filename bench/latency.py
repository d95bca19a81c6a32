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
from bench.devices import MasimoRooms, match_latencies
from bench.harness import ResourceSampler, Stack, dist

WARMUP_SENDS = 4


def measure_page(
    driver: Any,
    url: str,
    rooms: MasimoRooms,
    room: str,
    samples: int,
    element: str = "spo2-value",
    tail_s: float = 1.0,
) -> dict[str, Any]:
    """Open `url`, wait for live values, then time `samples` sends of `room` to the DOM of `element`
    (waiting `tail_s` after the last send for it to show)."""
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
    return {
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
        result = measure_page(driver, f"{url}/room/{rooms.names[0]}", rooms, rooms.names[0], samples)
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

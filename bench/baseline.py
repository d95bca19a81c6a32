"""2. The product's bedside page against a plain polling Dash page (bench.baseline_app), same stream.

One stack: a bench-written Masimo room (new SpO2 every 0.5 s), gateway, mosquitto, core, the product's
web process and the baseline app, with the room's event log pre-filled with 30 minutes of 1 Hz readings
(so both trends are full, as after half an hour of a session). The same headless Chromium then opens the
product's `/room/<room>` and measures device-to-DOM latency and the bytes it receives per second (DevTools
Network events, bench.browser), then does the same on the baseline's `/room/<room>`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import browser as br
from bench.devices import MasimoRooms
from bench.harness import PYTHON, ResourceSampler, Stack, free_port, median_iqr, wait_for_port
from bench.latency import measure_page
from monitor import mdc
from monitor.model import Observation
from monitor.store import EventLog

HISTORY_S = 30 * 60


def prefill_history(db: Path, room: str, seconds: int = HISTORY_S, site: str = "clinic") -> int:
    """`seconds` of 1 Hz oximeter readings ending now, appended through the product's EventLog."""
    log = EventLog(db)
    now = time.time()
    batch: list[Observation] = []
    seq = int((now - seconds - 10) * 1_000_000)  # below the gateway's, which start at its start time
    for i in range(seconds):
        ts = now - seconds + i
        for metric, value in (
            (mdc.SPO2, 95 + i % 4),
            (mdc.PULSE_RATE, 70 + i % 7),
            (mdc.PERFUSION_INDEX, 3.5),
        ):
            seq += 1
            batch.append(
                Observation(site, room, "oximeter", seq, ts, metric.code, float(value), metric.unit, True)
            )
    log.append(batch, now)
    log.close()
    return len(batch)


def run(samples: int, byte_windows: int, window_s: float) -> dict[str, Any]:
    with Stack("baseline") as st:
        broker = st.mosquitto()
        rooms = MasimoRooms(st.dir, 1).start()
        st.on_close(rooms.stop)
        room = rooms.names[0]
        config = st.dir / "rooms.toml"
        config.write_text(rooms.rooms_toml())
        db = st.dir / "kap.sqlite"
        prefilled = prefill_history(db, room)
        core = st.core(broker, db)
        web, url = st.web(broker, db)
        port = free_port()
        baseline = st.start(
            "baseline",
            [PYTHON, "-m", "bench.baseline_app", "--broker", broker, "--db", str(db), "--port", str(port)],
        )
        baseline.wait_for_output("baseline: http")
        wait_for_port(port)
        base_url = f"http://127.0.0.1:{port}"
        st.gateway(broker, config, expect=f"/{room}/oximeter")
        driver = br.new_driver()
        st.on_close(lambda: br.quit_driver(driver))
        out: dict[str, Any] = {"prefilled_observations": prefilled}
        for name, page, server, tail in (
            ("product", f"{url}/room/{room}", web, 1.0),
            ("baseline", f"{base_url}/room/{room}", baseline, 2.5),  # its 1 s poll included
        ):
            sampler = ResourceSampler({"server": server.ps, "core": core.ps}).start()
            latency = measure_page(driver, page, rooms, room, samples, tail_s=tail, broker=broker)
            received = br.page_bytes(driver, page, br.number_in("spo2-value"), window_s, byte_windows)
            latency["bytes_per_s"] = median_iqr([w["bytes_per_s"] for w in received["windows"]])
            latency["wire_bytes_per_s"] = median_iqr([w["wire_bytes_per_s"] for w in received["windows"]])
            latency["bytes"] = received
            latency["processes"] = sampler.stop()
            latency.pop("dom_raw_ms", None)
            out[name] = latency
        p, b = out["product"], out["baseline"]
        out["latency_p95_ratio"] = b["dom_ms"]["p95"] / p["dom_ms"]["p95"]
        out["latency_p50_ratio"] = b["dom_ms"]["p50"] / p["dom_ms"]["p50"]
        out["bytes_ratio"] = b["bytes_per_s"]["median"] / p["bytes_per_s"]["median"]
        out["wire_bytes_ratio"] = b["wire_bytes_per_s"]["median"] / p["wire_bytes_per_s"]["median"]
        return out

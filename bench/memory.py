"""7. Memory over a long session at high speed.

`kap-monitor simulate --rooms 20 --speed 60` (whole rooms playing the routine IV infusion 60 times faster:
one wall minute is a simulated hour of the patients and pumps; the devices still send at their real rates,
so the data per wall second is that of 20 real rooms) -> gateway --config -> mosquitto -> core and web,
with the bedside page of room1 and the home page open in headless Chromium for the whole run. The resident
memory (psutil RSS) of every process is sampled every 5 s. Reported per process: RSS at the start (after a
warm-up) and at the end, the growth, and the growth rate from a least-squares fit, per wall hour (what a
real session of that length adds at this data rate) and per simulated hour.

The warm-up (45 s in the full run) lets each SQLite connection's page cache (2 MiB by default) fill: with
20 rooms the log passes 2 MiB in well under a minute. Until then the cache grows with the file, a bounded
growth that a short run would otherwise extrapolate into a leak.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil

from bench import browser as br
from bench.harness import Stack
from bench.page_bytes import HOME_READY

ROOMS = 20
SPEED = 60.0
PRODUCT = ("gateway", "core", "web")


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB), in MiB per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 3600 * sum((t - mx) * (v - my) for t, v in points) / var if var else float("nan")


def run(duration_s: float, warmup_s: float = 20.0, interval_s: float = 5.0) -> dict[str, Any]:
    with Stack("memory") as st:
        broker = st.mosquitto()
        config = st.simulated_rooms(ROOMS, speed=SPEED)
        simulator = st.procs[-1]
        db = st.dir / "kap.sqlite"
        core = st.core(broker, db)
        web, url = st.web(broker, db)
        gateway = st.gateway(broker, config, expect=f"/room{ROOMS}/pump")
        driver = br.new_driver()
        st.on_close(lambda: br.quit_driver(driver))
        driver.get(f"{url}/room/room1")
        br.wait_until(lambda: driver.execute_script(br.number_in("spo2-value")), 60, "bedside values")
        driver.switch_to.new_window("window")
        driver.get(f"{url}/")
        br.wait_until(lambda: driver.execute_script(HOME_READY), 60, "home values")
        procs: dict[str, psutil.Process] = {
            "simulate": simulator.ps,
            "gateway": gateway.ps,
            "core": core.ps,
            "web": web.ps,
            "mosquitto": st.procs[0].ps,
        }
        time.sleep(warmup_s)
        t0 = time.monotonic()
        series: dict[str, list[tuple[float, float]]] = {name: [] for name in procs}
        while True:
            now = time.monotonic() - t0
            for name, p in procs.items():
                with contextlib.suppress(psutil.Error):
                    series[name].append((now, p.memory_info().rss / 2**20))
            if now >= duration_s:
                break
            time.sleep(min(interval_s, duration_s - now) if duration_s - now > 0.1 else 0.1)
        alive = {name: p.is_running() for name, p in procs.items()}
        events = _count_events(db)
        out: dict[str, Any] = {
            "rooms": ROOMS,
            "speed": SPEED,
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "simulated_hours": duration_s * SPEED / 3600,
            "events_stored": events,
            "processes": {},
        }
        for name, points in series.items():
            start, end = points[0][1], points[-1][1]
            slope = _slope_per_hour(points)
            out["processes"][name] = {
                "rss_start_mib": start,
                "rss_end_mib": end,
                "growth_mib": end - start,
                "growth_mib_per_wall_hour": slope,
                "growth_mib_per_sim_hour": slope / SPEED,
                "alive": alive[name],
                "series": [(round(t, 1), round(v, 2)) for t, v in points],
            }
        product = [out["processes"][p] for p in PRODUCT]
        out["product_growth_mib"] = sum(p["growth_mib"] for p in product)
        out["product_growth_mib_per_wall_hour"] = sum(p["growth_mib_per_wall_hour"] for p in product)
        return out


def _count_events(db: Any) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

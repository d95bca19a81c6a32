"""5. Bytes to the browser per bedside page per second (with the waveform) and per home page.

Whole simulated rooms (`kap-monitor simulate --rooms 4`: each a Nonin oximeter streaming its pleth, a
SunTech cuff, an Alaris pump, playing the routine IV infusion scenario in real time) -> gateway --config ->
mosquitto -> core and web. Headless Chromium opens the bedside page of room1, then the home page (4
rooms), each through a counting relay; over several windows it counts what the browser receives
(DevTools Network events of the page and of Dash's WebSocket SharedWorker; and the wire, bench.relay).
"""

from __future__ import annotations

from typing import Any

from bench import browser as br
from bench.harness import ResourceSampler, Stack, median_iqr

ROOMS = 4
HOME_READY = (
    "const e = document.querySelector('.room-card .room-spo2'); return !!e && /^[0-9]/.test(e.textContent);"
)


def summarise(measured: dict[str, Any]) -> dict[str, Any]:
    windows = measured["windows"]
    return {
        "bytes_per_s": median_iqr([w["bytes_per_s"] for w in windows]),
        "wire_bytes_per_s": median_iqr([w["wire_bytes_per_s"] for w in windows]),
        "ws_frames_per_s": median_iqr([w["ws_frames_per_s"] for w in windows]),
        "ws_deflate": measured["ws_deflate"],
        "windows": windows,
    }


def run(seconds: float, windows: int) -> dict[str, Any]:
    with Stack("bytes") as st:
        broker = st.mosquitto()
        config = st.simulated_rooms(ROOMS)
        db = st.dir / "kap.sqlite"
        core = st.core(broker, db)
        web, url = st.web(broker, db)
        st.gateway(broker, config, expect=f"/room{ROOMS}/pump")
        driver = br.new_driver()
        st.on_close(lambda: br.quit_driver(driver))
        sampler = ResourceSampler({"web": web.ps, "core": core.ps}).start()
        bedside = br.page_bytes(driver, f"{url}/room/room1", br.number_in("spo2-value"), seconds, windows)
        home = br.page_bytes(driver, f"{url}/", HOME_READY, seconds, windows)
        return {
            "rooms": ROOMS,
            "bedside": summarise(bedside),
            "home": summarise(home),
            "processes": sampler.stop(),
        }

"""6. Replay: opening a 4-hour session and scrubbing it.

The session: `simulators.recorded_session.record_session`, 4 hours of one patient written at speed into a
temporary SQLite file through the core's own recording path (store, alarm engine, ticks): SpO2, pulse and
PI each second, the pleth as 3 blocks of 25 samples a second, a cuff every 5 minutes (cuff pressure while
inflating), the pump each second, the desaturation scenario every 10 minutes (so ~150 alarm transitions),
a 40-minute infusion, assessments and a note: about 116,000 events.

Server side (in this process, the functions the page runs):
- `build`: indexing the session (`monitor.replay.ReplayModel`), from a file the OS has cached.
- `first_render`: what opening `/replay/<id>` costs the server before the page is complete: the index,
  the player's layout at the start (the bedside page at that time, with its timeline) serialised as Dash
  sends it, and the stream's first frame (numbers, alarms, notes, pleth, trend, session panel).
- `first_render_at_end`: the same opened at the last second (every series read whole).
- `scrub`: a jump to a random time: every panel but the timeline; its parts `scrub_frame` (numbers,
  alarms, notes, pleth, the 30-minute trend thinned to 900 points a trace: pushed first) and
  `scrub_session_panel` (who, dose, estimated concentration, doses, assessments due: computed beside);
  `timeline`: the session timeline at that time (drawn after the rest).

In Chromium (mosquitto, `kap-monitor web` on the file, signed in): `first_render`, from asking for
`/replay/<id>/<3 h in>` to the page showing its clock, numbers, alarm list, pleth, trend and timeline,
with the session not yet indexed (cold) and again (warm); `bedside_page`, the same for the room's
bedside page (the same three charts, nothing recorded to draw: what loading such a page costs anyway);
`scrub`, from clicking Go with a typed time to the page's clock and numbers showing it.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import dist
from monitor.layouts import replay as replay_page
from monitor.replay import ReplayModel, elapsed, session
from monitor.store import EventLog
from simulators.recorded_session import record_session

HOURS = 4.0
FIRST_RENDER_TARGET_S = 1.0
SCRUB_TARGET_S = 0.2
USER, PASSWORD = "bench", "bench-replay-1"


def _first_frame(model: ReplayModel, t: float) -> None:
    """What the page's stream computes and pushes for a frame at `t` (the timeline aside)."""
    replay_page.frame_props(model, t)
    replay_page.pleth_patch(model, t).to_plotly_json()
    replay_page.trend_patch(model, t, None, "follow-0").to_plotly_json()
    replay_page.session_props(model, t)


def _open(store: EventLog, session_id: int, at_end: bool) -> float:
    from dash._utils import to_json

    began = time.perf_counter()
    info = session(store, session_id)
    assert info is not None
    model = ReplayModel(store, info)
    at = model.end if at_end else model.start
    to_json(replay_page.player(model, "token", at))
    _first_frame(model, at)
    return time.perf_counter() - began


def server(db: Path, session_id: int, builds: int, scrubs: int) -> dict[str, Any]:
    store = EventLog(db)
    info = session(store, session_id)
    assert info is not None
    build = []
    for _ in range(builds):
        began = time.perf_counter()
        model = ReplayModel(store, info)
        build.append(time.perf_counter() - began)
    first = [_open(store, session_id, at_end=False) for _ in range(builds)]
    first_end = [_open(store, session_id, at_end=True) for _ in range(builds)]
    model = ReplayModel(store, info)
    rng = random.Random(6)
    frame, panel, scrub, timeline = [], [], [], []
    for _ in range(scrubs):
        t = model.start + rng.random() * model.duration
        began = time.perf_counter()
        replay_page.frame_props(model, t)
        replay_page.pleth_patch(model, t).to_plotly_json()
        replay_page.trend_patch(model, t, None, "follow-0").to_plotly_json()
        frame.append(time.perf_counter() - began)
        began = time.perf_counter()
        replay_page.session_props(model, t)
        panel.append(time.perf_counter() - began)
        scrub.append(frame[-1] + panel[-1])
        began = time.perf_counter()
        json.dumps(replay_page.timeline_figure(model, t, None), default=str)
        timeline.append(time.perf_counter() - began)
    counts = {"numeric_obs": sum(len(s) for s in model.series.values()), "pleth_blocks": model.pleth_blocks}
    return {
        "events": counts,
        "build_s": dist(build),
        "first_render_s": dist(first),
        "first_render_at_end_s": dist(first_end),
        "scrub_frame_s": dist(frame),
        "scrub_session_panel_s": dist(panel),
        "scrub_s": dist(scrub),
        "timeline_s": dist(timeline),
    }


def in_browser(db: Path, session_id: int, reopen: int, scrubs: int, room: str = "replay1") -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from bench import browser as br
    from bench.harness import Stack
    from monitor.users import UserStore

    # the benchmarks' account when bench.browser has one (its driver then signs in by itself)
    user, password = getattr(br, "BENCH_USER", USER), getattr(br, "BENCH_PASSWORD", PASSWORD)
    users = UserStore(db)
    try:
        users.ensure(user, "supervisor", password)
    finally:
        users.close()
    ready = (  # every panel drawn: clock, numbers, alarm list, pleth, trend and timeline with their traces
        "const g = id => document.querySelector('#' + id + ' .js-plotly-plot');"
        " const n = id => { const p = g(id); return p && p.data ? p.data.length : 0; };"
        " const c = document.getElementById('replay-clock');"
        " return !!c && c.textContent.includes(arguments[0]) && n('pleth') > 0 && n('trend') > 1"
        " && n('timeline') > 3 && !!document.getElementById('spo2-value')"
        " && !!document.getElementById('alarm-list');"
    )
    with Stack("replay") as stack:
        broker = stack.mosquitto()
        _, base = stack.web(broker, db)
        driver = br.new_driver()
        stack.on_close(lambda: br.quit_driver(driver))
        driver.get(base + "/")
        if "/signin" in driver.current_url:
            driver.find_element(By.ID, "signin-name").send_keys(user)
            driver.find_element(By.ID, "signin-password").send_keys(password)
            driver.find_element(By.ID, "signin-submit").click()
            br.wait_until(lambda: "/signin" not in driver.current_url, 15, "signed in")
        # the fixed cost of any page with these three charts: the bedside page of the room (no live data)
        plain = (
            "return ['pleth', 'trend', 'timeline'].every(id =>"
            " !!document.querySelector('#' + id + ' .js-plotly-plot'))"
            " && !!document.getElementById('spo2-value');"
        )
        bedside = []
        for _ in range(1 + reopen):
            began = time.perf_counter()
            driver.get(f"{base}/room/{room}")
            br.wait_until(lambda: driver.execute_script(plain), 30, "bedside page", 0.01)
            bedside.append(time.perf_counter() - began)
        opened = []
        for i in range(1 + reopen):  # opened at its last hour: a page full of data
            at = int(HOURS * 3600) - 3600 + i * 60
            began = time.perf_counter()
            driver.get(f"{base}/replay/{session_id}/{at}")
            shown = f"{elapsed(at)} of"
            br.wait_until(lambda s=shown: driver.execute_script(ready, s), 30, "replay page", poll=0.01)
            opened.append(time.perf_counter() - began)
        store = EventLog(db)
        info = session(store, session_id)
        assert info is not None
        rng = random.Random(7)
        duration = (info.ended_at or info.started_at) - info.started_at
        scrub = []
        for _ in range(scrubs):
            offset = int(rng.random() * (duration - 10)) + 5
            box = driver.find_element(By.ID, "replay-jump")
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(f"+{elapsed(offset)}", Keys.TAB)  # the field commits its value as focus leaves
            began = time.perf_counter()
            driver.find_element(By.ID, "replay-go").click()
            shown = f"{elapsed(offset)} of"
            br.wait_until(lambda s=shown: s in (br.text_of(driver, "replay-clock") or ""), 10, "scrub", 0.005)
            scrub.append(time.perf_counter() - began)
    return {
        "first_render_cold_s": opened[0],
        "first_render_warm_s": dist(opened[1:]),
        "bedside_page_s": dist(bedside[1:]),
        "scrub_s": dist(scrub),
    }


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kap-bench-replay-") as folder:
        db = Path(folder) / "kap.sqlite"
        began = time.perf_counter()
        recorded = record_session(EventLog(db), duration_s=HOURS * 3600)
        generated = time.perf_counter() - began
        result: dict[str, Any] = {
            "session": {
                "hours": HOURS,
                "events": recorded.events,
                "alarm_transitions": recorded.transitions,
                "generated_in_s": generated,
            },
            "server": server(db, recorded.session_id, 2 if quick else 5, 12 if quick else 50),
        }
        try:
            result["browser"] = in_browser(db, recorded.session_id, 2 if quick else 4, 5 if quick else 20)
        except Exception as exc:  # a machine without Chromium still gets the server figures
            result["browser"] = {"error": f"{type(exc).__name__}: {exc}"}
    s, b = result["server"], result["browser"]
    first = b.get("first_render_cold_s", s["first_render_s"]["max"])
    scrub = b["scrub_s"]["p95"] if "scrub_s" in b else s["scrub_s"]["p95"]
    met = first < FIRST_RENDER_TARGET_S and scrub < SCRUB_TARGET_S
    result["status"] = (
        f"4 h session: first render {first:.2f} s, scrub p95 {scrub * 1000:.0f} ms"
        f" (targets < {FIRST_RENDER_TARGET_S:g} s, < {SCRUB_TARGET_S * 1000:.0f} ms):"
        f" {'met' if met else 'missed'}"
    )
    result["why"] = (
        f"server: index {s['build_s']['p50']:.2f} s, scrub p95 {s['scrub_s']['p95'] * 1000:.0f} ms,"
        f" timeline p95 {s['timeline_s']['p95'] * 1000:.0f} ms"
    )
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2, default=str))

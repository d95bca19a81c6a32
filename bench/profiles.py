"""Profiles behind the missed targets, reproducible: `python -m bench.profiles [NAME...]`.

Needs py-spy and pyinstrument in the venv, for profiling only (they are not the project's dependencies):
`.venv/bin/pip install py-spy pyinstrument`. Writes bench/results/profiles/<name>.txt.

- ingest-nonin, ingest-masimo: pyinstrument over one codec + event log run (bench.ingest), pinned to a CPU.
- core-burst: py-spy on `kap-monitor core` while 60,000 observations arrive as fast as QoS 1 allows.
- stack-40: 40 whole rooms with 4 bedside pages and the home page open (as bench.capacity): CPU of every
  thread group of gateway, core and web (psutil per thread, named from `py-spy dump`), then py-spy on each.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import browser as br
from bench import ingest
from bench.harness import PYTHON, Stack
from bench.page_bytes import HOME_READY

OUT = Path(__file__).resolve().parent / "results" / "profiles"
PY_SPY = str(Path(PYTHON).parent / "py-spy")


def _need_py_spy() -> None:
    if not os.path.exists(PY_SPY):
        raise SystemExit(
            f"py-spy is not installed: {Path(PYTHON).parent / 'pip'} install py-spy pyinstrument"
        )


def fold_summary(path: Path, top: int = 40) -> str:
    """Inclusive and self shares of each function over all threads of a py-spy raw (folded) profile."""
    total = 0
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")[1:]
        if not frames:
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in frames:
            key = re.sub(r" \((.*?):\d+\)", r" (\1)", frame)
            if key not in seen:
                incl[key] += n
                seen.add(key)
        own[frames[-1]] += n
    skip = ("threading.py", "runpy", "<module>", "_bootstrap", "Thread.run")
    out = [f"{total} samples over all threads (py-spy; samples of running threads only)", "inclusive:"]
    out += [
        f"  {100 * c / total:5.1f} %  {k}" for k, c in incl.most_common(top) if not any(s in k for s in skip)
    ]
    out += ["self (with line):"]
    out += [f"  {100 * c / total:5.1f} %  {k}" for k, c in own.most_common(15)]
    return "\n".join(out)


def _spy(pid: int, seconds: int, path: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    args = ["record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate), "--format", "raw"]
    args += ["--output", str(path), "--threads", "--nonblocking"]
    return subprocess.Popen([PY_SPY, *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def ingest_profile(protocol: str) -> str:
    from pyinstrument import Profiler

    data = ingest.masimo_input(10_000) if protocol == "masimo" else ingest.nonin_input(10_000)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sorted(before)[-1]})
    try:
        with tempfile.TemporaryDirectory(dir=ingest._disk_dir()) as tmp:
            ingest.one_run(protocol, data, Path(tmp) / "warm.sqlite", alarms=False)
            profiler = Profiler(interval=0.0005)
            profiler.start()
            result = ingest.one_run(protocol, data, Path(tmp) / "profiled.sqlite", alarms=False)
            profiler.stop()
    finally:
        os.sched_setaffinity(0, before)
    rates = ", ".join(f"{k} {v:,.0f}" for k, v in result.items() if k.endswith("per_s"))
    return f"obs/s under the profiler (slower than unprofiled): {rates}\n\n" + profiler.output_text(
        unicode=False, color=False
    )


def core_burst(count: int = 60_000) -> str:
    _need_py_spy()
    with Stack("profile-core") as st:
        broker = st.mosquitto("max_queued_messages 0")
        db = st.dir / "kap.sqlite"
        core = st.core(broker, db)
        pub = st.start(
            "publisher",
            [PYTHON, "-m", "bench.publisher", "--broker", broker, "--count", str(count), "--go", str(st.dir)],
        )
        pub.wait_for_output("ready", timeout=60)
        folded = st.dir / "core.folded"
        spy = _spy(core.pid, 5, folded, rate=200)
        time.sleep(0.5)
        (st.dir / "go").touch()
        spy.wait()
        pub.wait_for_output("published", timeout=120)
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline:
            with sqlite3.connect(db, timeout=10) as conn:
                stored = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'obs'").fetchone()[0]
            if stored >= count:
                break
            time.sleep(0.5)
        head = (
            f"core receiving {count} observations over QoS 1 (stored {stored}); publisher:\n{pub.output()}\n"
        )
        return head + fold_summary(folded)


def _thread_names(pid: int) -> dict[str, str]:
    dump = subprocess.run(
        [PY_SPY, "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True
    )
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r'Thread (\d+) \((?:active|idle)[^)]*\): "([^"]*)"', dump.stdout)
    }


def _voluntary_switches(pid: int) -> int:
    """Voluntary context switches of all the threads of a process (each one is a thread going to sleep)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        total += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return total


def stack(rooms: int = 40, seconds: int = 15) -> str:
    _need_py_spy()
    with Stack(f"profile-stack{rooms}") as st:
        broker = st.mosquitto()
        config = st.simulated_rooms(rooms)
        db = st.dir / "kap.sqlite"
        core = st.core(broker, db)
        web, url = st.web(broker, db)
        gateway = st.gateway(broker, config, expect=f"/room{rooms}/pump")
        driver = br.new_driver()
        st.on_close(lambda: br.quit_driver(driver))
        for i, page in enumerate(("/room/room1", "/room/room2", "/room/room3", "/room/room4", "/")):
            if i:
                driver.switch_to.new_window("window")
            driver.get(url + page)
            ready = HOME_READY if page == "/" else br.number_in("spo2-value")
            br.wait_until(lambda r=ready: driver.execute_script(r), 60, page)
        time.sleep(3)
        procs = {"gateway": gateway, "core": core, "web": web}
        start = {
            name: {t.id: t.user_time + t.system_time for t in psutil.Process(p.pid).threads()}
            for name, p in procs.items()
        }
        switches = {name: _voluntary_switches(p.pid) for name, p in procs.items()}
        time.sleep(seconds)
        out = [f"{rooms} whole rooms, 4 bedside pages + home page open; {seconds} s window", ""]
        for name, p in procs.items():
            names = _thread_names(p.pid)
            groups: collections.Counter[str] = collections.Counter()
            for t in psutil.Process(p.pid).threads():
                used = t.user_time + t.system_time - start[name].get(t.id, 0.0)
                group = re.sub(r"room\d+", "room*", names.get(str(t.id), "?"))
                groups[re.sub(r"-[0-9a-f]{6}$|\d+$", "", group)] += used
            wakeups = (_voluntary_switches(p.pid) - switches[name]) / seconds
            busy = 100 * sum(groups.values()) / seconds
            out.append(
                f"{name}: {busy:.1f} % of a core, {wakeups:,.0f} voluntary context switches/s; by thread"
            )
            out.append("  group (% of a core):")
            out += [f"  {100 * used / seconds:5.1f} %  {group}" for group, used in groups.most_common(8)]
        spies = {name: _spy(p.pid, seconds, st.dir / f"{name}.folded") for name, p in procs.items()}
        for spy in spies.values():
            spy.wait()
        for name in procs:
            out += ["", f"== py-spy: {name}", fold_summary(st.dir / f"{name}.folded", 35)]
        return "\n".join(out)


PROFILES = {
    "ingest-nonin": lambda: ingest_profile("nonin"),
    "ingest-masimo": lambda: ingest_profile("masimo"),
    "core-burst": core_burst,
    "stack-40": lambda: stack(40),
}


def main(argv: list[str]) -> int:
    names = argv or list(PROFILES)
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        print(f"unknown profile {unknown}; known: {', '.join(PROFILES)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"profiling {name} ...", flush=True)
        text = PROFILES[name]()
        (OUT / f"{name}.txt").write_text(text + "\n")
        print(f"  -> {(OUT / f'{name}.txt').relative_to(OUT.parent.parent.parent)}", flush=True)
    shutil.rmtree(OUT / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What every benchmark shares: the machine line, statistics, and the real parts started as processes.

Nothing here is a mock: mosquitto is the system's broker on a free loopback port, the product runs as
`python -m monitor.cli ...` sub-processes (as a clinic runs it), and the browser is the system's headless
Chromium driven by selenium. Each part is stopped by its own process id (its process group), never by
name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# ---- the machine ----------------------------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


def machine() -> dict[str, Any]:
    """The line every result carries: cores, memory, CPU model, and the versions that matter."""
    meminfo = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            meminfo[key] = rest.strip()
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    mem_kb = int(meminfo.get("MemTotal", "0 kB").split()[0])
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--", "monitor", "simulators"])
    return {
        "nproc": int(_first_line(["nproc"]) or os.cpu_count() or 0),
        "mem_total_kb": mem_kb,
        "mem_total_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "chromium": _first_line([shutil.which("chromium") or "chromium", "--version"]).replace(
            "/usr/bin/chromium: 9: [: ", ""
        ),
        "mosquitto": _first_line([mosquitto_binary(), "-h"]),
        "commit": commit + ("+dirty" if dirty not in ("", "?") else ""),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['nproc']} cores (nproc), {m['mem_total_gib']} GiB (MemTotal {m['mem_total_kb']} kB), "
        f"{m['cpu_model']}; Linux {m['kernel']}, Python {m['python']}, commit {m['commit']}"
    )


# ---- statistics -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in 0..100."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def dist(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/max (and min, n) of a sample: the spread the table shows for latencies."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
        "min": min(values) if values else math.nan,
    }


def median_iqr(values: Sequence[float]) -> dict[str, float]:
    """Median and inter-quartile range over runs: the spread the table shows for throughputs."""
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "q1": percentile(values, 25),
        "q3": percentile(values, 75),
        "iqr": percentile(values, 75) - percentile(values, 25),
        "runs": list(values),
    }


# ---- ports and processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else ""
    )
    if not found:
        raise RuntimeError("mosquitto is not installed (make bench installs it with apt)")
    return found


#: the simulated rooms' priority (they stand in for devices, which are other machines in a clinic)
SIMULATOR_NICE = 10


class StartupFailed(RuntimeError):
    """A process said it cannot work while it was starting."""


@dataclass
class Proc:
    """A child process in its own process group, its output in a log file."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Proc:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=self.env,
        )
        self.ps = psutil.Process(self.process.pid)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0, fail_on: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return
            if fail_on and fail_on in out:
                raise StartupFailed(f"{self.name} printed {fail_on!r} while starting:\n{out[-3000:]}")
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.output()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not print {text!r} in {timeout} s:\n{self.output()[-3000:]}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


class Stack:
    """The processes of one benchmark run, in a temporary directory; stopped in reverse order."""

    def __init__(self, label: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"kap-bench-{label}-"))
        self.procs: list[Proc] = []
        self._cleanups: list[Any] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        self._cleanups.clear()
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def on_close(self, fn: Any) -> None:
        self._cleanups.append(fn)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, self.dir / f"{name}.log", env).start()
        self.procs.append(proc)
        return proc

    def kap(self, name: str, *args: str, nice: int = 0) -> Proc:
        """A `kap-monitor` sub-command, as a clinic runs it (WARNING logs: INFO lines are not the product's
        steady-state cost), at a lower priority when `nice` is given."""
        command = [PYTHON, "-m", "monitor.cli", "--log-level", "WARNING", *args]
        return self.start(name, ["nice", "-n", str(nice), *command] if nice else command)

    def mosquitto(self, *extra: str) -> str:
        """mosquitto on a free loopback port, as tests/conftest.py starts it (plus `extra` config lines)."""
        port = free_port()
        conf = self.dir / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", *extra]
        conf.write_text("\n".join(lines) + "\n")
        self.start("mosquitto", [mosquitto_binary(), "-c", str(conf)])
        wait_for_port(port)
        return f"127.0.0.1:{port}"

    def core(self, broker: str, db: Path) -> Proc:
        proc = self.kap("core", "core", "--broker", broker, "--db", str(db))
        proc.wait_for_output("core: recording")
        return proc

    def web(self, broker: str, db: Path) -> tuple[Proc, str]:
        """`kap-monitor web` on a free port, with the benchmark's account in `db` (bench.browser signs in)."""
        from bench.browser import BENCH_PASSWORD, BENCH_USER
        from monitor.users import UserStore

        users = UserStore(db)
        try:
            users.ensure(BENCH_USER, "supervisor", BENCH_PASSWORD)
        finally:
            users.close()
        port = free_port()
        proc = self.kap("web", "web", "--broker", broker, "--db", str(db), "--port", str(port))
        proc.wait_for_output("dashboard: http", timeout=60)
        return proc, f"http://127.0.0.1:{port}"

    def simulated_rooms(
        self, rooms: int, *, speed: float = 1.0, scenario: str = "routine-iv-infusion"
    ) -> Path:
        """`kap-monitor simulate --rooms N`: N whole rooms (Nonin oximeter with pleth, SunTech cuff, Alaris
        pump) in one simulator process; returns the rooms.toml it wrote. It stands in for the devices,
        which are not on the server in a clinic, so it runs at a lower priority (nice 10): on this 2-core
        machine it would otherwise take CPU from the product being measured (its cuff and pump simulators
        poll their ports every 5 ms: about a third of a core for 40 rooms)."""
        link_dir = self.dir / "links"
        proc = self.kap(
            "simulate",
            "simulate",
            "--rooms",
            str(rooms),
            "--link-dir",
            str(link_dir),
            "--scenario",
            scenario,
            "--speed",
            f"{speed:g}",
            "--seed",
            "1",
            nice=SIMULATOR_NICE,
        )
        proc.wait_for_output(f"simulating {rooms} rooms", timeout=120)
        return link_dir / "rooms.toml"

    def gateway(self, broker: str, config: Path, expect: str, fail_on: str | None = None) -> Proc:
        name = "gateway" if not any(p.name == "gateway" for p in self.procs) else f"gateway{len(self.procs)}"
        proc = self.kap(name, "gateway", "--broker", broker, "--config", str(config))
        proc.wait_for_output(expect, timeout=90, fail_on=fail_on)
        return proc


# ---- resource sampling ----------------------------------------------------------------------------------


class ResourceSampler:
    """CPU (percent of ONE core, summed over threads) and resident memory of named processes, sampled in a
    background thread every `interval` seconds."""

    def __init__(self, procs: dict[str, psutil.Process], interval: float = 1.0) -> None:
        self.procs = procs
        self.interval = interval
        self.cpu: dict[str, list[float]] = {name: [] for name in procs}
        self.rss: dict[str, list[int]] = {name: [] for name in procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")
        self._t0 = 0.0
        self._cpu_times0: dict[str, float] = {}

    def _cpu_time(self, p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def start(self) -> ResourceSampler:
        self._t0 = time.monotonic()
        for name, p in self.procs.items():
            self._cpu_times0[name] = self._cpu_time(p)
            p.cpu_percent(None)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, p in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.cpu[name].append(p.cpu_percent(None))
                    self.rss[name].append(p.memory_info().rss)

    def stop(self) -> dict[str, dict[str, float]]:
        """Per process: mean CPU over the whole window (from CPU times), its per-second p95 and max, RSS."""
        self._stop.set()
        self._thread.join(timeout=5)
        elapsed = time.monotonic() - self._t0
        out: dict[str, dict[str, float]] = {}
        for name, p in self.procs.items():
            try:
                used = self._cpu_time(p) - self._cpu_times0[name]
                rss = p.memory_info().rss
            except psutil.Error:
                used, rss = math.nan, 0
            samples = self.cpu[name]
            out[name] = {
                "cpu_mean_pct": 100 * used / elapsed if elapsed else math.nan,
                "cpu_p95_pct": percentile(samples, 95) if samples else math.nan,
                "cpu_max_pct": max(samples) if samples else math.nan,
                "rss_mib": rss / 2**20,
            }
        return out


def system_cpu_pct(fn: Any) -> tuple[Any, float]:
    """Run fn() and return (its result, the whole machine's busy CPU in percent of all cores)."""
    before = psutil.cpu_times()
    result = fn()
    after = psutil.cpu_times()
    busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
    total = lambda t: busy(t) + t.idle + t.iowait  # noqa: E731
    d_total = total(after) - total(before)
    return result, 100 * (busy(after) - busy(before)) / d_total if d_total else math.nan


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)


class ForeignLoad:
    """CPU used on this machine by processes that are not this benchmark's (another user's tests, a
    demo...): they share the 2 cores and disturb the figures, so each benchmark reports it."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._wall0 = time.time()
        self._before = self._snapshot()

    @staticmethod
    def _ours() -> set[int]:
        me = psutil.Process()
        try:
            return {me.pid, *(p.pid for p in me.children(recursive=True))}
        except psutil.Error:
            return {me.pid}

    def _snapshot(self) -> dict[tuple[int, float], tuple[float, str]]:
        ours = self._ours()
        out: dict[tuple[int, float], tuple[float, str]] = {}
        for p in psutil.process_iter(["pid", "create_time", "cpu_times", "name", "cmdline"]):
            if p.info["pid"] in ours or p.info["cpu_times"] is None:
                continue
            t = p.info["cpu_times"]
            label = " ".join((p.info["cmdline"] or [p.info["name"] or "?"])[:3])[-80:]
            out[(p.info["pid"], p.info["create_time"])] = (t.user + t.system, label)
        return out

    def stop(self) -> dict[str, Any]:
        """Foreign CPU over the window as % of the whole machine, and the busiest foreign processes."""
        elapsed = time.monotonic() - self._t0
        after = self._snapshot()
        ours = self._ours()
        used: dict[str, float] = {}
        for key, (cpu, label) in after.items():
            if key[0] in ours:
                continue
            if key in self._before:
                delta = cpu - self._before[key][0]
            elif key[1] >= self._wall0 - 1:  # started during the window: all its CPU is in it
                delta = cpu
            else:  # was ours at the start (a child since reparented): not foreign
                continue
            if delta > 0:
                used[label] = used.get(label, 0.0) + delta
        cores = os.cpu_count() or 1
        total = sum(used.values())
        top = sorted(used.items(), key=lambda kv: -kv[1])[:3]
        return {
            "pct_of_machine": 100 * total / elapsed / cores if elapsed else math.nan,
            "top": [{"process": k, "pct_of_one_core": round(100 * v / elapsed, 1)} for k, v in top],
            "loadavg": os.getloadavg(),
        }


def wait_for_quiet(max_wait_s: float = 20.0, threshold_pct: float = 10.0) -> dict[str, float]:
    """Before measuring: wait (at most `max_wait_s`) until other processes use under `threshold_pct` % of
    the machine over a 2 s look. Returns how long it waited and the last load seen."""
    t0 = time.monotonic()
    while True:
        look = ForeignLoad()
        time.sleep(2.0)
        load = look.stop()["pct_of_machine"]
        waited = time.monotonic() - t0
        if load < threshold_pct or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "foreign_pct_of_machine": round(load, 1)}

"""`python -m bench [--quick] [NAME...]`: run the benchmarks, print the table, write bench/results/.

Names: latency (1), baseline (2), ingest (3), capacity (4), bytes (5), replay (6), memory (7). Without a
name every benchmark runs. `--quick` runs each briefly (about 2 minutes in all): fewer samples, shorter
windows, capacity at 10 rooms only; use it to see that everything works, not for the figures.
The results go to bench/results/latest.json and a dated copy next to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import ForeignLoad, machine, wait_for_quiet

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Settings:
    """How much of each benchmark to run: the full run fits in about 12 minutes on 2 cores."""

    latency_samples_one: int
    latency_samples_many: int
    baseline_samples: int
    baseline_windows: int
    baseline_window_s: float
    ingest_runs: int
    ingest_lines: int
    mqtt_runs: int
    mqtt_count: int
    bytes_windows: int
    bytes_window_s: float
    capacity_sizes: tuple[int, ...]
    capacity_samples: int
    memory_s: float
    memory_warmup_s: float
    replay_quick: bool


FULL = Settings(
    latency_samples_one=60,
    latency_samples_many=80,
    baseline_samples=40,
    baseline_windows=3,
    baseline_window_s=4.0,
    ingest_runs=5,
    ingest_lines=10_000,
    mqtt_runs=3,
    mqtt_count=50_000,
    bytes_windows=3,
    bytes_window_s=6.0,
    capacity_sizes=(10, 40, 70, 100),
    capacity_samples=24,
    memory_s=120.0,
    memory_warmup_s=35.0,
    replay_quick=False,
)
QUICK = Settings(
    latency_samples_one=16,
    latency_samples_many=16,
    baseline_samples=12,
    baseline_windows=2,
    baseline_window_s=1.5,
    ingest_runs=2,
    ingest_lines=4_000,
    mqtt_runs=1,
    mqtt_count=10_000,
    bytes_windows=2,
    bytes_window_s=2.0,
    capacity_sizes=(10,),
    capacity_samples=12,
    memory_s=15.0,
    memory_warmup_s=5.0,
    replay_quick=True,
)


def _baseline(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import baseline

    result = baseline.run(s.baseline_samples, s.baseline_windows, s.baseline_window_s)
    shared["one_room"] = result["product"]
    return result


def _latency(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import latency

    return latency.run(s.latency_samples_one, s.latency_samples_many, one_room=shared.get("one_room"))


def _ingest(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import ingest

    return {
        "codec_and_store": ingest.codec_and_store(s.ingest_runs, s.ingest_lines, s.ingest_lines),
        "mqtt": ingest.mqtt_to_stored(s.mqtt_runs, s.mqtt_count),
    }


def _capacity(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import capacity

    return capacity.run(list(s.capacity_sizes), s.capacity_samples)


def _bytes(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import page_bytes

    return page_bytes.run(s.bytes_window_s, s.bytes_windows)


def _replay(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import replay

    return replay.run(quick=s.replay_quick)


def _memory(s: Settings, shared: dict[str, Any]) -> dict[str, Any]:
    from bench import memory

    return memory.run(s.memory_s, s.memory_warmup_s)


#: in the order they run (baseline first: its 1-room stack also gives benchmark 1 its 1-room figure)
BENCHMARKS: dict[str, Callable[[Settings, dict[str, Any]], dict[str, Any]]] = {
    "baseline": _baseline,
    "latency": _latency,
    "ingest": _ingest,
    "bytes": _bytes,
    "replay": _replay,
    "capacity": _capacity,
    "memory": _memory,
}
#: in the order of the table (the issue's numbering)
TABLE_ORDER = ("latency", "baseline", "ingest", "capacity", "bytes", "replay", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(TABLE_ORDER)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run (about 2 minutes) to check it all works"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(TABLE_ORDER)}")
    selected = [n for n in BENCHMARKS if not args.names or n in args.names]
    settings = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    info = machine()
    print(f"machine: {report.machine_line(info)}", flush=True)
    started = time.monotonic()
    shared: dict[str, Any] = {}
    results: dict[str, Any] = {}
    durations: dict[str, float] = {}
    foreign: dict[str, Any] = {}
    for name in selected:
        quiet = wait_for_quiet() if name != "replay" else {"waited_s": 0.0, "foreign_pct_of_machine": 0.0}
        print(f"[{time.monotonic() - started:6.0f} s] {name} ... (machine: {quiet})", flush=True)
        t0 = time.monotonic()
        load = ForeignLoad()
        try:
            results[name] = BENCHMARKS[name](settings, shared)
        except Exception:
            results[name] = {"error": traceback.format_exc()}
            print(results[name]["error"], file=sys.stderr, flush=True)
        durations[name] = time.monotonic() - t0
        foreign[name] = load.stop() | {"before": quiet}
        print(
            f"[{time.monotonic() - started:6.0f} s] {name} done in {durations[name]:.0f} s"
            f" (other processes used {foreign[name]['pct_of_machine']:.0f} % of the machine meanwhile)",
            flush=True,
        )
    rows = [row for name in TABLE_ORDER if name in results for row in report.rows_for(name, results[name])]
    elapsed = time.monotonic() - started
    table = report.render(info, mode, rows, elapsed, foreign)
    print()
    print(table)
    when = datetime.now().astimezone()
    document = {
        "when": when.isoformat(timespec="seconds"),
        "mode": mode,
        "selected": selected,
        "machine": info,
        "settings": settings.__dict__,
        "seconds": elapsed,
        "durations_s": durations,
        "foreign_load": foreign,
        "table": table.splitlines(),
        "rows": report.as_json(rows),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(document, indent=1, default=str) + "\n"
    dated = RESULTS / f"{when.strftime('%Y-%m-%dT%H%M%S')}-{mode}.json"
    dated.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    print(f"\nwritten: {dated.relative_to(RESULTS.parent.parent)} and bench/results/latest.json")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Simulated Masimo oximeters whose every line the benchmark writes itself, so it knows when each left.

Each room is a `simulators.pty_link.PtyLink` (the simulators' serial cable) and the bytes are the
simulators' own `simulators.masimo.format_masimo_line`. One thread writes every room: each room sends a
line every `period` seconds, the rooms' phases spread evenly over the period, and every line carries a
new SpO2 (80..99 in turn, so two consecutive values always differ and a value comes back only after 20
lines). The send time of a line is `time.time()` read just before the `os.write` to the pty master.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from simulators.masimo import format_masimo_line
from simulators.physiology import Vitals
from simulators.pty_link import PtyLink

SPO2_CYCLE = tuple(range(80, 100))


@dataclass(frozen=True, slots=True)
class Send:
    room: str
    value: int
    t: float  # time.time() just before the write


class MasimoRooms:
    def __init__(
        self, directory: Path, count: int, *, period: float = 0.5, jitter: float = 0.2, prefix: str = "mroom"
    ) -> None:
        self.period = period
        self.jitter = jitter
        self.names = [f"{prefix}{i + 1}" for i in range(count)]
        self.links = {name: PtyLink(directory / f"{name}-ox") for name in self.names}
        self.sends: list[Send] = []
        self._record: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="masimo-rooms")
        self._index = dict.fromkeys(self.names, 0)

    def rooms_toml(self, site: str = "clinic") -> str:
        lines = [f'site = "{site}"']
        for name, link in self.links.items():
            lines += ["", "[[room]]", f'name = "{name}"', f'devices = ["oximeter:masimo-ascii:{link.link}"]']
        return "\n".join(lines) + "\n"

    def start(self) -> MasimoRooms:
        self._thread.start()
        return self

    def record(self, room: str, on: bool = True) -> None:
        """Keep the send times of `room` from now on (or stop keeping them)."""
        (self._record.add if on else self._record.discard)(room)

    def _line(self, room: str) -> tuple[int, bytes]:
        value = SPO2_CYCLE[self._index[room] % len(SPO2_CYCLE)]
        self._index[room] += 1
        return value, format_masimo_line(Vitals(spo2=value, pulse=72, pi=3.5), datetime.now())

    def _run(self) -> None:
        # each room keeps its own schedule: a line every period +- `jitter` (uniform), so the sends fall at
        # every phase of whatever the rest of the system does periodically (the baseline's 1 s poll)
        rng = random.Random(7)
        n = len(self.names)
        first = time.monotonic() + 0.05
        due = [(first + i * self.period / n, name) for i, name in enumerate(self.names)]
        heapq.heapify(due)
        while not self._stop.is_set():
            when, name = heapq.heappop(due)
            delay = when - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            value, line = self._line(name)
            t = time.time()
            try:
                self.links[name].write(line)
            except BlockingIOError:
                pass  # nobody reads: the line is lost, as on a serial line
            else:
                if name in self._record:
                    self.sends.append(Send(name, value, t))
            step = self.period * (1 + rng.uniform(-self.jitter, self.jitter))
            heapq.heappush(due, (max(when + step, time.monotonic()), name))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for link in self.links.values():
            link.close()


def match_latencies(sends: list[Send], stamps: list[dict[str, object]], offset_s: float) -> dict[str, object]:
    """Match the page's DOM changes to the sends.

    A change shows the latest send of its value before it (values come back only every 20 sends). For
    each send: `exact`, the time until its own value appeared (missing when a newer value replaced it
    first, as a 1 s poll does to a reading sent every 0.5 s); `fresh`, the time until the screen showed it
    or anything newer: how stale the screen is behind the device, the figure compared. In ms, DOM times,
    and `fresh_frame` the same up to the next animation frame after the change.
    """
    changes = sorted(
        ((float(s["t"]) / 1000 - offset_s, s.get("f"), str(s["v"])) for s in stamps), key=lambda c: c[0]
    )
    shown: list[tuple[float, float | None, int]] = []  # (DOM time, frame time, index of the send shown)
    for t, f, value in changes:
        index = next(
            (i for i in range(len(sends) - 1, -1, -1) if str(sends[i].value) == value and sends[i].t <= t),
            None,
        )
        if index is not None:
            shown.append((t, None if f is None else float(f) / 1000 - offset_s, index))
    exact: list[float] = []
    fresh: list[float] = []
    fresh_frame: list[float] = []
    never = 0
    for i, send in enumerate(sends):
        own = next((c for c in shown if c[2] == i), None)
        if own is not None:
            exact.append((own[0] - send.t) * 1000)
        newer = next((c for c in shown if c[2] >= i), None)
        if newer is None:
            never += 1
            continue
        fresh.append((newer[0] - send.t) * 1000)
        if newer[1] is not None:
            fresh_frame.append((newer[1] - send.t) * 1000)
    return {
        "exact": exact,
        "fresh": fresh,
        "fresh_frame": fresh_frame,
        "superseded": len(sends) - len(exact),
        "never_shown": never,
    }

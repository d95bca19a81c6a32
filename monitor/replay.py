"""A recorded session, indexed once, so any moment of it can be shown as the live screens showed it.

Replay is a projection of the same event log with a virtual clock: the state at replay time `t` is what
the web had received by `t` (each event's `received_at`), folded by the live `RoomState` and rendered by
the live view functions with `now = t`. Nothing here decides what a screen shows; it only answers "what
had been recorded by then", fast enough for a 4-hour session:

- numerics are columns (numpy arrays per MDC code: time, receipt, value, validity), so the reading in
  force at `t` is a binary search, with a running "newest by (ts, seq)" index giving exactly the
  observation `RoomState.apply` would have kept;
- waveform blocks (75 samples a second) are indexed by row id and time, their samples read from the log
  only for the few seconds on screen;
- status changes, clinical events and alarm transitions are few (hundreds in hours) and are folded in log
  order: the alarms shown are the transitions the core recorded, never recomputed;
- long series are downsampled for display with min/max per bin (tsdownsample), so a dip or a spike is
  never thinned away, and a zoomed window is re-read at full resolution.

`ReplayCursor` is where a viewer is (position, play/pause, speed, zoom); the page's stream follows it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor import mdc
from monitor.downsample import minmax_indices
from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation
from monitor.store import EventLog, _observation_from_row
from monitor.views import RoomState

PLETH = mdc.PLETH.code
#: the pump's counters, read as their changes by the dose projections (see LogAt)
PUMP_COUNTERS = frozenset({mdc.INFUSION_RATE.code, mdc.VOLUME_INFUSED.code})
SPEEDS = (1, 4, 16, 60)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One row of the sessions table: a patient's session, or a room's recording without a patient."""

    session_id: int
    site: str
    room: str
    started_at: float
    ended_at: float | None
    patient_code: str
    protocol: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        code = self.patient_code or "no patient"
        day = datetime.fromtimestamp(self.started_at).strftime("%Y-%m-%d %H:%M")
        return f"{self.room} · {day} · {code}"


def _read_only(store: EventLog) -> sqlite3.Connection:
    """A connection of our own: replay only reads, from whichever thread serves the page."""
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    return conn


def sessions(store: EventLog, session_id: int | None = None) -> list[SessionInfo]:
    """Every recorded session (or the one asked for), newest first, with its patient code and plan."""
    return [
        SessionInfo(r.id, r.site, r.room, r.started_at, r.ended_at, r.patient_code or "", r.protocol or {})
        for r in store.session_records(session_id)
    ]


def session(store: EventLog, session_id: int) -> SessionInfo | None:
    return next(iter(sessions(store, session_id)), None)


def filter_sessions(
    found: Iterable[SessionInfo], room: str | None = None, day: str | None = None, code: str | None = None
) -> list[SessionInfo]:
    """The sessions of a room, a day (YYYY-MM-DD, local) and a patient code (a part of it, any case)."""
    out = []
    for s in found:
        if room and s.room != room:
            continue
        if day and datetime.fromtimestamp(s.started_at).strftime("%Y-%m-%d") != day.strip():
            continue
        if code and code.strip().lower() not in s.patient_code.lower():
            continue
        out.append(s)
    return out


class Series:
    """One MDC code's observations of a session, in log order, as columns."""

    def __init__(self, site: str, room: str, code: int, rows: Sequence[tuple]) -> None:  # type: ignore[type-arg]
        self.site, self.room, self.code = site, room, code
        devices, seqs, ts, values, units, valid, conditions, received = zip(*rows, strict=True)
        self.devices: tuple[str, ...] = devices
        self.units: tuple[str, ...] = units
        self.conditions: tuple[tuple[str, ...], ...] = tuple(
            tuple(json.loads(c)) if c else () for c in conditions
        )
        self.seq = np.asarray(seqs, dtype=np.int64)
        self.ts = np.asarray(ts, dtype=np.float64)
        self.value = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
        self.has_value = np.asarray([v is not None for v in values], dtype=bool)
        self.valid = np.asarray(valid, dtype=bool)
        # receipt times only grow in a log written by one core; the running max keeps a search exact if not
        self.received = np.maximum.accumulate(np.asarray(received, dtype=np.float64))
        self._ts_sorted = np.maximum.accumulate(self.ts)
        self.best = _running_newest(self.ts, self.seq)
        #: a reading that differs from the one before it of its series (value, validity or device)
        self.changes = np.ones(len(self.ts), dtype=bool)
        self.changes[1:] = (
            (self.value[1:] != self.value[:-1])
            | (self.valid[1:] != self.valid[:-1])
            | (self.has_value[1:] != self.has_value[:-1])
            | (np.asarray(devices[1:], dtype=object) != np.asarray(devices[:-1], dtype=object))
        )
        self._objects: list[Observation] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ts)

    def observation(self, i: int) -> Observation:
        """The i-th as an Observation (one alone when the run up to it has not been made yet)."""
        if i < len(self._objects):
            return self._objects[i]
        return Observation(
            self.site,
            self.room,
            self.devices[i],
            int(self.seq[i]),
            float(self.ts[i]),
            self.code,
            float(self.value[i]) if self.has_value[i] else None,
            self.units[i],
            bool(self.valid[i]),
            None,
            self.conditions[i],
        )

    def objects(self, upto: int) -> list[Observation]:
        """The first `upto` as Observations, made once (from plain lists: numpy scalars are slow)."""
        with self._lock:
            made = len(self._objects)
            if made < upto:
                site, room, code = self.site, self.room, self.code
                ts, seq = self.ts[made:upto].tolist(), self.seq[made:upto].tolist()
                values, valid = self.value[made:upto].tolist(), self.valid[made:upto].tolist()
                has_value = self.has_value[made:upto].tolist()
                self._objects += [
                    Observation(
                        site,
                        room,
                        self.devices[i],
                        seq[k],
                        ts[k],
                        code,
                        values[k] if has_value[k] else None,
                        self.units[i],
                        valid[k],
                        None,
                        self.conditions[i],
                    )
                    for k, i in enumerate(range(made, upto))
                ]
            return self._objects

    def received_by(self, t: float) -> int:
        """How many of them had been received at `t`."""
        return int(np.searchsorted(self.received, t, side="right"))

    def latest(self, t: float) -> Observation | None:
        """The observation `RoomState` would hold at `t`: the newest by (ts, seq) of those received."""
        n = self.received_by(t)
        return self.observation(int(self.best[n - 1])) if n else None

    def span(self, t: float, since: float | None, until: float | None = None) -> tuple[int, int]:
        """Index range of those received by `t` and measured within [since, until]."""
        hi = self.received_by(t)
        lo = 0 if since is None else int(np.searchsorted(self._ts_sorted[:hi], since, side="left"))
        if until is not None:
            hi = min(hi, int(np.searchsorted(self._ts_sorted[:hi], until, side="right")))
        return lo, max(lo, hi)

    def window(
        self,
        t: float,
        since: float | None,
        until: float | None = None,
        max_points: int | None = None,
        changes_only: bool = False,
    ) -> list[Observation]:
        lo, hi = self.span(t, since, until)
        made = self.objects(hi)
        if changes_only and hi - lo > 2:  # the first, each change, and the last (the latest time)
            kept = (lo + 1 + np.flatnonzero(self.changes[lo + 1 : hi - 1])).tolist()
            return [made[lo], *(made[i] for i in kept), made[hi - 1]]
        if max_points is None or hi - lo <= max_points:
            return made[lo:hi]
        shown = np.where(self.valid[lo:hi], self.value[lo:hi], np.nan)
        return [made[i] for i in (lo + minmax_indices(self.ts[lo:hi], shown, max_points)).tolist()]


def _running_newest(ts: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """best[i] = index of the largest (ts, seq) among 0..i (ties go to the later one, as RoomState does)."""
    order_kept = np.all((np.diff(ts) > 0) | ((np.diff(ts) == 0) & (np.diff(seq) >= 0)))
    if order_kept:  # the usual case: each reading newer than the one before
        return np.arange(len(ts), dtype=np.int64)
    best = np.empty(len(ts), dtype=np.int64)
    current = -1
    for i in range(len(ts)):
        if current < 0 or (ts[i], seq[i]) >= (ts[current], seq[current]):
            current = i
        best[i] = current
    return best


class ReplayModel:
    """One session of the log, indexed for "what was known at time t" (see the module docstring)."""

    def __init__(self, store: EventLog, info: SessionInfo) -> None:
        self.store, self.info = store, info
        self.site, self.room = info.site, info.room
        self._local = threading.local()
        conn = self._conn()
        rows = conn.execute(
            "SELECT code, device, seq, ts, value, unit, valid,"
            " CASE WHEN json_array_length(body, '$.conditions') > 0"
            " THEN json_extract(body, '$.conditions') END, received_at"
            " FROM events WHERE session_id = ? AND type = 'obs' AND code != ? ORDER BY id",
            (info.session_id, PLETH),
        ).fetchall()
        by_code: dict[int, list[tuple]] = {}  # type: ignore[type-arg]
        for row in rows:
            by_code.setdefault(row[0], []).append(row[1:])
        self.series = {code: Series(self.site, self.room, code, r) for code, r in by_code.items()}
        pleth = conn.execute(
            "SELECT id, ts, received_at FROM events WHERE session_id = ? AND type = 'obs' AND code = ?"
            " ORDER BY id",
            (info.session_id, PLETH),
        ).fetchall()
        self._pleth_ids = np.asarray([r[0] for r in pleth], dtype=np.int64)
        self._pleth_received = np.maximum.accumulate(np.asarray([r[2] for r in pleth], dtype=np.float64))
        sparse = list(
            store.log(self.site, self.room, types=("status", "clinical", "alarm"), session_id=info.session_id)
        )
        self._sparse_received = np.maximum.accumulate(np.asarray([r for r, _ in sparse], dtype=np.float64))
        self._sparse = [event for _, event in sparse]
        firsts = [float(s.received[0]) for s in self.series.values() if len(s)]
        firsts += [float(self._sparse_received[0])] if sparse else []
        lasts = [float(s.received[-1]) for s in self.series.values() if len(s)]
        lasts += [float(self._sparse_received[-1])] if sparse else []
        lasts += [float(self._pleth_received[-1])] if len(pleth) else []
        self.start = min([info.started_at, *firsts])
        self.end = max([info.ended_at or self.start, *lasts])
        self._before = self._statuses_before(min(firsts, default=info.started_at))
        self.built_at = time.monotonic()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _read_only(self.store)
        return conn

    def _statuses_before(self, first: float) -> list[DeviceStatus]:
        """Devices do not repeat an unchanged status, so the session starts with the room's last ones."""
        last: dict[str, DeviceStatus] = {}
        for received, status in self.store.log(self.site, self.room, types=("status",)):
            if received < first and isinstance(status, DeviceStatus):
                last[status.device] = status
        return list(last.values())

    def warm(self) -> None:
        """Make every reading's Observation now, so the first jump far into the session is as quick as
        the next ones (they are otherwise made as the replay first reaches them)."""
        for s in self.series.values():
            s.objects(len(s))

    @property
    def pleth_blocks(self) -> int:
        return len(self._pleth_ids)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def state_at(self, t: float) -> RoomState:
        """The room as the live page held it at `t`: the same `RoomState`, fed what had arrived by then."""
        state = RoomState(self.site, self.room)
        for status in self._before:
            state.apply(status)
        for s in self.series.values():
            latest = s.latest(t)
            if latest is not None:
                state.apply(latest)
        for event in self._sparse[: self._sparse_count(t)]:
            state.apply(event)
        return state

    def _sparse_count(self, t: float) -> int:
        return int(np.searchsorted(self._sparse_received, t, side="right"))

    def alarms(self, t: float) -> list[AlarmTransition]:
        """The alarm transitions recorded by `t`, in log order."""
        return [e for e in self._sparse[: self._sparse_count(t)] if isinstance(e, AlarmTransition)]

    def clinical(self, t: float) -> list[ClinicalEvent]:
        return [e for e in self._sparse[: self._sparse_count(t)] if isinstance(e, ClinicalEvent)]

    def observations(
        self,
        t: float,
        codes: Iterable[int] | None = None,
        since: float | None = None,
        until: float | None = None,
        max_points: int | None = None,
        changes_only: bool = False,
    ) -> list[Observation]:
        """Observations received by `t` and measured in [since, until], in time order; each code thinned
        to `max_points` (min/max per bin) when given, or to its changes (and its last reading)."""
        chosen = self.series if codes is None else {c: self.series[c] for c in codes if c in self.series}
        out: list[Observation] = []
        for s in chosen.values():
            out += s.window(t, since, until, max_points, changes_only)
        out.sort(key=lambda o: (o.ts, o.seq))
        return out

    def pleth(self, t: float, seconds: float) -> list[Observation]:
        """The waveform blocks received in the `seconds` before `t`, with their samples."""
        hi = int(np.searchsorted(self._pleth_received, t, side="right"))
        lo = int(np.searchsorted(self._pleth_received, t - seconds, side="right"))
        ids = self._pleth_ids[lo:hi].tolist()
        if not ids:
            return []
        rows = self._conn().execute(
            "SELECT device, seq, ts, code, value, unit, valid, body FROM events WHERE id BETWEEN ? AND ?"
            " AND type = 'obs' AND code = ? AND session_id = ? ORDER BY id",
            (ids[0], ids[-1], PLETH, self.info.session_id),
        )
        # the store's own decoding of a row (samples, rate, conditions), on the few rows on screen
        return [_observation_from_row(self.site, self.room, row) for row in rows]

    def at(self, t: float, window: tuple[float, float] | None = None, narrowed: Iterable[int] = ()) -> LogAt:
        return LogAt(self, t, window, frozenset(narrowed), PUMP_COUNTERS)


class LogAt:
    """The event log as it stood at replay time `t`, for projections written against the live store
    (`observations`, `alarms`): they read what had been recorded by then, nothing later. `window`, when
    the viewer zoomed, narrows reads of the `narrowed` codes (the vitals drawn) to the zoomed span, at
    full resolution; other reads (the pump stream the doses come from) stay whole.

    Reads of `changes_only` codes (the pump's rate and volume counters) leave out a reading equal to the
    one before it from the same device, but never the last one: a rate that did not change starts no
    segment and a volume that did not grow delivered nothing, so the doses derived are the same (a test
    checks it) from hours of a stopped pump's identical readings, at a fraction of the cost."""

    def __init__(
        self,
        model: ReplayModel,
        t: float,
        window: tuple[float, float] | None = None,
        narrowed: frozenset[int] = frozenset(),
        changes_only: frozenset[int] = frozenset(),
    ) -> None:
        self.model, self.t, self.window, self.narrowed = model, t, window, narrowed
        self.changes_only = changes_only

    def observations(
        self, site: str, room: str, *, since: float | None = None, codes: Iterable[int] | None = None
    ) -> list[Observation]:
        wanted = None if codes is None else list(codes)
        until = None
        if self.window is not None and wanted is not None and set(wanted) <= self.narrowed:
            since = max(since if since is not None else self.window[0], self.window[0])
            until = self.window[1]
        compact = wanted is not None and bool(wanted) and set(wanted) <= self.changes_only
        return self.model.observations(self.t, wanted, since, until, changes_only=compact)

    def alarms(self, site: str, room: str) -> list[AlarmTransition]:
        return self.model.alarms(self.t)


class ModelCache:
    """Indexed sessions kept for the next viewer (a finished session never changes; an open one is
    re-read when it has grown)."""

    def __init__(self, store: EventLog, keep: int = 3, open_for_s: float = 10.0) -> None:
        self.store, self.keep, self.open_for_s = store, keep, open_for_s
        self._models: OrderedDict[int, ReplayModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: int) -> ReplayModel | None:
        info = session(self.store, session_id)
        if info is None:
            return None
        with self._lock:
            cached = self._models.get(session_id)
            fresh = cached is not None and time.monotonic() - cached.built_at < self.open_for_s
            if cached is not None and cached.info == info and (info.ended_at is not None or fresh):
                self._models.move_to_end(session_id)
                return cached
        model = ReplayModel(self.store, info)
        with self._lock:
            self._models[session_id] = model
            while len(self._models) > self.keep:
                self._models.popitem(last=False)
        return model


class ReplayCursor:
    """Where one viewer is in a session: a position on the session's clock that moves at `speed` times
    real time while playing, stops at the end, and says when anything about it changed (`revision`)."""

    def __init__(
        self,
        start: float,
        end: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        at: float | None = None,
    ) -> None:
        self.start, self.end = start, end
        self._clock = clock
        self._lock = threading.Lock()
        self._at = start if at is None else min(max(at, start), end)
        self._anchor = clock()
        self.playing = False
        self.speed = 1.0
        self.revision = 0
        #: the span a chart is zoomed to, by chart id; absent when it follows the replay
        self.zoom: dict[str, tuple[float, float]] = {}
        self._pushed: deque[int] = deque(maxlen=32)
        self._listeners: list[Callable[[], None]] = []

    def position(self) -> float:
        with self._lock:
            return self._position()

    def _position(self) -> float:
        if not self.playing:
            return self._at
        at = self._at + (self._clock() - self._anchor) * self.speed
        if at >= self.end:
            self._at, self.playing = self.end, False
            return self.end
        return at

    def _moved(
        self, at: float | None = None, playing: bool | None = None, speed: float | None = None
    ) -> None:
        with self._lock:
            self._at = self._position() if at is None else min(max(at, self.start), self.end)
            self._anchor = self._clock()
            if playing is not None:
                self.playing = playing and self._at < self.end
            if speed is not None:
                self.speed = speed
            self.revision += 1
            listeners = list(self._listeners)
        for wake in listeners:
            wake()

    def play(self) -> None:
        if self.position() >= self.end:
            self._moved(at=self.start, playing=True)
        else:
            self._moved(playing=True)

    def pause(self) -> None:
        self._moved(playing=False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def set_speed(self, speed: float) -> None:
        if speed not in SPEEDS:
            raise ValueError(f"speed must be one of {', '.join(f'{s}x' for s in SPEEDS)}")
        self._moved(speed=float(speed))

    def seek(self, at: float) -> None:
        self._moved(at=at)

    def set_zoom(self, chart: str, span: tuple[float, float] | None) -> None:
        with self._lock:
            if span is None:
                self.zoom.pop(chart, None)
            else:
                self.zoom[chart] = span
        self._moved()

    def remember_slider(self, value: int) -> None:
        """The page's stream moved the scrubber to `value` (its echo must not count as a scrub)."""
        with self._lock:
            if not self._pushed or self._pushed[-1] != value:
                self._pushed.append(value)

    def pushed_slider(self, value: int) -> bool:
        with self._lock:
            return value in self._pushed

    def listen(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(wake)

    def forget(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._listeners:
                self._listeners.remove(wake)


class ReplayCursors:
    """The open replay pages of this web process, by the token their page was given."""

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._cursors: OrderedDict[str, ReplayCursor] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, start: float, end: float, at: float | None = None) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._cursors[token] = ReplayCursor(start, end, at=at)
            while len(self._cursors) > self.keep:
                self._cursors.popitem(last=False)
        return token

    def get(self, token: object) -> ReplayCursor | None:
        with self._lock:
            return self._cursors.get(str(token)) if token else None


def parse_jump(text: str, start: float, end: float) -> float:
    """A time typed by the viewer: "+MM:SS" or "+H:MM:SS" from the start, or a clock time "HH:MM[:SS]"
    on the session's day (the next day too, for a session over midnight). ValueError says what is wrong."""
    text = (text or "").strip()
    if not text:
        raise ValueError("type a time: 14:05:30, or +12:00 from the start")
    offset = text.startswith("+")
    parts = text.lstrip("+").split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{text!r} is not a time (14:05:30, or +12:00 from the start)") from None
    if not 1 <= len(numbers) <= 3 or any(n < 0 for n in numbers):
        raise ValueError(f"{text!r} is not a time (14:05:30, or +12:00 from the start)")
    if offset:
        seconds = 0
        for n in numbers:
            seconds = seconds * 60 + n
        at = start + seconds
    else:
        hour, minute, second = [*numbers, 0, 0][:3]
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a clock time")
        day = datetime.fromtimestamp(start)
        at = day.replace(hour=hour, minute=minute, second=second, microsecond=0).timestamp()
        if at < start - 1 and at + 86400 <= end:
            at += 86400
    if not start - 1 <= at <= end + 1:
        raise ValueError(f"{text} is outside the session ({clock(start)} to {clock(end)})")
    return min(max(at, start), end)


def clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

"""The gateway's outbox: what the broker has not acknowledged survives a broker outage and a gateway kill.

The normal case costs no disk write: a message goes straight to paho (QoS 1) and is only remembered in
memory until the broker's PUBACK. A flusher thread, every `FLUSH_S`, writes to an SQLite file the messages
still unacknowledged after `GRACE_S`, and at once all of them when the link drops. While the link is down
(or the outbox still holds older messages) new messages are written to the file as they come, and handed
to paho only when the broker is back, oldest first, after paho's own re-sends of what it held were
acknowledged, so the broker receives each device's messages in the order they were produced. A row
leaves the file only after the broker's PUBACK for it.

The guarantee, exactly:
- Broker down or unreachable: every message is in the file (written before `publish` returns), so a
  killed gateway loses none of them; they are delivered in order when the broker is back, also by the
  next gateway process (its outbox replays the file before any new message).
- Broker up: a message the broker has not acknowledged within `GRACE_S` is written to the file within
  `FLUSH_S` more. So `kill -9` of a gateway loses at most the messages of its last
  `GRACE_S + FLUSH_S` (0.75 s) that the broker never received. Over a live connection paho writes a
  message to the socket within a millisecond, so in practice these are the ones being sent at the instant
  of the kill. A clean stop (SIGTERM) writes every unacknowledged message first.
- Delivery is at least once: a message may arrive twice (acknowledged but not yet removed when the
  gateway died); the core stores each (site, room, device, seq) once.
- The file is bounded: at most `limit` messages per stream (device); past it the oldest are dropped
  and counted (`evicted`), reported in the device's status details (`outbox_evicted`) and the log.
- The file is written with SQLite's WAL at synchronous=NORMAL: it survives the process being killed;
  a power cut can lose the last transactions (the disk's cache is not flushed on each one).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

#: where a gateway keeps its outbox unless told otherwise (`kap-monitor gateway --outbox PATH`)
DEFAULT_PATH = "var/outbox.sqlite"
#: messages kept per device while the broker is away: about 3 hours of a Nonin oximeter with its pleth
#: (5 messages a second), about 15 MB
DEFAULT_LIMIT = 50_000
#: a message not acknowledged this long after it was sent is written to the file
GRACE_S = 0.5
#: how often the flusher looks (acknowledgements, the grace, delivering the file's backlog)
FLUSH_S = 0.25
#: messages handed to paho from the file per look
DRAIN_WINDOW = 500
#: at most one eviction warning per stream this often (every eviction is counted)
EVICTION_LOG_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    stream TEXT NOT NULL,
    ord INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    PRIMARY KEY (stream, ord)
) WITHOUT ROWID;
"""


class _Info(Protocol):
    mid: int


class Link(Protocol):
    """What the outbox needs of an MQTT link (monitor.bus.MqttLink)."""

    @property
    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> _Info: ...


@dataclass(slots=True)
class _Sent:
    """A message handed to paho and not yet acknowledged."""

    ord: int
    topic: str
    payload: bytes
    retain: bool
    sent_at: float
    on_disk: bool


_shared: dict[Path, OutboxFile] = {}
_shared_lock = threading.Lock()


class OutboxFile:
    """One SQLite file for all the streams (devices) of a gateway process, and the flusher thread.

    `acquire` shares one per path in a process (one connection, one thread, whatever the number of rooms);
    each user `release`s it, and the last one closes it.
    """

    @classmethod
    def acquire(cls, path: str | Path = DEFAULT_PATH, *, limit: int = DEFAULT_LIMIT) -> OutboxFile:
        key = Path(path).resolve()
        with _shared_lock:
            file = _shared.get(key)
            if file is None:
                file = _shared[key] = cls(key, limit=limit).start()
            file._users += 1
            return file

    def release(self) -> None:
        with _shared_lock:
            self._users -= 1
            if self._users > 0:
                return
            _shared.pop(self.path, None)
        self.close()

    def __init__(self, path: str | Path, *, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"outbox limit {limit}: expected at least 1 message")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db_lock = threading.Lock()
        self._outboxes: list[Outbox] = []
        self._users = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name="outbox-flusher", daemon=True)

    def outbox(self, stream: str, link: Link) -> Outbox:
        box = Outbox(self, stream, link)
        with _shared_lock:
            self._outboxes = [*self._outboxes, box]
        return box

    def forget(self, box: Outbox) -> None:
        with _shared_lock:
            self._outboxes = [b for b in self._outboxes if b is not box]

    def start(self) -> OutboxFile:
        self._thread.start()
        return self

    def close(self) -> None:
        """Write every unacknowledged message to the file and stop (a clean gateway stop loses nothing)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for box in self._outboxes:
            box.close()
        with self._db_lock:
            self._db.close()

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_S):
            now = time.monotonic()
            for box in self._outboxes:
                try:
                    box.flush(now)
                except Exception:  # one stream's trouble must not stop the others' delivery
                    log.exception("outbox %s: flush failed", box.stream)

    # ---- the file (callers hold their outbox's lock; the file's own lock serialises the streams) --------

    def write(self, stream: str, rows: list[tuple[int, str, bytes, bool]]) -> None:
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO outbox(stream, ord, topic, payload, retain)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(stream, o, t, p, int(r)) for o, t, p, r in rows],
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def remove(self, stream: str, ords: list[int]) -> int:
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = sum(
                    self._db.execute("DELETE FROM outbox WHERE stream = ? AND ord = ?", (stream, o)).rowcount
                    for o in ords
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return removed

    def evict_oldest(self, stream: str, count: int, above: int) -> int:
        """Drop the `count` oldest rows not yet handed to paho (ord > `above`); how many went."""
        with self._db_lock:
            return self._db.execute(
                "DELETE FROM outbox WHERE stream = ? AND ord IN"
                " (SELECT ord FROM outbox WHERE stream = ? AND ord > ? ORDER BY ord LIMIT ?)",
                (stream, stream, above, count),
            ).rowcount

    def rows_after(self, stream: str, after: int, limit: int) -> list[tuple[int, str, bytes, bool]]:
        with self._db_lock:
            rows = self._db.execute(
                "SELECT ord, topic, payload, retain FROM outbox WHERE stream = ? AND ord > ?"
                " ORDER BY ord LIMIT ?",
                (stream, after, limit),
            ).fetchall()
        return [(o, t, bytes(p), bool(r)) for o, t, p, r in rows]

    def stats(self, stream: str) -> tuple[int, int]:
        """(rows, highest ord) of a stream; (0, -1) when it has none."""
        with self._db_lock:
            count, top = self._db.execute(
                "SELECT COUNT(*), MAX(ord) FROM outbox WHERE stream = ?", (stream,)
            ).fetchone()
        return int(count), -1 if top is None else int(top)


class Outbox:
    """The outbox of one MQTT link: `publish` instead of the link's, and wire the link's acknowledgement
    (`on_published`) and disconnection (`on_disconnect`) callbacks to it."""

    def __init__(self, file: OutboxFile, stream: str, link: Link) -> None:
        self.file = file
        self.stream = stream
        self.link = link
        self._lock = threading.Lock()
        self._sent: dict[int, _Sent] = {}  # mid -> message, in the order handed to paho
        self._acked: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._link_dropped = False
        self.on_disk, top = file.stats(stream)
        self._next_ord = top + 1
        #: the file holds messages not yet handed to paho: new ones queue behind them
        self._backlog = self.on_disk > 0
        self._handed_upto = -1  # highest ord handed to paho from the file
        #: messages dropped past the limit, since this process started
        self.evicted = 0
        #: messages the file could not take (its own disk full): kept in paho's memory only
        self.unsaved = 0
        #: messages the broker acknowledged
        self.acknowledged = 0
        #: messages written to the file (none while the broker acknowledges promptly)
        self.written = 0
        self._last_eviction_log = 0.0
        if self.on_disk:
            log.warning("outbox %s: %d messages from before are delivered first", stream, self.on_disk)

    # ---- called by the adapter's thread and by paho's ------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        with self._lock:
            ord_ = self._next_ord
            self._next_ord += 1
            if not self._backlog and self.link.connected:
                info = self.link.publish(topic, payload, retain=retain)
                self._sent[info.mid] = _Sent(ord_, topic, payload, retain, time.monotonic(), False)
                return
            self._backlog = True
            if not self._store([(ord_, topic, payload, retain)]):
                # the file is refusing (its disk is full): paho's memory keeps it while this process lives,
                # and the flusher tries the file again
                info = self.link.publish(topic, payload, retain=retain)
                self._sent[info.mid] = _Sent(ord_, topic, payload, retain, time.monotonic(), False)

    def on_published(self, mid: int) -> None:
        """paho's network thread, holding paho's locks: only note it (see MqttLink's `on_published`)."""
        self._acked.put(mid)

    def on_disconnect(self) -> None:
        """paho's network thread: what paho holds is written out at the next flush, newer messages go to
        the file until paho's re-sends are acknowledged and the file is delivered."""
        self._backlog = True  # at once (not at the next flush): a quick reconnect must not overtake paho
        self._link_dropped = True

    def close(self) -> None:
        """Write every unacknowledged message to the file (a clean stop loses nothing) and leave it."""
        self.flush(time.monotonic(), final=True)
        self.file.forget(self)

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker (in the file or in flight)."""
        with self._lock:
            return self.on_disk + sum(1 for s in self._sent.values() if not s.on_disk)

    # ---- the flusher ----------------------------------------------------------------------------------

    def flush(self, now: float, *, final: bool = False) -> None:
        with self._lock:
            if self._link_dropped:
                self._link_dropped = False
                self._backlog = True
                final = True
            self._take_acks()
            late = [s for s in self._sent.values() if not s.on_disk and (final or now - s.sent_at > GRACE_S)]
            if late and self._store([(s.ord, s.topic, s.payload, s.retain) for s in late]):
                for s in late:
                    s.on_disk = True
            if self._backlog and not final and self.link.connected and not self._sent:
                self._drain(now)

    def _take_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid = self._acked.get_nowait()
            except queue.Empty:
                break
            sent = self._sent.pop(mid, None)
            if sent is not None:
                self.acknowledged += 1
                if sent.on_disk:
                    done.append(sent.ord)
        if done:
            self.on_disk -= self.file.remove(self.stream, done)

    def _drain(self, now: float) -> None:
        """Hand the file's oldest messages to paho; once none is left, new messages go straight out."""
        rows = self.file.rows_after(self.stream, self._handed_upto, DRAIN_WINDOW)
        for ord_, topic, payload, retain in rows:
            info = self.link.publish(topic, payload, retain=retain)
            self._sent[info.mid] = _Sent(ord_, topic, payload, retain, now, True)
            self._handed_upto = ord_
        if not rows:
            self._backlog = False
            log.info("outbox %s: delivered; publishing directly again", self.stream)

    def _store(self, rows: list[tuple[int, str, bytes, bool]]) -> bool:
        try:
            self.file.write(self.stream, rows)
        except sqlite3.Error as exc:
            if self.unsaved == 0:
                log.error("outbox %s: cannot write %s (%s); messages kept in memory only", self.stream,
                          self.file.path, exc)  # fmt: skip
            self.unsaved += len(rows)
            return False
        self.on_disk += len(rows)
        self.written += len(rows)
        over = self.on_disk - self.file.limit
        if over > 0:
            evicted = self.file.evict_oldest(self.stream, over, self._handed_upto)
            self.on_disk -= evicted
            self.evicted += evicted
            if evicted and time.monotonic() - self._last_eviction_log > EVICTION_LOG_S:
                self._last_eviction_log = time.monotonic()
                log.warning(
                    "outbox %s: full (%d messages); dropped the oldest, %d so far",
                    self.stream,
                    self.file.limit,
                    self.evicted,
                )
        return True

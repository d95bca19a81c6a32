"""A consistent copy of the event log while the core keeps writing: SQLite's online backup.

Copying `kap.sqlite` with `cp` while the core writes can give a torn file (and misses what is still only
in `kap.sqlite-wal`). SQLite's backup API copies the database page by page under a read transaction, so
the copy is the log exactly as it stood at one commit, and the core is never stopped: it goes on
appending while the pages are copied (a step at a time, so its writes are not held up for long).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

#: pages copied per step; between steps the core may commit (the copy then restarts from those pages)
PAGES_PER_STEP = 4096


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    bytes: int
    events: int
    sessions: int


class BackupError(Exception):
    """Why no backup was made; its text is for the person who asked."""


def backup(source: str | Path, target: str | Path) -> BackupResult:
    """Copy the event log at `source` to `target` (a new file), check the copy, and say what it holds."""
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise BackupError(f"{source}: no such database file")
    if target.exists():
        raise BackupError(f"{target} exists already: a backup never overwrites a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"events", "sessions"} <= tables:
                raise BackupError(f"{source} is not a KAP Monitor event log (no events and sessions tables)")
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst, pages=PAGES_PER_STEP)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                check = dst.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy failed its integrity check: {check}")
                events = int(dst.execute("SELECT count(*) FROM events").fetchone()[0])
                sessions = int(dst.execute("SELECT count(*) FROM sessions").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{source}: {exc}") from None
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)
    return BackupResult(target, target.stat().st_size, events, sessions)

"""A table of the store's SQLite file that the web process's threads share (users, sign-ins, audit)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SharedTable:
    """One connection (autocommit, WAL) shared by threads, each statement under one lock; `SCHEMA` is
    created when missing."""

    SCHEMA = ""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self._conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(self.SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

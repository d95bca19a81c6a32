"""`kap-monitor backup` copies the event log consistently while the core is recording into it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from monitor.store import EventLog

KAP = [sys.executable, "-m", "monitor.cli"]


def kap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KAP, *args], capture_output=True, text=True, timeout=60)


def rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, type, device, seq, ts, value FROM events ORDER BY id").fetchall()


def test_a_backup_taken_while_the_core_records_is_a_whole_checked_copy(room1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = EventLog(room1.db)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and store.count("obs") < 20:
        time.sleep(0.1)
    copy = tmp_path / "backups" / "kap-1.sqlite"
    done = kap("backup", "--db", str(room1.db), "--to", str(copy))
    assert done.returncode == 0, done.stderr
    assert "integrity check ok" in done.stdout and str(copy) in done.stdout
    assert not Path(f"{copy}-wal").exists() and not Path(f"{copy}.partial").exists(), "one file"
    backed_up = rows(copy)
    assert len(backed_up) >= 20
    # the copy is the log as it stood at one commit: a prefix of the live log, which has grown since
    time.sleep(1.0)
    live = rows(room1.db)
    assert live[: len(backed_up)] == backed_up and len(live) > len(backed_up)
    assert EventLog(copy).observations("clinic", "room1")[0].value is not None, "the store reads the copy"

    again = kap("backup", "--db", str(room1.db), "--to", str(copy))
    assert again.returncode == 2 and "exists already" in again.stderr
    assert rows(copy) == backed_up, "a backup never overwrites a file"


def test_a_missing_or_foreign_database_gives_a_clear_error_and_no_file(tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite"
    missing = kap("backup", "--db", str(tmp_path / "nope.sqlite"), "--to", str(target))
    assert missing.returncode == 2 and "no such database file" in missing.stderr
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    refused = kap("backup", "--db", str(foreign), "--to", str(target))
    assert refused.returncode == 2 and "not a KAP Monitor event log" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not target.exists() and not Path(f"{target}.partial").exists()
    assert kap("backup", "--db", str(foreign)).returncode == 2, "--to is required"

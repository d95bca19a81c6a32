"""`kap-monitor sessions | export | import | whatif`: what the recorded sessions hold, taken out, brought
in from another site, and re-run through the alarm engine with other limits.

A database that is missing or is not a KAP event log is a clear error with exit code 2, and nothing is
created (except by `import`, which may start a new file).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

from monitor.store import EventLog, SessionRecord
from monitor.whatif import WhatIfResult, change_text, setting_text

DEFAULT_DB = "var/kap.sqlite"


class _Refused(Exception):
    """A problem the user fixes from the message alone; the command exits with 2."""


def _open(path: str, *, create: bool = False) -> EventLog:
    """The event log at `path`, refusing a missing file (unless `create`) or one that is not an event log,
    without creating or changing anything."""
    file = Path(path)
    if not file.exists():
        if create:
            return EventLog(file)
        raise _Refused(f"{path}: no such database (give the core's --db file)")
    if not file.is_file():
        raise _Refused(f"{path}: not a file")
    try:
        with sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _Refused(f"{path}: not a KAP Monitor database ({exc})") from None
    if not {"sessions", "events"} <= tables:
        raise _Refused(f"{path}: not a KAP Monitor database (no sessions and events tables)")
    return EventLog(file)


def _local(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def sessions_table(records: list[SessionRecord]) -> str:
    if not records:
        return "no session recorded"
    rows = [
        {
            "ID": r.id,
            "SITE": r.site,
            "ROOM": r.room,
            "START": _local(r.started_at),
            "END": _local(r.ended_at) if r.ended_at is not None else "open",
            "PATIENT": r.patient_code or "-",
            "DRUG / ROUTE": f"{r.protocol.get('drug')} {r.protocol.get('route')}" if r.protocol else "-",
            "ALARMS": r.alarms,
        }
        for r in records
    ]
    zone = datetime.now().astimezone().strftime("%Z")
    return pd.DataFrame(rows).to_string(index=False) + f"\n(times in {zone})"


def _session_id(store: EventLog, session_id: int) -> int:
    if store.session(session_id) is None:
        raise _Refused(
            f"no session {session_id} in {store.path}; `kap-monitor sessions --db {store.path}` lists them"
        )
    return session_id


# --- handlers ---------------------------------------------------------------------------------------------


def run_sessions(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    print(sessions_table(_open(args.db).session_records()))
    return 0


def _audit_export(db: str, store: EventLog, session_id: int, detail: str) -> None:
    """A session taken out on the command line is in the audit trail too, under the system account that
    ran it (whoever can read the database file can export it; the trail says who did)."""
    import getpass
    import time

    from monitor.audit import AuditEntry, AuditLog
    from monitor.auth import SESSION_EXPORT

    record = store.session(session_id)
    try:
        user = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "cli:unknown"
    entry = AuditEntry(
        time.time(),
        user,
        SESSION_EXPORT,
        "local",
        record.site if record else "",
        record.room if record else "",
        detail,
    )
    try:
        trail = AuditLog(db)
        try:
            trail.append(entry)
        finally:
            trail.close()
    except sqlite3.Error as exc:  # a read-only copy (a backup being reviewed): say so, export anyway
        print(f"warning: this export is not in the audit trail ({exc})", file=sys.stderr)


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from monitor.export import export_filename, export_session

    store = _open(args.db)
    session_id = _session_id(store, args.session)
    data = export_session(store, session_id, args.format)
    _audit_export(args.db, store, session_id, f"session {session_id} as {args.format} (command line)")
    if args.output == "-":
        sys.stdout.buffer.write(data)
        return 0
    output = Path(args.output or export_filename(store, session_id, args.format))
    output.write_bytes(data)
    print(
        f"exported session {session_id} as {args.format} to {output} ({len(data):,} bytes)", file=sys.stderr
    )
    return 0


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from monitor.session_archive import import_jsonl

    source = Path(args.file)
    if not source.is_file():
        raise _Refused(f"{args.file}: no such file")
    store = _open(args.db, create=True)
    with source.open("rb") as lines:
        report = import_jsonl(store, lines)
    for s in report.sessions:
        where = "new session" if s.result.created else "already there as session"
        closed = (
            f"; it was still open when exported, closed here at {_local(s.closed_at)}" if s.closed_at else ""
        )
        print(
            f"{s.site}/{s.room} {_local(s.started_at)} {s.patient_code or ''}: {where} {s.result.session_id};"
            f" {s.result.imported} events imported, {s.result.duplicates} duplicates skipped{closed}"
        )
    for bad in report.rejected:
        print(f"{args.file}:{bad.line}: rejected: {bad.reason}", file=sys.stderr)
    print(
        f"imported {report.imported} events in {len(report.sessions)} session(s),"
        f" {report.duplicates} duplicates skipped, {len(report.rejected)} line(s) rejected"
    )
    if not report.sessions:
        raise _Refused(
            f"{args.file}: no session header found: not a `kap-monitor export --format jsonl` file"
        )
    return 1 if report.rejected else 0


def run_whatif(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from monitor.alarm_profile import load_profile
    from monitor.whatif import parse_day, parse_setting, sessions_between, what_if

    span = (args.date_from, args.date_to)
    if (args.session is not None and any(span)) or (args.session is None and not all(span)):
        parser.error("give --session ID, or --from DATE and --to DATE (not both)")
    store = _open(args.db)
    try:
        if args.session is not None:
            sessions = [store.session(_session_id(store, args.session))]
        else:
            sessions = sessions_between(store, parse_day(args.date_from), parse_day(args.date_to, end=True))
        profile = load_profile(args.profile)
        result = what_if(
            store,
            [s for s in sessions if s is not None],
            profile,
            [parse_setting(text) for text in args.set],
            recorded_profile=load_profile(args.recorded_profile) if args.recorded_profile else None,
        )
    except ValueError as exc:
        raise _Refused(str(exc)) from None
    print(whatif_table(result, profile.name))
    return 0


def whatif_table(result: WhatIfResult, profile: str) -> str:
    """Per rule: its settings (recorded -> what-if) and the alarms it raised as recorded and what-if."""
    changed = ", ".join(str(s) for s in result.settings) or "no change"
    head = f"what-if over {len(result.sessions)} session(s), profile {profile} with {changed}"
    if not result.sessions:
        return head + "\nno session in that range"
    rows = [
        {
            "RULE": r.condition,
            "KIND": r.kind,
            "PRIORITY": r.priority,
            "LIMIT": setting_text(r.limit) or "-",
            "DELAY": setting_text(r.delay_s, " s") or "-",
            "RECORDED": r.recorded,
            "WHAT-IF": r.whatif,
            "CHANGE": r.change_text,
        }
        for r in result.rows
    ]
    rows.append(
        {"RULE": "total", "KIND": "", "PRIORITY": "", "LIMIT": "", "DELAY": "", "RECORDED": result.recorded,
         "WHAT-IF": result.whatif, "CHANGE": change_text(result.recorded, result.whatif)}
    )  # fmt: skip
    return head + "\n" + pd.DataFrame(rows).to_string(index=False)


# --- parsers ----------------------------------------------------------------------------------------------


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"the event log (SQLite file; default {DEFAULT_DB})")


def _guarded(handler):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        try:
            return int(handler(args, parser))
        except _Refused as exc:
            print(f"kap-monitor {args.command}: {exc}", file=sys.stderr)
            return 2

    return run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from monitor.export import FORMATS

    p = sub.add_parser(
        "sessions",
        help="list the recorded sessions",
        description="Every session in the event log: id, room, start, end, patient code, drug and route, "
        "and how many alarms it raised.",
    )
    _db(p)
    p.set_defaults(handler=_guarded(run_sessions))

    p = sub.add_parser(
        "export",
        help="export a session: observations (csv, parquet), event log (jsonl), report (html)",
        description="csv/parquet: one row per observation (waveform blocks left out; they are in the "
        "jsonl). jsonl: every event of the session, lossless, for `kap-monitor import`. html: a standalone "
        "session report that opens offline.",
    )
    _db(p)
    p.add_argument("--session", type=int, required=True, metavar="ID", help="from `kap-monitor sessions`")
    p.add_argument("--format", choices=FORMATS, default="csv", help="default csv")
    p.add_argument(
        "--output", metavar="FILE", help="default kap-session-ID-ROOM-START.FORMAT here; - for stdout"
    )
    p.set_defaults(handler=_guarded(run_export))

    p = sub.add_parser(
        "import",
        help="import a session's event log exported as jsonl (from this or another site)",
        description="Stores every event once: importing the same file twice adds nothing. A bad line is "
        "reported with its number and reason; the good lines around it are kept (exit code 1).",
    )
    _db(p)
    p.add_argument("file", metavar="FILE", help="a `kap-monitor export --format jsonl` file")
    p.set_defaults(handler=_guarded(run_import))

    p = sub.add_parser(
        "whatif",
        help="re-run the alarm engine over recorded sessions with other limits and delays",
        description="Counts, per rule, the alarms the sessions raised as recorded and the alarms they would "
        "have raised with the changed settings (alarm-fatigue analysis).",
    )
    _db(p)
    p.add_argument("--session", type=int, metavar="ID")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="sessions started from this date (local)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="... up to the end of this date")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="RULE.FIELD=VALUE",
        help="repeatable: spo2_low.limit=90, spo2_low.delay=30, pulse_high.hysteresis=8, sensor_off.delay=30",
    )
    p.add_argument(
        "--profile",
        metavar="PROFILE.toml",
        help="the what-if profile, changed further by --set (default: the shipped ketamine profile)",
    )
    p.add_argument(
        "--recorded-profile",
        metavar="PROFILE.toml",
        help="the profile the core ran, shown as the recorded settings (default: --profile before --set)",
    )
    p.set_defaults(handler=_guarded(run_whatif))

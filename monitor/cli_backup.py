"""`kap-monitor backup`: a consistent copy of the event log, taken while the core records."""

from __future__ import annotations

import argparse
import sys


def run_backup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from monitor.backup import BackupError, backup

    try:
        result = backup(args.db, args.to)
    except BackupError as exc:
        print(f"kap-monitor backup: {exc}", file=sys.stderr)
        return 2
    print(
        f"backed up {args.db} to {result.path}: {result.bytes:,} bytes, {result.events:,} events,"
        f" {result.sessions} sessions (integrity check ok)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from monitor.cli import DEFAULT_DB

    p = sub.add_parser(
        "backup",
        help="copy the event log consistently while the core keeps recording",
        description="Copies the SQLite event log (users and audit trail included) page by page under a "
        "read transaction: the copy is the log as it stood at one commit, checked, in one file. "
        "Never overwrites a file.",
    )
    p.add_argument("--db", default=DEFAULT_DB, help=f"the event log (default {DEFAULT_DB})")
    p.add_argument("--to", required=True, metavar="FILE", help="the new backup file")
    p.set_defaults(handler=run_backup)

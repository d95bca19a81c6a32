"""`kap-monitor users add|passwd|disable|enable|list`: the people who may sign in to the dashboard.

Passwords are asked at a prompt (never echoed, asked twice) or read from the first line of
`--password-file` (`-` for standard input), never from the command line where `ps` and shell history would
keep them. Each change is written to the audit trail as done by the operating-system user who ran it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time

from monitor.audit import AuditEntry, AuditLog
from monitor.users import DEFAULT_IDLE_MINUTES, ROLES, UserError, UserStore

MIN_PASSWORD = 8
DEFAULT_DB = "var/kap.sqlite"


class _NoPassword(Exception):
    pass


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="add, change, disable and list dashboard users")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--db", default=DEFAULT_DB, help=f"the store's SQLite file (default {DEFAULT_DB})")
        p.set_defaults(handler=run)
        return p

    add = common(actions.add_parser("add", help="add a user"))
    add.add_argument("name", help="sign-in name: letters, digits, '.', '_', '@', '-'")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--rooms", default="", help="a nurse's assigned rooms, comma-separated (other roles: every room)"
    )
    defaults = ", ".join(f"{r} {m} min" for r, m in DEFAULT_IDLE_MINUTES.items())
    add.add_argument(
        "--idle-minutes",
        type=int,
        default=None,
        help=f"minutes without activity before the sign-in ends (default by role: {defaults})",
    )
    add.add_argument("--password-file", help="read the password from this file's first line ('-': stdin)")
    passwd = common(actions.add_parser("passwd", help="set a user's password"))
    passwd.add_argument("name")
    passwd.add_argument("--password-file", help="read the password from this file's first line ('-': stdin)")
    for action, text in (
        ("disable", "stop a user signing in (ends their sign-ins)"),
        ("enable", "undo disable"),
    ):
        common(actions.add_parser(action, help=text)).add_argument("name")
    common(actions.add_parser("list", help="list the users (never their passwords)"))


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        if args.password_file == "-":
            line = sys.stdin.readline()
        else:
            with open(args.password_file, encoding="utf-8") as f:
                line = f.readline()
        password = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise _NoPassword(
                "no terminal to ask for the password: give --password-file FILE (or - for stdin)"
            )
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise _NoPassword("the two passwords differ; nothing changed")
    if len(password) < MIN_PASSWORD:
        raise _NoPassword(f"a password needs at least {MIN_PASSWORD} characters; nothing changed")
    return password


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    store = UserStore(args.db)
    audit = AuditLog(args.db)
    operator = f"cli:{getpass.getuser()}"
    try:
        if args.users_command == "list":
            _print_list(store)
            return 0
        if args.users_command == "add":
            rooms = [r.strip() for r in args.rooms.split(",") if r.strip()]
            if args.role == "nurse" and not rooms:
                raise UserError("a nurse needs --rooms (the rooms they are assigned to)")
            password = _password(args)
            user = store.add(args.name, args.role, password, rooms=rooms, idle_minutes=args.idle_minutes)
            detail = f"{user.role}" + (f" rooms {','.join(user.rooms)}" if user.rooms else "")
            print(f"users: added {user.name} ({detail})")
            _audit(audit, operator, "user_added", user.name, detail)
        elif args.users_command == "passwd":
            if store.get(args.name) is None:
                raise UserError(f"no user {args.name!r} (kap-monitor users list shows them)")
            store.set_password(args.name, _password(args))
            print(f"users: password of {args.name} changed")
            _audit(audit, operator, "password_changed", args.name)
        else:
            disabled = args.users_command == "disable"
            store.set_disabled(args.name, disabled)
            print(f"users: {args.name} {'disabled' if disabled else 'enabled'}")
            _audit(audit, operator, f"user_{args.users_command}d", args.name)
    except (UserError, _NoPassword, OSError) as exc:
        print(f"kap-monitor users {args.users_command}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
        audit.close()
    return 0


def _audit(audit: AuditLog, operator: str, action: str, name: str, detail: str = "") -> None:
    who = f"{operator}@{os.uname().nodename}"[:64]
    audit.append(AuditEntry(time.time(), who, action, "local", detail=f"{name} {detail}".strip()))


def _print_list(store: UserStore) -> None:
    users = store.list()
    if not users:
        print("no users: add one with kap-monitor users add NAME --role admin")
        return
    print(f"{'name':<24} {'role':<11} {'idle':>7}  {'state':<9} rooms")
    for u in users:
        idle = f"{u.idle_minutes or DEFAULT_IDLE_MINUTES[u.role]} min"
        rooms = ",".join(u.rooms) if u.role == "nurse" else "all"
        print(f"{u.name:<24} {u.role:<11} {idle:>7}  {'disabled' if u.disabled else 'enabled':<9} {rooms}")

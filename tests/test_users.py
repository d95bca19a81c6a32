"""Users in the store's file with argon2 hashes, and `kap-monitor users add|passwd|disable|enable|list`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from monitor.audit import AuditLog
from monitor.users import UserError, UserStore
from tests.conftest import ROOT

#: the cheapest argon2 parameters, so the tests spend no time hashing; the product uses the library's
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_a_user_signs_in_with_their_password_only_while_enabled(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "kap.sqlite", FAST)
    users.add("ana", "nurse", "correct horse", rooms=["room2", "room1"])
    ana = users.verify("ana", "correct horse")
    assert ana is not None and ana.role == "nurse" and ana.rooms == ("room1", "room2")
    assert ana.idle_seconds == 30 * 60, "a personal sign-in ends after 30 idle minutes by default"
    assert users.verify("ana", "wrong") is None
    assert users.verify("nobody", "correct horse") is None
    users.set_password("ana", "battery staple")
    assert users.verify("ana", "correct horse") is None and users.verify("ana", "battery staple")
    users.set_disabled("ana")
    assert users.verify("ana", "battery staple") is None, "a disabled user cannot sign in"
    assert users.active_count() == 0
    users.set_disabled("ana", False)
    assert users.verify("ana", "battery staple") is not None


def test_the_password_is_stored_only_as_an_argon2id_hash(tmp_path: Path) -> None:
    db = tmp_path / "kap.sqlite"
    UserStore(db, FAST).add("wall", "viewer", "display-secret", idle_minutes=None)
    (stored,) = sqlite3.connect(db).execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$") and "display-secret" not in stored
    wall = UserStore(db, FAST).get("wall")
    assert wall is not None and wall.idle_seconds == 12 * 3600, "a wall display stays signed in 12 h"


@pytest.mark.parametrize(
    ("name", "role", "password", "rooms", "idle", "says"),
    [
        ("ana smith", "nurse", "pw", ["room1"], None, "user name"),
        ("ana", "doctor", "pw", [], None, "role 'doctor'"),
        ("ana", "nurse", "", ["room1"], None, "password"),
        ("ana", "nurse", "pw", ["room 1"], None, "room"),
        ("ana", "nurse", "pw", ["room1"], 0, "idle minutes"),
    ],
)
def test_bad_users_are_refused_with_the_reason(
    tmp_path: Path, name: str, role: str, password: str, rooms: list[str], idle: int | None, says: str
) -> None:
    with pytest.raises(UserError, match=says):
        UserStore(tmp_path / "kap.sqlite", FAST).add(name, role, password, rooms=rooms, idle_minutes=idle)


def test_a_name_is_taken_once_and_unknown_users_are_named(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "kap.sqlite", FAST)
    users.add("lee", "supervisor", "pw")
    with pytest.raises(UserError, match="exists already"):
        users.add("lee", "viewer", "pw")
    with pytest.raises(UserError, match="no user 'kim'"):
        users.set_disabled("kim")


def users_cli(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "users", *args, "--db", str(db)],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_users_command_adds_lists_changes_and_disables(tmp_path: Path) -> None:
    db, secret = tmp_path / "kap.sqlite", tmp_path / "pw.txt"
    secret.write_text("s3cret-pass\n")
    added = users_cli(
        db, "add", "ana", "--role", "nurse", "--rooms", "room1,room3", "--password-file", str(secret)
    )
    assert added.returncode == 0, added.stderr
    assert "added ana (nurse rooms room1,room3)" in added.stdout
    assert "s3cret" not in added.stdout + added.stderr, "a password is never echoed"
    viewer = users_cli(db, "add", "wall", "--role", "viewer", "--password-file", "-", stdin="display-pass\n")
    assert viewer.returncode == 0, viewer.stderr
    assert UserStore(db).verify("ana", "s3cret-pass") is not None
    assert UserStore(db).verify("wall", "display-pass") is not None

    listing = users_cli(db, "list").stdout.splitlines()
    assert listing[1].split() == ["ana", "nurse", "30", "min", "enabled", "room1,room3"]
    assert listing[2].split() == ["wall", "viewer", "720", "min", "enabled", "all"]
    assert "$argon2" not in "\n".join(listing)

    assert users_cli(db, "passwd", "ana", "--password-file", "-", stdin="another-pass\n").returncode == 0
    assert UserStore(db).verify("ana", "another-pass") is not None
    assert users_cli(db, "disable", "ana").returncode == 0
    assert "disabled" in users_cli(db, "list").stdout.splitlines()[1]
    actions = [e.action for e in AuditLog(db).entries()]
    assert actions == ["user_added", "user_added", "password_changed", "user_disabled"]


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["add", "ana", "--role", "nurse", "--password-file", "-"], "s3cret-pass\n", "a nurse needs --rooms"),
        (["add", "ana", "--role", "admin", "--password-file", "-"], "short\n", "at least 8 characters"),
        (["add", "ana", "--role", "admin"], "", "no terminal to ask for the password"),
        (["add", "a b", "--role", "admin", "--password-file", "-"], "s3cret-pass\n", "user name 'a b'"),
        (["passwd", "kim", "--password-file", "-"], "s3cret-pass\n", "no user 'kim'"),
        (["disable", "kim"], "", "no user 'kim'"),
    ],
)
def test_the_users_command_says_what_is_wrong(tmp_path: Path, args: list[str], stdin: str, says: str) -> None:
    done = users_cli(tmp_path / "kap.sqlite", *args, stdin=stdin)
    assert done.returncode == 2 and says in done.stderr, (done.returncode, done.stdout, done.stderr)


def test_web_refuses_to_start_without_a_user_and_says_how_to_add_one(tmp_path: Path) -> None:
    db = tmp_path / "kap.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "web", "--db", str(db), "--port", "8999"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        "nobody can sign in" in done.stderr
        and f"kap-monitor users add NAME --role admin --db {db}" in done.stderr
    )


def test_the_demo_creates_its_documented_accounts_once(tmp_path: Path) -> None:
    from monitor.demo import demo_accounts

    db = tmp_path / "demo.sqlite"
    said = demo_accounts(str(db), ["room1", "room2"])
    assert "demo / demo" in said and "supervisor / supervisor" in said and "admin / admin" in said
    users = UserStore(db)
    demo = users.verify("demo", "demo")
    assert demo is not None and demo.role == "nurse" and demo.rooms == ("room1", "room2")
    assert [(u.name, u.role) for u in users.list()] == [
        ("admin", "admin"),
        ("demo", "nurse"),
        ("supervisor", "supervisor"),
    ]
    users.set_password("demo", "changed-it")
    demo_accounts(str(db), ["room1", "room2"])
    assert users.verify("demo", "changed-it") is not None, "a second start keeps what exists"

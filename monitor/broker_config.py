"""A locked-down mosquitto for a clinic: accounts, their passwords, what each may read and write.

The shared clinic network must not be able to read patients' vitals, inject readings into a room or raise
and clear alarms. `write_broker_config()` writes everything mosquitto 2 needs into one directory:

- `mosquitto.conf`: no anonymous clients, the password and ACL files, persistence on (a core's queued
  messages survive a broker restart), `max_queued_messages` raised (mosquitto's default 1000 drops a
  burst for a core that is catching up: see the README's benchmark), a plain listener and/or a TLS one.
- `passwd`: one account per room gateway (`gw-<site>-<room>`), plus `core`, `web` and a read-only
  `status`, each password hashed in mosquitto's PBKDF2-SHA512 format (`$7$`).
- `acl`: a gateway may write only its own room's `obs`, `status` (its Last Will) and `reply` topics and
  read only its own room's `cmd` topics; the core reads everything and writes alarm transitions; the web
  reads everything and writes clinical events and device commands; `status` reads device statuses.
- `credentials/<account>.cred`: the plain password of each account, mode 0600, for `--credentials`.

Passwords are hashed here rather than with `mosquitto_passwd -b`, which would put each plain password on
a command line that every local user can read with `ps`; the format is mosquitto's documented one and
tests/test_broker_acl.py checks it against `mosquitto_passwd` and a real broker. Writing again keeps the
passwords of accounts that already have a credentials file, so adding a room does not lock out the rooms
already running; `rotate=True` makes new ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pwd
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from monitor import wire

#: mosquitto's default of 1000 queued messages per client drops a burst (16,000/s measured) for a core
#: that stores 8,500/s; 100,000 rides out ~25 minutes of core downtime at 20 rooms' normal rate
DEFAULT_MAX_QUEUED = 100_000
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes; 192-bit random passwords need no key stretching
SALT_BYTES = 12  # mosquitto's SALT_LEN
CORE, WEB, STATUS = "core", "web", "status"


def gateway_account(site: str, room: str) -> str:
    return f"gw-{site}-{room}"


@dataclass(frozen=True, slots=True)
class Account:
    """A broker account and the topics it may use (mosquitto ACL patterns)."""

    username: str
    why: str
    read: tuple[str, ...]
    write: tuple[str, ...]

    def acl(self) -> str:
        lines = [f"# {self.why}", f"user {self.username}"]
        lines += [f"topic read {t}" for t in self.read]
        lines += [f"topic write {t}" for t in self.write]
        return "\n".join(lines) + "\n"


def accounts_for(rooms: Iterable[tuple[str, str]]) -> list[Account]:
    """The fixed accounts plus one per (site, room); the topics follow monitor.wire's contract."""
    root = wire.ROOT
    accounts = [
        Account(
            CORE,
            "the core: records everything, publishes alarm transitions",
            (f"{root}/#",),
            (wire.alarms_topic("+", "+"),),
        ),
        Account(
            WEB,
            "the dashboard: reads everything, sends clinical events and device commands",
            (f"{root}/#",),
            (wire.events_topic("+", "+"), wire.cmd_topic("+", "+", "+")),
        ),
        Account(
            STATUS,
            "kap-monitor status: reads the retained device statuses",
            (wire.status_topic("+", "+", "+"),),
            (),
        ),
    ]
    seen: dict[str, tuple[str, str]] = {}
    for site, room in rooms:
        wire.check_name(site, "site")
        wire.check_name(room, "room")
        name = gateway_account(site, room)
        if name in seen:
            if seen[name] == (site, room):
                continue
            raise ValueError(
                f"rooms {seen[name]} and {(site, room)} would share the account {name}; rename one"
            )
        seen[name] = (site, room)
        accounts.append(
            Account(
                name,
                f"the gateway of {site}/{room}: its own devices' readings and commands only",
                (wire.cmd_topic(site, room, "+"),),
                (
                    wire.obs_topic(site, room, "+"),
                    wire.status_topic(site, room, "+"),
                    wire.reply_topic(site, room, "+"),
                ),
            )
        )
    return accounts


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """mosquitto 2's password file hash: `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(hashed: str, password: str) -> bool:
    """Checks a `$7$` hash as mosquitto does (used by the tests against `mosquitto_passwd`'s output)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a mosquitto PBKDF2-SHA512 ($7$) hash")
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials({self.username!r}, password=***)"


def write_credentials(path: Path, credentials: Credentials) -> None:
    text = (
        f"# KAP Monitor broker account {credentials.username}: keep secret (mode 0600)\n"
        f'username = "{credentials.username}"\npassword = "{credentials.password}"\n'
    )
    _write_private(path, text)


def read_credentials(path: str | Path) -> Credentials:
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"credentials file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"credentials file {path}: not valid TOML: {exc}") from None
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ValueError(f'credentials file {path}: needs username = "..." and password = "..."')
    return Credentials(username, password)


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Where mosquitto listens. TLS is on when `certfile` and `keyfile` are given; `plain_port` None
    makes it TLS-only."""

    bind: str = ""
    plain_port: int | None = 1883
    tls_port: int = 8883
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    max_queued: int = DEFAULT_MAX_QUEUED
    #: mosquitto started as root drops to this user before it reads the password and ACL files
    run_as: str = "mosquitto"

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    def check(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("TLS needs both a certificate file and its key file")
        if self.plain_port is None and not self.tls:
            raise ValueError("without the plain listener a TLS certificate and key are required")
        if self.tls and self.plain_port == self.tls_port:
            raise ValueError(f"the plain and TLS listeners cannot share port {self.tls_port}")
        if self.max_queued < 1000:
            raise ValueError("max queued messages below mosquitto's default 1000 would drop more, not less")


def mosquitto_conf(directory: Path, listeners: ListenerSettings) -> str:
    directory = directory.resolve()
    bind = f" {listeners.bind}" if listeners.bind else ""
    lines = [
        "# mosquitto configuration for KAP Monitor, written by `kap-monitor broker-config`",
        "# Every listener shares one set of accounts and ACLs.",
        f"user {listeners.run_as}",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {directory / 'passwd'}",
        f"acl_file {directory / 'acl'}",
        "",
        "# queued messages of persistent sessions (the core's) survive a broker restart",
        "persistence true",
        f"persistence_location {directory / 'data'}/",
        "autosave_interval 30",
        f"max_queued_messages {listeners.max_queued}",
        "",
    ]
    if listeners.plain_port is not None:
        lines += [f"listener {listeners.plain_port}{bind}", ""]
    if listeners.tls:
        lines += [f"listener {listeners.tls_port}{bind}"]
        if listeners.cafile:
            lines.append(f"cafile {Path(listeners.cafile).resolve()}")
        lines += [
            f"certfile {Path(listeners.certfile or '').resolve()}",
            f"keyfile {Path(listeners.keyfile or '').resolve()}",
            "tls_version tlsv1.2",
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class WrittenConfig:
    directory: Path
    conf: Path
    accounts: list[Account]
    new_passwords: list[str]  # accounts whose password was made now (the others kept theirs)

    def credentials_file(self, username: str) -> Path:
        return self.directory / "credentials" / f"{username}.cred"


def write_broker_config(
    directory: str | Path,
    rooms: Iterable[tuple[str, str]],
    listeners: ListenerSettings,
    *,
    rotate: bool = False,
) -> WrittenConfig:
    listeners.check()
    accounts = accounts_for(rooms)
    out = Path(directory)
    (out / "credentials").mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "data").mkdir(exist_ok=True, mode=0o700)
    written = WrittenConfig(out, out / "mosquitto.conf", accounts, [])
    hashes = []
    for account in accounts:
        path = written.credentials_file(account.username)
        if path.exists() and not rotate:
            credentials = read_credentials(path)
        else:
            credentials = Credentials(account.username, secrets.token_urlsafe(24))
            write_credentials(path, credentials)
            written.new_passwords.append(account.username)
        hashes.append(f"{account.username}:{hash_password(credentials.password)}\n")
    _write_private(out / "passwd", "".join(hashes))
    _write_private(out / "acl", "\n".join(a.acl() for a in accounts))
    written.conf.write_text(mosquitto_conf(out, listeners))
    _hand_to_broker_user(listeners.run_as, [out / "passwd", out / "acl", out / "data"])
    return written


def _hand_to_broker_user(user: str, paths: list[Path]) -> None:
    """Written by root, the files the broker reads must belong to the user mosquitto drops to, or it
    cannot open them. The credentials stay root's: they are for the clients."""
    if os.geteuid() != 0:
        return  # mosquitto started by this user keeps running as this user, and reads its own files
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(
            f"no user {user!r} for mosquitto to run as (install mosquitto, or give --run-as)"
        ) from None
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _write_private(path: Path, text: str) -> None:
    """Created with mode 0600 from the start, so a secret is never readable by others, even briefly."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode on O_CREAT

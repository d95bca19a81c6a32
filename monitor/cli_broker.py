"""`kap-monitor broker-config`: write a locked-down mosquitto configuration for a clinic (see
monitor/broker_config.py for what it contains and why)."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

from monitor import wire
from monitor.broker_config import (
    DEFAULT_MAX_QUEUED,
    ListenerSettings,
    gateway_account,
    read_credentials,
    write_broker_config,
)
from monitor.bus import BrokerConfig, MqttLink, parse_broker


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "broker-config",
        help="write a mosquitto configuration with accounts, ACLs and optional TLS",
        description="Writes mosquitto.conf, a password file, an ACL file and one credentials file per "
        "account (one per room gateway, plus core, web and a read-only status) into DIR. Run it again "
        "after adding a room: existing accounts keep their passwords.",
    )
    parser.add_argument("--dir", required=True, metavar="DIR", help="where to write the files")
    parser.add_argument(
        "--config", metavar="rooms.toml", help="the gateways' room file: one account per room"
    )
    parser.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="[SITE/]ROOM",
        help="repeatable; a room whose gateway gets an account (site from --site when not given)",
    )
    parser.add_argument(
        "--site", default="clinic", help="site of --room entries without one (default clinic)"
    )
    parser.add_argument("--bind", default="", metavar="ADDRESS", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=1883, help="plain MQTT listener port (default 1883)")
    parser.add_argument("--no-plain", action="store_true", help="TLS only: no plain listener")
    parser.add_argument("--tls-port", type=int, default=8883, help="TLS listener port (default 8883)")
    parser.add_argument("--tls-cafile", metavar="PEM", help="CA certificate the broker presents in its chain")
    parser.add_argument(
        "--tls-cert", metavar="PEM", help="the broker's certificate: turns the TLS listener on"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the broker certificate's private key")
    parser.add_argument(
        "--max-queued",
        type=int,
        default=DEFAULT_MAX_QUEUED,
        metavar="N",
        help=f"messages kept per offline persistent client (default {DEFAULT_MAX_QUEUED:,}; mosquitto's 1000 "
        "drops bursts)",
    )
    parser.add_argument(
        "--run-as", default="mosquitto", metavar="USER", help="user mosquitto runs as (default mosquitto)"
    )
    parser.add_argument("--rotate", action="store_true", help="new passwords for every account")
    parser.set_defaults(handler=run)


def _rooms(args: argparse.Namespace) -> list[tuple[str, str]]:
    rooms: list[tuple[str, str]] = []
    if args.config:
        from monitor.devices.gateway import load_rooms

        rooms += [(r.site, r.room) for r in load_rooms(args.config)]
    for text in args.room:
        site, _, room = text.rpartition("/")
        rooms.append((wire.check_name(site or args.site, "site"), wire.check_name(room, "room")))
    return rooms


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        rooms = _rooms(args)
        if not rooms:
            parser.error("give the rooms: --config rooms.toml and/or --room ROOM")
        listeners = ListenerSettings(
            bind=args.bind,
            plain_port=None if args.no_plain else args.port,
            tls_port=args.tls_port,
            cafile=args.tls_cafile,
            certfile=args.tls_cert,
            keyfile=args.tls_key,
            max_queued=args.max_queued,
            run_as=args.run_as,
        )
        written = write_broker_config(args.dir, rooms, listeners, rotate=args.rotate)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    print(f"broker-config: wrote {written.conf}, passwd, acl and credentials/ in {written.directory}")
    for account in written.accounts:
        state = "new password" if account.username in written.new_passwords else "password kept"
        print(f"  {account.username:<24} {state:<14} {written.credentials_file(account.username)}")
    print(
        f"Run: mosquitto -c {written.conf}\n"
        "Give each program its own credentials file (--credentials FILE); keep them mode 0600."
    )
    return 0


# ---- the connection options of gateway, core, web and status ---------------------------------------------


def add_connection_arguments(parser: argparse.ArgumentParser, *, per_room: bool = False) -> None:
    """Credentials and TLS, next to each command's `--broker HOST:PORT`."""
    group = parser.add_argument_group("broker account and TLS (see `kap-monitor broker-config`)")
    group.add_argument("--credentials", metavar="FILE", help="username and password from a credentials file")
    if per_room:
        group.add_argument(
            "--credentials-dir",
            metavar="DIR",
            help="with --config: each room's gateway uses DIR/gw-<site>-<room>.cred",
        )
    group.add_argument("--username", help="broker account (prefer --credentials: a command line is public)")
    group.add_argument("--password", help="its password")
    group.add_argument(
        "--tls-ca", metavar="PEM", help="CA that signed the broker's certificate: turns TLS on"
    )
    group.add_argument("--tls-cert", metavar="PEM", help="client certificate, if the broker asks for one")
    group.add_argument("--tls-key", metavar="PEM", help="the client certificate's private key")


def broker_from_args(args: argparse.Namespace, credentials_file: str | None = None) -> BrokerConfig:
    """The BrokerConfig the command's components share; a ValueError says which option is wrong."""
    credentials_file = credentials_file or args.credentials
    if credentials_file and (args.username or args.password):
        raise ValueError("give --credentials or --username/--password, not both")
    if args.password and not args.username:
        raise ValueError("--password needs --username")
    if credentials_file:
        credentials = read_credentials(credentials_file)
        username, password = credentials.username, credentials.password
    else:
        username, password = args.username, args.password
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert and not args.tls_ca:
        raise ValueError("--tls-cert needs --tls-ca (the CA that signed the broker's certificate)")
    for option, path in (
        ("--tls-ca", args.tls_ca),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{option} {path}: no such file")
    host, port = parse_broker(args.broker)
    return BrokerConfig(host, port, username, password, args.tls_ca, args.tls_cert, args.tls_key)


def room_broker(args: argparse.Namespace, broker: BrokerConfig, site: str, room: str) -> BrokerConfig:
    """With --credentials-dir, the room's own gateway account; otherwise the command's."""
    if not getattr(args, "credentials_dir", None):
        return broker
    credentials = read_credentials(Path(args.credentials_dir) / f"{gateway_account(site, room)}.cred")
    return replace(broker, username=credentials.username, password=credentials.password)


def refusal(links: list[MqttLink], timeout: float = 3.0) -> str | None:
    """Why the broker turned us away (wrong password, not authorised), or None: connected, or merely not
    reachable yet, which the link keeps retrying."""
    deadline = time.monotonic() + timeout
    for link in links:
        link.wait_connected(max(0.0, deadline - time.monotonic()))
        if link.refused is not None:
            who = f"account {link.config.username!r}" if link.config.username else "an anonymous client"
            return f"the broker at {link.config.address} refused {who}: {link.refused}"
    return None


def probe(broker: BrokerConfig, client_id: str) -> str | None:
    """`refusal()` for a program that connects deep inside (the web's live hub): one short connection now."""
    link = MqttLink(broker, f"{client_id}-{os.getpid()}").start()
    try:
        return refusal([link])
    finally:
        link.stop()

"""`kap-monitor`: one command, with a sub-command for each part of the system.

kap-monitor demo        everything in one process: broker, simulators, gateways, core, dashboard
kap-monitor simulate    a simulated device on a pty (or TCP port)
kap-monitor gateway     read devices, publish over MQTT
kap-monitor core        record everything into the event log
kap-monitor web         the dashboard
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from monitor import wire
from monitor.bus import BrokerConfig, parse_broker
from monitor.cli_broker import add_connection_arguments, broker_from_args, probe, refusal, room_broker

log = logging.getLogger("kap-monitor")

DEFAULT_DB = "var/kap.sqlite"
DEFAULT_PORT = 8050

#: Modules that add further sub-commands. Each has `register(sub)`, which adds its parsers and sets
#: `handler=fn(args, parser) -> int` as a default, so a command lives beside the code it drives.
COMMAND_MODULES: tuple[str, ...] = (
    "monitor.cli_broker",
    "monitor.cli_users",
    "monitor.cli_records",
    "monitor.cli_backup",
)


def _broker_arg(text: str) -> str:
    try:
        parse_broker(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _name_arg(what: str):  # type: ignore[no-untyped-def]
    def check(text: str) -> str:
        try:
            return wire.check_name(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def _port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1-65535")
    return port


def _device_arg(text: str):  # type: ignore[no-untyped-def]
    from monitor.devices.adapter import DeviceSpec
    from monitor.devices.protocols import protocol

    try:
        spec = DeviceSpec.parse(text)
        wire.check_name(spec.name, "device")
        protocol(spec.protocol)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kap-monitor",
        description="Real-time monitoring for ketamine-assisted therapy sessions. "
        "Decision support, not a certified medical device.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run everything in one process with simulated rooms",
        description="Embedded MQTT broker, simulated oximeters for 4 rooms on ptys, gateways, "
        "the core recording to SQLite, and the dashboard. Ctrl-C stops it; the recording stays.",
    )
    demo.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file (default {DEFAULT_DB})")
    demo.add_argument(
        "--port", type=_port_arg, default=DEFAULT_PORT, help=f"dashboard port (default {DEFAULT_PORT})"
    )
    demo.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    demo.add_argument(
        "--rooms",
        type=int,
        default=4,
        choices=range(1, 51),
        metavar="N",
        help="number of simulated rooms, 1-50 (default 4)",
    )
    demo.add_argument(
        "--scenario",
        default="routine-iv-infusion",
        help="scenario every room plays: a name from simulators/scenarios/ or a .toml path "
        "(default routine-iv-infusion)",
    )
    demo.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second (default 1)")

    sim = sub.add_parser(
        "simulate",
        help="a simulated device speaking its real protocol on a pty",
        description="Writes the exact bytes of a device protocol to a pty (or TCP port).",
    )
    from simulators import run as sim_run

    sim_run.add_arguments(sim)

    gw = sub.add_parser(
        "gateway",
        help="read devices of a room and publish them over MQTT",
        description="Reads each --device and publishes observations and status to the broker.",
    )
    gw.add_argument(
        "--broker", type=_broker_arg, default="127.0.0.1:1883", help="HOST:PORT of the MQTT broker"
    )
    gw.add_argument("--site", type=_name_arg("site"), default="clinic")
    gw.add_argument("--room", type=_name_arg("room"))
    gw.add_argument(
        "--device",
        type=_device_arg,
        action="append",
        default=[],
        metavar="NAME:PROTOCOL:URL",
        help="repeatable; URL is any pyserial URL: /dev/ttyUSB0, a pty, socket://host:port",
    )
    gw.add_argument("--config", metavar="rooms.toml", help="a room file describing devices of many rooms")
    gw.add_argument(
        "--outbox",
        metavar="PATH",
        default="var/outbox.sqlite",
        help="file keeping what the broker has not acknowledged (default var/outbox.sqlite)",
    )
    gw.add_argument(
        "--outbox-limit",
        type=int,
        default=50_000,
        metavar="N",
        help="messages kept per device while the broker is away; past it the oldest go (default 50000)",
    )
    add_connection_arguments(gw, per_room=True)

    core = sub.add_parser(
        "core",
        help="record every observation and status into the event log",
        description="Subscribes to kap/# and appends to an append-only SQLite event log.",
    )
    core.add_argument("--broker", type=_broker_arg, default="127.0.0.1:1883")
    add_connection_arguments(core)
    core.add_argument("--db", default=DEFAULT_DB)
    core.add_argument(
        "--profile",
        metavar="PROFILE.toml",
        help="the clinic's alarm profile (default: the shipped ketamine session profile)",
    )

    web = sub.add_parser(
        "web",
        help="the dashboard",
        description="Serves the bedside pages; live values are pushed over a WebSocket.",
    )
    web.add_argument("--broker", type=_broker_arg, default="127.0.0.1:1883")
    add_connection_arguments(web)
    web.add_argument("--db", default=DEFAULT_DB)
    web.add_argument("--port", type=_port_arg, default=DEFAULT_PORT)
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument(
        "--site",
        type=_name_arg("site"),
        default="clinic",
        help="site of rooms opened before they report (default clinic)",
    )
    web.add_argument("--https-cert", metavar="PEM", help="serve HTTPS with this certificate (chain) file")
    web.add_argument("--https-key", metavar="PEM", help="the private key of --https-cert")
    web.add_argument(
        "--profile",
        metavar="PROFILE.toml",
        help="the alarm profile the core runs, whose limits the bedside shows (default: the shipped one)",
    )
    status = sub.add_parser(
        "status",
        help="every device's state and counters, as the broker knows them",
        description="Reads the retained device statuses and prints them as a table.",
    )
    status.add_argument("--broker", type=_broker_arg, default="127.0.0.1:1883")
    status.add_argument("--wait", type=float, default=1.5, help="seconds to collect statuses (default 1.5)")
    add_connection_arguments(status)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(0.5)


def run_gateway(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from monitor.devices.gateway import Gateway, RoomConfig, load_rooms

    if args.config:
        if args.device:
            parser.error("give --config or --device, not both")
        try:
            rooms = load_rooms(args.config)
        except ValueError as exc:
            parser.error(str(exc))
    else:
        if not args.room or not args.device:
            parser.error("--room and at least one --device are required (or --config rooms.toml)")
        rooms = [RoomConfig(args.site, args.room, tuple(args.device))]
    if args.credentials_dir and not args.config:
        parser.error("--credentials-dir goes with --config; for one room give --credentials")
    try:
        broker = _broker_config(args)
        # one Gateway per room: with --credentials-dir each room connects as its own account
        brokers = [room_broker(args, broker, r.site, r.room) for r in rooms]
        gateways = [
            Gateway(b, [r], outbox_path=args.outbox, outbox_limit=args.outbox_limit)
            for b, r in zip(brokers, rooms, strict=True)
        ]
    except ValueError as exc:
        parser.error(str(exc))
    for gateway in gateways:
        gateway.start()
    refused = refusal([d.link for g in gateways for d in g.devices])
    if refused is not None:
        print(f"kap-monitor gateway: {refused}", file=sys.stderr)
        for gateway in gateways:
            gateway.stop()
        return 1
    for r, room_broker_config in zip(rooms, brokers, strict=True):
        for d in r.devices:
            print(
                f"gateway: {r.site}/{r.room}/{d.name} ({d.protocol}) from {d.url} -> {room_broker_config}",
                flush=True,
            )
    _wait_for_signal()
    for gateway in gateways:
        gateway.stop()
    return 0


def _broker_config(args: argparse.Namespace) -> BrokerConfig:
    try:
        return broker_from_args(args)
    except ValueError as exc:
        raise ValueError(f"broker options: {exc}") from None


def run_core(args: argparse.Namespace) -> int:
    from monitor.alarm_profile import load_profile
    from monitor.core import Core, StoreUnavailable

    try:
        profile = load_profile(args.profile)
        broker = _broker_config(args)
        core = Core(broker, args.db, profile=profile).start()
    except (OSError, ValueError, StoreUnavailable) as exc:
        print(f"kap-monitor core: {exc}", file=sys.stderr)
        return 2
    refused = refusal([core.link])
    if refused is not None:
        print(f"kap-monitor core: {refused}", file=sys.stderr)
        core.stop()
        return 1
    print(f"core: recording kap/# from {broker} into {args.db}", flush=True)
    _wait_for_signal()
    core.stop()
    print(
        f"core: stored {core.stored} events, {core.duplicates} duplicates skipped, "
        f"rejected {dict(core.rejected) or 'none'}",
        flush=True,
    )
    return 0


def run_web(args: argparse.Namespace) -> int:
    from monitor.alarm_profile import load_profile
    from monitor.webserver import serve_dashboard

    if bool(args.https_cert) != bool(args.https_key):
        print("kap-monitor web: give both --https-cert and --https-key, or neither", file=sys.stderr)
        return 2
    try:
        broker = _broker_config(args)
    except ValueError as exc:
        print(f"kap-monitor web: {exc}", file=sys.stderr)
        return 2
    refused = probe(broker, "kap-web-probe")
    if refused is not None:
        print(f"kap-monitor web: {refused}", file=sys.stderr)
        return 1
    https = (args.https_cert, args.https_key) if args.https_cert else None
    try:
        profile = load_profile(args.profile)
    except (OSError, ValueError) as exc:
        print(f"kap-monitor web: {exc}", file=sys.stderr)
        return 2
    serve_dashboard(broker, args.db, args.host, args.port, site=args.site, https=https, profile=profile)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from monitor.demo import run_demo

        if not 0 < args.speed <= 1000:
            parser.error(f"--speed {args.speed:g}: expected a number above 0, at most 1000")
        return run_demo(
            db=args.db,
            host=args.host,
            port=args.port,
            rooms=args.rooms,
            scenario=args.scenario,
            speed=args.speed,
        )
    if args.command == "simulate":
        from simulators import run as sim_run

        return sim_run.run(args)
    if args.command == "gateway":
        return run_gateway(args, parser)
    if args.command == "core":
        return run_core(args)
    if args.command == "web":
        return run_web(args)
    if args.command == "status":
        from monitor.status_report import collect_statuses, format_table

        try:
            print(format_table(collect_statuses(_broker_config(args), args.wait)))
        except (ConnectionError, ValueError) as exc:
            print(f"kap-monitor status: {exc}", file=sys.stderr)
            return 1
        return 0
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args, parser))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

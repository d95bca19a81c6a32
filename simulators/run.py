"""`kap-monitor simulate`: run one simulated bedside device on a serial port (pty) or a TCP port.

The CLI wires it in with `add_arguments(subparser)` and `run(args)`; `python -m simulators.run ...` works
too. Examples:

    python -m simulators.run --link /tmp/kap-oximeter --scenario ketamine-iv --speed 20
    python -m simulators.run --tcp 127.0.0.1:4001 --control      # then type: spo2 85 / release

The first stdout line says where the device is served, then nothing else goes to stdout (logs and control
replies go to stderr), so a test or a supervisor can read that one line.

Lifetime: runs until SIGTERM or SIGINT, then exits 0 after removing the symlink. In `--control` mode,
end of input on stdin does *not* stop the device: a closed pipe or `</dev/null` is not an operator asking
the patient to vanish; only a signal does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from simulators.masimo import VARIANTS, MasimoSimulator
from simulators.physiology import (
    SCENARIOS,
    VITAL_NAMES,
    Scenario,
    SimulatedPatient,
    parse_sensor_state,
    parse_vital,
)
from simulators.pty_link import PtyLink
from simulators.scenario_files import available_scenarios, load_scenario
from simulators.tcp_link import TcpLink

log = logging.getLogger(__name__)

PROTOCOLS: Final[tuple[str, ...]] = ("masimo-ascii",)

CONTROL_HELP: Final = (
    "commands: spo2 N | pulse N | pi N (hold an exact value) ; release [spo2|pulse|pi] (resume noise) ; "
    "target spo2|pulse|pi N [RAMP_SECONDS] (move there naturally) ; sensor on|off|none ; help"
)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """`--device NAME:PROTOCOL`: the device's name (for logs) and the wire protocol it speaks."""

    name: str
    protocol: str


def device_spec(text: str) -> DeviceSpec:
    name, sep, protocol = text.partition(":")
    if not sep or not name or not protocol:
        raise argparse.ArgumentTypeError(f"expected NAME:PROTOCOL (e.g. oximeter:masimo-ascii), got {text!r}")
    if protocol not in PROTOCOLS:
        raise argparse.ArgumentTypeError(f"unknown protocol {protocol!r}; supported: {', '.join(PROTOCOLS)}")
    return DeviceSpec(name, protocol)


def host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")  # [::1]:4001
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (port 0 picks a free one), got {text!r}")
    return host, port


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `simulate` options to `parser` (the CLI's sub-parser, or a standalone one)."""
    parser.add_argument(
        "--device",
        type=device_spec,
        default=DeviceSpec("oximeter", "masimo-ascii"),
        metavar="NAME:PROTOCOL",
        help=f"device to simulate; protocols: {', '.join(PROTOCOLS)} (default: oximeter:masimo-ascii)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--rooms",
        type=int,
        metavar="N",
        help="simulate N complete rooms (oximeter nonin-f2, cuff suntech-nibp, pump alaris-asena) on ptys in "
        "--link-dir, and write a rooms.toml there for `kap-monitor gateway --config`",
    )
    where.add_argument(
        "--link", metavar="PATH", help="symlink to create to the pty slave, the stable path a gateway opens"
    )
    where.add_argument(
        "--tcp",
        type=host_port,
        metavar="HOST:PORT",
        help="serve over TCP instead, like a serial-to-Ethernet converter (pyserial: socket://HOST:PORT)",
    )
    parser.add_argument(
        "--variant", choices=VARIANTS, default="radical7", help="Masimo model and line layout"
    )
    parser.add_argument(
        "--link-dir", metavar="DIR", default="var/sim", help="where --rooms puts its device links (var/sim)"
    )
    parser.add_argument(
        "--scenario",
        choices=sorted(set(SCENARIOS) | set(available_scenarios())),
        default=None,
        help="scripted patient: a file in simulators/scenarios/ "
        "(default: stable; routine-iv-infusion with --rooms)",
    )
    parser.add_argument(
        "--speed", type=positive_float, default=1.0, help="simulated seconds per wall second (default 1)"
    )
    parser.add_argument(
        "--period",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between lines (default 1)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable patient")
    parser.add_argument(
        "--control", action="store_true", help="read commands from stdin, one per line. " + CONTROL_HELP
    )


def _scenario(name: str) -> Scenario:
    """The in-code scenarios keep their exact behaviour; every other name is a scenario file."""
    return SCENARIOS[name] if name in SCENARIOS else load_scenario(name).scenario


class ControlError(ValueError):
    """A control command that could not be applied; its message is meant for the operator."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def apply_command(patient: SimulatedPatient, line: str) -> str | None:
    """Apply one control command to `patient`; return what was done, None for a blank line or a comment.

    Raises ControlError with an operator-readable message for anything it does not understand.
    """
    words = line.split("#", 1)[0].lower().split()
    if not words:
        return None
    command, rest = words[0], words[1:]
    try:
        if command in VITAL_NAMES and len(rest) == 1:
            value = _number(rest[0])
            patient.hold(parse_vital(command), value)
            return f"{command} held at {value:g}"
        if command == "release" and len(rest) <= 1:
            patient.release(parse_vital(rest[0]) if rest else None)
            return f"released {rest[0] if rest else 'all vitals'}"
        if command == "target" and len(rest) in (2, 3):
            vital = parse_vital(rest[0])
            value = _number(rest[1])
            ramp = _number(rest[2]) if len(rest) == 3 else 0.0
            patient.set_target(vital, value, ramp)
            return f"{vital} heading for {value:g} over {ramp:g} s"
        if command == "sensor" and len(rest) == 1:
            patient.set_sensor(parse_sensor_state(rest[0]))
            return f"sensor {rest[0]}"
        if command == "help" and not rest:
            return CONTROL_HELP
    except ValueError as exc:
        raise ControlError(f"{command}: {exc}") from None
    raise ControlError(f"unknown command {line.strip()!r}; {CONTROL_HELP}")


def _raw_lines(fd: int) -> Iterator[bytes]:
    """Lines from `fd` read with os.read, not through sys.stdin.

    Why: the control thread is a daemon blocked in a read when SIGTERM arrives. If that read held the lock
    of sys.stdin's BufferedReader, interpreter shutdown would abort ("could not acquire lock ... at
    interpreter shutdown") and the process would die with SIGABRT instead of exiting 0.
    """
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError as exc:  # stdin gone (EIO from a closed terminal, EBADF): same as end of input
            log.debug("control input ended: %s", exc)
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def _read_commands(patient: SimulatedPatient, lines: Iterable[bytes]) -> None:
    """Control loop (own thread): one command per line; errors are reported and ignored, never fatal."""
    for raw in lines:
        text = raw.decode("utf-8", errors="replace")
        try:
            reply = apply_command(patient, text)
        except ControlError as exc:
            print(f"control: error: {exc}", file=sys.stderr, flush=True)
            continue
        except Exception as exc:  # a typo must never take the device down
            print(f"control: error: {exc!r}", file=sys.stderr, flush=True)
            continue
        if reply:
            print(f"control: {reply}", file=sys.stderr, flush=True)
    print("control: stdin closed; still simulating until SIGTERM or SIGINT", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Serve the device until SIGTERM/SIGINT; 0 on a clean stop, 1 if the port could not be set up."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    if args.rooms is not None:
        from simulators.room import run_rooms

        return run_rooms(
            args.rooms, args.scenario or "routine-iv-infusion", args.speed, Path(args.link_dir), args.seed
        )
    device: DeviceSpec = args.device
    link: PtyLink | TcpLink
    try:
        if args.tcp is not None:
            link = TcpLink(*args.tcp)
            where = link.url
        else:
            link = PtyLink(args.link)
            where = f"{args.link} (pty {link.slave_path})"
    except OSError as exc:
        print(f"kap-monitor simulate: cannot serve {device.name}: {exc}", file=sys.stderr, flush=True)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    patient = SimulatedPatient(args.seed)
    simulator = MasimoSimulator(
        link.write,
        patient=patient,
        scenario=_scenario(args.scenario or "stable"),
        speed=args.speed,
        period=args.period,
        variant=args.variant,
    )
    previous_handlers: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    try:
        if threading.current_thread() is threading.main_thread():  # signal() only works there
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous_handlers[signum] = signal.signal(signum, request_stop)
        simulator.start()
        print(f"simulating {device.protocol} on {where}", flush=True)
        log.info("%s: %s, scenario %s, speed %g", device.name, args.variant, args.scenario, args.speed)
        if args.control:
            commands = _raw_lines(sys.stdin.fileno())
            threading.Thread(
                target=_read_commands, args=(patient, commands), name="control", daemon=True
            ).start()
        while not stop.wait(0.2):
            pass
    finally:
        simulator.stop()
        link.close()
        for restored, handler in previous_handlers.items():
            if handler is not None:  # None: installed outside Python, nothing we can put back
                signal.signal(restored, handler)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kap-monitor simulate", description="Simulate a bedside device on a pty or a TCP port."
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""`kap-monitor demo`: the whole system in one process, nothing to install or configure.

An embedded MQTT broker; per room a scripted patient with a Nonin waveform oximeter, a SunTech NIBP cuff
and an Alaris infusion pump, each writing its real protocol into a pty; a gateway reading every pty; the
core recording into SQLite; and the dashboard. Every room plays the scenario given (a routine IV infusion
by default), each with its own patient.
"""

from __future__ import annotations

import logging
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from monitor.broker import EmbeddedBroker
from monitor.core import Core
from monitor.devices.adapter import DeviceSpec
from monitor.devices.gateway import Gateway, RoomConfig
from monitor.users import UserStore
from monitor.webserver import serve_dashboard
from simulators.room import SimulatedRoom
from simulators.scenario_files import load_scenario

log = logging.getLogger(__name__)

SITE = "clinic"
DEFAULT_SCENARIO = "routine-iv-infusion"


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


#: the demo's documented accounts (name = password): for a demonstration only, never in a clinic
DEMO_ACCOUNTS = (("demo", "nurse"), ("supervisor", "supervisor"), ("admin", "admin"))


def demo_accounts(db: str, rooms: list[str]) -> str:
    """Create the demo accounts that do not exist yet in `db`, and say how to sign in."""
    store = UserStore(db)
    try:
        for name, role in DEMO_ACCOUNTS:
            store.ensure(name, role, name, rooms=rooms if role == "nurse" else ())
    finally:
        store.close()
    return (
        "demo: sign in as demo / demo (nurse of every demo room), supervisor / supervisor, or admin / admin"
        " (demo accounts: never use them in a clinic)"
    )


def run_demo(
    *, db: str, host: str, port: int, rooms: int = 4, scenario: str = DEFAULT_SCENARIO, speed: float = 1.0
) -> int:
    if not _port_is_free(host, port):
        print(
            f"kap-monitor demo: port {port} on {host} is in use; choose another with --port N",
            file=sys.stderr,
        )
        return 2
    try:
        spec = load_scenario(scenario)
    except ValueError as exc:
        print(f"kap-monitor demo: {exc}", file=sys.stderr)
        return 2
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    link_dir = Path(tempfile.mkdtemp(prefix="kap-demo-"))
    broker = EmbeddedBroker().start()
    simulated: list[SimulatedRoom] = []
    core: Core | None = None
    gateway: Gateway | None = None
    try:
        for i in range(rooms):
            room = SimulatedRoom(f"room{i + 1}", spec, link_dir, speed=speed, seed=i + 1).start()
            simulated.append(room)
        room_configs = [
            RoomConfig(SITE, r.name, tuple(DeviceSpec(d.name, d.protocol, str(d.path)) for d in r.devices))
            for r in simulated
        ]
        print(
            f"demo: {rooms} rooms, scenario {scenario} at {speed:g}x: oximeter (nonin-f2), "
            f"cuff (suntech-nibp), pump (alaris-asena) on ptys in {link_dir}",
            flush=True,
        )
        core = Core(broker.address, db, client_id="kap-core-demo").start()
        gateway = Gateway(broker.address, room_configs).start()
        print(f"demo: MQTT broker on {broker.address}; recording into {db}", flush=True)
        print(demo_accounts(db, [r.name for r in simulated]), flush=True)
        serve_dashboard(
            broker.address,
            db,
            host,
            port,
            site=SITE,
            announce=f"KAP Monitor demo is up: open http://{host}:{port}/  (Ctrl-C stops it)",
        )
    finally:
        if gateway is not None:
            gateway.stop()
        for room in simulated:
            room.stop()
        shutil.rmtree(link_dir, ignore_errors=True)
        if core is not None:
            core.wait_idle()
            core.stop()
            print(f"demo: stopped; {core.stored} events recorded in {db}", flush=True)
        broker.stop()
    return 0

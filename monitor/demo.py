"""`kap-monitor demo`: the whole system in one process, nothing to install or configure.

An embedded MQTT broker, a simulated Masimo oximeter per room writing real ASCII lines into a pty pair, a
gateway reading each pty, the core recording into SQLite, and the dashboard. Each room plays a different
scenario so there is something to see: stable, IV ketamine, desaturation, sensor coming off.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

from monitor.broker import EmbeddedBroker
from monitor.core import Core
from monitor.devices.adapter import DeviceSpec
from monitor.devices.gateway import Gateway, RoomConfig
from monitor.webserver import serve_dashboard
from simulators.masimo import MasimoSimulator
from simulators.physiology import SCENARIOS
from simulators.pty_link import PtyLink

log = logging.getLogger(__name__)

SITE = "clinic"
ROOM_SCENARIOS = ("stable", "ketamine-iv", "desaturation", "sensor-off")


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def run_demo(*, db: str, host: str, port: int, rooms: int = 4) -> int:
    if not _port_is_free(host, port):
        print(
            f"kap-monitor demo: port {port} on {host} is in use; choose another with --port N",
            file=sys.stderr,
        )
        return 2
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker().start()
    links: list[PtyLink] = []
    simulators: list[MasimoSimulator] = []
    room_configs: list[RoomConfig] = []
    core: Core | None = None
    gateway: Gateway | None = None
    try:
        for i in range(rooms):
            name = f"room{i + 1}"
            scenario = ROOM_SCENARIOS[i % len(ROOM_SCENARIOS)]
            link = PtyLink()
            links.append(link)
            simulators.append(MasimoSimulator(link.write, scenario=SCENARIOS[scenario], seed=i + 1).start())
            oximeter = DeviceSpec("oximeter", "masimo-ascii", link.slave_path)
            room_configs.append(RoomConfig(SITE, name, (oximeter,)))
            print(f"demo: {name}: simulated Masimo oximeter ({scenario}) on {link.slave_path}", flush=True)
        core = Core(broker.address, db, client_id="kap-core-demo").start()
        gateway = Gateway(broker.address, room_configs).start()
        print(f"demo: MQTT broker on {broker.address}; recording into {db}", flush=True)
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
        for simulator in simulators:
            simulator.stop()
        for link in links:
            link.close()
        if core is not None:
            core.wait_idle()
            core.stop()
            print(f"demo: stopped; {core.stored} events recorded in {db}", flush=True)
        broker.stop()
    return 0

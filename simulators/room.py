"""A simulated treatment room: one scripted patient and the three devices a KAP room has.

A Nonin waveform oximeter, a SunTech NIBP cuff and an Alaris infusion pump, each speaking its real
protocol on its own pty (a stable symlink per device, so a gateway can be told where to look), all
reading the same `SimulatedPatient`, which a scenario file drives. The scenario's device actions are
routed here: the probe coming off, the NIBP module failing, the pump occluding or starting the infusion
the patient is receiving, and a serial cable being pulled (the pty disappears) and plugged back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from simulators.alaris import AlarisPumpSimulator
from simulators.nonin import NoninSimulator
from simulators.physiology import DeviceAction, SimulatedPatient
from simulators.pty_link import PtyLink
from simulators.scenario_files import ScenarioSpec
from simulators.suntech import SuntechModuleSimulator

log = logging.getLogger(__name__)

#: device name in a room -> the protocol its simulator speaks (what a gateway's --device needs)
ROOM_DEVICES = {"oximeter": "nonin-f2", "nibp": "suntech-nibp", "pump": "alaris-asena"}


class SwitchablePort:
    """A simulator's end of a serial line that can be unplugged and plugged back.

    Unplugging closes the pty (the gateway's reads fail at once, as with a pulled USB cable); plugging
    back makes a new pty behind the same symlink. The simulator keeps running and keeps its state (the
    pump its volume infused); while unplugged its bytes go nowhere, as on a real cable.
    """

    def __init__(self, link_path: Path) -> None:
        self.link_path = link_path
        self._lock = threading.Lock()
        self._link: PtyLink | None = PtyLink(link_path)

    @property
    def plugged(self) -> bool:
        return self._link is not None

    def read(self) -> bytes:
        with self._lock:
            link = self._link
            if link is None:
                return b""
            try:
                return os.read(link.master_fd, 4096)
            except (BlockingIOError, OSError):
                return b""

    def write(self, data: bytes) -> int:
        with self._lock:
            if self._link is None:
                return len(data)  # a line with nobody on it: the bytes are lost
            return self._link.write(data)

    def unplug(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    def plug(self) -> None:
        with self._lock:
            if self._link is None:
                self._link = PtyLink(self.link_path)

    def close(self) -> None:
        self.unplug()


@dataclass(frozen=True, slots=True)
class RoomDevice:
    name: str
    protocol: str
    path: Path


class SimulatedRoom:
    def __init__(
        self,
        name: str,
        spec: ScenarioSpec,
        link_dir: Path,
        *,
        speed: float = 1.0,
        seed: int | None = None,
        nibp_measure_seconds: float = 25.0,
    ) -> None:
        self.name = name
        self.spec = spec
        link_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {device: SwitchablePort(link_dir / f"{name}-{device}") for device in ROOM_DEVICES}
        self.patient: SimulatedPatient = spec.new_patient(seed)
        oximeter_port = self.ports["oximeter"]
        # the oximeter steps the patient (and so plays the scenario); the others only read it
        self.oximeter = NoninSimulator(
            oximeter_port.write, patient=self.patient, scenario=spec.scenario, speed=speed, seed=seed
        )
        self.oximeter.player.on_device_action = self._on_device_action
        self.nibp = SuntechModuleSimulator(
            read=self.ports["nibp"].read,
            write=self.ports["nibp"].write,
            bp_source=self._blood_pressure,
            measure_seconds=max(1.0, nibp_measure_seconds / speed),
        )
        self.pump = AlarisPumpSimulator(
            (self.ports["pump"].read, self.ports["pump"].write), speed=speed, seed=seed
        )

    @property
    def devices(self) -> list[RoomDevice]:
        return [RoomDevice(d, p, self.ports[d].link_path) for d, p in ROOM_DEVICES.items()]

    def _blood_pressure(self) -> tuple[int, int, int, int]:
        v = self.patient.vitals()
        return round(v.systolic), round(v.diastolic), round(v.mean), round(v.pulse)

    def _on_device_action(self, action: DeviceAction) -> None:
        log.info("%s: %s %s %s", self.name, action.device, action.action, dict(action.args) or "")
        port = self.ports.get(action.device)
        if action.action == "cable-pull" and port is not None:
            port.unplug()
        elif action.action == "cable-return" and port is not None:
            port.plug()
        elif action.device == "nibp" and action.action == "nibp-error":
            self.nibp.fail_next(int(action.args.get("code", 87)))
        elif action.device == "pump" and action.action == "start-infusion":
            self.pump.start_infusion(float(action.args["rate_ml_h"]), action.args.get("vtbi_ml"))
        elif action.device == "pump" and action.action == "stop-infusion":
            self.pump.stop_infusion()
        elif action.device == "pump" and action.action == "occlusion":
            self.pump.raise_alarm("OCCLUSION")
        elif action.device == "pump" and action.action == "clear-alarm":
            self.pump.clear_alarm()
        # oximeter probe actions act on the patient's sensor, which the player has already set

    def start(self) -> SimulatedRoom:
        self.nibp.start()
        self.pump.start()
        self.oximeter.start()
        return self

    def stop(self) -> None:
        for simulator in (self.oximeter, self.nibp, self.pump):
            with contextlib.suppress(Exception):
                simulator.stop()
        for port in self.ports.values():
            port.close()


def rooms_toml(rooms: list[SimulatedRoom], site: str = "clinic") -> str:
    """A room file for `kap-monitor gateway --config` describing these simulated rooms."""
    lines = [f'site = "{site}"']
    for room in rooms:
        devices = ", ".join(f'"{d.name}:{d.protocol}:{d.path}"' for d in room.devices)
        lines += ["", "[[room]]", f'name = "{room.name}"', f"devices = [{devices}]"]
    return "\n".join(lines) + "\n"


def run_rooms(count: int, scenario: str, speed: float, link_dir: Path, seed: int | None) -> int:
    """`kap-monitor simulate --rooms N`: N complete rooms until SIGINT/SIGTERM."""
    import signal

    from simulators.scenario_files import load_scenario

    if not 1 <= count <= 200:
        print(f"kap-monitor simulate: --rooms must be 1-200, not {count}", flush=True)
        return 2
    spec = load_scenario(scenario)
    rooms = [
        SimulatedRoom(
            f"room{i + 1}", spec, link_dir, speed=speed, seed=None if seed is None else seed + i
        ).start()
        for i in range(count)
    ]
    config = link_dir / "rooms.toml"
    config.write_text(rooms_toml(rooms))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"simulating {count} rooms ({scenario}, speed {speed:g}); "
        f"gateway: kap-monitor gateway --config {config}",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for room in rooms:
            room.stop()
        config.unlink(missing_ok=True)
    return 0

"""The gateway: runs a room's device adapters and publishes what they produce over MQTT (QoS 1).

Each device gets its own MQTT connection so that its status topic can carry its own Last Will: if the
gateway process dies, the broker itself announces every one of its devices `offline`.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from monitor import wire
from monitor.bus import Broker, MqttLink
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.devices.adapter import DeviceAdapter, DeviceSpec
from monitor.devices.protocols import protocol
from monitor.model import CommandReply, DeviceStatus, Observation

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    site: str
    room: str
    devices: tuple[DeviceSpec, ...]


def load_rooms(path: str | Path) -> list[RoomConfig]:
    """A room file:

    site = "clinic"
    [[room]]
    name = "room1"
    devices = ["oximeter:masimo-ascii:/dev/ttyUSB0"]
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"room file {path}: {exc}") from exc
    default_site = data.get("site", "clinic")
    rooms = []
    for i, entry in enumerate(data.get("room", [])):
        if "name" not in entry or not entry.get("devices"):
            raise ValueError(f"room file {path}: room #{i + 1} needs a name and at least one device")
        site = wire.check_name(str(entry.get("site", default_site)), "site")
        name = wire.check_name(str(entry["name"]), "room")
        rooms.append(RoomConfig(site, name, tuple(DeviceSpec.parse(d) for d in entry["devices"])))
    if not rooms:
        raise ValueError(f"room file {path}: no [[room]] entries")
    return rooms


class DeviceGateway:
    """One device: its adapter plus its MQTT link."""

    def __init__(
        self, broker: Broker, site: str, room: str, spec: DeviceSpec, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        wire.check_name(spec.name, "device")
        proto = protocol(spec.protocol)
        self.adapter = DeviceAdapter(site, room, spec, proto, self._publish, clock=clock)
        will = (
            wire.status_topic(site, room, spec.name),
            wire.encode_status(self.adapter.offline_status("gateway connection lost")),
        )
        self.link = MqttLink(
            broker,
            f"kap-gw-{site}-{room}-{spec.name}",
            will=will,
            keepalive=5,
            subscriptions=[wire.cmd_topic(site, room, spec.name)],
            on_message=self._on_command,
        )
        self.rejected_commands = 0
        self.published = 0
        self._last_info: mqtt.MQTTMessageInfo | None = None

    def _on_command(self, topic: str, payload: bytes, retained: bool) -> None:
        if retained:  # a stale retained command must never start a measurement
            return
        try:
            command = wire.decode_command(payload)
        except wire.WireError as exc:
            self.rejected_commands += 1
            log.warning("%s: rejected command on %s: %s", self.link.client_id, topic, exc)
            return
        log.info("%s: command %r from %s", self.link.client_id, command.name, command.requested_by or "?")
        self.adapter.command(command.name, command.args, command.request_id)

    def _publish(self, event: Observation | DeviceStatus | CommandReply) -> None:
        if isinstance(event, CommandReply):
            topic = wire.reply_topic(event.site, event.room, event.device)
            self._last_info = self.link.publish(topic, wire.encode_reply(event))
            return
        if isinstance(event, Observation):
            topic, payload, retain = (
                wire.obs_topic(event.site, event.room, event.device),
                wire.encode_observation(event),
                False,
            )
        else:
            topic, payload, retain = (
                wire.status_topic(event.site, event.room, event.device),
                wire.encode_status(event),
                True,
            )
        self._last_info = self.link.publish(topic, payload, retain=retain)
        self.published += 1

    def start(self) -> None:
        self.link.start()
        # connect before reading so the first readings and the first status are not queued behind a
        # connection (paho would deliver them, but a broker seeing many clients at once is slower)
        if not self.link.wait_connected(3):
            log.warning("%s: broker not reachable yet; readings are queued until it is", self.link.client_id)
        self.adapter.start()

    def stop(self) -> None:
        self.adapter.stop()
        if self._last_info is not None and self.link.connected:
            try:  # let the final offline status reach the broker before we disconnect
                self._last_info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                log.warning("%s: final status not confirmed by the broker", self.link.client_id)
        self.link.stop()


class Gateway:
    """All devices of one or more rooms."""

    def __init__(self, broker: Broker, rooms: list[RoomConfig], clock: Clock = SYSTEM_CLOCK) -> None:
        self.devices = [DeviceGateway(broker, r.site, r.room, d, clock) for r in rooms for d in r.devices]

    def start(self) -> Gateway:
        for device in self.devices:
            device.start()
        return self

    def stop(self) -> None:
        for device in self.devices:
            device.stop()

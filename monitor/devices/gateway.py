"""The gateway: runs a room's device adapters and publishes what they produce over MQTT (QoS 1).

Each device gets its own MQTT connection so that its status topic can carry its own Last Will: if the
gateway process dies, the broker itself announces every one of its devices `offline`. The connections
of a process share one network thread (`monitor.mqtt_loop`), so a device costs one socket, not a thread,
a socket and a socketpair.

Everything a device produces goes through the process's outbox (`monitor.outbox`): kept on disk while
the broker is away or slow to acknowledge, delivered in order when it is back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from monitor import wire
from monitor.bus import Broker, MqttLink
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.devices.adapter import DeviceAdapter, DeviceSpec
from monitor.devices.protocols import protocol
from monitor.model import CommandReply, DeviceStatus, Observation
from monitor.mqtt_loop import NetworkLoop
from monitor.outbox import DEFAULT_LIMIT, DEFAULT_PATH, Outbox, OutboxFile

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
        self,
        broker: Broker,
        site: str,
        room: str,
        spec: DeviceSpec,
        clock: Clock = SYSTEM_CLOCK,
        *,
        outbox: OutboxFile,
        network: NetworkLoop | None = None,
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
            on_published=lambda mid: self.outbox.on_published(mid),
            on_disconnect=lambda: self.outbox.on_disconnect(),
            network=network,
            on_connect=self._on_connected,
        )
        self._connects = 0
        self.outbox: Outbox = outbox.outbox(f"{self.link.config.address}/{self.link.client_id}", self.link)
        self.rejected_commands = 0
        self.published = 0

    def _on_connected(self) -> None:
        """Back after an outage: say again how the device is, over the Last Will the broker published."""
        self._connects += 1
        if self._connects > 1:
            self.adapter.refresh_status()

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
            self.outbox.publish(
                wire.reply_topic(event.site, event.room, event.device), wire.encode_reply(event)
            )
            return
        if isinstance(event, Observation):
            self.outbox.publish(
                wire.obs_topic(event.site, event.room, event.device), wire.encode_observation(event)
            )
            self.published += 1
            return
        if self.outbox.evicted or self.outbox.unsaved:  # what the outbox had to drop, where people look
            losses = {"outbox_evicted": self.outbox.evicted, "outbox_unsaved": self.outbox.unsaved}
            event = dataclasses.replace(event, details={**event.details, **losses})
        topic = wire.status_topic(event.site, event.room, event.device)
        self.outbox.publish(topic, wire.encode_status(event), retain=True)

    def start(self) -> None:
        self.link.start()
        # connect before reading so the first readings and the first status are not queued behind a
        # connection (the outbox would deliver them, but a broker seeing many clients at once is slower)
        if not self.link.wait_connected(3):
            log.warning("%s: broker not reachable yet; readings are kept until it is", self.link.client_id)
        self.adapter.start()

    def stop(self) -> None:
        self.adapter.stop()
        deadline = time.monotonic() + 2
        while self.link.connected and self.outbox.pending and time.monotonic() < deadline:
            time.sleep(0.02)  # let the final offline status (and anything before it) reach the broker
        self.outbox.close()  # what the broker has not acknowledged stays in the file for the next start
        log.info(
            "%s: %d observations produced, %d messages acknowledged by the broker, %d left in the outbox, "
            "%d evicted",
            self.link.client_id,
            self.published,
            self.outbox.acknowledged,
            self.outbox.pending,
            self.outbox.evicted,
        )
        self.link.stop()


class Gateway:
    """All devices of one or more rooms. Gateways of one process share one outbox file per path."""

    def __init__(
        self,
        broker: Broker,
        rooms: list[RoomConfig],
        clock: Clock = SYSTEM_CLOCK,
        *,
        outbox_path: str | Path = DEFAULT_PATH,
        outbox_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.outbox = OutboxFile.acquire(outbox_path, limit=outbox_limit)
        self.network = NetworkLoop.acquire()  # one network thread for every device of the process
        try:
            self.devices = [
                DeviceGateway(broker, r.site, r.room, d, clock, outbox=self.outbox, network=self.network)
                for r in rooms
                for d in r.devices
            ]
        except BaseException:
            self.outbox.release()
            self.network.release()
            raise

    def start(self) -> Gateway:
        for device in self.devices:
            device.start()
        return self

    def stop(self) -> None:
        for device in self.devices:
            device.stop()
        self.outbox.release()
        self.network.release()

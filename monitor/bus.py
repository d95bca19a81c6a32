"""A thin paho-mqtt client: connect in the background, reconnect with backoff, resubscribe on reconnect.

Every component (gateway adapters, core, web) talks to the broker through this, so QoS, reconnection and
the Last Will are set the same way everywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]  # topic, payload, retained


def parse_broker(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `HOST`, port 1883) -> (host, port); a clear error for anything else."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "1883"
    if not host:
        raise ValueError(f"broker {text!r}: expected HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"broker {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"broker {text!r}: port {port} is out of range")
    return host, port


class MqttLink:
    """One MQTT connection. `start()` returns at once; `wait_connected()` waits for the first CONNACK."""

    def __init__(
        self,
        broker: str,
        client_id: str,
        *,
        subscriptions: Iterable[str] = (),
        on_message: MessageHandler | None = None,
        will: tuple[str, bytes] | None = None,
        persistent_session: bool = False,
        keepalive: int = 10,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.host, self.port = parse_broker(broker)
        self.client_id = client_id
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connect_hook = on_connect
        self._keepalive = keepalive
        self._connected = threading.Event()
        self._stopping = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent_session,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=5)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> MqttLink:
        self.client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._connected.clear()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """QoS 1. While disconnected paho queues the message and sends it on reconnect."""
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("%s: broker refused connection: %s", self.client_id, reason_code)
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._connected.set()
        if self._on_connect_hook is not None:
            self._on_connect_hook()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if self._connected.is_set() and not self._stopping:
            log.warning("%s: lost broker connection (%s); reconnecting", self.client_id, reason_code)
        self._connected.clear()

    def _handle_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        if self._on_message is None:
            return
        try:
            self._on_message(message.topic, message.payload, bool(message.retain))
        except Exception:  # a handler bug must not kill the network thread and stop all delivery
            log.exception("%s: handler failed for a message on %s", self.client_id, message.topic)

"""A thin paho-mqtt client: connect in the background, reconnect with backoff, resubscribe on reconnect.

Every component (gateway adapters, core, web) talks to the broker through this, so QoS, reconnection and
the Last Will are set the same way everywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

if TYPE_CHECKING:
    from monitor.mqtt_loop import NetworkLoop

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]  # topic, payload, retained


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to `on_delivery`: the receiver acknowledges it (`MqttLink.ack`) once it is safe.

    With manual acknowledgement the broker keeps the message for a persistent session until the PUBACK,
    so a receiver that dies before storing it gets it again when it reconnects.
    """

    topic: str
    payload: bytes
    retained: bool
    mid: int
    qos: int


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


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where the broker is and how to prove who we are: what every component hands to its MqttLink.

    The CLI builds one from `--broker HOST:PORT` plus the credential and TLS options, and the gateway, core,
    web and status pass it through unchanged, so a new option is added here once. A plain `HOST:PORT`
    string is still accepted everywhere (the embedded demo and tests use an anonymous loopback broker).
    TLS is on when a CA file is given; a client certificate (`tls_cert` + `tls_key`) is optional.
    """

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @classmethod
    def of(cls, broker: Broker) -> BrokerConfig:
        if isinstance(broker, BrokerConfig):
            return broker
        host, port = parse_broker(broker)
        return cls(host, port)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    def __str__(self) -> str:
        """How logs and messages name the broker: never with the password."""
        who = f"{self.username}@" if self.username else ""
        return f"{who}{self.address}{' (TLS)' if self.tls else ''}"


#: what components accept and pass on to MqttLink unchanged
Broker = BrokerConfig | str


class MqttLink:
    """One MQTT connection. `start()` returns at once; `wait_connected()` waits for the first CONNACK."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        *,
        subscriptions: Iterable[str] = (),
        on_message: MessageHandler | None = None,
        will: tuple[str, bytes] | None = None,
        persistent_session: bool = False,
        keepalive: int = 10,
        on_connect: Callable[[], None] | None = None,
        on_delivery: Callable[[Delivery], None] | None = None,
        on_published: Callable[[int], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        network: NetworkLoop | None = None,
    ) -> None:
        """`on_delivery` replaces `on_message` when the receiver acknowledges messages itself (`ack`);
        `on_published(mid)` is called on paho's network thread when the broker acknowledged a publish
        (it must not block or take locks held around `publish`); `on_disconnect` when the link drops.
        With `network` the link shares that loop's threads instead of running its own (see mqtt_loop)."""
        self.config = BrokerConfig.of(broker)
        self.host, self.port = self.config.host, self.config.port
        self.client_id = client_id
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connect_hook = on_connect
        self._on_delivery = on_delivery
        self._on_published = on_published
        self._on_disconnect_hook = on_disconnect
        self._network = network
        self._keepalive = keepalive
        self._connected = threading.Event()
        self._answered = threading.Event()  # a CONNACK came, accepting or refusing
        #: why the broker refused our last CONNECT (bad credentials, not authorised), None once accepted
        self.refused: str | None = None
        self._stopping = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=on_delivery is not None,
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=5)
        if self.config.username is not None:
            self.client.username_pw_set(self.config.username, self.config.password)
        if self.config.tls:
            self.client.tls_set(
                ca_certs=self.config.tls_ca, certfile=self.config.tls_cert, keyfile=self.config.tls_key
            )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message
        if on_published is not None:
            self.client.on_publish = self._handle_publish

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> MqttLink:
        self.client.connect_async(self.host, self.port, keepalive=self._keepalive)
        if self._network is not None:
            self._network.attach(self)
        else:
            self.client.loop_start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once connected; False after `timeout`, or at once when the broker refused us (`refused`)."""
        self._answered.wait(timeout)
        return self._connected.is_set()

    def stop(self) -> None:
        self._stopping = True
        if self._network is not None:
            self._network.detach(self)
            self._connected.clear()
            return
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._connected.clear()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """QoS 1. While disconnected paho queues the message and sends it on reconnect."""
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery (from any thread): the broker forgets it for our session."""
        if delivery.qos > 0:
            self.client.ack(delivery.mid, delivery.qos)

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        assert self._on_published is not None
        self._on_published(mid)

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            if self.refused is None:
                log.warning("%s: broker %s refused connection: %s", self.client_id, self.config, reason_code)
            self.refused = str(reason_code)
            self._answered.set()
            return
        self.refused = None
        if self._network is not None:
            self._network.connected(self)
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._connected.set()
        self._answered.set()
        if self._on_connect_hook is not None:
            self._on_connect_hook()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if self._connected.is_set() and not self._stopping:
            log.warning("%s: lost broker connection (%s); reconnecting", self.client_id, reason_code)
        self._connected.clear()
        if self.refused is None:  # a refusal stays the answer until a CONNECT is accepted
            self._answered.clear()
        if self._on_disconnect_hook is not None:
            self._on_disconnect_hook()

    def _handle_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        if self._on_delivery is not None:
            retained = bool(message.retain)
            delivery = Delivery(message.topic, message.payload, retained, message.mid, message.qos)
            try:
                self._on_delivery(delivery)
            except Exception:  # acknowledged anyway: a message that breaks its handler must not stall us
                log.exception("%s: handler failed for a message on %s", self.client_id, message.topic)
                self.ack(delivery)
            return
        if self._on_message is None:
            return
        try:
            self._on_message(message.topic, message.payload, bool(message.retain))
        except Exception:  # a handler bug must not kill the network thread and stop all delivery
            log.exception("%s: handler failed for a message on %s", self.client_id, message.topic)

"""MQTT side of ingest: a persistent MQTT v5 session that hands messages to the writer and
acknowledges them only when told to (after their rows are committed)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.mqtt import MqttAuth, apply_auth
from ingest.source import InboundMessage

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue across restarts for a week
RECEIVE_MAXIMUM = 20_000  # unacked messages in flight to us: must cover a batch round trip
KEEPALIVE_S = 60
PUT_TIMEOUT_S = 0.5


class Subscriber:
    """The Mosquitto :class:`~ingest.source.MessageSource`: feeds ``inbox`` from the broker;
    ``ack`` after commit. Reconnects on its own.

    When the inbox is full (database down), the network thread blocks, stops reading the
    socket, and the broker holds further messages: memory stays bounded by the inbox size
    plus the receive maximum.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        topics: list[str],
        inbox: queue.Queue[InboundMessage],
        auth: MqttAuth | None = None,
    ) -> None:
        self.topics = topics
        self.inbox = inbox
        self.connected = threading.Event()  # set once the broker has granted the subscription
        self._generation = 0
        self._stopping = False
        self._host, self._port = host, port
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        apply_auth(self.client, auth)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(
            self._host, self._port, keepalive=KEEPALIVE_S, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, messages: list[InboundMessage]) -> int:
        """PUBACK in arrival order; skips messages of an earlier connection (the broker
        redelivers those on the resumed session, and the store dedups them)."""
        live = self._generation
        sent = 0
        for msg in messages:
            if msg.qos > 0 and msg.generation == live:
                self.client.ack(msg.mid, msg.qos)
                sent += 1
        return sent

    # --- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused reason=%s", reason)
            return
        self._generation += 1
        log.info(
            "mqtt connected host=%s port=%d session_present=%s generation=%d",
            self._host,
            self._port,
            flags.session_present,
            self._generation,
        )
        # Re-subscribing on a resumed session is harmless and covers a broker that lost it.
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        # Ready only at SUBACK: a message published between CONNACK and SUBACK on a new
        # session would otherwise find no subscriber.
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error("mqtt subscription refused topics=%s reasons=%s", self.topics, refused)
            return
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("mqtt disconnected reason=%s; reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        inbound = InboundMessage(
            message.topic,
            bytes(message.payload),
            message.mid,
            message.qos,
            self._generation,
            time.monotonic(),
        )
        while True:
            try:
                self.inbox.put(inbound, timeout=PUT_TIMEOUT_S)
                return
            except queue.Full:
                if self._stopping:
                    return  # not acked: the broker redelivers it next session

"""Simulated devices answering platform commands, as home heating controllers would.

Subscribes to the contract's ``commands`` topic of every simulated device, applies
``set_heating_setpoint`` to the home's model (so the simulated temperature then follows the
new setpoint) and publishes :class:`~firmware_contracts.CommandAckV1` acks on
``commands/ack`` at QoS 1: ``accepted`` on receipt, then ``done`` once applied, or
``rejected`` / ``expired``.

A device that holds a command key (``keys``) acts only on commands signed for it with that key
(``firmware_contracts.signing``): an unsigned or forged command is ``rejected`` with reason
``unsigned`` / ``bad_signature``, one past its expiry is ``expired``, and a command id seen
before (a replay, or a QoS 1 redelivery) is ``rejected`` as ``replayed`` and never applied twice.
Each refusal is reported in the ack. Seen ids are kept until their command expires: a replay
after that is refused as expired.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from common.mqtt import MqttAuth, apply_auth
from device_sim.models import BinModel, HomeModel
from firmware_contracts import Channel, CommandAckV1, CommandV1, TopicLayout, signature_valid

__all__ = ["HEATING_COMMAND", "CommandResponder"]

log = logging.getLogger(__name__)

HEATING_COMMAND = "set_heating_setpoint"
MIN_SETPOINT_C, MAX_SETPOINT_C = 5.0, 25.0  # what a real controller accepts

AckStatus = Literal["accepted", "done", "rejected", "expired"]
Refusal = Literal["unsigned", "bad_signature", "replayed", "expired"]


class SimulatedDevice(Protocol):
    device_id: str

    @property
    def model(self) -> BinModel | HomeModel: ...


class CommandResponder:
    """An MQTT client acting for the simulated devices: ``start()``, then ``stop()``."""

    def __init__(
        self,
        devices_by_id: Mapping[str, SimulatedDevice],
        host: str,
        port: int,
        prefix: str,
        *,
        client_id: str | None = None,
        auth: MqttAuth | None = None,
        keys: Mapping[str, bytes] | None = None,
    ) -> None:
        self.devices = devices_by_id
        self.keys = dict(keys or {})  # device id -> command key, as provisioned
        self.seen: dict[tuple[str, str], datetime] = {}  # (device, command id) -> expires_at
        self.layout = TopicLayout(prefix)
        self.host, self.port = host, port
        self.connected = threading.Event()
        self.handled: dict[str, AckStatus] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sim-responder-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        apply_auth(self.client, auth)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, timeout_s: float = 10.0) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            raise TimeoutError(f"no MQTT connection to {self.host}:{self.port}")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.layout.subscription(Channel.COMMANDS), qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # Connected means subscribed: what is published before SUBACK would find no one.
        if not any(r.is_failure for r in reasons):
            self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        parsed = self.layout.parse(str(message.topic))
        if parsed is None or parsed.channel is not Channel.COMMANDS:
            return
        try:
            command = CommandV1.model_validate_json(bytes(message.payload))
        except ValidationError as exc:
            log.warning("ignoring an invalid command on %s: %s", message.topic, exc)
            return
        device_id = parsed.device_id
        with self._lock:
            refusal = self._refusal(device_id, command)
            if refusal is not None:
                reason, detail = refusal
                status: AckStatus = "expired" if reason == "expired" else "rejected"
                self._ack(device_id, command.id, status, detail, reason)
                return
            self.seen[(device_id, command.id)] = command.expires_at
            status, detail = self._apply(device_id, command)
            self.handled[command.id] = status
        if status == "done":
            self._ack(device_id, command.id, "accepted", None)
        self._ack(device_id, command.id, status, detail)

    def _refusal(self, device_id: str, command: CommandV1) -> tuple[Refusal, str] | None:
        """Why this command must not be acted on, if it must not: the checks a device makes
        before anything else, in this order."""
        now = datetime.now(UTC)
        self.seen = {k: exp for k, exp in self.seen.items() if exp > now}
        key = self.keys.get(device_id)
        if key is not None:
            if not command.sig:
                return "unsigned", "command carries no signature"
            if not signature_valid(command, device_id, key):
                return "bad_signature", "signature does not match this device's key"
        if command.expires_at <= now:
            return "expired", "arrived after its expiry"
        if (device_id, command.id) in self.seen:
            return "replayed", f"command {command.id} was already handled"
        return None

    def _apply(self, device_id: str, command: CommandV1) -> tuple[AckStatus, str]:
        device = self.devices.get(device_id)
        if device is None:
            return "rejected", "unknown device"
        model = device.model
        if not isinstance(model, HomeModel):
            return "rejected", "device has no heating control"
        if command.name != HEATING_COMMAND:
            return "rejected", f"unsupported command {command.name!r}"
        try:
            setpoint = float(command.args["setpoint_c"])
        except (KeyError, TypeError, ValueError):
            return "rejected", "setpoint_c missing or not a number"
        if not MIN_SETPOINT_C <= setpoint <= MAX_SETPOINT_C:
            return (
                "rejected",
                f"setpoint {setpoint:g} C outside {MIN_SETPOINT_C:g}-{MAX_SETPOINT_C:g}",
            )
        model.set_heating(setpoint)
        return "done", f"heating setpoint now {setpoint:g} C"

    def _ack(
        self,
        device_id: str,
        command_id: str,
        status: AckStatus,
        detail: str | None,
        reason: Refusal | None = None,
    ) -> None:
        ack = CommandAckV1(
            id=command_id, status=status, detail=detail, reason=reason, ts=datetime.now(UTC)
        )
        self.client.publish(self.layout.command_ack(device_id), ack.model_dump_json(), qos=1)

"""Remote frost protection: a void home at frost risk gets a heating command, tracked to its ack.

When a frost-risk alert opens (or its condition returns) for a void home, the evaluator's
hook queues a ``set_heating_setpoint`` command for each of the home's sensors that reported
it, in the ``commands`` table, in the same transaction as the alert. The
:class:`CommandDispatcher` publishes queued commands on the contract's ``commands`` topic at
QoS 1 and records the device's acks from ``commands/ack``. A command still without a
``done`` ack when it expires (or one the device rejects) escalates to a visit: an audit entry
on the alert and a notification to the patch's officers.

The platform, not the broker, remembers a command until it is answered. Devices connect with
a clean session (firmware_contracts/CONTRACT.md says why), so a command published while its
device is offline is not kept for it at the broker; when the device's retained ``status``
says ``online`` again, every command of its still waiting for an answer is sent again. The
device applies a command id once: a second copy of one it already had is answered
``rejected``/``replayed``, which changes nothing here (its first answer is the one recorded).

This module is the alerts package's only MQTT edge, and it only ever talks to the broker
about the ``commands`` table's rows: the detection core never sees a broker.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from alerts.events import AlertType
from alerts.lifecycle import AuditAction
from alerts.notify import enqueue_for_alert
from alerts.store import Conn, record_action
from common.command_keys import device_command_key
from common.mqtt import MqttAuth, apply_auth
from firmware_contracts import (
    Channel,
    CommandAckV1,
    CommandV1,
    StatusV1,
    TopicLayout,
    sign_command,
)

__all__ = [
    "FROST_COMMAND",
    "CommandDispatcher",
    "CommandPolicy",
    "expire_commands",
    "open_command",
    "plan_frost_commands",
    "queue_setpoint",
]

log = logging.getLogger(__name__)

FROST_COMMAND = "set_heating_setpoint"
PUBLISH_TIMEOUT_S = 5.0  # a QoS 1 PUBACK from a local broker takes milliseconds
_OPEN_STATES = ("pending", "accepted")
# Heating setpoints a platform may ask for: frost protection up to a comfortable room.
MIN_SETPOINT_C = 5.0
MAX_SETPOINT_C = 25.0
_TRIGGERS = (AuditAction.OPENED, AuditAction.CONDITION_RETURNED)


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """Frost protection settings (*defaults*: 12 °C is the background heat councils keep)."""

    setpoint_c: float = 12.0
    ttl: timedelta = timedelta(minutes=30)
    """A device must act within this long; after it, an officer visits instead."""

    def __post_init__(self) -> None:
        if not MIN_SETPOINT_C <= self.setpoint_c <= MAX_SETPOINT_C:
            raise ValueError(
                f"setpoint_c must be between {MIN_SETPOINT_C:g} and {MAX_SETPOINT_C:g} C"
            )
        if self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")


def plan_frost_commands(
    conn: Conn, result: Any, *, policy: CommandPolicy | None = None, now: datetime | None = None
) -> int:
    """Evaluator hook: queue a heating command for each void home newly at frost risk."""
    policy = policy or CommandPolicy()
    now = now or datetime.now(UTC)
    queued = 0
    for event in result.audit:
        if event.action not in _TRIGGERS:
            continue
        alert = conn.execute(
            "SELECT id, alert_type, active_sources FROM alerts WHERE id = %s", (event.alert_id,)
        ).fetchone()
        if alert is None or alert["alert_type"] != AlertType.FROST_RISK.value:
            continue
        for device_id, _condition in alert["active_sources"]:
            subject = result.subjects.get(device_id)
            if subject is None or subject.kind != "home" or not subject.void:
                continue
            if open_command(conn, device_id) is not None:
                continue
            command_id = queue_setpoint(
                conn,
                device_id,
                policy.setpoint_c,
                reason="frost_protection",
                ttl=policy.ttl,
                now=now,
                alert_id=alert["id"],
            )
            record_action(
                conn,
                alert["id"],
                now,
                "system",
                "command_issued",
                {
                    "text": f"heating setpoint {policy.setpoint_c:g} C sent to {device_id}",
                    "command_id": command_id,
                    "expires_at": (now + policy.ttl).isoformat(),
                },
            )
            queued += 1
    return queued


def open_command(conn: Conn, device_id: str) -> str | None:
    """The id of the device's command still waiting for its ack, if any."""
    row = conn.execute(
        "SELECT id FROM commands WHERE device_id = %s AND state = ANY(%s)",
        (device_id, list(_OPEN_STATES)),
    ).fetchone()
    return None if row is None else str(row["id"])


def queue_setpoint(
    conn: Conn,
    device_id: str,
    setpoint_c: float,
    *,
    reason: str,
    ttl: timedelta,
    now: datetime,
    alert_id: str | None = None,
) -> str:
    """Queue a heating setpoint for the dispatcher to publish; returns the command id."""
    if not MIN_SETPOINT_C <= setpoint_c <= MAX_SETPOINT_C:
        raise ValueError(f"setpoint_c must be between {MIN_SETPOINT_C:g} and {MAX_SETPOINT_C:g} C")
    command_id = uuid.uuid4().hex
    conn.execute(
        """INSERT INTO commands (id, device_id, name, args, issued_at, expires_at, alert_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            command_id,
            device_id,
            FROST_COMMAND,
            Jsonb({"setpoint_c": setpoint_c, "reason": reason}),
            now,
            now + ttl,
            alert_id,
        ),
    )
    return command_id


def _escalate(conn: Conn, row: Any, now: datetime, why: str) -> None:
    conn.execute(
        "UPDATE commands SET escalated_at = %s, updated_at = now() WHERE id = %s",
        (now, row["id"]),
    )
    if row["alert_id"] is None:
        return
    note = (
        f"Remote heating command {row['id']} to {row['device_id']} {why}. "
        "Visit the property: check the heating and frost protection, drain down if needed."
    )
    record_action(
        conn,
        row["alert_id"],
        now,
        "system",
        "visit_requested",
        {"text": note, "command_id": row["id"]},
    )
    enqueue_for_alert(conn, row["alert_id"], "visit", event_at=now, now=now, note=note)


def expire_commands(conn: Conn, now: datetime) -> int:
    """Expire commands not done in time (and escalate rejected ones) to a visit."""
    escalated = 0
    with conn.transaction():
        overdue = conn.execute(
            """UPDATE commands SET state = 'expired', updated_at = now()
               WHERE state = ANY(%s) AND expires_at <= %s
               RETURNING id, device_id, alert_id""",
            (list(_OPEN_STATES), now),
        ).fetchall()
        for row in overdue:
            _escalate(conn, row, now, "was not acknowledged as done before it expired")
            escalated += 1
        rejected = conn.execute(
            "SELECT id, device_id, alert_id, ack_detail FROM commands"
            " WHERE state = 'rejected' AND escalated_at IS NULL"
        ).fetchall()
        for row in rejected:
            _escalate(conn, row, now, f"was rejected by the device ({row['ack_detail']})")
            escalated += 1
    return escalated


class CommandDispatcher:
    """Publishes queued commands and records acks; one MQTT connection per service."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        prefix: str,
        client_id: str | None = None,
        auth: MqttAuth | None = None,
        command_secret: bytes | None = None,
    ) -> None:
        self.layout = TopicLayout(prefix)
        # Signs each command with its device's key (devices with credentials refuse unsigned
        # ones); None sends them unsigned, for devices provisioned without a key.
        self.command_secret = command_secret
        self.host, self.port = host, port
        self.connected = threading.Event()
        self._acks: queue.Queue[tuple[str, bytes]] = queue.Queue()
        # Devices whose status said online since their unanswered commands were last sent
        # (at most one entry per device, however many statuses come before a step).
        self._back_online: set[str] = set()
        self._back_online_lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"civic-alerts-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        apply_auth(self.client, auth)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        channels = (Channel.COMMAND_ACK, Channel.STATUS)
        client.subscribe([(self.layout.subscription(channel), 1) for channel in channels])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # Connected means subscribed: what is published before SUBACK would find no one.
        if not any(r.is_failure for r in reasons):
            self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic, payload = str(message.topic), bytes(message.payload)
        parsed = self.layout.parse(topic)
        if parsed is not None and parsed.channel is Channel.STATUS:
            self._note_status(parsed.device_id, payload)
        else:
            self._acks.put((topic, payload))

    def _note_status(self, device_id: str, payload: bytes) -> None:
        try:
            status = StatusV1.model_validate_json(payload)
        except ValidationError:
            return  # ingest dead-letters a malformed status; here it only says nothing
        if status.state == "online":
            with self._back_online_lock:
                self._back_online.add(device_id)

    def start(self, timeout_s: float = 10.0) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            raise TimeoutError(f"no MQTT connection to {self.host}:{self.port}")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def step(self, conn: Conn, now: datetime) -> None:
        """Service step: record acks (so nothing answered is sent again), publish, expire."""
        self.record_acks(conn)
        self.publish_pending(conn, now)
        expire_commands(conn, now)

    def publish_pending(self, conn: Conn, now: datetime) -> int:
        """Publish new commands, and again those still unanswered whose device came online.
        A device stays due for its re-send until every one of its commands went out."""
        with self._back_online_lock:
            back_online = set(self._back_online)
        rows = conn.execute(
            "SELECT c.*, k.key_version FROM commands c"
            " LEFT JOIN device_credentials k USING (device_id)"
            " WHERE c.state = 'pending' AND c.expires_at > %s"
            " AND (c.published_at IS NULL OR c.device_id = ANY(%s))"
            " ORDER BY c.issued_at",
            (now, sorted(back_online)),
        ).fetchall()
        published, failed = 0, set()
        for row in rows:
            command = CommandV1(
                id=row["id"],
                name=row["name"],
                args=row["args"],
                issued_at=row["issued_at"],
                expires_at=row["expires_at"],
            )
            if self.command_secret is not None and row["key_version"] is not None:
                key = device_command_key(self.command_secret, row["device_id"], row["key_version"])
                command = sign_command(command, row["device_id"], key)
            info = self.client.publish(
                self.layout.commands(row["device_id"]), command.model_dump_json(), qos=1
            )
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
            if not info.is_published():
                log.warning("command %s not acknowledged by the broker; will retry", row["id"])
                failed.add(row["device_id"])
                continue
            _record_published(conn, row, now)
            published += 1
        with self._back_online_lock:
            self._back_online -= back_online - failed
        return published

    def record_acks(self, conn: Conn) -> int:
        recorded = 0
        while True:
            try:
                topic, payload = self._acks.get_nowait()
            except queue.Empty:
                return recorded
            parsed = self.layout.parse(topic)
            try:
                ack = CommandAckV1.model_validate_json(payload)
            except ValidationError as exc:
                log.warning("invalid command ack on %s: %s", topic, exc)
                continue
            if parsed is None:
                continue
            recorded += _record_ack(conn, parsed.device_id, ack)


def _record_published(conn: Conn, row: Any, now: datetime) -> None:
    """``published_at`` stays the first publish (the evidence of when the platform acted); a
    copy sent again is an audit entry of its own."""
    again = row["published_at"] is not None
    with conn.transaction():
        conn.execute(
            "UPDATE commands SET published_at = coalesce(published_at, %s), updated_at = now()"
            " WHERE id = %s",
            (now, row["id"]),
        )
        if row["alert_id"]:
            text = (
                f"{row['name']} sent again to {row['device_id']}: its status says online"
                if again
                else f"{row['name']} published to {row['device_id']}"
            )
            action = "command_resent" if again else "command_published"
            record_action(
                conn, row["alert_id"], now, "system", action,
                {"text": text, "command_id": row["id"]},
            )  # fmt: skip


def _ack_detail(ack: CommandAckV1) -> str | None:
    """The device's words, led by its security reason when it refused (e.g. bad_signature)."""
    if ack.reason is None:
        return ack.detail
    return f"{ack.reason}: {ack.detail}" if ack.detail else ack.reason


def _record_ack(conn: Conn, device_id: str, ack: CommandAckV1) -> int:
    if ack.reason == "replayed":
        # A copy of a command the device already had (a re-send, or a redelivery): it answered
        # the first copy, and that answer is the command's.
        log.info("command %s of %s: a second copy, already handled", ack.id, device_id)
        return 0
    # A late "accepted" must not undo a "done"; only open commands move.
    allowed = ["pending"] if ack.status == "accepted" else list(_OPEN_STATES)
    with conn.transaction():
        row = conn.execute(
            """UPDATE commands SET state = %s, acked_at = %s, ack_detail = %s, updated_at = now()
               WHERE id = %s AND device_id = %s AND state = ANY(%s)
               RETURNING id, alert_id, name""",
            (ack.status, ack.ts, _ack_detail(ack), ack.id, device_id, allowed),
        ).fetchone()
        if row is None:
            log.info("ack %s for command %s of %s changes nothing", ack.status, ack.id, device_id)
            return 0
        if row["alert_id"]:
            record_action(
                conn,
                row["alert_id"],
                ack.ts.astimezone(UTC),
                device_id,
                f"command_{ack.status}",
                {
                    "text": _ack_detail(ack) or f"{row['name']} {ack.status}",
                    "command_id": ack.id,
                },
            )
    return 1

"""A heating command sent while its device was offline reaches it when the device is back.

Devices connect with a clean session (the contract), so the broker keeps nothing for an offline
device; the platform sends a command again when the device's retained status says ``online``.
Real broker (the device over TLS with its own credentials), real database.
"""

from __future__ import annotations

import json
import queue
from datetime import UTC, datetime, timedelta

import pytest

from alerts.commands import CommandDispatcher, queue_setpoint
from civic.cli import main
from firmware_contracts import CommandAckV1, CommandV1
from store.db import connect
from tests.ingest.helpers import register_estate
from tests.security.test_broker_security import TIMEOUT_S, Device, _device


@pytest.fixture
def offline_home(civic_env, capsys):
    """A home with credentials, a command queued for it, published while it is offline."""
    url, mqtt = civic_env
    register_estate(url, bins=0, homes=1)
    capsys.readouterr()
    assert main(["devices", "credentials", "--all"]) == 0
    cred = json.loads(capsys.readouterr().out)
    dispatcher = CommandDispatcher(
        host=mqtt.host, port=mqtt.port, prefix=mqtt.prefix, auth=mqtt.auth("alerts")
    )
    dispatcher.start()
    with connect(url) as conn:
        now = datetime.now(UTC)
        command_id = queue_setpoint(
            conn, cred["device_id"], 12.0, reason="frost", ttl=timedelta(minutes=30), now=now
        )
        assert dispatcher.publish_pending(conn, now) == 1  # to no one: the device is away
        yield url, mqtt, cred, dispatcher, command_id
    dispatcher.stop()


def _row(url: str, command_id: str) -> dict:
    with connect(url) as conn:
        row = conn.execute("SELECT * FROM commands WHERE id = %s", (command_id,)).fetchone()
    assert row is not None
    return row


def _state(url: str, command_id: str) -> str:
    return str(_row(url, command_id)["state"])


def _come_online(mqtt, cred: dict) -> tuple[Device, str]:
    device = _device(mqtt, cred)
    assert device.wait_connack() == 0
    root = f"{mqtt.prefix}/v1/devices/{cred['device_id']}"
    device.subscribe(f"{root}/commands")
    assert device.publish(f"{root}/status", '{"state":"online"}', retain=True) == 0
    return device, root


def _step_until_command(url: str, dispatcher: CommandDispatcher, device: Device) -> CommandV1:
    deadline = datetime.now(UTC) + timedelta(seconds=TIMEOUT_S)
    while datetime.now(UTC) < deadline:
        with connect(url) as conn:
            dispatcher.step(conn, datetime.now(UTC))
        try:
            _topic, payload = device.messages.get(timeout=0.2)
        except queue.Empty:
            continue
        return CommandV1.model_validate_json(payload)
    raise AssertionError("the command never reached the device once it was back online")


def test_a_command_sent_while_the_device_was_offline_is_sent_again_when_it_is_back(
    offline_home,
) -> None:
    url, mqtt, cred, dispatcher, command_id = offline_home
    first_published = _row(url, command_id)["published_at"]
    device, root = _come_online(mqtt, cred)
    try:
        command = _step_until_command(url, dispatcher, device)
        assert command.id == command_id
        for _ in range(3):  # still online, nothing new said: no second copy
            with connect(url) as conn:
                dispatcher.step(conn, datetime.now(UTC))
        with pytest.raises(queue.Empty):
            device.messages.get(timeout=0.5)
        ack = CommandAckV1(id=command.id, status="done", ts=datetime.now(UTC))
        assert device.publish(f"{root}/commands/ack", ack.model_dump_json()) == 0
        deadline = datetime.now(UTC) + timedelta(seconds=TIMEOUT_S)
        while _state(url, command_id) != "done":
            assert datetime.now(UTC) < deadline, "the device's ack was not recorded"
            with connect(url) as conn:
                dispatcher.step(conn, datetime.now(UTC))
        # The first publish stays the command's (the evidence of when the platform acted).
        assert _row(url, command_id)["published_at"] == first_published
    finally:
        device.close()


def test_a_refused_second_copy_leaves_the_command_as_the_first_answer_left_it(
    offline_home,
) -> None:
    """The device already had the command (its answer is on its way): the ``replayed``
    refusal of the copy must not turn the command into a rejected one and send an officer."""
    url, mqtt, cred, dispatcher, command_id = offline_home
    device, root = _come_online(mqtt, cred)
    try:
        command = _step_until_command(url, dispatcher, device)
        replayed = CommandAckV1(
            id=command.id, status="rejected", reason="replayed", ts=datetime.now(UTC)
        )
        assert device.publish(f"{root}/commands/ack", replayed.model_dump_json()) == 0
        accepted = CommandAckV1(id=command.id, status="accepted", ts=datetime.now(UTC))
        assert device.publish(f"{root}/commands/ack", accepted.model_dump_json()) == 0
        deadline = datetime.now(UTC) + timedelta(seconds=TIMEOUT_S)
        while _state(url, command_id) == "pending":  # acks arrive in order: replayed first
            assert datetime.now(UTC) < deadline, "the device's acks were not recorded"
            with connect(url) as conn:
                dispatcher.step(conn, datetime.now(UTC))
        assert _state(url, command_id) == "accepted"
    finally:
        device.close()

"""A simulated heating controller acts only on commands signed for it, once, before expiry;
every refusal is reported in its ack. Real broker, real keys from ``civic devices credentials``."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from civic.cli import main
from device_sim.models import HomeModel
from device_sim.responder import CommandResponder
from firmware_contracts import CommandAckV1, CommandV1, sign_command
from tests.ingest.helpers import register_estate
from tests.security.test_broker_security import TIMEOUT_S, Device


@pytest.fixture
def controller(civic_env, capsys):
    """One void home with credentials, its controller answering over the simulator's account,
    and the platform's account to send commands and hear acks."""
    _url, mqtt = civic_env
    estate = register_estate(_url, bins=0, homes=1)
    capsys.readouterr()
    assert main(["devices", "credentials", "--all"]) == 0
    cred = json.loads(capsys.readouterr().out)
    device_id = cred["device_id"]
    model = HomeModel.create(device_id, True, random.Random(1))
    responder = CommandResponder(
        {device_id: SimpleNamespace(device_id=device_id, model=model)},
        mqtt.host,
        mqtt.port,
        mqtt.prefix,
        auth=mqtt.auth("sim"),
        keys={device_id: bytes.fromhex(cred["command_key"])},
    )
    responder.start()
    platform = Device(mqtt.host, mqtt.port, mqtt.auth("alerts"))
    assert platform.wait_connack() == 0
    root = f"{mqtt.prefix}/v1/devices/{device_id}"
    platform.subscribe(f"{root}/commands/ack")
    yield SimpleNamespace(
        device_id=device_id, key=bytes.fromhex(cred["command_key"]), model=model,
        platform=platform, topic=f"{root}/commands", estate=estate,
    )  # fmt: skip
    platform.close()
    responder.stop()


def _command(command_id: str, *, expires_in: timedelta = timedelta(minutes=10)) -> CommandV1:
    now = datetime.now(UTC)
    return CommandV1(
        id=command_id,
        name="set_heating_setpoint",
        args={"setpoint_c": 14.0},
        issued_at=now,
        expires_at=now + expires_in,
    )


def _final_ack(ctl, command: CommandV1) -> CommandAckV1:
    assert ctl.platform.publish(ctl.topic, command.model_dump_json()) == 0
    while True:
        _topic, payload = ctl.platform.messages.get(timeout=TIMEOUT_S)
        ack = CommandAckV1.model_validate_json(payload)
        if ack.id == command.id and ack.status != "accepted":
            return ack


def test_a_signed_command_is_applied_once_and_a_replay_refused(controller) -> None:
    command = sign_command(_command("c-1"), controller.device_id, controller.key)
    assert _final_ack(controller, command).status == "done"
    assert controller.model.setpoint_c == 14.0
    controller.model.set_heating(6.0)  # so a second application would show
    replay = _final_ack(controller, command)
    assert (replay.status, replay.reason) == ("rejected", "replayed")
    assert controller.model.setpoint_c == 6.0


def test_forged_unsigned_and_expired_commands_are_refused_and_reported(controller) -> None:
    forged = sign_command(_command("c-2"), controller.device_id, b"\x00" * 32)
    for_another = sign_command(_command("c-3"), "env-000999", controller.key)
    unsigned = _command("c-4")
    expired = sign_command(
        _command("c-5", expires_in=timedelta(seconds=-1)), controller.device_id, controller.key
    )
    acks = [_final_ack(controller, c) for c in (forged, for_another, unsigned, expired)]
    assert [(a.status, a.reason) for a in acks] == [
        ("rejected", "bad_signature"),
        ("rejected", "bad_signature"),
        ("rejected", "unsigned"),
        ("expired", "expired"),
    ]
    assert controller.model.setpoint_c != 14.0

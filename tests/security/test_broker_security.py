"""Device and broker security on the real Mosquitto the suite runs, with real PostgreSQL.

Devices connect the way a real one does: TLS to the devices' listener, checking the project's
CA, with the credentials ``civic devices credentials`` printed for them.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from civic.cli import main
from common.mqtt import MqttAuth
from store.db import connect
from tests.ingest.helpers import count, register_estate, start_worker, wait_for

TIMEOUT_S = 20.0


class Device:
    """One MQTT v5 client; records CONNACK, messages and disconnects."""

    def __init__(
        self, host: str, port: int, auth: MqttAuth | None, *, tls_ca: Path | None = None
    ) -> None:
        self.connack: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnected = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"x-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        if auth is not None:
            auth.apply(self.client)
        elif tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc.value)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def wait_connack(self) -> int:
        return self.connack.get(timeout=TIMEOUT_S)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> int:
        """QoS 1 publish; the broker's PUBACK reason code (0 accepted, 135 not authorised)."""
        codes: queue.Queue[int] = queue.Queue()
        self.client.on_publish = lambda _c, _u, _mid, rc, _p: codes.put(rc.value)
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT_S)
        return codes.get(timeout=TIMEOUT_S)

    def subscribe(self, *topics: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(TIMEOUT_S), "no SUBACK"

    def heard(self) -> list[tuple[str, bytes]]:
        """The first message (waiting for it), then all that follow within 2 s of each other."""
        heard = [self.messages.get(timeout=TIMEOUT_S)]
        while True:
            try:
                heard.append(self.messages.get(timeout=2))
            except queue.Empty:
                return heard

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def provisioned(civic_env, capsys) -> dict[str, dict]:
    """Three homes registered and given credentials through the command line."""
    url, _mqtt = civic_env
    register_estate(url, bins=0, homes=3)
    capsys.readouterr()
    assert main(["devices", "credentials", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {c["device_id"]: c for c in map(json.loads, lines)}


def _device(mqtt, cred: dict, password: str | None = None) -> Device:
    auth = mqtt.local.device_auth(cred["device_id"], password or cred["password"])
    return Device("localhost", mqtt.tls_port, auth)


def _reading(device_id: str, seq: int = 1) -> str:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return json.dumps({"v": 1, "device_id": device_id, "seq": seq, "ts": ts, "temp_c": 18.0})


def test_credentials_are_shown_once_and_only_a_hash_is_kept(provisioned, civic_env, capsys):
    url, _ = civic_env
    assert len(provisioned) == 3
    with connect(url) as conn:
        stored = conn.execute("SELECT device_id, password_hash FROM device_credentials").fetchall()
    for row in stored:
        assert row["password_hash"].startswith("$7$")
        assert provisioned[row["device_id"]]["password"] not in row["password_hash"]
    # Asking again issues nothing new; --rotate replaces every one.
    assert main(["devices", "credentials", "--all"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["devices", "credentials", "--all", "--rotate"]) == 0
    rotated = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {c["key_version"] for c in rotated} == {2}


def test_anonymous_and_wrong_passwords_are_refused_on_both_listeners(provisioned, mqtt):
    cred = next(iter(provisioned.values()))
    assert Device(mqtt.host, mqtt.port, None).wait_connack() == 135  # plain, anonymous
    anonymous_tls = Device("localhost", mqtt.tls_port, None, tls_ca=mqtt.local.ca_file)
    assert anonymous_tls.wait_connack() == 135
    unknown = Device(
        "localhost", mqtt.tls_port, MqttAuth("env-999999", "guess", mqtt.local.ca_file)
    )
    assert unknown.wait_connack() == 135
    assert _device(mqtt, cred, password="not-the-password").wait_connack() == 135
    good = _device(mqtt, cred)
    assert good.wait_connack() == 0
    good.close()


def test_a_disabled_device_is_dropped_and_refused_at_its_next_connect(provisioned, mqtt, capsys):
    device_id, cred = next(iter(provisioned.items()))
    connected = _device(mqtt, cred)
    assert connected.wait_connack() == 0
    assert main(["devices", "disable", device_id]) == 0
    assert connected.disconnected.wait(TIMEOUT_S), "the broker kept a revoked device connected"
    connected.close()
    assert _device(mqtt, cred).wait_connack() == 135


def test_a_device_cannot_publish_as_another_and_nothing_of_it_is_stored(
    provisioned, civic_env
) -> None:
    url, mqtt = civic_env
    (a, cred_a), (b, _cred_b) = list(provisioned.items())[:2]
    _worker, stop, thread = start_worker(url, mqtt)
    device = _device(mqtt, cred_a)
    try:
        assert device.wait_connack() == 0
        assert device.publish(f"{mqtt.prefix}/v1/devices/{b}/telemetry", _reading(b)) == 135
        assert device.publish(f"{mqtt.prefix}/v1/devices/{b}/status", '{"state":"offline"}') == 135
        assert device.publish(f"{mqtt.prefix}/v1/devices/{b}/commands", "{}") == 135
        assert device.publish(f"{mqtt.prefix}/v1/devices/{a}/telemetry", _reading(a)) == 0
        wait_for(lambda: count(url, "SELECT count(*) FROM readings") >= 1, 60, "A's reading")
    finally:
        device.close()
        stop.set()
        thread.join_checked(30)
    assert count(url, f"SELECT count(*) FROM readings WHERE device_id = '{b}'") == 0
    assert count(url, f"SELECT count(*) FROM device_status WHERE device_id = '{b}'") == 0
    assert count(url, "SELECT count(*) FROM deadletters") == 0


def test_a_device_hears_neither_anothers_commands_nor_the_estates_telemetry(
    provisioned, mqtt
) -> None:
    (a, cred_a), (b, cred_b) = list(provisioned.items())[:2]
    root = f"{mqtt.prefix}/v1/devices"
    spy = _device(mqtt, cred_a)
    other = _device(mqtt, cred_b)
    platform = Device(mqtt.host, mqtt.port, mqtt.auth("alerts"))
    try:
        assert spy.wait_connack() == other.wait_connack() == platform.wait_connack() == 0
        spy.subscribe(f"{root}/{b}/commands", f"{root}/+/telemetry", f"{root}/+/commands", "#")
        assert platform.publish(f"{root}/{b}/commands", '{"for":"b"}') == 0
        assert other.publish(f"{root}/{b}/telemetry", _reading(b)) == 0
        assert platform.publish(f"{root}/{a}/commands", '{"for":"a"}') == 0  # its own
        heard = spy.heard()
        assert {t for t, _ in heard} == {f"{root}/{a}/commands"}
        assert {p for _, p in heard} == {b'{"for":"a"}'}
    finally:
        for client in (spy, other, platform):
            client.close()


def test_the_alerts_account_hears_statuses_and_acks_but_no_telemetry(provisioned, mqtt) -> None:
    """The command dispatcher's account reads devices' statuses (to send an unanswered command
    again) and acks; the estate's readings stay out of its reach."""
    (a, cred_a) = next(iter(provisioned.items()))
    root = f"{mqtt.prefix}/v1/devices"
    device = _device(mqtt, cred_a)
    platform = Device(mqtt.host, mqtt.port, mqtt.auth("alerts"))
    try:
        assert device.wait_connack() == platform.wait_connack() == 0
        # Under this test's prefix: the suite's broker keeps other tests' retained statuses.
        platform.subscribe(f"{root}/+/telemetry", f"{root}/+/senml", f"{mqtt.prefix}/#")
        assert device.publish(f"{root}/{a}/telemetry", _reading(a)) == 0
        assert device.publish(f"{root}/{a}/status", '{"state":"online"}') == 0
        assert {t for t, _ in platform.heard()} == {f"{root}/{a}/status"}
    finally:
        device.close()
        platform.close()

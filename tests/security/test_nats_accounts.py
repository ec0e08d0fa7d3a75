"""What the NATS cluster's accounts forbid (common.nats_cluster), on a real 3-node cluster:
no anonymous or wrong-password client, no device speaking or listening for another, and an
ingest account that cannot publish device data."""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common.mqtt import MqttAuth
from common.nats_cluster import NatsCluster
from ingest import IngestConfig, IngestMetrics, IngestWorker
from tests.ingest.helpers import Background, count, register_estate, wait_for

pytestmark = pytest.mark.slow
TIMEOUT_S = 20.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    if shutil.which("nats-server") is None and not Path("/usr/sbin/nats-server").exists():
        pytest.skip("nats-server not installed (apt-get install nats-server)")
    nats = NatsCluster(tmp_path / "nats")
    nats.up()
    yield nats
    nats.down()


class Device311:
    """An MQTT 3.1.1 client (what the cluster's MQTT listener speaks)."""

    def __init__(self, port: int, auth: MqttAuth | None) -> None:
        self.connack: queue.Queue[int] = queue.Queue()
        self.granted: queue.Queue[list[int]] = queue.Queue()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"x-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
        )
        if auth is not None:
            auth.apply(self.client)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc.value)
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.granted.put(
            [rc.value for rc in rcs]
        )
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _reading(device: str) -> str:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"v": 1, "device_id": device, "seq": 1, "ts": ts, "rh_pct": 60.0})


def test_anonymous_and_wrong_password_are_refused(cluster: NatsCluster) -> None:
    port = cluster.nodes[1].mqtt_port
    anonymous = Device311(port, None)
    wrong = Device311(port, MqttAuth("sim@civic", "not-the-password"))
    try:
        assert anonymous.connack.get(timeout=TIMEOUT_S) != 0
        assert wrong.connack.get(timeout=TIMEOUT_S) != 0
    finally:
        anonymous.close()
        wrong.close()


def test_a_device_cannot_publish_as_or_listen_for_another(
    cluster: NatsCluster, database_url: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    estate = register_estate(database_url, bins=0, homes=2)
    mine, theirs = (row["device_id"] for row in estate)
    cluster.set_devices({mine: "secret-of-mine", theirs: "secret-of-theirs"})
    worker = IngestWorker(
        IngestConfig(
            database_url=database_url,
            mqtt_host="",
            mqtt_port=0,
            topic_prefix=prefix,
            flush_interval_s=0.05,
            mqtt_auth=cluster.service_auth("ingest"),
            source_url=cluster.source_url,
        ),
        IngestMetrics(),
    )
    stop = threading.Event()
    thread: Background[None] = Background(lambda: worker.run(stop))
    thread.start()
    assert worker.source.connected.wait(TIMEOUT_S), "ingest did not bind"
    device = Device311(cluster.nodes[2].mqtt_port, MqttAuth(mine, "secret-of-mine"))
    try:
        assert device.connack.get(timeout=TIMEOUT_S) == 0
        device.client.subscribe(f"{prefix}/v1/devices/{theirs}/commands", qos=1)
        assert device.granted.get(timeout=TIMEOUT_S) == [0x80], "subscribed to another's commands"
        device.publish(f"{prefix}/v1/devices/{theirs}/telemetry", _reading(theirs))
        device.publish(f"{prefix}/v1/devices/{mine}/telemetry", _reading(mine))
        # The permitted reading arriving means the forbidden one, sent first on the same
        # connection, has had its chance.
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM readings") >= 1,
            TIMEOUT_S,
            "the device's own reading",
        )
        rows = count(database_url, f"SELECT count(*) FROM readings WHERE device_id = '{theirs}'")
        assert rows == 0
        assert count(database_url, "SELECT count(*) FROM deadletters") == 0
    finally:
        device.close()
        stop.set()
        thread.join_checked(60)


def test_the_ingest_account_cannot_publish_device_data(cluster: NatsCluster) -> None:
    import nats

    auth = cluster.service_auth("ingest")
    errors: list[str] = []

    async def attempt() -> None:
        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            servers=cluster.nats_urls, user=auth.username, password=auth.password, error_cb=on_error
        )
        await nc.publish("civic.v1.devices.home-000001.telemetry", b"{}")
        await nc.flush()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.1)
        await nc.close()

    asyncio.run(attempt())
    assert any("permissions violation" in e.lower() for e in errors), errors


def test_a_device_hears_its_own_commands_at_qos_1(cluster: NatsCluster) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    cluster.set_devices({"home-000001": "secret"})
    device = Device311(cluster.nodes[0].mqtt_port, MqttAuth("home-000001", "secret"))
    alerts = Device311(cluster.nodes[1].mqtt_port, cluster.service_auth("alerts"))
    try:
        assert device.connack.get(timeout=TIMEOUT_S) == 0
        assert alerts.connack.get(timeout=TIMEOUT_S) == 0
        topic = f"{prefix}/v1/devices/home-000001/commands"
        device.client.subscribe(topic, qos=1)
        assert device.granted.get(timeout=TIMEOUT_S) == [1]
        alerts.publish(topic, '{"cmd":"boost"}')
        assert device.messages.get(timeout=TIMEOUT_S) == (topic, b'{"cmd":"boost"}')
    finally:
        device.close()
        alerts.close()


@pytest.mark.parametrize("role", ["sim", "alerts"])
def test_mqtt_accounts_cannot_use_the_nats_protocol(cluster: NatsCluster, role: str) -> None:
    """Were they allowed to, they could subscribe to ``$MQTT.sub.>`` and read every QoS 1
    delivery of the account."""
    import nats
    import nats.errors

    auth = cluster.service_auth(role)

    async def attempt() -> None:
        nc = await nats.connect(
            servers=cluster.nats_urls,
            user=auth.username,
            password=auth.password,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
        await nc.close()

    with pytest.raises((nats.errors.Error, OSError)):
        asyncio.run(attempt())

"""A flood with ingest away: the broker's queue limits hold, what was kept is drained, and the
loss is counted from the devices' seq counters rather than silent.

A small version of bench/broker_flood.py (2,000 sessions and a minute of flooding, with the
production limits): its own broker with limits shrunk so the drop happens in seconds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.broker import BrokerLimits
from common.command_keys import load_command_secret
from common.services import LocalServices
from store.credentials import broker_password_hashes, issue_credentials
from store.db import connect
from store.readings import seq_gaps
from tests.conftest import MqttTarget
from tests.ingest.helpers import count, register_estate, start_worker, wait_for

DEVICES = 200
MESSAGES_PER_DEVICE = 40
SESSIONS = 200  # offline persistent device sessions held through the flood
LIMITS = BrokerLimits(
    max_queued_messages=1500, max_queued_bytes=512 * 1024, max_inflight_messages=50
)
RSS_CAP_KB = 64 * 1024


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _client(auth, client_id: str) -> paho.Client:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    auth.apply(client)
    return client


def _persistent_session(local: LocalServices, port: int, prefix: str, cred) -> None:
    """A device that subscribed to its commands on a persistent session, then went offline."""
    client = _client(local.device_auth(cred.device_id, cred.password), cred.device_id)
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(
        f"{prefix}/v1/devices/{cred.device_id}/commands", 1
    )
    client.on_subscribe = lambda *_: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("localhost", port, clean_start=False, properties=props)
    client.loop_start()
    assert subscribed.wait(30), "no SUBACK"
    client.disconnect()
    client.loop_stop()


def _publish_all(mqtt: MqttTarget, device_ids: list[str], seqs: range, since: datetime) -> None:
    """Full speed, QoS 1, as the simulator's gateway account; returns once the broker has
    acknowledged every message (accepted: what it then keeps is its limits' business)."""
    publisher = _client(mqtt.auth("sim"), f"flood-{uuid.uuid4().hex[:6]}")
    publisher.max_inflight_messages_set(500)
    publisher.max_queued_messages_set(0)
    publisher.connect(mqtt.host, mqtt.port)
    publisher.loop_start()
    sent = []
    for seq in seqs:
        ts = (since + timedelta(seconds=seq)).isoformat()
        for device_id in device_ids:
            doc = {"v": 1, "device_id": device_id, "seq": seq, "ts": ts, "fill_pct": 40.0}
            topic = f"{mqtt.prefix}/v1/devices/{device_id}/telemetry"
            sent.append(publisher.publish(topic, json.dumps(doc), qos=1))
    for info in sent:
        info.wait_for_publish(120)
    publisher.disconnect()
    publisher.loop_stop()


def _drained(database_url: str, mqtt: MqttTarget) -> tuple[int, int]:
    """Run ingest until the stored count stops moving; the count, and the messages this
    ingest run found missing from the devices' seq."""
    worker, stop, thread = start_worker(database_url, mqtt, client_id="ingest-flood")
    last = [-1]

    def settled() -> bool:
        time.sleep(2)
        now = count(database_url, "SELECT count(*) FROM readings")
        done, last[0] = now == last[0] and now > 0, now
        return done

    try:
        wait_for(settled, 180, "ingest to drain the broker's queue")
    finally:
        stop.set()
        thread.join_checked(30)
    return last[0], worker.metrics.snapshot()["readings_missing"]


def test_flood_with_ingest_away_is_bounded_drained_and_counted(database_url, tmp_path) -> None:
    local = LocalServices(tmp_path / "broker", limits=LIMITS)
    local.start_mosquitto()
    state = local.load_state()
    mqtt = MqttTarget("127.0.0.1", state.mqtt_port, f"f{uuid.uuid4().hex[:8]}", local)
    since = datetime.now(UTC) - timedelta(hours=2)
    try:
        estate = register_estate(database_url, bins=DEVICES, homes=0)
        device_ids = [row["device_id"] for row in estate]
        with connect(database_url) as conn:
            secret = load_command_secret(tmp_path / "command.secret")
            issued = issue_credentials(conn, device_ids[:SESSIONS], secret=secret)
            local.write_device_passwords(broker_password_hashes(conn))
        for cred in issued:
            _persistent_session(local, state.mqtt_tls_port, mqtt.prefix, cred)
        # Ingest subscribes (its persistent session now queues for it), then goes away.
        _worker, stop, thread = start_worker(database_url, mqtt, client_id="ingest-flood")
        stop.set()
        thread.join_checked(30)

        _publish_all(mqtt, device_ids, range(1, MESSAGES_PER_DEVICE + 1), since)
        pid = local._mosquitto_pid()
        assert pid is not None, "the flood took the broker down"
        rss_kb = _rss_kb(pid)
        kept, missing_seen_first = _drained(database_url, mqtt)
        # Each device's next reading, with ingest back, shows what went missing before it.
        _publish_all(
            mqtt, device_ids, range(MESSAGES_PER_DEVICE + 1, MESSAGES_PER_DEVICE + 2), since
        )
        stored, missing_seen_next = _drained(database_url, mqtt)
    finally:
        local.stop_mosquitto()

    with connect(database_url) as conn:
        missing_in_store = sum(seq_gaps(conn, since).values())
    missing = missing_seen_first + missing_seen_next  # what ingest reported, live
    published = DEVICES * (MESSAGES_PER_DEVICE + 1)
    print(f"flood: published {published}, kept {kept}, stored {stored}, missing by seq {missing}, "
          f"broker RSS {rss_kb} kB")  # fmt: skip
    assert rss_kb < RSS_CAP_KB
    assert kept < DEVICES * MESSAGES_PER_DEVICE, "nothing was dropped: the flood was no flood"
    assert kept <= LIMITS.max_queued_messages + LIMITS.max_inflight_messages
    assert stored == kept + DEVICES
    assert missing == published - stored  # every lost message is counted by ingest
    assert missing_in_store == missing  # and the store's own count agrees

"""Simulator with faults → Mosquitto → ingest → PostgreSQL, counted exactly."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from paho.mqtt import publish

from device_sim import SimConfig, Simulator
from store.db import connect

from .helpers import count, register_estate, start_worker, wait_for

pytestmark = pytest.mark.slow


def _sim_auth(mqtt) -> dict[str, str]:
    """paho's publish.single credentials: the simulator's account (a device gateway)."""
    auth = mqtt.auth("sim")
    return {"username": auth.username, "password": auth.password}


def test_simulated_fleet_with_faults_is_stored_exactly(database_url: str, mqtt) -> None:
    estate = register_estate(database_url, bins=60, homes=20)
    worker, stop, thread = start_worker(database_url, mqtt)
    config = SimConfig(
        bins=60,
        homes=20,
        interval_s=300,
        duration_s=6 * 3600,
        speed=10**6,
        malformed_pct=4,
        duplicate_pct=4,
        late_pct=4,
        offline_pct=20,
        seed=7,
        topic_prefix=mqtt.prefix,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
    )
    report = Simulator(config, estate, host=mqtt.host, port=mqtt.port, auth=mqtt.auth("sim")).run()
    assert report.acked == report.published
    assert report.duplicates > 0
    assert report.late > 0
    assert report.offline_batches > 0
    assert sum(report.malformed.values()) > 0

    wait_for(
        lambda: worker.metrics.snapshot()["received"] >= report.published,
        60,
        "ingest to receive everything published",
    )
    stop.set()
    thread.join_checked(30)

    stats = worker.metrics.snapshot()
    readings_sent = sum(report.readings.values())
    assert count(database_url, "SELECT count(*) FROM readings") == readings_sent
    assert stats["stored"] == readings_sent
    assert stats["duplicates"] == report.duplicates
    assert stats["rejected"] == dict(report.malformed)
    with connect(database_url) as conn:
        reasons = Counter(r["reason"] for r in conn.execute("SELECT reason FROM deadletters"))
        online = conn.execute("SELECT count(*) AS n FROM device_status WHERE state = 'online'")
        assert online.fetchone()["n"] == 80
    assert reasons == report.malformed
    scrape = worker.metrics.prometheus_text().decode()
    assert f"civic_ingest_readings_stored_total {float(readings_sent)}" in scrape
    assert 'civic_ingest_messages_rejected_total{reason="' in scrape


def test_unregistered_device_is_dead_lettered(database_url: str, mqtt) -> None:
    register_estate(database_url, bins=1, homes=0)
    worker, stop, thread = start_worker(database_url, mqtt)
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for device_id in ("bin-000001", "bin-999999"):
        payload = {"v": 1, "device_id": device_id, "seq": 1, "ts": ts, "fill_pct": 50}
        publish.single(
            f"{mqtt.prefix}/v1/devices/{device_id}/telemetry",
            json.dumps(payload),
            qos=1,
            hostname=mqtt.host,
            port=mqtt.port,
            auth=_sim_auth(mqtt),
        )
    wait_for(lambda: worker.metrics.snapshot()["received"] >= 2, 30, "two messages")
    stop.set()
    thread.join_checked(30)
    with connect(database_url) as conn:
        letters = conn.execute("SELECT reason, topic, payload FROM deadletters").fetchall()
        stored = conn.execute("SELECT device_id FROM readings").fetchall()
    assert [r["device_id"] for r in stored] == ["bin-000001"]
    assert [(r["reason"], r["topic"].split("/")[3]) for r in letters] == [
        ("unknown_device", "bin-999999")
    ]
    assert json.loads(bytes(letters[0]["payload"]))["device_id"] == "bin-999999"


def test_bad_topics_and_bad_statuses_are_dead_lettered_with_their_reasons(
    database_url: str, mqtt
) -> None:
    register_estate(database_url, bins=1, homes=0)
    worker, stop, thread = start_worker(database_url, mqtt)
    root = f"{mqtt.prefix}/v1/devices"
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    reading = {"v": 1, "device_id": "bin-000001", "seq": 1, "ts": ts, "fill_pct": 50}
    messages = [
        # The subscription's + matches these device levels, which are not device ids.
        (f"{root}/.hidden/telemetry", json.dumps(reading)),
        (f"{root}/bin 000001/status", json.dumps({"state": "online"})),
        # Status: not the contract's shape, and from a device nobody registered.
        (f"{root}/bin-000001/status", json.dumps({"state": "sleeping"})),
        (f"{root}/bin-000001/status", "online"),
        (f"{root}/bin-999999/status", json.dumps({"state": "online"})),
        # And one good status, which is stored.
        (f"{root}/bin-000001/status", json.dumps({"state": "online", "fw": "2.1.0"})),
    ]
    for topic, payload in messages:
        publish.single(
            topic, payload, qos=1, hostname=mqtt.host, port=mqtt.port, auth=_sim_auth(mqtt)
        )
    wait_for(lambda: worker.metrics.snapshot()["received"] >= len(messages), 30, "six messages")
    stop.set()
    thread.join_checked(30)
    with connect(database_url) as conn:
        letters = conn.execute(
            "SELECT topic, reason, detail, payload FROM deadletters ORDER BY id"
        ).fetchall()
        status = conn.execute("SELECT device_id, state, fw FROM device_status").fetchall()
    assert [(r["topic"], r["reason"]) for r in letters] == [
        (topic, reason)
        for (topic, _), reason in zip(
            messages[:5],
            ["bad_topic", "bad_topic", "schema", "schema", "unknown_device"],
            strict=True,
        )
    ]
    assert [bytes(r["payload"]).decode() for r in letters] == [p for _, p in messages[:5]]
    assert letters[2]["detail"].startswith("status: ")
    assert worker.metrics.snapshot()["rejected"] == {
        "bad_topic": 2,
        "schema": 2,
        "unknown_device": 1,
    }
    assert [dict(r) for r in status] == [
        {"device_id": "bin-000001", "state": "online", "fw": "2.1.0"}
    ]
    assert count(database_url, "SELECT count(*) FROM readings") == 0

"""SenML through the real broker: an extract written as SenML and published on the senml topic
is stored exactly as it was; broken packs go to the dead letters with their reasons."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import publish

from civic.cli import main
from firmware_contracts import METRICS, Reading, TopicLayout
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch

from .helpers import count, register_estate, start_worker, wait_for

pytestmark = pytest.mark.slow

_COLUMNS = f"device_id, ts, seq, {', '.join(METRICS)}"


def _history(device_ids: list[str]) -> list[Reading]:
    rng = random.Random(7)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=20)
    out = []
    for device_id in device_ids:
        for k in range(40):
            ts = start + timedelta(minutes=30 * k, microseconds=rng.randrange(10**6))
            if device_id.startswith("bin"):
                values: dict[str, Any] = {
                    "fill_pct": round(rng.uniform(0, 100), 1),
                    "temp_c": round(rng.uniform(-5, 30), 2),
                    "tilt_deg": rng.choice([None, round(rng.uniform(0, 90), 1)]),
                }
            else:
                values = {
                    "rh_pct": round(rng.uniform(30, 95), 1),
                    "temp_c": round(rng.uniform(-3, 24), 2),
                    "co2_ppm": rng.choice([None, float(rng.randrange(400, 2500))]),
                }
            seq = None if k % 9 == 4 else k  # history imports may lack a counter
            out.append(Reading(device_id, ts, seq=seq, battery_v=3.6, rssi_dbm=-97.0, **values))
    return out


def _per_device_packs(pack: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Split an extract's pack where a base name starts (each run names its device and base
    time again), and join each device's runs into that device's pack."""
    packs: dict[str, list[dict[str, Any]]] = {}
    device = ""
    for record in pack:
        if "bn" in record:
            device = record["bn"].rstrip(":")
        packs.setdefault(device, []).append(record)
    return packs


def _sim_auth(mqtt: Any) -> dict[str, str]:
    """The simulator's account: a gateway that may publish for any device."""
    auth = mqtt.auth("sim")
    return {"username": auth.username, "password": auth.password}


def _stored(url: str) -> list[dict[str, Any]]:
    with connect(url) as conn:
        return conn.execute(f"SELECT {_COLUMNS} FROM readings ORDER BY device_id, ts").fetchall()


def test_senml_extract_published_on_the_senml_topic_stores_identical_readings(
    civic_env, native_database_url: str, tmp_path: Path
) -> None:
    source_url, mqtt = civic_env
    target_url = native_database_url
    estate = register_estate(source_url, bins=2, homes=2)
    register_estate(target_url, bins=2, homes=2)
    history = _history([row["device_id"] for row in estate])
    with connect(source_url) as conn:
        prepare_session(conn)
        write_batch(conn, history, [], partitions=PartitionGuard())

    out = tmp_path / "extract.senml.json"
    assert main(["export", "readings", "--since", "2d", "--format", "senml", "-o", str(out)]) == 0
    pack = json.loads(out.read_text())
    assert {r["u"] for r in pack if "u" in r} == {"/", "Cel", "V", "%RH", "ppm", "deg", "dBm"}

    worker, stop, thread = start_worker(target_url, mqtt)
    layout = TopicLayout(mqtt.prefix)
    packs = _per_device_packs(pack)
    assert len(packs) == len(estate)
    publish.multiple(
        [
            {"topic": layout.senml(device), "payload": json.dumps(part), "qos": 1}
            for device, part in packs.items()
        ],
        hostname=mqtt.host,
        port=mqtt.port,
        auth=_sim_auth(mqtt),
    )
    wait_for(lambda: worker.metrics.snapshot()["received"] >= len(packs), 120, "every pack")
    stop.set()
    thread.join_checked(30)

    assert count(target_url, "SELECT count(*) FROM deadletters") == 0
    stored = _stored(target_url)
    assert len(stored) == len(history)
    assert stored == _stored(source_url)


def test_broken_senml_packs_are_dead_lettered_with_their_reasons(database_url: str, mqtt) -> None:
    register_estate(database_url, bins=1, homes=0)
    worker, stop, thread = start_worker(database_url, mqtt)
    layout = TopicLayout(mqtt.prefix)
    bt = (datetime.now(UTC) - timedelta(minutes=5)).timestamp()
    good = [{"bn": "bin-000001:", "bt": bt, "n": "fill", "u": "/", "v": 0.42}]
    messages = [
        ("bin-000001", '{"n": "fill", "v": 0.5}', "senml_malformed"),
        ("bin-000001", '[{"n": "fill", "v": "half"}]', "senml_malformed"),
        ("bin-000001", "[]", "senml_malformed"),
        ("bin-000001", json.dumps([{**good[0], "v": 1.7}]), "out_of_range"),
        ("bin-000001", json.dumps([{**good[0], "u": "l"}]), "schema"),
        ("bin-000001", json.dumps([{**good[0], "bn": "bin-000002:"}]), "topic_mismatch"),
        ("bin-999999", json.dumps([{**good[0], "bn": "bin-999999:"}]), "unknown_device"),
        ("bin-000001", json.dumps(good), None),
    ]
    publish.multiple(
        [{"topic": layout.senml(d), "payload": p, "qos": 1} for d, p, _ in messages],
        hostname=mqtt.host,
        port=mqtt.port,
        auth=_sim_auth(mqtt),
    )
    wait_for(lambda: worker.metrics.snapshot()["received"] >= len(messages), 30, "every pack")
    stop.set()
    thread.join_checked(30)
    with connect(database_url) as conn:
        letters = conn.execute("SELECT topic, reason, payload FROM deadletters").fetchall()
        stored = conn.execute("SELECT device_id, fill_pct, seq FROM readings").fetchall()
    expected = sorted((layout.senml(d), r, p) for d, p, r in messages if r)
    assert sorted((r["topic"], r["reason"], bytes(r["payload"]).decode()) for r in letters) == (
        expected
    )
    assert [dict(r) for r in stored] == [{"device_id": "bin-000001", "fill_pct": 42.0, "seq": None}]

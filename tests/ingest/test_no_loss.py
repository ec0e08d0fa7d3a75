"""Crashes and restarts lose no acknowledged reading and store none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from device_sim import SimConfig, Simulator

from .helpers import (
    Background,
    assert_stored_exactly,
    count,
    register_estate,
    wait_for,
    worker_stats,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _start_ingest(
    database_url: str,
    mqtt,
    client_id: str,
    log: Path,
    *extra: str,
    stdout: Path | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CIVIC_DATABASE_URL": database_url,
        "CIVIC_MQTT_URL": mqtt.url,
        "CIVIC_TOPIC_PREFIX": mqtt.prefix,
        "CIVIC_MQTT_ACCOUNTS_FILE": str(mqtt.local.accounts_file),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "civic.cli",
            "ingest",
            "--client-id",
            client_id,
            "--flush-ms",
            "50",
            *extra,
        ],
        env=env,
        cwd=ROOT,
        stdout=stdout.open("ab") if stdout else subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,  # its own process group: workers are signalled with it
    )


def test_ingest_killed_and_broker_restarted_mid_stream(
    services, database_url: str, mqtt, tmp_path: Path
) -> None:
    if services.local is None:
        pytest.skip("needs the project-local broker to restart it")
    estate = register_estate(database_url, bins=150, homes=50)
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    ingest = _start_ingest(database_url, mqtt, client_id, log)
    config = SimConfig(
        bins=150,
        homes=50,
        interval_s=300,
        duration_s=12 * 3600,
        speed=10**6,
        max_rate=1500,
        duplicate_pct=1,
        seed=11,
        topic_prefix=mqtt.prefix,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
        record_keys=True,
    )
    sim = Simulator(config, estate, host=mqtt.host, port=mqtt.port, auth=mqtt.auth("sim"))
    runner = Background(sim.run)
    try:
        # Ingest subscribed: its persistent session now queues for it (on a busy machine the
        # subprocess can take several seconds to get there).
        wait_for(lambda: "mqtt connected" in log.read_text(), 60, "ingest to connect")
        time.sleep(1)
        runner.start()
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM readings") > 500,
            30,
            "ingest to store some readings",
        )
        ingest.send_signal(signal.SIGKILL)  # a crash: no flush, no clean disconnect
        ingest.wait(10)
        time.sleep(1)
        ingest = _start_ingest(database_url, mqtt, client_id, log)
        wait_for(lambda: sim.report.published > 4000, 30, "more publishing")
        services.local.stop_mosquitto()  # broker restart mid-stream
        time.sleep(1)
        services.local.start_mosquitto()
        report = runner.join_checked(180)
        assert report.acked == report.published

        expected = report.keys
        assert_stored_exactly(database_url, expected, 90, log)
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)
    assert "mqtt connected" in log.read_text()


def test_shared_subscription_workers_killed_mid_stream_lose_nothing(
    database_url: str, mqtt, tmp_path: Path
) -> None:
    """``--workers 3`` on the shared subscription: all three crash at once and come back with
    the same client ids; every acknowledged reading is stored exactly once."""
    workers = 3
    estate = register_estate(database_url, bins=80, homes=20)
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    log, stats = tmp_path / "ingest.log", tmp_path / "stats.jsonl"
    argv = ("--workers", str(workers), "--stats", "--stats-interval", "0.5")
    ingest = _start_ingest(database_url, mqtt, client_id, log, *argv, stdout=stats)
    config = SimConfig(
        bins=80,
        homes=20,
        interval_s=300,
        duration_s=8 * 3600,
        speed=10**6,
        max_rate=1000,
        seed=12,
        topic_prefix=mqtt.prefix,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
        record_keys=True,
    )
    sim = Simulator(config, estate, host=mqtt.host, port=mqtt.port, auth=mqtt.auth("sim"))
    runner = Background(sim.run)
    try:
        # Every worker's persistent session is on the shared subscription before publishing.
        wait_for(
            lambda: log.read_text().count("mqtt connected") >= workers, 60, "workers to connect"
        )
        time.sleep(1)
        runner.start()
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM readings") > 1000,
            60,
            "ingest to store some readings",
        )
        os.killpg(ingest.pid, signal.SIGKILL)  # every worker crashes: no flush, no disconnect
        ingest.wait(10)
        first_run = worker_stats(stats)
        stats.write_text("")
        ingest = _start_ingest(database_url, mqtt, client_id, log, *argv, stdout=stats)
        report = runner.join_checked(180)
        assert report.acked == report.published
        expected = report.keys
        assert_stored_exactly(database_url, expected, 90, log)
    finally:
        os.killpg(ingest.pid, signal.SIGINT)
        ingest.wait(30)
    assert ingest.returncode == 0, log.read_text()[-3000:]
    # The load was shared: each worker received some before the crash and after the restart.
    assert sorted(first_run) == list(range(workers)), first_run
    assert all(s["received"] > 0 for s in first_run.values()), first_run
    second_run = worker_stats(stats)
    assert sorted(second_run) == list(range(workers)), second_run
    assert all(s["final"] and s["received"] > 0 for s in second_run.values()), second_run

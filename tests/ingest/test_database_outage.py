"""While the database is down, ingest holds messages unacknowledged, retries, and resumes."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from device_sim import SimConfig, Simulator
from ingest import IngestConfig, IngestMetrics, IngestWorker

from .helpers import Background, count, register_estate, wait_for

pytestmark = pytest.mark.slow


def test_ingest_survives_database_restart(services, database_url: str, mqtt) -> None:
    if services.local is None:
        pytest.skip("needs the project-local PostgreSQL to restart it")
    estate = register_estate(database_url, bins=80, homes=20)
    config = IngestConfig(
        database_url=database_url,
        mqtt_host=mqtt.host,
        mqtt_port=mqtt.port,
        client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        topic_prefix=mqtt.prefix,
        flush_interval_s=0.05,
        inbox_size=500,  # small: the bound must hold under backlog
    )
    worker = IngestWorker(config, IngestMetrics())
    stop = threading.Event()
    ingest = Background(lambda: worker.run(stop))
    ingest.start()
    assert worker.subscriber.connected.wait(10)
    sim_config = SimConfig(
        bins=80,
        homes=20,
        interval_s=300,
        duration_s=12 * 3600,
        speed=10**6,
        max_rate=800,
        seed=3,
        topic_prefix=mqtt.prefix,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
    )
    sim = Simulator(sim_config, estate, host=mqtt.host, port=mqtt.port)
    runner = Background(sim.run)
    runner.start()
    try:
        wait_for(lambda: worker.metrics.snapshot()["stored"] > 300, 30, "first readings stored")
        services.local.stop_postgres()
        time.sleep(3)
        assert worker.inbox.qsize() <= config.inbox_size
        services.local.start_postgres()
        report = runner.join_checked(120)
        wait_for(
            lambda: worker.metrics.snapshot()["stored"] >= sum(report.readings.values()),
            90,
            "every reading stored after the outage",
        )
    finally:
        stop.set()
        ingest.join_checked(30)
    assert worker.metrics.snapshot()["db_errors"] > 0
    assert count(database_url, "SELECT count(*) FROM readings") == sum(report.readings.values())

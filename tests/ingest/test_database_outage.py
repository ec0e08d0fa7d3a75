"""While the database is down, ingest holds messages unacknowledged, retries, and resumes."""

from __future__ import annotations

import time
import uuid

import pytest

from device_sim import SimConfig, Simulator

from .helpers import Background, count, register_estate, start_worker, wait_for

pytestmark = pytest.mark.slow


def test_ingest_survives_database_restart(services, database_url: str, mqtt) -> None:
    if services.local is None:
        pytest.skip("needs the project-local PostgreSQL to restart it")
    estate = register_estate(database_url, bins=80, homes=20)
    # A small inbox: the memory bound must hold while the database is down.
    worker, stop, ingest = start_worker(database_url, mqtt, inbox_size=500)
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
        assert worker.inbox.qsize() <= worker.config.inbox_size
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

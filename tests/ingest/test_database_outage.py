"""While the database is down, ingest holds messages unacknowledged, retries, and resumes."""

from __future__ import annotations

import uuid

import pytest

from device_sim import SimConfig, Simulator

from .helpers import Background, count, register_estate, start_worker, wait_for

pytestmark = pytest.mark.slow


def test_while_the_database_is_down_ingest_holds_a_fixed_number_and_the_broker_the_rest(
    services, database_url: str, mqtt
) -> None:
    """The README's "bounded memory": with the database down the inbox fills and stays full,
    nothing more is acknowledged while devices keep publishing (the broker holds it), and
    everything lands once the database is back."""
    if services.local is None:
        pytest.skip("needs the project-local PostgreSQL to restart it")
    inbox_size, batch_size = 300, 100
    estate = register_estate(database_url, bins=80, homes=20)
    worker, stop, ingest = start_worker(
        database_url, mqtt, inbox_size=inbox_size, batch_size=batch_size
    )
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
    sim = Simulator(sim_config, estate, host=mqtt.host, port=mqtt.port, auth=mqtt.auth("sim"))
    runner = Background(sim.run)
    runner.start()
    try:
        wait_for(lambda: worker.metrics.snapshot()["stored"] > 300, 30, "first readings stored")
        services.local.stop_postgres()
        wait_for(lambda: worker.inbox.qsize() >= inbox_size, 30, "the inbox to fill")
        acknowledged = worker.metrics.snapshot()["received"]
        published = sim.report.published
        wait_for(lambda: sim.report.published > published + 2000, 60, "devices to keep publishing")
        # Meanwhile ingest acknowledged nothing and held no more than its inbox and one batch;
        # everything else published since is with the broker.
        assert worker.metrics.snapshot()["received"] == acknowledged
        assert worker.inbox.qsize() == inbox_size
        assert sim.report.published - acknowledged > inbox_size + batch_size + 2000
        services.local.start_postgres()
        report = runner.join_checked(120)
        wait_for(
            lambda: worker.metrics.snapshot()["received"] >= report.published,
            90,
            "every message acknowledged after the outage",
        )
    finally:
        services.local.start_postgres()  # the rest of the session needs it, whatever failed
        stop.set()
        ingest.join_checked(30)
    assert worker.metrics.snapshot()["db_errors"] > 0
    assert count(database_url, "SELECT count(*) FROM readings") == sum(report.readings.values())

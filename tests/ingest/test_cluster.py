"""The clustered message path: devices publish over MQTT 3.1.1 to a 3-node NATS cluster, two
ingest workers consume from JetStream; a node dies and comes back, and every reading the
cluster acknowledged to a device is stored exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.nats_cluster import MQTT_STREAM, NatsCluster
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    if shutil.which("nats-server") is None and not Path("/usr/sbin/nats-server").exists():
        pytest.skip("nats-server not installed (apt-get install nats-server)")
    nats = NatsCluster(tmp_path / "nats")
    nats.up()
    yield nats
    nats.down()


def stream_leader(cluster: NatsCluster, running: list[int]) -> str:
    """The node that leads the MQTT message stream's RAFT group, as a live node reports it."""
    for index in running:
        report = cluster.jsz(index)
        for account in report.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream["name"] == MQTT_STREAM and stream.get("cluster", {}).get("leader"):
                    return str(stream["cluster"]["leader"])
    raise AssertionError("no leader for the MQTT message stream")


def start_ingest(
    database_url: str, source: str, cluster: NatsCluster, prefix: str, log: Path, stats: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CIVIC_DATABASE_URL": database_url,
        "CIVIC_TOPIC_PREFIX": prefix,
        "CIVIC_MQTT_ACCOUNTS_FILE": str(cluster.accounts_file),
    }
    env.pop("CIVIC_MQTT_URL", None)
    argv = ["--stats", "--stats-interval", "0.5", "--flush-ms", "50"]
    return subprocess.Popen(
        [sys.executable, "-m", "civic.cli", "ingest", "--source", source, *argv],
        env=env,
        cwd=ROOT,
        stdout=stats.open("ab"),
        stderr=log.open("ab"),
        start_new_session=True,
    )


def test_node_killed_and_restarted_loses_no_acknowledged_reading(
    cluster: NatsCluster, database_url: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    estate = register_estate(database_url, bins=150, homes=50)
    log = tmp_path / "ingest.log"
    # The node to kill is the one leading the MQTT message stream (the hardest case: the
    # stream must elect a new leader); the simulator talks to another node, since a device
    # reconnects to the address it knows.
    running = [n.index for n in cluster.nodes]
    leader = stream_leader(cluster, running)
    victim = next(n for n in cluster.nodes if n.name == leader)
    entry = next(n for n in cluster.nodes if n is not victim)
    # Two ingest processes: one first connected to the node that dies (it learns the others
    # from the cluster and fails over), one to a survivor.
    stats = [tmp_path / "stats-0.jsonl", tmp_path / "stats-1.jsonl"]
    ingests = [
        start_ingest(database_url, source, cluster, prefix, log, stats[k])
        for k, source in enumerate([victim.url, entry.url])
    ]
    config = SimConfig(
        bins=150,
        homes=50,
        interval_s=300,
        duration_s=12 * 3600,
        speed=10**6,
        max_rate=1000,
        duplicate_pct=1,
        seed=13,
        topic_prefix=prefix,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
        record_keys=True,
        mqtt_version="3.1.1",
    )
    sim = Simulator(
        config, estate, host="127.0.0.1", port=entry.mqtt_port, auth=cluster.service_auth("sim")
    )
    runner = Background(sim.run)
    try:
        wait_for(lambda: log.read_text().count("jetstream bound") >= 2, 60, "both workers to bind")
        runner.start()
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM readings") > 1000,
            60,
            "ingest to store some readings",
        )
        cluster.kill_node(victim.index)  # a crash: no flush, no goodbye
        published_at_kill = sim.report.published
        wait_for(
            lambda: sim.report.published > published_at_kill + 3000,
            90,
            "publishing to carry on without the node",
        )
        cluster.start_node(victim.index)
        report = runner.join_checked(240)
        assert report.acked == report.published
        expected = report.keys
        assert_stored_exactly(database_url, expected, 120, log)
        # Exactly once: one row per reading, however often it was delivered.
        assert count(database_url, "SELECT count(*) FROM readings") == len(expected)
    finally:
        for ingest in ingests:
            os.killpg(ingest.pid, signal.SIGINT)
        for ingest in ingests:
            ingest.wait(60)
    assert [i.returncode for i in ingests] == [0, 0], log.read_text()[-3000:]
    assert "nats reconnected" in log.read_text()  # the first worker did lose its node
    # Both workers took a share from the same durable consumers.
    for path in stats:
        final = worker_stats(path)[0]
        assert final["final"], final
        assert final["received"] > 0, final

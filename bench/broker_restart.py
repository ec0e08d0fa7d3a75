"""What a broker restart loses: readings the broker acknowledged to a device but never stored.

    .venv/bin/python -m bench.broker_restart [--repeats 2] [--rate 1000]

Three message paths, each with the device simulator publishing QoS 1 at ``--rate`` msg/s and
ingest storing with ack after commit; mid-stream the broker is restarted (Mosquitto: stopped,
then started 1 s later; NATS: the node leading the MQTT message stream is killed, then started
again once 3,000 more messages were published):
  * mosquitto, 1 worker on a plain subscription (its persistent session survives the restart);
  * mosquitto, 2 workers on the MQTT v5 shared subscription (Mosquitto 2.0 does not persist
    shared subscriptions: until each worker has re-subscribed, what devices publish finds no
    subscriber and is dropped after the broker acknowledged it);
  * nats, 2 workers on JetStream durable consumers (3-node cluster, replicas 3).
Counts, per run: readings acknowledged to the simulator, stored, lost (acknowledged, not
stored) and the rows stored twice (must be 0: the store's key is (device_id, ts)).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.nats_cluster import MQTT_STREAM, NatsCluster
from common.services import LocalServices
from device_sim import SimConfig, Simulator, generate_estate
from store.db import connect, migrate
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
BINS, HOMES = 150, 50


def _stored_keys(url: str) -> tuple[set[tuple[str, str]], int]:
    with connect(url) as conn:
        rows = conn.execute("SELECT device_id, ts FROM readings").fetchall()
        conn.execute("TRUNCATE readings")
    keys = {
        (r["device_id"], r["ts"].isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        for r in rows
    }
    return keys, len(rows) - len(keys)


def _ingest(url: str, env: dict[str, str], workers: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "civic.cli",
            "ingest",
            "--workers",
            str(workers),
            "--client-id",
            f"restart-{uuid.uuid4().hex[:6]}",
            "--flush-ms",
            "50",
        ],
        env={**os.environ, **env, "CIVIC_DATABASE_URL": url},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,
    )


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def one_run(
    url: str,
    *,
    path: str,
    workers: int,
    rate: float,
    env: dict[str, str],
    sim_target: tuple[int, Any, str],
    restart: Any,
) -> dict[str, Any]:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    log = ROOT / ".civic" / "bench-restart" / f"ingest-{prefix}.log"
    ingest = _ingest(url, {**env, "CIVIC_TOPIC_PREFIX": prefix}, workers, log)
    ready = ("mqtt connected", "jetstream bound")
    _wait(lambda: sum(log.read_text().count(r) for r in ready) >= workers, 120)
    port, auth, version = sim_target
    config = SimConfig(
        bins=BINS,
        homes=HOMES,
        interval_s=300,
        duration_s=6 * 3600,
        speed=10**6,
        max_rate=rate,
        seed=21,
        topic_prefix=prefix,
        client_id=f"sim-{prefix}",
        record_keys=True,
        mqtt_version=version,
    )
    sim = Simulator(config, generate_estate(BINS, HOMES), host="127.0.0.1", port=port, auth=auth)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("report", sim.run()))
    thread.start()
    _wait(lambda: sim.report.published > 3000, 120)
    restart(sim)
    thread.join(600)
    report = result["report"]
    expected = report.keys
    with connect(url) as conn:
        _wait(
            lambda: (
                conn.execute("SELECT count(*) AS n FROM readings").fetchone()["n"] >= len(expected)
            ),
            60,
        )
    time.sleep(2)
    os.killpg(ingest.pid, signal.SIGINT)
    ingest.wait(60)
    stored, twice = _stored_keys(url)
    return {
        "path": path,
        "workers": workers,
        "published": report.published,
        "acked": report.acked,
        "readings_acked": len(expected),
        "stored": len(stored & expected),
        "lost": len(expected - stored),
        "stored_twice": twice,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0, help="simulator msg/s")
    args = parser.parse_args()
    data = ROOT / ".civic" / "bench-restart"
    local = LocalServices(data)  # its own broker: this benchmark restarts it
    state = local.up()
    admin = state.database_url.rsplit("/", 1)[0] + "/postgres"
    with connect(admin) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_restart WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_restart")
    url = state.database_url.rsplit("/", 1)[0] + "/bench_restart"
    migrate(url)
    with connect(url) as conn:
        upsert_devices(conn, [parse_device_row(row) for row in generate_estate(BINS, HOMES)])

    def restart_mosquitto(_sim: Simulator) -> None:
        local.stop_mosquitto()
        time.sleep(1)
        local.start_mosquitto()

    mosquitto_env = {
        "CIVIC_MQTT_URL": state.mqtt_url,
        "CIVIC_MQTT_ACCOUNTS_FILE": str(local.accounts_file),
    }
    mosquitto_sim = (int(state.mqtt_port or 0), local.service_auth("sim"), "5")
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeats):
        for workers in (1, 2):
            runs.append(
                one_run(
                    url,
                    path="mosquitto",
                    workers=workers,
                    rate=args.rate,
                    env=mosquitto_env,
                    sim_target=mosquitto_sim,
                    restart=restart_mosquitto,
                )
            )
            print(runs[-1], flush=True)
    cluster = NatsCluster(data / f"nats-{uuid.uuid4().hex[:6]}")
    cluster.up()
    try:
        runs += _nats_runs(url, cluster, args)
    finally:
        cluster.down()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    local.down()
    _write(runs, args)


def _stream_leader(cluster: NatsCluster, running: list[int]) -> int:
    for index in running:
        for account in cluster.jsz(index).get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                leader = stream.get("cluster", {}).get("leader")
                if stream["name"] == MQTT_STREAM and leader:
                    return next(n.index for n in cluster.nodes if n.name == leader)
    raise RuntimeError("no leader for the MQTT message stream")


def _nats_runs(url: str, cluster: NatsCluster, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    env = {
        "CIVIC_INGEST_SOURCE": cluster.source_url,
        "CIVIC_MQTT_ACCOUNTS_FILE": str(cluster.accounts_file),
    }
    for _ in range(args.repeats):
        victim = _stream_leader(cluster, [n.index for n in cluster.nodes])
        entry = next(n for n in cluster.nodes if n.index != victim)

        def kill_and_restart(sim: Simulator, victim: int = victim) -> None:
            cluster.kill_node(victim)
            at_kill = sim.report.published
            _wait(lambda: sim.report.published > at_kill + 3000, 120)
            cluster.start_node(victim)

        runs.append(
            one_run(
                url,
                path="nats",
                workers=2,
                rate=args.rate,
                env=env,
                sim_target=(entry.mqtt_port, cluster.service_auth("sim"), "3.1.1"),
                restart=kill_and_restart,
            )
        )
        print(runs[-1], flush=True)
    return runs


def _write(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    how = {
        "mosquitto": "broker stopped, started 1 s later",
        "nats": "stream-leader node killed (SIGKILL), restarted after 3,000 more publishes",
    }
    sub = {1: "plain subscription", 2: "shared subscription ($share)"}
    lines = [
        "# Broker restart: what is lost",
        "",
        f"Command: `{' '.join(['.venv/bin/python -m bench.broker_restart', *sys.argv[1:]])}`",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (shared). The "
        f"simulator ({BINS} bins, {HOMES} homes) publishes QoS 1 at up to {args.rate:.0f} msg/s; "
        "mid-stream the broker restarts. *Lost* = readings the broker acknowledged (PUBACK) to "
        "the simulator that were never stored; *stored twice* = duplicate rows.",
        "",
        "| path | ingest | restart | readings acknowledged | stored | lost | stored twice |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ingest = (
            f"{r['workers']} workers, JetStream durable consumers"
            if r["path"] == "nats"
            else f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}, {sub[r['workers']]}"
        )
        lines.append(
            f"| {r['path']} | {ingest} | {how[r['path']]} | {r['readings_acked']} | "
            f"{r['stored']} | {r['lost']} | {r['stored_twice']} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (ROOT / "bench" / "results" / "broker_restart.md").write_text(text)


if __name__ == "__main__":
    main()

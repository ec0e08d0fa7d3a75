"""Ingest throughput and latency, end to end and against its ceilings, in one run.

    .venv/bin/python -m bench.ingest [--rates 14000 5000] [--sim-processes 3] [--seconds 20]
        [--devices 10000] [--backlog 150000] [--paths mosquitto nats]

Measures, on the project-local PostgreSQL and Mosquitto (started under .civic/bench):
  1. raw COPY: readings/s through the same write path ingest uses (COPY + merge + commit);
  2. raw subscribe: messages/s one Python paho subscriber receives and JSON-decodes at QoS 1;
  3. end to end at the offered load, 1 worker and 2 workers (MQTT v5 shared subscription):
     sustained readings/s publish → committed and p50/p99 latency (received_at - ts);
  4. the same backlog and live runs on the clustered path: a local 3-node NATS cluster
     (JetStream replicas 3), devices publishing MQTT 3.1.1 to its MQTT listeners, ingest
     pulling from JetStream (``civic ingest --source nats://...``).
Live runs publish with the device simulator (``civic sim --processes N``: one process offers
about 6,500 msg/s, below one ingest worker's ceiling) on the same machine; the backlog and
raw-subscribe runs use a lean publisher so the queue fills fast.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.mqtt import MqttAuth
from common.nats_cluster import NatsCluster
from common.services import LocalServices
from device_sim import generate_estate
from firmware_contracts import Reading
from store.db import connect, migrate
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
PUBLISH_WINDOW = 400  # paho scans its whole in-flight table per PUBACK: keep it small


@dataclass(frozen=True)
class Target:
    """A message path under test: where devices publish, and how ingest reads."""

    name: str
    host: str
    mqtt_ports: tuple[int, ...]  # publishers spread over these (one per cluster node)
    mqtt_version: str  # "5" (Mosquitto) or "3.1.1" (NATS's MQTT listener)
    sim_auth: MqttAuth
    accounts_file: Path  # the services' passwords: ingest and the simulator log in with them
    ingest_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def ingest_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "CIVIC_MQTT_ACCOUNTS_FILE": str(self.accounts_file)}
        if self.name == "mosquitto":
            env["CIVIC_MQTT_URL"] = f"mqtt://{self.host}:{self.mqtt_ports[0]}"
        return env


def publisher(
    target: Target,
    port: int,
    prefix: str,
    devices: int,
    rate: float | None,
    seconds: float,
    result: Any,
    count: int | None = None,
    first_device: int = 0,
) -> None:
    """Publish fresh readings (ts = now) round-robin over devices at ``rate`` msg/s, for
    ``seconds`` or until ``count`` messages."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311 if target.mqtt_version == "3.1.1" else mqtt.MQTTv5,
    )
    target.sim_auth.apply(client)
    client.max_inflight_messages_set(PUBLISH_WINDOW)
    client.max_queued_messages_set(0)
    acked = [0]
    client.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
    client.connect(target.host, port)
    client.loop_start()
    ids = [f"bin-{i:06d}" for i in range(first_device + 1, first_device + devices + 1)]
    topics = [f"{prefix}/v1/devices/{d}/telemetry" for d in ids]
    sent, seqs = 0, [0] * devices
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end or (count is not None and sent >= count):
            break
        due = int((now - start) * rate) + 1 if rate else sent + 50
        # Bound the backlog so the offered load is what the broker really gets.
        if sent - acked[0] >= 100:  # stay within paho's in-flight window (its queue is O(n))
            time.sleep(0.001)
            continue
        if count is not None:
            due = min(due, count)
        while sent < due:
            i = sent % devices
            seqs[i] += 1
            ts = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            client.publish(
                topics[i],
                f'{{"v":1,"device_id":"{ids[i]}","seq":{seqs[i]},'
                f'"ts":"{ts}","fill_pct":{sent % 100},"battery_v":3.6}}',
                qos=1,
            )
            sent += 1
        if rate:
            time.sleep(0.001)
    wall = time.monotonic() - start
    deadline = time.monotonic() + 60
    while acked[0] < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    result.put({"sent": sent, "publish_s": wall, "acked": acked[0]})


def run_publishers(
    target: Target,
    prefix: str,
    devices: int,
    *,
    rate: float | None,
    seconds: float,
    count: int | None = None,
    procs: int = 2,
) -> dict[str, float]:
    """Several publisher processes (one paho client each) share the devices and the load."""
    result: mp.Queue = mp.Queue()
    share = devices // procs
    workers = [
        mp.Process(
            target=publisher,
            args=(
                target,
                target.mqtt_ports[k % len(target.mqtt_ports)],
                prefix,
                share,
                rate / procs if rate else None,
                seconds,
                result,
                count // procs if count else None,
                k * share,
            ),
        )
        for k in range(procs)
    ]
    for w in workers:
        w.start()
    parts = [result.get(timeout=seconds + 300) for _ in workers]
    for w in workers:
        w.join()
    sent = sum(p["sent"] for p in parts)
    wall = max(p["publish_s"] for p in parts)
    return {"sent": sent, "rate": sent / wall, "acked": sum(p["acked"] for p in parts)}


def raw_subscribe_drain(target: Target, devices: int, count: int, ingest_auth: MqttAuth) -> float:
    """Ceiling: one paho subscriber, QoS 1 with auto-ack, json.loads per message, draining a
    backlog queued on its persistent session (no publisher competing for the CPU)."""
    prefix = f"raw{uuid.uuid4().hex[:6]}"
    client_id = f"bench-sub-{prefix}"
    result: mp.Queue = mp.Queue()
    ready = mp.Event()
    host, port = target.host, target.mqtt_ports[0]
    probe = mp.Process(
        target=raw_subscriber,
        args=(host, port, ingest_auth, client_id, prefix, 0, result, ready),
    )
    probe.start()  # creates the session and its subscription, then leaves
    probe.join()
    result.get()
    run_publishers(target, prefix, devices, rate=None, seconds=600, count=count)
    drain = mp.Process(
        target=raw_subscriber,
        args=(host, port, ingest_auth, client_id, prefix, count, result, ready),
    )
    drain.start()
    outcome = result.get(timeout=300)
    drain.join()
    return float(outcome["rate"])


def raw_subscriber(
    host: str,
    port: int,
    auth: MqttAuth,
    client_id: str,
    prefix: str,
    expected: int,
    result: Any,
    ready: Any,
) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    auth.apply(client)
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(c, u, msg) -> None:
        json.loads(msg.payload)
        if state["n"] == 0:
            state["first"] = time.monotonic()
        state["n"] += 1
        state["last"] = time.monotonic()

    subscribed = mp.Event()
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(f"{prefix}/v1/devices/+/telemetry", qos=1)

    def on_subscribe(*_: Any) -> None:
        subscribed.set()
        ready.set()

    client.on_subscribe = on_subscribe
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    subscribed.wait(10)
    deadline = time.monotonic() + 240
    while state["n"] < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
    span = max(state["last"] - state["first"], 1e-9)
    result.put({"received": state["n"], "rate": state["n"] / span})


def measure_copy(url: str, devices: int, rows: int = 300_000, batch: int = 5000) -> float:
    base = datetime.now(UTC) - timedelta(days=20)
    readings = [
        Reading(
            f"bin-{i % devices + 1:06d}",
            base + timedelta(milliseconds=i),
            seq=i,
            fill_pct=float(i % 100),
            battery_v=3.6,
        )
        for i in range(rows)
    ]
    with connect(url) as conn:
        prepare_session(conn)
        guard = PartitionGuard()
        write_batch(conn, readings[:batch], [], partitions=guard)  # warm: partition, caches
        start = time.perf_counter()
        for i in range(batch, rows, batch):
            write_batch(conn, readings[i : i + batch], [], partitions=guard)
        elapsed = time.perf_counter() - start
        conn.execute("TRUNCATE readings")
    return (rows - batch) / elapsed


READY_LINES = ("mqtt connected", "jetstream bound")


def _ingest(
    url: str, target: Target, prefix: str, workers: int, idle_exit: float
) -> subprocess.Popen[bytes]:
    """``civic ingest`` in a subprocess; returns once every worker is subscribed (bound)."""
    env = {**target.ingest_env(), "CIVIC_DATABASE_URL": url, "CIVIC_TOPIC_PREFIX": prefix}
    log = ROOT / ".civic" / "bench" / f"ingest-{prefix}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "civic.cli",
            "ingest",
            "--workers",
            str(workers),
            "--client-id",
            f"bench-{prefix}",
            "--idle-exit",
            str(idle_exit),
            *target.ingest_args,
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,  # its own process group: the workers are signalled with it
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        if sum(text.count(line) for line in READY_LINES) >= workers:
            break
        time.sleep(0.1)
    return proc


def _stored(url: str) -> dict[str, float]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM received_at - ts) AS latency,"
            " extract(epoch FROM received_at) AS stored FROM readings"
        ).fetchall()
        conn.execute("TRUNCATE readings")
    if not rows:
        return {"stored": 0, "sustained": 0.0, "p50": float("nan"), "p99": float("nan")}
    latencies = sorted(float(r["latency"]) for r in rows)
    stored_at = sorted(float(r["stored"]) for r in rows)
    # Sustained rate over the middle 80 % of rows, away from start-up and drain.
    lo, hi = stored_at[len(stored_at) // 10], stored_at[len(stored_at) * 9 // 10]
    return {
        "stored": len(rows),
        "sustained": len(stored_at) * 0.8 / max(hi - lo, 1e-9),
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def _drained(url: str, expected: int, settle_s: float = 15.0) -> None:
    """Wait until ``expected`` readings are stored, or none arrived for ``settle_s``."""
    last, since = -1, time.monotonic()
    while True:
        with connect(url) as conn:
            now = int(conn.execute("SELECT count(*) AS n FROM readings").fetchone()["n"])
        if now >= expected or time.monotonic() - since > settle_s:
            return
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(0.5)


def live(
    url: str,
    target: Target,
    devices: int,
    rate: float,
    seconds: float,
    workers: int,
    sim_processes: int,
) -> dict[str, Any]:
    """Ingest running while the device simulator offers ``rate`` msg/s of fresh readings
    (real time: every device reports every ``devices / rate`` seconds)."""
    prefix = f"b{uuid.uuid4().hex[:8]}"
    # Stopped below once everything is stored: an idle exit would also have to outlast the
    # simulator's start-up (building a 10,000-device estate), which a busy machine stretches.
    ingest = _ingest(url, target, prefix, workers, idle_exit=900)
    env = {
        **target.ingest_env(),
        "CIVIC_MQTT_URL": f"mqtt://{target.host}:{target.mqtt_ports[0]}",
        "CIVIC_TOPIC_PREFIX": prefix,
    }
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "civic.cli",
            "sim",
            "--bins",
            str(devices),
            "--homes",
            "0",
            "--interval",
            f"{devices / rate:.3f}s",
            "--duration",
            f"{seconds:.0f}s",
            "--speed",
            "1",
            "--client-id",
            f"sim-{prefix}",
            "--mqtt-version",
            target.mqtt_version,
            "--processes",
            str(sim_processes),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    published = json.loads(sim.stdout.strip().splitlines()[-1])
    _drained(url, int(published["readings_total"]))
    os.killpg(ingest.pid, signal.SIGINT)
    ingest.wait(timeout=120)
    stored = _stored(url)
    return {
        "path": target.name,
        "scenario": "live",
        "workers": workers,
        "sim_processes": sim_processes,
        "offered_msg_s": rate,
        "published": published["readings_total"],
        "achieved_publish_msg_s": round(published["published"] / published["wall_s"]),
        "stored": stored["stored"],
        "readings_s": round(stored["sustained"]),
        "p50_s": round(stored["p50"], 3),
        "p99_s": round(stored["p99"], 3),
    }


def backlog(url: str, target: Target, devices: int, count: int, workers: int) -> dict[str, Any]:
    """A burst after an outage: ``count`` readings queued on ingest's sessions (or durable
    consumers), then drained."""
    prefix = f"q{uuid.uuid4().hex[:8]}"
    _ingest(url, target, prefix, workers, idle_exit=0.5).wait(timeout=60)  # sessions
    published = run_publishers(target, prefix, devices, rate=None, seconds=900, count=count)
    ingest = _ingest(url, target, prefix, workers, idle_exit=3)
    ingest.wait(timeout=600)
    stored = _stored(url)
    return {
        "path": target.name,
        "scenario": "backlog",
        "workers": workers,
        "offered_msg_s": "queued",
        "published": published["sent"],
        "achieved_publish_msg_s": round(published["rate"]),
        "stored": stored["stored"],
        "readings_s": round(stored["sustained"]),
        "p50_s": None,
        "p99_s": None,
    }


def _run_path(
    url: str, target: Target, args: argparse.Namespace, runs: list[dict[str, Any]]
) -> None:
    for workers in (1, 2):
        runs.append(backlog(url, target, args.devices, args.backlog, workers))
        print(json.dumps(runs[-1]), flush=True)
    for rate in args.rates:
        for workers in (1, 2):
            runs.append(
                live(url, target, args.devices, rate, args.seconds, workers, args.sim_processes)
            )
            print(json.dumps(runs[-1]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[14_000, 5_000],
        help="offered msg/s for the live runs (14,000: above one worker's ceiling)",
    )
    parser.add_argument(
        "--sim-processes",
        type=int,
        default=3,
        help="simulator processes offering the live load (one offers about 6,500 msg/s)",
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each live run")
    parser.add_argument("--backlog", type=int, default=150_000, help="queued readings to drain")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=("mosquitto", "nats"),
        default=["mosquitto", "nats"],
        help="message paths to measure (default both, in one run)",
    )
    args = parser.parse_args()

    local = LocalServices(ROOT / ".civic" / "bench")
    state = local.up()
    admin = state.database_url.rsplit("/", 1)[0] + "/postgres"
    with connect(admin) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench WITH (FORCE)")
        conn.execute("CREATE DATABASE bench")
    url = state.database_url.rsplit("/", 1)[0] + "/bench"
    mode, _ = migrate(url)
    mosquitto = Target(
        "mosquitto",
        "127.0.0.1",
        (int(state.mqtt_port or 0),),
        "5",
        local.service_auth("sim"),
        local.accounts_file,
    )
    with connect(url) as conn:
        # The simulator's estate: bin-000001 … bin-NNNNNN, as the live runs publish them.
        upsert_devices(conn, [parse_device_row(row) for row in generate_estate(args.devices, 0)])
    print(f"# command: python -m bench.ingest {' '.join(sys.argv[1:])}")
    print(f"# storage mode: {mode}; {os.cpu_count()} cores; {args.devices} devices", flush=True)

    copy_rate = measure_copy(url, args.devices)
    print(f"raw COPY write path: {copy_rate:,.0f} readings/s", flush=True)
    subscribe_rate = raw_subscribe_drain(
        mosquitto, args.devices, args.backlog, local.service_auth("ingest")
    )
    print(
        f"raw subscribe (one paho client, QoS 1, json.loads): {subscribe_rate:,.0f} msg/s",
        flush=True,
    )

    runs: list[dict[str, Any]] = []
    if "mosquitto" in args.paths:
        _run_path(url, mosquitto, args, runs)
    if "nats" in args.paths:
        cluster = NatsCluster(ROOT / ".civic" / "bench" / f"nats-{uuid.uuid4().hex[:6]}")
        cluster.up()
        try:
            nats = Target(
                "nats",
                "127.0.0.1",
                tuple(n.mqtt_port for n in cluster.nodes),
                "3.1.1",
                cluster.service_auth("sim"),
                cluster.accounts_file,
                ingest_args=("--source", cluster.source_url),
            )
            _run_path(url, nats, args, runs)
        finally:
            cluster.down()
            shutil.rmtree(cluster.data_dir, ignore_errors=True)

    lines = [
        "# Ingest benchmark",
        "",
        f"Command: `.venv/bin/python -m bench.ingest {' '.join(sys.argv[1:])}`",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (shared), storage "
        f"mode {mode}, {args.devices} devices; publishers, the broker (Mosquitto, or three NATS "
        "nodes with JetStream replicas 3), ingest and PostgreSQL all on this machine. QoS 1, "
        "ack after commit. Path *mosquitto*: MQTT 5, one worker on a plain subscription, two on "
        "a shared one. Path *nats*: MQTT 3.1.1 to the nodes' MQTT listeners (two publishers "
        "on two nodes in backlog runs, the simulator on one node in live runs), ingest pulling "
        "from JetStream durable consumers.",
        "",
        f"Ceilings measured in this run: raw COPY write path **{copy_rate:,.0f} readings/s**; "
        f"raw subscribe (one paho client, QoS 1, json.loads, draining a queued backlog) "
        f"**{subscribe_rate:,.0f} msg/s**.",
        "",
        "| path | scenario | workers | offered msg/s | achieved publish msg/s | stored "
        "| readings/s | p50 s | p99 s | vs raw COPY | vs raw subscribe |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['path']} | {r['scenario']} | {r['workers']} | {r['offered_msg_s']} | "
            f"{r['achieved_publish_msg_s']} | {r['stored']} | {r['readings_s']} | "
            f"{r['p50_s'] if r['p50_s'] is not None else '-'} | "
            f"{r['p99_s'] if r['p99_s'] is not None else '-'} | "
            f"{r['readings_s'] / copy_rate:.2f} | {r['readings_s'] / subscribe_rate:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "ingest.md").write_text(text)


if __name__ == "__main__":
    main()

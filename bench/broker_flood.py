"""A flood with ingest away, at production scale and with the production broker limits.

    .venv/bin/python -m bench.broker_flood [--sessions 2000] [--seconds 60] [--batch 20]

On a broker of its own (under .civic/bench-flood, the limits of ``common.broker.BrokerLimits``
unchanged) and the project-local PostgreSQL:

  1. registers ``--sessions`` devices, issues each its credentials, and has each connect over
     TLS, subscribe to its commands on a persistent session and go offline;
  2. ``civic ingest`` subscribes (its persistent session now queues for it) and stops;
  3. two publisher processes send telemetry batches (``--batch`` readings each, the devices'
     own seq numbers) at full speed for ``--seconds``, while the broker's resident memory is
     sampled;
  4. ``civic ingest --stats`` drains what the broker kept; then every device sends one more
     reading and ingest runs again: the loss shows as seq gaps in its stats line.

Writes bench/results/broker_flood.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.broker import BrokerLimits
from common.command_keys import load_command_secret
from common.services import LocalServices
from device_sim import generate_estate
from store.credentials import broker_password_hashes, issue_credentials
from store.db import connect, migrate
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
PUBLISH_WINDOW = 200
PUBLISHERS = 2
# The cap common.broker.BrokerLimits states for one ingest session: max_queued_bytes and
# max_inflight_bytes of payload plus a few hundred bytes of bookkeeping for each of
# max_queued_messages.
STATED_CAP_MB = 600


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


class RssSampler(threading.Thread):
    """The broker's resident memory every half second, until stopped; the highest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.highest_kb = pid, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.highest_kb = max(self.highest_kb, rss_kb(self.pid))

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.highest_kb


def publisher(
    mqtt_port: int, auth: dict[str, str], prefix: str, ids: list[str], spec: dict[str, Any]
) -> dict[str, Any]:
    """Batches of ``spec['batch']`` readings, round-robin over ``ids``, until the deadline;
    what was sent."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"flood-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(auth["username"], auth["password"])
    client.max_inflight_messages_set(PUBLISH_WINDOW)
    client.max_queued_messages_set(0)
    acked = [0]
    client.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    base = datetime.fromisoformat(spec["base"])  # a midnight
    days = [f"{base + timedelta(days=k):%Y-%m-%d}" for k in range(3)]
    topics = [f"{prefix}/v1/devices/{d}/telemetry" for d in ids]
    seqs = [0] * len(ids)
    sent = 0
    end = time.monotonic() + spec["seconds"]
    while time.monotonic() < end:
        if sent - acked[0] >= PUBLISH_WINDOW // 2:
            time.sleep(0.0005)
            continue
        i = sent % len(ids)
        items = []
        for _ in range(spec["batch"]):
            seqs[i] += 1
            day, second = divmod(seqs[i], 86400)  # the reading's ts: base + seq seconds
            hour, second = divmod(second, 3600)
            ts = f"{days[day]}T{hour:02d}:{second // 60:02d}:{second % 60:02d}Z"
            items.append(f'{{"seq":{seqs[i]},"ts":"{ts}","fill_pct":40.5,"battery_v":3.61}}')
        client.publish(
            topics[i], f'{{"v":1,"device_id":"{ids[i]}","readings":[{",".join(items)}]}}', qos=1
        )
        sent += 1
    while acked[0] < sent:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    return {"messages": sent, "readings": sum(seqs), "last_seq": dict(zip(ids, seqs, strict=True))}


def offline_session(port: int, ca: Path, prefix: str, device_id: str, password: str) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(device_id, password)
    client.tls_set(ca_certs=str(ca))
    done = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/v1/devices/{device_id}/commands", 1)
    client.on_subscribe = lambda *_: done.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 86400
    client.connect("localhost", port, clean_start=False, properties=props)
    client.loop_start()
    if not done.wait(60):
        raise RuntimeError(f"{device_id}: no SUBACK")
    client.disconnect()
    client.loop_stop()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix = f"flood{uuid.uuid4().hex[:6]}"
        self.local = LocalServices(ROOT / ".civic" / "bench-flood", limits=BrokerLimits())
        self.state = self.local.up()
        admin = self.state.database_url.rsplit("/", 1)[0] + "/postgres"
        with connect(admin) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_flood WITH (FORCE)")
            conn.execute("CREATE DATABASE bench_flood")
        self.url = self.state.database_url.rsplit("/", 1)[0] + "/bench_flood"
        migrate(self.url)
        self.ids: list[str] = []
        self.passwords: dict[str, str] = {}

    def provision(self) -> None:
        estate = generate_estate(self.args.sessions, 0, seed=3)
        with connect(self.url) as conn:
            upsert_devices(conn, [parse_device_row(row) for row in estate])
            secret = load_command_secret(self.local.data_dir / "command.secret")
            self.ids = [row["device_id"] for row in estate]
            issued = issue_credentials(conn, self.ids, secret=secret)
            self.local.write_device_passwords(broker_password_hashes(conn))
        self.passwords = {c.device_id: c.password for c in issued}

    def offline_sessions(self) -> float:
        start = time.monotonic()
        port = self.state.mqtt_tls_port
        assert port is not None
        for device_id in self.ids:
            offline_session(
                port, self.local.ca_file, self.prefix, device_id, self.passwords[device_id]
            )
        return time.monotonic() - start  # fmt: skip

    def ingest(self, *extra: str) -> dict[str, Any]:
        """``civic ingest`` as a council runs it; its final --stats line."""
        env = {
            **os.environ,
            "CIVIC_DATABASE_URL": self.url,
            "CIVIC_DATA_DIR": str(self.local.data_dir),
            "CIVIC_TOPIC_PREFIX": self.prefix,
        }
        env.pop("CIVIC_MQTT_URL", None)
        out = subprocess.run(
            [sys.executable, "-m", "civic.cli", "ingest", "--client-id", "flood-ingest",
             "--stats", "--stats-interval", "30", *extra],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout  # fmt: skip
        finals = [json.loads(x) for x in out.splitlines() if '"final": true' in x]
        return finals[-1]

    def flood(self) -> tuple[dict[str, Any], list[int]]:
        pid = self.local._mosquitto_pid()
        assert pid is not None
        base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        base -= timedelta(days=2)
        auth = self.local.service_auth("sim")
        spec = {"batch": self.args.batch, "seconds": self.args.seconds, "base": base.isoformat()}
        shares = [self.ids[k::PUBLISHERS] for k in range(PUBLISHERS)]
        ctx = mp.get_context("spawn")
        queue: Any = ctx.Queue()
        procs = [
            ctx.Process(target=_publish_into, args=(queue, self.state.mqtt_port,
                        {"username": auth.username, "password": auth.password}, self.prefix,
                        share, spec))
            for share in shares
        ]  # fmt: skip
        samples = []
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            samples.append(rss_kb(pid))
            time.sleep(0.5)
        parts = [queue.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        self.last_seq = {d: seq for part in parts for d, seq in part["last_seq"].items()}
        sent = {
            "messages": sum(p["messages"] for p in parts),
            "readings": sum(p["readings"] for p in parts),
        }
        return sent, samples

    def next_readings(self) -> int:
        """Every device's next reading, one message each, so tail losses show."""
        auth = self.local.service_auth("sim")
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"flood-next-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        auth.apply(client)
        client.connect("127.0.0.1", self.state.mqtt_port)
        client.loop_start()
        ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        infos = [
            client.publish(
                f"{self.prefix}/v1/devices/{d}/telemetry",
                json.dumps({"v": 1, "device_id": d, "seq": self.last_seq[d] + 1, "ts": ts,
                            "fill_pct": 41.0}),
                qos=1,
            )
            for d in self.ids
        ]  # fmt: skip
        for info in infos:
            info.wait_for_publish(60)
        client.disconnect()
        client.loop_stop()
        return len(infos)


def _publish_into(queue: Any, *args: Any) -> None:
    queue.put(publisher(*args))


def phase(text: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {text}", file=sys.stderr, flush=True)


def stored(url: str) -> int:
    with connect(url) as conn:
        return int(conn.execute("SELECT count(*) AS n FROM readings").fetchone()["n"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args)
    try:
        t0 = time.monotonic()
        phase("provisioning devices")
        bench.provision()
        phase("offline sessions")
        provision_s = time.monotonic() - t0
        sessions_s = bench.offline_sessions()
        phase("ingest subscribes and stops")
        bench.ingest("--idle-exit", "3")  # its session subscribes, then ingest is away
        pid = bench.local._mosquitto_pid()
        assert pid is not None
        rss_before = rss_kb(pid)
        phase("flood")
        sent, samples = bench.flood()
        phase(f"flood done: {sent['messages']:,} messages; draining")
        rss_after_flood = rss_kb(pid)
        t1 = time.monotonic()
        sampler = RssSampler(pid)
        sampler.start()
        drain = bench.ingest("--idle-exit", "10", "--batch-size", "100")
        rss_drain = sampler.stop()
        drain_s = time.monotonic() - t1 - 10
        kept = stored(bench.url)
        phase(f"drained {kept:,}; next readings")
        extra = bench.next_readings()
        after = bench.ingest("--idle-exit", "5")
        alive = bench.local._mosquitto_pid() == pid
        peak = rss_kb(pid, "VmHWM")
        total = stored(bench.url)
    finally:
        bench.local.down()
    published = sent["readings"] + extra
    return {
        "sessions": args.sessions, "seconds": args.seconds, "batch": args.batch,
        "provision_s": provision_s, "sessions_s": sessions_s, "sent": sent,
        "rss_before_kb": rss_before, "rss_max_sampled_kb": max(samples),
        "rss_max_drain_kb": rss_drain,
        "rss_after_flood_kb": rss_after_flood, "rss_peak_kb": peak,
        "kept": kept, "drain_s": drain_s, "drain": drain, "after": after,
        "published_readings": published, "stored": total, "broker_alive": alive,
        "missing_reported": drain["readings_missing"] + after["readings_missing"],
    }  # fmt: skip


def write_results(r: dict[str, Any], command: str) -> Path:
    mb = 1024
    lost = r["published_readings"] - r["stored"]
    limits = BrokerLimits()
    lines = [
        f"Command: `{command}`",
        "",
        "# Broker flood with ingest away (production limits)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this 2-core shared machine (noisy: one "
        "run, figures not medians). Mosquitto with the limits of `common.broker.BrokerLimits` "
        f"(max_queued_messages {limits.max_queued_messages:,}, max_queued_bytes "
        f"{limits.max_queued_bytes // (1024 * 1024)} MB, max_inflight_messages "
        f"{limits.max_inflight_messages:,}, max_inflight_bytes "
        f"{limits.max_inflight_bytes // (1024 * 1024)} MB, message_size_limit "
        f"{limits.message_size_limit // 1024} KB); the publishers, the broker, ingest and "
        "PostgreSQL on the same machine.",
        "",
        f"- {r['sessions']:,} devices, each with its own credentials, connected over TLS, "
        f"subscribed to their commands on a persistent session and went offline "
        f"({r['sessions_s']:.0f} s for all of them, one after another).",
        f"- Ingest's persistent session subscribed, then ingest stopped. Two publishers sent "
        f"telemetry batches of {r['batch']} readings at full speed for {r['seconds']} s: "
        f"**{r['sent']['messages']:,} messages, {r['sent']['readings']:,} readings** "
        f"({r['sent']['messages'] / r['seconds']:,.0f} msg/s).",
        "",
        "| broker resident memory | MB |",
        "|---|---|",
        f"| before the flood ({r['sessions']:,} offline sessions held) "
        f"| {r['rss_before_kb'] / mb:.0f} |",
        f"| highest sampled during the flood (every 0.5 s) | {r['rss_max_sampled_kb'] / mb:.0f} |",
        f"| after the flood | {r['rss_after_flood_kb'] / mb:.0f} |",
        f"| highest sampled while ingest drained the queue | {r['rss_max_drain_kb'] / mb:.0f} |",
        f"| peak over the run (VmHWM) | **{r['rss_peak_kb'] / mb:.0f}** |",
        f"| stated cap (`BrokerLimits`, one ingest session) | {STATED_CAP_MB} |",
        "",
        f"Ingest (`civic ingest --stats`) then drained **{r['kept']:,} readings** the broker "
        f"had kept ({r['drain']['received']:,} messages, about {r['drain_s']:.0f} s). Every "
        f"device then sent one more reading and ingest ran again: its stats line reported "
        f"**readings_missing {r['after']['readings_missing']:,}** "
        f"(seq_gaps {r['after']['seq_gaps']:,}; the drain run itself "
        f"{r['drain']['readings_missing']:,}).",
        "",
        "| readings | count |",
        "|---|---|",
        f"| published (flood + one each after) | {r['published_readings']:,} |",
        f"| stored | {r['stored']:,} |",
        f"| lost (published - stored) | {lost:,} |",
        f"| counted missing by ingest from seq | {r['missing_reported']:,} |",
        "",
        f"Broker process the same throughout: {'yes' if r['broker_alive'] else 'NO'}. "
        f"The loss was {'all counted' if r['missing_reported'] == lost else 'NOT all counted'}:"
        " the broker kept the oldest messages up to its byte limit and dropped the rest, and "
        "ingest reported the difference from the devices' seq numbers.",
    ]
    path = ROOT / "bench" / "results" / "broker_flood.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=100, help="readings per message")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1))
    command = ".venv/bin/python -m bench.broker_flood " + " ".join(sys.argv[1:])
    print(write_results(result, command.strip()))


if __name__ == "__main__":
    main()

"""Publishes contract-conformant telemetry from simulated bins and homes, with faults.

One MQTT connection publishes on behalf of every device, as a LoRaWAN network server or a
gateway does; or, given ``OwnConnections``, every device publishes on its own TLS connection
with its own credentials, as a device with its own modem does (``device_sim.connections``).
Each device reports every ``interval`` of simulated time, at its own phase; the
simulated clock runs ``speed`` times faster than the wall clock (history in minutes). Every
message is published at QoS 1 and kept by its client until the broker acknowledges it (sent
again after a reconnect, whatever the session), so a broker restart loses nothing the
simulator counted as sent.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.mqtt import MqttAuth, apply_auth
from device_sim.connections import OFFLINE, ONLINE, DeviceFleet, OwnConnections
from device_sim.models import BinModel, HomeModel
from device_sim.population import populate
from device_sim.truth import BinFaults
from firmware_contracts import MAX_BATCH_READINGS, TopicLayout, format_rfc3339

log = logging.getLogger(__name__)

MAX_INFLIGHT = 400  # paho scans its in-flight table on every PUBACK: larger is slower
DRAIN_TIMEOUT_S = 120.0
MALFORMED_KINDS = (
    "invalid_json",
    "schema",
    "out_of_range",
    "unsupported_version",
    "topic_mismatch",
    "future_ts",
)


MQTT_VERSIONS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


@dataclass(frozen=True)
class SimConfig:
    bins: int = 1000
    homes: int = 300
    interval_s: float = 60.0
    duration_s: float = 600.0
    speed: float = 1.0  # simulated seconds per wall second
    start: datetime | None = None  # default: now, or now - duration when accelerated
    malformed_pct: float = 0.0
    duplicate_pct: float = 0.0
    late_pct: float = 0.0
    offline_pct: float = 0.0
    max_rate: float | None = None  # messages per wall second, at most
    seed: int = 1
    topic_prefix: str = "civic"
    client_id: str = "civic-sim"
    record_keys: bool = False  # remember every (device_id, ts) sent, for exact comparisons
    season: str = "november"  # the outdoor weather (device_sim.weather.SEASONS)
    # "5", or "3.1.1" for brokers that speak only that (a NATS cluster's MQTT listener): the
    # same topics and payloads, a persistent session (clean session off) instead of an expiry.
    mqtt_version: str = "5"

    def __post_init__(self) -> None:
        for name in ("malformed_pct", "duplicate_pct", "late_pct", "offline_pct"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be between 0 and 100")
        if self.interval_s <= 0 or self.duration_s <= 0 or self.speed <= 0:
            raise ValueError("interval, duration and speed must be positive")
        if self.mqtt_version not in MQTT_VERSIONS:
            raise ValueError(f"mqtt_version must be one of {', '.join(MQTT_VERSIONS)}")


@dataclass
class SimReport:
    """What was sent, so a test can compare sent with stored."""

    messages: Counter[str] = field(default_factory=Counter)  # telemetry messages by kind
    readings: Counter[str] = field(default_factory=Counter)  # valid distinct readings by kind
    malformed: Counter[str] = field(default_factory=Counter)  # by expected reason code
    duplicates: int = 0  # extra copies of valid single-reading messages
    late: int = 0  # readings published after later ones
    offline_batches: int = 0
    batched_readings: int = 0
    published: int = 0
    acked: int = 0
    wall_s: float = 0.0
    keys: set[tuple[str, str]] = field(default_factory=set)
    own_connections: int = 0  # devices that each connected on their own (0: one gateway)
    connect_s: float = 0.0  # how long they took to connect, all of them
    refusals: Counter[str] = field(default_factory=Counter)  # connection refusals, by reason

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": dict(self.messages),
            "readings": dict(self.readings),
            "readings_total": sum(self.readings.values()),
            "malformed": dict(self.malformed),
            "malformed_total": sum(self.malformed.values()),
            "duplicates": self.duplicates,
            "late": self.late,
            "offline_batches": self.offline_batches,
            "batched_readings": self.batched_readings,
            "published": self.published,
            "acked": self.acked,
            "wall_s": round(self.wall_s, 2),
            "rate_msg_s": round(self.published / self.wall_s, 1) if self.wall_s else None,
            "connections": (
                {
                    "mode": "per-device",
                    "devices": self.own_connections,
                    "connect_s": round(self.connect_s, 2),
                    "refusals": dict(self.refusals),
                }
                if self.own_connections
                else {"mode": "shared"}
            ),
        }


@dataclass
class _Device:
    device_id: str
    kind: str
    model: BinModel | HomeModel
    phase_s: float
    seq: int = 0
    outage_at_s: float | None = None  # offset into the run when this device drops off
    outage_s: float = 0.0
    offline_until: datetime | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    faults: BinFaults | None = None


def _iso(ts: datetime) -> str:
    return format_rfc3339(ts, timespec="milliseconds")


class Simulator:
    def __init__(
        self,
        config: SimConfig,
        estate: list[dict[str, str]],
        *,
        host: str,
        port: int,
        progress: Callable[[SimReport, float], None] | None = None,
        auth: MqttAuth | None = None,
        own_connections: OwnConnections | None = None,
    ) -> None:
        """``host``/``port``: the broker; with ``own_connections``, its devices' TLS listener
        (and ``auth`` is not used: each device logs in as itself)."""
        self.config = config
        self.layout = TopicLayout(config.topic_prefix)
        self.rng = random.Random(config.seed)
        self.report = SimReport()
        self.progress = progress
        self._acked_lock = threading.Lock()
        self._late_ids = itertools.count()
        wall_now = datetime.now(UTC)
        self._start = config.start or (
            wall_now - timedelta(seconds=config.duration_s) if config.speed > 1 else wall_now
        )
        population, self.labels = populate(
            estate,
            seed=config.seed,
            start=self._start,
            duration=timedelta(seconds=config.duration_s),
            season=config.season,
        )
        self.devices: list[_Device] = []
        for simulated in population:
            device_rng = simulated.rng
            device = _Device(
                simulated.device_id,
                simulated.kind,
                simulated.model,
                phase_s=device_rng.uniform(0, config.interval_s),
                faults=simulated.faults,
            )
            if device_rng.random() * 100 < config.offline_pct:
                device.outage_at_s = device_rng.uniform(0, config.duration_s * 0.8)
                device.outage_s = config.interval_s * device_rng.randint(5, 30)
            self.devices.append(device)
        self.devices.sort(key=lambda d: d.phase_s)
        self._host, self._port = host, port
        self.client: mqtt.Client | None = None
        self.fleet: DeviceFleet | None = None
        if own_connections is None:
            self.client = self._gateway_client(auth)
        else:
            self.fleet = self._device_fleet(own_connections)

    def _gateway_client(self, auth: MqttAuth | None) -> mqtt.Client:
        v311 = self.config.mqtt_version == "3.1.1"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=MQTT_VERSIONS[self.config.mqtt_version],
            clean_session=False if v311 else None,  # MQTT 5 sets clean start at connect
        )
        apply_auth(client, auth)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        client.on_publish = self._on_publish
        return client

    def _device_fleet(self, own: OwnConnections) -> DeviceFleet:
        if self.config.mqtt_version != "5":
            raise ValueError("devices on their own connections speak MQTT 5 only")
        lacking = own.lacking(d.device_id for d in self.devices)
        if lacking:
            raise ValueError(lacking)
        return DeviceFleet(
            {d.device_id: own.passwords[d.device_id] for d in self.devices},
            self._host,
            self._port,
            ca_file=own.ca_file,
            prefix=self.config.topic_prefix,
            seed=self.config.seed,
            on_ack=self._count_ack,
        )

    def round_sheet(self, unrecorded_pct: float = 0.0) -> list[tuple[str, datetime, str]]:
        """(bin, emptied at, crew) for the weekly rounds the run simulated, as crews would
        record them, less ``unrecorded_pct`` left off the sheet (forgotten, or not done)."""
        rng = random.Random(f"{self.config.seed}:round-sheet")
        sheet = []
        for device in self.devices:
            if isinstance(device.model, BinModel):
                crew = f"crew-{device.model.collection_weekday + 1}"
                for emptied in device.model.rounds:
                    if rng.random() * 100 >= unrecorded_pct:
                        sheet.append((device.device_id, emptied, crew))
        return sorted(sheet, key=lambda row: (row[1], row[0]))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._count_ack()

    def _count_ack(self) -> None:
        with self._acked_lock:
            self.report.acked += 1

    # --- publishing ---------------------------------------------------------------------------
    def _publish(
        self, device: _Device, topic: str, payload: str | bytes, *, retain: bool = False
    ) -> None:
        if self.fleet is not None:
            self.fleet.publish(device.device_id, topic, payload, retain=retain)
        else:
            assert self.client is not None
            self.client.publish(topic, payload, qos=1, retain=retain)
        self.report.published += 1

    def _send_valid(self, device: _Device, doc: dict[str, Any], readings: int) -> None:
        payload = json.dumps(doc, separators=(",", ":"))
        topic = self.layout.telemetry(device.device_id)
        if self.config.record_keys:
            items = doc.get("readings", [doc])
            self.report.keys.update((device.device_id, item["ts"]) for item in items)
        self._publish(device, topic, payload)
        self.report.messages[device.kind] += 1
        self.report.readings[device.kind] += readings
        if readings == 1 and self.rng.random() * 100 < self.config.duplicate_pct:
            self._publish(device, topic, payload)  # a device retry: same message again
            self.report.messages[device.kind] += 1
            self.report.duplicates += 1

    def _send_malformed(self, device: _Device, doc: dict[str, Any], now: datetime) -> None:
        kind = self.rng.choice(MALFORMED_KINDS)
        topic = self.layout.telemetry(device.device_id)
        bad: str
        if kind == "invalid_json":
            bad = json.dumps(doc)[:-7]
        elif kind == "schema":
            bad = json.dumps({k: v for k, v in doc.items() if k != "seq"})
        elif kind == "out_of_range":
            metric = "fill_pct" if device.kind == "bin" else "rh_pct"
            bad = json.dumps({**doc, metric: 250.0})
        elif kind == "unsupported_version":
            bad = json.dumps({**doc, "v": 9})
        elif kind == "topic_mismatch":
            bad = json.dumps({**doc, "device_id": device.device_id + "-x"})
        else:
            # A day past the wall clock, whatever the simulated time: always in the future.
            bad = json.dumps({**doc, "ts": _iso(max(now, datetime.now(UTC)) + timedelta(days=1))})
        self._publish(device, topic, bad)
        self.report.messages[device.kind] += 1
        self.report.malformed[kind] += 1

    def _ticks(self, start: datetime) -> Iterator[tuple[datetime, _Device]]:
        ticks = int(self.config.duration_s // self.config.interval_s)
        for k in range(ticks):
            base = start + timedelta(seconds=k * self.config.interval_s)
            for device in self.devices:
                yield base + timedelta(seconds=device.phase_s), device

    def run(self, stop: threading.Event | None = None) -> SimReport:
        cfg = self.config
        stop = stop or threading.Event()
        start = self._start
        self._open(stop)
        wall_start = time.monotonic()
        if self.fleet is None:  # a device on its own connection announces itself on connect
            for device in self.devices:
                self._publish(
                    device,
                    self.layout.status(device.device_id),
                    ONLINE,
                    retain=True,
                )
        self._start = start
        late_queue: list[tuple[datetime, int, _Device, dict[str, Any]]] = []
        last_progress = wall_start
        for scheduled, device in self._ticks(start):
            if stop.is_set():
                break
            self._pace(scheduled, start, wall_start)
            # Real time: a device stamps the moment it measures, even if this publisher
            # has fallen behind its schedule.
            ts = max(scheduled, datetime.now(UTC)) if cfg.speed == 1 else scheduled
            self._flush_late(late_queue, ts)
            self._emit(device, ts, late_queue)
            if self.progress and time.monotonic() - last_progress > 5:
                last_progress = time.monotonic()
                self.progress(self.report, (ts - start).total_seconds() / cfg.duration_s)
        end_ts = start + timedelta(seconds=cfg.duration_s)
        self._flush_late(late_queue, end_ts + timedelta(days=365))
        for device in self.devices:
            if device.buffer:
                self._flush_offline(device)
        self._drain()
        self.report.wall_s = time.monotonic() - wall_start
        self._close()
        return self.report

    def _open(self, stop: threading.Event) -> None:
        """Connect: the gateway's one connection, or every device its own (all of them
        connected before the first reading; ``FleetConnectError`` if some cannot)."""
        if self.fleet is None:
            self._connect()
            assert self.client is not None
            self.client.loop_start()
            return
        started = time.monotonic()
        self.fleet.start()
        try:
            self.fleet.wait_connected(stop)
        except Exception:
            self.fleet.close()
            raise
        self.report.own_connections = len(self.fleet.links)
        self.report.connect_s = time.monotonic() - started

    def _close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
            self.report.refusals.update(self.fleet.log.refusal_reasons())
            return
        assert self.client is not None
        self.client.disconnect()
        self.client.loop_stop()

    def _connect(self) -> None:
        assert self.client is not None
        if self.config.mqtt_version == "3.1.1":
            self.client.connect(self._host, self._port, keepalive=60)
            return
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(
            self._host, self._port, keepalive=60, clean_start=False, properties=props
        )

    def _pace(self, ts: datetime, start: datetime, wall_start: float) -> None:
        due_wall = wall_start + (ts - start).total_seconds() / self.config.speed
        if self.config.max_rate:
            due_wall = max(due_wall, wall_start + self.report.published / self.config.max_rate)
        delay = due_wall - time.monotonic()
        if delay > 0.002:
            time.sleep(delay)
        # Keep the in-flight window bounded rather than queueing without limit in memory.
        while self.report.published - self.report.acked >= MAX_INFLIGHT:
            time.sleep(0.001)

    def _emit(self, device: _Device, ts: datetime, late_queue: list[Any]) -> None:
        cfg = self.config
        device.seq += 1
        values = device.model.reading(ts)
        if device.faults is not None:
            values = device.faults.apply(ts, values)
        item = {"seq": device.seq, "ts": _iso(ts), **values}
        # Offline: buffer, then send the backlog as one batch when back (as firmware does).
        if (
            device.outage_at_s is not None
            and (ts - self._start).total_seconds() >= device.outage_at_s
        ):
            device.outage_at_s = None
            device.offline_until = ts + timedelta(seconds=device.outage_s)
            self._publish(device, self.layout.status(device.device_id), OFFLINE, retain=True)
        if device.offline_until is not None:
            device.buffer.append(item)
            if ts >= device.offline_until or len(device.buffer) >= MAX_BATCH_READINGS:
                self._flush_offline(device)
            return
        doc = {"v": 1, "device_id": device.device_id, **item}
        if self.rng.random() * 100 < cfg.malformed_pct:
            self._send_malformed(device, doc, ts)
        elif self.rng.random() * 100 < cfg.late_pct:
            due = ts + timedelta(seconds=cfg.interval_s * self.rng.uniform(1.5, 5))
            heapq.heappush(late_queue, (due, next(self._late_ids), device, doc))
        else:
            self._send_valid(device, doc, 1)

    def _flush_offline(self, device: _Device) -> None:
        doc = {"v": 1, "device_id": device.device_id, "readings": device.buffer}
        self._send_valid(device, doc, len(device.buffer))
        self.report.offline_batches += 1
        self.report.batched_readings += len(device.buffer)
        device.buffer = []
        device.offline_until = None
        self._publish(
            device,
            self.layout.status(device.device_id),
            ONLINE,
            retain=True,
        )

    def _flush_late(self, late_queue: list[Any], now: datetime) -> None:
        while late_queue and late_queue[0][0] <= now:
            _, _, device, doc = heapq.heappop(late_queue)
            self._send_valid(device, doc, 1)
            self.report.late += 1

    def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.report.acked < self.report.published and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.report.acked < self.report.published:
            log.warning(
                "broker acknowledged %d of %d publishes", self.report.acked, self.report.published
            )

"""One ingest worker: broker → contract → COPY batch → commit → PUBACK.

Acknowledging only after COMMIT is the no-loss rule: a reading the broker forgot about is one
the database already holds. Redeliveries after a crash are stored once (key device_id, ts)
and counted as duplicates.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from common.mqtt import MqttAuth
from firmware_contracts import (
    Channel,
    ContractError,
    Reading,
    Reason,
    StatusV1,
    TopicLayout,
    decode_telemetry,
)
from ingest.metrics import IngestMetrics
from ingest.registry_cache import RegistryCache
from ingest.seq_gaps import SeqGapTracker, stored_baselines
from ingest.source import InboundMessage, MessageSource
from ingest.subscriber import Subscriber
from store.db import StoreError, connect
from store.deadletters import DeadLetter
from store.readings import DeviceStatus, PartitionGuard, prepare_session, write_batch
from store.registry import known_device_ids

log = logging.getLogger(__name__)

BATCH_SIZE = 5_000  # rows per COPY; large batches amortise the commit
FLUSH_INTERVAL_S = 0.2  # a partly filled batch waits at most this long: keeps p99 well < 1 s
INBOX_SIZE = 50_000  # received-not-committed messages held in memory, at most
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0  # database reconnect backoff
# Several workers split the load on an MQTT v5 shared subscription. A single worker uses a plain
# subscription: Mosquitto (2.0) restores plain subscriptions of persistent sessions after a
# restart but not shared ones, so with a shared subscription whatever devices publish between
# the broker's restart and the workers' re-subscription is accepted and then dropped.
SHARE_GROUP = "civic-ingest"


@dataclass(frozen=True, slots=True)
class IngestConfig:
    database_url: str
    mqtt_host: str
    mqtt_port: int
    client_id: str = "civic-ingest-0"
    topic_prefix: str = "civic"
    share_group: str | None = None  # set for N > 1 workers: they split the load
    batch_size: int = BATCH_SIZE
    flush_interval_s: float = FLUSH_INTERVAL_S
    inbox_size: int = INBOX_SIZE
    mqtt_auth: MqttAuth | None = None  # the ingest service account (broker or NATS cluster)
    # nats://host:port,host:port: consume from the NATS cluster's JetStream instead of
    # Mosquitto (ingest.jetstream); mqtt_host/mqtt_port are then unused.
    source_url: str | None = None

    def topics(self) -> list[str]:
        layout = TopicLayout(self.topic_prefix)
        plain = [
            layout.subscription(Channel.TELEMETRY),
            layout.subscription(Channel.STATUS),
            layout.subscription(Channel.SENML),  # third-party devices speaking SenML
        ]
        if self.share_group:
            return [f"$share/{self.share_group}/{t}" for t in plain]
        return plain


@dataclass
class DecodedBatch:
    readings: list[Reading]
    deadletters: list[DeadLetter]
    statuses: list[DeviceStatus]
    rejected: dict[str, int]


def decode_batch(
    messages: Sequence[InboundMessage],
    *,
    layout: TopicLayout,
    registry: RegistryCache,
    now: datetime,
) -> DecodedBatch:
    """Split messages into readings to store, statuses, and dead letters with reasons."""
    out = DecodedBatch([], [], [], {})

    def reject(msg: InboundMessage, reason: Reason, detail: str) -> None:
        out.deadletters.append(DeadLetter(now, reason.value, detail, msg.payload, msg.topic))
        out.rejected[reason.value] = out.rejected.get(reason.value, 0) + 1

    for msg in messages:
        parsed = layout.parse(msg.topic)
        if parsed is not None and parsed.channel is Channel.STATUS:
            try:
                status = StatusV1.model_validate_json(msg.payload)
            except ValueError as exc:
                reject(msg, Reason.SCHEMA, f"status: {str(exc).splitlines()[0]}")
                continue
            if not registry.knows(parsed.device_id):
                reject(msg, Reason.UNKNOWN_DEVICE, f"{parsed.device_id!r} is not registered")
                continue
            out.statuses.append(
                DeviceStatus(parsed.device_id, status.state, status.fw, msg.payload.decode())
            )
            continue
        try:
            readings = decode_telemetry(msg.topic, msg.payload, now=now, layout=layout)
        except ContractError as exc:
            reject(msg, exc.reason, exc.detail)
            continue
        device_id = readings[0].device_id
        if not registry.knows(device_id):
            reject(msg, Reason.UNKNOWN_DEVICE, f"{device_id!r} is not in the device registry")
            continue
        out.readings.extend(readings)
    return out


class IngestWorker:
    def __init__(self, config: IngestConfig, metrics: IngestMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or IngestMetrics()
        self.layout = TopicLayout(config.topic_prefix)
        self.inbox: queue.Queue[InboundMessage] = queue.Queue(maxsize=config.inbox_size)
        self.source = open_source(config, self.inbox)
        self._conn: psycopg.Connection[Any] | None = None
        self._partitions = PartitionGuard()
        self.registry = RegistryCache(self._load_registry)
        # Loss from seq gaps needs every message of a device: not on a shared subscription,
        # nor on JetStream, whose durable consumer deals messages out to every worker bound to it.
        shared = config.share_group or config.source_url
        self.seq_gaps = None if shared else SeqGapTracker()
        self.metrics.counts_seq = self.seq_gaps is not None

    # --- database --------------------------------------------------------------------------
    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.config.database_url)
            prepare_session(self._conn)
        return self._conn

    def _drop_db(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _load_registry(self) -> set[str]:
        return self._with_db_retry(known_device_ids) or set()

    def _with_db_retry(self, action: Any, stop: threading.Event | None = None) -> Any:
        """Run ``action(conn)`` until it succeeds; back off while the database is down."""
        delay = RETRY_MIN_S
        while True:
            try:
                return action(self._db())
            except Exception as exc:
                if not _is_connection_error(exc):
                    raise
                self.metrics.db_errors.inc()
                log.warning(
                    "database unavailable error=%r held_unacked=%d retry_in_s=%.1f",
                    str(exc).strip()[:200],
                    self.inbox.qsize(),
                    delay,
                )
                self._drop_db()
                if stop is not None and stop.wait(delay):
                    return None
                if stop is None:
                    time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    # --- main loop -------------------------------------------------------------------------
    def _collect(self) -> list[InboundMessage]:
        try:
            first = self.inbox.get(timeout=self.config.flush_interval_s)
        except queue.Empty:
            return []
        batch = [first]
        deadline = first.received_at + self.config.flush_interval_s
        while len(batch) < self.config.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self.inbox.get(timeout=max(remaining, 0))
                    if remaining > 0
                    else self.inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[InboundMessage], stop: threading.Event) -> bool:
        now = datetime.now(UTC)
        decoded = decode_batch(batch, layout=self.layout, registry=self.registry, now=now)

        def write(conn: psycopg.Connection[Any]) -> Any:
            if self.seq_gaps is not None:
                self.seq_gaps.seed(stored_baselines(conn, self.seq_gaps.unseen(decoded.readings)))
            return write_batch(
                conn,
                decoded.readings,
                decoded.deadletters,
                partitions=self._partitions,
                statuses=decoded.statuses,
            )

        result = self._with_db_retry(write, stop)
        if result is None:
            return False  # stopping while the database was down: nothing acked, nothing lost
        self.source.ack(batch)
        m = self.metrics
        m.received.inc(len(batch))
        m.readings_stored.inc(result.stored)
        m.duplicates.inc(result.duplicates)
        for reason, count in decoded.rejected.items():
            m.rejected.labels(reason=reason).inc(count)
        m.batches.inc()
        if self.seq_gaps is not None:
            self._count_seq_gaps(decoded.readings)
        m.observe_latency(time.monotonic() - batch[0].received_at)
        if decoded.readings:
            newest = max(r.ts for r in decoded.readings)
            m.lag.set((datetime.now(UTC) - newest).total_seconds())
        m.queue_depth.set(self.inbox.qsize())
        return True

    def _count_seq_gaps(self, readings: list[Reading]) -> None:
        assert self.seq_gaps is not None
        counts = self.seq_gaps.observe(readings)
        m = self.metrics
        m.seq_gaps.inc(counts.gaps)
        m.seq_late.inc(counts.late)
        m.seq_resets.inc(counts.resets)
        m.readings_missing.set(self.seq_gaps.counts().missing)
        if counts.gaps:
            log.warning(
                "messages lost: %d seq numbers missing in this batch (%d in all)",
                counts.gaps,
                self.seq_gaps.counts().missing,
            )

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> None:
        """Ingest until ``stop`` is set (or nothing arrived for ``idle_exit_s``)."""
        self._with_db_retry(lambda conn: None, stop)
        self.source.start()
        log.info(
            "ingest started client_id=%s source=%s topics=%s",
            self.config.client_id,
            "nats" if self.config.source_url else "mqtt",  # the URL may carry a password
            ",".join(self.config.topics()),
        )
        last_message = time.monotonic()
        try:
            while not stop.is_set():
                batch = self._collect()
                if not batch:
                    if idle_exit_s is not None and time.monotonic() - last_message > idle_exit_s:
                        log.info("no messages for %.1fs: stopping", idle_exit_s)
                        break
                    continue
                last_message = time.monotonic()
                self._store(batch, stop)
        finally:
            self.source.stop()
            self._drop_db()
            log.info("ingest stopped %s", json.dumps(self.metrics.snapshot()))


def open_source(config: IngestConfig, inbox: queue.Queue[InboundMessage]) -> MessageSource:
    """The configured broker's source: Mosquitto's MQTT session, or NATS JetStream."""
    if config.source_url:
        from ingest.jetstream import JetStreamSource, parse_nats_url

        servers, url_auth = parse_nats_url(config.source_url)
        return JetStreamSource(
            servers=servers,
            topic_prefix=config.topic_prefix,
            group=config.share_group or SHARE_GROUP,
            inbox=inbox,
            auth=url_auth or config.mqtt_auth,
        )
    return Subscriber(
        host=config.mqtt_host,
        port=config.mqtt_port,
        client_id=config.client_id,
        topics=config.topics(),
        inbox=inbox,
        auth=config.mqtt_auth,
    )


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, StoreError):  # connect() failed
        exc = exc.__cause__ or exc
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    # Admin shutdown / server restarting surface as these SQLSTATE classes (57P, 08).
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith(("08", "57P"))

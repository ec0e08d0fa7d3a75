"""Ingest counters, exposed in Prometheus text format and as ``civic ingest --stats`` lines."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


@dataclass
class IngestMetrics:
    """One set per worker process (its own registry, so tests can run several)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "civic_ingest_messages_received", "MQTT messages received", registry=r
        )
        self.readings_stored = Counter(
            "civic_ingest_readings_stored", "readings committed", registry=r
        )
        self.duplicates = Counter(
            "civic_ingest_readings_duplicate",
            "readings already stored (redelivery, retries)",
            registry=r,
        )
        self.rejected = Counter(
            "civic_ingest_messages_rejected",
            "messages dead-lettered, by reason",
            ["reason"],
            registry=r,
        )
        self.batches = Counter("civic_ingest_batches", "batches committed", registry=r)
        self.db_errors = Counter(
            "civic_ingest_db_errors", "failed batch writes (retried)", registry=r
        )
        self.batch_latency = Histogram(
            "civic_ingest_batch_latency_seconds",
            "first message received -> batch committed",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.lag = Gauge(
            "civic_ingest_lag_seconds",
            "commit time minus newest reading ts in the last batch",
            registry=r,
        )
        self.queue_depth = Gauge(
            "civic_ingest_queue_depth", "messages received but not yet committed", registry=r
        )
        self.seq_gaps = Counter(
            "civic_ingest_seq_gaps",
            "seq numbers counted missing when a device's higher seq arrived (lost messages)",
            registry=r,
        )
        self.seq_late = Counter(
            "civic_ingest_seq_late",
            "seq numbers counted missing that arrived later after all",
            registry=r,
        )
        self.seq_resets = Counter(
            "civic_ingest_seq_resets", "device counters restarted (reboots)", registry=r
        )
        self.readings_missing = Gauge(
            "civic_ingest_readings_missing",
            "seq numbers missing now: gaps minus late arrivals (single-subscriber workers)",
            registry=r,
        )
        self.counts_seq = True  # off for a worker on a shared subscription (ingest.seq_gaps)
        self._lock = threading.Lock()
        # Recent batch latencies for the p50/p99 in --stats (bounded: memory stays flat).
        self._latencies: deque[float] = deque(maxlen=50_000)

    def observe_latency(self, seconds: float) -> None:
        self.batch_latency.observe(seconds)
        with self._lock:
            self._latencies.append(seconds)

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """Counters as plain numbers for logs, ``--stats`` and tests."""
        rejected = {
            sample.labels["reason"]: int(sample.value)
            for metric in self.rejected.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        }
        with self._lock:
            latencies = sorted(self._latencies)
        seq = {
            "seq_gaps": int(self.seq_gaps._value.get()),
            "seq_late": int(self.seq_late._value.get()),
            "seq_resets": int(self.seq_resets._value.get()),
            "readings_missing": int(self.readings_missing._value.get()),
        }
        return {
            "received": int(self.received._value.get()),
            "stored": int(self.readings_stored._value.get()),
            "duplicates": int(self.duplicates._value.get()),
            "rejected": rejected,
            "batches": int(self.batches._value.get()),
            "db_errors": int(self.db_errors._value.get()),
            "batch_latency_p50_s": _quantile(latencies, 0.5),
            "batch_latency_p99_s": _quantile(latencies, 0.99),
            "lag_s": round(self.lag._value.get(), 3),
            # None: not counted here (several workers share the subscription).
            **{k: v if self.counts_seq else None for k, v in seq.items()},
        }


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 4)

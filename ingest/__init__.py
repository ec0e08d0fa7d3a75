"""Ingest: MQTT subscribers, the batching COPY writer and dead letters."""

from ingest.metrics import IngestMetrics
from ingest.worker import IngestConfig, IngestWorker, decode_batch

__all__ = ["IngestConfig", "IngestMetrics", "IngestWorker", "decode_batch"]

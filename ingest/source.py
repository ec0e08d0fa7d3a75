"""Where ingest's messages come from: one interface for every broker.

A source fills the worker's inbox with :class:`InboundMessage` values and acknowledges them
when the worker says their rows are committed, so the writer, the dead letters and the metrics
are the same whichever broker (or cluster) sits in front. Two sources exist: an MQTT v5
session on Mosquitto (:mod:`ingest.subscriber`, the default) and a durable JetStream consumer
on a NATS cluster (:mod:`ingest.jetstream`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InboundMessage:
    topic: str  # the MQTT topic the device published on
    payload: bytes
    mid: int
    qos: int
    generation: int  # which connection delivered it; acks go only to the live one
    received_at: float  # time.monotonic()
    handle: object = None  # what the source needs to acknowledge it, when not ``mid``


class MessageSource(Protocol):
    """Feeds an inbox (given at construction) from a broker; ``ack`` after commit.

    A message never acknowledged is redelivered by the broker (after a crash, a reconnect or
    an acknowledgement timeout) and the store keeps it once.
    """

    connected: threading.Event  # set while the source is able to receive

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ack(self, messages: list[InboundMessage]) -> int:
        """Acknowledge ``messages``; returns how many acknowledgements were sent."""
        ...

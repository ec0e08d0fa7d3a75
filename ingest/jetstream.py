"""The clustered source: durable JetStream pull consumers on a NATS cluster.

Devices publish over MQTT 3.1.1 to any node's MQTT listener. ``nats-server`` answers a QoS 1
PUBLISH with PUBACK only after storing the message in the account's MQTT message stream
(``$MQTT_msgs``, subject ``$MQTT.msgs.<topic as subject>``, replicated to a quorum of nodes).
So that stream — not a second stream fed by plain NATS delivery, which a node crash between
the PUBACK and the copy could miss — is the one ingest reads: one durable pull consumer per
channel (telemetry, senml, status), explicit ack, acknowledged only after the batch commits.
Every worker binds to the same durable consumers, so N workers split the load; the consumers
live in the cluster (replicated like the stream), so a worker or a node may die and nothing
that was acknowledged to a device is lost. The stream keeps a message until every consumer
interested in it acknowledged it (interest retention).

nats-py is asyncio; the worker is a thread. This source runs its own event loop in a thread
and hands messages over through the worker's bounded inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from common.mqtt import MqttAuth
from common.nats_cluster import MQTT_STREAM, MQTT_STREAM_SUBJECT_PREFIX, subject_to_mqtt_topic
from firmware_contracts import Channel
from ingest.source import InboundMessage

log = logging.getLogger(__name__)

CHANNELS = (Channel.TELEMETRY, Channel.SENML, Channel.STATUS)
FETCH_BATCH = 500  # messages per pull request: large enough to amortise the round trip
FETCH_WAIT_S = 1.0  # a pull request waits this long for messages before asking again
ACK_WAIT_S = 30.0  # unacknowledged this long: redelivered (a batch commits well within it)
MAX_ACK_PENDING = 20_000  # like the MQTT receive maximum: bounded work in flight per consumer
RETRY_S = 1.0  # the stream or the cluster not there yet: try again this often
ACK_TIMEOUT_S = 10.0
PUT_TIMEOUT_S = 0.5
CLOSE_TIMEOUT_S = 5.0


class SourceUrlError(ValueError):
    """A ``--source`` that is not ``nats://host:port[,host:port...]``."""


def parse_nats_url(url: str) -> tuple[list[str], MqttAuth | None]:
    """``nats://[user:password@]host:port,host:port`` -> one server URL per node, and the
    account when the URL carries one."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("nats", "tls") or not sep or not rest:
        raise SourceUrlError(f"{url!r}: use nats://host:port[,host:port...]")
    creds, at, hosts = rest.rpartition("@")
    auth = None
    if at:
        user, _, password = creds.partition(":")
        auth = MqttAuth(unquote(user), unquote(password))
    servers = [f"{scheme}://{hostport.strip()}" for hostport in hosts.split(",") if hostport]
    if not servers:
        raise SourceUrlError(f"{url!r}: no host")
    return servers, auth


def durable_name(topic_prefix: str, channel: Channel, group: str) -> str:
    """The consumer every worker of ``group`` shares for one channel of one topic prefix."""
    raw = f"{group}-{topic_prefix}-{channel.value}"
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)


def filter_subject(topic_prefix: str, channel: Channel) -> str:
    # The MQTT topic <prefix>/v1/devices/+/<channel> as the MQTT stream stores it.
    return f"{MQTT_STREAM_SUBJECT_PREFIX}{topic_prefix}.v1.devices.*.{channel.value}"


class JetStreamSource:
    """The NATS :class:`~ingest.source.MessageSource`: pull, hand over, ack after commit."""

    def __init__(
        self,
        *,
        servers: Sequence[str],
        topic_prefix: str,
        group: str,
        inbox: queue.Queue[InboundMessage],
        auth: MqttAuth | None = None,
    ) -> None:
        self.servers = list(servers)
        self.topic_prefix = topic_prefix
        self.group = group
        self.inbox = inbox
        self.auth = auth
        self.connected = threading.Event()  # set once every channel's consumer is bound
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="jetstream-source", daemon=True)
        self._stopping = threading.Event()
        self._nc: Any = None
        self._done: asyncio.Future[None] | None = None

    # --- the worker's side (its thread) -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=CLOSE_TIMEOUT_S + FETCH_WAIT_S + 5)
        if self._thread.is_alive():
            log.warning("jetstream source did not stop in time; unacked messages are redelivered")

    def ack(self, messages: Sequence[InboundMessage]) -> int:
        handles = [m.handle for m in messages if isinstance(m.handle, Msg)]
        if not handles or not self._loop.is_running():
            return 0
        future = asyncio.run_coroutine_threadsafe(self._ack(handles), self._loop)
        try:
            return future.result(timeout=ACK_TIMEOUT_S)
        except Exception as exc:  # not acked: redelivered after ACK_WAIT_S, stored once
            log.warning("jetstream ack failed error=%r count=%d", exc, len(handles))
            return 0

    # --- the event loop's side ----------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        options: dict[str, Any] = {
            "servers": self.servers,
            "max_reconnect_attempts": -1,  # forever: the cluster comes back
            "reconnect_time_wait": 0.5,
            "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
            "error_cb": self._error,
        }
        if self.auth is not None:
            options |= {"user": self.auth.username, "password": self.auth.password}
        while not self._stopping.is_set():
            try:
                self._nc = await nats.connect(**options)
                break
            except (OSError, nats.errors.Error) as exc:
                log.warning("nats connect failed servers=%s error=%r", self.servers, exc)
                await asyncio.sleep(RETRY_S)
        if self._nc is None:
            return
        js = self._nc.jetstream()
        subs = [await self._bind(js, channel) for channel in CHANNELS]
        if any(sub is None for sub in subs):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), CLOSE_TIMEOUT_S)
            return
        self.connected.set()
        log.info(
            "jetstream bound servers=%s consumers=%s",
            ",".join(self.servers),
            ",".join(durable_name(self.topic_prefix, c, self.group) for c in CHANNELS),
        )
        pulls = [asyncio.create_task(self._pull(sub)) for sub in subs]
        while not self._stopping.is_set():
            await asyncio.sleep(0.1)
        for task in pulls:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pulls, return_exceptions=True)
        # Close (which flushes our pending acks), but never wait on a cluster that is gone:
        # anything not acknowledged is redelivered.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._nc.close(), CLOSE_TIMEOUT_S)
        self.connected.clear()

    async def _bind(self, js: Any, channel: Channel) -> Any:
        """The channel's durable consumer, created if missing (same config every time)."""
        durable = durable_name(self.topic_prefix, channel, self.group)
        config = ConsumerConfig(
            durable_name=durable,
            filter_subject=filter_subject(self.topic_prefix, channel),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=MAX_ACK_PENDING,
        )
        while not self._stopping.is_set():
            try:
                return await js.pull_subscribe(
                    config.filter_subject, durable=durable, stream=MQTT_STREAM, config=config
                )
            except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError) as exc:
                # The MQTT stream appears at the account's first MQTT connection.
                log.warning("jetstream consumer %s not bound yet error=%r", durable, exc)
                await asyncio.sleep(RETRY_S)
        return None

    async def _pull(self, sub: Any) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # nothing to do
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a node died or the connection is being re-made
                log.warning("jetstream fetch failed error=%r", exc)
                await asyncio.sleep(RETRY_S)
                continue
            for msg in msgs:
                await self._hand_over(msg)

    async def _hand_over(self, msg: Msg) -> None:
        meta = msg.metadata
        inbound = InboundMessage(
            subject_to_mqtt_topic(msg.subject.removeprefix(MQTT_STREAM_SUBJECT_PREFIX)),
            msg.data,
            mid=int(meta.sequence.stream),
            qos=1,
            generation=0,
            received_at=time.monotonic(),
            handle=msg,
        )
        try:
            self.inbox.put_nowait(inbound)
            return
        except queue.Full:
            pass
        # The worker is behind (database down): wait without holding up the loop, which must
        # keep acknowledging. Unacked messages past ACK_WAIT_S are redelivered.
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.inbox.put, inbound, True, PUT_TIMEOUT_S)
                return
            except queue.Full:
                continue

    async def _ack(self, handles: list[Msg]) -> int:
        for msg in handles:
            await msg.ack()
        return len(handles)

    async def _disconnected(self) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("nats disconnected; reconnecting")

    async def _reconnected(self) -> None:
        url = self._nc.connected_url if self._nc is not None else None
        log.info("nats reconnected url=%s", url.netloc if url else None)
        self.connected.set()

    async def _error(self, exc: Exception) -> None:
        log.warning("nats error=%r", exc)

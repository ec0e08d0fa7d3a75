"""Simulated devices each on their own connection, as a real estate connects to the broker.

The simulator's gateway mode (``device_sim.simulator``) speaks for every device over one
connection; here each device holds its own MQTT v5 session over TLS with its own credentials,
subscribed to its own ``commands``. What this models is how an estate comes back after a
broker restart (ETSI EN 303 645 5.9-3): a device that loses its connection, or is refused,
waits a jittered exponential backoff before each attempt ("full jitter": uniform between 0
and ``min(cap, base * 2**attempt)``), so thousands of devices do not return in one wave, and
a broker still starting up is not hammered by the same wave again and again.

Every connection attempt and every accepted connection is recorded (device, monotonic time),
so a test or a benchmark can measure how spread out the attempts were.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.mqtt import MqttAuth
from firmware_contracts import TopicLayout

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 3600
LOOP_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Backoff:
    """Jittered exponential backoff between connection attempts."""

    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: bool = True  # off only to show what a storm without it looks like

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (0: the first after a loss)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt, 30))
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling


@dataclass
class FleetLog:
    """Monotonic times of every connection attempt, accepted connection and lost one."""

    attempts: list[tuple[str, float]] = field(default_factory=list)
    connects: list[tuple[str, float]] = field(default_factory=list)
    losses: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, which: list[tuple[str, float]], device_id: str) -> None:
        with self.lock:
            which.append((device_id, time.monotonic()))

    def attempts_since(self, t: float) -> list[tuple[str, float]]:
        with self.lock:
            return [a for a in self.attempts if a[1] >= t]

    def first_waits(self, since: float) -> dict[str, float]:
        """Per device: seconds from its first lost connection after ``since`` to its next
        attempt: the backoff it really waited."""
        with self.lock:
            lost: dict[str, float] = {}
            for device_id, at in self.losses:
                if at >= since:
                    lost.setdefault(device_id, at)
            waits: dict[str, float] = {}
            for device_id, at in self.attempts:
                if device_id in lost and at >= lost[device_id]:
                    waits.setdefault(device_id, at - lost[device_id])
            return waits


class _DeviceLink(threading.Thread):
    """One device's connection: connect, stay connected, back off and retry when lost."""

    def __init__(self, fleet: DeviceFleet, device_id: str, password: str, seed: int) -> None:
        super().__init__(name=f"device-{device_id}", daemon=True)
        self.fleet = fleet
        self.device_id = device_id
        self.rng = random.Random(seed)
        self.connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=mqtt.MQTTv5,
        )
        MqttAuth(device_id, password, fleet.ca_file).apply(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        if not getattr(rc, "is_failure", True):
            self.fleet.log.add(self.fleet.log.connects, self.device_id)
            client.subscribe(self.fleet.layout.commands(self.device_id), qos=1)
            self.connected.set()

    def _connect(self, first: bool) -> bool:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.fleet.log.add(self.fleet.log.attempts, self.device_id)
        try:
            if first:
                self.client.connect(
                    self.fleet.host, self.fleet.port, keepalive=60, clean_start=False,
                    properties=props,
                )  # fmt: skip
            else:
                self.client.reconnect()
        except OSError:  # refused, reset, TLS handshake cut short: the broker is not there
            return False
        return True

    def run(self) -> None:
        stop, attempt, first = self.fleet.stop, 0, True
        while not stop.is_set():
            if self._connect(first):
                first = False
                while not stop.is_set():
                    if self.client.loop(timeout=LOOP_TIMEOUT_S) != mqtt.MQTT_ERR_SUCCESS:
                        break
                    if self.connected.is_set():
                        attempt = 0
                self.connected.clear()
                self.fleet.log.add(self.fleet.log.losses, self.device_id)
            if stop.is_set():
                break
            stop.wait(self.fleet.backoff.delay(attempt, self.rng))
            attempt += 1
        if not first:
            self.client.disconnect()


class DeviceFleet:
    """Devices each connecting on their own: ``start()``, then ``stop()``."""

    def __init__(
        self,
        passwords: Mapping[str, str],
        host: str,
        port: int,
        *,
        ca_file: Path | None,
        prefix: str = "civic",
        backoff: Backoff | None = None,
        seed: int = 1,
    ) -> None:
        self.host, self.port, self.ca_file = host, port, ca_file
        self.layout = TopicLayout(prefix)
        self.backoff = backoff or Backoff()
        self.log = FleetLog()
        self.stop = threading.Event()
        self.links = [
            _DeviceLink(self, device_id, password, seed * 1_000_003 + i)
            for i, (device_id, password) in enumerate(sorted(passwords.items()))
        ]

    def start(self) -> None:
        for link in self.links:
            link.start()

    def connected(self) -> int:
        return sum(link.connected.is_set() for link in self.links)

    def close(self) -> None:
        self.stop.set()
        for link in self.links:
            link.join(10)

"""Simulated devices each on their own connection, as a real estate connects to the broker.

The simulator's gateway mode (``device_sim.simulator``) speaks for every device over one
connection; here each device holds its own MQTT v5 connection over TLS with its own
credentials, subscribed to its own ``commands``, as the contract asks of firmware: a clean
session (nothing kept at the broker while it is away), the retained ``status`` ``online`` on
every connect and ``offline`` as its last will; the platform sends an unanswered command again
when a device's status says it is back. What this models is how an estate comes back after a
broker restart (ETSI EN 303 645 5.9-3): a device that loses its connection, or is refused,
waits a jittered exponential backoff before each attempt ("full jitter": uniform between 0
and ``min(cap, base * 2**attempt)``), so thousands of devices do not return in one wave, and
a broker still starting up is not hammered by the same wave again and again.

Every connection attempt, accepted connection, refusal and lost connection is recorded
(device, monotonic time), so a test or a benchmark can measure how spread out the attempts were.

A device can also publish (``DeviceFleet.publish``): ``civic sim --connections per-device``
sends each device's telemetry on that device's own connection. The publish is queued from the
caller's thread and written by the device's own thread: one thread per TLS socket, because an
OpenSSL connection must not be read in one thread while another writes to it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.mqtt import MqttAuth
from firmware_contracts import TopicLayout

log = logging.getLogger(__name__)

# A simulated device's retained status (the contract's ``status``): on connect, and as its will.
ONLINE = json.dumps({"state": "online", "fw": "sim-1.0"})
OFFLINE = json.dumps({"state": "offline"})
LOOP_TIMEOUT_S = 0.5
# TCP connect plus TLS handshake. paho's default (5 s) is shorter than a broker taking
# thousands of devices back on a busy machine needs: every device giving up on a handshake
# the broker was about to finish, and trying again, is what turns a storm into a collapse.
CONNECT_TIMEOUT_S = 30.0
# paho's loop waits with select(), which cannot watch a descriptor numbered 1024 or more, and
# each device holds three (its socket and paho's wake-up socket pair): past about 300 devices
# in one process the newest connections fail the moment they are made. More devices need
# more processes (``civic sim --processes``, bench.reconnect_storm).
MAX_DEVICES_PER_PROCESS = 300
# Waiting for a fleet to connect gives up when no device has connected for this long: a
# thousand TLS handshakes take a while on a busy machine, but they keep coming.
CONNECT_STALL_S = 30.0
# CONNACK reasons a retry cannot cure: the device's credentials are wrong or revoked.
CREDENTIAL_REFUSALS = ("Not authorized", "Bad user name or password")


class FleetConnectError(Exception):
    """Some devices did not connect: ``refused`` by the broker (device -> reason) or never
    answered (``silent``)."""

    def __init__(self, refused: dict[str, str], silent: list[str]) -> None:
        self.refused, self.silent = refused, silent
        parts = []
        if refused:
            reasons = sorted(set(refused.values()))
            parts.append(f"{len(refused)} refused by the broker ({'; '.join(reasons)})")
        if silent:
            parts.append(f"{len(silent)} not connected after {CONNECT_STALL_S:g}s without progress")
        super().__init__(", ".join(parts))


@dataclass(frozen=True, slots=True)
class OwnConnections:
    """Every simulated device on its own TLS connection, logging in with its own password."""

    passwords: Mapping[str, str]  # device id -> the password `civic devices credentials` issued
    ca_file: Path | None  # the authority that signed the broker's certificate

    def __repr__(self) -> str:  # never print a password
        return f"OwnConnections(devices={len(self.passwords)}, ca_file={self.ca_file})"

    def auth(self, device_id: str) -> MqttAuth:
        """How ``device_id`` logs in (``KeyError`` when it has no credentials here)."""
        return MqttAuth(device_id, self.passwords[device_id], self.ca_file)

    def lacking(self, device_ids: Iterable[str]) -> str | None:
        """What is wrong when some of these devices have no credentials here, else None."""
        wanted = list(device_ids)
        missing = sorted(d for d in wanted if d not in self.passwords)
        if not missing:
            return None
        return (
            f"no credentials for {len(missing)} of the {len(wanted)} simulated devices "
            f"(e.g. {', '.join(missing[:3])})"
        )

    def share(self, device_ids: Iterable[str]) -> OwnConnections:
        """Only these devices' passwords (a process's share of the estate)."""
        return OwnConnections({d: self.passwords[d] for d in device_ids}, self.ca_file)


def read_credentials(lines: Iterable[str]) -> dict[str, str]:
    """device id -> password from the JSON lines ``civic devices credentials`` prints;
    a line that is not one raises ``ValueError`` naming its number."""
    passwords: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            device_id, password = record["device_id"], record["password"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"line {number}: not a credential from `civic devices credentials` ({exc})"
            ) from exc
        if not isinstance(device_id, str) or not isinstance(password, str) or not password:
            raise ValueError(f"line {number}: device_id and password must be non-empty text")
        passwords[device_id] = password
    return passwords


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
    # (device, time, why): a CONNACK refusing it, or the socket failing before one came
    refusals: list[tuple[str, float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, which: list[tuple[str, float]], device_id: str) -> None:
        with self.lock:
            which.append((device_id, time.monotonic()))

    def refused(self, device_id: str, why: str) -> None:
        with self.lock:
            self.refusals.append((device_id, time.monotonic(), why))

    def refusal_reasons(self) -> dict[str, int]:
        """How many refusals of each kind ("CONNACK: Not authorized", "socket: ...")."""
        with self.lock:
            counts: dict[str, int] = {}
            for _, _, why in self.refusals:
                counts[why] = counts.get(why, 0) + 1
            return counts

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
        self.client.connect_timeout = CONNECT_TIMEOUT_S
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.will_set(fleet.layout.status(device_id), OFFLINE, qos=1, retain=True)
        self._status_mids: set[int] = set()  # the device's own statuses, not the caller's
        if fleet.on_ack is not None:
            on_ack = fleet.on_ack
            self.client.on_publish = lambda _c, _u, mid, *_: (
                self._status_mids.discard(mid) if mid in self._status_mids else on_ack()
            )
        # Set, this keeps paho from writing a publish from the caller's thread: it queues
        # the packet and wakes this thread's loop, which writes it (see the module's doc).
        self.client.on_socket_register_write = lambda *_: None

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        if getattr(rc, "is_failure", True):
            self.fleet.log.refused(self.device_id, f"CONNACK: {rc}")
            return
        self.fleet.log.add(self.fleet.log.connects, self.device_id)
        client.subscribe(self.fleet.layout.commands(self.device_id), qos=1)
        status = client.publish(self.fleet.layout.status(self.device_id), ONLINE, 1, retain=True)
        self._status_mids.add(status.mid)
        self.connected.set()

    def publish(self, topic: str, payload: str | bytes, *, retain: bool) -> None:
        """QoS 1; kept by paho and sent once connected if the device is between connections."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _connect(self, first: bool) -> bool:
        self.fleet.log.add(self.fleet.log.attempts, self.device_id)
        try:
            if first:
                # A clean session: the broker keeps nothing for an offline device (the
                # contract's reason: Mosquitto 2.0 corrupts offline sessions on a password
                # reload), and the platform sends an unanswered command again on `online`.
                fleet = self.fleet
                self.client.connect(fleet.host, fleet.port, keepalive=60, clean_start=True)
            else:
                self.client.reconnect()
        except OSError as exc:  # refused, reset, TLS handshake cut short: the broker is not there
            self.fleet.log.refused(self.device_id, f"socket: {exc.__class__.__name__}")
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
            self.client.loop_write()  # this thread writes; nothing else would send it


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
        on_ack: Callable[[], None] | None = None,
    ) -> None:
        if len(passwords) > MAX_DEVICES_PER_PROCESS:
            raise ValueError(
                f"{len(passwords)} devices in one process: at most {MAX_DEVICES_PER_PROCESS} "
                "connect on their own from one (paho's select() limit); use more processes"
            )
        self.host, self.port, self.ca_file = host, port, ca_file
        self.layout = TopicLayout(prefix)
        self.backoff = backoff or Backoff()
        self.on_ack = on_ack  # called (from a device's thread) for each PUBACK
        self.log = FleetLog()
        self.stop = threading.Event()
        self.links = [
            _DeviceLink(self, device_id, password, seed * 1_000_003 + i)
            for i, (device_id, password) in enumerate(sorted(passwords.items()))
        ]
        self._by_id = {link.device_id: link for link in self.links}

    def start(self) -> None:
        for link in self.links:
            link.start()

    def connected(self) -> int:
        return sum(link.connected.is_set() for link in self.links)

    def not_connected(self) -> list[str]:
        return [link.device_id for link in self.links if not link.connected.is_set()]

    def wait_connected(self, stop: threading.Event | None = None) -> None:
        """Until every device is connected; ``FleetConnectError`` once the rest were refused
        for their credentials, or nothing has connected for ``CONNECT_STALL_S``."""
        progress, count = time.monotonic(), -1
        while True:
            missing = self.not_connected()
            if not missing or (stop is not None and stop.is_set()):
                return
            if len(missing) != count:
                progress, count = time.monotonic(), len(missing)
            refused = self._credential_refusals(missing)
            if len(refused) == len(missing) or time.monotonic() - progress > CONNECT_STALL_S:
                raise FleetConnectError(refused, [d for d in missing if d not in refused])
            time.sleep(0.05)

    def _credential_refusals(self, device_ids: list[str]) -> dict[str, str]:
        wanted = set(device_ids)
        with self.log.lock:
            return {
                device_id: why
                for device_id, _, why in self.log.refusals
                if device_id in wanted and why.removeprefix("CONNACK: ") in CREDENTIAL_REFUSALS
            }

    def publish(self, device_id: str, topic: str, payload: str | bytes, *, retain: bool) -> None:
        """Publish at QoS 1 on ``device_id``'s own connection."""
        self._by_id[device_id].publish(topic, payload, retain=retain)

    def close(self) -> None:
        self.stop.set()
        for link in self.links:
            link.join(10)

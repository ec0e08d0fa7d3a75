"""A local NATS cluster with JetStream and an MQTT listener on every node, on loopback free ports.

The clustered message path for tests and benchmarks, next to :mod:`common.services` (one
Mosquitto): three ``nats-server`` nodes (Debian's package) form one cluster; JetStream
replicates every stream over RAFT to all three (replicas 3), and each node's MQTT listener lets
devices publish there with MQTT 3.1.1 (``nats-server`` 2.9 refuses an MQTT 5 CONNECT).

What the accounts permit (:func:`account_permissions`) — all users live in one NATS account,
``CIVIC``, because MQTT's streams are per account; nobody connects anonymously:

* a device (username = its device id) publishes only on its own telemetry, senml, status and
  command-ack subjects and subscribes only to its own commands;
* ``sim@civic`` (the simulator, a gateway) publishes as any device would, reads commands;
* ``alerts@civic`` publishes commands and reads their acks;
* ``ingest@civic`` connects with the NATS protocol, publishes nothing to devices' subjects and
  may only look up, create, pull from and acknowledge consumers of the MQTT message stream.

Routes between nodes need their own secret, so no process on the machine can join the cluster.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.broker import DEVICE_READ, DEVICE_WRITE, SERVICE_ROLES, new_secret
from common.errors import CivicError
from common.mqtt import MqttAuth
from common.services import free_port, write_private

log = logging.getLogger(__name__)

NATS_BINARY = "/usr/sbin/nats-server"
CLUSTER_NAME = "civic"
ACCOUNT = "CIVIC"
NODES = 3
REPLICAS = 3  # every stream and consumer on all three nodes: one may die, two keep quorum
START_TIMEOUT_S = 60.0
START_ATTEMPTS = 3  # a port found free can be taken by another process before a node binds it
# What NATS names the stream that holds every QoS 1 message an MQTT client published
# (``$MQTT.msgs.<subject>``), and the only one the ingest account may read. A QoS 1 PUBLISH is
# acknowledged to the device only once this stream has stored it on a quorum.
MQTT_STREAM = "$MQTT_msgs"
MQTT_STREAM_SUBJECT_PREFIX = "$MQTT.msgs."
MQTT_DELIVERY = "$MQTT.sub.>"  # where NATS delivers an MQTT client's QoS 1 subscriptions
# bcrypt's lowest cost: every secret we issue is 256 random bits, so stretching adds nothing
# against guessing and would only make each device CONNECT cost the servers more CPU.
BCRYPT_ROUNDS = 4


class NatsClusterError(CivicError):
    """The local NATS cluster could not be started or reached."""


def nats_binary() -> str:
    found = shutil.which("nats-server") or NATS_BINARY
    if not Path(found).exists():
        raise NatsClusterError(
            "nats-server not found; install it with: apt-get install -y nats-server"
        )
    return found


def mqtt_topic_to_subject(topic: str) -> str:
    """The NATS subject an MQTT topic is published on: levels become tokens and a ``.`` inside
    a level becomes ``//`` (how ``nats-server`` maps them)."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


def subject_to_mqtt_topic(subject: str) -> str:
    """The inverse of :func:`mqtt_topic_to_subject`."""
    return subject.replace("//", "\0").replace(".", "/").replace("\0", ".")


def _channel_subject(device: str, channel: str) -> str:
    # Any topic prefix (one level), like the Mosquitto ACL's ``+``.
    return "*." + mqtt_topic_to_subject(f"v1/devices/{device}/{channel}")


def device_permissions(device_id: str) -> dict[str, object]:
    """A device: its own topics only (the Mosquitto ACL's ``pattern`` lines)."""
    if "*" in device_id or ">" in device_id or " " in device_id:
        raise NatsClusterError(f"device id {device_id!r} cannot be a NATS user")
    return {
        "publish": {"allow": [_channel_subject(device_id, c) for c in DEVICE_WRITE]},
        "subscribe": {
            "allow": [*(_channel_subject(device_id, c) for c in DEVICE_READ), MQTT_DELIVERY]
        },
    }


def ingest_permissions() -> dict[str, object]:
    """Ingest: the JetStream API calls that bind, pull and acknowledge consumers of the MQTT
    message stream, and its own reply inbox; nothing else."""
    api = "$JS.API.CONSUMER"
    return {
        "publish": {
            "allow": [
                "$JS.API.INFO",
                f"$JS.API.STREAM.INFO.{MQTT_STREAM}",
                f"{api}.CREATE.{MQTT_STREAM}.>",
                f"{api}.DURABLE.CREATE.{MQTT_STREAM}.>",
                f"{api}.INFO.{MQTT_STREAM}.>",
                f"{api}.MSG.NEXT.{MQTT_STREAM}.>",
                f"$JS.ACK.{MQTT_STREAM}.>",
            ]
        },
        "subscribe": {"allow": ["_INBOX.>"]},
    }


def service_permissions(role: str) -> dict[str, object]:
    if role == "ingest":
        return ingest_permissions()
    spec = SERVICE_ROLES[role]
    return {
        "publish": {"allow": [_channel_subject("*", c) for c in spec.write] or ["_NONE_"]},
        "subscribe": {"allow": [*(_channel_subject("*", c) for c in spec.read), MQTT_DELIVERY]},
    }


def connection_types(role: str | None) -> list[str]:
    """Ingest speaks the NATS protocol; everyone else only MQTT. MQTT users need the
    ``$MQTT.sub.>`` delivery subjects NATS uses for their QoS 1 subscriptions, which an MQTT
    client cannot subscribe to itself (NATS refuses such a filter) — but a NATS-protocol client
    could, and would then read other clients' deliveries; so MQTT users may not use it."""
    return ["STANDARD"] if role == "ingest" else ["MQTT"]


def bcrypt_hash(secret: str) -> str:
    import bcrypt

    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


@dataclass(frozen=True, slots=True)
class NatsNode:
    index: int
    client_port: int
    cluster_port: int
    mqtt_port: int
    monitor_port: int

    @property
    def name(self) -> str:
        return f"{CLUSTER_NAME}-n{self.index + 1}"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


def _pick_ports(nodes: int) -> list[NatsNode]:
    """Four distinct free ports per node (client, cluster, MQTT, monitor)."""
    ports: list[int] = []
    while len(ports) < 4 * nodes:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return [NatsNode(i, *ports[4 * i : 4 * i + 4]) for i in range(nodes)]


class NatsCluster:
    """Three ``nats-server`` processes under ``data_dir``; stop or kill any one and start it
    again (same ports, same JetStream store)."""

    def __init__(self, data_dir: Path, *, nodes: int = NODES) -> None:
        self.data_dir = data_dir.resolve()
        self.nodes = _pick_ports(nodes)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._route_secret = new_secret()
        self._devices: dict[str, str] = {}  # device id -> bcrypt hash

    # --- accounts ------------------------------------------------------------------------
    @property
    def accounts_file(self) -> Path:
        return self.data_dir / "accounts.json"

    def service_passwords(self) -> dict[str, str]:
        if self.accounts_file.exists():
            accounts: dict[str, str] = json.loads(self.accounts_file.read_text())
        else:
            accounts = {role: new_secret() for role in SERVICE_ROLES}
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_private(self.accounts_file, json.dumps(accounts, indent=2) + "\n")
        return accounts

    def service_auth(self, role: str) -> MqttAuth:
        """How a service role logs in (over MQTT for sim and alerts, NATS for ingest)."""
        return MqttAuth(SERVICE_ROLES[role].username, self.service_passwords()[role])

    def set_devices(self, secrets: dict[str, str]) -> None:
        """The devices that may connect (device id -> secret); running nodes reload."""
        self._devices = {device: bcrypt_hash(secret) for device, secret in secrets.items()}
        if not self._procs:
            return
        self._write_configs()
        loaded = {i: self._varz(self.nodes[i])["config_load_time"] for i in self._procs}
        for proc in self._procs.values():
            proc.send_signal(signal.SIGHUP)
        # The reload is asynchronous: return once every node has loaded the new file.
        deadline = time.monotonic() + START_TIMEOUT_S
        for index, before in loaded.items():
            while self._varz(self.nodes[index])["config_load_time"] == before:
                if time.monotonic() > deadline:
                    raise NatsClusterError(f"{self.nodes[index].name} did not reload")
                time.sleep(0.05)

    def _users(self) -> list[dict[str, object]]:
        passwords = self.service_passwords()
        users: list[dict[str, object]] = [
            {
                "user": SERVICE_ROLES[role].username,
                "password": bcrypt_hash(passwords[role]),
                "permissions": service_permissions(role),
                "allowed_connection_types": connection_types(role),
            }
            for role in sorted(SERVICE_ROLES)
        ]
        users += [
            {
                "user": device,
                "password": hashed,
                "permissions": device_permissions(device),
                "allowed_connection_types": connection_types(None),
            }
            for device, hashed in sorted(self._devices.items())
        ]
        return users

    # --- configuration -------------------------------------------------------------------
    def config_text(self, node: NatsNode) -> str:
        """One node's configuration. NATS's format accepts JSON values, so everything that
        could need quoting is written with json.dumps."""
        store = self.data_dir / node.name
        routes = [
            f"nats-route://route:{self._route_secret}@127.0.0.1:{other.cluster_port}"
            for other in self.nodes
            if other is not node
        ]
        conf = {
            "server_name": node.name,
            "listen": f"127.0.0.1:{node.client_port}",
            "http": f"127.0.0.1:{node.monitor_port}",
            "max_payload": 1024 * 1024,
            "jetstream": {
                "store_dir": str(store),
                "max_memory_store": 256 * 1024 * 1024,
                "max_file_store": 8 * 1024 * 1024 * 1024,
            },
            "cluster": {
                "name": CLUSTER_NAME,
                "listen": f"127.0.0.1:{node.cluster_port}",
                "authorization": {"user": "route", "password": self._route_secret},
                "routes": routes,
            },
            # MQTT sessions, QoS 1 messages and retained messages live in JetStream streams
            # replicated to every node, so a device may reconnect to any node.
            "mqtt": {
                "listen": f"127.0.0.1:{node.mqtt_port}",
                "stream_replicas": REPLICAS,
                "ack_wait": "60s",
                "max_ack_pending": 20_000,
            },
            "accounts": {ACCOUNT: {"jetstream": "enabled", "users": self._users()}},
        }
        return json.dumps(conf, indent=2) + "\n"

    def _write_configs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            write_private(self._conf_path(node), self.config_text(node))

    def _conf_path(self, node: NatsNode) -> Path:
        return self.data_dir / f"{node.name}.conf"

    # --- lifecycle -----------------------------------------------------------------------
    def up(self) -> None:
        """Start every node. One that exits at once (a port picked as free was taken by
        another process first) has the cluster start again on newly picked ports."""
        for attempt in range(START_ATTEMPTS):
            self._write_configs()
            for node in self.nodes:
                self.start_node(node.index, wait=False)
            try:
                self.wait_ready()
                break
            except NatsClusterError:
                exited = any(proc.poll() is not None for proc in self._procs.values())
                if not exited or attempt == START_ATTEMPTS - 1:
                    raise
                self.down()
                for node in self.nodes:  # a fresh cluster: no half-made store to rejoin
                    shutil.rmtree(self.data_dir / node.name, ignore_errors=True)
                self.nodes = _pick_ports(len(self.nodes))
        self._create_mqtt_streams()

    def start_node(self, index: int, *, wait: bool = True) -> None:
        node = self.nodes[index]
        log_file = (self.data_dir / f"{node.name}.log").open("ab")
        self._procs[index] = subprocess.Popen(
            [nats_binary(), "-c", str(self._conf_path(node))],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        if wait:
            self.wait_ready()

    def kill_node(self, index: int, sig: int = signal.SIGKILL) -> None:
        """A node crash (SIGKILL: no flush, no goodbye to its peers)."""
        proc = self._procs.pop(index)
        proc.send_signal(sig)
        proc.wait(30)

    def wait_ready(self) -> None:
        """Every running node reports healthy JetStream (meta leader known, streams current)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = set(self._procs)
        while pending:
            for index in list(pending):
                if self._procs[index].poll() is not None:
                    raise NatsClusterError(
                        f"NATS node {self.nodes[index].name} exited; see {self.data_dir}"
                    )
                if self._healthy(self.nodes[index]):
                    pending.discard(index)
            if not pending:
                return
            if time.monotonic() > deadline:
                names = [self.nodes[i].name for i in sorted(pending)]
                raise NatsClusterError(f"NATS nodes {names} not healthy; see {self.data_dir}")
            time.sleep(0.2)

    @staticmethod
    def _varz(node: NatsNode) -> dict[str, Any]:
        url = f"http://127.0.0.1:{node.monitor_port}/varz"
        with urllib.request.urlopen(url, timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    @staticmethod
    def _healthy(node: NatsNode) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{node.monitor_port}/healthz", timeout=2
            ) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _create_mqtt_streams(self) -> None:
        """NATS creates an account's MQTT streams at its first MQTT CONNECT; ingest binds to
        the message stream, so one probe connection makes them before anyone else comes."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="civic-cluster-probe",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.service_auth("sim").apply(client)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.connect("127.0.0.1", self.nodes[0].mqtt_port, keepalive=10)
                if client.loop(timeout=5) == mqtt.MQTT_ERR_SUCCESS and client.is_connected():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise NatsClusterError(f"no MQTT CONNACK from {self.nodes[0].name}")
            time.sleep(0.5)
        client.disconnect()

    def down(self) -> None:
        for index in list(self._procs):
            self.kill_node(index, signal.SIGTERM)

    def jsz(self, index: int) -> dict[str, Any]:
        """A node's JetStream report (streams, consumers, leaders) from its monitor port."""
        node = self.nodes[index]
        url = f"http://127.0.0.1:{node.monitor_port}/jsz?accounts=true&streams=true&consumers=true"
        with urllib.request.urlopen(url, timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    @property
    def nats_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def source_url(self) -> str:
        """``civic ingest --source``: every node, so the client fails over."""
        return "nats://" + ",".join(f"127.0.0.1:{n.client_port}" for n in self.nodes)

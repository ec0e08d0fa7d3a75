"""Fault modes below the contract: bytes on the broker's listener that are not MQTT, or MQTT
that breaks the protocol's own rules (ETSI EN 303 645 5.13-1, and a broker's 5.9-3).

The telemetry fault modes (``device_sim.simulator.MALFORMED_KINDS``) send well-formed MQTT
carrying bad JSON; these attack the broker itself: garbage on the socket, a packet length
that promises more than ever comes, a length field too long to be valid, a PUBLISH cut off
mid-packet, and a payload beyond the broker's ``message_size_limit`` from a logged-in device.
Each returns what the broker did, in words; none of them should take it, or ingest, down.
``FaultRun`` sends them in turn, spread over a simulator run (``civic sim --wire-faults N``).
"""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.mqtt import MqttAuth

TIMEOUT_S = 10.0
HOLD_S = 2.0  # how long a half-sent packet is left hanging before the client hangs up


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    ca_file: Path | None = None  # set: a TLS listener checked against this CA


def _open(listener: Listener) -> socket.socket:
    sock = socket.create_connection((listener.host, listener.port), timeout=TIMEOUT_S)
    if listener.ca_file is None:
        return sock
    context = ssl.create_default_context(cafile=str(listener.ca_file))
    return context.wrap_socket(sock, server_hostname=listener.host)


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a username and password (clean session, keepalive 30 s)."""
    body = (
        _mqtt_string("MQTT")
        + bytes([4, 0xC2])  # level 4; username, password, clean session
        + struct.pack("!H", 30)
        + _mqtt_string(client_id)
        + _mqtt_string(username)
        + _mqtt_string(password)
    )
    return bytes([0x10]) + _remaining_length(len(body)) + body


def _outcome(sock: socket.socket, sent: bytes) -> str:
    """Send, then wait for the broker to answer or hang up."""
    try:
        sock.sendall(sent)
        reply = sock.recv(64)
    except TimeoutError:
        return f"waited for the rest ({sock.gettimeout():g}s), then the client hung up"
    except OSError as exc:
        return f"closed the connection ({exc.__class__.__name__})"
    finally:
        sock.close()
    return f"answered {reply[:8].hex()}" if reply else "closed the connection"


def raw_garbage(listener: Listener, *, size: int = 4096, seed: int = 1) -> str:
    """Random bytes where a CONNECT should be."""
    return _outcome(_open(listener), random.Random(seed).randbytes(size))


def truncated_connect(listener: Listener) -> str:
    """A CONNECT header announcing 200 bytes, then 10 of them and nothing more."""
    sock = _open(listener)
    sock.settimeout(HOLD_S)
    return _outcome(sock, bytes([0x10]) + _remaining_length(200) + b"\x00\x04MQTT\x04")


def overlong_length_field(listener: Listener) -> str:
    """A remaining-length field of five bytes (the protocol allows four)."""
    return _outcome(_open(listener), bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))


def truncated_publish(listener: Listener, auth: MqttAuth, topic: str) -> str:
    """Log in properly, then a PUBLISH whose payload stops half-way, and hang up."""
    sock = _open(listener)
    sock.sendall(connect_packet(auth.username, auth.username, auth.password))
    connack = sock.recv(4)
    if connack[:1] != b"\x20" or connack[3:4] != b"\x00":
        sock.close()
        return f"refused the login ({connack.hex()})"
    body = _mqtt_string(topic) + b"\x00\x01" + b'{"v":1,"device_id":'
    packet = bytes([0x32]) + _remaining_length(len(body) + 500) + body
    sock.settimeout(HOLD_S)
    return _outcome(sock, packet)


def oversize_publish(listener: Listener, auth: MqttAuth, topic: str, size: int) -> str:
    """A logged-in device publishes ``size`` bytes at QoS 1 (beyond the broker's limit)."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=auth.username,
        protocol=mqtt.MQTTv5,
    )
    auth.apply(client)
    result: dict[str, str] = {}
    done = threading.Event()

    def on_publish(_c: object, _u: object, _mid: object, rc: object, _p: object) -> None:
        result["puback"] = str(rc)
        done.set()

    def on_disconnect(_c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        result.setdefault("disconnect", str(rc))
        done.set()

    client.on_publish = on_publish
    client.on_disconnect = on_disconnect
    client.connect(listener.host, listener.port, keepalive=30)
    client.loop_start()
    try:
        client.publish(topic, b"x" * size, qos=1)
        done.wait(TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
    if "puback" in result:
        return f"refused the message (PUBACK: {result['puback']})"
    if "disconnect" in result:
        return f"disconnected the device ({result['disconnect']})"
    return "did not answer"


def fault_modes(
    listener: Listener, auth: MqttAuth, topic: str, size_limit: int
) -> dict[str, Callable[[], str]]:
    """Each fault mode, ready to send at ``listener``; the last two log in as ``auth`` (which
    should be an account nothing else is using: on the devices' listener the username is the
    client id, and a second login takes the first one's connection over)."""
    return {
        "raw_garbage": lambda: raw_garbage(listener),
        "truncated_connect": lambda: truncated_connect(listener),
        "overlong_length_field": lambda: overlong_length_field(listener),
        "truncated_publish": lambda: truncated_publish(listener, auth, topic),
        "oversize_payload": lambda: oversize_publish(listener, auth, topic, size_limit + 1),
    }


def run_all(listener: Listener, auth: MqttAuth, topic: str, size_limit: int) -> dict[str, str]:
    """Every wire fault once against one listener; what the broker did with each."""
    return {name: fault() for name, fault in fault_modes(listener, auth, topic, size_limit).items()}


class FaultRun(threading.Thread):
    """``count`` wire faults, the modes in turn, one every ``gap_s``, alongside whatever else
    the broker is doing; ``finish()`` sends what is left without pausing and returns the
    tally. A fault that cannot even be sent (the listener unreachable) is counted too."""

    def __init__(self, faults: dict[str, Callable[[], str]], count: int, gap_s: float) -> None:
        super().__init__(name="wire-faults", daemon=True)
        if count < 0:
            raise ValueError("the number of wire faults cannot be negative")
        self.faults, self.count, self.gap_s = faults, count, gap_s
        self.hurry = threading.Event()
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def run(self) -> None:
        modes = list(self.faults)
        first = time.monotonic()
        for k in range(self.count):
            # Spaced start to start, so a fault the broker holds on to for a while (the
            # half-sent ones wait HOLD_S) does not stretch the spacing.
            self.hurry.wait(max(0.0, first + k * self.gap_s - time.monotonic()))
            mode = modes[k % len(modes)]
            try:
                outcome = self.faults[mode]()
            except OSError as exc:
                outcome = f"could not be sent ({exc.__class__.__name__})"
            self.outcomes[mode, outcome] += 1

    def finish(self) -> dict[str, Any]:
        self.hurry.set()
        self.join()
        by_mode: dict[str, dict[str, int]] = {}
        for (mode, outcome), n in sorted(self.outcomes.items()):
            by_mode.setdefault(mode, {})[outcome] = n
        return {"sent": sum(self.outcomes.values()), "outcomes": by_mode}

"""How a component proves who it is to the broker: a username, a password and, over TLS, the
certificate authority that signed the broker's certificate.

Every MQTT client of the platform (ingest, the command dispatcher, the simulator, the tests)
connects with an :class:`MqttAuth`; the broker refuses anonymous clients.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt


@dataclass(frozen=True, slots=True)
class MqttAuth:
    """Credentials of one broker account; ``ca_file`` set means connect over TLS and check the
    broker's certificate against that authority."""

    username: str
    password: str = ""
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("an MQTT account needs a username")

    def apply(self, client: mqtt.Client) -> None:
        """Set the credentials (and TLS) on a paho client before it connects."""
        client.username_pw_set(self.username, self.password)
        if self.ca_file is not None:
            client.tls_set(
                ca_certs=str(self.ca_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )

    def __repr__(self) -> str:  # never print the password
        return f"MqttAuth(username={self.username!r}, tls={self.ca_file is not None})"


def apply_auth(client: mqtt.Client, auth: MqttAuth | None) -> None:
    if auth is not None:
        auth.apply(client)

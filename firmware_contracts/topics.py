"""MQTT topic layout of contract v1: ``{prefix}/v1/devices/{device_id}/{channel}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PREFIX = "civic"
CONTRACT_VERSION = "v1"
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Channel(StrEnum):
    TELEMETRY = "telemetry"  # device -> platform, QoS 1
    SENML = "senml"  # device -> platform, QoS 1: telemetry as an RFC 8428 SenML JSON pack
    STATUS = "status"  # device -> platform, retained; last will {"state":"offline"}
    COMMANDS = "commands"  # platform -> device, QoS 1
    COMMAND_ACK = "commands/ack"  # device -> platform, QoS 1


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    device_id: str
    channel: Channel


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Builds and parses topics under one prefix (tests use their own prefix per test)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "#+") or self.prefix.endswith("/"):
            raise ValueError(f"invalid topic prefix {self.prefix!r}")

    @property
    def root(self) -> str:
        return f"{self.prefix}/{CONTRACT_VERSION}/devices"

    def topic(self, device_id: str, channel: Channel) -> str:
        if not DEVICE_ID_PATTERN.match(device_id):
            raise ValueError(f"invalid device_id {device_id!r}")
        return f"{self.root}/{device_id}/{channel.value}"

    def telemetry(self, device_id: str) -> str:
        return self.topic(device_id, Channel.TELEMETRY)

    def senml(self, device_id: str) -> str:
        return self.topic(device_id, Channel.SENML)

    def status(self, device_id: str) -> str:
        return self.topic(device_id, Channel.STATUS)

    def commands(self, device_id: str) -> str:
        return self.topic(device_id, Channel.COMMANDS)

    def command_ack(self, device_id: str) -> str:
        return self.topic(device_id, Channel.COMMAND_ACK)

    def subscription(self, channel: Channel) -> str:
        return f"{self.root}/+/{channel.value}"

    def parse(self, topic: str) -> ParsedTopic | None:
        """The device and channel of a topic under this layout, or None if it is not one."""
        head = self.root + "/"
        if not topic.startswith(head):
            return None
        device_id, _, channel = topic[len(head) :].partition("/")
        try:
            parsed_channel = Channel(channel)
        except ValueError:
            return None
        if not DEVICE_ID_PATTERN.match(device_id):
            return None
        return ParsedTopic(device_id, parsed_channel)

"""The NATS cluster's pure pieces: MQTT topics as subjects, and what each account may do."""

from __future__ import annotations

import pytest

from common.nats_cluster import (
    MQTT_STREAM,
    NatsClusterError,
    device_permissions,
    ingest_permissions,
    mqtt_topic_to_subject,
    service_permissions,
    subject_to_mqtt_topic,
)


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("civic/v1/devices/bin-000001/telemetry", "civic.v1.devices.bin-000001.telemetry"),
        ("civic/v1/devices/home.7/commands/ack", "civic.v1.devices.home//7.commands.ack"),
    ],
)
def test_topics_and_subjects_map_both_ways(topic: str, subject: str) -> None:
    assert mqtt_topic_to_subject(topic) == subject
    assert subject_to_mqtt_topic(subject) == topic


def test_a_device_may_use_only_its_own_subjects() -> None:
    perms = device_permissions("home-000001")
    assert perms == {
        "publish": {
            "allow": [
                "*.v1.devices.home-000001.telemetry",
                "*.v1.devices.home-000001.senml",
                "*.v1.devices.home-000001.status",
                "*.v1.devices.home-000001.commands.ack",
            ]
        },
        "subscribe": {"allow": ["*.v1.devices.home-000001.commands", "$MQTT.sub.>"]},
    }


def test_a_device_id_with_a_wildcard_cannot_become_a_user() -> None:
    with pytest.raises(NatsClusterError):
        device_permissions("*")


def test_ingest_publishes_only_to_the_jetstream_api_of_the_mqtt_stream() -> None:
    allowed = ingest_permissions()["publish"]["allow"]
    assert all(MQTT_STREAM in subject or subject == "$JS.API.INFO" for subject in allowed)
    assert ingest_permissions()["subscribe"] == {"allow": ["_INBOX.>"]}


def test_the_simulator_cannot_send_commands_and_alerts_cannot_send_telemetry() -> None:
    sim = service_permissions("sim")
    alerts = service_permissions("alerts")
    assert "*.v1.devices.*.commands" not in sim["publish"]["allow"]
    assert "*.v1.devices.*.telemetry" not in alerts["publish"]["allow"]
    assert alerts["publish"]["allow"] == ["*.v1.devices.*.commands"]

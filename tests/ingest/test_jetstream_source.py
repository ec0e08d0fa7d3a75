"""The JetStream source's pure pieces: its URL and the consumers it binds."""

from __future__ import annotations

import pytest

from firmware_contracts import Channel
from ingest.jetstream import SourceUrlError, durable_name, filter_subject, parse_nats_url


def test_a_source_url_lists_every_node_and_may_carry_the_account() -> None:
    servers, auth = parse_nats_url("nats://ingest%40civic:s3cret@n1:4222,n2:4222")
    assert servers == ["nats://n1:4222", "nats://n2:4222"]
    assert auth is not None
    assert (auth.username, auth.password) == ("ingest@civic", "s3cret")
    assert parse_nats_url("nats://n1:4222")[1] is None


@pytest.mark.parametrize("url", ["mqtt://broker:1883", "nats://", "n1:4222"])
def test_other_urls_are_refused_with_the_form_to_use(url: str) -> None:
    with pytest.raises(SourceUrlError, match="nats://host:port"):
        parse_nats_url(url)


def test_consumers_are_per_prefix_and_channel_and_shared_by_the_group() -> None:
    assert durable_name("civic", Channel.TELEMETRY, "civic-ingest") == (
        "civic-ingest-civic-telemetry"
    )
    assert filter_subject("civic", Channel.STATUS) == "$MQTT.msgs.civic.v1.devices.*.status"

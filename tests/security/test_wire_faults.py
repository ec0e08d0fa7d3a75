"""Malformed packets and an oversize payload against both broker listeners: the broker and
ingest keep running, and a device's normal reading still flows end to end afterwards."""

from __future__ import annotations

from common.broker import BrokerLimits
from device_sim.wire_faults import Listener, run_all
from tests.ingest.helpers import count, start_worker, wait_for
from tests.security.test_broker_security import _device, _reading, provisioned

__all__ = ["provisioned"]  # the fixture, shared with the other broker tests


def test_garbage_truncated_and_oversize_packets_leave_broker_and_ingest_running(
    provisioned, civic_env
) -> None:
    url, mqtt = civic_env
    local = mqtt.local
    device_id, cred = next(iter(provisioned.items()))
    auth = local.device_auth(device_id, cred["password"])
    topic = f"{mqtt.prefix}/v1/devices/{device_id}/telemetry"
    broker_pid = local._mosquitto_pid()
    worker, stop, thread = start_worker(url, mqtt)
    try:
        outcomes = {
            "plain": run_all(
                Listener(mqtt.host, mqtt.port),
                local.service_auth("sim"),
                topic,
                BrokerLimits().message_size_limit,
            ),
            "tls": run_all(
                Listener("localhost", mqtt.tls_port, local.ca_file),
                auth,
                topic,
                BrokerLimits().message_size_limit,
            ),
        }
        print(outcomes)
        for listener in outcomes.values():
            assert not listener["oversize_payload"].startswith("did not answer")
            assert "answered 20" not in listener["raw_garbage"]  # no CONNACK for garbage

        device = _device(mqtt, cred)
        assert device.wait_connack() == 0
        assert device.publish(topic, _reading(device_id, seq=7)) == 0
        wait_for(lambda: worker.metrics.snapshot()["stored"] == 1, 30, "the reading stored")
        device.close()
    finally:
        stop.set()
        thread.join_checked(30)
    assert local._mosquitto_pid() == broker_pid  # the same broker process throughout
    assert count(url, "SELECT count(*) FROM readings") == 1
    assert count(url, "SELECT count(*) FROM deadletters") == 0  # nothing half-sent got through

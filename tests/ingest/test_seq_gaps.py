"""Lost messages counted live from seq: the rule (pure), then through a real broker and store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from paho.mqtt import publish

from firmware_contracts import Reading
from ingest.seq_gaps import MAX_OPEN_RANGES, SeqGapTracker

from .helpers import count, register_estate, start_worker, wait_for

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def _r(seq: int, minute: int, device: str = "bin-000001") -> Reading:
    return Reading(device_id=device, ts=T0 + timedelta(minutes=minute), seq=seq, fill_pct=10.0)


def test_a_jump_counts_the_numbers_in_between_and_late_arrivals_take_them_back() -> None:
    tracker = SeqGapTracker()
    first = tracker.observe([_r(1, 1), _r(2, 2), _r(6, 6)])
    assert (first.gaps, first.late, first.resets) == (3, 0, 0)
    later = tracker.observe([_r(4, 4), _r(4, 4), _r(7, 7)])  # 4 late, then its duplicate
    assert (later.gaps, later.late) == (0, 1)
    assert tracker.counts().missing == 2  # 3 and 5


def test_duplicates_and_other_devices_count_nothing() -> None:
    tracker = SeqGapTracker()
    tracker.observe([_r(10, 1), _r(11, 2), _r(1, 1, "bin-000002"), _r(2, 2, "bin-000002")])
    counts = tracker.observe([_r(11, 2), _r(10, 1), _r(2, 2, "bin-000002")])
    assert (counts.gaps, counts.late, counts.resets) == (0, 0, 0)


def test_a_counter_restart_with_a_newer_timestamp_is_a_reset_not_a_loss() -> None:
    tracker = SeqGapTracker()
    tracker.observe([_r(500, 1), _r(503, 2)])  # 501, 502 missing
    counts = tracker.observe([_r(0, 3), _r(1, 4), _r(502, 0)])
    # The reboot resets the baseline; 502, older than the reboot, is now a duplicate-like old
    # number of the previous counter and changes nothing.
    assert (counts.gaps, counts.late, counts.resets) == (0, 0, 1)
    assert tracker.counts().missing == 2


def test_the_baseline_of_a_device_first_seen_comes_from_the_store() -> None:
    tracker = SeqGapTracker()
    assert tracker.unseen([_r(9, 9), _r(1, 1, "bin-000002")]) == {"bin-000001", "bin-000002"}
    tracker.seed({"bin-000001": (5, T0 + timedelta(minutes=5))})
    counts = tracker.observe([_r(9, 9), _r(1, 1, "bin-000002")])
    assert counts.gaps == 3  # 6, 7, 8 went missing while this process was not there
    assert tracker.unseen([_r(10, 10), _r(2, 2, "bin-000002")]) == set()


def test_memory_per_device_is_bounded_but_the_count_is_not() -> None:
    tracker = SeqGapTracker()
    tracker.observe([_r(2 * i, i) for i in range(MAX_OPEN_RANGES * 3)])
    assert tracker.counts().gaps == MAX_OPEN_RANGES * 3 - 1
    assert len(tracker._devices["bin-000001"].missing) == MAX_OPEN_RANGES
    late = tracker.observe([_r(1, 0)])  # its range was forgotten: stays counted missing
    assert late.late == 0


def _send(mqtt, device_id: str, seq: int, ts: datetime) -> None:
    auth = mqtt.auth("sim")
    doc = {"v": 1, "device_id": device_id, "seq": seq, "ts": ts.isoformat(), "fill_pct": 30.0}
    publish.single(
        f"{mqtt.prefix}/v1/devices/{device_id}/telemetry",
        json.dumps(doc),
        qos=1,
        hostname=mqtt.host,
        port=mqtt.port,
        auth={"username": auth.username, "password": auth.password},
    )


def test_ingest_counts_messages_lost_while_it_was_away(database_url: str, mqtt) -> None:
    """A gap seen live, a late arrival, and a gap across an ingest restart (the baseline
    from the store), in the metrics, the --stats snapshot and the Prometheus text."""
    device = register_estate(database_url, bins=1, homes=0)[0]["device_id"]
    since = datetime.now(UTC) - timedelta(hours=1)
    worker, stop, thread = start_worker(database_url, mqtt)
    for seq in (1, 2, 5, 3):
        _send(mqtt, device, seq, since + timedelta(minutes=seq))
    wait_for(lambda: worker.metrics.snapshot()["stored"] == 4, 30, "4 readings stored")
    stop.set()
    thread.join_checked(30)
    stats = worker.metrics.snapshot()
    assert (stats["seq_gaps"], stats["seq_late"], stats["readings_missing"]) == (2, 1, 1)

    worker, stop, thread = start_worker(database_url, mqtt)  # a new process knows nothing
    _send(mqtt, device, 9, since + timedelta(minutes=9))
    wait_for(lambda: worker.metrics.snapshot()["stored"] == 1, 30, "the next reading stored")
    stop.set()
    thread.join_checked(30)
    assert worker.metrics.snapshot()["readings_missing"] == 3  # 6, 7, 8
    assert "civic_ingest_seq_gaps_total 3.0" in worker.metrics.prometheus_text().decode()
    assert count(database_url, "SELECT count(*) FROM readings") == 5


def test_workers_on_a_shared_subscription_do_not_count(database_url: str, mqtt) -> None:
    """Each sees a share of a device's messages: a per-worker count would be all false gaps."""
    worker, stop, thread = start_worker(database_url, mqtt, share_group="civic-ingest")
    stop.set()
    thread.join_checked(30)
    assert worker.seq_gaps is None
    assert worker.metrics.snapshot()["readings_missing"] is None  # not a misleading 0

"""Property-based tests of the telemetry decoder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_contracts import ContractError, Reason, TopicLayout, decode_telemetry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LAYOUT = TopicLayout()
RANGES = {
    "fill_pct": (-5, 110),
    "temp_c": (-40, 125),
    "battery_v": (0, 5),
    "rh_pct": (0, 100),
}
device_ids = st.from_regex(r"\A[a-z]{3}-[0-9]{1,6}\Z")
past_ts = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2026, 11, 22, 12, 4),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


def _metrics() -> st.SearchStrategy[dict[str, float]]:
    return st.fixed_dictionaries(
        {},
        optional={name: st.floats(lo, hi, allow_nan=False) for name, (lo, hi) in RANGES.items()},
    ).filter(bool)


@given(device_ids, st.integers(0, 2**32 - 1), past_ts, _metrics())
def test_valid_reading_round_trips(device_id: str, seq: int, ts: datetime, metrics: dict) -> None:
    payload = {"v": 1, "device_id": device_id, "seq": seq, "ts": ts.isoformat(), **metrics}
    [reading] = decode_telemetry(LAYOUT.telemetry(device_id), json.dumps(payload), now=NOW)
    assert reading.device_id == device_id
    assert reading.seq == seq
    assert reading.ts == ts.astimezone(UTC)
    assert reading.ts.utcoffset() == timedelta(0)
    for name, value in metrics.items():
        assert getattr(reading, name) == value


@given(
    st.sampled_from(sorted(RANGES)), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)
def test_values_outside_range_are_out_of_range(metric: str, magnitude: float, above: bool) -> None:
    lo, hi = RANGES[metric]
    value = hi + abs(magnitude) + 0.001 if above else lo - abs(magnitude) - 0.001
    payload = {"v": 1, "device_id": "bin-1", "seq": 1, "ts": "2026-11-22T10:00:00Z", metric: value}
    with pytest.raises(ContractError) as info:
        decode_telemetry(LAYOUT.telemetry("bin-1"), json.dumps(payload), now=NOW)
    assert info.value.reason is Reason.OUT_OF_RANGE


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_only_ever_raise_contract_errors(payload: bytes) -> None:
    reason = None
    try:
        decode_telemetry(LAYOUT.telemetry("bin-1"), payload, now=NOW)
    except ContractError as exc:
        reason = exc.reason
    assert reason is None or reason in set(Reason)


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), past_ts),
        min_size=1,
        max_size=50,
        unique_by=lambda t: t[0],
    )
)
def test_batches_come_back_in_time_order(items: list[tuple[int, datetime]]) -> None:
    payload = {
        "v": 1,
        "device_id": "env-7",
        "readings": [{"seq": seq, "ts": ts.isoformat(), "rh_pct": 50} for seq, ts in items],
    }
    readings = decode_telemetry(LAYOUT.telemetry("env-7"), json.dumps(payload), now=NOW)
    assert len(readings) == len(items)
    assert [r.ts for r in readings] == sorted(ts.astimezone(UTC) for _, ts in items)


@given(st.integers(6 * 60, 10**8))
def test_future_timestamps_beyond_five_minutes_rejected(ahead_s: int) -> None:
    ts = (NOW + timedelta(seconds=ahead_s)).isoformat()
    payload = {"v": 1, "device_id": "bin-1", "seq": 1, "ts": ts, "fill_pct": 1}
    with pytest.raises(ContractError) as info:
        decode_telemetry(LAYOUT.telemetry("bin-1"), json.dumps(payload), now=NOW)
    assert info.value.reason is Reason.FUTURE_TS


@given(device_ids, st.sampled_from(["telemetry", "status", "commands", "commands/ack"]))
def test_topics_round_trip(device_id: str, channel: str) -> None:
    from firmware_contracts import Channel

    topic = LAYOUT.topic(device_id, Channel(channel))
    parsed = LAYOUT.parse(topic)
    assert parsed is not None
    assert (parsed.device_id, parsed.channel.value) == (device_id, channel)
    assert TopicLayout("other").parse(topic) is None


def test_chirpstack_uplink_is_accepted() -> None:
    uplink = {
        "deviceInfo": {"devEui": "0004a30b001c0530", "deviceName": "env-9"},
        "time": "2026-11-22T09:00:00Z",
        "object": {"seq": 3, "rh_pct": 71.5, "temp_c": 16},
    }
    [reading] = decode_telemetry(LAYOUT.telemetry("env-9"), json.dumps(uplink), now=NOW)
    assert reading.rh_pct == 71.5
    assert reading.ts == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_bool_is_not_a_number() -> None:
    payload = {
        "v": 1,
        "device_id": "bin-1",
        "seq": True,
        "ts": "2026-11-22T10:00:00Z",
        "fill_pct": 4,
    }
    with pytest.raises(ContractError) as info:
        decode_telemetry(LAYOUT.telemetry("bin-1"), json.dumps(payload), now=NOW)
    assert info.value.reason is Reason.SCHEMA

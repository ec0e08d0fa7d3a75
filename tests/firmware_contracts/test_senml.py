"""SenML packs: what the platform writes it reads back unchanged, and broken packs are rejected
with the reason a device maker can act on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_contracts import (
    METRIC_RANGES,
    ContractError,
    Reading,
    TopicLayout,
    decode_telemetry,
    encode_senml,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TOPIC = TopicLayout().senml("bin-7")


def _metric(name: str) -> st.SearchStrategy[float | None]:
    low, high = METRIC_RANGES[name]
    # Sensors report a few decimals; the ratio and back must give the same number.
    return st.none() | st.decimals(low, high, places=3).map(float)


@st.composite
def readings(draw: st.DrawFn) -> list[Reading]:
    count = draw(st.integers(1, 20))
    offsets = draw(st.lists(st.integers(0, 10**12), min_size=count, max_size=count, unique=True))
    out = []
    for offset in offsets:
        values = {m: draw(_metric(m)) for m in METRIC_RANGES}
        if all(v is None for v in values.values()):
            values["fill_pct"] = 50.0
        seq = draw(st.none() | st.integers(0, 2**32 - 1))
        ts = NOW - timedelta(days=30) + timedelta(microseconds=offset)
        out.append(Reading("bin-7", ts, seq=seq, **values))
    return sorted(out, key=lambda r: r.ts)


@given(readings())
def test_what_is_written_as_senml_reads_back_the_same(original: list[Reading]) -> None:
    pack = json.dumps(encode_senml(original))
    assert decode_telemetry(TOPIC, pack, now=NOW) == original


def test_the_pack_uses_rfc_8428_names_units_and_times() -> None:
    ts = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    pack = encode_senml(
        [Reading("bin-7", ts, seq=3, fill_pct=63.5, temp_c=8.1, battery_v=3.6, rh_pct=50.0)]
    )
    assert pack[0] == {"bn": "bin-7:", "bt": ts.timestamp(), "n": "seq", "v": 3}
    assert {r["n"]: (r.get("u"), r["v"]) for r in pack[1:]} == {
        "fill": ("/", 0.635),
        "temperature": ("Cel", 8.1),
        "battery": ("V", 3.6),
        "humidity": ("%RH", 50.0),
    }


def test_base_fields_carry_forward_and_relative_times_count_from_arrival() -> None:
    pack = [
        {"bn": "urn:dev:ow:bin-7:", "bu": "%", "n": "fill", "v": 40, "t": -600},
        {"n": "fill", "v": 41},  # no time: "now"
        {"n": "tilt", "u": "rad", "v": 3.141592653589793},
    ]
    first, second = decode_telemetry(TOPIC, json.dumps(pack), now=NOW)
    assert (first.ts, first.fill_pct) == (NOW - timedelta(minutes=10), 40.0)
    assert (second.ts, second.fill_pct, second.tilt_deg) == (NOW, 41.0, 180.0)
    assert first.seq is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{not json", "invalid_json"),
        ('{"n": "fill", "v": 0.5}', "senml_malformed"),
        ("[]", "senml_malformed"),
        ("[1, 2]", "senml_malformed"),
        ('[{"n": "fill", "v": "0.5"}]', "senml_malformed"),
        ('[{"n": "fill", "v": true}]', "senml_malformed"),
        ('[{"n": "fill", "v": 0.5, "vs": "half"}]', "senml_malformed"),
        ('[{"n": "fill"}]', "senml_malformed"),
        ('[{"n": "fill", "v": 0.5, "t": "now"}]', "senml_malformed"),
        ('[{"bn": 7, "n": "fill", "v": 0.5}]', "senml_malformed"),
        ('[{"n": "fill level", "v": 0.5}]', "senml_malformed"),
        ('[{"n": "fill", "v": 0.5, "t": 1e300}]', "senml_malformed"),
        ('[{"n": "fill", "v": 0.5, "rollover_": 1}]', "senml_malformed"),
        ('[{"bver": 99, "n": "fill", "v": 0.5}]', "unsupported_version"),
        ('[{"n": "fill", "u": "/", "v": 1.7}]', "out_of_range"),
        ('[{"n": "temperature", "u": "Cel", "v": -80}]', "out_of_range"),
        ('[{"n": "temperature", "u": "Far", "v": 50}]', "schema"),
        ('[{"n": "fill", "vs": "half"}]', "schema"),
        ('[{"n": "fill", "v": 0.5}, {"n": "fill", "v": 0.6}]', "schema"),
        ('[{"n": "pressure", "u": "Pa", "v": 101325}]', "schema"),
        ('[{"n": "fill", "v": 0.5, "t": 3600}]', "future_ts"),
        ('[{"bn": "bin-8:", "n": "fill", "v": 0.5}]', "topic_mismatch"),
        ('[{"bn": "xbin-7:", "n": "fill", "v": 0.5}]', "topic_mismatch"),
    ],
)
def test_broken_packs_are_rejected_with_their_reason(payload: str, reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_telemetry(TOPIC, payload, now=NOW)
    assert caught.value.reason.value == reason
    assert caught.value.detail


def test_a_pack_of_more_than_500_readings_is_refused_whole() -> None:
    pack = [{"bn": "bin-7:", "bt": NOW.timestamp() - 10_000, "n": "fill", "v": 0.5}]
    pack += [{"n": "fill", "v": 0.5, "t": k} for k in range(1, 501)]
    with pytest.raises(ContractError, match="at most 500"):
        decode_telemetry(TOPIC, json.dumps(pack), now=NOW)

"""The estate bench's small-count statistics and its leak sample."""

from datetime import UTC, datetime

import pytest

from bench.alerts_estate import LEAK_SAMPLE_PREFIX, leak_sample, split_leak_sample, wilson
from device_sim.truth import Label


def test_wilson_interval_matches_published_values_and_stays_in_0_1() -> None:
    # Newcombe (1998), Table I: 81/263 gives 0.2553-0.3662.
    low, high = wilson(81, 263) or (0.0, 0.0)
    assert low == pytest.approx(0.2553, abs=5e-4)
    assert high == pytest.approx(0.3662, abs=5e-4)
    # Four of five: far wider than "0.80" suggests, and never past 1.
    low, high = wilson(4, 5) or (0.0, 0.0)
    assert 0.37 < low < 0.38
    assert 0.96 < high < 0.97
    low, high = wilson(5, 5) or (0.0, 0.0)
    assert low == pytest.approx(0.5655, abs=5e-4)
    assert high == 1.0
    assert wilson(0, 0) is None


def test_leak_sample_gives_every_home_a_leak_and_keeps_it_apart() -> None:
    start = datetime(2025, 11, 3, tzinfo=UTC)
    rows, devices, labels = leak_sample(20, start, 30, "winter")
    assert len(rows) == len(devices) == 20
    assert all(r["device_id"].startswith(LEAK_SAMPLE_PREFIX) for r in rows)
    with_leak = {lab.subject_id for lab in labels if lab.label == "leak"}
    assert with_leak == {r["uprn"] for r in rows}
    estate_label = Label("home", "100031100001", "env-000001", "leak", start, None, True)
    kept, _, sample, _ = split_leak_sample([*labels, estate_label], [])
    assert kept == [estate_label]
    assert len(sample) == len(labels)

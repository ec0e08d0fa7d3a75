"""Peer summaries: fixed instants, medians of the other bins, quartiles of the other homes."""

import itertools
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from alerts.peers import PEER_EVERY, on_grid, peer_changes, peer_moisture, summary_times

T = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


def test_summary_instants_are_fixed_in_data_time_whatever_the_cycle_boundaries():
    until = T + timedelta(days=2)
    whole = summary_times(T, until)
    assert all(t.hour % 6 == 0 and t.minute == 0 for t in whole)
    assert all(on_grid(t, PEER_EVERY) for t in whole)
    assert not on_grid(whole[0] + timedelta(minutes=1), PEER_EVERY)
    assert [on_grid(t, timedelta(days=1)) for t in whole[:4]] == [False, False, False, True]
    assert whole[0] == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    cuts = [T, T + timedelta(hours=7, minutes=13), T + timedelta(hours=18), until]
    pieces = [t for a, b in itertools.pairwise(cuts) for t in summary_times(a, b)]
    assert pieces == whole
    assert summary_times(whole[0], whole[0]) == []
    assert summary_times(whole[0] - timedelta(microseconds=1), whole[0]) == [whole[0]]
    assert len(whole) == timedelta(days=2) / PEER_EVERY


def test_each_bin_gets_the_median_of_the_others_in_its_group_only():
    ranges = {"a": 0.5, "b": 40.0, "c": 30.0, "d": 60.0, "x": 90.0, "y": 1.0}
    group = {"a": ("n", "general"), "b": ("n", "general"), "c": ("n", "general")}
    group |= {"d": ("n", "general"), "x": ("s", "general"), "y": ("s", "general")}
    out = peer_changes(ranges, group, at=T, window=timedelta(days=2), min_peers=3)
    assert set(out) == {"a", "b", "c", "d"}  # the southern pair has too few peers
    assert out["a"].change_pct == 40.0  # median of 40, 30, 60: the flat bin excluded
    assert out["a"].peer_count == 3
    assert out["d"].change_pct == pytest.approx(30.0)  # median of 0.5, 40, 30
    assert out["b"].ts == T
    assert out["b"].window == timedelta(days=2)


def test_a_bin_with_no_readings_in_the_window_is_nobodys_peer():
    group = dict.fromkeys("abcd", ("n", "general"))
    out = peer_changes({"a": 0.0, "b": 50.0, "c": 50.0}, group, at=T, window=timedelta(days=1))
    assert out == {}  # only two others for each


def test_each_home_gets_the_quartiles_of_the_other_homes():
    means = {f"home-{n}": 6.0 + 0.1 * n for n in range(25)} | {"home-wet": 11.0}
    out = peer_moisture(means, at=T, window=timedelta(days=1), min_peers=20)
    assert set(out) == set(means)
    for device_id, summary in out.items():
        others = [v for d, v in means.items() if d != device_id]
        q1, median, q3 = statistics.quantiles(others, n=4, method="inclusive")
        got = (summary.peer_q1_g_m3, summary.peer_median_g_m3, summary.peer_q3_g_m3)
        assert got == pytest.approx((q1, median, q3), abs=1e-3)
        assert summary.home_g_m3 == pytest.approx(means[device_id], abs=1e-3)
        assert summary.peer_count == 25
    # The wet home is not its own peer: the others' quartiles ignore it.
    assert out["home-wet"].peer_q3_g_m3 == pytest.approx(6.0 + 0.1 * 18, abs=1e-3)


def test_too_few_homes_get_no_moisture_summary():
    means = {f"home-{n}": 6.0 for n in range(20)}
    assert peer_moisture(means, at=T, window=timedelta(days=1), min_peers=20) == {}
    assert len(peer_moisture(means | {"one-more": 6.0}, at=T, window=timedelta(days=1))) == 21

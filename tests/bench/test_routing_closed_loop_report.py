"""The closed-loop report: the comparison it draws, its table, and its plot."""

from __future__ import annotations

import pytest

from bench.closed_loop import LoopConfig, LoopResult
from bench.routing_closed_loop import comparison, report, verdict, write_plot


def _result(policy, threshold, km, shifts, lifted, overflow) -> LoopResult:
    return LoopResult(
        policy,
        28,
        20,
        threshold_pct=threshold,
        km=km,
        truck_shifts=shifts,
        bins_collected=lifted,
        overflow_hours=overflow,
    )


RESULTS = [
    _result("fixed", None, 1000.0, 100, 9000, 500.0),
    _result("weekly", None, 900.0, 90, 6000, 9000.0),
    _result("dynamic", 70.0, 800.0, 80, 7000, 300.0),
    _result("dynamic", 90.0, 600.0, 60, 5000, 700.0),  # fewer km, but overflows more
]


def test_dynamic_is_compared_only_where_it_overflows_no_more_than_the_fixed_round():
    fixed, best = comparison(RESULTS)
    assert fixed is RESULTS[0]
    assert best is RESULTS[2]
    text = verdict(fixed, best)
    assert text.startswith("**Target not met**")  # 20 % fewer km, short of 25 %
    assert "dynamic 70 %" in text
    assert "20% fewer km" in text
    met = verdict(fixed, _result("dynamic", 80.0, 700.0, 70, 6000, 400.0))
    assert met.startswith("**Target met**")
    fewer_km_more_trucks = verdict(fixed, _result("dynamic", 80.0, 700.0, 120, 6000, 400.0))
    assert fewer_km_more_trucks.startswith("**Target not met**")
    assert verdict(fixed, None).startswith("**Target not met**: no dynamic threshold")


def test_report_opens_with_its_command_and_tabulates_every_policy():
    text = report(
        LoopConfig(bins=60), RESULTS, "bench/routing_closed_loop.py --quick", 60.0, "x.png"
    )
    lines = text.splitlines()
    assert lines[0] == "Command: `bench/routing_closed_loop.py --quick`"
    rows = [line for line in lines if line.startswith("| ") and "policy" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "fixed",
        "weekly",
        "dynamic 70 %",
        "dynamic 90 %",
    ]
    assert "![km against overflow-hours per policy](x.png)" in lines


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "plot.png"
    assert write_plot(RESULTS, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_roads_names_the_town_its_map_and_the_road_matrix():
    text = report(
        LoopConfig(bins=60, town="oakham"),
        RESULTS,
        "bench/routing_closed_loop.py --town oakham",
        60.0,
        None,
    )
    assert "# Closed loop on real roads (Oakham)" in text
    assert "60 bins at kerbside points of Oakham's residential streets" in text
    assert "© OpenStreetMap contributors, ODbL" in text
    assert "road matrix" in text
    assert "Leicester" not in text

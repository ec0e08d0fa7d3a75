"""``civic routes plan|show|export|list|replan`` against a real database, and stored plans."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from civic.cli import main
from firmware_contracts import Reading
from routing.fleet import load_fleet
from routing.model import PlanRequest
from routing.plans import (
    load_plan,
    plan_from_dict,
    plan_to_dict,
    reproduce,
    request_from_dict,
    request_to_dict,
)
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import Device, upsert_devices

PLAN_DATE = "2025-10-13"  # a Monday
AS_OF = datetime(2025, 10, 13, 5, 0, tzinfo=UTC)  # 06:00 in Leicester, before the shift
HISTORY = timedelta(days=7)
CENTRE = (52.6369, -1.1398)
# (device id, level at AS_OF %, rise % per hour): the full ones reach 80 % by the end of the
# shift (nine hours on), the middle one is optional, the low ones are not offered. Rises are
# slow enough that a week of history never starts below empty.
BINS = (
    ("bin-full-1", 78.0, 0.4),
    ("bin-full-2", 82.0, 0.45),
    ("bin-full-3", 79.0, 0.4),
    ("bin-full-4", 90.0, 0.4),
    ("bin-mid-1", 64.0, 0.2),
    ("bin-low-1", 15.0, 0.05),
    ("bin-low-2", 10.0, 0.05),
)


def _device(number: int, device_id: str, stream: str = "general") -> Device:
    east_m, north_m = 400.0 * (number % 4) - 600.0, 350.0 * (number // 4) - 300.0
    return Device(
        device_id,
        "bin",
        CENTRE[0] + north_m / 111_320.0,
        CENTRE[1] + east_m / 67_700.0,
        patch="central",
        waste_stream=stream,
        capacity_l=1100,
        threshold_pct=80,
    )


def _history(device_id: str, level_now: float, rate: float, seed: int) -> list[Reading]:
    """Hourly readings of a steady rise ending at ``level_now`` at AS_OF (no collections)."""
    rng = np.random.default_rng(seed)
    hours = int(HISTORY.total_seconds() // 3600)
    readings = []
    for back in range(hours, 0, -1):
        level = level_now - rate * back
        ts = AS_OF - timedelta(hours=back)
        fill = round(level + float(rng.normal(0, 0.4)), 1)
        readings.append(Reading(device_id=device_id, ts=ts, seq=hours - back, fill_pct=fill))
    return readings


@pytest.fixture
def estate(civic_env: tuple[str, object]) -> str:
    database_url = civic_env[0]
    devices = [_device(n, device_id) for n, (device_id, _, _) in enumerate(BINS)]
    devices.append(_device(len(BINS), "bin-recycling-1", stream="recycling"))
    readings = [
        r
        for n, (device_id, level, rate) in enumerate(BINS)
        for r in _history(device_id, level, rate, n)
    ]
    readings += _history("bin-recycling-1", 95.0, 0.5, 99)
    with connect(database_url) as conn:
        upsert_devices(conn, devices)
        prepare_session(conn)
        write_batch(conn, readings, [], partitions=PartitionGuard())
    return database_url


def _plan(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    argv = ["routes", "plan", "--date", PLAN_DATE, "--stream", "general", "--seconds", "1"]
    code = main([*argv, "--as-of", AS_OF.isoformat(), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary: dict[str, object] = json.loads(captured.out)
    return summary


def _visited(summary_or_plan_id: str, url: str) -> list[str]:
    with connect(url) as conn:
        stored = load_plan(conn, summary_or_plan_id)
    return [b for route in stored.plan.routes for b in route.bin_ids]


def test_plan_collects_bins_forecast_full_and_stores_the_plan(estate, capsys):
    summary = _plan(capsys)
    assert summary["must_collect"] == 4
    assert summary["optional"] == 1
    assert summary["left_out"] == 2
    assert summary["valid"] is True
    assert summary["unserved_must_collect"] == 0
    visited = _visited(str(summary["plan_id"]), estate)
    assert {"bin-full-1", "bin-full-2", "bin-full-3", "bin-full-4"} <= set(visited)
    assert not {"bin-low-1", "bin-low-2", "bin-recycling-1"} & set(visited)

    with connect(estate) as conn:
        stored = load_plan(conn, str(summary["plan_id"]))
        stops = conn.execute(
            "SELECT count(*) AS n FROM route_stops WHERE plan_id = %s AND kind = 'bin'",
            (stored.id,),
        ).fetchone()
    assert stops["n"] == len(visited)
    assert stored.as_of == AS_OF
    assert "threshold" in (stored.reason_for("bin-full-1") or "")
    entry = next(e for e in stored.selection if e["bin_id"] == "bin-full-1")
    assert entry["forecast"]["forecast_at_visit_pct"] >= 80.0
    assert stored.fleet["streams"]["general"]["capacity_kg"] == 4000.0


def test_plan_prints_a_table_per_vehicle_with_progress_on_stderr(estate, capsys):
    argv = ["routes", "plan", "--date", PLAN_DATE, "--stream", "general", "--seconds", "1"]
    assert main([*argv, "--as-of", AS_OF.isoformat()]) == 0
    captured = capsys.readouterr()
    assert "rcv-general-01" in captured.out
    assert "validator: no violations" in captured.out
    assert "must-collect" in captured.err  # the selection summary is progress, not output
    assert captured.out.startswith("plan 2025-10-13-general-")


def test_show_and_export_read_the_stored_plan(estate, capsys, tmp_path: Path):
    plan_id = str(_plan(capsys)["plan_id"])

    assert main(["routes", "show", plan_id, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["plan_id"] == plan_id
    assert {e["bin_id"] for e in shown["selection"]} >= {"bin-full-1", "bin-mid-1"}

    assert main(["routes", "show", plan_id]) == 0
    table = capsys.readouterr().out
    assert "bin-full-1" in table
    assert "threshold" in table

    for fmt in ("geojson", "gpx", "csv"):
        out = tmp_path / f"plan.{fmt}"
        assert main(["routes", "export", plan_id, "--format", fmt, "-o", str(out)]) == 0
    geojson = json.loads((tmp_path / "plan.geojson").read_text())
    assert geojson["type"] == "FeatureCollection"
    gpx = ET.parse(tmp_path / "plan.gpx").getroot()
    times = [e.text for e in gpx.iter("{http://www.topografix.com/GPX/1/1}time")]
    # BST: a 07:00 departure is 06:00 UTC.
    assert times[0] is not None
    assert times[0].startswith("2025-10-13T06:")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "plan.csv").read_text())))
    assert {"bin-full-1", "bin-full-2"} <= {r["stop_id"] for r in rows}

    assert main(["routes", "list", "--date", PLAN_DATE]) == 0
    assert plan_id in capsys.readouterr().out


def test_user_errors_exit_2_with_a_message(estate, capsys):
    assert main(["routes", "show", "no-such-plan"]) == 2
    assert "no stored plan 'no-such-plan'" in capsys.readouterr().err
    argv = ["routes", "plan", "--date", PLAN_DATE, "--stream", "glass", "--seconds", "1"]
    assert main([*argv, "--as-of", AS_OF.isoformat()]) == 2
    assert "no trucks configured for stream 'glass'" in capsys.readouterr().err
    past = ["routes", "plan", "--date", "2020-01-06", "--stream", "general"]
    assert main(past) == 2
    assert "--as-of" in capsys.readouterr().err


def test_replan_keeps_done_stops_and_adds_the_urgent_bin(estate, capsys):
    plan_id = str(_plan(capsys)["plan_id"])
    with connect(estate) as conn:
        original = load_plan(conn, plan_id)
    route = next(r for r in original.plan.routes if not r.is_empty)
    # Re-plan just after the second bin of the first route was done.
    second_bin = [s for s in route.stops if s.kind == "bin"][1]
    at = second_bin.departure_s + 60
    at_text = f"{at // 3600:02d}:{at % 3600 // 60:02d}"
    code = main(
        ["routes", "replan", plan_id, "--at", at_text, "--urgent", "bin-low-1", "--seconds", "1"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with connect(estate) as conn:
        newest = conn.execute(
            "SELECT id FROM route_plans WHERE parent_id = %s", (plan_id,)
        ).fetchone()
        replanned = load_plan(conn, newest["id"])
    new_route = replanned.plan.route_for(route.vehicle_id)
    assert new_route is not None
    done = [s for s in route.stops if s.departure_s <= at_text_seconds(at_text)]
    assert new_route.stops[: len(done)] == tuple(done)
    visited = [b for r in replanned.plan.routes for b in r.bin_ids]
    assert "bin-low-1" in visited
    # Every bin of every original route is still collected, done or not.
    assert {b for r in original.plan.routes for b in r.bin_ids} <= set(visited)
    assert len(visited) == len(set(visited))  # nothing collected twice
    assert replanned.reason_for("bin-low-1") == "reported: collect today"


def at_text_seconds(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def test_stored_request_and_plan_round_trip_and_reproduce(estate, capsys):
    plan_id = str(_plan(capsys)["plan_id"])
    with connect(estate) as conn:
        stored = load_plan(conn, plan_id)
    assert request_from_dict(request_to_dict(stored.request)) == stored.request
    assert plan_from_dict(plan_to_dict(stored.plan)) == stored.plan
    assert isinstance(stored.request, PlanRequest)
    again = reproduce(stored, time_limit_s=1.0)
    assert again.is_valid
    assert sorted(b for r in again.routes for b in r.bin_ids) == sorted(
        b for r in stored.plan.routes for b in r.bin_ids
    )
    assert load_fleet().to_dict() == stored.fleet


def test_replan_out_of_service_hands_the_bins_to_the_other_trucks(estate, capsys):
    plan_id = str(_plan(capsys)["plan_id"])
    with connect(estate) as conn:
        original = load_plan(conn, plan_id)
    busy = [r for r in original.plan.routes if not r.is_empty]
    broken = busy[0]
    first_bin = next(s for s in broken.stops if s.kind == "bin")
    at = first_bin.arrival_s - 60  # breaks down on the way to its first bin
    at_text = f"{at // 3600:02d}:{at % 3600 // 60:02d}"
    argv = ["routes", "replan", plan_id, "--at", at_text, "--seconds", "1", "--json"]
    code = main([*argv, "--out-of-service", broken.vehicle_id])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["parent_id"] == plan_id
    assert summary["date"] == PLAN_DATE
    assert summary["unserved_must_collect"] == 0
    with connect(estate) as conn:
        replanned = load_plan(conn, summary["plan_id"])
    assert replanned.parent_id == plan_id
    route = replanned.plan.route_for(broken.vehicle_id)
    assert route is None or route.bin_ids == ()
    others = {
        b for r in replanned.plan.routes if r.vehicle_id != broken.vehicle_id for b in r.bin_ids
    }
    assert set(broken.bin_ids) <= others


def test_replan_and_export_user_errors_exit_2_with_a_message(estate, capsys):
    plan_id = str(_plan(capsys)["plan_id"])
    vehicles = ["rcv-general-01", "rcv-general-02", "rcv-general-03"]
    cases = [
        (["nope", "--at", "10:00"], "no stored plan 'nope'"),
        ([plan_id, "--at", "10am"], "--at '10am' is not a clock time HH:MM"),
        ([plan_id, "--at", "10:00", "--seconds", "0"], "--seconds must be positive"),
        ([plan_id, "--at", "10:00", "--out-of-service", "rcv-9"], "unknown vehicle(s): rcv-9"),
        (
            [plan_id, "--at", "10:00", "--out-of-service", *vehicles],
            "no vehicle is left in service for the rest of the shift",
        ),
        (
            [plan_id, "--at", "10:00", "--urgent", "bin-nope"],
            "urgent bin 'bin-nope' is not a registered bin",
        ),
        (
            [plan_id, "--at", "10:00", "--urgent", "bin-recycling-1"],
            "urgent bin 'bin-recycling-1' holds recycling, not general",
        ),
    ]
    for args, message in cases:
        seconds = [] if "--seconds" in args else ["--seconds", "1"]
        assert main(["routes", "replan", *args, *seconds]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f"civic routes: error: {message}", (args, err)
    with connect(estate) as conn:
        plans = conn.execute("SELECT count(*) AS n FROM route_plans").fetchone()
    assert plans["n"] == 1  # no failed re-plan stored anything

    assert main(["routes", "export", "nope", "--format", "csv"]) == 2
    assert capsys.readouterr().err.strip() == "civic routes: error: no stored plan 'nope'"


def test_export_writes_to_standard_output_without_a_file(estate, capsys, tmp_path: Path):
    plan_id = str(_plan(capsys)["plan_id"])
    for fmt in ("geojson", "gpx", "csv"):
        out = tmp_path / f"plan.{fmt}"
        assert main(["routes", "export", plan_id, "--format", fmt, "-o", str(out)]) == 0
        capsys.readouterr()
        assert main(["routes", "export", plan_id, "--format", fmt]) == 0
        assert capsys.readouterr().out == out.read_text()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "plan.csv").read_text())))
    assert rows
    assert {r["stop_id"] for r in rows} >= {"bin-full-1", "bin-full-2", "bin-full-3", "bin-full-4"}

"""Exports parse back: GeoJSON with json, GPX 1.1 with ElementTree, the driver sheet with csv."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import xml.etree.ElementTree as ET

import pytest

from routing.export import GPX_NAMESPACE, clock, plan_to_csv, plan_to_geojson, plan_to_gpx
from routing.solver import plan_routes
from tests.routing.conftest import make_bin, make_request, make_vehicle

NS = {"gpx": GPX_NAMESPACE}


@pytest.fixture(scope="module")
def plan():
    bins = [make_bin(i, 300.0 * i, 200.0 * (i % 2), weight_kg=400.0) for i in range(5)]
    vehicles = [make_vehicle("v1", capacity_kg=1000.0), make_vehicle("v2", capacity_kg=1000.0)]
    return plan_routes(make_request(bins, vehicles), time_limit_s=1.0)


def used(plan):
    return [r for r in plan.routes if not r.is_empty]


def test_geojson_round_trip(plan):
    text = json.dumps(plan_to_geojson(plan, plan_date=dt.date(2025, 11, 3)))
    collection = json.loads(text)
    assert collection["type"] == "FeatureCollection"
    lines = [f for f in collection["features"] if f["geometry"]["type"] == "LineString"]
    points = [f for f in collection["features"] if f["geometry"]["type"] == "Point"]
    assert len(lines) == len(used(plan))
    assert len(points) == sum(len(r.stops) for r in used(plan))
    first = used(plan)[0].stops[0]
    # RFC 7946: longitude first.
    assert lines[0]["geometry"]["coordinates"][0] == [first.lon, first.lat]
    bins = [p for p in points if p["properties"]["kind"] == "bin"]
    assert {p["properties"]["stop_id"] for p in bins} == {f"b{i}" for i in range(5)}
    assert bins[0]["properties"]["eta_utc"].endswith("Z")


def test_gpx_is_gpx_1_1_with_one_route_per_vehicle(plan):
    root = ET.fromstring(plan_to_gpx(plan, plan_date=dt.date(2025, 11, 3)).encode())
    assert root.tag == f"{{{GPX_NAMESPACE}}}gpx"
    assert root.get("version") == "1.1"
    routes = root.findall("gpx:rte", NS)
    assert [r.findtext("gpx:name", namespaces=NS) for r in routes] == [
        r.vehicle_id for r in used(plan)
    ]
    points = routes[0].findall("gpx:rtept", NS)
    assert len(points) == len(used(plan)[0].stops)
    assert float(points[0].get("lat")) == pytest.approx(used(plan)[0].stops[0].lat, abs=1e-6)
    # Child order fixed by the GPX 1.1 schema: time, name, desc, type.
    assert [child.tag.split("}")[1] for child in points[1]] == ["time", "name", "desc", "type"]


def test_driver_sheet_csv(plan):
    rows = list(csv.DictReader(io.StringIO(plan_to_csv(plan))))
    assert list(rows[0]) == [
        "vehicle",
        "seq",
        "stop_id",
        "kind",
        "eta",
        "departure",
        "load_kg",
        "load_l",
        "lat",
        "lon",
    ]
    assert len(rows) == sum(len(r.stops) for r in used(plan))
    first_route = used(plan)[0]
    mine = [r for r in rows if r["vehicle"] == first_route.vehicle_id]
    assert [int(r["seq"]) for r in mine] == list(range(len(first_route.stops)))
    assert mine[0]["kind"] == "depot"
    assert mine[-1]["kind"] == "depot"
    assert mine[1]["eta"] == clock(first_route.stops[1].arrival_s)


def test_clock_formats_seconds_since_midnight():
    assert clock(7 * 3600 + 5 * 60 + 9) == "07:05:09"
    assert clock(25 * 3600) == "25:00:00"

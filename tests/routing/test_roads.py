"""The road network on tiny hand-drawn maps: what is read, where places snap, which way is short.

Expected lengths are worked out by hand from :data:`STEP_M` (0.001 degree on the equator).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import xmlschema

from routing.export import plan_to_geojson, plan_to_gpx
from routing.fleet import load_fleet
from routing.matrix import haversine_m
from routing.model import BinStop, DisposalSite, PlanRequest, Site, Vehicle
from routing.network import (
    SPEED_SHARE,
    NetworkImportError,
    load_network,
    parse_maxspeed,
    read_osm,
)
from routing.plans import plan_from_dict, plan_to_dict
from routing.roads import OffNetworkError, RoadProvider
from routing.solver import plan_routes
from tests.routing.osm import STEP_M, write_osm

GPX_XSD = Path(__file__).parents[1] / "data" / "gpx" / "gpx-1.1.xsd"
MPH = 1.609344

# A one-way block, driven clockwise seen from above: A (0,0) -> B (0,1) -> C (1,1) -> D (1,0)
# -> A, in thousandths of a degree (lat, lon). Each side is STEP_M long.
LOOP_NODES = {1: (0.0, 0.0), 2: (0.0, 0.001), 3: (0.001, 0.001), 4: (0.001, 0.0)}
LOOP_WAYS = [([1, 2, 3, 4, 1], {"highway": "residential", "oneway": "yes", "maxspeed": "30 mph"})]
# P1 at the kerb halfway along A->B; P2 halfway along D->A. A crow flies 85 m between them.
P1 = (-0.00004, 0.0005)
P2 = (0.0005, -0.00004)
LOOP_SPEED_MS = 30 * MPH * SPEED_SHARE / 3.6


@pytest.fixture
def loop(tmp_path: Path) -> RoadProvider:
    return RoadProvider.from_network(
        read_osm(write_osm(tmp_path / "loop.osm", LOOP_NODES, LOOP_WAYS))
    )


def test_one_way_loop_goes_the_long_way_round(loop: RoadProvider):
    matrix = loop.matrix([P1, P2])
    straight = haversine_m([P1, P2])[0, 1]
    # P2 -> P1: half of D->A, then half of A->B. P1 -> P2: the rest of A->B, B->C, C->D, half D->A.
    assert matrix.distances_m[1, 0] == round(STEP_M)
    assert matrix.distances_m[0, 1] == round(3 * STEP_M)
    assert straight == pytest.approx(0.54 * 2**0.5 * STEP_M, rel=1e-3)
    assert matrix.durations_s[0, 1] == pytest.approx(3 * STEP_M / LOOP_SPEED_MS, abs=1)
    assert matrix.durations_s[1, 0] == pytest.approx(STEP_M / LOOP_SPEED_MS, abs=1)


def test_path_follows_the_one_way_streets(loop: RoadProvider):
    (there,) = loop.paths([(P1, P2)])
    # Snapped onto A->B, then corners B, C and D, then onto D->A.
    assert there == [(0.0, 0.0005), (0.0, 0.001), (0.001, 0.001), (0.001, 0.0), (0.0005, 0.0)]
    (back,) = loop.paths([(P2, P1)])
    assert back == [(0.0005, 0.0), (0.0, 0.0), (0.0, 0.0005)]


def test_snapping_reports_distance_off_the_road(loop: RoadProvider):
    snap_p1, snap_p2 = loop.snap([P1, P2])
    assert snap_p1.distance_m == pytest.approx(0.04 * STEP_M, rel=1e-3)
    assert snap_p1.along_m == pytest.approx(STEP_M / 2, rel=1e-3)
    assert (snap_p2.lat, snap_p2.lon) == pytest.approx((0.0005, 0.0))


# A two-way street A (0,0) - B (0,1) - C (0,2) and, 2 steps north, a service road E - F joined
# to nothing: it cannot be part of a route, so it is left out of the network.
SPLIT_NODES = {1: (0.0, 0.0), 2: (0.0, 0.001), 3: (0.0, 0.002), 5: (0.002, 0.0), 6: (0.002, 0.001)}
SPLIT_WAYS = [
    ([1, 2, 3], {"highway": "residential"}),
    ([5, 6], {"highway": "service"}),
    ([1, 5], {"highway": "footway"}),  # a footpath joins them: not drivable, no link
    ([3, 6], {"highway": "residential", "access": "private"}),  # private: no link either
]


@pytest.fixture
def split(tmp_path: Path) -> RoadProvider:
    path = write_osm(tmp_path / "split.osm", SPLIT_NODES, SPLIT_WAYS)
    return RoadProvider.from_network(read_osm(path))


def test_disconnected_service_road_is_left_out(split: RoadProvider):
    network = split.network
    assert network.node_count == 3
    assert network.dropped_nodes == 2
    assert network.edge_count == 4  # A<->B, B<->C
    assert network.edge_length_m.sum() == pytest.approx(4 * STEP_M, rel=1e-6)


def test_bin_on_the_cut_off_service_road_snaps_to_the_connected_street(split: RoadProvider):
    # 0.1 steps from the service road, 1.9 steps from the street: the street is where a truck
    # can stop, so the snap is 1.9 steps away.
    (snap,) = split.snap([(0.0019, 0.0005)])
    assert snap.distance_m == pytest.approx(1.9 * STEP_M, rel=1e-3)
    assert (snap.lat, snap.lon) == pytest.approx((0.0, 0.0005))


def test_bins_far_from_any_road_are_named(split: RoadProvider):
    request = PlanRequest(
        depots=(Site("depot", 0.0, 0.0),),
        tips=(DisposalSite("tip", 0.0, 0.002),),
        vehicles=(Vehicle("v1", "general", 1000.0, 1000.0, "depot"),),
        bins=(
            BinStop("near", 0.0019, 0.0005, "general", 10.0, 20.0),
            BinStop("lost-bin", 0.004, 0.001, "general", 10.0, 20.0),
        ),
    )
    with pytest.raises(OffNetworkError, match="lost-bin") as caught:
        split.check_request(request)
    assert [place[0] for place in caught.value.places] == ["lost-bin"]
    assert caught.value.places[0][3] == pytest.approx(4 * STEP_M, rel=1e-3)
    with pytest.raises(OffNetworkError):
        split.matrix([(0.0, 0.0), (0.004, 0.001)])


def test_places_on_either_side_of_a_two_way_street(split: RoadProvider):
    # Both on the A-B stretch, 0.2 and 0.7 of the way along: 0.5 steps apart both ways.
    first, second = (0.00001, 0.0002), (-0.00001, 0.0007)
    matrix = split.matrix([first, second, (0.0, 0.002)])
    assert matrix.distances_m[0, 1] == matrix.distances_m[1, 0] == round(0.5 * STEP_M)
    assert matrix.distances_m[0, 2] == round(1.8 * STEP_M)
    assert matrix.distances_m[2, 1] == round(1.3 * STEP_M)
    assert (np.diag(matrix.durations_s) == 0).all()


@pytest.mark.parametrize(
    ("tag", "kmh"),
    [
        ("30 mph", 30 * MPH),
        ("50", 50.0),
        ("48 km/h", 48.0),
        ("GB:nsl_single", 96.0),
        ("GB:zone20", 20 * MPH),
        ("signals", None),
        ("", None),
    ],
)
def test_maxspeed_tags(tag, kmh):
    assert parse_maxspeed(tag) == (pytest.approx(kmh) if kmh else None)


def test_oneway_reverse_and_roundabouts(tmp_path: Path):
    nodes = {1: (0.0, 0.0), 2: (0.0, 0.001), 3: (0.001, 0.001)}
    ways = [
        ([2, 1], {"highway": "residential", "oneway": "-1"}),  # drivable 1 -> 2 only
        ([2, 3, 1], {"highway": "tertiary", "junction": "roundabout"}),  # one way, implied
    ]
    network = read_osm(write_osm(tmp_path / "ring.osm", nodes, ways))
    edges = set(zip(network.edge_from.tolist(), network.edge_to.tolist(), strict=True))
    coords = list(zip(network.node_lat.tolist(), network.node_lon.tolist(), strict=True))
    named = {coords.index(place): k for k, place in nodes.items()}
    assert {(named[a], named[b]) for a, b in edges} == {(1, 2), (2, 3), (3, 1)}


def test_network_cache_is_keyed_by_the_file(tmp_path: Path):
    path = write_osm(tmp_path / "loop.osm", LOOP_NODES, LOOP_WAYS)
    first = load_network(path, tmp_path / "cache")
    again = load_network(path, tmp_path / "cache")
    assert not first.cached
    assert again.cached
    assert again.network.version == first.network.version
    np.testing.assert_array_equal(again.network.edge_time_s, first.network.edge_time_s)
    write_osm(path, LOOP_NODES, [([1, 2, 3, 4, 1], {"highway": "residential"})])
    changed = load_network(path, tmp_path / "cache")
    assert not changed.cached
    assert changed.network.version != first.network.version
    assert changed.network.edge_count == 8


def test_unreadable_or_roadless_files_are_clear_errors(tmp_path: Path):
    with pytest.raises(NetworkImportError, match="no such file"):
        read_osm(tmp_path / "missing.osm.pbf")
    footpaths = write_osm(tmp_path / "paths.osm", LOOP_NODES, [([1, 2], {"highway": "footway"})])
    with pytest.raises(NetworkImportError, match="no drivable roads"):
        read_osm(footpaths)
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(NetworkImportError, match="cannot read"):
        read_osm(garbage)


@pytest.fixture
def loop_plan(loop: RoadProvider):
    request = PlanRequest(
        depots=(Site("depot", 0.0005, 0.00104),),  # beside B->C
        tips=(DisposalSite("tip", 0.00104, 0.0005, unload_s=600),),  # beside C->D
        vehicles=(Vehicle("v1", "general", 1000.0, 1000.0, "depot"),),
        bins=(
            BinStop("p1", *P1, "general", 10.0, 20.0, must_collect=True),
            BinStop("p2", *P2, "general", 10.0, 20.0, must_collect=True),
        ),
    )
    return plan_routes(request, time_limit_s=1.0, matrix_provider=loop)


def test_plan_on_roads_keeps_each_legs_street_path(loop_plan):
    (route,) = loop_plan.routes
    assert loop_plan.is_valid
    assert len(route.legs) == len(route.stops) - 1
    # Every corner of the one-way block is driven at least once: the plan goes round.
    corners = {(0.0, 0.001), (0.001, 0.001), (0.001, 0.0), (0.0, 0.0)}
    assert corners <= set(route.path)
    # The plan's metres are the street paths' metres.
    walked = sum(
        haversine_m([a, b])[0, 1] for a, b in zip(route.path, route.path[1:], strict=False)
    )
    assert walked == pytest.approx(route.distance_m, abs=len(route.stops))


def test_exports_follow_the_streets_and_credit_openstreetmap(loop_plan):
    geojson = plan_to_geojson(loop_plan)
    assert geojson["attribution"] == "© OpenStreetMap contributors"
    (line,) = [f for f in geojson["features"] if f["geometry"]["type"] == "LineString"]
    assert line["properties"]["follows_streets"] is True
    assert [[lat, lon] for lon, lat in line["geometry"]["coordinates"]] == [
        list(p) for p in loop_plan.routes[0].path
    ]
    gpx = plan_to_gpx(loop_plan)
    xmlschema.XMLSchema(GPX_XSD).validate(gpx)
    assert "© OpenStreetMap contributors" in gpx
    assert gpx.count("<trkpt") == len(loop_plan.routes[0].path)
    assert gpx.count("<wpt") == len(loop_plan.routes[0].stops)


def test_street_paths_survive_storage(loop_plan):
    stored = json.loads(json.dumps(plan_to_dict(loop_plan)))
    assert plan_from_dict(stored).routes[0].legs == loop_plan.routes[0].legs


def test_straight_line_plans_export_no_track_and_no_attribution(loop_plan):
    bare = dataclasses.replace(
        loop_plan, routes=tuple(dataclasses.replace(r, legs=()) for r in loop_plan.routes)
    )
    gpx = plan_to_gpx(bare)
    xmlschema.XMLSchema(GPX_XSD).validate(gpx)
    assert "<trk>" not in gpx
    assert "attribution" not in plan_to_geojson(bare)


def test_fleet_file_names_the_network(tmp_path: Path):
    extract = write_osm(tmp_path / "loop.osm", LOOP_NODES, LOOP_WAYS)
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text('[travel]\nnetwork = "loop.osm"\n', encoding="utf-8")
    fleet = load_fleet(fleet_file)
    assert fleet.network == extract.resolve()
    assert isinstance(fleet.provider, RoadProvider)
    assert fleet.to_dict()["travel"]["network"] == str(extract.resolve())
    fleet_file.write_text('[travel]\nnetwork = "nowhere.osm.pbf"\n', encoding="utf-8")
    with pytest.raises(Exception, match="no road network extract"):
        load_fleet(fleet_file)

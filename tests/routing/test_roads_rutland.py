"""The bundled Rutland extract end to end: import, matrix, plan, GPX checked against GPX 1.1."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xmlschema

from routing.export import plan_to_gpx
from routing.matrix import haversine_m
from routing.network import load_network
from routing.places import BUNDLED_EXTRACT, TOWNS, street_points
from routing.roads import RoadProvider
from routing.solver import plan_routes
from routing.synth import RealPlaces, synthetic_request

GPX_XSD = Path(__file__).parents[1] / "data" / "gpx" / "gpx-1.1.xsd"
GPX = {"gpx": "http://www.topografix.com/GPX/1/1"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def roads(tmp_path_factory: pytest.TempPathFactory) -> RoadProvider:
    cache = tmp_path_factory.mktemp("roads")
    return RoadProvider(BUNDLED_EXTRACT, cache_dir=cache / "networks", matrix_dir=cache / "m")


def test_import_command_reads_and_then_reuses_the_extract(tmp_path: Path):
    def run() -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "civic.cli",
                "routes",
                "network",
                "import",
                str(BUNDLED_EXTRACT),
            ],
            env={"CIVIC_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    first, second = run(), run()
    assert "read in" in first
    assert "from the cache" in second
    assert "© OpenStreetMap contributors" in first
    (cached,) = (tmp_path / "roads" / "networks").glob("*.npz")
    assert cached.stat().st_size > 0


def test_rutland_network_is_one_drivable_county(roads: RoadProvider):
    network = roads.network
    # SOURCE.md: about 30,000 drivable nodes; a few hundred are cut off and left out.
    assert 20_000 < network.node_count < 40_000
    assert 0 < network.dropped_nodes < network.node_count * 0.05
    assert network.node_lat.min() > 52.4
    assert network.node_lat.max() < 52.9


def test_oakham_day_on_roads_to_a_valid_gpx(roads: RoadProvider):
    town = TOWNS["oakham"]
    bins = street_points(roads.network, town, 40, seed=3)
    request = synthetic_request(40, 2, seed=3, town=RealPlaces(town.depot, town.tip, tuple(bins)))
    places: list[Any] = [*request.depots, *request.tips, *request.bins]
    points = [(p.lat, p.lon) for p in places]
    matrix = roads.matrix(points)
    straight = haversine_m(points)
    off_diagonal = ~np.eye(len(points), dtype=bool)
    # Road metres are never shorter than the crow flies, less the two kerbside snaps.
    snaps = np.array([s.distance_m for s in roads.snap(points)])
    slack = snaps[:, None] + snaps[None, :] + 1
    assert (matrix.distances_m[off_diagonal] >= (straight - slack)[off_diagonal]).all()
    assert (matrix.durations_s[off_diagonal] > 0).all()

    plan = plan_routes(request, time_limit_s=2.0, matrix_provider=roads)
    assert plan.is_valid
    assert not plan.unserved
    used = [r for r in plan.routes if not r.is_empty]
    for route in used:
        # Each leg's drawn path is as long as the matrix says (snapped ends, so a metre or two
        # per leg of rounding).
        for (a, b), leg in zip(itertools.pairwise(route.stops), route.legs, strict=True):
            drawn = sum(haversine_m([p, q])[0, 1] for p, q in itertools.pairwise(leg))
            index_a, index_b = points.index((a.lat, a.lon)), points.index((b.lat, b.lon))
            assert drawn == pytest.approx(matrix.distances_m[index_a, index_b], abs=2)

    gpx = plan_to_gpx(plan)
    schema = xmlschema.XMLSchema(GPX_XSD)
    schema.validate(gpx)
    document: Any = schema.to_dict(gpx)
    assert len(document["trk"]) == len(used)
    assert len(document["wpt"]) == sum(len(r.stops) for r in used)
    assert document["metadata"]["copyright"]["@author"] == "OpenStreetMap contributors"
    track = document["trk"][0]["trkseg"][0]["trkpt"]
    assert len(track) > len(used[0].stops)  # the track bends with the streets


def test_cached_network_and_matrix_are_reused(roads: RoadProvider, tmp_path: Path):
    report = load_network(BUNDLED_EXTRACT, roads.cache_dir)
    assert report.cached
    assert report.network.version == roads.network.version
    points = street_points(roads.network, TOWNS["uppingham"], 5, seed=1)
    first = roads.matrix(points)
    again = RoadProvider(BUNDLED_EXTRACT, cache_dir=roads.cache_dir, matrix_dir=roads.matrix_dir)
    np.testing.assert_array_equal(again.matrix(points).distances_m, first.distances_m)
    assert again._matrices.hits == 1

"""Matrix providers: haversine maths, the OSRM table client against a local stub, the cache."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from routing.errors import MatrixError
from routing.matrix import (
    UNREACHABLE,
    CachedProvider,
    HaversineProvider,
    OsrmTableProvider,
    haversine_m,
)

POINTS = [
    (52.6300, -1.1300),
    (52.6400, -1.1200),
    (52.6200, -1.1500),
    (52.6350, -1.1000),
    (52.6100, -1.1400),
    (52.6500, -1.1350),
    (52.6250, -1.1250),
]


def stub_seconds(a, b):
    """The stub server's 'road network': 1.5 × straight line at 10 m/s."""
    metres = 1.5 * float(haversine_m([a, b])[0, 1])
    return metres / 10.0, metres


class OsrmStub(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []
    unreachable: ClassVar[set[tuple[int, int]]] = set()
    refuse: ClassVar[bool] = False

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        parsed = urllib.parse.urlsplit(self.path)  # urlparse would eat ";params"
        prefix = "/table/v1/driving/"
        if not parsed.path.startswith(prefix) or type(self).refuse:
            self._reply(400, {"code": "InvalidQuery", "message": "refused"})
            return
        coords = [
            (float(lat), float(lon))
            for lon, lat in (c.split(",") for c in parsed.path[len(prefix) :].split(";"))
        ]
        query = urllib.parse.parse_qs(parsed.query)
        assert query["annotations"] == ["duration,distance"]
        everyone = list(range(len(coords)))
        sources = (
            [int(i) for i in query["sources"][0].split(";")] if "sources" in query else everyone
        )
        targets = (
            [int(i) for i in query["destinations"][0].split(";")]
            if "destinations" in query
            else everyone
        )
        durations, distances = [], []
        for s in sources:
            row_t, row_d = [], []
            for t in targets:
                seconds, metres = stub_seconds(coords[s], coords[t])
                blocked = (POINTS.index(coords[s]), POINTS.index(coords[t])) in type(
                    self
                ).unreachable
                row_t.append(None if blocked else seconds)
                row_d.append(None if blocked else metres)
            durations.append(row_t)
            distances.append(row_d)
        self._reply(200, {"code": "Ok", "durations": durations, "distances": distances})

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        return


@pytest.fixture
def osrm() -> Iterator[str]:
    OsrmStub.requests = []
    OsrmStub.unreachable = set()
    OsrmStub.refuse = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), OsrmStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def expected():
    size = len(POINTS)
    durations = np.zeros((size, size), dtype=np.int64)
    distances = np.zeros((size, size), dtype=np.int64)
    for i, a in enumerate(POINTS):
        for j, b in enumerate(POINTS):
            seconds, metres = stub_seconds(a, b)
            durations[i, j], distances[i, j] = round(seconds), round(metres)
    return durations, distances


def test_haversine_matches_a_known_distance():
    # Leicester Clock Tower to Nottingham Council House: about 38.5 km as the crow flies.
    metres = haversine_m([(52.6361, -1.1331), (52.9533, -1.1496)])[0, 1]
    assert 35_000 < metres < 36_000


def test_haversine_provider_applies_road_factor_and_speed():
    matrix = HaversineProvider(road_factor=1.3, speed_kmh=36.0).matrix(POINTS[:2])
    straight = haversine_m(POINTS[:2])[0, 1]
    assert matrix.distances_m[0, 1] == round(1.3 * straight)
    assert matrix.durations_s[0, 1] == round(1.3 * straight / 10.0)
    assert matrix.durations_s[0, 0] == 0


@pytest.mark.parametrize("bad", [{"road_factor": 0.9}, {"speed_kmh": 0.0}])
def test_haversine_provider_rejects_nonsense(bad):
    with pytest.raises(ValueError, match="must be"):
        HaversineProvider(**bad)


def test_osrm_table_in_one_request(osrm):
    matrix = OsrmTableProvider(osrm).matrix(POINTS)
    durations, distances = expected()
    assert np.array_equal(matrix.durations_s, durations)
    assert np.array_equal(matrix.distances_m, distances)
    assert len(OsrmStub.requests) == 1
    # OSRM wants lon,lat order.
    assert f"{POINTS[0][1]:.6f},{POINTS[0][0]:.6f}" in OsrmStub.requests[0]


def test_osrm_table_in_blocks_when_too_many_points(osrm):
    matrix = OsrmTableProvider(osrm, max_locations=4).matrix(POINTS)
    durations, distances = expected()
    assert np.array_equal(matrix.durations_s, durations)
    assert np.array_equal(matrix.distances_m, distances)
    assert len(OsrmStub.requests) == 16  # 4 row blocks x 4 column blocks of 2 points


def test_osrm_unroutable_pairs_become_unreachable(osrm):
    OsrmStub.unreachable = {(1, 2)}
    matrix = OsrmTableProvider(osrm).matrix(POINTS)
    assert matrix.durations_s[1, 2] == UNREACHABLE
    assert matrix.durations_s[2, 1] != UNREACHABLE


def test_osrm_errors_raise_matrix_error(osrm):
    OsrmStub.refuse = True
    with pytest.raises(MatrixError) as caught:
        OsrmTableProvider(osrm).matrix(POINTS)
    assert caught.value.status == 400


def test_osrm_unreachable_server_raises_matrix_error():
    with pytest.raises(MatrixError, match="unreachable"):
        OsrmTableProvider("http://127.0.0.1:9", timeout_s=2).matrix(POINTS[:2])


def test_cache_hits_memory_and_disk(osrm, tmp_path):
    cached = CachedProvider(OsrmTableProvider(osrm), directory=tmp_path)
    first = cached.matrix(POINTS)
    second = cached.matrix(POINTS)
    assert second is first
    assert (cached.hits, cached.misses) == (1, 1)
    assert len(OsrmStub.requests) == 1

    fresh = CachedProvider(OsrmTableProvider(osrm), directory=tmp_path)
    from_disk = fresh.matrix(POINTS)
    assert np.array_equal(from_disk.durations_s, first.durations_s)
    assert len(OsrmStub.requests) == 1
    # A different point set is a different key.
    fresh.matrix(POINTS[:3])
    assert len(OsrmStub.requests) == 2

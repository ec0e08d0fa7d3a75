"""Routes on real roads: the Rutland road network, road matrices and a refuse day in Oakham.

    .venv/bin/python bench/routing_roads.py --write bench/results/routing_roads.md

Imports ``data/osm/rutland-latest.osm.pbf`` (in a child process, for its peak memory), places
1,000 and 3,000 bins at kerbside points along Oakham's residential streets
(:func:`routing.places.street_points`), times the road matrix for each (snapping, splicing,
folding pass-through nodes, Dijkstra from every place), then plans the 3,000-bin day end to
end on the roads (matrix, search, street paths, validation). How wrong the straight-line
estimate was: each leg of the road plan, road metres over crow-flies metres; and the plan
made on straight lines × 1.3 (the default without a network), its km as claimed and its
same stop order driven on the roads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import itertools
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.matrix import HaversineProvider, TravelMatrix, haversine_m  # noqa: E402
from routing.model import BinStop, DisposalSite, Plan, PlanRequest, Site  # noqa: E402
from routing.network import describe, read_osm  # noqa: E402
from routing.places import BUNDLED_EXTRACT, TOWNS, street_points  # noqa: E402
from routing.roads import RoadProvider  # noqa: E402
from routing.solver import plan_routes  # noqa: E402
from routing.synth import RealPlaces, synthetic_request  # noqa: E402

COMMAND = ".venv/bin/python bench/routing_roads.py --write bench/results/routing_roads.md"
BINS_PER_TRUCK = 220  # as in the refuse-scale days of bench/routing_cvrplib.py

IMPORT_SNIPPET = """
import resource, sys, time
from pathlib import Path
from routing.network import load_network
started = time.perf_counter()
report = load_network(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - started
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure_import(extract: Path) -> tuple[float, float, float]:
    """(import seconds, peak MiB of the importing process, peak MiB of python + imports only)."""
    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_SNIPPET, str(extract), cache],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    seconds, peak_kib = done.stdout.split()
    baseline = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, osmium, scipy.sparse.csgraph, routing.network; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return float(seconds), int(peak_kib) / 1024, int(baseline.stdout) / 1024


def town_request(provider: RoadProvider, bins: int) -> PlanRequest:
    town = TOWNS["oakham"]
    places = street_points(provider.network, town, bins, seed=0)
    trucks = max(2, round(bins / BINS_PER_TRUCK))
    return synthetic_request(
        bins, trucks, seed=0, town=RealPlaces(town.depot, town.tip, tuple(places))
    )


def request_points(request: PlanRequest) -> list[tuple[float, float]]:
    places: list[Site | DisposalSite | BinStop] = [*request.depots, *request.tips, *request.bins]
    return [(p.lat, p.lon) for p in places]


def driven_m(plan: Plan, matrix: TravelMatrix, index: dict[tuple[float, float], int]) -> int:
    """The plan's stop order driven on ``matrix`` (breaks stay where the truck is)."""
    total = 0
    for route in plan.routes:
        if route.is_empty:
            continue
        places = [index[(s.lat, s.lon)] for s in route.stops]
        total += sum(int(matrix.distances_m[a, b]) for a, b in itertools.pairwise(places))
    return total


def leg_ratios(
    plan: Plan, matrix: TravelMatrix, index: dict[tuple[float, float], int]
) -> np.ndarray:
    ratios = []
    for route in plan.routes:
        for a, b in zip(route.stops, route.stops[1:], strict=False):
            i, j = index[(a.lat, a.lon)], index[(b.lat, b.lon)]
            straight = float(haversine_m([(a.lat, a.lon), (b.lat, b.lon)])[0, 1])
            # Legs under 20 m (neighbouring bins, breaks) say more about snapping than roads.
            if straight >= 20.0:
                ratios.append(matrix.distances_m[i, j] / straight)
    return np.asarray(ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extract", type=Path, default=BUNDLED_EXTRACT)
    parser.add_argument("--seconds", type=float, default=40.0, help="search limit of the day")
    parser.add_argument("--write", type=Path, help="write the Markdown results here")
    args = parser.parse_args()

    import_s, import_mib, base_mib = measure_import(args.extract)
    print(f"import {import_s:.2f} s, peak {import_mib:.0f} MiB", file=sys.stderr)
    network = read_osm(args.extract)
    counts = describe(network)

    matrix_rows = []
    matrices: dict[int, tuple[PlanRequest, TravelMatrix]] = {}
    for bins in (1000, 3000):
        provider = RoadProvider.from_network(network)
        request = town_request(provider, bins)
        points = request_points(request)
        started, cpu = time.perf_counter(), time.process_time()
        snaps = provider.snap(points)
        matrix = provider.compute_matrix(points)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        off = np.array([s.distance_m for s in snaps])
        matrices[bins] = (request, matrix)
        matrix_rows.append(
            f"| {bins} | {len(points)} | {seconds:.1f} | {cpu_s:.1f} | {np.median(off):.1f} "
            f"| {np.percentile(off, 90):.1f} | {off.max():.1f} |"
        )
        print(matrix_rows[-1], file=sys.stderr)

    request, matrix = matrices[3000]
    index = {p: i for i, p in enumerate(request_points(request))}
    provider = RoadProvider.from_network(network)
    started, cpu = time.perf_counter(), time.process_time()
    road_plan = plan_routes(request, time_limit_s=args.seconds, matrix_provider=provider)
    day_s, day_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    must = sum(1 for u in road_plan.unserved if u.must_collect)
    print(f"day {day_s:.1f} s, {road_plan.distance_m / 1000:.1f} km", file=sys.stderr)

    straight_plan = plan_routes(
        request, time_limit_s=args.seconds, matrix_provider=HaversineProvider()
    )
    claimed_m = straight_plan.distance_m
    on_roads_m = driven_m(straight_plan, matrix, index)
    ratios = leg_ratios(road_plan, matrix, index)

    lines = [
        f"Command: `{COMMAND}`",
        "",
        "# Routes on real roads (Rutland, OpenStreetMap)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared, so timings are noisy: one run each), "
        f"Python {platform.python_version()}. Map data © OpenStreetMap contributors, ODbL.",
        "",
        "## Network import",
        "",
        "| extract | drivable nodes kept | directed edges | nodes left out (not strongly "
        "connected) | import s | peak MiB (importer) | of which Python + libraries |",
        "|---|---|---|---|---|---|---|",
        f"| {args.extract.name} ({args.extract.stat().st_size / 1e6:.1f} MB) | {counts['nodes']} "
        f"| {counts['edges']} | {counts['dropped_nodes']} | {import_s:.2f} | {import_mib:.0f} "
        f"| {base_mib:.0f} |",
        "",
        "The import reads the file with pyosmium, keeps the largest strongly connected part and "
        "writes the cache; a second import of the same file is a cache read.",
        "",
        "## Road matrix (Oakham, bins along residential streets)",
        "",
        "Cold: no cached matrix. Places = bins + depot + tip. Snapping distance = metres from "
        "each place to its point on the road.",
        "",
        "| bins | places | matrix wall s | matrix CPU s | snap median m | snap p90 m "
        "| snap max m |",
        "|---|---|---|---|---|---|---|",
        *matrix_rows,
        "",
        f"## A 3,000-bin refuse day on the roads ({args.seconds:g} s search limit)",
        "",
        f"`plan_routes` with the road provider, default engine, "
        f"{len(request.vehicles)} trucks, one depot and one tip at Oakham's industrial sites. "
        "Wall time is the whole call: road matrix, search, street paths for every leg, "
        "validation.",
        "",
        "| bins | trucks used | km on roads | tip trips | unserved (must) | validator "
        "| matrix + build s | search s | wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| 3000 | {sum(1 for r in road_plan.routes if not r.is_empty)} "
        f"| {road_plan.distance_m / 1000:.1f} | {road_plan.tip_trips} "
        f"| {len(road_plan.unserved)} ({must}) "
        f"| {'no violations' if road_plan.is_valid else f'{len(road_plan.violations)} violations'} "
        f"| {road_plan.stats.model_build_s:.1f} | {road_plan.stats.search_s:.1f} "
        f"| {day_s:.1f} | {day_cpu_s:.1f} |",
        "",
        "## How wrong straight lines × 1.3 were",
        "",
        f"Per leg of the road plan (legs of 20 m or more crow-flies, n = {ratios.shape[0]}): "
        "road metres / straight-line metres.",
        "",
        "| median | p90 | max | share of legs above 1.3 |",
        "|---|---|---|---|",
        f"| {np.median(ratios):.2f} | {np.percentile(ratios, 90):.2f} | {ratios.max():.1f} "
        f"| {100 * (ratios > 1.3).mean():.0f} % |",
        "",
        "The same day planned without the network (straight lines × 1.3 at 25 km/h, the "
        "default), then its stop order driven on the roads:",
        "",
        "| plan | km claimed | km on the roads |",
        "|---|---|---|",
        f"| straight-line plan | {claimed_m / 1000:.1f} | {on_roads_m / 1000:.1f} "
        f"({100 * (on_roads_m - claimed_m) / claimed_m:+.0f} %) |",
        f"| road plan | {road_plan.distance_m / 1000:.1f} | {road_plan.distance_m / 1000:.1f} |",
        "",
        f"Peak memory of this whole benchmark process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.",
    ]
    text = "\n".join(lines) + "\n"
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

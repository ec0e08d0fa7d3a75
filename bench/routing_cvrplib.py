"""Benchmark the routing core on CVRPLIB, side by side with PyVRP and VROOM.

Every engine solves the same instances on the same rounded-Euclidean matrix (CVRPLIB's
convention), one run at a time and single-threaded, at fixed wall-clock limits. Costs are
recomputed from the returned routes, never taken from a solver. The markdown table goes to
stdout and to ``bench/results/routing_cvrplib.md`` together with the command line used.

With ``--refuse`` it also plans synthetic refuse days (tips, shifts, breaks) through
``plan_routes`` with each refuse engine, and checks every plan with the validator.

    .venv/bin/python bench/routing_cvrplib.py --seconds 10 30
    .venv/bin/python bench/routing_cvrplib.py --seconds 30 --refuse --refuse-bins 1000 3000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from routing.cvrp import pyvrp_cvrp_data, solve_cvrp  # noqa: E402
from routing.vrplib_io import CvrpInstance, read_cvrp, route_cost  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "cvrplib"
DEFAULT_OUT = REPO / "bench" / "results" / "routing_cvrplib.md"
ENGINES = ("ortools", "hybrid", "pyvrp", "vroom")
ENGINE_LABELS = {
    "ortools": "core ortools",
    "hybrid": "core hybrid",
    "pyvrp": "PyVRP",
    "vroom": "VROOM",
}

Solver = Callable[[CvrpInstance, float], list[list[int]]]


def _core(engine: str) -> Solver:
    def solve(instance: CvrpInstance, seconds: float) -> list[list[int]]:
        return solve_cvrp(instance, seconds, engine=engine)[1]

    return solve


def _pyvrp(instance: CvrpInstance, seconds: float) -> list[list[int]]:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    result = pyvrp.solve(pyvrp_cvrp_data(instance), MaxRuntime(seconds), seed=0, display=False)
    return [
        [activity.idx + 1 for activity in route.schedule() if activity.is_client()]
        for route in result.best.routes()
    ]


def _vroom(instance: CvrpInstance, seconds: float) -> list[list[int]]:
    import vroom

    problem = vroom.Input()
    problem.set_durations_matrix(profile="car", matrix_input=instance.distances)
    for vehicle in range(instance.num_customers):
        problem.add_vehicle(vroom.Vehicle(id=vehicle, start=0, end=0, capacity=[instance.capacity]))
    for node in range(1, instance.num_customers + 1):
        problem.add_job(vroom.Job(id=node, location=node, delivery=[int(instance.demands[node])]))
    solution = problem.solve(
        exploration_level=5, nb_threads=1, timeout=dt.timedelta(seconds=seconds)
    )
    steps = solution.routes
    routes = []
    for _, group in steps[steps["type"] == "job"].groupby("vehicle_id", sort=True):
        routes.append([int(i) for i in group["location_index"]])
    return routes


SOLVERS: dict[str, Solver] = {
    "ortools": _core("ortools"),
    "hybrid": _core("hybrid"),
    "pyvrp": _pyvrp,
    "vroom": _vroom,
}


def _check(instance: CvrpInstance, routes: list[list[int]]) -> bool:
    visited = sorted(n for r in routes for n in r)
    capacity_ok = all(int(instance.demands[r].sum()) <= instance.capacity for r in routes)
    return capacity_ok and visited == list(range(1, instance.num_customers + 1))


def run_cvrp(
    data: Path, seconds: Sequence[float], engines: Sequence[str], only: Sequence[str]
) -> list[str]:
    with (data / "bks.csv").open() as handle:
        bks = {row["instance"]: int(row["bks"]) for row in csv.DictReader(handle)}
    names = [n for n in bks if not only or n in only]
    lines: list[str] = []
    for limit in seconds:
        header = ["instance", "BKS"] + [ENGINE_LABELS[e] for e in engines]
        lines += [
            f"### {limit:g} s per run",
            "",
            "Cost (gap to BKS %, wall time s). Mean gap is over the six X instances.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        x_gaps: dict[str, list[float]] = {e: [] for e in engines}
        for name in names:
            instance = read_cvrp(data / f"{name}.vrp")
            cells = [name, str(bks[name])]
            for engine in engines:
                started = time.perf_counter()
                routes = SOLVERS[engine](instance, limit)
                wall = time.perf_counter() - started
                cost = route_cost(instance.distances, routes)
                gap = 100.0 * (cost - bks[name]) / bks[name]
                feasible = _check(instance, routes)
                flag = "" if feasible else " INFEASIBLE"
                cells.append(f"{cost} ({gap:.2f}%, {wall:.1f}s){flag}")
                if name.startswith("X-") and feasible:
                    x_gaps[engine].append(gap)
                print(
                    f"{limit:g}s {name} {engine}: {cost} gap {gap:.2f}% in {wall:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
            lines.append("| " + " | ".join(cells) + " |")
        means = [
            f"**{sum(g) / len(g):.2f}%**" if g else "n/a" for g in (x_gaps[e] for e in engines)
        ]
        lines += ["| **mean gap, X instances** | | " + " | ".join(means) + " |", ""]
    return lines


# A break-bound day: a district of 10 km radius driven at 12 km/h (rural lanes and town
# traffic), with a truck per 90 bins, so a full shift drives more than 4.5 h and the drivers'
# break rule binds; the validator then has breaks to prove.
SLOW_RADIUS_M = 10_000.0
SLOW_TRAFFIC_KMH = 12.0
SLOW_BINS_PER_TRUCK = 90


def run_refuse(sizes: Sequence[int], seconds: float) -> list[str]:
    from routing.matrix import HaversineProvider
    from routing.model import Plan
    from routing.solver import RefuseEngine, plan_routes
    from routing.synth import SynthParams, synthetic_request

    lines = [
        f"### Refuse-scale synthetic days ({seconds:g} s limit)",
        "",
        "One depot, one tip (15 min unload), 4 t / 25 m3 trucks, 07:00-15:00 shifts, 45 min break"
        " after at most 4.5 h of driving, 5 % of bins with time windows. Every engine runs"
        " through `plan_routes` with `time_limit_s` = the limit; `wall s` is the whole call"
        " (matrix, model build, search, route timing, validation). `feasible` is the validator's"
        " verdict on the returned plan; `gap` is distance against the shortest plan on the same"
        " day among those leaving the fewest must-collect bins unserved. The `slow` day is a"
        f" district of {SLOW_RADIUS_M / 1000:g} km radius driven at {SLOW_TRAFFIC_KMH:g} km/h"
        f" (instead of 5 km and 25 km/h) with a truck per {SLOW_BINS_PER_TRUCK} bins, so"
        " drivers need their break. Engines: **ortools** = the full OR-Tools model"
        " (cheapest arc + guided local search); **hybrid** = PyVRP reload routes for half the"
        " time, then the OR-Tools model from them, best validated plan kept; **pyvrp** = PyVRP's"
        " native reload depots, breaks reserved in the shift and inserted after solving.",
        "",
        "| day | bins | trucks | engine | km | gap | tip trips | unserved (must) | breaks "
        "| feasible | build s | search s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    days: list[tuple[str, int, int, float, float, tuple[RefuseEngine, ...]]] = []
    for bins in sizes:
        trucks = max(2, round(bins / 220))
        # The pure OR-Tools model finds no first solution within a minute past ~1,000 bins.
        engines: tuple[RefuseEngine, ...] = (
            ("ortools", "hybrid", "pyvrp") if bins <= 1000 else ("hybrid", "pyvrp")
        )
        days.append(("normal", bins, trucks, 5_000.0, 25.0, engines))
    largest = max(sizes)
    slow_trucks = max(2, round(largest / SLOW_BINS_PER_TRUCK))
    days.append(
        ("slow", largest, slow_trucks, SLOW_RADIUS_M, SLOW_TRAFFIC_KMH, ("hybrid", "pyvrp"))
    )
    for day, bins, trucks, radius_m, speed, engines in days:
        params = SynthParams(radius_m=radius_m)
        request = synthetic_request(bins, trucks, seed=0, params=params)
        provider = HaversineProvider(speed_kmh=speed)
        rows = []
        for engine in engines:
            started = time.perf_counter()
            plan = plan_routes(
                request, time_limit_s=seconds, engine=engine, matrix_provider=provider
            )
            rows.append((engine, plan, time.perf_counter() - started))

        # Distance only compares plans that do the same work: the shortest plan that leaves
        # no must-collect bin unserved (a plan that strands bins is shorter for that reason).
        def must_missed(plan: Plan) -> int:
            return sum(1 for u in plan.unserved if u.must_collect)

        fewest = min(must_missed(plan) for _, plan, _ in rows)
        best_m = min(plan.distance_m for _, plan, _ in rows if must_missed(plan) == fewest)
        for engine, plan, wall in rows:
            must = sum(1 for u in plan.unserved if u.must_collect)
            breaks = sum(1 for r in plan.routes for s in r.stops if s.kind == "break")
            verdict = "yes" if plan.is_valid else f"no ({len(plan.violations)} violations)"
            gap = 100.0 * (plan.distance_m - best_m) / best_m
            lines.append(
                f"| {day} | {bins} | {trucks} | {engine} | {plan.distance_m / 1000:.1f} "
                f"| {gap:+.1f}% | {plan.tip_trips} | {len(plan.unserved)} ({must}) | {breaks} "
                f"| {verdict} | {plan.stats.model_build_s:.1f} | {plan.stats.search_s:.1f} "
                f"| {wall:.1f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CVRPLIB folder")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--instances", nargs="*", default=[], help="only these instances")
    parser.add_argument("--skip-cvrp", action="store_true", help="run only --refuse")
    parser.add_argument("--refuse", action="store_true", help="also run refuse-scale days")
    parser.add_argument("--refuse-bins", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--refuse-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output file")
    parser.add_argument(
        "--append", action="store_true", help="add to --out instead of replacing it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    command = shlex.join([".venv/bin/python", "bench/routing_cvrplib.py", *sys.argv[1:]])
    lines = [
        "## Run" if args.append else "# Routing core on CVRPLIB",
        "",
        f"Command: `{command}`",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared, so timings are noisy), Python {platform.python_version()}."
        " Every solver single-threaded, one run at a time, same rounded-Euclidean matrix.",
        "",
    ]
    if not args.skip_cvrp:
        lines += [
            "Engines: **core ortools** = OR-Tools routing, matrix registered once,"
            " PATH_CHEAPEST_ARC + guided local search; **core hybrid** = PyVRP for 85 % of the"
            " budget, then OR-Tools GLS from its routes (`ReadAssignmentFromRoutes`); **PyVRP** ="
            " `pyvrp.solve` with `MaxRuntime` (this is also the core's `pyvrp` engine);"
            " **VROOM** = pyvroom, exploration level 5, one thread, timeout = the limit.",
            "",
        ]
        lines += run_cvrp(args.data.resolve(), args.seconds, args.engines, args.instances)
    if args.refuse:
        lines += run_refuse(args.refuse_bins, args.refuse_seconds)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.exists():
        text = args.out.read_text() + "\n" + text
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

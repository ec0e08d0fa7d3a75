"""``civic routes ...``: the routing core from the command line.

``vrplib`` solves a CVRPLIB instance (the benchmark's unit of work); ``synth`` plans a
synthetic refuse day at council scale. Commands that need the database (plan, show, export)
register themselves elsewhere on the same ``routes`` parser via :func:`routes_subparsers`.
Heavy imports (OR-Tools, PyVRP, numpy) happen inside the handlers so ``civic --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "routes_subparsers"]

ENGINE_CHOICES = ("ortools", "pyvrp", "hybrid")

_ROUTES_SUBPARSERS: list[Any] = []


def routes_subparsers() -> Any:
    """The ``civic routes`` subparsers object, for other modules to add commands to."""
    if not _ROUTES_SUBPARSERS:
        raise RuntimeError("routing.cli.register() has not been called")
    return _ROUTES_SUBPARSERS[-1]


def register(subparsers: Any) -> None:
    """Add ``civic routes`` and its subcommands to the main ``civic`` parser."""
    routes = subparsers.add_parser(
        "routes",
        help="plan refuse collection routes",
        description="Plan refuse collection routes and benchmark the routing core.",
    )
    commands = routes.add_subparsers(dest="routes_command", metavar="SUBCOMMAND", required=True)
    _ROUTES_SUBPARSERS.append(commands)

    vrplib_parser = commands.add_parser(
        "vrplib",
        help="solve a CVRPLIB .vrp instance",
        description=(
            "Solve a CVRPLIB instance with rounded Euclidean distances. Customer ids in the "
            "answer are the node numbers used in the file; the depot is left out."
        ),
    )
    vrplib_parser.add_argument("file", type=Path, metavar="FILE.vrp")
    vrplib_parser.add_argument("--seconds", type=float, default=10.0, help="time limit (s)")
    vrplib_parser.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default=None,
        help="solver engine (default: the best measured, see bench/results)",
    )
    vrplib_parser.add_argument("--seed", type=int, default=0, help="random seed (PyVRP)")
    vrplib_parser.add_argument(
        "--json", action="store_true", help='print {"cost": C, "routes": [[ids...], ...]}'
    )
    vrplib_parser.set_defaults(func=_vrplib_command)

    synth_parser = commands.add_parser(
        "synth",
        help="plan a synthetic refuse collection day",
        description=(
            "Scatter bins around a town centre, one depot and one tip, trucks of 4 t / 25 m3 "
            "on a 07:00-15:00 shift, and plan the day with tips and drivers' breaks."
        ),
    )
    synth_parser.add_argument("--bins", type=int, default=500, help="number of bins")
    synth_parser.add_argument("--trucks", type=int, default=4, help="number of trucks")
    synth_parser.add_argument("--seconds", type=float, default=30.0, help="search time (s)")
    synth_parser.add_argument("--seed", type=int, default=0, help="random seed for the bins")
    synth_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    synth_parser.add_argument("--geojson", type=Path, help="write routes as GeoJSON here")
    synth_parser.add_argument("--gpx", type=Path, help="write routes as GPX 1.1 here")
    synth_parser.add_argument("--csv", type=Path, help="write the driver sheet CSV here")
    synth_parser.set_defaults(func=_synth_command)


def _fail(message: str) -> int:
    print(f"civic routes: error: {message}", file=sys.stderr)
    return 2


def _vrplib_command(args: argparse.Namespace) -> int:
    from routing.cvrp import DEFAULT_ENGINE, solve_cvrp
    from routing.vrplib_io import read_cvrp

    if args.seconds <= 0:
        return _fail("--seconds must be positive")
    if not args.file.is_file():
        return _fail(f"no such file: {args.file}")
    try:
        instance = read_cvrp(args.file)
    except (ValueError, KeyError) as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    engine = args.engine or DEFAULT_ENGINE
    cost, routes = solve_cvrp(instance, args.seconds, engine=engine, seed=args.seed)
    file_routes = [[instance.node_ids[node] for node in route] for route in routes]
    if args.json:
        print(json.dumps({"cost": cost, "routes": file_routes}))
    else:
        print(
            f"{instance.name}: cost {cost} with {len(routes)} routes ({engine}, {args.seconds} s)"
        )
        for number, route in enumerate(file_routes, start=1):
            print(f"Route #{number}: {' '.join(map(str, route))}")
    return 0


def _synth_command(args: argparse.Namespace) -> int:
    from routing.export import write_csv, write_geojson, write_gpx
    from routing.solver import plan_routes
    from routing.synth import synthetic_request

    if args.bins < 1 or args.trucks < 1 or args.seconds <= 0:
        return _fail("--bins and --trucks must be >= 1 and --seconds positive")
    request = synthetic_request(args.bins, args.trucks, seed=args.seed)
    plan = plan_routes(request, time_limit_s=args.seconds)
    must_unserved = sum(1 for u in plan.unserved if u.must_collect)
    summary = {
        "bins": len(request.bins),
        "must_collect": sum(1 for b in request.bins if b.must_collect),
        "trucks_used": sum(1 for r in plan.routes if not r.is_empty),
        "km": round(plan.distance_m / 1000, 1),
        "tip_trips": plan.tip_trips,
        "breaks": sum(1 for r in plan.routes for s in r.stops if s.kind == "break"),
        "unserved": len(plan.unserved),
        "unserved_must_collect": must_unserved,
        "violations": len(plan.violations),
        "model_build_s": plan.stats.model_build_s,
        "search_s": plan.stats.search_s,
        "status": plan.stats.status,
    }
    if args.geojson:
        write_geojson(plan, args.geojson)
    if args.gpx:
        write_gpx(plan, args.gpx)
    if args.csv:
        write_csv(plan, args.csv)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['bins']} bins ({summary['must_collect']} must-collect), "
            f"{summary['trucks_used']}/{args.trucks} trucks used"
        )
        print(
            f"{summary['km']} km, {summary['tip_trips']} trips to tip, {summary['breaks']} breaks"
        )
        print(
            f"unserved: {summary['unserved']} ({must_unserved} must-collect); "
            f"validator violations: {summary['violations']}"
        )
        print(
            f"model build {summary['model_build_s']:.2f} s, search {summary['search_s']:.2f} s "
            f"({summary['status']})"
        )
        for route in plan.routes:
            if route.is_empty:
                continue
            print(
                f"  {route.vehicle_id}: {len(route.bin_ids)} bins, {route.tip_trips} tips, "
                f"{route.distance_m / 1000:.1f} km, {route.duration_s / 3600:.2f} h"
            )
    return 1 if plan.violations or must_unserved else 0

"""``civic routes ...``: the routing core from the command line.

``plan`` forecasts a stream's bins from the store, plans the day, validates and stores the plan;
``show``, ``export``, ``list`` and ``replan`` work on stored plans. ``vrplib`` solves a CVRPLIB
instance (the benchmark's unit of work); ``synth`` plans a synthetic refuse day at council
scale. Heavy imports (OR-Tools, PyVRP, numpy, psycopg) happen inside the handlers so
``civic --help`` stays fast. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from store.db import connect_configured

if TYPE_CHECKING:
    from routing.fleet import FleetConfig
    from routing.plans import StoredPlan

__all__ = ["register"]

# A solve longer than this gets a "still solving" line on stderr, and again at this interval,
# so an operator watching a minute-long plan knows it is working.
PROGRESS_INTERVAL_S: Final = 10.0

ENGINE_CHOICES = ("ortools", "pyvrp", "hybrid")

_ROUTES_SUBPARSERS: list[Any] = []


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
    synth_parser.add_argument(
        "--network",
        type=Path,
        metavar="FILE.osm.pbf",
        help="plan on this extract's roads, bins on a real town's streets (see --town)",
    )
    synth_parser.add_argument(
        "--town",
        choices=("oakham", "uppingham"),
        default="oakham",
        help="with --network: the town on the bundled Rutland extract",
    )
    synth_parser.set_defaults(func=_synth_command)
    _register_store_commands(commands)
    _register_network_commands(commands)


def _register_network_commands(commands: Any) -> None:
    network = commands.add_parser(
        "network",
        help="the road network routes are planned on",
        description=(
            "Road networks from OpenStreetMap extracts. Plans use one when the fleet file names "
            'it ([travel] network = "FILE.osm.pbf"); otherwise straight lines x road factor.'
        ),
    )
    network_commands = network.add_subparsers(
        dest="network_command", metavar="SUBCOMMAND", required=True
    )
    import_parser = network_commands.add_parser(
        "import",
        help="read an OpenStreetMap extract into the road network cache",
        description=(
            "Read the drivable roads (highway classes, oneway, maxspeed with class defaults; "
            "turn-free: no turn restrictions or costs) of an .osm.pbf or .osm file, keep the "
            "largest strongly connected part and cache it under the data directory, keyed by "
            "the file's SHA-256 (the network version). Map data (c) OpenStreetMap "
            "contributors, ODbL."
        ),
    )
    import_parser.add_argument("file", type=Path, metavar="FILE.osm.pbf")
    import_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    import_parser.set_defaults(func=_network_import_command)


def _network_import_command(args: argparse.Namespace) -> int:
    from common.errors import CliError
    from common.settings import get_settings
    from routing.network import ATTRIBUTION, NetworkImportError, describe, load_network

    cache_dir = get_settings().data_dir / "roads" / "networks"
    try:
        report = load_network(args.file, cache_dir)
    except NetworkImportError as exc:
        raise CliError(str(exc)) from exc
    summary = {
        **describe(report.network),
        "file": str(args.file),
        "cache_file": str(report.cache_file),
        "cached": report.cached,
        "seconds": round(report.seconds, 2),
        "attribution": ATTRIBUTION,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    source = "from the cache" if report.cached else "read"
    print(
        f"road network {summary['version'][:16]} ({source} in {summary['seconds']} s): "
        f"{summary['nodes']} nodes, {summary['edges']} one-way edges, "
        f"{summary['km_of_road']} km of carriageway (a two-way street counts twice)"
    )
    print(
        f"  left out {summary['dropped_nodes']} nodes not reachable both ways from the rest "
        f"(private or cut-off roads); turn-free model"
    )
    print(f"  cache: {summary['cache_file']}")
    print(f"  map data {ATTRIBUTION}, ODbL 1.0")
    return 0


def _register_store_commands(commands: Any) -> None:
    plan_parser = commands.add_parser(
        "plan",
        help="plan a day's collection for one waste stream from the stored readings",
        description=(
            "Forecast every bin of the stream from its stored readings, select the stops (bins "
            "forecast to reach their threshold by the end of the shift, or overflowing, are "
            "must-collect; fuller bins are optional), plan the routes, check them with the "
            "independent validator and store the plan. Prints a summary per truck and the plan "
            "id; exits 1 if the plan has violations or leaves must-collect bins unserved."
        ),
    )
    plan_parser.add_argument(
        "--date", required=True, type=_date, help="plan day, YYYY-MM-DD (local)"
    )
    plan_parser.add_argument("--stream", required=True, help="waste stream, e.g. general")
    plan_parser.add_argument("--seconds", type=float, default=30.0, help="search time limit (s)")
    plan_parser.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default=None,
        help="solver engine (default: measured best)",
    )
    plan_parser.add_argument(
        "--fleet",
        type=Path,
        help="fleet TOML merged over the defaults (default: CIVIC_FLEET_FILE, if set)",
    )
    plan_parser.add_argument(
        "--as-of",
        help="data cut-off (RFC 3339; default now): plan as it would have been planned then",
    )
    plan_parser.add_argument(
        "--urgent", nargs="+", default=[], metavar="BIN", help="bins that must be collected"
    )
    plan_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    plan_parser.set_defaults(func=_plan_command)

    show_parser = commands.add_parser(
        "show", help="show a stored plan", description="Show a stored plan, stop by stop."
    )
    show_parser.add_argument("plan_id", metavar="ID")
    show_parser.add_argument("--format", choices=("table", "json"), default="table")
    show_parser.set_defaults(func=_show_command)

    export_parser = commands.add_parser(
        "export",
        help="export a stored plan for crews or map tools",
        description="Write a stored plan as GeoJSON, GPX 1.1 or a CSV driver sheet.",
    )
    export_parser.add_argument("plan_id", metavar="ID")
    export_parser.add_argument("--format", choices=("geojson", "gpx", "csv"), required=True)
    export_parser.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    export_parser.set_defaults(func=_export_command)

    list_parser = commands.add_parser(
        "list", help="list stored plans", description="List the latest stored plans."
    )
    list_parser.add_argument("--date", type=_date, help="only plans for this day")
    list_parser.add_argument("--limit", type=int, default=20)
    list_parser.set_defaults(func=_list_command)

    collected = commands.add_parser(
        "collected",
        help="import crews' collection records (CSV: device_id,ts[,crew])",
        description=(
            "Record which bins crews emptied and when (round sheets, in-cab app exports). The "
            "alerts service checks them against the fill sensors: an emptying with no record, "
            "and a recorded collection of a nearly empty bin. All or nothing: a bad line or an "
            "unknown bin fails the import with every problem listed."
        ),
    )
    collected.add_argument("file", help="CSV file, or - for standard input")
    collected.add_argument("--source", default="import", help="where the records came from")
    collected.set_defaults(func=_collected_command)

    replan_parser = commands.add_parser(
        "replan",
        help="re-plan the rest of a stored plan's day",
        description=(
            "Re-solve what is left of a stored plan's day at --at: trucks are taken to have "
            "kept to plan until then (done stops never move), urgent bins are added as "
            "must-collect, and trucks out of service drop out. Stores a new plan whose parent "
            "is ID and prints its summary."
        ),
    )
    replan_parser.add_argument("plan_id", metavar="ID")
    replan_parser.add_argument("--at", required=True, help="local clock time HH:MM of re-planning")
    replan_parser.add_argument("--urgent", nargs="+", default=[], metavar="BIN")
    replan_parser.add_argument(
        "--out-of-service", nargs="+", default=[], metavar="VEHICLE", help="broken-down trucks"
    )
    replan_parser.add_argument("--seconds", type=float, default=10.0, help="search time limit (s)")
    replan_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    replan_parser.set_defaults(func=_replan_command)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _progress(message: str) -> None:
    print(f"civic routes: {message}", file=sys.stderr, flush=True)


@contextmanager
def _ticker(limit_s: float) -> Iterator[None]:
    """Print "still solving" lines on stderr every PROGRESS_INTERVAL_S until the block ends."""
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(PROGRESS_INTERVAL_S):
            _progress(f"still solving: {time.monotonic() - started:.0f} s of up to {limit_s:g} s")

    thread = threading.Thread(target=tick, name="routes-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _load_fleet(path: Path | None) -> FleetConfig:
    from common.errors import CliError
    from routing.fleet import FleetConfigError, configured_fleet, load_fleet

    try:
        return load_fleet(path) if path is not None else configured_fleet()
    except FleetConfigError as exc:
        raise CliError(str(exc)) from exc


def _load_stored(conn: Any, plan_id: str) -> StoredPlan:
    from common.errors import CliError
    from routing.plans import PlanNotFoundError, load_plan

    try:
        return load_plan(conn, plan_id)
    except PlanNotFoundError as exc:
        raise CliError(str(exc)) from exc


def _print_summary(summary: dict[str, Any]) -> None:
    from routing.export import clock

    print(
        f"plan {summary['plan_id']}: {summary['km']} km, {summary['tip_trips']} tip trips "
        f"({summary['engine']}, build {summary['model_build_s']:.1f} s, search "
        f"{summary['search_s']:.1f} s)"
    )
    for key in ("bins_forecast", "must_collect", "optional", "left_out"):
        if key in summary:
            print(f"  {key.replace('_', ' ')}: {summary[key]}")
    print(f"  {'vehicle':<18} {'bins':>5} {'km':>7} {'time':>8} {'tips':>5} {'breaks':>6}")
    for v in summary["vehicles"]:
        print(
            f"  {v['vehicle']:<18} {v['bins']:>5} {v['km']:>7.1f} "
            f"{clock(round(v['hours'] * 3600))[:5]:>8} {v['tip_trips']:>5} {v['breaks']:>6}"
        )
    unserved = summary["unserved"]
    must = summary["unserved_must_collect"]
    print(f"  unserved: {len(unserved)} ({must} must-collect)")
    for u in sorted(unserved, key=lambda u: not u["must_collect"])[:20]:
        flag = "MUST " if u["must_collect"] else ""
        print(f"    {flag}{u['bin']}: {u['reason']}")
    if len(unserved) > 20:
        print(f"    ... and {len(unserved) - 20} more (civic routes show {summary['plan_id']})")
    if summary["violations"]:
        print(f"  VALIDATOR: {len(summary['violations'])} violation(s)")
        for message in summary["violations"][:10]:
            print(f"    {message}")
    else:
        print("  validator: no violations")


def _plan_command(args: argparse.Namespace) -> int:
    from common.cli import when
    from common.errors import CliError
    from routing.errors import RoutingError
    from routing.plans import plan_day, plan_summary

    if args.seconds <= 0:
        raise CliError("--seconds must be positive")
    fleet = _load_fleet(args.fleet)
    as_of = when(args.as_of) if args.as_of else dt.datetime.now(dt.UTC)
    shift_end = fleet.local_time(args.date, fleet.shift.end_s)
    if shift_end <= as_of:
        raise CliError(
            f"the {args.date} shift ends before the data cut-off; pass --as-of to plan a past day"
        )
    with connect_configured() as conn, _ticker(args.seconds):
        try:
            day = plan_day(
                conn,
                fleet,
                args.date,
                stream=args.stream,
                as_of=as_of,
                time_limit_s=args.seconds,
                engine=args.engine,
                urgent=set(args.urgent),
                progress=_progress,
            )
        except RoutingError as exc:
            raise CliError(str(exc)) from exc
    if not day.forecast_bins:
        _progress(f"no {args.stream} bin has readings in the last four weeks before the cut-off")
    selection = day.selection
    summary = plan_summary(
        day.plan_id,
        day.plan,
        {
            "date": args.date.isoformat(),
            "stream": args.stream,
            "bins_forecast": day.forecast_bins,
            "must_collect": selection.must_collect,
            "optional": len(selection.stops) - selection.must_collect,
            "left_out": selection.left_out,
        },
    )
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 1 if summary["violations"] or summary["unserved_must_collect"] else 0


def _show_command(args: argparse.Namespace) -> int:
    from routing.export import clock
    from routing.plans import plan_summary, plan_to_dict

    with connect_configured() as conn:
        stored = _load_stored(conn, args.plan_id)
    if args.format == "json":
        document = {
            "plan_id": stored.id,
            "date": stored.plan_date.isoformat(),
            "stream": stored.stream,
            "created_at": stored.created_at.isoformat(),
            "as_of": stored.as_of.isoformat(),
            "parent_id": stored.parent_id,
            "engine": stored.engine,
            "time_limit_s": stored.time_limit_s,
            **plan_to_dict(stored.plan),
            "selection": list(stored.selection),
        }
        print(json.dumps(document, indent=1))
        return 0
    extra = {"date": stored.plan_date.isoformat(), "stream": stored.stream}
    _print_summary(plan_summary(stored.id, stored.plan, extra))
    if stored.parent_id:
        print(f"  re-plan of {stored.parent_id}")
    for route in stored.plan.routes:
        if route.is_empty:
            continue
        print(f"\n{route.vehicle_id}")
        print(f"  {'seq':>3} {'stop':<16} {'kind':<6} {'eta':>5} {'leave':>5} {'load kg':>8}  why")
        for seq, stop in enumerate(route.stops):
            why = (stored.reason_for(stop.stop_id) or "") if stop.kind == "bin" else ""
            print(
                f"  {seq:>3} {stop.stop_id:<16} {stop.kind:<6} {clock(stop.arrival_s)[:5]:>5} "
                f"{clock(stop.departure_s)[:5]:>5} {stop.load_kg:>8.0f}  {why}"
            )
    return 0


def _export_command(args: argparse.Namespace) -> int:
    from routing.plans import export_stored

    with connect_configured() as conn:
        stored = _load_stored(conn, args.plan_id)
    text = export_stored(stored, args.format)
    if args.output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        args.output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        _progress(f"wrote {args.output}")
    return 0


def _list_command(args: argparse.Namespace) -> int:
    from routing.plans import recent_plans

    with connect_configured() as conn:
        rows = recent_plans(conn, plan_date=args.date, limit=args.limit)
    for row in rows:
        parent = f" (re-plan of {row['parent_id']})" if row["parent_id"] else ""
        verdict = "valid" if row["valid"] else "INVALID"
        print(
            f"{row['id']}  {row['distance_m'] / 1000:7.1f} km  {row['bins_offered']:>5} bins "
            f"({row['bins_must']} must, {row['unserved_must']} unserved)  {verdict}  "
            f"{row['engine']}{parent}"
        )
    return 0


def _collected_command(args: argparse.Namespace) -> int:
    from common.errors import CliError
    from routing.collections import import_collections, parse_collections
    from store.registry import RegistryImportError

    stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", newline="")  # noqa: SIM115
    try:
        with connect_configured() as conn:
            result = import_collections(conn, parse_collections(stream), source=args.source)
    except RegistryImportError as exc:
        for error in exc.errors:
            print(f"{args.file}: {error}", file=sys.stderr)
        raise CliError(str(exc)) from exc
    finally:
        if stream is not sys.stdin:
            stream.close()
    print(f"collection records: {result.new} new of {result.rows}")
    return 0


def _replan_command(args: argparse.Namespace) -> int:
    from common.errors import CliError
    from routing.errors import RoutingError
    from routing.plans import plan_summary, replan_stored

    try:
        hours, minutes = (int(part) for part in args.at.split(":"))
    except ValueError as exc:
        raise CliError(f"--at {args.at!r} is not a clock time HH:MM") from exc
    if args.seconds <= 0:
        raise CliError("--seconds must be positive")
    with connect_configured() as conn, _ticker(args.seconds):
        stored = _load_stored(conn, args.plan_id)
        vehicles = {v.id for v in stored.request.vehicles}
        unknown = sorted(set(args.out_of_service) - vehicles)
        if unknown:
            raise CliError(f"unknown vehicle(s): {', '.join(unknown)}")
        _progress(f"re-planning {stored.id} from {args.at}")
        try:
            result = replan_stored(
                conn,
                stored.id,
                at_s=hours * 3600 + minutes * 60,
                urgent=args.urgent,
                out_of_service=set(args.out_of_service),
                time_limit_s=args.seconds,
            )
        except (RoutingError, ValueError) as exc:
            raise CliError(str(exc)) from exc
    summary = plan_summary(
        result.plan_id,
        result.plan,
        {"parent_id": result.parent_id, "date": stored.plan_date.isoformat()},
    )
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
        print(f"  re-plan of {result.parent_id}")
    return 1 if summary["violations"] or summary["unserved_must_collect"] else 0


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
    provider = None
    town = None
    if args.network is not None:
        from routing.places import TOWNS, street_points
        from routing.roads import road_provider
        from routing.synth import RealPlaces

        provider = road_provider(args.network.resolve())
        place = TOWNS[args.town]
        bins = street_points(provider.network, place, args.bins, seed=args.seed)
        town = RealPlaces(place.depot, place.tip, tuple(bins))
    request = synthetic_request(args.bins, args.trucks, seed=args.seed, town=town)
    plan = plan_routes(request, time_limit_s=args.seconds, matrix_provider=provider)
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

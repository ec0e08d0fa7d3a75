"""``civic demo``: the whole platform on its embedded defaults, end to end.

Starts the local services, migrates, imports a demo estate of ~1,000 bins and ~300 homes,
simulates days of history through the real MQTT → ingest path, and prints where to look next.
The estate is in Oakham, on its real streets from the bundled OpenStreetMap extract of Rutland,
and routes are planned on its roads; ``--place leicester`` gives the older scattered estate
around Leicester with straight-line travel estimates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import CivicError

if TYPE_CHECKING:
    from common.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole platform on a simulated town",
        description=(
            "Services up, migrate, import a demo estate (bins and homes on Oakham's streets, "
            "routes on its roads; or scattered around Leicester with --place leicester), simulate "
            "history with a few faults through MQTT ingest, then summarise. On the project's "
            "own local services a re-run starts from an empty history (--keep-history to add "
            "to it); a database given by CIVIC_DATABASE_URL is never cleared."
        ),
    )
    parser.add_argument(
        "--keep-history",
        action="store_true",
        help="keep what an earlier demo stored (readings, alerts, plans) instead of clearing it",
    )
    parser.add_argument(
        "--place",
        choices=("oakham", "leicester"),
        default="oakham",
        help="oakham: real streets and roads (OpenStreetMap); leicester: scattered, straight lines",
    )
    parser.add_argument("--bins", type=int, default=1000)
    parser.add_argument("--homes", type=int, default=300)
    parser.add_argument("--history", default="2d", help="simulated history to generate")
    parser.add_argument("--interval", default="30m", help="device reporting interval")
    parser.add_argument("--route-seconds", type=float, default=20.0, help="route search time limit")
    parser.set_defaults(func=run)


QUIET_S = 5.0  # ingest commits within a second of receiving; five quiet seconds mean drained
DRAIN_LIMIT_S = 600.0  # the demo's history drains in well under a minute on a laptop

_DEMO_TABLES = (
    "readings",
    "deadletters",
    "device_status",
    "condition_events",
    "alert_checkpoints",
    "alert_evaluator",
    "alert_shards",
    "alerts",
    "bin_forecast_instants",
    "notifications",
    "commands",
    "collection_records",
    "route_plans",
)


def _civic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A ``civic`` command against the demo's services, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "civic.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


@dataclass(frozen=True)
class _Demo:
    """Where the demo's services are and where it writes its files."""

    db_url: str
    broker_url: str
    demo_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CIVIC_DATABASE_URL": self.db_url, "CIVIC_MQTT_URL": self.broker_url}

    @property
    def estate_csv(self) -> Path:
        return self.demo_dir / "estate.csv"

    @property
    def fleet_file(self) -> Path:
        return self.demo_dir / "fleet.toml"

    @property
    def round_sheet(self) -> Path:
        return self.demo_dir / "round_sheet.csv"


def run(args: argparse.Namespace) -> int:
    from common.cli import duration
    from common.settings import get_settings

    settings = get_settings()
    demo = _start_services(settings)
    _prepare_schema(demo, clear=not settings.database_url and not args.keep_history)
    fleet = _import_estate(demo, args.bins, args.homes, args.place)
    _provision_devices(demo)
    history = duration(args.history).total_seconds()
    interval = duration(args.interval).total_seconds()
    _step(f"simulating {args.history} of history every {args.interval} through MQTT ingest")
    sent, stored = _simulate(demo, args.bins, args.homes, history, interval)
    _show_store(demo)
    _show_alerts(demo, history)
    _show_routes(demo, args.route_seconds, fleet)
    _create_users(demo)
    _where_to_look(demo, fleet)
    # More than sent is fine: a re-run also drains what its persistent session had queued.
    return 0 if stored >= sent else 1


def _start_services(settings: Settings) -> _Demo:
    from common.services import LocalServices
    from common.settings import database_url, mqtt_url

    _step("services")
    if not (settings.database_url and settings.mqtt_url):
        state = LocalServices(settings.data_dir).up()
        print(f"PostgreSQL {state.database_url}\nMosquitto  {state.mqtt_url}")
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    return _Demo(database_url(settings), mqtt_url(settings), demo_dir)


def _prepare_schema(demo: _Demo, *, clear: bool) -> None:
    from store.db import connect, migrate

    _step("schema")
    mode, applied = migrate(demo.db_url)
    print(f"storage mode: {mode} ({'applied ' + ', '.join(applied) if applied else 'up to date'})")
    if clear:
        with connect(demo.db_url) as conn:
            # Two simulated histories over the same days would interleave (and every
            # device's message counter would look like lost messages).
            conn.execute(f"TRUNCATE {', '.join(_DEMO_TABLES)} CASCADE")
        print("cleared the earlier demo's history (--keep-history keeps it)")


def _import_estate(demo: _Demo, bins: int, homes: int, place: str) -> Path | None:
    """Registers the estate; returns the demo's fleet file when it plans on roads."""
    from device_sim.estate import TOWN, generate_estate, write_estate_csv
    from store.db import connect
    from store.registry import parse_device_row, upsert_devices

    fleet = None
    if place == "leicester":
        _step(f"demo estate: {bins} bins and {homes} homes in {TOWN}")
        estate = generate_estate(bins, homes, seed=1)
    else:
        estate, fleet = _real_town_estate(demo, place, bins, homes)
    write_estate_csv(estate, demo.estate_csv)
    with connect(demo.db_url) as conn:
        added, updated = upsert_devices(conn, [parse_device_row(r) for r in estate])
    print(f"registry: {added} added, {updated} updated  (file: {demo.estate_csv})")
    return fleet


def _real_town_estate(
    demo: _Demo, place: str, bins: int, homes: int
) -> tuple[list[dict[str, str]], Path]:
    """Bins and homes at kerbside points of the town's residential streets; depot and tip at
    its industrial sites; a fleet file that plans on the extract's roads."""
    from device_sim.estate import RealPlaces, generate_estate
    from routing.network import ATTRIBUTION
    from routing.places import BUNDLED_EXTRACT, TOWNS, street_points
    from routing.roads import road_provider

    town = TOWNS[place]
    _step(f"demo estate: {bins} bins and {homes} homes on {town.name}'s streets")
    started = time.monotonic()
    network = road_provider(BUNDLED_EXTRACT).network
    print(
        f"road network: {BUNDLED_EXTRACT.name}, {network.node_count:,} junctions and bends, "
        f"ready in {time.monotonic() - started:.1f} s (map data {ATTRIBUTION}, ODbL)"
    )
    places = RealPlaces(
        town=town.name,
        centre=town.centre,
        bins=street_points(network, town, bins, seed=1),
        homes=street_points(network, town, homes, seed=2),
        streets=town.streets,
    )
    demo.fleet_file.write_text(
        "\n".join(
            [
                f"# {town.name} demo fleet, written by `civic demo`: depot and tip at industrial",
                "# sites of the OpenStreetMap extract, routes planned on its roads.",
                "[[depots]]",
                f'id = "{town.depot_id}"',
                f"lat = {town.depot[0]}",
                f"lon = {town.depot[1]}",
                "",
                "[[tips]]",
                f'id = "{town.tip_id}"',
                f"lat = {town.tip[0]}",
                f"lon = {town.tip[1]}",
                "unload_minutes = 15",
                "streams = []",
                "",
                "[travel]",
                f'network = "{BUNDLED_EXTRACT}"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return generate_estate(bins, homes, seed=1, places=places), demo.fleet_file


def _provision_devices(demo: _Demo) -> None:
    """Every demo device gets its own broker password and command key, shown once."""
    _step("device credentials")
    out = demo.demo_dir / "device-credentials.jsonl"
    result = _civic(demo.env, "devices", "credentials", "--all", "--out", str(out))
    if result.returncode != 0:
        raise CivicError(f"civic devices credentials failed: {result.stderr.strip()}")
    print(result.stderr.strip())
    print(
        f"new credentials (password and command key per device, readable only by you): {out}\n"
        "the simulator publishes as a gateway with its own service account; a real device "
        "logs in with its own credentials over TLS"
    )


def _simulate(
    demo: _Demo, bins: int, homes: int, history_s: float, interval_s: float
) -> tuple[int, int]:
    """History through the simulator, MQTT and ingest; (readings sent, readings stored)."""
    # The default client id: the same persistent session a later `civic ingest` resumes.
    # Ingest runs until the store has stopped growing after the simulator finished: an idle
    # timeout alone can fire before a busy machine has even started the simulator.
    ingest_args = ["ingest", "--stats", "--stats-interval", "15"]
    ingest = subprocess.Popen(
        [sys.executable, "-m", "civic.cli", *ingest_args],
        env=demo.env,
        stdout=subprocess.PIPE,
        stderr=(demo.demo_dir / "ingest.log").open("w"),
        text=True,
    )
    # Let ingest subscribe first, so its session queues everything (on a busy machine
    # starting it can take several seconds).
    log = demo.demo_dir / "ingest.log"
    deadline = time.monotonic() + 60
    while "mqtt connected" not in log.read_text() and time.monotonic() < deadline:
        if ingest.poll() is not None:
            raise CivicError(f"civic ingest stopped at once; see {log}")
        time.sleep(0.2)
    time.sleep(1)
    faults = ["--malformed-pct", "0.5", "--duplicate-pct", "0.5", "--late-pct", "1"]
    sim = _civic(
        demo.env,
        "sim",
        *("--bins", str(bins), "--homes", str(homes), "--estate", str(demo.estate_csv)),
        *("--interval", f"{interval_s:.0f}s", "--duration", f"{history_s:.0f}s"),
        *("--speed", str(10**7), *faults, "--offline-pct", "5"),
        *("--client-id", "civic-demo-sim", "--round-sheet", str(demo.round_sheet)),
    )
    sent = json.loads(sim.stdout.strip().splitlines()[-1]) if sim.stdout.strip() else {}
    _wait_until_stored(demo, ingest)
    ingest.send_signal(signal.SIGTERM)
    ingest_out, _ = ingest.communicate(timeout=600)
    stats = [json.loads(x) for x in ingest_out.splitlines() if x.startswith("{")]
    final = stats[-1] if stats else {}
    print(
        f"simulator: {sent.get('published', 0):,} messages, "
        f"{sent.get('readings_total', 0):,} readings, {sent.get('malformed_total', 0)} "
        f"malformed, {sent.get('duplicates', 0)} duplicates"
    )
    print(
        f"ingest:    {final.get('stored', 0):,} stored, {final.get('duplicates', 0)} "
        f"duplicates, rejected {final.get('rejected', {})}, "
        f"batch latency p99 {final.get('batch_latency_p99_s')} s"
    )
    return int(sent.get("readings_total", 1)), int(final.get("stored", 0))


def _wait_until_stored(demo: _Demo, ingest: subprocess.Popen[str]) -> None:
    """Until the readings and dead letters stop growing for QUIET_S (ingest has drained what
    the broker held for it), or DRAIN_LIMIT_S passes."""
    from store.db import connect

    deadline = time.monotonic() + DRAIN_LIMIT_S
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline and ingest.poll() is None:
        with connect(demo.db_url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM deadletters) AS n"
            ).fetchone()
        count = int(row["n"]) if row else 0
        if count != last:
            last, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since > QUIET_S:
            return
        time.sleep(1)


def _show_store(demo: _Demo) -> None:
    from store.db import connect, info

    _step("what is in the store")
    summary = info(demo.db_url)
    print(json.dumps({k: summary[k] for k in ("mode", "devices", "readings", "deadletters")}))
    with connect(demo.db_url) as conn:
        full = conn.execute(
            "SELECT count(*) AS n FROM devices d JOIN LATERAL (SELECT fill_pct FROM readings r"
            " WHERE r.device_id = d.device_id ORDER BY ts DESC LIMIT 1) last ON true"
            " WHERE d.kind = 'bin' AND last.fill_pct >= d.threshold_pct"
        ).fetchone()
        damp = conn.execute(
            "SELECT count(*) AS n FROM (SELECT device_id FROM readings_rollup_hourly"
            " WHERE bucket > now() - interval '1 day' AND rh_pct_n > 0"
            " GROUP BY device_id HAVING sum(rh_pct_sum) / sum(rh_pct_n) > 70) damp"
        ).fetchone()
    print(f"bins at or over their collection threshold now: {full['n'] if full else 0}")
    print(f"homes averaging above 70 % RH over the last day: {damp['n'] if damp else 0}")


def _show_alerts(demo: _Demo, history_s: float) -> None:
    env = demo.env
    _step("alerts for housing officers and waste crews")
    # The crews' sheets for the simulated rounds (a few left off, as happens) come in first,
    # so emptyings the sensors saw are checked against them.
    collected = _civic(env, "routes", "collected", str(demo.round_sheet))
    print((collected.stdout or collected.stderr).strip()[-500:])
    alerts = _civic(env, "alerts", "backfill", "--since", f"{history_s:.0f}s")
    print((alerts.stdout or alerts.stderr).strip()[-1500:])
    listing = _civic(
        env, "alerts", "list", "--state", "active", "--limit", "100000", "--format", "json"
    )
    active = json.loads(listing.stdout) if listing.returncode == 0 and listing.stdout else []
    _print_alert_summary(demo, active, history_s)


# Alerts an officer's queue holds: ``watch`` is advice, listed but not work.
_QUEUE_SEVERITIES = ("act", "urgent", "emergency")


def _print_alert_summary(demo: _Demo, active: list[dict[str, Any]], history_s: float) -> None:
    from store.db import connect

    by_type: dict[str, dict[str, int]] = {}
    for alert in active:
        counts = by_type.setdefault(alert["alert_type"], {})
        counts[alert["severity"]] = counts.get(alert["severity"], 0) + 1
    print("active alerts by type and severity:")
    for alert_type, counts in sorted(by_type.items()):
        print(f"  {alert_type:<22} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    with connect(demo.db_url) as conn:
        homes = conn.execute(
            "SELECT count(DISTINCT uprn) AS n FROM devices WHERE kind = 'env'"
        ).fetchone()
    n_homes = homes["n"] if homes else 0
    weeks = max(history_s / (7 * 86_400), 1 / 7)
    home_alerts = [a for a in active if a["subject_kind"] == "home"]
    queue = [a for a in home_alerts if a["severity"] in _QUEUE_SEVERITIES]
    clocks = [a for a in home_alerts if a.get("statutory_clock_started_at")]
    if n_homes:
        per_week = 1000 / n_homes / weeks
        print(
            f"officer workload: {len(queue)} home alerts at act or above for {n_homes} homes "
            f"({len(queue) * per_week:.0f} per 1,000 homes a week), {len(clocks)} Awaab's Law "
            f"clocks ({len(clocks) * per_week:.1f} per 1,000 homes a week); "
            f"{len(home_alerts) - len(queue)} watch-level advice"
        )


def route_day(fleet: Path | None, now: dt.datetime | None = None) -> str:
    """The next shift the crews have not finished: today's until it ends, else the next
    working day's (a demo run in the evening or at a weekend plans the coming round)."""
    from routing.fleet import load_fleet

    config = load_fleet(fleet)
    now = now or dt.datetime.now(dt.UTC)
    day = now.astimezone(config.zone).date()
    if (
        day.weekday() not in config.working_days
        or config.local_time(day, config.shift.end_s) <= now
    ):
        day = config.next_working_day(day)
    return day.isoformat()


def _show_routes(demo: _Demo, seconds: float, fleet: Path | None) -> None:
    on = "on the roads, " if fleet else ""
    day = route_day(fleet)
    _step(f"general-waste routes for {day}, the next shift ({on}up to {seconds:.0f} s of search)")
    routes = _civic(
        demo.env,
        "routes",
        "plan",
        "--date",
        day,
        "--stream",
        "general",
        "--seconds",
        str(seconds),
        *(("--fleet", str(fleet)) if fleet else ()),
    )
    print(routes.stdout.strip()[-2500:] or routes.stderr.strip()[-1500:])


# One user per role, so each screen and API scope can be tried as its users would.
DEMO_USERS = (
    ("officer.north", "housing_officer", ("north",)),
    ("officer.south", "housing_officer", ("south",)),
    ("waste.ops", "waste_ops", ()),
    ("engineer", "engineer", ()),
    ("admin", "admin", ()),
)


def _create_users(demo: _Demo) -> None:
    """The demo's users with fresh passwords, printed and kept (owner-only) beside the demo."""
    import secrets

    from api.identity import IdentityError, add_user, set_password
    from store.db import connect

    _step("users, one per role (API and screens)")
    credentials = {}
    with connect(demo.db_url) as conn:
        for name, role, patches in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            try:
                add_user(conn, name, role, patches, password)
            except IdentityError:
                set_password(conn, name, password)  # a re-run: same user, new password
            credentials[name] = {"role": role, "patches": list(patches), "password": password}
            where = f" ({', '.join(patches)})" if patches else ""
            print(f"{name:<14} {role:<16} password {password}{where}")
    path = demo.demo_dir / "users.json"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(credentials, indent=2), encoding="utf-8")
    print(f"(also in {path}, readable by you only)")


def _where_to_look(demo: _Demo, fleet: Path | None) -> None:
    _step("where to look")
    # The screens and the API plan with the instance's fleet: the demo town's when it has one.
    api = (
        f"CIVIC_FLEET_FILE={fleet} CIVIC_ENV=development civic api"
        if fleet
        else ("CIVIC_ENV=development civic api")
    )
    print(
        "\n".join(
            [
                "civic db info                                   storage mode, counts, partitions",
                "civic export readings --since 1d --format csv   the time-based extract",
                "civic deadletters --format table                rejected messages with reasons",
                "civic devices list --kind env                   homes and their UPRNs",
                "civic ingest --stats --metrics-port 9108        live ingest (Prometheus on :9108)",
                f"{api}   screens at http://127.0.0.1:8000/, API at /docs",
                "civic alerts list --state active      alerts (then show, ack, evidence)",
                "civic routes list; civic routes export ID --format gpx -o routes.gpx",
                f"files: {demo.demo_dir}/ (estate.csv, round_sheet.csv, ingest.log)",
                "",
                f"Screens: {api}, then open http://127.0.0.1:8000/ and",
                "log in as officer.north (alert queue), waste.ops (map and routes) or engineer",
                f"(console), with the passwords above (also in {demo.demo_dir}/users.json).",
            ]
        )
    )

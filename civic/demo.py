"""``civic demo``: the whole platform on its embedded defaults, end to end.

Starts the local services, migrates, imports a demo estate of ~1,000 bins and ~300 homes in
Leicester, simulates days of history through the real MQTT → ingest path, and prints where to
look next.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole platform on a simulated town",
        description=(
            "Services up, migrate, import a demo estate (bins and homes in Leicester), simulate "
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
    parser.add_argument("--bins", type=int, default=1000)
    parser.add_argument("--homes", type=int, default=300)
    parser.add_argument("--history", default="2d", help="simulated history to generate")
    parser.add_argument("--interval", default="30m", help="device reporting interval")
    parser.add_argument("--route-seconds", type=float, default=20.0, help="route search time limit")
    parser.set_defaults(func=run)


_DEMO_TABLES = (
    "readings",
    "deadletters",
    "device_status",
    "condition_events",
    "alert_checkpoints",
    "alert_evaluator",
    "alerts",
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


def run(args: argparse.Namespace) -> int:
    from common.errors import CliError
    from common.services import LocalServices, ServicesError
    from common.settings import database_url, get_settings, mqtt_url
    from common.timeparse import parse_duration
    from device_sim.estate import TOWN, generate_estate, write_estate_csv
    from store.db import connect, info, migrate
    from store.registry import parse_device_row, upsert_devices

    settings = get_settings()
    local = not settings.database_url
    try:
        _step("services")
        if not (settings.database_url and settings.mqtt_url):
            state = LocalServices(settings.data_dir).up()
            print(f"PostgreSQL {state.database_url}\nMosquitto  {state.mqtt_url}")
        db_url, broker_url = database_url(settings), mqtt_url(settings)
    except ServicesError as exc:
        raise CliError(str(exc)) from exc

    _step("schema")
    mode, applied = migrate(db_url)
    print(f"storage mode: {mode} ({'applied ' + ', '.join(applied) if applied else 'up to date'})")
    if local and not args.keep_history:
        with connect(db_url) as conn:
            # Two simulated histories over the same days would interleave (and every
            # device's message counter would look like lost messages).
            conn.execute(f"TRUNCATE {', '.join(_DEMO_TABLES)} CASCADE")
        print("cleared the earlier demo's history (--keep-history keeps it)")

    _step(f"demo estate: {args.bins} bins and {args.homes} homes in {TOWN}")
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    estate = generate_estate(args.bins, args.homes, seed=1)
    estate_csv = demo_dir / "estate.csv"
    round_sheet = demo_dir / "round_sheet.csv"
    write_estate_csv(estate, estate_csv)
    with connect(db_url) as conn:
        added, updated = upsert_devices(conn, [parse_device_row(r) for r in estate])
    print(f"registry: {added} added, {updated} updated  (file: {estate_csv})")

    history = parse_duration(args.history).total_seconds()
    interval = parse_duration(args.interval).total_seconds()
    _step(f"simulating {args.history} of history every {args.interval} through MQTT ingest")
    env = {**os.environ, "CIVIC_DATABASE_URL": db_url, "CIVIC_MQTT_URL": broker_url}
    ingest = subprocess.Popen(
        # The default client id: the same persistent session a later `civic ingest` resumes.
        [
            sys.executable,
            "-m",
            "civic.cli",
            "ingest",
            "--idle-exit",
            "5",
            "--stats",
            "--stats-interval",
            "15",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(demo_dir / "ingest.log").open("w"),
        text=True,
    )
    time.sleep(2)  # let ingest subscribe first, so its session queues everything
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "civic.cli",
            "sim",
            "--bins",
            str(args.bins),
            "--homes",
            str(args.homes),
            "--estate",
            str(estate_csv),
            "--interval",
            f"{interval:.0f}s",
            "--duration",
            f"{history:.0f}s",
            "--speed",
            str(10**7),
            "--malformed-pct",
            "0.5",
            "--duplicate-pct",
            "0.5",
            "--late-pct",
            "1",
            "--offline-pct",
            "5",
            "--client-id",
            "civic-demo-sim",
            "--round-sheet",
            str(round_sheet),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    sent = json.loads(sim.stdout.strip().splitlines()[-1]) if sim.stdout.strip() else {}
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

    _step("what is in the store")
    summary = info(db_url)
    print(json.dumps({k: summary[k] for k in ("mode", "devices", "readings", "deadletters")}))
    with connect(db_url) as conn:
        full = conn.execute(
            "SELECT count(*) AS n FROM devices d JOIN LATERAL (SELECT fill_pct FROM readings r"
            " WHERE r.device_id = d.device_id ORDER BY ts DESC LIMIT 1) last ON true"
            " WHERE d.kind = 'bin' AND last.fill_pct >= d.threshold_pct"
        ).fetchone()
        damp = conn.execute(
            "SELECT count(*) AS n FROM (SELECT device_id FROM readings_hourly"
            " WHERE bucket > now() - interval '1 day' AND rh_pct_avg IS NOT NULL"
            " GROUP BY device_id HAVING avg(rh_pct_avg) > 70) damp"
        ).fetchone()
    print(f"bins at or over their collection threshold now: {full['n'] if full else 0}")
    print(f"homes averaging above 70 % RH over the last day: {damp['n'] if damp else 0}")

    _step("alerts for housing officers and waste crews")
    # The crews' sheets for the simulated rounds (a few left off, as happens) come in first,
    # so emptyings the sensors saw are checked against them.
    collected = _civic(env, "routes", "collected", str(round_sheet))
    print((collected.stdout or collected.stderr).strip()[-500:])
    alerts = _civic(env, "alerts", "backfill", "--since", f"{history:.0f}s")
    print((alerts.stdout or alerts.stderr).strip()[-1500:])
    listing = _civic(
        env, "alerts", "list", "--state", "active", "--limit", "100000", "--format", "json"
    )
    active = json.loads(listing.stdout) if listing.returncode == 0 and listing.stdout else []
    by_type: dict[str, int] = {}
    for alert in active:
        by_type[alert["alert_type"]] = by_type.get(alert["alert_type"], 0) + 1
    print(f"active alerts by type: {json.dumps(by_type, sort_keys=True)}")

    _step(f"today's general-waste routes (up to {args.route_seconds:.0f} s of search)")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    routes = _civic(
        env,
        "routes",
        "plan",
        "--date",
        today,
        "--stream",
        "general",
        "--seconds",
        str(args.route_seconds),
    )
    print(routes.stdout.strip()[-2500:] or routes.stderr.strip()[-1500:])

    _step("where to look")
    print(
        "\n".join(
            [
                "civic db info                                   storage mode, counts, partitions",
                "civic export readings --since 1d --format csv   the time-based extract",
                "civic deadletters --format table                rejected messages with reasons",
                "civic devices list --kind env                   homes and their UPRNs",
                "civic ingest --stats --metrics-port 9108        live ingest (Prometheus on :9108)",
                "civic api        then open http://127.0.0.1:8000/ (overview) and /docs (the API)",
                "civic alerts list --state active      alerts (then show, ack, evidence)",
                "civic routes list; civic routes export ID --format geojson -o routes.geojson",
                f"files: {demo_dir}/ (estate.csv, round_sheet.csv, ingest.log)",
            ]
        )
    )
    # More than sent is fine: a re-run also drains what its persistent session had queued.
    return 0 if final.get("stored", 0) >= sent.get("readings_total", 1) else 1

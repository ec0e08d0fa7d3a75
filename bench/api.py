"""API latency under load: the queries screens make, against ``civic api`` on a big estate.

    .venv/bin/python -m bench.api [--devices 10000] [--days 30] [--seconds 20]
        [--concurrency 16] [--workers 1] [--reuse]

On the project-local PostgreSQL (under .civic/bench, database ``bench_api``): ``--devices``
devices (half bins, half home sensors, the demo estate's generator) with ``--days`` of readings
every 30 minutes, written through the store's write path (``write_batch``: COPY, merge and the
latest-reading table, as ingest writes), 5,000 alerts spread over the patches, and a user per
role. ``civic api`` runs as its own process (``--workers`` uvicorn workers, no access log: its
output goes nowhere), and an ``httpx`` async loop here keeps ``--concurrency`` requests in
flight for ``--seconds`` per scenario, after a few seconds' warm-up that is not counted,
logged in with real tokens. Latency is measured at the client (request sent to body read).
``--reuse`` keeps an estate loaded by an earlier run (loading 14.4 million readings takes
minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from api.identity import IdentityError, add_user
from api.jobs import JOB_RUNNER_LOCK
from common.services import LocalServices
from device_sim import generate_estate
from firmware_contracts import Reading
from store.db import connect, migrate
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "bench_api"
STEP = timedelta(minutes=30)
LOAD_BATCH = 50_000
ALERTS = 5_000
WARM_UP_S = 3.0  # the pools fill and the caches warm before the count starts
PASSWORD = "bench password 1"
USERS = (
    ("officer", "housing_officer", ["north"]),
    ("engineer", "engineer", []),
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    user: str
    path: Callable[[random.Random], str]


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def database(admin: str, reuse: bool) -> tuple[str, bool]:
    """The bench database URL, and whether it already holds an estate."""
    url = admin.rsplit("/", 1)[0] + f"/{DATABASE}"
    with connect(admin) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if reuse and exists.fetchone():
            migrate(url)
            with connect(url) as bench:
                if bench.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                    return url, True
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    migrate(url)
    return url, False


def readings(device_ids: list[str], kinds: list[str], days: int) -> Iterator[Reading]:
    """Plausible readings in time order: bins filling and emptied weekly, homes breathing."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rounds = int(timedelta(days=days) / STEP)
    start = end - rounds * STEP
    for k in range(rounds):
        ts = start + k * STEP
        for i, (device_id, kind) in enumerate(zip(device_ids, kinds, strict=True)):
            if kind == "bin":
                fill = (k + i * 7) % 336 / 336 * 100
                yield Reading(device_id, ts, seq=k, fill_pct=round(fill, 1), battery_v=3.6)
            else:
                phase = (k + i) % 48 / 48
                yield Reading(
                    device_id,
                    ts,
                    seq=k,
                    temp_c=round(17 + 3 * phase, 1),
                    rh_pct=round(55 + 20 * phase, 1),
                    battery_v=3.4,
                )


def load(url: str, devices: int, days: int) -> None:
    rows = generate_estate(devices // 2, devices - devices // 2, seed=3)
    registry = [parse_device_row(r) for r in rows]
    with connect(url) as conn:
        upsert_devices(conn, registry)
        prepare_session(conn)
        guard = PartitionGuard()
        batch: list[Reading] = []
        began = time.monotonic()
        written = 0
        ids = [d.device_id for d in registry]
        for reading in readings(ids, [d.kind for d in registry], days):
            batch.append(reading)
            if len(batch) >= LOAD_BATCH:
                write_batch(conn, batch, [], partitions=guard)
                written += len(batch)
                batch.clear()
                if written % 1_000_000 < LOAD_BATCH:
                    rate = written / (time.monotonic() - began)
                    print(f"loaded {written:,} readings ({rate:,.0f}/s)", file=sys.stderr)
        write_batch(conn, batch, [], partitions=guard)
        _alerts(conn)
        for name, role, patches in (*USERS, ("admin", "admin", [])):
            with contextlib.suppress(IdentityError):
                add_user(conn, name, role, patches, PASSWORD)
        conn.execute("VACUUM ANALYZE")


def _alerts(conn: Any) -> None:
    """Alerts as the evaluator would store them, spread over the estate's homes: enough for
    paging and the officer's due-date order to matter."""
    conn.execute(
        """INSERT INTO alerts (id, subject_kind, subject_id, uprn, patch, alert_type, hazard,
               state, severity, opened_at, since, reason, deadlines)
           SELECT d.uprn || '/damp_mould/' || n, 'home', d.uprn, d.uprn, d.patch, 'damp_mould',
                  'damp_mould', 'open', 'act', now() - n * interval '1 hour',
                  now() - n * interval '1 hour', 'bench alert',
                  jsonb_build_array(jsonb_build_object(
                      'milestone', 'investigate',
                      'due_at', now() + (n %% 20 - 5) * interval '1 day'))
           FROM (SELECT DISTINCT ON (uprn) uprn, patch, row_number() OVER () AS n
                 FROM devices WHERE kind = 'env' ORDER BY uprn) d
           WHERE d.n <= %s""",
        (ALERTS,),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CIVIC_DATABASE_URL": url,
        "CIVIC_ENV": "development",
        "CIVIC_DATA_DIR": str(ROOT / ".civic" / "bench"),
        "CIVIC_API_RATE_PER_MINUTE": str(10**7),
    }
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "civic.cli", "api", "--port", str(port), "--no-access-log"),
            *("--workers", str(workers)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120  # imports alone take tens of seconds on a busy machine
    while time.monotonic() < deadline:
        if _workers_up(url) >= workers:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("civic api did not start")


def _workers_up(url: str) -> int:
    """API processes started: each holds its job runner's lock once it has."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s::oid AND objsubid = 2",
            (JOB_RUNNER_LOCK,),
        ).fetchone()
    return int(row["n"]) if row else 0


def token(base: str, user: str) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/token",
        data={"grant_type": "password", "username": user, "password": PASSWORD},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def run_scenario(
    base: str, scenario: Scenario, token_: str, seconds: float, concurrency: int
) -> Result:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token_}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:
        stop = time.perf_counter() + seconds

        async def worker(seed: int) -> None:
            nonlocal errors
            rng = random.Random(seed)
            while time.perf_counter() < stop:
                began = time.perf_counter()
                response = await client.get(scenario.path(rng))
                await response.aread()
                latencies.append((time.perf_counter() - began) * 1000)
                errors += response.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - began
    return Result(scenario.name, len(latencies), errors, elapsed, latencies)


def scenarios(url: str) -> list[Scenario]:
    with connect(url) as conn:
        env = [
            r["device_id"]
            for r in conn.execute(
                "SELECT device_id FROM devices WHERE kind = 'env' AND patch = 'north'"
            ).fetchall()
        ]
        homes = conn.execute("SELECT count(*) AS n FROM devices WHERE kind = 'env'").fetchone()
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        Scenario(
            f"latest reading of every device in scope: officer ({len(env)} sensors)",
            "officer",
            lambda rng: "/api/v1/readings/latest",
        ),
        Scenario(
            f"latest reading of every device in scope: engineer (all, {homes['n'] * 2:,})",
            "engineer",
            lambda rng: "/api/v1/readings/latest",
        ),
        Scenario(
            "30-day hourly series of one device (720 points)",
            "officer",
            lambda rng: f"/api/v1/devices/{rng.choice(env)}/readings?since={since}&bucket=1h",
        ),
        Scenario(
            "alert page: an officer's queue, 50 by due date",
            "officer",
            lambda rng: f"/api/v1/alerts?limit=50&offset={rng.randrange(0, 4) * 50}",
        ),
    ]


def markdown(
    argv: list[str],
    devices: int,
    days: int,
    workers: int,
    results: list[Result],
    load_s: float | None,
) -> str:
    lines = [
        "# API latency under load",
        "",
        f"`.venv/bin/python -m bench.api {' '.join(argv)}`".replace("  ", " "),
        "",
        f"{devices:,} devices (half bins, half home sensors) with {days} days of readings every"
        f" 30 minutes ({devices * days * 48:,} readings), {ALERTS:,} alerts; `civic api"
        f" --no-access-log --workers {workers}` beside PostgreSQL and the load generator on the"
        " same 2 cores. Latency at the client, each scenario for a fixed time with a fixed"
        f" number of requests in flight, after {WARM_UP_S:.0f} s of warm-up not counted."
        + (f" Loading the estate took {load_s:.0f} s." if load_s else ""),
        "",
        "| scenario | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.rps:.0f} | {statistics.median(r.latencies_ms):.1f} |"
            f" {r.quantile(0.99):.1f} | {r.errors} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="civic api --workers")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()

    state = LocalServices(ROOT / ".civic" / "bench").up()
    url, loaded = database(state.database_url.rsplit("/", 1)[0] + "/postgres", args.reuse)
    load_s = None
    if not loaded:
        began = time.monotonic()
        load(url, args.devices, args.days)
        load_s = time.monotonic() - began
    port = free_port()
    server = start_api(url, port, args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        tokens = {user: token(base, user) for user, _, _ in USERS}
        results = []
        for scenario in scenarios(url):
            token_ = tokens[scenario.user]
            asyncio.run(run_scenario(base, scenario, token_, WARM_UP_S, args.concurrency))
            result = asyncio.run(
                run_scenario(base, scenario, token_, args.seconds, args.concurrency)
            )
            p50 = statistics.median(result.latencies_ms)
            print(
                f"{result.name}: {result.rps:.0f}/s p50 {p50:.1f} ms"
                f" p99 {result.quantile(0.99):.1f} ms errors {result.errors}",
                flush=True,
            )
            results.append(result)
    finally:
        server.terminate()
        server.wait(timeout=10)
    text = markdown(sys.argv[1:], args.devices, args.days, args.workers, results, load_s)
    print("\n" + text)
    if not args.no_write:
        (ROOT / "bench" / "results" / "api.md").write_text(text)


if __name__ == "__main__":
    main()

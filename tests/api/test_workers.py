"""Several API processes on one database (``civic api --workers N``): background jobs survive
another worker starting and are failed once their own worker is dead; the per-caller rate
limit holds across processes; and ``civic api --workers 2`` serves, with /metrics summing every
worker's counts."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api.jobs import JOB_RUNNER_LOCK, JobRunner
from store.db import connect
from tests.api.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]

# A worker's job runner in a process of its own: one job, running (blocked) until killed.
_WORKER = """
import sys, threading
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from api.jobs import JobRunner
url = sys.argv[1]
pool = ConnectionPool(url, kwargs={"autocommit": True, "row_factory": dict_row})
runner = JobRunner(pool, url)
runner.open()
with pool.connection() as conn:
    job = runner.create(conn, "plan", {}, "user:test")
runner.start(job, lambda conn, progress: threading.Event().wait())
print(job, runner.runner, flush=True)
threading.Event().wait()
"""

# Requests of one caller through the rate limit, from a process of its own, once told to go.
_HITTER = """
import asyncio, sys
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from api.problems import Problem
from api.ratelimit import RateLimiter
url, key, per_minute, hits = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

async def hit(limiter):
    admitted = 0
    for _ in range(hits):
        try:
            await limiter.check(key)
            admitted += 1
        except Problem:
            pass
    return admitted

with ConnectionPool(url, kwargs={"autocommit": True, "row_factory": dict_row}) as pool:
    limiter = RateLimiter(per_minute, pool)
    print("ready", flush=True)
    sys.stdin.readline()
    print(asyncio.run(hit(limiter)), flush=True)
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _job(url: str, job_id: str) -> dict[str, Any]:
    with connect(url) as conn:
        row = conn.execute("SELECT state, error FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def _wait_for(what: str, ok: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.1)


def _runner_locks(url: str) -> set[int]:
    with connect(url) as conn:
        rows = conn.execute(
            """SELECT objid::int AS runner FROM pg_locks
               WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = %s::oid
                 AND database = (SELECT oid FROM pg_database
                                 WHERE datname = current_database())""",
            (JOB_RUNNER_LOCK,),
        ).fetchall()
    return {r["runner"] for r in rows}


@pytest.fixture
def worker_with_a_running_job(database_url: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    worker = _python(_WORKER, database_url)
    try:
        assert worker.stdout is not None
        job_id, _ = worker.stdout.readline().split()
        _wait_for("job running", lambda: _job(database_url, job_id)["state"] == "running")
        yield worker, job_id
    finally:
        worker.kill()
        worker.wait(timeout=30)


@contextmanager
def _starting_runner(url: str) -> Iterator[JobRunner]:
    """Another worker's runner, as its process starts."""
    with ConnectionPool(url, kwargs={"autocommit": True, "row_factory": dict_row}) as pool:
        runner = JobRunner(pool, url)
        runner.open()
        try:
            yield runner
        finally:
            runner.shutdown()


def test_a_job_running_in_one_worker_is_left_alone_by_another_starting(
    database_url: str, worker_with_a_running_job: tuple[subprocess.Popen[str], str]
) -> None:
    _, job_id = worker_with_a_running_job
    with _starting_runner(database_url) as runner:
        assert runner.runner is not None
        assert _job(database_url, job_id) == {"state": "running", "error": None}
        assert len(_runner_locks(database_url)) == 2  # each worker holds its own


def test_the_jobs_of_a_dead_worker_are_failed_by_the_next_start(
    database_url: str, worker_with_a_running_job: tuple[subprocess.Popen[str], str]
) -> None:
    worker, job_id = worker_with_a_running_job
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    # The server drops the dead session's lock when it reads the closed socket.
    _wait_for("dead worker's lock gone", lambda: not _runner_locks(database_url))
    assert _job(database_url, job_id)["state"] == "running"  # nobody has said otherwise yet
    with _starting_runner(database_url):
        job = _job(database_url, job_id)
        assert job["state"] == "failed"
        assert "stopped" in job["error"]


def _clear_of_a_minute_boundary(url: str, needed_s: float = 15) -> None:
    """Sleep into the next minute when fewer than ``needed_s`` seconds of this one are left
    (on the database's clock, which the limit counts by): a count split over two minutes is
    weighted, so exact totals are only promised within one."""
    with connect(url) as conn:
        row = conn.execute("SELECT extract(second FROM clock_timestamp()) AS s").fetchone()
    assert row is not None
    second = float(row["s"])
    if second > 60 - needed_s:
        time.sleep(60 - second + 0.5)


def _hit_at_once(url: str, per_minute: int, hits: int, processes: int = 2) -> list[int]:
    """How many of ``hits`` requests each process had admitted, all of one caller at once."""
    key = f"user:{uuid.uuid4().hex}"
    hitters = [_python(_HITTER, url, key, str(per_minute), str(hits)) for _ in range(processes)]
    try:
        for hitter in hitters:
            assert hitter.stdout is not None
            assert hitter.stdout.readline().strip() == "ready"
        _clear_of_a_minute_boundary(url)
        for hitter in hitters:
            assert hitter.stdin is not None
            hitter.stdin.write("go\n")
            hitter.stdin.flush()
        return [int(h.communicate(timeout=120)[0].strip()) for h in hitters]
    finally:
        for hitter in hitters:
            hitter.kill()


def test_the_rate_limit_holds_across_processes_hitting_it_at_once(database_url: str) -> None:
    admitted = _hit_at_once(database_url, per_minute=25, hits=20)
    assert sum(admitted) == 25  # 40 tries, exactly the limit let through between the two
    assert all(a > 0 for a in admitted)


def test_takes_of_the_allowance_never_let_more_through(database_url: str) -> None:
    # A limit of 400 is taken 20 at a time: most requests are counted in memory.
    admitted = _hit_at_once(database_url, per_minute=400, hits=300)
    assert sum(admitted) <= 400
    # Only the unspent part of each process's last take can go unused.
    assert sum(admitted) > 400 - 2 * 20
    assert all(a > 0 for a in admitted)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests_counted(metrics: str) -> int:
    """Calls of /api/v1/auth/me in a scrape, whatever their status."""
    counts = re.findall(
        r'civic_api_requests_total\{method="GET",route="/api/v1/auth/me",status="\d+"\} (\S+)',
        metrics,
    )
    return int(sum(float(c) for c in counts))


@pytest.mark.slow
def test_civic_api_with_two_workers_serves_and_shares_limits_and_metrics(
    estate_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "CIVIC_DATABASE_URL": estate_url,
        "CIVIC_ENV": "production",
        "CIVIC_API_SECRET": secrets.token_urlsafe(48),
        "CIVIC_API_RATE_PER_MINUTE": "12",
        "CIVIC_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "api.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "civic.cli", "api", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Each worker holds its job runner's lock once it has started.
        _wait_for("two workers up", lambda: len(_runner_locks(estate_url)) == 2, 180)
        _wait_for("serving", lambda: _healthy(base), 60)
        token = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"grant_type": "password", "username": "ed", "password": PASSWORD},
        ).json()["access_token"]
        _clear_of_a_minute_boundary(estate_url, needed_s=30)
        # A new connection each time: the workers share the port, so calls land on either.
        codes = [
            httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            for _ in range(16)
        ]
        assert [c.status_code for c in codes] == [200] * 12 + [429] * 4, log.read_text()
        assert codes[0].json()["name"] == "ed"
        # Whichever worker answers the scrape, it counts every worker's requests.
        scrapes = {_requests_counted(httpx.get(f"{base}/metrics").text) for _ in range(8)}
        assert scrapes == {16}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    assert not _runner_locks(estate_url)  # stopped workers leave no runner behind


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_a_refused_take_says_when_to_retry_and_unspent_ones_go_back(database_url: str) -> None:
    _clear_of_a_minute_boundary(database_url)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:

        def take(wanted: int, back: int = 0, minute: int | None = None) -> dict[str, Any]:
            row = conn.execute(
                "SELECT * FROM civic_rate_take('user:x', 10, %s, %s, %s)", (wanted, back, minute)
            ).fetchone()
            assert row is not None
            return row

        first, second, refused = take(6), take(6), take(6)
        assert (first["granted"], second["granted"], refused["granted"]) == (6, 4, 0)
        assert 1 <= refused["seconds_left"] <= 60
        # Handing back 3 unspent lets 3 more through, and no more.
        assert take(6, 3, first["taken_minute"])["granted"] == 3
        counted = conn.execute("SELECT sum(n) AS n FROM api_rate_counts WHERE key = 'user:x'")
        assert counted.fetchone() == {"n": 10}

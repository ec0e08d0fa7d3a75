"""Long work started from the API (planning a day's routes takes up to a minute): run in the
background, one at a time per API process, with its state and progress in the ``jobs`` table
for the caller to poll at ``GET /api/v1/jobs/{id}``.

Several API processes (``civic api --workers N``) share the table. Each process's runner holds
a session advisory lock ``(JOB_RUNNER_LOCK, runner)`` on a connection of its own for as long
as it lives, and stamps its jobs with ``runner``. The lock ends with the session: when the
process dies, the kernel closes its socket and PostgreSQL drops the lock. So a starting
process fails exactly the jobs whose runner's lock is free (they will never finish) and leaves
a live worker's running jobs alone.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from store.db import HELD_ADVISORY_KEYS_SQL, connect, keep_session_alive

__all__ = ["JOB_RUNNER_LOCK", "JobRunner", "Work"]

log = logging.getLogger(__name__)

Conn = psycopg.Connection[dict[str, Any]]
Progress = Callable[[str], None]
Work = Callable[[Conn, Progress], dict[str, Any]]

JOB_RUNNER_LOCK = 7_304_501  # (JOB_RUNNER_LOCK, runner) session lock: a live job runner

_RECOVER_SQL = f"""
    UPDATE jobs SET state = 'failed', error = 'interrupted: its API process stopped',
                    updated_at = now()
    WHERE state IN ('queued', 'running')
      AND (runner IS NULL OR runner NOT IN ({HELD_ADVISORY_KEYS_SQL}))
    RETURNING id"""


class JobRunner:
    """Runs submitted work on one background thread (the solver uses a core; two at once in
    one process would only slow both)."""

    def __init__(self, pool: ConnectionPool[Conn], database_url: str) -> None:
        self._pool = pool
        self._database_url = database_url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-job")
        self._lock_conn: Conn | None = None
        self.runner: int | None = None

    def open(self) -> None:
        """Take a runner id (its lock held from now on), then fail the jobs of runners gone."""
        conn = connect(self._database_url)
        keep_session_alive(conn)  # the lock goes soon after its host does
        while True:
            runner = secrets.randbelow(2**31)
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s) AS ok", (JOB_RUNNER_LOCK, runner)
            ).fetchone()
            if row and row["ok"]:
                break
        self._lock_conn, self.runner = conn, runner
        failed = conn.execute(_RECOVER_SQL, (JOB_RUNNER_LOCK,)).fetchall()
        if failed:
            log.warning("%d job(s) of stopped API processes marked failed", len(failed))

    def create(self, conn: Conn, kind: str, params: dict[str, Any], created_by: str) -> str:
        """Record a queued job (in the caller's transaction); :meth:`start` it once committed."""
        if self.runner is None:
            raise RuntimeError("the job runner is not open")
        job_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO jobs (id, kind, state, params, created_by, progress, runner)"
            " VALUES (%s, %s, 'queued', %s, %s, 'queued', %s)",
            (job_id, kind, Jsonb(params), created_by, self.runner),
        )
        return job_id

    def start(self, job_id: str, work: Work) -> None:
        self._executor.submit(self._run, job_id, work)

    def shutdown(self) -> None:
        """Stop taking work; closing the lock's session lets the next start fail what was
        left unfinished."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._lock_conn is not None:
            self._lock_conn.close()
            self._lock_conn = None

    def _run(self, job_id: str, work: Work) -> None:
        with self._pool.connection() as conn:

            def progress(message: str) -> None:
                conn.execute(
                    "UPDATE jobs SET progress = %s, updated_at = now() WHERE id = %s",
                    (message, job_id),
                )

            conn.execute(
                "UPDATE jobs SET state = 'running', updated_at = now() WHERE id = %s", (job_id,)
            )
            try:
                result = work(conn, progress)
            except Exception as exc:  # a failed job is reported to its caller, not raised
                log.exception("job %s failed", job_id)
                conn.execute(
                    "UPDATE jobs SET state = 'failed', error = %s, updated_at = now()"
                    " WHERE id = %s",
                    (str(exc) or type(exc).__name__, job_id),
                )
                return
            conn.execute(
                "UPDATE jobs SET state = 'done', result = %s, progress = 'done',"
                " updated_at = now() WHERE id = %s",
                (Jsonb(result), job_id),
            )

"""Long work started from the API (planning a day's routes takes up to a minute): run in the
background, one at a time, with its state and progress in the ``jobs`` table for the caller
to poll at ``GET /api/v1/jobs/{id}``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

__all__ = ["JobRunner", "Work"]

log = logging.getLogger(__name__)

Conn = psycopg.Connection[dict[str, Any]]
Progress = Callable[[str], None]
Work = Callable[[Conn, Progress], dict[str, Any]]


class JobRunner:
    """Runs submitted work on one background thread (the solver uses a core; two at once on
    a small server would only slow both)."""

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self._pool = pool
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-job")

    def recover(self) -> None:
        """Jobs this process had not finished when it stopped will not finish: say so."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'failed', error = 'interrupted: the API restarted',"
                " updated_at = now() WHERE state IN ('queued', 'running')"
            )

    def create(self, conn: Conn, kind: str, params: dict[str, Any], created_by: str) -> str:
        """Record a queued job (in the caller's transaction); :meth:`start` it once committed."""
        job_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO jobs (id, kind, state, params, created_by, progress)"
            " VALUES (%s, %s, 'queued', %s, %s, 'queued')",
            (job_id, kind, Jsonb(params), created_by),
        )
        return job_id

    def start(self, job_id: str, work: Work) -> None:
        self._executor.submit(self._run, job_id, work)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

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

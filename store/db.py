"""Connections, migrations and the storage mode (TimescaleDB or native partitioning)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.errors import CivicError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+?)(?:\.(timescaledb|native))?\.sql$")
_MIGRATE_LOCK = 7_304_201  # pg_advisory_lock key: one migrator at a time


class StoreError(CivicError):
    """A store operation failed in a way the user can act on."""


class StoreMode(StrEnum):
    TIMESCALEDB = "timescaledb"
    NATIVE = "native"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[dict[str, Any]]:
    """Autocommit by default: every write goes through an explicit ``conn.transaction()``,
    which then really commits (inside an implicit transaction it would only be a savepoint)."""
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to the database: {exc}".strip()) from exc


def connect_configured(*, autocommit: bool = True) -> psycopg.Connection[dict[str, Any]]:
    """The configured database: ``CIVIC_DATABASE_URL``, or the project-local service."""
    from common.settings import database_url

    return connect(database_url(), autocommit=autocommit)


SESSION_KEEPALIVE = {
    "tcp_keepalives_idle": 10,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
}
"""For a session whose advisory locks say its process is alive (a shard's evaluator, an API
process's job runner): the server gives up on a silent session, and its locks, after at most
idle + interval x count = 25 s when its host or network goes; at once when only the process
dies, since the kernel closes its socket."""

HELD_ADVISORY_KEYS_SQL = """
    SELECT objid::int AS key FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = %s::oid
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
"""The second keys of the two-key advisory locks ``(classid, key)`` held now, for one
``classid`` (the parameter): which of them are alive."""


def keep_session_alive(conn: psycopg.Connection[Any]) -> None:
    """Apply :data:`SESSION_KEEPALIVE` to this session."""
    for name, value in SESSION_KEEPALIVE.items():
        conn.execute(f"SET {name} = {int(value)}")


def timescaledb_usable(conn: psycopg.Connection[dict[str, Any]]) -> bool:
    """The extension is installed and preloaded (CREATE EXTENSION would succeed)."""
    row = conn.execute(
        "SELECT 1 AS ok FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None:
        return False
    preload = conn.execute("SELECT current_setting('shared_preload_libraries') AS libs").fetchone()
    return preload is not None and "timescaledb" in str(preload["libs"])


def load_migrations(mode: StoreMode) -> list[Migration]:
    """Migrations in version order; where a version has per-mode variants, the mode's one."""
    chosen: dict[str, Migration] = {}
    for entry in sorted(resources.files("store.migrations").iterdir(), key=lambda e: e.name):
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version, name, variant = match.groups()
        if variant is not None and variant != mode.value:
            continue
        chosen[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [chosen[v] for v in sorted(chosen)]


def current_mode(conn: psycopg.Connection[dict[str, Any]]) -> StoreMode | None:
    exists = conn.execute("SELECT to_regclass('civic_schema_migrations') AS t").fetchone()
    if exists is None or exists["t"] is None:
        return None
    row = conn.execute(
        "SELECT mode FROM civic_schema_migrations ORDER BY version LIMIT 1"
    ).fetchone()
    return StoreMode(str(row["mode"])) if row else None


def migrate(url: str, *, mode: StoreMode | None = None) -> tuple[StoreMode, list[str]]:
    """Apply pending migrations (idempotent; safe to run from several processes).

    The mode is chosen once, at the first migration: TimescaleDB when the extension can be
    created, native partitioning otherwise (or as ``mode`` forces, e.g. to test both paths).
    """
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS civic_schema_migrations (
                       version text PRIMARY KEY, name text NOT NULL, mode text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            existing = current_mode(conn)
            if existing is not None and mode is not None and existing is not mode:
                raise StoreError(f"database is already in {existing} mode, not {mode}")
            if mode is StoreMode.TIMESCALEDB and not timescaledb_usable(conn):
                raise StoreError("timescaledb is not installed/preloaded on this server")
            mode = (
                existing
                or mode
                or (StoreMode.TIMESCALEDB if timescaledb_usable(conn) else StoreMode.NATIVE)
            )
            applied = {
                str(r["version"])
                for r in conn.execute("SELECT version FROM civic_schema_migrations").fetchall()
            }
            done = []
            for migration in load_migrations(mode):
                if migration.version in applied:
                    continue
                log.info("applying migration %s_%s (%s)", migration.version, migration.name, mode)
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO civic_schema_migrations (version, name, mode)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, mode.value),
                        )
                except psycopg.Error as exc:
                    raise StoreError(
                        f"migration {migration.version}_{migration.name} failed: {exc}"
                    ) from exc
                done.append(f"{migration.version}_{migration.name}")
            return mode, done
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))


def info(url: str) -> dict[str, object]:
    """What ``civic db info`` prints: mode, versions, sizes, counts."""
    with connect(url) as conn:
        mode = current_mode(conn)
        if mode is None:
            return {"mode": None, "migrated": False, "hint": "run `civic db migrate`"}
        server = conn.execute("SHOW server_version").fetchone()
        result: dict[str, object] = {
            "mode": mode.value,
            "migrated": True,
            "postgresql": server["server_version"] if server else None,
            "migrations": [
                f"{r['version']}_{r['name']}"
                for r in conn.execute(
                    "SELECT version, name FROM civic_schema_migrations ORDER BY version"
                )
            ],
        }
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM devices) AS devices,
                      (SELECT count(*) FROM readings) AS readings,
                      (SELECT count(*) FROM deadletters) AS deadletters"""
        ).fetchone()
        result.update(counts or {})
        if mode is StoreMode.TIMESCALEDB:
            ext = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
            chunks = conn.execute(
                "SELECT count(*) AS n FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'readings'"
            ).fetchone()
            jobs = conn.execute(
                "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name"
                " IN ('readings', 'readings_rollup_hourly') ORDER BY proc_name"
            ).fetchall()
            result["timescaledb"] = ext["extversion"] if ext else None
            result["chunks"] = chunks["n"] if chunks else 0
            result["policies"] = [j["proc_name"] for j in jobs]
        else:
            parts = conn.execute(
                "SELECT count(*) AS n, min(c.relname) AS first, max(c.relname) AS last"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'readings'::regclass"
            ).fetchone()
            result["partitions"] = dict(parts) if parts else {}
        return result

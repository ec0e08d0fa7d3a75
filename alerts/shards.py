"""Shards: how several evaluators share one estate through PostgreSQL alone.

Every subject (a home's UPRN, a bin's device id) falls into one of :data:`SHARDS` shards by a
stable hash (:func:`shard_of`, the same as SQL's ``alert_shard()`` from migration 012). All of
a subject's devices and alerts are in its shard, so a shard's alert book, detectors and clock
(``alert_shards``) have exactly one writer: the evaluator holding the shard's **session
advisory lock**.

Why session advisory locks rather than a lease table with heartbeats: the lock lives and dies
with the database session that writes the shard's results. A dead evaluator's session ends
(at once when its process dies, since the kernel closes the socket; within the TCP keepalive
time, :data:`store.db.SESSION_KEEPALIVE`, when its host or network goes), and with it the
lock; it cannot write again afterwards, because every write goes through that same session.
A lease table would need a fencing token checked on every write to be as safe, and a clock to
expire by.

Who owns what (:class:`SharedShards`): each evaluator also holds a *member* lock, so
``pg_locks`` tells how many are alive. At the start of each cycle an evaluator holding more
than its fair share (``ceil(SHARDS / live)``) releases the excess (after writing their
detectors), and one holding less takes free shards up to it. A new evaluator therefore gets
its share within about one cycle of the others, and a dead one's shards are taken within one
cycle of its session ending, from their checkpoints.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import psycopg

from alerts.errors import AlertsError
from store.db import HELD_ADVISORY_KEYS_SQL, keep_session_alive

__all__ = [
    "ALL_SHARDS",
    "SHARDS",
    "FixedShards",
    "Ownership",
    "ShardsBusyError",
    "SharedShards",
    "fair_share",
    "plan",
    "shard_of",
]

Conn = psycopg.Connection[dict[str, Any]]

SHARDS = 64
"""Fixed: changing it moves subjects between shards (their checkpoints stay usable, but the
shards' clocks would have to be merged). 64 lets up to 64 evaluators share an estate."""
ALL_SHARDS = frozenset(range(SHARDS))
SHARD_LOCK = 7_304_406  # (SHARD_LOCK, shard) session lock: the shard's one evaluator
MEMBER_LOCK = 7_304_407  # (MEMBER_LOCK, backend pid) session lock: one live evaluator


class ShardsBusyError(AlertsError, RuntimeError):
    """Another evaluator holds shards this one was told to take."""


def shard_of(subject_id: str) -> int:
    """The shard of a subject: the first 32 bits of its MD5, modulo :data:`SHARDS`."""
    digest = hashlib.md5(subject_id.encode("utf-8"), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % SHARDS


def fair_share(live: int) -> int:
    """The most shards one of ``live`` evaluators should hold."""
    return math.ceil(SHARDS / max(live, 1))


def plan(
    owned: Iterable[int], free: Sequence[int], live: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Which free shards to try to take and which owned ones to give up, to reach the fair
    share. Releases the highest numbers first, so shard 0 (whose holder runs the estate-wide
    steps) moves only when its holder dies."""
    mine = sorted(owned)
    target = fair_share(live)
    if len(mine) > target:
        return (), tuple(mine[target:])
    return tuple(free[: target - len(mine)]), ()


class Ownership(Protocol):
    owned: frozenset[int]

    def rebalance(self, conn: Conn) -> tuple[frozenset[int], frozenset[int]]:
        """Take what is due; returns (shards gained, shards to release once written)."""
        ...

    def release(self, conn: Conn, shards: Iterable[int]) -> None: ...

    def close(self, conn: Conn) -> None: ...


def _try_lock(conn: Conn, shard: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", (SHARD_LOCK, shard)).fetchone()
    return bool(row and row["ok"])


def _unlock(conn: Conn, shards: Iterable[int]) -> None:
    for shard in sorted(shards):
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (SHARD_LOCK, shard))


class FixedShards:
    """Exactly the shards given (all of them by default), for as long as the session lives:
    a backfill, or a deployment that assigns shards by hand."""

    def __init__(self, conn: Conn, shards: Iterable[int] = ALL_SHARDS) -> None:
        wanted = sorted(set(shards))
        if not wanted or wanted[0] < 0 or wanted[-1] >= SHARDS:
            raise ValueError(f"shards must be a non-empty subset of 0..{SHARDS - 1}")
        taken: list[int] = []
        for shard in wanted:
            if not _try_lock(conn, shard):
                _unlock(conn, taken)
                raise ShardsBusyError(
                    f"another alerts evaluator holds shard {shard} of this database"
                )
            taken.append(shard)
        self.owned = frozenset(taken)

    def rebalance(self, conn: Conn) -> tuple[frozenset[int], frozenset[int]]:
        return frozenset(), frozenset()

    def release(self, conn: Conn, shards: Iterable[int]) -> None:
        raise ValueError("fixed shards are held until the evaluator closes")

    def close(self, conn: Conn) -> None:
        _unlock(conn, self.owned)
        self.owned = frozenset()


class SharedShards:
    """A fair share of the shards among the live evaluators, rebalanced every cycle."""

    def __init__(self, conn: Conn) -> None:
        keep_session_alive(conn)
        conn.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())", (MEMBER_LOCK,))
        self.owned: frozenset[int] = frozenset()

    def rebalance(self, conn: Conn) -> tuple[frozenset[int], frozenset[int]]:
        live = len(conn.execute(HELD_ADVISORY_KEYS_SQL, (MEMBER_LOCK,)).fetchall())
        held = {r["key"] for r in conn.execute(HELD_ADVISORY_KEYS_SQL, (SHARD_LOCK,)).fetchall()}
        free = [s for s in range(SHARDS) if s not in held]
        take, release = plan(self.owned, free, live)
        gained = frozenset(s for s in take if _try_lock(conn, s))
        self.owned |= gained
        return gained, frozenset(release)

    def release(self, conn: Conn, shards: Iterable[int]) -> None:
        shards = frozenset(shards) & self.owned
        _unlock(conn, shards)
        self.owned -= shards

    def close(self, conn: Conn) -> None:
        _unlock(conn, self.owned)
        self.owned = frozenset()
        conn.execute("SELECT pg_advisory_unlock(%s, pg_backend_pid())", (MEMBER_LOCK,))

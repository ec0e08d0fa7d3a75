"""Alerts in PostgreSQL: subjects, detector checkpoints, the alert book and its audit trail.

Rows map onto the pure core's values (:class:`~alerts.lifecycle.Alert`,
:class:`~alerts.events.ConditionEvent`) and back; nothing here decides anything. Writes happen
inside the caller's transaction, and every writer of the alert book first takes the book lock
of the shards it writes (:func:`lock_book`, :func:`lock_alert`: a transaction advisory lock
per shard, :mod:`alerts.shards`) so an evaluator and a person acknowledging an alert never
overwrite each other, while evaluators of different shards never wait for one another.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from alerts.awaab import WorkingDayCalendar, alert_deadlines
from alerts.detector import BinRuleSettings, Detector, DeviceRuleSettings, HomeRuleSettings
from alerts.errors import CheckpointFormatError
from alerts.events import AlertType, ConditionEvent, Hazard, Severity
from alerts.lifecycle import Alert, AlertBook, AlertStatus, AuditEvent, LifecycleSettings
from alerts.psychrometrics import (
    GAS_CONSTANT_FACTOR,
    MAGNUS_A,
    MAGNUS_B_C,
    MAGNUS_C_HPA,
    ZERO_C_K,
)
from alerts.readings import Bin, CollectionRecord, FillForecast, Home
from alerts.shards import ALL_SHARDS, shard_of
from alerts.state_format import state_format
from firmware_contracts import Reading, WasteStream

__all__ = [
    "BOOK_LOCK",
    "Checkpoint",
    "Conn",
    "Subject",
    "alert_from_row",
    "collection_records",
    "event_key",
    "fill_ranges",
    "insert_audit",
    "insert_condition_events",
    "load_book",
    "load_checkpoints",
    "load_fill_forecasts",
    "load_subjects",
    "lock_alert",
    "lock_book",
    "lock_fill_forecasts",
    "moisture_means",
    "read_readings",
    "save_alerts",
    "save_checkpoints",
    "save_fill_forecasts",
]

Conn = psycopg.Connection[dict[str, Any]]

log = logging.getLogger(__name__)

BOOK_LOCK = 7_304_404  # (BOOK_LOCK, shard) pg_advisory_xact_lock: one writer of a shard's book
FORECAST_LOCK = 7_304_405  # pg_advisory_xact_lock: one evaluator fits an instant's forecasts


@dataclass(frozen=True, slots=True)
class Subject:
    """What an alert is about, as the registry describes the device that raised it."""

    device_id: str
    kind: str  # 'home' or 'bin'
    subject_id: str
    uprn: str | None
    patch: str | None
    void: bool
    threshold_pct: float | None
    waste_stream: str | None
    report_interval: timedelta | None = None
    """How often the device is configured to report (registry column ``report_interval_s``);
    None: the rule default for its kind. "Offline" waits for missed reports of this."""

    def detector(
        self,
        home_settings: HomeRuleSettings | None = None,
        bin_settings: BinRuleSettings | None = None,
    ) -> Detector:
        if self.kind == "home":
            assert self.uprn is not None
            home = Home(uprn=self.uprn, void=self.void, patch=self.patch)
            if self.report_interval is not None:
                home_settings = home_settings or HomeRuleSettings()
                home_settings = dataclasses.replace(
                    home_settings, device=self._with_interval(home_settings.device)
                )
            return Detector.for_home(home, self.device_id, home_settings)
        # The registry only accepts known streams (store.registry); a bin without one is general.
        stream = WasteStream(self.waste_stream or WasteStream.GENERAL)
        bin_ = Bin(self.device_id, threshold_pct=self.threshold_pct or 80.0, waste_stream=stream)
        if self.report_interval is not None:
            bin_settings = bin_settings or BinRuleSettings()
            bin_settings = dataclasses.replace(
                bin_settings, device=self._with_interval(bin_settings.device)
            )
        return Detector.for_bin(bin_, bin_settings)

    def _with_interval(self, settings: DeviceRuleSettings) -> DeviceRuleSettings:
        assert self.report_interval is not None
        offline = dataclasses.replace(settings.offline, expected_interval=self.report_interval)
        return dataclasses.replace(settings, offline=offline)


def _report_interval(extra: Mapping[str, Any] | None, device_id: str) -> timedelta | None:
    text = (extra or {}).get("report_interval_s")
    if text in (None, ""):
        return None
    try:
        seconds = float(text)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:  # also NaN
        log.warning("%s: ignoring report_interval_s=%r (want seconds > 0)", device_id, text)
        return None
    return timedelta(seconds=seconds)


def load_subjects(conn: Conn) -> dict[str, Subject]:
    """Every registered device, keyed by device id."""
    rows = conn.execute(
        "SELECT device_id, kind, uprn, patch, void, threshold_pct, waste_stream, extra FROM devices"
    ).fetchall()
    subjects = {}
    for r in rows:
        home = r["kind"] == "env"
        subjects[r["device_id"]] = Subject(
            device_id=r["device_id"],
            kind="home" if home else "bin",
            subject_id=r["uprn"] if home else r["device_id"],
            uprn=r["uprn"],
            patch=r["patch"],
            void=bool(r["void"]),
            threshold_pct=r["threshold_pct"],
            waste_stream=r["waste_stream"],
            report_interval=_report_interval(r["extra"], r["device_id"]),
        )
    return subjects


def read_readings(
    conn: Conn,
    device_ids: Sequence[str],
    after: Mapping[str, datetime | None],
    until: datetime,
    since: datetime | None = None,
) -> Generator[tuple[str, list[Reading]], None, None]:
    """Each device's readings with ``after[device] < ts <= until`` (and ``ts >= since``), in
    time order, device by device in ``sorted(device_ids)`` order; devices with no such
    readings are left out. Rows stream from a server-side cursor, so memory holds one
    device's readings, not the batch's (a backfill reads millions of rows). Rows a rule
    cannot use (out of the plausible ranges) are skipped, not fatal: the contract already
    dead-letters real garbage, so these are rare sensor faults. Needs an open transaction.
    """
    if not device_ids:
        return
    # Plain tuples, not the connection's dict rows; "C" collation orders as Python's sorted().
    with conn.cursor(name="alerts_readings", row_factory=tuple_row) as cur:
        cur.itersize = 20_000
        cur.execute(
            """SELECT r.device_id, r.ts, r.seq, r.fill_pct, r.temp_c, r.rh_pct, r.battery_v,
                      r.co2_ppm, r.tilt_deg
               FROM readings r
               JOIN unnest(%(ids)s::text[], %(after)s::timestamptz[]) AS d(device_id, after_ts)
                 ON r.device_id = d.device_id
               WHERE r.ts <= %(until)s
                 AND (d.after_ts IS NULL OR r.ts > d.after_ts)
                 AND (%(since)s::timestamptz IS NULL OR r.ts >= %(since)s)
               ORDER BY r.device_id COLLATE "C", r.ts""",
            {
                "ids": list(device_ids),
                "after": [after.get(d) for d in device_ids],
                "until": until,
                "since": since,
            },
        )
        current: str | None = None
        readings: list[Reading] = []
        for device_id, ts, seq, fill, temp, rh, battery, co2, tilt in cur:
            if device_id != current:
                if current is not None:
                    yield current, readings
                current, readings = device_id, []
            readings.append(
                Reading(
                    device_id,
                    ts,
                    seq=seq,
                    fill_pct=fill,
                    temp_c=temp,
                    rh_pct=rh,
                    battery_v=battery,
                    co2_ppm=co2,
                    tilt_deg=tilt,
                )
            )
        if current is not None:
            yield current, readings


def fill_ranges(
    conn: Conn, device_ids: Sequence[str], after: datetime, until: datetime
) -> dict[str, float]:
    """Each bin's fill range (max - min) over readings with ``after < ts <= until``."""
    if not device_ids:
        return {}
    rows = conn.execute(
        """SELECT device_id, max(fill_pct) - min(fill_pct) AS range_pct FROM readings
           WHERE device_id = ANY(%s) AND ts > %s AND ts <= %s AND fill_pct IS NOT NULL
           GROUP BY device_id""",
        (list(device_ids), after, until),
    ).fetchall()
    return {r["device_id"]: float(r["range_pct"]) for r in rows}


def moisture_means(
    conn: Conn, device_ids: Sequence[str], after: datetime, until: datetime, min_span: timedelta
) -> dict[str, float]:
    """Each home's mean absolute humidity (g/m³) over readings with ``after < ts <= until``;
    only homes whose readings span at least ``min_span`` of it (a sensor that was silent half
    the day does not stand for the day).

    The formula is :func:`alerts.psychrometrics.absolute_humidity_g_m3`, computed in the
    database with the same constants so a day of an estate's readings never leaves it."""
    if not device_ids:
        return {}
    rows = conn.execute(
        """SELECT device_id,
                  avg(%(g)s * rh_pct / 100.0 * %(c)s * exp(%(a)s * temp_c / (%(b)s + temp_c))
                      / (%(k)s + temp_c)) AS mean_g_m3
           FROM readings
           WHERE device_id = ANY(%(ids)s) AND ts > %(after)s AND ts <= %(until)s
             AND temp_c IS NOT NULL AND rh_pct IS NOT NULL
           GROUP BY device_id
           HAVING max(ts) - min(ts) >= %(span)s""",
        {
            "g": GAS_CONSTANT_FACTOR,
            "c": MAGNUS_C_HPA,
            "a": MAGNUS_A,
            "b": MAGNUS_B_C,
            "k": ZERO_C_K,
            "ids": list(device_ids),
            "after": after,
            "until": until,
            "span": min_span,
        },
    ).fetchall()
    return {r["device_id"]: float(r["mean_g_m3"]) for r in rows}


def lock_fill_forecasts(conn: Conn) -> None:
    """Until this transaction ends, be the only evaluator fitting or reading stored forecasts:
    whoever comes second finds the first one's forecasts committed."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (FORECAST_LOCK,))


def load_fill_forecasts(
    conn: Conn, at: datetime, horizon: timedelta, device_ids: Sequence[str]
) -> dict[str, FillForecast] | None:
    """The forecasts stored for the instant ``at`` (these bins only), or None if nobody has
    fitted that instant yet."""
    known = conn.execute(
        "SELECT 1 FROM bin_forecast_instants WHERE at = %s AND horizon = %s", (at, horizon)
    ).fetchone()
    if known is None:
        return None
    rows = conn.execute(
        """SELECT device_id, target, fill_pct FROM bin_fill_forecasts
           WHERE at = %s AND horizon = %s AND device_id = ANY(%s)""",
        (at, horizon, list(device_ids)),
    ).fetchall()
    return {
        r["device_id"]: FillForecast(r["device_id"], at, r["target"], r["fill_pct"]) for r in rows
    }


def save_fill_forecasts(
    conn: Conn, at: datetime, horizon: timedelta, forecasts: Sequence[FillForecast]
) -> None:
    """Record the estate's forecasts for the instant ``at`` (its bins with readings)."""
    conn.execute(
        "INSERT INTO bin_forecast_instants (at, horizon, bins) VALUES (%s, %s, %s)",
        (at, horizon, len(forecasts)),
    )
    with conn.cursor().copy(
        "COPY bin_fill_forecasts (at, horizon, device_id, target, fill_pct) FROM STDIN"
    ) as copy:
        for f in forecasts:
            copy.write_row((at, horizon, f.device_id, f.target_ts, f.fill_pct))


def collection_records(
    conn: Conn, device_ids: Sequence[str], after: datetime, until: datetime
) -> dict[str, list[CollectionRecord]]:
    """Crews' records for these bins with ``after < ts <= until``, in time order."""
    out: dict[str, list[CollectionRecord]] = {}
    if not device_ids:
        return out
    rows = conn.execute(
        """SELECT device_id, ts, crew FROM collection_records
           WHERE device_id = ANY(%s) AND ts > %s AND ts <= %s ORDER BY device_id, ts""",
        (list(device_ids), after, until),
    ).fetchall()
    for r in rows:
        out.setdefault(r["device_id"], []).append(
            CollectionRecord(r["device_id"], r["ts"], r["crew"])
        )
    return out


# -- checkpoints -----------------------------------------------------------------------------


@dataclass(slots=True)
class Checkpoint:
    """A detector and how far it has got: ``fed_through`` by readings, ``horizon`` by time."""

    device_id: str
    detector: Detector
    fed_through: datetime
    horizon: datetime
    saved_horizon: datetime | None = None
    """Horizon of the copy in the database; for one never written, where it started."""


def load_checkpoints(
    conn: Conn, device_ids: Iterable[str] | None = None, *, at_or_before: datetime | None = None
) -> dict[str, Checkpoint]:
    """The newest checkpoint per device (or the newest with ``horizon <= at_or_before``).

    The states are pickles this package wrote itself; the table is not for other writers.
    Raises :class:`CheckpointFormatError` for a state written by rules of another layout.
    """
    rows = conn.execute(
        """SELECT DISTINCT ON (device_id) device_id, fed_through, horizon, state, state_format
           FROM alert_checkpoints
           WHERE (%(ids)s::text[] IS NULL OR device_id = ANY(%(ids)s))
             AND (%(before)s::timestamptz IS NULL OR horizon <= %(before)s)
           ORDER BY device_id, fed_through DESC""",
        {"ids": None if device_ids is None else list(device_ids), "before": at_or_before},
    ).fetchall()
    layout = state_format()
    stale = [r for r in rows if r["state_format"] != layout]
    if stale:
        raise CheckpointFormatError(len(stale), stale[0]["state_format"], layout)
    return {
        r["device_id"]: Checkpoint(
            r["device_id"],
            pickle.loads(bytes(r["state"])),
            r["fed_through"],
            r["horizon"],
            saved_horizon=r["horizon"],
        )
        for r in rows
    }


def save_checkpoints(
    conn: Conn, checkpoints: Iterable[Checkpoint], *, keep_every_s: float, keep_for_s: float
) -> None:
    """Store the newest state and thin the older ones.

    Older states are what a late reading re-evaluates from, so some are kept: at least
    ``keep_every_s`` of data time apart and no older than ``keep_for_s`` before the newest
    (always at least one older state).
    """
    checkpoints = list(checkpoints)
    layout = state_format()
    rows = [
        (c.device_id, c.fed_through, c.horizon, pickle.dumps(c.detector, protocol=5), layout)
        for c in checkpoints
    ]
    if not rows:
        return
    for c in checkpoints:
        c.saved_horizon = c.horizon
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO alert_checkpoints (device_id, fed_through, horizon, state, state_format)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (device_id, fed_through)
               DO UPDATE SET horizon = EXCLUDED.horizon, state = EXCLUDED.state,
                             state_format = EXCLUDED.state_format, saved_at = now()""",
            rows,
        )
    ids = [r[0] for r in rows]
    existing = conn.execute(
        "SELECT device_id, fed_through FROM alert_checkpoints WHERE device_id = ANY(%s)"
        " ORDER BY device_id, fed_through DESC",
        (ids,),
    ).fetchall()
    by_device: dict[str, list[datetime]] = {}
    for r in existing:
        by_device.setdefault(r["device_id"], []).append(r["fed_through"])
    doomed: list[tuple[str, datetime]] = []
    for device_id, stamps in by_device.items():
        newest = stamps[0]
        kept = [newest]
        for stamp in stamps[1:]:
            too_close = (kept[-1] - stamp).total_seconds() < keep_every_s and len(kept) > 1
            too_old = (newest - stamp).total_seconds() > keep_for_s and len(kept) > 1
            if too_close or too_old:
                doomed.append((device_id, stamp))
            else:
                kept.append(stamp)
    if doomed:
        conn.execute(
            "DELETE FROM alert_checkpoints c USING unnest(%s::text[], %s::timestamptz[])"
            " AS d(device_id, fed_through)"
            " WHERE c.device_id = d.device_id AND c.fed_through = d.fed_through",
            ([d for d, _ in doomed], [s for _, s in doomed]),
        )


# -- condition events ------------------------------------------------------------------------

EventKey = tuple[str, str, str, datetime, str]


def event_key(event: ConditionEvent) -> EventKey:
    """What makes two evaluations' events "the same event" for deduplication."""
    return (
        event.device_id,
        event.condition,
        event.transition.value,
        event.at,
        event.severity.label,
    )


def stored_event_keys(conn: Conn, events: Sequence[ConditionEvent]) -> set[EventKey]:
    if not events:
        return set()
    rows = conn.execute(
        """SELECT c.device_id, c.condition, c.transition, c.at, c.severity
           FROM condition_events c
           JOIN unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(device_id, condition, at)
             ON c.device_id = k.device_id AND c.condition = k.condition AND c.at = k.at
           WHERE c.superseded_at IS NULL""",
        (
            [e.device_id for e in events],
            [e.condition for e in events],
            [e.at for e in events],
        ),
    ).fetchall()
    return {(r["device_id"], r["condition"], r["transition"], r["at"], r["severity"]) for r in rows}


def events_after(conn: Conn, device_id: str, after: datetime) -> list[EventKey]:
    rows = conn.execute(
        "SELECT device_id, condition, transition, at, severity FROM condition_events"
        " WHERE device_id = %s AND at > %s AND superseded_at IS NULL",
        (device_id, after),
    ).fetchall()
    return [(r["device_id"], r["condition"], r["transition"], r["at"], r["severity"]) for r in rows]


def supersede_events(conn: Conn, keys: Iterable[EventKey]) -> int:
    keys = list(keys)
    if not keys:
        return 0
    cur = conn.execute(
        """UPDATE condition_events c SET superseded_at = now()
           FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[])
             AS k(device_id, condition, transition, at)
           WHERE c.device_id = k.device_id AND c.condition = k.condition
             AND c.transition = k.transition AND c.at = k.at AND c.superseded_at IS NULL""",
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
        ),
    )
    return cur.rowcount


def insert_condition_events(conn: Conn, events: Sequence[ConditionEvent]) -> None:
    if not events:
        return
    # COPY, not INSERT per row: a backfill writes hundreds of thousands.
    with (
        conn.cursor() as cur,
        cur.copy(
            """COPY condition_events (device_id, subject_id, condition, alert_type, transition,
                   at, since, severity, hazard, starts_clock, reason, evidence) FROM STDIN"""
        ) as copy,
    ):
        for e in events:
            copy.write_row(
                (
                    e.device_id,
                    e.subject_id,
                    e.condition,
                    e.alert_type.value,
                    e.transition.value,
                    e.at,
                    e.since,
                    e.severity.label,
                    e.hazard.value,
                    e.starts_statutory_clock,
                    e.reason,
                    Jsonb(e.evidence_map),
                )
            )


# -- the alert book --------------------------------------------------------------------------


def _severity(label: str) -> Severity:
    return Severity[label.upper()]


def alert_from_row(row: Mapping[str, Any]) -> Alert:
    return Alert(
        alert_id=row["id"],
        subject_id=row["subject_id"],
        alert_type=AlertType(row["alert_type"]),
        hazard=Hazard(row["hazard"]),
        status=AlertStatus(row["state"]),
        severity=_severity(row["severity"]),
        opened_at=row["opened_at"],
        since=row["since"],
        reason=row["reason"],
        evidence=tuple((str(k), v) for k, v in row["evidence"].items()),
        point_event=row["point_event"],
        active_sources=frozenset((d, c) for d, c in row["active_sources"]),
        sources=frozenset((d, c) for d, c in row["sources"]),
        cleared_at=row["cleared_at"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        resolution_note=row["resolution_note"],
        last_notified_at=row["last_notified_at"],
        reminders_sent=row["reminders_sent"],
        escalated_at=row["escalated_at"],
        statutory_clock_started_at=row["statutory_clock_started_at"],
    )


def load_book(
    conn: Conn, settings: LifecycleSettings, shards: Iterable[int] | None = None
) -> AlertBook:
    """The open and acknowledged alerts (of ``shards``, or all); lock their book first
    (:func:`lock_book`) if you will write."""
    if shards is None:
        rows = conn.execute("SELECT * FROM alerts WHERE state <> 'resolved'").fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM alerts WHERE state <> 'resolved' AND alert_shard(subject_id) = ANY(%s)",
            (sorted(shards),),
        ).fetchall()
    alerts = {}
    for row in rows:
        alert = alert_from_row(row)
        alerts[alert.key] = alert
    return AlertBook(settings=settings, alerts=alerts)


def lock_book(conn: Conn, shards: Iterable[int] | None = None) -> None:
    """Lock the alert book of ``shards`` (all of them by default) until the transaction ends.
    Always in ascending order, so two writers of overlapping shards cannot deadlock."""
    keys = sorted(ALL_SHARDS if shards is None else set(shards))
    # One statement: unnest yields the array in order and each row's lock is taken in turn.
    conn.execute(
        "SELECT pg_advisory_xact_lock(%s, s) FROM unnest(%s::int[]) AS s", (BOOK_LOCK, keys)
    ).fetchall()


def lock_alert(conn: Conn, alert_id: str) -> None:
    """Lock the book of the shard ``alert_id`` is in (nothing when there is no such alert:
    the caller's lookup then fails on its own)."""
    row = conn.execute("SELECT subject_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is not None:
        lock_book(conn, [shard_of(row["subject_id"])])


def _deadline_columns(
    alert: Alert, calendar: WorkingDayCalendar, investigation_ended_at: datetime | None
) -> dict[str, Any]:
    deadlines = alert_deadlines(
        alert, calendar=calendar, investigation_ended_at=investigation_ended_at
    )
    by_name = {d.milestone.value: d.due_at for d in deadlines}
    return {
        "investigate_due_at": by_name.get("investigate"),
        "summary_due_at": by_name.get("written_summary"),
        "safety_work_due_at": by_name.get("safety_work"),
        "make_safe_due_at": by_name.get("emergency_make_safe"),
        "deadlines": Jsonb(
            [
                {
                    "milestone": d.milestone.value,
                    "due_at": d.due_at.isoformat(),
                    "due_date": d.due_date.isoformat() if d.due_date else None,
                    "basis": d.basis,
                }
                for d in deadlines
            ]
        ),
    }


def save_alerts(
    conn: Conn,
    alerts: Iterable[Alert],
    subjects_by_id: Mapping[str, Subject],
    calendar: WorkingDayCalendar,
) -> None:
    """Insert or update alerts, with their statutory due dates recomputed."""
    alerts = list(alerts)
    if not alerts:
        return
    ended_by_id = {
        r["id"]: r["investigation_ended_at"]
        for r in conn.execute(
            "SELECT id, investigation_ended_at FROM alerts WHERE id = ANY(%s)",
            ([a.alert_id for a in alerts],),
        )
    }
    rows: list[dict[str, Any]] = []
    for alert in alerts:
        subject = subjects_by_id.get(alert.subject_id)
        ended = ended_by_id.get(alert.alert_id)
        values: dict[str, Any] = {
            "id": alert.alert_id,
            "subject_kind": subject.kind if subject else "home",
            "subject_id": alert.subject_id,
            "uprn": subject.uprn if subject else None,
            "patch": subject.patch if subject else None,
            "alert_type": alert.alert_type.value,
            "hazard": alert.hazard.value,
            "state": alert.status.value,
            "severity": alert.severity.label,
            "opened_at": alert.opened_at,
            "since": alert.since,
            "reason": alert.reason,
            "evidence": Jsonb(dict(alert.evidence)),
            "point_event": alert.point_event,
            "active_sources": Jsonb(sorted([list(s) for s in alert.active_sources])),
            "sources": Jsonb(sorted([list(s) for s in alert.sources])),
            "cleared_at": alert.cleared_at,
            "acknowledged_at": alert.acknowledged_at,
            "acknowledged_by": alert.acknowledged_by,
            "resolved_at": alert.resolved_at,
            "resolved_by": alert.resolved_by,
            "resolution_note": alert.resolution_note,
            "last_notified_at": alert.last_notified_at,
            "reminders_sent": alert.reminders_sent,
            "escalated_at": alert.escalated_at,
            "statutory_clock_started_at": alert.statutory_clock_started_at,
            **_deadline_columns(alert, calendar, ended),
        }
        rows.append(values)
    columns = list(rows[0])
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "id")
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO alerts ({', '.join(columns)}, updated_at)"
            f" VALUES ({', '.join('%(' + c + ')s' for c in columns)}, now())"
            f" ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()",
            rows,
        )


def insert_audit(
    conn: Conn,
    audit: Iterable[AuditEvent],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Append audit events; ``detail`` is stored as ``{"text": ...}`` plus any extra fields."""
    audit = list(audit)
    if not audit:
        return
    # COPY keeps the order (ids follow it) and is what a month's backfill trail needs.
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY alert_events (alert_id, at, actor, action, severity, detail) FROM STDIN"
        ) as copy,
    ):
        for a in audit:
            copy.write_row(
                (
                    a.alert_id,
                    a.at,
                    a.actor,
                    a.action.value,
                    a.severity.label if a.severity is not None else None,
                    Jsonb({"text": a.detail, **(extra or {}).get(a.alert_id, {})}),
                )
            )


def record_action(
    conn: Conn, alert_id: str, at: datetime, actor: str, action: str, detail: Mapping[str, Any]
) -> None:
    """An audit entry the lifecycle does not produce itself (commands, visits, notifications)."""
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, actor, action, detail)"
        " VALUES (%s, %s, %s, %s, %s)",
        (alert_id, at, actor, action, Jsonb(dict(detail))),
    )

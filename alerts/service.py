"""The evaluator: readings from the store through the detectors into the alert book.

How a cycle works
-----------------
The evaluator's clock is the *data clock*: the newest reading the store holds, less
``lateness_allowance``, never ahead of the wall clock. Each device's detector is fed its
readings with ``horizon < ts <= cutoff`` in time order and then advanced to the cutoff (which
is what lets "offline" fire). Following the data rather than the wall clock is what makes a
live run and a backfill of the same history agree, and it means an ingest outage does not
mark the whole estate offline: the platform being down is not the devices being down.

Condition events from all devices are folded into the :class:`~alerts.lifecycle.AlertBook`
in time order, ticking the book (auto-resolve, escalation, reminders) at each event's time
and at the cutoff. Events are deduplicated against those already stored, so re-running a
cycle from an older checkpoint (a crash between batches) changes nothing.

State
-----
Detectors live in memory between cycles. Each is written to ``alert_checkpoints`` at most once
per ``checkpoint_every`` of data time (and all of them when the evaluator closes): pickling
every detector every cycle would cost more than evaluating. After a crash a device restarts
from its last copy and re-reads what came after; the events it produces again are recognised
and dropped. Bins and homes also consume inputs besides readings (:class:`SideInputs`).

Late data
---------
A reading whose ``ts`` is at or before its device's horizon arrived later than the
allowance; the core refuses it (:class:`~alerts.errors.OutOfOrderError`) because rules are
state machines over time. The evaluator spots such readings by their ``received_at`` (a
watermark with :data:`LATE_MARGIN` for transactions that commit a little after stamping) and
re-evaluates that device from the newest stored checkpoint taken before the reading's time,
so the detector's state afterwards is exactly what a backfill would have. Events the replay
produces that were not stored before are applied; stored events it no longer produces are
marked superseded in ``condition_events``. An alert already raised (and perhaps already
acted on) is never retracted silently: the superseded event stays in the evidence. A reading
older than every kept checkpoint (``checkpoint_keep``, default 3 days) is stored but only a
backfill evaluates it. A crew's collection record that comes in after its time was evaluated
(the usual case: sheets arrive after the round) replays its bin the same way.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerts.awaab import WorkingDayCalendar
from alerts.detector import BinRuleSettings, Detector, HomeRuleSettings
from alerts.errors import AlertsError
from alerts.events import AlertType, ConditionEvent
from alerts.lifecycle import Alert, AlertBook, AuditEvent, LifecycleSettings, Outcome
from alerts.peers import on_grid, peer_changes, peer_moisture, summary_times
from alerts.readings import CollectionRecord, FillForecast, Item
from alerts.rule_config import RuleConfig
from alerts.shards import (
    ALL_SHARDS,
    FixedShards,
    Ownership,
    ShardsBusyError,
    SharedShards,
    shard_of,
)
from alerts.store import (
    Checkpoint,
    Conn,
    Subject,
    collection_records,
    event_key,
    events_after,
    fill_ranges,
    insert_audit,
    insert_condition_events,
    load_book,
    load_checkpoints,
    load_fill_forecasts,
    load_subjects,
    lock_book,
    lock_fill_forecasts,
    moisture_means,
    read_readings,
    save_alerts,
    save_checkpoints,
    save_fill_forecasts,
    stored_event_keys,
    supersede_events,
)
from firmware_contracts import Reading

__all__ = ["CycleReport", "Evaluator", "EvaluatorBusyError", "EvaluatorConfig", "fold_events"]

log = logging.getLogger(__name__)

LATE_MARGIN = timedelta(seconds=5)  # ingest stamps received_at moments before COMMIT
DEVICES_PER_QUERY = 500  # devices per query and per batch of checkpoints written

# What arrived since a time: readings, and crews' collection records (which come in after the
# round, usually after the evaluator has passed their time: late data like a late reading).
_ARRIVALS_SQL = """
    SELECT device_id, ts, received_at, true AS reading FROM readings
    WHERE received_at > %(since)s
    UNION ALL
    SELECT device_id, ts, recorded_at, false FROM collection_records
    WHERE recorded_at > %(since)s"""

Hook = Callable[[Conn, "CycleResult"], object]
Progress = Callable[[int, int, int], object]


class EvaluatorBusyError(AlertsError, RuntimeError):
    """Another evaluator holds this database (two would fight over the checkpoints)."""


@dataclass(frozen=True, slots=True)
class EvaluatorConfig:
    lateness_allowance: timedelta = timedelta(minutes=2)
    """How late a reading may arrive and still be evaluated in order without a replay."""
    checkpoint_every: timedelta = timedelta(hours=6)
    """A device's detector is written at most this often in data time (and when the
    evaluator stops): pickling every detector every cycle would cost more than evaluating.
    After a crash, each device re-reads at most this much from its last copy."""
    checkpoint_keep: timedelta = timedelta(days=3)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    home_rules: HomeRuleSettings | None = None
    bin_rules: BinRuleSettings | None = None
    rules: RuleConfig | None = None
    """Per-patch, per-property and per-device settings (a rules file); when given, it also
    supplies the defaults and ``home_rules`` / ``bin_rules`` are ignored."""

    def __post_init__(self) -> None:
        if self.lateness_allowance < timedelta(0):
            raise ValueError("lateness_allowance must not be negative")
        if self.checkpoint_every <= timedelta(0) or self.checkpoint_keep <= timedelta(0):
            raise ValueError("checkpoint_every and checkpoint_keep must be positive")


@dataclass(slots=True)
class CycleReport:
    cutoff: datetime | None = None
    readings: int = 0
    devices: int = 0
    events: int = 0
    duplicate_events: int = 0
    late_readings: int = 0
    replays: int = 0
    superseded: int = 0
    too_late: int = 0
    alerts_changed: int = 0
    alerts_opened: int = 0
    fill_below_empty: int = 0
    """Fill readings below 0 % (sensor noise on an empty bin): evaluated as empty."""
    fill_over_full: int = 0
    """Fill readings over 100 % (waste heaped above the rim): evaluated as they are."""
    newest_received_at: datetime | None = None
    shards: tuple[int, ...] = ()
    """The shards this cycle evaluated."""

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else list(v) if k == "shards" else v)
            for k, v in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one cycle changed, for the hooks that notify people and command devices."""

    report: CycleReport
    changed: tuple[Alert, ...]
    audit: tuple[AuditEvent, ...]
    subjects: Mapping[str, Subject]


def fold_events(
    book: AlertBook, events: Iterable[ConditionEvent], until: datetime
) -> tuple[AlertBook, dict[str, Alert], list[AuditEvent]]:
    """Apply events in time order, ticking the book at each event's time and at ``until``."""
    changed: dict[str, Alert] = {}
    audit: list[AuditEvent] = []
    ordered = sorted(events, key=lambda e: e.at)  # stable: device order, then detector order

    def take(outcome: Outcome) -> AlertBook:
        changed.update((a.alert_id, a) for a in outcome.changed)
        audit.extend(outcome.audit)
        return outcome.book

    # Only alerts with something due are ticked: a heap of (due time, key), rechecked when
    # popped because an alert's deadline moves as events and ticks change it.
    due: list[tuple[datetime, str, str]] = []

    def schedule(book: AlertBook, keys: Iterable[tuple[str, AlertType]]) -> None:
        for key in keys:
            at = book.due_at(key)
            if at is not None:
                heapq.heappush(due, (at, key[0], key[1].value))

    def tick(book: AlertBook, now: datetime) -> AlertBook:
        keys: set[tuple[str, AlertType]] = set()
        while due and due[0][0] <= now:
            _, subject_id, alert_type = heapq.heappop(due)
            keys.add((subject_id, AlertType(alert_type)))
        if not keys:
            return book
        book = take(book.tick(now, keys))
        schedule(book, keys)
        return book

    schedule(book, book.alerts)
    for event in ordered:
        book = tick(book, event.at)
        book = take(book.apply(event))
        schedule(book, [(event.subject_id, event.alert_type)])
    return tick(book, until), changed, audit


class Evaluator:
    """Runs evaluation cycles against one database; keep one per process.

    Detectors stay in memory between cycles (the database copy is the restart point), so an
    idle device costs a pickle only when something about it changes.
    """

    def __init__(
        self,
        conn: Conn,
        config: EvaluatorConfig | None = None,
        *,
        hooks: Sequence[Hook] = (),
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shards: Iterable[int] | None = None,
        share: bool = False,
    ) -> None:
        """``share``: take a fair share of the shards among the live evaluators, rebalanced
        every cycle (``civic alerts run``); otherwise hold ``shards`` (default: all of them)
        or raise :class:`EvaluatorBusyError` when another evaluator holds any of them."""
        self.conn = conn
        self.config = config or EvaluatorConfig()
        self.hooks = list(hooks)
        self.wall_clock = wall_clock
        self.calendar = WorkingDayCalendar()
        self._detectors: dict[str, Checkpoint] | None = None
        self._seen_in_margin: set[tuple[str, datetime]] | None = None
        self.ownership: Ownership
        if share:
            self.ownership = SharedShards(conn)
            return
        try:
            self.ownership = FixedShards(conn, ALL_SHARDS if shards is None else shards)
        except ShardsBusyError as exc:
            raise EvaluatorBusyError(str(exc)) from exc

    @property
    def shards(self) -> frozenset[int]:
        """The shards this evaluator holds now."""
        return self.ownership.owned

    @property
    def leads(self) -> bool:
        """Whether this evaluator runs the estate-wide steps (it holds shard 0)."""
        return 0 in self.ownership.owned

    def close(self) -> None:
        """Write the detectors that moved since their last copy, then let go of the shards."""
        try:
            self.flush()
        finally:
            self.ownership.close(self.conn)

    def rebalance(self) -> tuple[frozenset[int], frozenset[int]]:
        """Take this evaluator's fair share of the shards and give up any excess (after
        writing every detector, so the next owner starts where this one stopped). Returns
        (gained, released); the detectors are reloaded from the database when either moved."""
        gained, excess = self.ownership.rebalance(self.conn)
        if not gained and not excess:
            return gained, excess
        self.flush()
        self.ownership.release(self.conn, excess)
        self._detectors = None
        self._seen_in_margin = None
        log.info(
            "alert shards: took %s, released %s; now %d held",
            sorted(gained),
            sorted(excess),
            len(self.ownership.owned),
        )
        return gained, excess

    def flush(self) -> int:
        """Write every detector whose state is newer than its copy in the database."""
        if self._detectors is None:
            return 0
        dirty = [c for c in self._detectors.values() if c.saved_horizon != c.horizon]
        with self.conn.transaction():
            self._save_checkpoints(dirty)
        return len(dirty)

    def _save_checkpoints(self, checkpoints: Iterable[Checkpoint]) -> None:
        save_checkpoints(
            self.conn,
            checkpoints,
            keep_every_s=self.config.checkpoint_every.total_seconds(),
            keep_for_s=self.config.checkpoint_keep.total_seconds(),
        )

    # -- backfill ---------------------------------------------------------------------------

    def reset(self, since: datetime) -> None:
        """Forget evaluation from ``since`` on, so the next cycle re-evaluates it from scratch.

        Alerts opened from ``since`` on go (with their audit trail, notifications and the
        commands' link); alerts opened earlier stay. Every detector restarts at ``since``.
        """
        conn, shards = self.conn, sorted(self.shards)
        with conn.transaction():
            lock_book(conn, shards)
            conn.execute(
                "DELETE FROM condition_events WHERE at >= %s AND alert_shard(subject_id) = ANY(%s)",
                (since, shards),
            )
            conn.execute(
                "DELETE FROM alerts WHERE opened_at >= %s AND alert_shard(subject_id) = ANY(%s)",
                (since, shards),
            )
            if self.shards == ALL_SHARDS:
                conn.execute("DELETE FROM alert_checkpoints")
            else:
                conn.execute(
                    "DELETE FROM alert_checkpoints WHERE device_id = ANY(%s)",
                    (sorted(_owned_subjects(load_subjects(conn), self.shards)),),
                )
            conn.cursor().executemany(
                """INSERT INTO alert_shards (shard, cutoff, watermark, evaluate_from)
                   VALUES (%s, NULL, NULL, %s)
                   ON CONFLICT (shard) DO UPDATE SET cutoff = NULL, watermark = NULL,
                       evaluate_from = EXCLUDED.evaluate_from, updated_at = now()""",
                [(s, since) for s in shards],
            )
        self._detectors = None
        self._seen_in_margin = None

    # -- one cycle --------------------------------------------------------------------------

    def run_cycle(self, *, notify: bool = True, progress: Progress | None = None) -> CycleReport:
        """Evaluate what has arrived in this evaluator's shards, in one transaction (after
        rebalancing the shards, if shared); ``progress(devices done, devices, readings so
        far)`` is called as each batch of devices is done (a backfill is long)."""
        self.rebalance()
        if not self.shards:
            return CycleReport()  # more evaluators than shards: this one waits its turn
        try:
            with self.conn.transaction():
                return self._cycle(notify=notify, progress=progress)
        except BaseException:
            # The in-memory detectors may have moved past what was committed.
            self._detectors = None
            self._seen_in_margin = None
            raise

    def _cycle(self, *, notify: bool, progress: Progress | None) -> CycleReport:
        conn = self.conn
        report = CycleReport()
        shards = sorted(self.shards)
        report.shards = tuple(shards)
        lock_book(conn, shards)
        state = _shard_state(conn, shards)
        arrivals = self._arrivals(state["watermark"])
        cutoff = self._next_cutoff(state["cutoff"], arrivals.newest_ts)
        if cutoff is None:
            return report
        report.newest_received_at = arrivals.newest_received
        report.cutoff = cutoff

        everyone = load_subjects(conn)
        subjects = _owned_subjects(everyone, self.shards)
        if self._detectors is None:
            self._detectors = load_checkpoints(conn, sorted(subjects))
        window = [r for r in arrivals.window if r["device_id"] in subjects]
        late_by_device = self._late_devices(window, report)
        run = self._start_run(everyone, subjects, cutoff, state["evaluate_from"], report)
        superseded = self._replay_late(run, late_by_device)
        device_ids = sorted(set(subjects) - set(late_by_device))
        for start in range(0, len(device_ids), DEVICES_PER_QUERY):
            chunk = device_ids[start : start + DEVICES_PER_QUERY]
            self._evaluate_chunk(run, chunk)
            if progress is not None:
                progress(start + len(chunk), len(device_ids), report.readings)

        changed, audit = self._record(run, superseded)
        self._save_checkpoints(run.to_save.values())
        conn.cursor().executemany(
            """INSERT INTO alert_shards (shard, cutoff, watermark) VALUES (%s, %s, %s)
               ON CONFLICT (shard) DO UPDATE SET cutoff = EXCLUDED.cutoff,
                   watermark = EXCLUDED.watermark, updated_at = now()""",
            [(s, cutoff, arrivals.newest_received) for s in shards],
        )
        if notify:
            result = CycleResult(report, tuple(changed), tuple(audit), subjects)
            for hook in self.hooks:
                hook(conn, result)
        return report

    def _arrivals(self, watermark: datetime | None) -> _Arrivals:
        """What arrived since the last cycle (with a margin for late commits), and the newest
        reading time and arrival time among it."""
        conn = self.conn
        if watermark is None:
            # The first cycle (or the first after a reset) reads the whole history anyway:
            # take the newest stamps from the indexes and keep only the last margin's keys,
            # not one row per stored reading (a 30-day estate is tens of millions).
            newest = conn.execute(
                "SELECT max(ts) AS ts, max(received_at) AS received FROM readings"
            ).fetchone()
            newest_ts = newest["ts"] if newest else None
            newest_received = newest["received"] if newest else None
            window = (
                conn.execute(_ARRIVALS_SQL, {"since": newest_received - LATE_MARGIN}).fetchall()
                if newest_received is not None
                else []
            )
            return _Arrivals(window, newest_ts, newest_received)
        first_cycle = self._seen_in_margin is None
        window_start = watermark if first_cycle else watermark - LATE_MARGIN
        window = conn.execute(_ARRIVALS_SQL, {"since": window_start}).fetchall()
        newest_ts = max((r["ts"] for r in window if r["reading"]), default=None)
        newest_received = max((r["received_at"] for r in window), default=watermark)
        return _Arrivals(window, newest_ts, newest_received)

    def _next_cutoff(self, cutoff: datetime | None, newest_ts: datetime | None) -> datetime | None:
        """The data clock: the newest reading (never past the wall clock) less the lateness
        allowance; it never goes back."""
        if newest_ts is None:
            return cutoff
        candidate = min(newest_ts, self.wall_clock()) - self.config.lateness_allowance
        return candidate if cutoff is None else max(cutoff, candidate)

    def _late_devices(
        self, window: list[dict[str, Any]], report: CycleReport
    ) -> dict[str, datetime]:
        """Devices with readings received since the last cycle but at or before their
        horizon, each with its earliest such reading."""
        assert self._detectors is not None
        late_by_device: dict[str, datetime] = {}
        seen = self._seen_in_margin or set()
        for r in window:
            key = (r["device_id"], r["ts"])
            current = self._detectors.get(r["device_id"])
            if current is None or r["ts"] > current.horizon or key in seen:
                continue
            report.late_readings += 1
            earliest = late_by_device.get(r["device_id"])
            late_by_device[r["device_id"]] = min(earliest or r["ts"], r["ts"])
        self._seen_in_margin = {(r["device_id"], r["ts"]) for r in window}
        return late_by_device

    def _start_run(
        self,
        everyone: dict[str, Subject],
        subjects: dict[str, Subject],
        cutoff: datetime,
        evaluate_from: datetime | None,
        report: CycleReport,
    ) -> _CycleRun:
        assert self._detectors is not None
        cfg = self.config
        bin_rules = cfg.rules.bin if cfg.rules else cfg.bin_rules or BinRuleSettings()
        side_inputs = SideInputs(
            self.conn,
            everyone,
            bin_rules.stuck.stuck_after,
            bin_rules.overflow.forecast_horizon,
            records_after=min((c.horizon for c in self._detectors.values()), default=evaluate_from),
            own=subjects.keys(),
        )
        return _CycleRun(subjects, self._detectors, cutoff, evaluate_from, side_inputs, report)

    def _replay_late(
        self, run: _CycleRun, late_by_device: dict[str, datetime]
    ) -> set[tuple[Any, ...]]:
        """Replay each device with late readings from a checkpoint before them; returns the
        keys of stored events the replay no longer produces."""
        superseded: set[tuple[Any, ...]] = set()
        for device_id, earliest in sorted(late_by_device.items()):
            restart = load_checkpoints(self.conn, [device_id], at_or_before=earliest).get(device_id)
            if restart is None:
                run.report.too_late += 1
                log.warning(
                    "reading for %s at %s is older than every kept checkpoint: stored, "
                    "evaluated only by a backfill",
                    device_id,
                    earliest.isoformat(),
                )
                continue
            run.report.replays += 1
            old = set(events_after(self.conn, device_id, restart.horizon))
            run.detectors[device_id] = restart
            replayed = self._feed(
                restart, self.conn, run.cutoff, run.evaluate_from, run.report, run.side_inputs
            )
            superseded |= old - {event_key(e) for e in replayed}
            run.events += replayed
            run.to_save[device_id] = restart
        return superseded

    def _evaluate_chunk(self, run: _CycleRun, chunk: list[str]) -> None:
        """Feed one query's worth of devices their new readings up to the cutoff."""
        after: dict[str, datetime | None] = {
            d: run.detectors[d].horizon if d in run.detectors else None for d in chunk
        }
        stream = read_readings(self.conn, chunk, after, run.cutoff, since=run.evaluate_from)
        next_read = next(stream, None)
        for device_id in chunk:
            readings: list[Reading] = []
            if next_read is not None and next_read[0] == device_id:
                readings = next_read[1]
                next_read = next(stream, None)
            self._evaluate_device(run, device_id, readings)
        if next_read is not None:
            stream.close()
            raise RuntimeError(f"readings for {next_read[0]} came back out of device order")
        # Written chunk by chunk so a backfill never holds every detector's pickle at once.
        self._save_checkpoints([run.to_save.pop(d) for d in chunk if d in run.to_save])

    def _evaluate_device(self, run: _CycleRun, device_id: str, readings: list[Reading]) -> None:
        checkpoint = run.detectors.get(device_id)
        if checkpoint is None:
            if not readings:
                return  # never reported: nothing to judge yet
            detector = self._new_detector(run.subjects[device_id])
            first = readings[0].ts
            # Counted as written at its start: after a crash a device never written
            # is simply rebuilt from its readings, so the first write can wait too.
            checkpoint = Checkpoint(device_id, detector, first, first, saved_horizon=first)
            run.detectors[device_id] = checkpoint
            inputs_after = first - _JUST_BEFORE
        else:
            inputs_after = checkpoint.horizon
        items = run.side_inputs.merge(device_id, readings, inputs_after, run.cutoff)
        fed = checkpoint.detector.feed(items)
        fed += checkpoint.detector.advance(run.cutoff)
        checkpoint.horizon = run.cutoff
        run.report.readings += len(readings)
        _count_out_of_range(run.report, readings)
        if readings:
            checkpoint.fed_through = readings[-1].ts
        if readings or fed:
            run.report.devices += 1
            saved = checkpoint.saved_horizon
            if saved is None or run.cutoff - saved >= self.config.checkpoint_every:
                run.to_save[device_id] = checkpoint
        run.events += fed

    def _record(
        self, run: _CycleRun, superseded: set[tuple[Any, ...]]
    ) -> tuple[list[Alert], list[AuditEvent]]:
        """Store the cycle's new events and fold them into the alert book."""
        conn, report = self.conn, run.report
        report.superseded = supersede_events(conn, superseded)
        stored = stored_event_keys(conn, run.events)
        fresh = [e for e in run.events if event_key(e) not in stored]
        report.duplicate_events = len(run.events) - len(fresh)
        report.events = len(fresh)
        insert_condition_events(conn, fresh)

        book = load_book(conn, self.config.lifecycle, self.shards)
        _, changed, audit = fold_events(book, fresh, run.cutoff)
        save_alerts(conn, changed.values(), _subjects_by_subject(run.subjects), self.calendar)
        insert_audit(conn, audit)
        report.alerts_changed = len(changed)
        report.alerts_opened = sum(1 for a in audit if a.action.value == "opened")
        return list(changed.values()), audit

    def _new_detector(self, subject: Subject) -> Detector:
        cfg = self.config
        if cfg.rules is None:
            return subject.detector(cfg.home_rules, cfg.bin_rules)
        if subject.kind == "home":
            home = cfg.rules.for_home(subject.uprn or "", subject.patch, subject.device_id)
            return subject.detector(home_settings=home)
        return subject.detector(bin_settings=cfg.rules.for_bin(subject.device_id, subject.patch))

    def _feed(
        self,
        checkpoint: Checkpoint,
        conn: Conn,
        cutoff: datetime,
        evaluate_from: datetime | None,
        report: CycleReport,
        side_inputs: SideInputs,
    ) -> list[ConditionEvent]:
        device_id = checkpoint.device_id
        stream = read_readings(
            conn, [device_id], {device_id: checkpoint.fed_through}, cutoff, since=evaluate_from
        )
        readings = dict(stream).get(device_id, [])
        items = side_inputs.merge(device_id, readings, checkpoint.horizon, cutoff)
        events = checkpoint.detector.feed(items)
        events += checkpoint.detector.advance(cutoff)
        checkpoint.horizon = cutoff
        if readings:
            checkpoint.fed_through = readings[-1].ts
        report.readings += len(readings)
        _count_out_of_range(report, readings)
        report.devices += 1
        return events


def _count_out_of_range(report: CycleReport, readings: list[Reading]) -> None:
    """Count fill readings the contract allows but a level cannot be (bins' rules handle them:
    :func:`alerts.rules.bins.fill_level`), so an estate's odd sensors are visible."""
    for r in readings:
        if r.fill_pct is not None and not 0.0 <= r.fill_pct <= 100.0:
            if r.fill_pct < 0.0:
                report.fill_below_empty += 1
            else:
                report.fill_over_full += 1


@dataclass(frozen=True, slots=True)
class _Arrivals:
    window: list[dict[str, Any]]
    newest_ts: datetime | None
    newest_received: datetime | None


@dataclass(slots=True)
class _CycleRun:
    """What one cycle carries from device to device: where it stops, and what it produced."""

    subjects: dict[str, Subject]
    detectors: dict[str, Checkpoint]
    cutoff: datetime
    evaluate_from: datetime | None
    side_inputs: SideInputs
    report: CycleReport
    events: list[ConditionEvent] = field(default_factory=list)
    to_save: dict[str, Checkpoint] = field(default_factory=dict)


_JUST_BEFORE = timedelta(microseconds=1)  # PostgreSQL's timestamp resolution
FORECAST_EVERY = timedelta(days=1)
"""Fill forecasts are fitted for every bin at once (tens of milliseconds a bin on four weeks
of readings, see the routing forecast benchmark): once a day at 00:00 UTC, for the next
``forecast_horizon``, not at every peer-summary instant."""


MOISTURE_WINDOW = timedelta(days=1)
"""Homes' moisture is compared as a day's mean: a shower or a pan of pasta is an hour, a home
that holds more water than its neighbours does so all day."""
MOISTURE_MIN_SPAN = 0.75
"""A home's readings must span this share of the window for its mean to stand for the day."""


class SideInputs:
    """What rules need besides readings, merged into each device's items in time order.

    At fixed instants of data time (:func:`alerts.peers.summary_times`), computed from the
    store on first use in a cycle: peer summaries (:mod:`alerts.peers`: bins' fill changes,
    occupied homes' moisture) and, once a day (:data:`FORECAST_EVERY`), bins' fill forecast for
    the next ``forecast_horizon`` (routing's model, fitted on the readings before the instant).
    Fixed instants, not cycle times, keep a live run and a backfill equal. And the crews'
    collection records at their own times (one read per cycle, from ``records_after``: roughly
    where the cycle's bins start).

    ``subjects`` is the whole estate and ``own`` the devices this evaluator's shards hold:
    inputs are made for its own devices only, but a peer summary reads every peer (whichever
    shard it is in), and the forecast pools each waste stream across the estate as routing
    does, so each device's inputs are the same however the estate is sharded.
    """

    def __init__(
        self,
        conn: Conn,
        subjects: Mapping[str, Subject],
        window: timedelta,
        forecast_horizon: timedelta,
        records_after: datetime | None = None,
        own: Iterable[str] | None = None,
    ) -> None:
        self.conn = conn
        self.records_after = records_after
        self.window = window
        self.forecast_horizon = forecast_horizon
        every_bin = [d for d, s in subjects.items() if s.kind == "bin"]
        self.group_of = {d: (subjects[d].patch, subjects[d].waste_stream) for d in every_bin}
        mine = set(subjects if own is None else own)
        self.bins = sorted(d for d in every_bin if d in mine)
        own_groups = {self.group_of[d] for d in self.bins}
        self.peers = sorted(d for d in every_bin if self.group_of[d] in own_groups)
        occupied = sorted(d for d, s in subjects.items() if s.kind == "home" and not s.void)
        own_homes = [d for d in occupied if d in mine]
        self.home_peers = occupied if own_homes else []
        self._own_bins = frozenset(self.bins)
        self._own_homes = frozenset(own_homes)
        # Per kind, so a home never makes the bins' forecasts fitted (nor a bin the homes'
        # summaries) at an instant only the other kind reaches.
        self._bins_at: dict[datetime, dict[str, list[Item]]] = {}
        self._homes_at: dict[datetime, dict[str, list[Item]]] = {}
        self._records: dict[str, list[CollectionRecord]] = {}
        self._records_span: tuple[datetime, datetime] | None = None

    def merge(
        self, device_id: str, readings: list[Reading], after: datetime, until: datetime
    ) -> Sequence[Item]:
        """``readings`` with this device's inputs for instants in ``(after, until]``."""
        if device_id in self._own_bins:
            extra = self._summaries(device_id, after, until, self._bins_at, self._bin_inputs_at)
            extra += [r for r in self._records_for(device_id, after, until) if r.ts > after]
        elif device_id in self._own_homes:
            extra = self._summaries(device_id, after, until, self._homes_at, self._home_inputs_at)
        else:
            return readings
        if not extra:
            return readings
        # Inputs at the same instant as a reading come after it: they are taken from it.
        return sorted([*readings, *extra], key=lambda i: (i.ts, not isinstance(i, Reading)))

    @staticmethod
    def _summaries(
        device_id: str,
        after: datetime,
        until: datetime,
        cache: dict[datetime, dict[str, list[Item]]],
        inputs_at: Callable[[datetime], dict[str, list[Item]]],
    ) -> list[Item]:
        extra: list[Item] = []
        for at in summary_times(after, until):
            if at not in cache:
                cache[at] = inputs_at(at)
            extra += cache[at].get(device_id, [])
        return extra

    def _records_for(
        self, device_id: str, after: datetime, until: datetime
    ) -> list[CollectionRecord]:
        # One query per cycle for every bin; again only if a device reaches further back.
        span = self._records_span
        if span is None or after < span[0] or until > span[1]:
            start = after if self.records_after is None else min(after, self.records_after)
            self._records = collection_records(self.conn, self.bins, start, until)
            self._records_span = (start, until)
        return [r for r in self._records.get(device_id, []) if r.ts <= until]

    def _bin_inputs_at(self, at: datetime) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        ranges = fill_ranges(self.conn, self.peers, at - self.window, at)
        for device_id, change in peer_changes(
            ranges, self.group_of, at=at, window=self.window
        ).items():
            if device_id in self._own_bins:
                out.setdefault(device_id, []).append(change)
        if not on_grid(at, FORECAST_EVERY):
            return out
        for device_id, forecast in self._forecasts_at(at).items():
            out.setdefault(device_id, []).append(forecast)
        return out

    def _home_inputs_at(self, at: datetime) -> dict[str, list[Item]]:
        window = MOISTURE_WINDOW
        means = moisture_means(
            self.conn, self.home_peers, at - window, at, window * MOISTURE_MIN_SPAN
        )
        return {
            device_id: [summary]
            for device_id, summary in peer_moisture(means, at=at, window=window).items()
            if device_id in self._own_homes
        }

    def _forecasts_at(self, at: datetime) -> dict[str, FillForecast]:
        """This evaluator's bins' forecasts for the instant ``at``: fitted once for the whole
        estate by the first evaluator to get there (a fit pools each stream across the estate,
        so it cannot be split by shard), stored, and read by the others.

        On a connection of its own, committed at once: the cycle's transaction may last a
        whole backfill, and another evaluator must not wait for it to read a forecast."""
        info = self.conn.info
        with (
            psycopg.connect(info.dsn, password=info.password, row_factory=dict_row) as side,
            side.transaction(),
        ):
            lock_fill_forecasts(side)
            stored = load_fill_forecasts(side, at, self.forecast_horizon, self.bins)
            if stored is not None:
                return stored
            every = fit_fill_forecasts(side, at, self.forecast_horizon)
            save_fill_forecasts(side, at, self.forecast_horizon, every)
        return {f.device_id: f for f in every if f.device_id in self._own_bins}


def fit_fill_forecasts(conn: Conn, at: datetime, horizon: timedelta) -> list[FillForecast]:
    """Routing's fill forecast of every bin with readings before ``at``, ``horizon`` ahead."""
    from forecast.bins import forecast_bins

    target = at + horizon
    return [
        FillForecast(f.device_id, at, target, max(f.forecast_at_visit_pct, 0.0))
        for f in forecast_bins(conn, target, now=at)
    ]


def _owned_subjects(subjects: Mapping[str, Subject], shards: frozenset[int]) -> dict[str, Subject]:
    """The devices whose subject (a home's UPRN, a bin's device id) is in ``shards``."""
    if shards == ALL_SHARDS:
        return dict(subjects)
    return {d: s for d, s in subjects.items() if shard_of(s.subject_id or d) in shards}


def _shard_state(conn: Conn, shards: Sequence[int]) -> dict[str, datetime | None]:
    """The shards' clocks merged: normally all equal (one evaluator advances them together);
    after a takeover the newest cutoff (the clock never goes back) and the oldest watermark
    (so no shard misses a late arrival)."""
    rows = conn.execute(
        "SELECT cutoff, watermark, evaluate_from FROM alert_shards WHERE shard = ANY(%s)",
        (list(shards),),
    ).fetchall()

    def pick(column: str, choose: Callable[[list[datetime]], datetime]) -> datetime | None:
        values = [r[column] for r in rows if r[column] is not None]
        return choose(values) if values else None

    return {
        "cutoff": pick("cutoff", max),
        "watermark": pick("watermark", min),
        "evaluate_from": pick("evaluate_from", min),
    }


def _subjects_by_subject(subjects: Mapping[str, Subject]) -> dict[str, Subject]:
    """Subjects keyed by subject id (a home's UPRN), which is what alerts carry."""
    return {s.subject_id: s for s in subjects.values()}


# -- the long-running service -----------------------------------------------------------------

CYCLE_INTERVAL_S = 1.0  # evaluation lag is about this plus a cycle's work; tests shrink it


def run_service(
    database_url: str,
    evaluator_factory: Callable[[Conn], Evaluator],
    steps: Sequence[Callable[[Conn, datetime], None]] = (),
    *,
    lead_steps: Sequence[Callable[[Conn, datetime], None]] = (),
    stop: threading.Event | None = None,
    once: bool = False,
    interval_s: float = CYCLE_INTERVAL_S,
    on_cycle: Callable[[CycleReport], None] | None = None,
) -> int:
    """Evaluate, then run each step, every ``interval_s`` until ``stop`` is set.

    ``lead_steps`` are the estate-wide ones (publishing device commands, digests, overdue
    escalation): only the evaluator holding shard 0 runs them, so several evaluators never
    do them twice; when it dies, shard 0's next owner carries on with them.

    A lost database connection takes this evaluator's shards with it (their locks were the
    session's): it reconnects with a new evaluator, which takes its share again from the
    checkpoints, while the others may already have taken them over.
    """
    from store.db import StoreError, connect

    stop = stop or threading.Event()
    loop = _ServiceLoop(evaluator_factory, steps, lead_steps, stop, once, interval_s, on_cycle)
    conn = connect(database_url)  # a wrong URL fails here, at once
    while True:
        try:
            with conn:
                loop.serve(conn)
            return loop.cycles
        except psycopg.OperationalError as exc:
            if once:
                raise
            log.warning("lost the database, reconnecting: %s", exc)
        while not stop.wait(max(interval_s, 1.0)):
            try:
                conn = connect(database_url)
                break
            except StoreError as exc:
                log.warning("database unreachable, retrying: %s", exc)
        else:
            return loop.cycles


@dataclass(slots=True)
class _ServiceLoop:
    evaluator_factory: Callable[[Conn], Evaluator]
    steps: Sequence[Callable[[Conn, datetime], None]]
    lead_steps: Sequence[Callable[[Conn, datetime], None]]
    stop: threading.Event
    once: bool
    interval_s: float
    on_cycle: Callable[[CycleReport], None] | None
    cycles: int = 0

    def serve(self, conn: Conn) -> None:
        """Cycle on one connection until stopped; raises when the connection is lost."""
        evaluator = self.evaluator_factory(conn)
        try:
            while True:
                started = time.monotonic()
                try:
                    report = evaluator.run_cycle()
                    for step in [*self.steps, *(self.lead_steps if evaluator.leads else ())]:
                        step(conn, datetime.now(UTC))
                except psycopg.OperationalError as exc:
                    if self.once or conn.broken:
                        raise
                    log.warning("alerts cycle failed, retrying: %s", exc)
                    self.stop.wait(max(self.interval_s, 1.0))
                    continue
                self.cycles += 1
                if self.on_cycle is not None:
                    self.on_cycle(report)
                wait = max(0.0, self.interval_s - (time.monotonic() - started))
                if self.once or self.stop.wait(wait):
                    break
        finally:
            if not conn.broken:
                evaluator.close()

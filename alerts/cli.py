"""``civic alerts ...``: run the evaluator, and list, inspect and act on alerts.

Every command takes ``--format json`` for scripts. Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common.cli import duration, print_table, when
from store.db import connect_configured

__all__ = ["register"]

log = logging.getLogger(__name__)

_STATES = ("open", "acknowledged", "resolved")
_SEVERITIES = ("info", "watch", "act", "urgent", "emergency")
_MILESTONES = (
    "investigate",
    "written_summary",
    "safety_work",
    "preventative_work_start",
    "preventative_work_physical_start",
    "emergency_make_safe",
)


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser(
        "alerts",
        help="damp, cold, frost and bin alerts: run, list, acknowledge, resolve, evidence",
        description="Alerts for housing officers and waste crews, with Awaab's Law clocks.",
    )
    commands = alerts.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    _register_evaluation(commands)
    _register_lifecycle(commands)
    _register_statutory(commands)
    _register_setup(commands)


def _fmt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _register_evaluation(commands: Any) -> None:
    """``run`` and ``backfill``: the evaluator, live or over history."""
    run = commands.add_parser(
        "run",
        help="evaluate readings into alerts continuously; send notifications and commands",
        description=(
            "Evaluate new readings every interval, queue and deliver notifications "
            "(CIVIC_SMTP_URL for email), publish frost-protection commands and track their acks."
        ),
    )
    run.add_argument("--once", action="store_true", help="one cycle, then exit")
    run.add_argument("--interval", type=float, help="seconds between cycles")
    run.add_argument("--no-mqtt", action="store_true", help="do not publish device commands")
    _fmt(run)
    run.set_defaults(func=_run)

    backfill = commands.add_parser(
        "backfill",
        help="re-evaluate history from a time, as the live service would have",
        description=(
            "Forget alerts opened since T and re-evaluate every device's readings from T. "
            "Nobody is notified unless --notify is given."
        ),
    )
    backfill.add_argument("--since", required=True, help="RFC 3339 time, date, or age (7d)")
    backfill.add_argument("--notify", action="store_true", help="queue notifications too")
    _fmt(backfill)
    backfill.set_defaults(func=_backfill)


def _register_lifecycle(commands: Any) -> None:
    """``list``, ``show``, ``ack`` and ``resolve``: an officer's work on alerts."""
    listing = commands.add_parser("list", help="list alerts")
    listing.add_argument("--type", dest="alert_type", help="alert type, e.g. damp_mould")
    listing.add_argument("--state", choices=(*_STATES, "active"), help="active: not resolved")
    listing.add_argument("--subject", help="UPRN or bin device id")
    listing.add_argument("--patch")
    listing.add_argument("--since", help="opened at or after (RFC 3339, date, or age)")
    listing.add_argument(
        "--overdue",
        action="store_true",
        help="only active alerts with an Awaab's Law due date passed and its step not recorded",
    )
    listing.add_argument("--limit", type=int, default=200)
    _fmt(listing)
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="one alert with its audit trail")
    show.add_argument("alert_id", metavar="ID")
    _fmt(show)
    show.set_defaults(func=_show)

    ack = commands.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("alert_id", metavar="ID")
    ack.add_argument("--by", required=True, help="who is acknowledging (recorded)")
    ack.add_argument("--note")
    _fmt(ack)
    ack.set_defaults(func=_ack)

    resolve = commands.add_parser("resolve", help="resolve an alert, with a note")
    resolve.add_argument("alert_id", metavar="ID")
    resolve.add_argument("--by", required=True)
    resolve.add_argument("--note", required=True, help="what was done")
    resolve.add_argument(
        "--force", action="store_true", help="resolve even though the condition is still on"
    )
    _fmt(resolve)
    resolve.set_defaults(func=_resolve)


def _register_statutory(commands: Any) -> None:
    """``investigated``, ``milestone`` and ``overdue``: Awaab's Law steps."""
    investigated = commands.add_parser(
        "investigated",
        help="record that the Awaab's Law investigation ended; sets the later due dates",
        description=(
            "Record when the investigation of a hazard ended. The written summary is then due "
            "within 3 working days and safety work within 5 working days of that day."
        ),
    )
    investigated.add_argument("alert_id", metavar="ID")
    investigated.add_argument("--by", required=True, help="who is recording it (audited)")
    investigated.add_argument("--at", required=True, help="when it ended (RFC 3339 or date)")
    investigated.add_argument("--note")
    _fmt(investigated)
    investigated.set_defaults(func=_investigated)

    milestone = commands.add_parser(
        "milestone",
        help="record another Awaab's Law step as done (written summary, safety work...)",
    )
    milestone.add_argument("alert_id", metavar="ID")
    milestone.add_argument("step", choices=_MILESTONES, metavar="STEP", help=", ".join(_MILESTONES))
    milestone.add_argument("--by", required=True)
    milestone.add_argument("--at", required=True, help="when it was done (RFC 3339 or date)")
    milestone.add_argument("--note")
    _fmt(milestone)
    milestone.set_defaults(func=_milestone)

    chase = commands.add_parser(
        "overdue",
        help="escalate alerts whose Awaab's Law due date passed with the step not recorded",
        description=(
            "Raise the severity, audit and notify (once per alert and step) for every active "
            "alert with a statutory due date passed and its step not recorded. `civic alerts "
            "run` does this itself every CIVIC_ALERTS_OVERDUE_CHECK_S; this command is for a "
            "scheduler or a past time (--at). It reads the wall clock unless --at is given."
        ),
    )
    chase.add_argument("--at", help="check as of this time (RFC 3339 or date); default now")
    _fmt(chase)
    chase.set_defaults(func=_overdue)


def _register_setup(commands: Any) -> None:
    """``rules``, ``evidence`` and ``officer``: configuration and case files."""
    rules = commands.add_parser(
        "rules",
        help="check a rules file and show the settings a home or bin would get",
        description=(
            "Load a rules file (TOML: [home.<rule>], [bin.<rule>], [patch.<name>.home...], "
            "[property.<uprn>.home...], [device.<id>.bin...]; see alerts/rule_config.py) and "
            "report any error with its key. With --uprn/--patch or --device, print the "
            "effective settings that home or bin would get. Point CIVIC_ALERTS_RULES at it."
        ),
    )
    rules.add_argument("file", type=Path)
    rules.add_argument("--uprn", help="show the settings of this home")
    rules.add_argument("--device", help="show the settings of this bin (or the home's sensor)")
    rules.add_argument("--patch", help="the patch of that home or bin")
    rules.set_defaults(func=_rules)

    evidence = commands.add_parser("evidence", help="the evidence pack of an alert")
    evidence.add_argument("alert_id", metavar="ID")
    evidence.add_argument("--format", choices=("html", "json", "pdf"), default="html")
    evidence.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    evidence.add_argument("--before", default="48h", help="readings before the condition")
    evidence.add_argument("--after", default="24h", help="readings after it ended")
    evidence.set_defaults(func=_evidence)

    officer = commands.add_parser(
        "officer", help="add or update an officer: patches, email, webhook, preferences"
    )
    officer.add_argument("officer_id", metavar="ID")
    officer.add_argument("--name", required=True)
    officer.add_argument("--email")
    officer.add_argument("--team")
    officer.add_argument("--patch", action="append", default=[], help="repeatable; * for all")
    officer.add_argument("--webhook-url")
    officer.add_argument("--webhook-secret")
    officer.add_argument("--min-severity", choices=_SEVERITIES, default="act")
    officer.add_argument("--no-email", action="store_true")
    officer.add_argument("--no-digest", action="store_true")
    _fmt(officer)
    officer.set_defaults(func=_officer)


# -- helpers -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    from alerts.evidence import _plain as plain

    return plain(value)


def _print_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2))


def _evaluator_config() -> Any:
    from alerts.service import EvaluatorConfig
    from alerts.settings import AlertsSettings

    settings = AlertsSettings()
    rules = None
    if settings.alerts_rules:
        from alerts.rule_config import RuleConfigError, load_rule_config
        from common.errors import CliError

        try:
            rules = load_rule_config(Path(settings.alerts_rules))
        except RuleConfigError as exc:
            raise CliError(f"CIVIC_ALERTS_RULES: {exc}") from exc
    return EvaluatorConfig(
        lateness_allowance=timedelta(seconds=settings.alerts_lateness_s), rules=rules
    )


# -- handlers ----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from alerts.runner import assemble
    from alerts.service import CycleReport, Evaluator, EvaluatorBusyError, run_service
    from alerts.settings import AlertsSettings
    from common.errors import CliError
    from common.services import parse_mqtt_url
    from common.settings import command_secret, database_url, get_settings, mqtt_auth, mqtt_url

    settings = AlertsSettings()
    broker = None if args.no_mqtt else parse_mqtt_url(mqtt_url())
    try:
        parts = assemble(
            settings,
            broker=broker,
            topic_prefix=get_settings().topic_prefix,
            broker_auth=None if args.no_mqtt else mqtt_auth("alerts"),
            command_secret=None if args.no_mqtt else command_secret(),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except (OSError, TimeoutError) as exc:
        raise CliError(f"cannot reach the MQTT broker for device commands: {exc}") from exc

    def report(cycle: CycleReport) -> None:
        if args.format == "json":
            print(json.dumps(cycle.as_dict()), flush=True)
        elif cycle.events or cycle.alerts_changed:
            log.info(
                "cutoff=%s readings=%d events=%d alerts_changed=%d late=%d",
                cycle.cutoff,
                cycle.readings,
                cycle.events,
                cycle.alerts_changed,
                cycle.late_readings,
            )

    config = _evaluator_config()
    try:
        run_service(
            database_url(),
            lambda conn: Evaluator(conn, config, hooks=parts.hooks, share=not args.once),
            parts.steps,
            lead_steps=parts.lead_steps,
            once=args.once,
            interval_s=args.interval or settings.alerts_interval_s,
            on_cycle=report,
        )
    except EvaluatorBusyError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if parts.dispatcher is not None:
            parts.dispatcher.stop()
    return 0


def _rules(args: argparse.Namespace) -> int:
    import dataclasses

    from alerts.rule_config import RuleConfigError, load_rule_config
    from common.errors import CliError

    try:
        config = load_rule_config(args.file)
    except RuleConfigError as exc:
        raise CliError(str(exc)) from exc
    if args.uprn:
        chosen: Any = config.for_home(args.uprn, args.patch, args.device or "")
    elif args.device:
        chosen = config.for_bin(args.device, args.patch)
    else:
        print(
            f"{args.file}: ok ({len(config.patches)} patch, {len(config.properties)} property "
            f"and {len(config.devices)} device override(s))"
        )
        return 0
    _print_json(_settings_plain(dataclasses.asdict(chosen)))
    return 0


def _settings_plain(value: Any) -> Any:
    """Settings as a rules file would write them: durations as "2h", severities by name."""
    from alerts.events import Severity

    if isinstance(value, Mapping):
        return {str(k): _settings_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_settings_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, Severity):
        return value.label
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{seconds / size:g}{unit}"
        return f"{seconds:g}s"
    return value


def _backfill(args: argparse.Namespace) -> int:
    from alerts.commands import plan_frost_commands
    from alerts.notify import notify_cycle
    from alerts.service import Evaluator, EvaluatorBusyError
    from common.errors import CliError

    since = when(args.since)
    hooks: list[Any] = [notify_cycle, plan_frost_commands] if args.notify else []
    with connect_configured() as conn:
        try:
            evaluator = Evaluator(conn, _evaluator_config(), hooks=hooks)
        except EvaluatorBusyError as exc:
            raise CliError(f"{exc}; stop `civic alerts run` first") from exc
        began = time.monotonic()

        def progress(done: int, devices: int, readings: int) -> None:
            elapsed = max(time.monotonic() - began, 1e-9)
            print(
                f"backfill: {done:,}/{devices:,} devices, {readings:,} readings "
                f"({readings / elapsed:,.0f}/s)",
                file=sys.stderr,
                flush=True,
            )

        try:
            evaluator.reset(since)
            report = evaluator.run_cycle(notify=args.notify, progress=progress)
        finally:
            evaluator.close()
        opened = conn.execute(
            "SELECT count(*) AS n FROM alerts WHERE opened_at >= %s", (since,)
        ).fetchone()
    summary = {**report.as_dict(), "since": since, "alerts_since": opened["n"] if opened else 0}
    if args.format == "json":
        _print_json(summary)
    else:
        print(
            f"evaluated {report.readings} readings of {report.devices} devices up to "
            f"{report.cutoff}: {report.events} condition events, {summary['alerts_since']} alerts"
        )
    return 0


_LIST_COLUMNS = ("id", "state", "severity", "alert_type", "subject_id", "patch", "opened_at")


def _list(args: argparse.Namespace) -> int:
    from alerts.queries import AlertFilter, list_alerts

    f = AlertFilter(
        alert_type=args.alert_type,
        state=args.state,
        subject=args.subject,
        patch=args.patch,
        since=when(args.since) if args.since else None,
        overdue_at=datetime.now(UTC) if args.overdue else None,
        limit=args.limit,
    )
    with connect_configured() as conn:
        rows = list_alerts(conn, f)
    if args.format == "json":
        _print_json(rows)
    else:
        print_table(rows, _LIST_COLUMNS)
    return 0


def _load_alert(conn: Any, alert_id: str) -> dict[str, Any]:
    from alerts.queries import find_alert
    from common.errors import CliError

    row = find_alert(conn, alert_id)
    if row is None:
        raise CliError(f"no alert {alert_id!r} (see `civic alerts list`)")
    return dict(row)


def _show(args: argparse.Namespace) -> int:
    with connect_configured() as conn:
        from alerts.queries import alert_timeline

        alert = _load_alert(conn, args.alert_id)
        audit = alert_timeline(conn, args.alert_id)
    if args.format == "json":
        _print_json({**alert, "audit": audit})
        return 0
    for key in (
        "id",
        "alert_type",
        "state",
        "severity",
        "subject_id",
        "uprn",
        "patch",
        "since",
        "opened_at",
        "reason",
        "acknowledged_by",
        "resolved_by",
        "resolution_note",
        "investigate_due_at",
        "investigation_ended_at",
        "summary_due_at",
        "safety_work_due_at",
        "make_safe_due_at",
    ):
        if alert.get(key) is not None:
            print(f"{key:>20}: {_plain(alert[key])}")
    print()
    print_table(
        [{**a, "detail": a["detail"].get("text", "")} for a in audit],
        ("at", "actor", "action", "detail"),
    )
    return 0


def _act(args: argparse.Namespace, action: str) -> int:
    from alerts.actions import acknowledge_alert, resolve_alert
    from alerts.errors import LifecycleError
    from common.errors import CliError

    now = datetime.now(UTC)
    with connect_configured() as conn:
        current = _load_alert(conn, args.alert_id)
        if current["state"] == "resolved":
            raise CliError(f"alert {args.alert_id} is already resolved")
        try:
            if action == "ack":
                alert = acknowledge_alert(conn, args.alert_id, by=args.by, at=now, note=args.note)
            else:
                alert = resolve_alert(
                    conn,
                    args.alert_id,
                    by=args.by,
                    at=now,
                    note=args.note,
                    while_condition_on=args.force,
                )
        except LifecycleError as exc:
            hint = " (use --force)" if "still on" in exc.reason else ""
            raise CliError(f"{exc}{hint}") from exc
    if args.format == "json":
        _print_json({"id": alert.alert_id, "state": alert.status.value, "by": args.by, "at": now})
    else:
        print(f"{alert.alert_id}: {alert.status.value} by {args.by}")
    return 0


def _ack(args: argparse.Namespace) -> int:
    return _act(args, "ack")


def _resolve(args: argparse.Namespace) -> int:
    return _act(args, "resolve")


def _record(args: argparse.Namespace, step: str) -> int:
    from alerts.awaab import Milestone
    from alerts.errors import LifecycleError
    from alerts.statutory import record_milestone
    from common.errors import CliError

    at = when(args.at)
    with connect_configured() as conn:
        _load_alert(conn, args.alert_id)
        try:
            row = record_milestone(
                conn,
                args.alert_id,
                Milestone(step),
                by=args.by,
                at=at,
                note=args.note,
                now=datetime.now(UTC),
            )
        except LifecycleError as exc:
            raise CliError(str(exc)) from exc
    due = {d["milestone"]: d["due_at"] for d in row["deadlines"]}
    if args.format == "json":
        _print_json(
            {
                "id": row["id"],
                "step": step,
                "at": at,
                "by": args.by,
                "investigation_ended_at": row["investigation_ended_at"],
                "summary_due_at": row["summary_due_at"],
                "safety_work_due_at": row["safety_work_due_at"],
                "deadlines": row["deadlines"],
            }
        )
    else:
        print(f"{row['id']}: {step} recorded at {at.isoformat()} by {args.by}")
        for name, due_at in due.items():
            print(f"  {name:>34} due by {due_at}")
    return 0


def _overdue(args: argparse.Namespace) -> int:
    from alerts.statutory import escalate_overdue

    now = when(args.at) if args.at else datetime.now(UTC)
    with connect_configured() as conn:
        items = escalate_overdue(conn, now)
    rows = [
        {
            "id": i.alert_id,
            "milestone": i.deadline.milestone.value,
            "due_at": i.deadline.due_at,
            "severity": i.severity.label,
        }
        for i in items
    ]
    if args.format == "json":
        _print_json(rows)
    else:
        print_table(rows, ("id", "milestone", "due_at", "severity"))
    return 0


def _investigated(args: argparse.Namespace) -> int:
    return _record(args, "investigate")


def _milestone(args: argparse.Namespace) -> int:
    return _record(args, args.step)


def _evidence(args: argparse.Namespace) -> int:
    from alerts.evidence import EvidenceNotFoundError, build_evidence, render_html, to_json
    from common.errors import CliError

    if args.format == "pdf" and args.output is None:
        raise CliError("a PDF is binary: give a file with -o/--output")
    with connect_configured() as conn:
        try:
            pack = build_evidence(
                conn, args.alert_id, before=duration(args.before), after=duration(args.after)
            )
        except EvidenceNotFoundError as exc:
            raise CliError(str(exc)) from exc
    if args.format == "pdf":
        from alerts.evidence_pdf import render_pdf

        args.output.write_bytes(render_pdf(pack))
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    text = to_json(pack) if args.format == "json" else render_html(pack)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _officer(args: argparse.Namespace) -> int:
    from alerts.events import Severity
    from alerts.recipients import Officer, upsert_officer
    from common.errors import CliError

    try:
        officer = Officer(
            officer_id=args.officer_id,
            name=args.name,
            email=args.email,
            team=args.team,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
            notify_email=bool(args.email) and not args.no_email,
            notify_webhook=bool(args.webhook_url),
            daily_digest=bool(args.email) and not args.no_digest,
            min_severity=Severity[args.min_severity.upper()],
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    with connect_configured() as conn:
        upsert_officer(conn, officer, args.patch)
    if args.format == "json":
        _print_json({"officer_id": officer.officer_id, "patches": args.patch})
    else:
        print(f"officer {officer.officer_id} covers {', '.join(args.patch) or 'no patches'}")
    return 0

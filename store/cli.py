"""Store subcommands: ``db``, ``devices``, ``readings``, ``export``, ``deadletters``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from common.cli import optional_when, print_table
from common.errors import CliError
from common.settings import database_url
from store.db import connect_configured

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: Subparsers) -> None:
    db = subparsers.add_parser("db", help="database schema: migrate, info, maintain")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending SQL migrations (idempotent)")
    migrate.add_argument(
        "--mode",
        choices=["timescaledb", "native"],
        help="force the storage mode on a new database (default: timescaledb when installed)",
    )
    migrate.set_defaults(func=run_migrate)
    db_sub.add_parser("info", help="storage mode, migrations, counts").set_defaults(func=run_info)
    maintain = db_sub.add_parser(
        "maintain",
        help="create partitions ahead, drop those past retention (native mode), and drop or "
        "pseudonymise homes' readings past theirs",
    )
    maintain.add_argument("--retention-days", type=int, default=730)
    maintain.add_argument(
        "--home-retention-days",
        type=int,
        default=400,
        help="homes' readings (personal data) are kept this long (default 400)",
    )
    maintain.add_argument(
        "--home-retention",
        choices=("pseudonymise", "drop", "off"),
        default="pseudonymise",
        help="then: hourly means under a pseudonym (default), deleted, or kept until "
        "--retention-days",
    )
    maintain.set_defaults(func=run_maintain)

    devices = subparsers.add_parser("devices", help="device/asset registry")
    dev_sub = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    dev_import = dev_sub.add_parser(
        "import",
        help="load or update devices from CSV",
        description=(
            "CSV header: device_id,kind,lat,lon,uprn,address,patch,void,waste_stream,capacity_l,"
            "threshold_pct (empty cells where a column does not apply; extra columns kept). "
            "Any bad row: nothing is imported and every bad line is listed."
        ),
    )
    dev_import.add_argument("file")
    dev_import.set_defaults(func=run_devices_import)
    dev_list = dev_sub.add_parser("list", help="list registered devices")
    dev_list.add_argument("--kind", choices=["bin", "env"])
    dev_list.add_argument("--format", choices=["json", "table"], default="table")
    dev_list.set_defaults(func=run_devices_list)
    _register_device_security(dev_sub)

    readings = subparsers.add_parser("readings", help="bulk history import")
    rd_sub = readings.add_subparsers(dest="readings_command", metavar="ACTION", required=True)
    rd_import = rd_sub.add_parser(
        "import",
        help="load history from CSV (device_id,ts,<metric columns>)",
        description=(
            "Rows are validated like live telemetry. Any bad row: nothing is imported and every "
            "bad line is listed, unless --skip-invalid (bad rows then go to the dead letters)."
        ),
    )
    rd_import.add_argument("file")
    rd_import.add_argument("--skip-invalid", action="store_true")
    rd_import.set_defaults(func=run_readings_import)
    rd_gaps = rd_sub.add_parser(
        "gaps",
        help="messages lost on the way, per device, from the devices' seq counters",
        description=(
            "Counts, per device, the seq numbers between its lowest and highest since T that "
            "were never stored: what a broker dropped at its queue limits, or a device lost."
        ),
    )
    rd_gaps.add_argument("--since", required=True)
    rd_gaps.set_defaults(func=run_readings_gaps)

    _register_gdpr(subparsers)

    export = subparsers.add_parser("export", help="time-based extracts")
    ex_sub = export.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    ex_readings = ex_sub.add_parser(
        "readings",
        help="everything recorded in a time window",
        description="Times: RFC 3339, a date, or an age such as 24h or 7d.",
    )
    ex_readings.add_argument("--since", required=True)
    ex_readings.add_argument("--until")
    ex_readings.add_argument("--device")
    ex_readings.add_argument(
        "--by",
        choices=["ts", "received"],
        default="ts",
        help="window on reading time (default) or arrival time (catches late data)",
    )
    ex_readings.add_argument(
        "--format",
        choices=["csv", "json", "senml"],
        default="csv",
        help="senml: one RFC 8428 SenML JSON pack, a base name per device (as the senml topic "
        "takes it)",
    )
    ex_readings.add_argument("--output", "-o", help="file to write (default: standard output)")
    ex_readings.set_defaults(func=run_export_readings)

    dead = subparsers.add_parser("deadletters", help="list rejected messages with reasons")
    dead.add_argument("--since")
    dead.add_argument("--reason")
    dead.add_argument("--limit", type=int)
    dead.add_argument("--format", choices=["json", "table"], default="table")
    dead.set_defaults(func=run_deadletters)


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    if not Path(path).is_file():
        raise CliError(f"no such file: {path}")
    return open(path, encoding="utf-8-sig", newline="")


def run_migrate(args: argparse.Namespace) -> int:
    from store.db import StoreMode, migrate

    mode, applied = migrate(database_url(), mode=StoreMode(args.mode) if args.mode else None)
    print(f"mode: {mode}; applied: {', '.join(applied) if applied else 'nothing (up to date)'}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from store.db import info
    from store.extract import jsonable

    print(json.dumps(info(database_url()), indent=2, default=jsonable))
    return 0


def run_maintain(args: argparse.Namespace) -> int:
    with connect_configured() as conn:
        created = conn.execute(
            "SELECT civic_ensure_partitions(now(), now() + interval '4 weeks') AS n"
        ).fetchall()[0]["n"]
        dropped = conn.execute(
            "SELECT civic_drop_partitions_before(now() - make_interval(days => %s)) AS n",
            (args.retention_days,),
        ).fetchall()[0]["n"]
    print(f"partitions created: {created}; dropped past {args.retention_days} days: {dropped}")
    if args.home_retention != "off":
        _home_retention(args)
    return 0


def _home_retention(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from common.command_keys import pseudonym_key
    from common.settings import command_secret
    from store.retention import apply_home_retention

    pseudonymise = args.home_retention == "pseudonymise"
    try:
        with connect_configured() as conn:
            result = apply_home_retention(
                conn,
                now=datetime.now(UTC),
                days=args.home_retention_days,
                mode=args.home_retention,
                key=(lambda: pseudonym_key(command_secret())) if pseudonymise else None,
            )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"homes' readings past {args.home_retention_days} days: {result.readings} from "
        f"{result.homes} homes {'pseudonymised' if pseudonymise else 'dropped'}"
        + (f" ({result.pseudonymised_hours} hourly rows)" if pseudonymise else "")
    )


def run_devices_import(args: argparse.Namespace) -> int:
    from store.registry import RegistryImportError, parse_devices_csv, upsert_devices

    with _open(args.file) as stream:
        try:
            devices = parse_devices_csv(stream)
        except RegistryImportError as exc:
            for error in exc.errors:
                print(f"{args.file}: {error}", file=sys.stderr)
            raise CliError(str(exc)) from exc
    with connect_configured() as conn:
        inserted, updated = upsert_devices(conn, devices)
    print(f"devices: {inserted} added, {updated} updated")
    return 0


def _register_device_security(dev_sub: Subparsers) -> None:
    creds = dev_sub.add_parser(
        "credentials",
        help="issue each device its own broker password and command key (shown once)",
        description=(
            "Issues devices that have none a broker password (username: the device id) and a "
            "heating-command key, printed once as JSON lines (or written to --out, readable "
            "only by you); only the password's hash is kept. --rotate replaces existing "
            "ones. The project-local broker reloads its password file at once."
        ),
    )
    who = creds.add_mutually_exclusive_group(required=True)
    who.add_argument("device_id", nargs="?", help="one device")
    who.add_argument("--all", action="store_true", help="every enabled device")
    creds.add_argument("--rotate", action="store_true", help="replace existing credentials")
    creds.add_argument("--out", type=Path, help="write the JSON lines here (mode 0600)")
    creds.set_defaults(func=run_devices_credentials)
    disable = dev_sub.add_parser(
        "disable",
        help="take a device out of service: refused by the broker and by ingest",
        description=(
            "Deletes the device's credentials and marks it disabled: the broker reloads and "
            "drops its connection, refuses its next connect, and ingest dead-letters anything "
            "still arriving for it."
        ),
    )
    disable.add_argument("device_id")
    disable.set_defaults(func=run_devices_disable)
    broker = dev_sub.add_parser(
        "broker-passwords",
        help="write the devices' Mosquitto password-file lines (for a broker civic does not run)",
    )
    broker.add_argument("file", type=Path)
    broker.set_defaults(func=run_devices_broker_passwords)


def _register_gdpr(subparsers: Subparsers) -> None:
    gdpr = subparsers.add_parser("gdpr", help="data protection: subject access export")
    gdpr_sub = gdpr.add_subparsers(dest="gdpr_command", metavar="ACTION", required=True)
    gdpr_export = gdpr_sub.add_parser(
        "export",
        help="everything held about one home, as JSON",
        description=(
            "Registry rows, readings, statuses, alerts and their events, heating commands, "
            "notifications, rejected messages and access-log entries of one property (UPRN)."
        ),
    )
    gdpr_export.add_argument("--uprn", required=True)
    gdpr_export.set_defaults(func=run_gdpr_export)


def _sync_broker(conn: Any) -> None:
    """Give the project-local broker (when there is one) the current device passwords."""
    from common.services import LocalServices
    from common.settings import get_settings
    from store.credentials import broker_password_hashes

    local = LocalServices(get_settings().data_dir)
    if not local.accounts_file.exists():
        print(
            "no project-local broker here: give yours the new password-file lines with "
            "`civic devices broker-passwords FILE` and reload it (SIGHUP)",
            file=sys.stderr,
        )
        return
    reloaded = local.write_device_passwords(broker_password_hashes(conn))
    print("broker password file updated" + (" and reloaded" if reloaded else ""), file=sys.stderr)


def run_devices_credentials(args: argparse.Namespace) -> int:
    import os

    from common.settings import command_secret
    from store.credentials import issue_credentials

    ids = None if args.all else [args.device_id]
    with connect_configured() as conn:
        issued = issue_credentials(conn, ids, secret=command_secret(), rotate=args.rotate)
        _sync_broker(conn)
    lines = "".join(json.dumps(c.as_dict()) + "\n" for c in issued)
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(lines)
    else:
        sys.stdout.write(lines)
    print(
        f"{len(issued)} device(s) issued credentials"
        + ("" if args.rotate else " (those that had them are unchanged; --rotate replaces)"),
        file=sys.stderr,
    )
    return 0


def run_devices_disable(args: argparse.Namespace) -> int:
    from store.credentials import disable_device

    with connect_configured() as conn:
        changed = disable_device(conn, args.device_id)
        _sync_broker(conn)
    print(f"{args.device_id} " + ("disabled" if changed else "was already disabled"))
    return 0


def run_devices_broker_passwords(args: argparse.Namespace) -> int:
    import os

    from store.credentials import broker_password_hashes

    with connect_configured() as conn:
        hashes = broker_password_hashes(conn)
    fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{device}:{hashed}\n" for device, hashed in sorted(hashes.items()))
    print(f"{len(hashes)} device password entries -> {args.file}", file=sys.stderr)
    return 0


def run_gdpr_export(args: argparse.Namespace) -> int:
    from common.command_keys import pseudonym_key
    from common.settings import command_secret
    from store.gdpr import subject_access_export

    key = pseudonym_key(command_secret())  # to find its pseudonymised readings too
    with connect_configured() as conn:
        export = subject_access_export(conn, args.uprn, pseudonym_key=key)
    print(json.dumps(export, indent=2, default=str))
    return 0


def run_readings_gaps(args: argparse.Namespace) -> int:
    from common.timeparse import parse_when
    from store.readings import seq_gaps

    with connect_configured() as conn:
        gaps = seq_gaps(conn, parse_when(args.since))
    print(
        json.dumps(
            {"devices_with_gaps": len(gaps), "missing": sum(gaps.values()), "by_device": gaps}
        )
    )
    return 0


def run_devices_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from store.registry import load_devices

    with connect_configured() as conn:
        devices = [asdict(d) for d in load_devices(conn, args.kind)]
    if args.format == "json":
        print(json.dumps(devices, indent=2))
    else:
        _print_table(
            devices,
            [
                "device_id",
                "kind",
                "lat",
                "lon",
                "uprn",
                "patch",
                "void",
                "waste_stream",
                "threshold_pct",
            ],
        )
    return 0


def run_readings_import(args: argparse.Namespace) -> int:
    from store.history_import import import_readings_csv

    def progress(rows: int) -> None:
        print(f"  {rows:,} rows read", file=sys.stderr)

    with _open(args.file) as stream, connect_configured() as conn:
        try:
            report = import_readings_csv(
                conn, stream, skip_invalid=args.skip_invalid, progress=progress
            )
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    for error in report.errors or []:
        print(f"{args.file}: {error}", file=sys.stderr)
    if report.errors and not args.skip_invalid:
        raise CliError(f"{len(report.errors)} bad row(s); nothing imported")
    print(
        f"rows: {report.rows}; stored: {report.stored}; duplicates: {report.duplicates}; "
        f"dead-lettered: {report.deadlettered}"
    )
    return 0


def run_export_readings(args: argparse.Namespace) -> int:
    from store.extract import extract_chunks
    from store.readings import iter_readings

    since, until = optional_when(args.since), optional_when(args.until)
    assert since is not None
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    count = 0

    def counted(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    try:
        with connect_configured() as conn:
            rows = iter_readings(conn, since=since, until=until, device_id=args.device, by=args.by)
            out.writelines(extract_chunks(counted(rows), args.format))
    finally:
        if args.output:
            out.close()
    print(f"exported {count} readings", file=sys.stderr)
    return 0


def run_deadletters(args: argparse.Namespace) -> int:
    from store.deadletters import iter_deadletters
    from store.extract import json_array_chunks

    with connect_configured() as conn:
        since = optional_when(args.since)
        rows = iter_deadletters(conn, since=since, reason=args.reason, limit=args.limit)
        if args.format == "json":
            sys.stdout.writelines(json_array_chunks(rows))
        else:
            _print_table(list(rows), ["id", "received_at", "reason", "topic", "detail", "payload"])
    return 0


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from store.extract import jsonable

    shown = [{c: jsonable(r.get(c)) for c in columns} for r in rows]
    print_table(shown, columns, max_width=48, upper=False)
    print(f"({len(rows)} rows)")

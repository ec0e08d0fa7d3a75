"""``civic sim``: publish telemetry from a simulated estate, with fault injection."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="simulate bins and homes publishing telemetry",
        description=(
            "Publishes contract-v1 telemetry from simulated bins and homes. Durations accept "
            "90s, 10m, 2h, 3d. With --speed > 1 the simulated clock runs faster than real time "
            "and, unless --start is given, ends now (so days of history take minutes). Prints "
            "progress on stderr and a final JSON summary of what was sent on stdout."
        ),
    )
    parser.add_argument("--bins", type=int, default=1000)
    parser.add_argument("--homes", type=int, default=300)
    parser.add_argument("--interval", default="60s", help="reporting interval per device")
    parser.add_argument("--duration", default="10m", help="simulated time span")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (e.g. 3600: an hour a second)",
    )
    parser.add_argument("--start", help="simulated start time (RFC 3339 or an age like 7d)")
    parser.add_argument(
        "--estate", type=Path, help="registry CSV of devices to simulate (default: the demo estate)"
    )
    parser.add_argument("--malformed-pct", type=float, default=0.0)
    parser.add_argument("--duplicate-pct", type=float, default=0.0)
    parser.add_argument("--late-pct", type=float, default=0.0)
    parser.add_argument("--offline-pct", type=float, default=0.0)
    parser.add_argument("--rate", type=float, help="cap on messages per second (all processes)")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="publish from this many processes, the estate dealt out among them, with one "
        "combined report (one process offers about 6,500 msg/s)",
    )
    parser.add_argument(
        "--round-sheet",
        type=Path,
        help="write the crews' records of the weekly rounds simulated (CSV for "
        "`civic routes collected`)",
    )
    parser.add_argument(
        "--unrecorded-pct",
        type=float,
        default=5.0,
        help="share of rounds left off the sheet (default 5)",
    )
    parser.add_argument(
        "--season",
        choices=("november", "winter", "summer"),
        default="november",
        help="outdoor weather: a UK November (default), January or July",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="FILE",
        help="write what is really wrong with each home and bin, and when (JSON lines)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--client-id", default="civic-sim")
    parser.add_argument(
        "--mqtt-version",
        choices=("5", "3.1.1"),
        default="5",
        help="MQTT protocol: 5 (default) or 3.1.1 (a NATS cluster's MQTT listener)",
    )
    parser.set_defaults(func=run)


def _keep_last_run(data_dir: Path, started: datetime, config: Any, report: dict[str, Any]) -> None:
    """The run's report where the engineer's console reads it (written whole, then renamed,
    so a reader never sees half a file)."""
    from common.settings import SIM_LAST_RUN_FILE

    record = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "bins": config.bins,
        "homes": config.homes,
        "interval_s": config.interval_s,
        "duration_s": config.duration_s,
        "report": report,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = data_dir / f".{SIM_LAST_RUN_FILE}.partial"
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(data_dir / SIM_LAST_RUN_FILE)


def run(args: argparse.Namespace) -> int:
    from common.errors import CliError
    from common.services import ServicesError, parse_mqtt_url
    from common.settings import get_settings, mqtt_auth, mqtt_url
    from common.timeparse import parse_duration, parse_when
    from device_sim.estate import generate_estate, read_estate_csv
    from device_sim.simulator import SimConfig, SimReport, Simulator
    from firmware_contracts import format_rfc3339

    settings = get_settings()
    try:
        host, port = parse_mqtt_url(mqtt_url(settings))
        config = SimConfig(
            bins=args.bins,
            homes=args.homes,
            interval_s=parse_duration(args.interval).total_seconds(),
            duration_s=parse_duration(args.duration).total_seconds(),
            speed=args.speed,
            start=parse_when(args.start) if args.start else None,
            malformed_pct=args.malformed_pct,
            duplicate_pct=args.duplicate_pct,
            late_pct=args.late_pct,
            offline_pct=args.offline_pct,
            max_rate=args.rate,
            seed=args.seed,
            topic_prefix=settings.topic_prefix,
            client_id=args.client_id,
            season=args.season,
            mqtt_version=args.mqtt_version,
        )
    except (ValueError, ServicesError) as exc:
        raise CliError(str(exc)) from exc
    if args.estate:
        if not args.estate.is_file():
            raise CliError(f"no such file: {args.estate}")
        estate = read_estate_csv(args.estate)
    else:
        estate = generate_estate(args.bins, args.homes, seed=args.seed)
    if args.processes != 1:
        return _run_fleet(args, config, estate, host, port, mqtt_auth("sim", settings))

    def progress(report: SimReport, done: float) -> None:
        print(
            f"  {done:6.1%} simulated, {report.published:,} published, "
            f"{report.acked:,} acknowledged",
            file=sys.stderr,
        )

    sim = Simulator(
        config, estate, host=host, port=port, progress=progress, auth=mqtt_auth("sim", settings)
    )
    if args.truth:
        from device_sim.truth import write_labels

        with args.truth.open("w", encoding="utf-8") as out:
            count = write_labels(sim.labels, out)
        print(f"truth: {count} labels -> {args.truth}", file=sys.stderr)
    started = datetime.now(UTC)
    report = sim.run().as_dict()
    _keep_last_run(settings.data_dir, started, config, report)
    if args.round_sheet:
        sheet = sim.round_sheet(args.unrecorded_pct)
        with args.round_sheet.open("w", encoding="utf-8", newline="") as out:
            out.write("device_id,ts,crew\n")
            out.writelines(f"{d},{format_rfc3339(ts)},{crew}\n" for d, ts, crew in sheet)
        print(f"round sheet: {len(sheet)} collections -> {args.round_sheet}", file=sys.stderr)
    return _summary(report)


def _summary(report: dict[str, Any]) -> int:
    print(
        f"sent {report['published']:,} messages in {report['wall_s']}s "
        f"({report['rate_msg_s']} msg/s)",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0 if report["acked"] >= report["published"] else 1


def _run_fleet(
    args: argparse.Namespace,
    config: Any,
    estate: list[dict[str, str]],
    host: str,
    port: int,
    auth: Any,
) -> int:
    from common.errors import CliError
    from device_sim.processes import run_fleet
    from firmware_contracts import format_rfc3339

    try:
        result = run_fleet(
            config,
            estate,
            args.processes,
            host=host,
            port=port,
            auth=auth,
            unrecorded_pct=args.unrecorded_pct if args.round_sheet else None,
        )
    except ValueError as exc:
        raise CliError(f"--processes: {exc}") from exc
    except RuntimeError as exc:
        raise CliError(f"a simulator process failed: {exc}") from exc
    if args.truth:
        from device_sim.truth import write_labels

        with args.truth.open("w", encoding="utf-8") as out:
            count = write_labels(result.labels, out)
        print(f"truth: {count} labels -> {args.truth}", file=sys.stderr)
    if args.round_sheet:
        with args.round_sheet.open("w", encoding="utf-8", newline="") as out:
            out.write("device_id,ts,crew\n")
            out.writelines(
                f"{d},{format_rfc3339(ts)},{crew}\n" for d, ts, crew in result.round_sheet
            )
        print(
            f"round sheet: {len(result.round_sheet)} collections -> {args.round_sheet}",
            file=sys.stderr,
        )
    return _summary({**result.report.as_dict(), "processes": result.processes})

"""``civic sim``: publish telemetry from a simulated estate, with fault injection.

By default one connection speaks for every device (the simulator's own broker account, as a
gateway would); ``--connections per-device`` has each device log in on its own TLS connection
with the credentials ``civic devices credentials`` issued it. ``--wire-faults N`` sends the
broker-level fault modes of ``device_sim.wire_faults`` at the same listener meanwhile.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from device_sim.connections import OwnConnections
    from device_sim.wire_faults import FaultRun


@dataclass(frozen=True, slots=True)
class _SimRun:
    """What a run publishes and where: the same for one process or several."""

    config: Any  # device_sim.simulator.SimConfig
    estate: list[dict[str, str]]
    host: str
    port: int
    auth: Any  # the gateway's account; None when devices log in on their own
    own: OwnConnections | None
    faults: FaultRun | None


REACH_TIMEOUT_S = 5.0  # the devices' listener must accept a TCP connection within this
WIRE_FAULT_GAP_MAX_S = 5.0  # faults spread over the run, but never further apart than this


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
    _register_security(parser)
    parser.set_defaults(func=run)


def _register_security(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("devices' own connections and wire faults")
    group.add_argument(
        "--connections",
        choices=("shared", "per-device"),
        default="shared",
        help="shared (default): one connection publishes for every device, with the "
        "simulator's account, as a gateway does; per-device: each device connects on its own "
        "TLS connection to the devices' listener and logs in with its own credentials "
        "(--credentials), as a real device does",
    )
    group.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="per-device: the devices' credentials, the JSON lines of `civic devices "
        "credentials --all --out FILE`",
    )
    group.add_argument(
        "--devices-url",
        metavar="URL",
        help="per-device: the broker's TLS listener for devices (default: the one `civic "
        "services up` started, mqtts://localhost:PORT)",
    )
    group.add_argument(
        "--ca-file",
        type=Path,
        metavar="FILE",
        help="per-device: the CA that signed the broker's certificate (default: "
        "CIVIC_MQTT_CA_FILE, else the one `civic services up` made)",
    )
    group.add_argument(
        "--wire-faults",
        type=int,
        default=0,
        metavar="N",
        help="also send N broker-level faults (garbage bytes, a truncated CONNECT, an overlong "
        "length field, a truncated PUBLISH, an oversize payload; in turn) at the listener the "
        "devices use, spread over the run and counted in the report. Per-device, the first "
        "device of the estate sends them and no telemetry",
    )


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
    from common.settings import get_settings, mqtt_auth

    settings = get_settings()
    config, (host, port) = _config(args, settings)
    estate = _estate(args)
    own, auth, faults = None, None, None
    if args.connections == "per-device":
        own = _own_connections(args, settings)
        _check_per_device(args, own, estate)
        host, port = _devices_listener(args, settings)
        if args.wire_faults:
            # Its login would take over a simulated device's connection: it sends no telemetry.
            faulty, estate = estate[0]["device_id"], estate[1:]
            faults = _wire_faults(args, config, host, port, _device_auth(own, faulty), faulty)
    else:
        auth = mqtt_auth("sim", settings)
        if args.wire_faults:
            faults = _wire_faults(args, config, host, port, auth, estate[0]["device_id"])
    if faults is not None:
        faults.start()
    sim_run = _SimRun(config, estate, host, port, auth, own, faults)
    try:
        if args.processes != 1:
            return _run_fleet(args, sim_run)
        return _run_one(args, settings, sim_run)
    finally:
        if faults is not None and faults.is_alive():
            faults.finish()


def _config(args: argparse.Namespace, settings: Any) -> tuple[Any, tuple[str, int]]:
    """The simulation's settings from the flags, and the broker the simulator publishes to."""
    from common.errors import CliError
    from common.services import ServicesError, parse_mqtt_url
    from common.settings import mqtt_url
    from common.timeparse import parse_duration, parse_when
    from device_sim.simulator import SimConfig

    try:
        broker = parse_mqtt_url(mqtt_url(settings))
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
    if args.wire_faults < 0:
        raise CliError("--wire-faults: the number of faults cannot be negative")
    return config, broker


def _estate(args: argparse.Namespace) -> list[dict[str, str]]:
    from common.errors import CliError
    from device_sim.estate import generate_estate, read_estate_csv

    if args.estate:
        if not args.estate.is_file():
            raise CliError(f"no such file: {args.estate}")
        return read_estate_csv(args.estate)
    return generate_estate(args.bins, args.homes, seed=args.seed)


def _run_one(args: argparse.Namespace, settings: Any, run: _SimRun) -> int:
    from common.errors import CliError
    from device_sim.connections import FleetConnectError
    from device_sim.simulator import SimReport, Simulator

    def progress(report: SimReport, done: float) -> None:
        print(
            f"  {done:6.1%} simulated, {report.published:,} published, "
            f"{report.acked:,} acknowledged",
            file=sys.stderr,
        )

    try:
        sim = Simulator(
            run.config, run.estate, host=run.host, port=run.port, progress=progress,
            auth=run.auth, own_connections=run.own,
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.truth:
        _write_truth(args.truth, sim.labels)
    started = datetime.now(UTC)
    try:
        report = sim.run().as_dict()
    except FleetConnectError as exc:
        raise CliError(_refused_hint(exc)) from exc
    if run.faults is not None:
        report["wire_faults"] = run.faults.finish()
    _keep_last_run(settings.data_dir, started, run.config, report)
    if args.round_sheet:
        _write_round_sheet(args.round_sheet, sim.round_sheet(args.unrecorded_pct))
    return _summary(report)


def _write_truth(path: Path, labels: Any) -> None:
    from device_sim.truth import write_labels

    with path.open("w", encoding="utf-8") as out:
        count = write_labels(labels, out)
    print(f"truth: {count} labels -> {path}", file=sys.stderr)


def _write_round_sheet(path: Path, sheet: Iterable[tuple[str, datetime, str]]) -> None:
    from firmware_contracts import format_rfc3339

    rows = [f"{d},{format_rfc3339(ts)},{crew}\n" for d, ts, crew in sheet]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("device_id,ts,crew\n")
        out.writelines(rows)
    print(f"round sheet: {len(rows)} collections -> {path}", file=sys.stderr)


def _credentials_hint(problem: str) -> str:
    return (
        f"--connections per-device: {problem}. Register the simulated devices (`civic devices "
        "import`, or simulate the ones registered with --estate), issue their credentials with "
        "`civic devices credentials --all --out FILE` (add --rotate for devices that already "
        "have some: a password is shown only once) and pass --credentials FILE"
    )


def _refused_hint(exc: Exception) -> str:
    from device_sim.connections import FleetConnectError

    text = f"--connections per-device: devices could not connect: {exc}"
    if isinstance(exc, FleetConnectError) and exc.refused:
        sample = ", ".join(sorted(exc.refused)[:3])
        text += (
            f" (e.g. {sample}). Their passwords are not the broker's: issue new ones with "
            "`civic devices credentials --all --rotate --out FILE` and pass --credentials FILE"
        )
    return text


def _own_connections(args: argparse.Namespace, settings: Any) -> OwnConnections:
    """Every device's password and the CA to check the broker against, or a clear error."""
    from common.errors import CliError
    from common.services import LocalServices
    from device_sim.connections import OwnConnections, read_credentials

    if args.mqtt_version != "5":
        raise CliError("--connections per-device speaks MQTT 5 only (drop --mqtt-version 3.1.1)")
    if args.credentials is None:
        raise CliError(_credentials_hint("each device needs its own credentials"))
    if not args.credentials.is_file():
        raise CliError(_credentials_hint(f"no credentials file {args.credentials}"))
    try:
        with args.credentials.open(encoding="utf-8") as lines:
            passwords = read_credentials(lines)
    except ValueError as exc:
        raise CliError(f"{args.credentials}: {exc}") from exc
    if not passwords:
        raise CliError(_credentials_hint(f"{args.credentials} holds no credentials"))
    ca_file = args.ca_file or settings.mqtt_ca_file or LocalServices(settings.data_dir).ca_file
    if not ca_file.is_file():
        raise CliError(
            f"no CA file at {ca_file}: devices check the broker's certificate against it. "
            "`civic services up` makes the project-local broker's; for another broker pass "
            "--ca-file or set CIVIC_MQTT_CA_FILE"
        )
    return OwnConnections(passwords, ca_file)


def _check_per_device(
    args: argparse.Namespace, own: OwnConnections, estate: list[dict[str, str]]
) -> None:
    """Every simulated device has credentials, and each process can hold its share."""
    from common.errors import CliError
    from device_sim.connections import MAX_DEVICES_PER_PROCESS

    lacking = own.lacking(r["device_id"] for r in estate)
    if lacking:
        raise CliError(_credentials_hint(lacking))
    needed = -(-len(estate) // MAX_DEVICES_PER_PROCESS)
    if args.processes < needed:
        raise CliError(
            f"--connections per-device: {len(estate):,} devices need --processes {needed} or "
            f"more (one process holds at most {MAX_DEVICES_PER_PROCESS} connections: paho "
            "waits on them with select(), which stops at descriptor 1023)"
        )


def _device_auth(own: OwnConnections, device_id: str) -> Any:
    from common.errors import CliError

    if device_id not in own.passwords:
        raise CliError(_credentials_hint(f"no credentials for {device_id}"))
    return own.auth(device_id)


def _devices_listener(args: argparse.Namespace, settings: Any) -> tuple[str, int]:
    """The broker's TLS listener for devices, checked to accept connections."""
    import socket

    from common.errors import CliError
    from common.services import LocalServices, ServicesError, parse_mqtt_url

    if args.devices_url:
        if not args.devices_url.startswith(("mqtts://", "ssl://")):
            raise CliError("--devices-url: devices connect over TLS; give mqtts://HOST:PORT")
        try:
            host, port = parse_mqtt_url(args.devices_url)
        except ServicesError as exc:
            raise CliError(f"--devices-url: {exc}") from exc
    else:
        tls_port = LocalServices(settings.data_dir).load_state().mqtt_tls_port
        if tls_port is None:
            raise CliError(
                "no devices' TLS listener known: run `civic services up` (it starts one), or "
                "pass --devices-url mqtts://HOST:8883 for another broker"
            )
        host, port = "localhost", tls_port
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise CliError(
            f"the broker's TLS listener for devices at {host}:{port} is not reachable "
            f"({exc.strerror or exc}): start it with `civic services up`, or pass "
            "--devices-url for another broker"
        ) from exc
    return host, port


def _wire_faults(
    args: argparse.Namespace, config: Any, host: str, port: int, auth: Any, device_id: str
) -> FaultRun:
    """The fault run, aimed at the listener the devices use, paced to fit the run."""
    from common.broker import BrokerLimits
    from device_sim.wire_faults import FaultRun, Listener, fault_modes
    from firmware_contracts import TopicLayout

    listener = Listener(host, port, auth.ca_file)
    topic = TopicLayout(config.topic_prefix).telemetry(device_id)
    modes = fault_modes(listener, auth, topic, BrokerLimits().message_size_limit)
    wall_s = config.duration_s / config.speed
    gap_s = min(WIRE_FAULT_GAP_MAX_S, wall_s / (args.wire_faults + 1))
    print(
        f"wire faults: {args.wire_faults} at {host}:{port}, one every {gap_s:.2f}s, "
        f"logging in as {auth.username}",
        file=sys.stderr,
    )
    return FaultRun(modes, args.wire_faults, gap_s)


def _summary(report: dict[str, Any]) -> int:
    print(
        f"sent {report['published']:,} messages in {report['wall_s']}s "
        f"({report['rate_msg_s']} msg/s)",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0 if report["acked"] >= report["published"] else 1


def _run_fleet(args: argparse.Namespace, run: _SimRun) -> int:
    """Several processes, the estate dealt out among them; per-device, each process's devices
    on their own connections; the wire faults go from this process meanwhile."""
    from common.errors import CliError
    from device_sim.processes import run_fleet

    try:
        result = run_fleet(
            run.config,
            run.estate,
            args.processes,
            host=run.host,
            port=run.port,
            auth=run.auth,
            unrecorded_pct=args.unrecorded_pct if args.round_sheet else None,
            own_connections=run.own,
        )
    except ValueError as exc:
        raise CliError(f"--processes: {exc}") from exc
    except RuntimeError as exc:
        raise CliError(f"a simulator process failed: {exc}") from exc
    if args.truth:
        _write_truth(args.truth, result.labels)
    if args.round_sheet:
        _write_round_sheet(args.round_sheet, result.round_sheet)
    report = {**result.report.as_dict(), "processes": result.processes}
    if run.faults is not None:
        report["wire_faults"] = run.faults.finish()
    return _summary(report)

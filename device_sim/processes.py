"""Several simulator processes sharing one estate, for more load than one process can offer.

One Python process publishes about 6,500 messages/s (paho and JSON on one core), below what
two ingest workers drain, so a load test of ingest needs more publishers. ``civic sim
--processes N`` deals the estate's devices out to N processes round-robin (bins and homes
alike), each with its own MQTT connection (client id ``<client-id>-<k>``), the same seed (so
every device behaves exactly as it would in one process: each device's readings come from a
random stream of its own) and the same simulated start; ``--rate`` is shared out evenly.
Their reports are added up into one. With ``--connections per-device`` each process's devices
connect on their own, each process given only its devices' credentials: one process can
hold at most ``MAX_DEVICES_PER_PROCESS`` such connections.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common.mqtt import MqttAuth
from device_sim.connections import MAX_DEVICES_PER_PROCESS, OwnConnections
from device_sim.simulator import SimConfig, SimReport, Simulator
from device_sim.truth import Label

__all__ = ["FleetResult", "merge_reports", "run_fleet", "split_estate"]

Row = Mapping[str, str]
SheetRow = tuple[str, datetime, str]


@dataclass
class FleetResult:
    report: SimReport
    processes: int
    labels: list[Label] = field(default_factory=list)
    round_sheet: list[SheetRow] = field(default_factory=list)


def split_estate(estate: Sequence[Row], parts: int) -> list[list[Row]]:
    """Round-robin, so each part has its share of bins and homes wherever they are listed."""
    if parts < 1:
        raise ValueError("processes must be at least 1")
    if parts > len(estate):
        raise ValueError(f"{parts} processes for {len(estate)} devices: some would have none")
    return [list(estate[k::parts]) for k in range(parts)]


def merge_reports(reports: Sequence[SimReport]) -> SimReport:
    """One report for the whole fleet: counts add up; the wall time is the longest part's."""
    total = SimReport()
    for r in reports:
        total.messages.update(r.messages)
        total.readings.update(r.readings)
        total.malformed.update(r.malformed)
        total.duplicates += r.duplicates
        total.late += r.late
        total.offline_batches += r.offline_batches
        total.batched_readings += r.batched_readings
        total.published += r.published
        total.acked += r.acked
        total.wall_s = max(total.wall_s, r.wall_s)
        total.keys |= r.keys
        total.own_connections += r.own_connections
        total.connect_s = max(total.connect_s, r.connect_s)
        total.refusals.update(r.refusals)
    return total


def _part_config(config: SimConfig, index: int, parts: int, start: datetime) -> SimConfig:
    return dataclasses.replace(
        config,
        start=start,
        client_id=f"{config.client_id}-{index}",
        max_rate=config.max_rate / parts if config.max_rate else None,
    )


def _simulate_part(
    config: SimConfig,
    estate: list[Row],
    host: str,
    port: int,
    auth: MqttAuth | None,
    own_connections: OwnConnections | None,
    unrecorded_pct: float | None,
    index: int,
    out: Any,
) -> None:
    """One process's share; puts (index, report, labels, sheet) or (index, error text)."""
    try:

        def progress(report: SimReport, done: float) -> None:
            print(
                f"  [{index}] {done:6.1%} simulated, {report.published:,} published, "
                f"{report.acked:,} acknowledged",
                file=sys.stderr,
            )

        sim = Simulator(
            config, [dict(r) for r in estate], host=host, port=port, auth=auth,
            progress=progress, own_connections=own_connections,
        )  # fmt: skip
        report = sim.run()
        sheet = sim.round_sheet(unrecorded_pct) if unrecorded_pct is not None else []
        out.put((index, report, sim.labels, sheet))
    except Exception as exc:  # reported by the parent, which fails the run
        out.put((index, f"{type(exc).__name__}: {exc}"))


def run_fleet(
    config: SimConfig,
    estate: Sequence[Row],
    processes: int,
    *,
    host: str,
    port: int,
    auth: MqttAuth | None = None,
    unrecorded_pct: float | None = None,
    own_connections: OwnConnections | None = None,
) -> FleetResult:
    """Simulate ``estate`` in ``processes`` processes; ``unrecorded_pct`` (when given) also
    builds the crews' round sheet; ``own_connections``: every device on its own connection.
    Raises ``RuntimeError`` when a process fails."""
    parts = split_estate(estate, processes)
    if own_connections is not None and len(parts[0]) > MAX_DEVICES_PER_PROCESS:
        needed = -(-len(estate) // MAX_DEVICES_PER_PROCESS)
        raise ValueError(
            f"{len(estate)} devices on their own connections need at least {needed} processes "
            f"(at most {MAX_DEVICES_PER_PROCESS} each)"
        )
    wall_now = datetime.now(UTC)
    start = config.start or (
        wall_now - timedelta(seconds=config.duration_s) if config.speed > 1 else wall_now
    )
    out: mp.Queue[Any] = mp.Queue()
    procs = [
        mp.Process(
            target=_simulate_part,
            args=(
                _part_config(config, k, processes, start),
                part,
                host,
                port,
                auth,
                None
                if own_connections is None
                else own_connections.share(r["device_id"] for r in part),
                unrecorded_pct,
                k,
                out,
            ),
        )
        for k, part in enumerate(parts)
    ]
    for p in procs:
        p.start()
    results = _collect(out, procs)
    for p in procs:
        p.join()
    failures = [f"process {r[0]}: {r[1]}" for r in results if len(r) == 2]
    if failures:
        raise RuntimeError("; ".join(failures))
    results.sort(key=lambda r: r[0])
    return FleetResult(
        merge_reports([r[1] for r in results]),
        processes,
        labels=[label for r in results for label in r[2]],
        round_sheet=sorted((row for r in results for row in r[3]), key=lambda s: (s[1], s[0])),
    )


def _collect(out: Any, procs: list[Any]) -> list[tuple[Any, ...]]:
    """One result per process; a process that died without a word counts as failed."""
    results: list[tuple[Any, ...]] = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            reported = {r[0] for r in results}
            for k, p in enumerate(procs):
                if k not in reported and not p.is_alive() and p.exitcode not in (None, 0):
                    results.append((k, f"exited with code {p.exitcode}"))
    return results

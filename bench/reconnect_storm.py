"""A reconnect storm at estate scale: thousands of devices, each on its own TLS connection with
its own credentials, lose the broker to a restart and must all come back.

    .venv/bin/python -m bench.reconnect_storm [--devices 3000] [--processes N]

On a broker of its own (under .civic/bench-storm, the limits of ``common.broker.BrokerLimits``)
and the project-local PostgreSQL:

  1. registers ``--devices`` bins and issues each its own credentials (the broker's password
     file gets their hashes, as ``civic devices credentials`` does);
  2. ``--processes`` processes (by default as few as hold ``MAX_DEVICES_PER_PROCESS`` each:
     paho's select() limit) each hold a share of the devices as a ``DeviceFleet``
     (``device_sim.connections``: one TLS connection and thread per device, full-jitter
     backoff); all connect at once from cold and subscribe to their commands;
  3. the broker is stopped; once every device has noticed, it is started again 1 s later;
  4. every device must reconnect. Measured: time from the broker listening again until the
     last device was back, each device's wait between losing its connection and its next
     attempt (the jittered backoff it really waited) and its time to reconnect, the attempts
     and refusals seen, and the broker's resident memory and CPU while it took them back.

The broker needs a descriptor per device and each device process three per device (its
socket and paho's wake-up socket pair), so the soft open-file limit is raised in-process
(``resource.setrlimit``, up to the hard limit) where it is lower: here before the broker is
started (it inherits the limit), and in each device process. Writes
bench/results/reconnect_storm.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.broker import BrokerLimits
from common.command_keys import load_command_secret
from common.services import LocalServices
from device_sim import generate_estate
from device_sim.connections import MAX_DEVICES_PER_PROCESS, Backoff, DeviceFleet
from store.credentials import broker_password_hashes, issue_credentials
from store.db import connect, migrate
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
FDS_PER_DEVICE = 3  # the TLS socket and paho's wake-up socket pair
FD_HEADROOM = 1024  # the interpreter, PostgreSQL connections, log files
SAMPLE_S = 0.25  # how often the broker's memory and CPU are read during the storm
COLD_START_TIMEOUT_S = 600.0
STORM_TIMEOUT_S = 900.0


def raise_open_file_limit(needed: int) -> tuple[int, int, int]:
    """Raise the soft RLIMIT_NOFILE towards ``needed`` (never past the hard limit); the
    limits before and after, and the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft if soft >= needed else min(needed, hard)
    if wanted != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return soft, wanted, hard


def proc_limit(pid: int, name: str = "Max open files") -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return line[len(name) :].split()[0]
    return "?"


def proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BrokerSampler(threading.Thread):
    """The broker's resident memory and CPU share every ``SAMPLE_S`` until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.rss_kb: list[int] = []
        self.cpu_pct: list[float] = []  # of one core, per sample interval
        self.done = threading.Event()
        self.cpu_start = proc_cpu_s(pid)
        self.t_start = time.monotonic()

    def run(self) -> None:
        last_cpu, last_t = self.cpu_start, self.t_start
        while not self.done.wait(SAMPLE_S):
            try:
                cpu, now = proc_cpu_s(self.pid), time.monotonic()
                self.rss_kb.append(proc_status_kb(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return  # the broker went away
            self.cpu_pct.append(100.0 * (cpu - last_cpu) / (now - last_t))
            last_cpu, last_t = cpu, now

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.join()
        elapsed = time.monotonic() - self.t_start
        return {
            "cpu_s": proc_cpu_s(self.pid) - self.cpu_start,
            "elapsed_s": elapsed,
            "cpu_mean_pct": 100.0 * (proc_cpu_s(self.pid) - self.cpu_start) / elapsed,
            "cpu_peak_pct": max(self.cpu_pct, default=0.0),
            "rss_peak_sampled_kb": max(self.rss_kb, default=0),
            "rss_hwm_kb": proc_status_kb(self.pid, "VmHWM"),
        }


def device_process(
    index: int,
    passwords: dict[str, str],
    port: int,
    ca_file: str,
    backoff: tuple[float, float],
    fd_limit: int,
    connected: Any,
    stop: Any,
    out: Any,
) -> None:
    """One share of the estate: connect, keep ``connected[index]`` current, and when told to
    stop, send back every attempt, connection, loss and refusal seen."""
    raise_open_file_limit(fd_limit)
    fleet = DeviceFleet(
        passwords,
        "localhost",
        port,
        ca_file=Path(ca_file),
        backoff=Backoff(base_s=backoff[0], cap_s=backoff[1]),
        seed=index + 1,
    )
    fleet.start()
    while not stop.wait(0.2):
        connected[index] = fleet.connected()
    fleet.close()
    log = fleet.log
    with log.lock:
        out.put(
            {
                "attempts": list(log.attempts),
                "connects": list(log.connects),
                "losses": list(log.losses),
                "refusals": list(log.refusals),
            }
        )


def phase(text: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {text}", file=sys.stderr, flush=True)


def wait_until(test: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not test():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic()


def provision(local: LocalServices, database_url: str, devices: int) -> dict[str, str]:
    estate = generate_estate(devices, 0, seed=5)
    with connect(database_url) as conn:
        upsert_devices(conn, [parse_device_row(row) for row in estate])
        secret = load_command_secret(local.data_dir / "command.secret")
        issued = issue_credentials(conn, [r["device_id"] for r in estate], secret=secret)
        local.write_device_passwords(broker_password_hashes(conn))
    return {c.device_id: c.password for c in issued}


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p90": float("nan"), "max": float("nan")}
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "max": ordered[-1],
    }


def analyse(logs: list[dict[str, Any]], marks: dict[str, float], ids: set[str]) -> dict[str, Any]:
    """The storm in figures, from every process's log (monotonic clock, shared by them)."""
    down, up = marks["stop_at"], marks["up_at"]
    attempts = [a for log in logs for a in log["attempts"] if a[1] >= down]
    connects = [c for log in logs for c in log["connects"] if c[1] >= down]
    losses = [x for log in logs for x in log["losses"] if x[1] >= down]
    refusals = [r for log in logs for r in log["refusals"] if r[1] >= down]
    lost_at: dict[str, float] = {}
    for device_id, at in sorted(losses, key=lambda x: x[1]):
        lost_at.setdefault(device_id, at)
    first_wait: dict[str, float] = {}
    for device_id, at in sorted(attempts, key=lambda x: x[1]):
        if device_id in lost_at and at >= lost_at[device_id]:
            first_wait.setdefault(device_id, at - lost_at[device_id])
    back_at: dict[str, float] = {}
    for device_id, at in sorted(connects, key=lambda x: x[1]):
        back_at.setdefault(device_id, at)
    per_device = Counter(device_id for device_id, _ in attempts)
    return {
        "returned": len(set(back_at) & ids),
        "all_returned": set(back_at) >= ids,
        "last_back_after_up_s": max(back_at.values()) - up if back_at else None,
        "first_back_after_up_s": min(back_at.values()) - up if back_at else None,
        "first_wait_s": quantiles(list(first_wait.values())),
        "back_after_up_s": quantiles([at - up for at in back_at.values()]),
        "attempts": len(attempts),
        "attempts_per_device": quantiles([float(n) for n in per_device.values()]),
        "refusals": dict(Counter(why for _, _, why in refusals).most_common()),
        "refusals_after_up": dict(Counter(why for _, at, why in refusals if at >= up)),
    }


def prepare(args: argparse.Namespace) -> tuple[LocalServices, dict[str, str], dict[str, int]]:
    """The broker (started from this process, after the file limit was raised) and the
    provisioned devices' passwords; the open-file limits."""
    needed = args.devices + FD_HEADROOM  # the broker, which inherits this process's limit
    soft_before, soft, hard = raise_open_file_limit(needed)
    if soft < needed:
        raise SystemExit(
            f"{args.devices} devices need about {needed} open files; the hard limit is {hard}"
        )
    local = LocalServices(ROOT / ".civic" / "bench-storm", limits=BrokerLimits())
    local.stop_mosquitto()  # started again below, from this process: with its file limit
    state = local.up()
    admin = state.database_url.rsplit("/", 1)[0] + "/postgres"
    with connect(admin) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_storm WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_storm")
    database_url = state.database_url.rsplit("/", 1)[0] + "/bench_storm"
    migrate(database_url)
    phase(f"provisioning {args.devices} devices")
    passwords = provision(local, database_url, args.devices)
    files = {"soft_before": soft_before, "soft": soft, "hard": hard, "needed": needed}
    return local, passwords, files


def connected_total(connected: Any) -> int:
    return int(sum(connected[:]))


def storm(
    args: argparse.Namespace, local: LocalServices, passwords: dict[str, str]
) -> dict[str, Any]:
    """Cold start, broker restart, every device back: the marks, samples and device logs."""
    state = local.load_state()
    broker_pid = local._mosquitto_pid()
    assert state.mqtt_tls_port is not None
    assert broker_pid is not None
    ctx = mp.get_context("spawn")
    connected: Any = ctx.Array("i", args.processes)
    stop, out = ctx.Event(), ctx.Queue()
    ids = sorted(passwords)
    procs = [
        ctx.Process(
            target=device_process,
            args=(k, {d: passwords[d] for d in ids[k :: args.processes]}, state.mqtt_tls_port,
                  str(local.ca_file), (args.base, args.cap),
                  len(ids[k :: args.processes]) * FDS_PER_DEVICE + FD_HEADROOM, connected, stop,
                  out),
        )
        for k in range(args.processes)
    ]  # fmt: skip
    marks: dict[str, float] = {}
    try:
        phase(f"cold start: {args.devices} devices in {args.processes} processes")
        cold = BrokerSampler(broker_pid)
        cold.start()
        marks["cold_start"] = time.monotonic()
        for p in procs:
            p.start()
        marks["cold_all"] = wait_until(
            lambda: connected_total(connected) == args.devices, COLD_START_TIMEOUT_S, "all"
        )
        cold_figures = cold.stop()
        time.sleep(2.0)
        rss_connected = proc_status_kb(broker_pid, "VmRSS")
        phase("stopping the broker")
        marks["stop_at"] = time.monotonic()
        local.stop_mosquitto()
        marks["all_noticed"] = wait_until(
            lambda: connected_total(connected) == 0, 120, "every device to notice"
        )
        time.sleep(1.0)
        phase("starting the broker")
        local.start_mosquitto()
        marks["up_at"] = time.monotonic()
        new_pid = local._mosquitto_pid()
        assert new_pid is not None
        sampler = BrokerSampler(new_pid)
        sampler.start()
        try:
            marks["all_back"] = wait_until(
                lambda: connected_total(connected) == args.devices, STORM_TIMEOUT_S, "all back"
            )
        finally:
            storm_figures = sampler.stop()
        broker_files = proc_limit(new_pid)
        phase("every device back; collecting")
        stop.set()
        logs = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(60)
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.terminate()
        local.stop_mosquitto()
    return {
        "cold_start_s": marks["cold_all"] - marks["cold_start"],
        "cold": cold_figures,
        "rss_connected_kb": rss_connected,
        "noticed_s": marks["all_noticed"] - marks["stop_at"],
        "broker_down_s": marks["up_at"] - marks["stop_at"],
        "storm_s": marks["all_back"] - marks["up_at"],
        "storm": storm_figures,
        "broker_open_files": broker_files,
        **analyse(logs, marks, set(ids)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    local, passwords, files = prepare(args)
    figures = storm(args, local, passwords)
    return {
        "devices": args.devices,
        "processes": args.processes,
        "backoff": {"base_s": args.base, "cap_s": args.cap},
        "open_files": {**files, "broker": figures.pop("broker_open_files")},
        "max_connections": BrokerLimits().max_connections,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        **figures,
    }


def write_results(r: dict[str, Any], command: str) -> Path:
    mb = 1024
    wait, back, per = r["first_wait_s"], r["back_after_up_s"], r["attempts_per_device"]
    files = r["open_files"]
    raised = (
        f"raised in-process from {files['soft_before']:,} to {files['soft']:,}"
        if files["soft"] != files["soft_before"]
        else f"{files['soft']:,} already (no raise needed)"
    )
    refusals = ", ".join(f"{why}: {n:,}" for why, n in r["refusals"].items()) or "none"
    after_up = ", ".join(f"{why}: {n:,}" for why, n in r["refusals_after_up"].items()) or "none"
    lines = [
        f"Command: `{command}`",
        "",
        "# Reconnect storm: thousands of devices on their own TLS connections",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: one run on this shared 2-core machine "
        "(noisy, and other work was running on it), so the figures are from one run, not "
        f"medians. {r['devices']:,} devices, each with its own credentials and its own MQTT v5 "
        "TLS connection (`device_sim.connections.DeviceFleet`: a thread per device), dealt "
        f"out to {r['processes']} processes on the same machine as the broker; full-jitter "
        f"backoff, base {r['backoff']['base_s']:g} s, cap {r['backoff']['cap_s']:g} s. "
        "Mosquitto with the limits of `common.broker.BrokerLimits` "
        f"(max_connections {r['max_connections']:,} per listener). Open files: soft limit "
        f"{raised} (hard {files['hard']:,}; {files['needed']:,} needed: one per device for the "
        f"broker, which inherits it, plus headroom); the broker ran with {files['broker']}. "
        f"The machine's 1-minute load average was {r['load_average']['before']:.1f} before "
        f"the run and {r['load_average']['after']:.1f} after it (2 cores).",
        "",
        "| phase | figure |",
        "|---|---|",
        f"| cold start: all {r['devices']:,} connected at once (no backoff before a first "
        f"attempt) | {r['cold_start_s']:.1f} s |",
        f"| broker stopped; every device noticed | {r['noticed_s']:.1f} s |",
        f"| broker down (stopped, 1 s pause, started and listening) | {r['broker_down_s']:.1f} s |",
        f"| **broker listening again until the last device was back** | **{r['storm_s']:.1f} s** |",
        f"| first device back / last device back, after the broker listened | "
        f"{r['first_back_after_up_s']:.2f} s / {r['last_back_after_up_s']:.2f} s |",
        f"| every device returned | **{'yes' if r['all_returned'] else 'NO'}** "
        f"({r['returned']:,} of {r['devices']:,}) |",
        "",
        "| per device | p50 | p90 | max |",
        "|---|---|---|---|",
        f"| wait from losing the connection to the next attempt (s) | {wait['p50']:.2f} "
        f"| {wait['p90']:.2f} | {wait['max']:.2f} |",
        f"| time from the broker listening to reconnected (s) | {back['p50']:.2f} "
        f"| {back['p90']:.2f} | {back['max']:.2f} |",
        f"| connection attempts after the stop | {per['p50']:.0f} | {per['p90']:.0f} "
        f"| {per['max']:.0f} |",
        "",
        f"Attempts after the stop: {r['attempts']:,}. Refusals and errors seen after the stop: "
        f"{refusals}. Of them, after the broker listened again: {after_up}.",
        "",
        "| broker | cold start | reconnect storm |",
        "|---|---|---|",
        f"| CPU, mean over the phase (% of one core) | {r['cold']['cpu_mean_pct']:.0f} "
        f"| {r['storm']['cpu_mean_pct']:.0f} |",
        f"| CPU, busiest {SAMPLE_S:g} s sample (% of one core) | "
        f"{r['cold']['cpu_peak_pct']:.0f} | {r['storm']['cpu_peak_pct']:.0f} |",
        f"| CPU seconds used in the phase | {r['cold']['cpu_s']:.1f} | {r['storm']['cpu_s']:.1f} |",
        f"| resident memory, highest sampled (MB) | "
        f"{r['cold']['rss_peak_sampled_kb'] / mb:.0f} "
        f"| {r['storm']['rss_peak_sampled_kb'] / mb:.0f} |",
        f"| resident memory, peak of the process (VmHWM, MB) | {r['cold']['rss_hwm_kb'] / mb:.0f} "
        f"| {r['storm']['rss_hwm_kb'] / mb:.0f} |",
        "",
        f"Broker resident memory with all {r['devices']:,} connected before the restart: "
        f"{r['rss_connected_kb'] / mb:.0f} MB.",
    ]
    path = ROOT / "bench" / "results" / "reconnect_storm.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument(
        "--processes",
        type=int,
        help=f"device processes (default: enough for {MAX_DEVICES_PER_PROCESS} devices each)",
    )
    parser.add_argument("--base", type=float, default=Backoff().base_s, help="backoff base, s")
    parser.add_argument("--cap", type=float, default=Backoff().cap_s, help="backoff cap, s")
    args = parser.parse_args()
    if args.processes is None:
        args.processes = -(-args.devices // MAX_DEVICES_PER_PROCESS)
    result = run(args)
    print(json.dumps(result, indent=1))
    command = ".venv/bin/python -m bench.reconnect_storm " + " ".join(sys.argv[1:])
    print(write_results(result, command.strip()))


if __name__ == "__main__":
    main()

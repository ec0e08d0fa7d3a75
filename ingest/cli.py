"""``civic ingest``: subscribe, validate, batch-write, acknowledge after commit."""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING

from ingest.worker import BATCH_SIZE, FLUSH_INTERVAL_S, SHARE_GROUP

if TYPE_CHECKING:
    from common.mqtt import MqttAuth
    from ingest.worker import IngestConfig

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="subscribe to device telemetry and store it",
        description=(
            "Subscribes on an MQTT v5 shared subscription (so several workers split the load), "
            "or with --source nats://... pulls from a NATS cluster's JetStream durable "
            "consumers; validates every message against firmware contract v1, writes batches "
            "with COPY and acknowledges each message only after its rows are committed. "
            "Rejected messages go to the dead letters with a reason code."
        ),
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--source",
        default=os.environ.get("CIVIC_INGEST_SOURCE", "mqtt"),
        help=(
            "where messages come from: 'mqtt' (the broker of CIVIC_MQTT_URL, default) or "
            "nats://[user:password@]host:port,host:port (a NATS cluster's JetStream; devices "
            "publish to its MQTT listeners). Default: CIVIC_INGEST_SOURCE or mqtt"
        ),
    )
    parser.add_argument(
        "--client-id",
        default=f"civic-ingest-{socket.gethostname()}",
        help="MQTT client id prefix; keep it stable so sessions resume",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--flush-ms", type=float, default=FLUSH_INTERVAL_S * 1000)
    parser.add_argument(
        "--share-group",
        default=None,
        help=(
            f"shared subscription group (default: {SHARE_GROUP} with --workers > 1, a plain "
            "subscription with one worker; '' forces plain)"
        ),
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print a JSON line of counters every --stats-interval seconds",
    )
    parser.add_argument("--stats-interval", type=float, default=10.0)
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (+1 per extra worker)",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        metavar="S",
        help="exit after S seconds without messages (batch jobs, tests)",
    )
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace, index: int) -> IngestConfig:
    from common.services import parse_mqtt_url
    from common.settings import database_url, get_settings, mqtt_auth, mqtt_url
    from ingest.worker import IngestConfig

    settings = get_settings()
    source_url = None if args.source in ("", "mqtt") else args.source
    # The NATS source reads no MQTT broker; its account comes from the URL or, like the
    # broker's, from CIVIC_MQTT_USERNAME/PASSWORD or CIVIC_MQTT_ACCOUNTS_FILE.
    host, port = ("", 0) if source_url else parse_mqtt_url(mqtt_url(settings))
    url_auth = _check_source(source_url) if source_url else None
    return IngestConfig(
        database_url=database_url(settings),
        mqtt_host=host,
        mqtt_port=port,
        client_id=f"{args.client_id}-{index}",
        topic_prefix=settings.topic_prefix,
        share_group=(SHARE_GROUP if args.workers > 1 else None)
        if args.share_group is None
        else (args.share_group or None),
        batch_size=args.batch_size,
        flush_interval_s=args.flush_ms / 1000,
        mqtt_auth=url_auth or mqtt_auth("ingest", settings),
        source_url=source_url,
    )


def _check_source(url: str) -> MqttAuth | None:
    from common.errors import CliError
    from ingest.jetstream import SourceUrlError, parse_nats_url

    try:
        return parse_nats_url(url)[1]
    except SourceUrlError as exc:
        raise CliError(str(exc)) from exc


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT or SIGTERM sets ``stop``, once. A worker of ``--workers N`` gets both (SIGINT to
    its process group, then SIGTERM from the parent): a second handler running inside the
    first one's ``stop.set()`` would wait forever on the event's own lock, so the first thing
    a handler does is ignore further signals."""

    def handler(*_: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def run_worker(config: IngestConfig, args: argparse.Namespace, index: int) -> None:
    from prometheus_client import start_http_server

    from ingest.metrics import IngestMetrics
    from ingest.worker import IngestWorker

    metrics = IngestMetrics()
    if args.metrics_port:
        start_http_server(args.metrics_port + index, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()
    _stop_on_signals(stop)

    def report() -> None:
        while not stop.wait(args.stats_interval):
            print(json.dumps({"worker": index, **metrics.snapshot()}), flush=True)

    if args.stats:
        threading.Thread(target=report, daemon=True).start()
    IngestWorker(config, metrics).run(stop, idle_exit_s=args.idle_exit)
    if args.stats:
        print(json.dumps({"worker": index, "final": True, **metrics.snapshot()}), flush=True)


def _worker_main(args: argparse.Namespace, index: int) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    run_worker(_config(args, index), args, index)


def run(args: argparse.Namespace) -> int:
    configs = [_config(args, i) for i in range(args.workers)]
    if args.workers == 1:
        run_worker(configs[0], args, 0)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(args, i)) for i in range(args.workers)]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
            proc.join()
    return max((p.exitcode or 0) for p in procs)

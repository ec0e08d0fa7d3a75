"""``civic api``: serve the HTTP API (OpenAPI docs at /docs) and the screens built on it."""

from __future__ import annotations

import argparse
import os
import shutil


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("api", help="serve the HTTP API (docs at /docs)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes sharing the port (about one per core; each keeps its own pool of "
        "database connections)",
    )
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log each request (behind a proxy that logs them; /metrics still counts them)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.metrics import share_metrics
    from api.settings import ApiSettings
    from common.errors import CivicError
    from common.settings import database_url

    if args.workers < 1:
        raise CivicError("--workers must be 1 or more")
    ApiSettings().signing_secret()  # refuse here, once, rather than in every worker
    # Resolved once, so every worker process serves the same database.
    os.environ["CIVIC_DATABASE_URL"] = database_url()
    metrics_dir = share_metrics() if args.workers > 1 else None
    try:
        uvicorn.run(
            "dashboards.web:configured_web_app",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level="info",
            access_log=not args.no_access_log,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0

"""``civic api``: serve the HTTP API (OpenAPI docs at /docs) and the screens built on it."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("api", help="serve the HTTP API (docs at /docs)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log each request (behind a proxy that logs them; /metrics still counts them)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from common.settings import database_url
    from dashboards.web import create_web_app

    app = create_web_app(database_url())
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info", access_log=not args.no_access_log
    )
    return 0

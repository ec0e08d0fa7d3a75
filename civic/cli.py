"""The single ``civic`` entry point.

Each stage owns its subcommands in its own ``cli.py`` module exposing
``register(subparsers)``; this module only wires them together and configures logging,
so ``civic --help`` lists every stage and heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from common.errors import CivicError

# Order here is the order ``civic --help`` shows: the flow of data through the platform.
COMMAND_MODULES = (
    "common.services_cli",
    "store.cli",
    "firmware_contracts.cli",
    "ingest.cli",
    "device_sim.cli",
    "routing.cli",
    "alerts.cli",
    "fiware.cli",
    "api.cli",
    "dashboards.cli",
    "civic.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="civic",
        description="Civic Sensors: bins and homes to routes and alerts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        result: int | None = args.func(args)
    except CivicError as exc:
        print(f"civic {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result or 0


if __name__ == "__main__":
    sys.exit(main())

"""``civic export fiware``: FIWARE Smart Data Models entities, to a file or an NGSI-LD broker."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from common.errors import CliError
from fiware.entities import ENTITY_TYPES

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _export_actions(subparsers: Subparsers) -> Subparsers:
    """The ``civic export`` command's own subcommands (the store registers ``export``)."""
    export = subparsers.choices["export"]
    for action in export._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("civic export has no subcommands")


def register(subparsers: Subparsers) -> None:
    fiware = _export_actions(subparsers).add_parser(
        "fiware",
        help="FIWARE Smart Data Models entities (JSON array), or push them to an NGSI-LD broker",
        description=(
            "WasteContainer: every bin's fill, temperature, status from its open alerts, last "
            "emptying and forecast deadline. WasteContainerModel: one per bin size. "
            "IndoorEnvironmentObserved: each home sensor's latest reading, without address, "
            "UPRN or void flag (and its place to 0.1 degree) unless --personal."
        ),
    )
    fiware.add_argument("--type", required=True, choices=ENTITY_TYPES, dest="entity_type")
    fiware.add_argument("--format", choices=["keyvalues", "normalized"], default="keyvalues")
    fiware.add_argument(
        "--personal",
        action="store_true",
        help="IndoorEnvironmentObserved: include address, UPRN, void flag and exact place",
    )
    fiware.add_argument("--output", "-o", help="file to write (default: standard output)")
    fiware.add_argument(
        "--push",
        action="store_true",
        help="upsert the entities (normalized) into the broker at CIVIC_NGSI_LD_URL instead",
    )
    fiware.set_defaults(func=run_export_fiware)


def run_export_fiware(args: argparse.Namespace) -> int:
    from fiware.entities import render
    from fiware.load import load_entities
    from fiware.push import NgsiLdSettings, push_entities
    from store.db import connect_configured

    settings = NgsiLdSettings()
    if args.push and not settings.ngsi_ld_url:
        raise CliError("--push needs the broker's URL in CIVIC_NGSI_LD_URL")
    with connect_configured() as conn:
        entities = load_entities(conn, args.entity_type, personal=args.personal)
    if args.push:
        assert settings.ngsi_ld_url is not None
        result = push_entities(
            settings.ngsi_ld_url, render(entities, "normalized"), tenant=settings.ngsi_ld_tenant
        )
        print(f"pushed {result.sent} {args.entity_type} entities in {result.batches} batch(es)")
        return 0
    text = json.dumps(render(entities, args.format), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    print(f"exported {len(entities)} {args.entity_type} entities", file=sys.stderr)
    return 0

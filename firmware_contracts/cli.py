"""``civic contract check FILE.jsonl``: run an encoder's output through the contract."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware_contracts.check import check_lines
from firmware_contracts.topics import DEFAULT_PREFIX, TopicLayout


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "contract",
        help="check device messages against firmware contract v1",
        description="Firmware contract v1 tools. Needs no broker or database.",
    )
    sub = parser.add_subparsers(dest="contract_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate captured messages",
        description=(
            'Reads one {"topic": ..., "payload": ...} JSON object per line (payload as a JSON '
            'string) and prints one line per input: {"ok": true, "readings": N} or '
            '{"ok": false, "reason": CODE, "detail": ...}. Exit status 1 if any was rejected. '
            "Device registration is not checked here."
        ),
    )
    check.add_argument("file", help="JSONL file, or - for standard input")
    check.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (default: civic)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    layout = TopicLayout(args.prefix)
    if args.file == "-":
        lines = sys.stdin
    else:
        path = Path(args.file)
        if not path.is_file():
            # The contract package imports nothing else of the project, so it reports this itself.
            print(f"civic contract check: error: no such file: {path}", file=sys.stderr)
            return 2
        lines = path.open(encoding="utf-8")
    rejected = 0
    for result in check_lines(lines, layout=layout):
        rejected += not result["ok"]
        print(json.dumps(result, ensure_ascii=False))
    return 1 if rejected else 0

"""``civic users``, ``civic tokens`` and ``civic audit``: who may use the API, and who was
given what."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from common.cli import optional_when, print_table
from common.errors import CliError

ROLES = ("housing_officer", "waste_ops", "engineer", "admin")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_users(subparsers)
    _register_tokens(subparsers)
    audit = subparsers.add_parser(
        "audit",
        help="the access log: writes, heating commands and reads of personal data",
        description="Every write, heating command and read of personal data through the API.",
    )
    audit.add_argument("--since", help="RFC 3339, a date, or an age such as 7d")
    audit.add_argument("--until")
    audit.add_argument("--actor", help="e.g. user:alice or token:council-crm")
    audit.add_argument("--action", help="read_personal, write, command, login, logout")
    audit.add_argument("--format", choices=("json", "table"), default="json")
    audit.set_defaults(func=_audit)


def _register_users(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = subparsers.add_parser("users", help="people who log in to the API and screens")
    sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add",
        help="add a user (asks for the password, or --password-stdin)",
        description=(
            "Roles: housing_officer (homes, alerts, evidence and heating in their patches), "
            "waste_ops (bins, routes, collections), engineer (devices, ingest health, dead "
            "letters; no addresses), admin (everything, users and tokens)."
        ),
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--patch", action="append", default=[], help="repeatable; '*' for all")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=_users_add)
    password = sub.add_parser("password", help="set a user's password (asks for it)")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(func=_users_password)
    listing = sub.add_parser("list", help="users, roles, patches, disabled or not")
    listing.add_argument("--format", choices=("json", "table"), default="table")
    listing.set_defaults(func=_users_list)
    disable = sub.add_parser("disable", help="refuse a user from their next request on")
    disable.add_argument("name")
    disable.set_defaults(func=_users_disable)


def _register_tokens(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = subparsers.add_parser(
        "tokens", help="API credentials for scripts and council systems (client credentials)"
    )
    sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    create = sub.add_parser(
        "create",
        help="create a token; prints its client id and secret once",
        description=(
            "Scripts exchange the client id and secret at POST /api/v1/auth/token "
            "(grant_type=client_credentials) for a short-lived bearer token. Only a hash of "
            "the secret is kept: store it when it is printed."
        ),
    )
    create.add_argument("name")
    create.add_argument("--role", default="engineer", choices=ROLES)
    create.add_argument(
        "--scope", action="append", default=[], help="repeatable; default: the role's"
    )
    create.add_argument("--patch", action="append", default=[], help="repeatable; '*' for all")
    create.set_defaults(func=_tokens_create)
    listing = sub.add_parser("list", help="tokens (never their secrets)")
    listing.add_argument("--format", choices=("json", "table"), default="table")
    listing.set_defaults(func=_tokens_list)
    revoke = sub.add_parser("revoke", help="refuse a token from its next request on")
    revoke.add_argument("name", help="the token's name or client id")
    revoke.set_defaults(func=_tokens_revoke)


def _connect() -> Any:
    from store.db import connect_configured

    return connect_configured()


def _json(value: Any) -> str:
    from store.extract import jsonable

    return json.dumps(value, default=jsonable, indent=2)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password (12+ characters): ")
    if getpass.getpass("again: ") != first:
        raise CliError("the passwords differ")
    return first


def _users_add(args: argparse.Namespace) -> int:
    from api.identity import add_user

    password = _read_password(args.password_stdin)
    with _connect() as conn:
        add_user(conn, args.name, args.role, args.patch, password)
    print(f"user {args.name} added ({args.role})")
    return 0


def _users_password(args: argparse.Namespace) -> int:
    from api.identity import set_password

    password = _read_password(args.password_stdin)
    with _connect() as conn:
        set_password(conn, args.name, password)
    print(f"password of {args.name} set; their sessions elsewhere must log in again")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    from api.identity import list_users

    with _connect() as conn:
        rows = list_users(conn)
    if args.format == "json":
        print(_json(rows))
    else:
        shown = [{**r, "patches": ",".join(r["patches"])} for r in rows]
        print_table(shown, ("name", "role", "patches", "created_at", "disabled_at"))
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    from api.identity import disable_user

    with _connect() as conn:
        disable_user(conn, args.name)
    print(f"user {args.name} disabled")
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    from api.identity import create_token

    with _connect() as conn:
        token = create_token(
            conn,
            args.name,
            role=args.role,
            scopes=args.scope,
            patches=args.patch,
            created_by="cli",
        )
    print(
        json.dumps(
            {
                "name": args.name,
                "client_id": token.client_id,
                "client_secret": token.client_secret,
                "scopes": sorted(token.scopes),
                "note": "the secret is shown only now; only its hash is kept",
            },
            indent=2,
        )
    )
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    from api.identity import list_tokens

    with _connect() as conn:
        rows = list_tokens(conn)
    if args.format == "json":
        print(_json(rows))
    else:
        shown = [{**r, "scopes": " ".join(r["scopes"])} for r in rows]
        print_table(shown, ("name", "client_id", "role", "scopes", "created_at", "revoked_at"))
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    from api.identity import revoke_token

    with _connect() as conn:
        revoke_token(conn, args.name)
    print(f"token {args.name} revoked")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from api.identity import iter_access_log
    from store.extract import jsonable

    since, until = optional_when(args.since), optional_when(args.until)
    with _connect() as conn:
        rows = iter_access_log(conn, since=since, until=until, actor=args.actor, action=args.action)
        if args.format == "table":
            listed = list(rows)
            print_table(
                [{**r, "subjects": ",".join(r["subjects"][:5])} for r in listed],
                ("at", "actor", "action", "resource", "subjects"),
            )
            return 0
        sys.stdout.write("[")
        for n, row in enumerate(rows):
            sys.stdout.write(("," if n else "") + "\n" + json.dumps(row, default=jsonable))
        sys.stdout.write("\n]\n")
    return 0

"""``civic services up|down|status``."""

from __future__ import annotations

import argparse
import json

from common.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "services",
        help="start/stop the project-local PostgreSQL and Mosquitto",
        description=(
            "Start, stop or inspect a project-local PostgreSQL (with TimescaleDB when installed) "
            "and Mosquitto on free ports under CIVIC_DATA_DIR (default .civic). Not needed when "
            "CIVIC_DATABASE_URL and CIVIC_MQTT_URL point at existing servers."
        ),
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from common.errors import CliError
    from common.services import LocalServices, ServicesError

    settings = get_settings()
    services = LocalServices(settings.data_dir)
    try:
        if args.action == "up":
            if settings.database_url and settings.mqtt_url:
                print("CIVIC_DATABASE_URL and CIVIC_MQTT_URL are set: nothing to start")
                return 0
            state = services.up()
            print(f"PostgreSQL  {state.database_url}")
            print(f"Mosquitto   {state.mqtt_url}  (services, loopback only)")
            print(f"Devices     {state.mqtt_tls_url}  (TLS, CA {services.ca_file})")
        elif args.action == "down":
            services.down()
            print("services stopped")
        else:
            print(json.dumps(services.status(), indent=2))
    except ServicesError as exc:
        raise CliError(str(exc)) from exc
    return 0

"""``civic gdpr export --uprn U``: everything about one home, and nothing about another."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from civic.cli import main
from firmware_contracts import Reading
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from tests.ingest.helpers import register_estate


def test_export_holds_one_homes_devices_readings_and_credentials_only(civic_env, capsys):
    url, _mqtt = civic_env
    estate = register_estate(url, bins=0, homes=2)
    mine, other = estate[0], estate[1]
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with connect(url) as conn:
        readings = [
            Reading(mine["device_id"], ts, seq=1, temp_c=17.5, rh_pct=55.0),
            Reading(other["device_id"], ts, seq=1, temp_c=9.0),
        ]
        prepare_session(conn)
        write_batch(conn, readings, [], partitions=PartitionGuard())
    assert main(["devices", "credentials", mine["device_id"]]) == 0
    capsys.readouterr()
    assert main(["gdpr", "export", "--uprn", mine["uprn"]]) == 0
    export = json.loads(capsys.readouterr().out)
    assert [d["device_id"] for d in export["devices"]] == [mine["device_id"]]
    assert export["devices"][0]["address"] == mine["address"]
    assert [(r["device_id"], r["temp_c"]) for r in export["readings"]] == [
        (mine["device_id"], 17.5)
    ]
    assert [c["device_id"] for c in export["credentials"]] == [mine["device_id"]]
    assert "password_hash" not in export["credentials"][0]
    assert other["device_id"] not in json.dumps(export)


def test_export_of_an_unknown_home_is_a_clear_error(civic_env, capsys):
    assert main(["gdpr", "export", "--uprn", "999999999999"]) == 2
    assert "nothing is held about UPRN 999999999999" in capsys.readouterr().err

"""``civic sim --connections per-device`` and ``--wire-faults N`` through the command line,
against a real Mosquitto with the project's accounts, ACL and devices' TLS listener, and a
real ingest worker storing into PostgreSQL.

The per-device runs get a broker of their own, so that what their thousands of logins and
wire faults leave behind (retained statuses, a reloaded password file) stays out of the
suite's shared broker. (They once had to: devices then kept persistent sessions, and a later
test's password reload crashed Mosquitto 2.0; test_broker_reload_crash.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from civic.cli import main
from common.services import LocalServices, free_port
from device_sim import write_estate_csv
from store.db import connect
from tests.conftest import MqttTarget
from tests.ingest.helpers import count, register_estate, start_worker, wait_for

FAST = ["--interval", "10m", "--duration", "2h", "--speed", "100000"]
PACED = ["--interval", "10m", "--duration", "2h", "--speed", "1000"]  # 7 s: faults alongside
TICKS = 12  # 2 h of 10-minute reports
FAULT_MODES = {
    "raw_garbage",
    "truncated_connect",
    "overlong_length_field",
    "truncated_publish",
    "oversize_payload",
}


Registered = tuple[Path, Path, list[dict[str, str]]]


def _register(url: str, tmp_path: Path, capsys) -> Registered:
    """Six bins and three homes registered, as an estate CSV, and their credentials issued
    through the command line into a file (as an engineer would)."""
    estate = register_estate(url, bins=6, homes=3, seed=7)
    csv_path, creds = tmp_path / "estate.csv", tmp_path / "credentials.jsonl"
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        write_estate_csv(estate, out)
    assert main(["devices", "credentials", "--all", "--out", str(creds)]) == 0
    capsys.readouterr()
    return csv_path, creds, estate


@pytest.fixture
def registered(civic_env, tmp_path, capsys) -> Registered:
    """The estate and its credentials, on the suite's broker."""
    return _register(civic_env[0], tmp_path, capsys)


@pytest.fixture
def own_broker(civic_env, tmp_path, monkeypatch) -> Iterator[MqttTarget]:
    """A Mosquitto of this test's own, configured as the suite's, with ``civic`` pointed at it."""
    local = LocalServices(tmp_path / "broker")
    local.start_mosquitto()
    state = local.load_state()
    assert state.mqtt_port is not None
    target = MqttTarget("127.0.0.1", state.mqtt_port, civic_env[1].prefix, local)
    monkeypatch.setenv("CIVIC_MQTT_URL", target.url)
    monkeypatch.setenv("CIVIC_DATA_DIR", str(local.data_dir))
    yield target
    local.stop_mosquitto()


@pytest.fixture
def registered_own(civic_env, own_broker, tmp_path, capsys) -> Registered:
    """The estate and its credentials, on the test's own broker."""
    return _register(civic_env[0], tmp_path, capsys)


def _sim(capsys, *argv: str) -> tuple[int, dict, str]:
    """Run ``civic sim``; its exit code, final JSON report (or {}) and stderr."""
    capsys.readouterr()
    code = main(["sim", *argv])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else {}), err


def _stored_per_device(url: str) -> dict[str, int]:
    with connect(url) as conn:
        rows = conn.execute("SELECT device_id, count(*) AS n FROM readings GROUP BY 1").fetchall()
    return {r["device_id"]: r["n"] for r in rows}


def _broker_logins(mqtt) -> dict[str, str]:
    """client id -> username of every login the suite's broker logged."""
    log = (mqtt.local.mqtt_dir / "mosquitto.log").read_text(errors="replace")
    logins = {}
    for line in log.splitlines():
        if "New client connected" in line and " as " in line:
            client_id = line.split(" as ", 1)[1].split(" ", 1)[0]
            logins[client_id] = line.rsplit("u'", 1)[1].split("'", 1)[0] if "u'" in line else ""
    return logins


def test_per_device_connections_each_log_in_as_themselves_and_every_reading_lands(
    registered_own, civic_env, own_broker, capsys
) -> None:
    url, mqtt = civic_env[0], own_broker
    csv_path, creds, estate = registered_own
    worker, stop, thread = start_worker(url, mqtt)
    try:
        code, report, err = _sim(
            capsys, "--estate", str(csv_path), "--connections", "per-device",
            "--credentials", str(creds), *FAST,
        )  # fmt: skip
        assert code == 0, err
        ids = {row["device_id"] for row in estate}
        assert report["connections"]["mode"] == "per-device"
        assert report["connections"]["devices"] == len(ids)
        assert report["readings_total"] == len(ids) * TICKS
        assert report["acked"] == report["published"]
        wait_for(
            lambda: worker.metrics.snapshot()["stored"] >= report["readings_total"],
            60,
            "ingest to store every reading",
        )
    finally:
        stop.set()
        thread.join_checked(30)
    assert _stored_per_device(url) == dict.fromkeys(ids, TICKS)
    # Each device logged in on the devices' listener under its own name, not the sim's account.
    logins = _broker_logins(mqtt)
    assert {d: logins.get(d) for d in ids} == {d: d for d in ids}
    assert count(url, "SELECT count(*) FROM deadletters") == 0


def test_a_device_holding_anothers_password_is_refused_and_the_run_says_what_to_do(
    registered_own, civic_env, capsys, tmp_path
) -> None:
    url = civic_env[0]
    csv_path, creds, _estate = registered_own
    lines = [json.loads(x) for x in creds.read_text().splitlines()]
    lines[0]["password"], lines[1]["password"] = lines[1]["password"], lines[0]["password"]
    swapped = tmp_path / "swapped.jsonl"
    swapped.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, _report, err = _sim(
        capsys, "--estate", str(csv_path), "--connections", "per-device",
        "--credentials", str(swapped), *FAST,
    )  # fmt: skip
    assert code == 2
    assert "2 refused by the broker (CONNACK: Not authorized)" in err
    assert "civic devices credentials --all --rotate" in err
    assert count(url, "SELECT count(*) FROM readings") == 0


def test_wire_faults_are_counted_and_leave_broker_and_ingest_storing(
    registered, civic_env, capsys
) -> None:
    url, mqtt = civic_env
    csv_path, _creds, estate = registered
    broker_pid = mqtt.local._mosquitto_pid()
    worker, stop, thread = start_worker(url, mqtt)
    try:
        code, report, err = _sim(
            capsys, "--estate", str(csv_path), "--wire-faults", "10",
            "--client-id", f"sim-{mqtt.prefix}", *PACED,
        )  # fmt: skip
        assert code == 0, err
        faults = report["wire_faults"]
        print(faults)
        assert faults["sent"] == 10
        assert set(faults["outcomes"]) == FAULT_MODES
        assert all(sum(o.values()) == 2 for o in faults["outcomes"].values())
        for mode, outcomes in faults["outcomes"].items():
            assert not any(o.startswith("could not be sent") for o in outcomes), (mode, outcomes)
        assert not any("answered 20" in o for o in faults["outcomes"]["raw_garbage"])
        assert not any(o == "did not answer" for o in faults["outcomes"]["oversize_payload"])
        wait_for(
            lambda: worker.metrics.snapshot()["stored"] >= report["readings_total"],
            60,
            "ingest to store every reading",
        )
        assert thread.is_alive()  # ingest kept running through the faults
    finally:
        stop.set()
        thread.join_checked(30)
    assert mqtt.local._mosquitto_pid() == broker_pid  # the same broker process throughout
    assert _stored_per_device(url) == {row["device_id"]: TICKS for row in estate}
    assert count(url, "SELECT count(*) FROM deadletters") == 0  # nothing half-sent got through


def test_per_device_in_two_processes_with_wire_faults_from_the_estates_first_device(
    registered_own, civic_env, own_broker, capsys
) -> None:
    url, mqtt = civic_env[0], own_broker
    csv_path, creds, estate = registered_own
    faulty, *senders = [row["device_id"] for row in estate]
    broker_pid = mqtt.local._mosquitto_pid()
    worker, stop, thread = start_worker(url, mqtt)
    try:
        code, report, err = _sim(
            capsys, "--estate", str(csv_path), "--connections", "per-device",
            "--credentials", str(creds), "--processes", "2", "--wire-faults", "5", *PACED,
        )  # fmt: skip
        assert code == 0, err
        assert report["processes"] == 2
        assert report["connections"]["devices"] == len(senders)
        assert report["wire_faults"]["sent"] == 5
        assert f"logging in as {faulty}" in err
        wait_for(
            lambda: worker.metrics.snapshot()["stored"] >= report["readings_total"],
            60,
            "ingest to store every reading",
        )
    finally:
        stop.set()
        thread.join_checked(30)
    assert mqtt.local._mosquitto_pid() == broker_pid
    assert _stored_per_device(url) == dict.fromkeys(senders, TICKS)  # the faulty one sent none
    assert count(url, "SELECT count(*) FROM deadletters") == 0


def test_missing_prerequisites_are_named_with_what_to_run(
    registered, civic_env, capsys, tmp_path
) -> None:
    csv_path, creds, _estate = registered
    base = ["--estate", str(csv_path), "--connections", "per-device", *FAST]
    code, _r, err = _sim(capsys, *base)
    assert code == 2
    assert "civic devices credentials --all --out FILE" in err
    code, _r, err = _sim(capsys, *base, "--credentials", str(creds), "--ca-file", "/nonexistent")
    assert code == 2
    assert "no CA file at /nonexistent" in err
    assert "civic services up" in err
    code, _r, err = _sim(capsys, *base, "--credentials", str(creds), "--devices-url", "mqtt://x")
    assert code == 2
    assert "give mqtts://HOST:PORT" in err
    closed = f"mqtts://127.0.0.1:{free_port()}"
    code, _r, err = _sim(capsys, *base, "--credentials", str(creds), "--devices-url", closed)
    assert code == 2
    assert "not reachable" in err
    assert "civic services up" in err
    one = tmp_path / "one.jsonl"
    one.write_text(creds.read_text().splitlines()[0] + "\n")
    code, _r, err = _sim(capsys, *base, "--credentials", str(one))
    assert code == 2
    assert "no credentials for 8 of the 9 simulated devices" in err
    code, _r, err = _sim(capsys, *base, "--credentials", str(creds), "--mqtt-version", "3.1.1")
    assert code == 2
    assert "MQTT 5 only" in err


def test_more_devices_than_one_process_holds_asks_for_more_processes(
    civic_env, capsys, tmp_path
) -> None:
    creds = tmp_path / "credentials.jsonl"
    creds.write_text(
        "".join(
            json.dumps({"device_id": f"bin-{k:06d}", "password": "x"}) + "\n" for k in range(1, 400)
        )
    )
    code, _r, err = _sim(
        capsys, "--bins", "350", "--homes", "0", "--connections", "per-device",
        "--credentials", str(creds), *FAST,
    )  # fmt: skip
    assert code == 2
    assert "need --processes 2 or more" in err

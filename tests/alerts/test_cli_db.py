"""``civic alerts`` commands against a real database: their error exits, the evidence window and
PDF, officers, rules files, and ``alerts run`` wired to SMTP and MQTT from the command line."""

from __future__ import annotations

import json
import re
import socket
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion

from alerts.recipients import officers_for
from civic.cli import main
from firmware_contracts import CommandV1
from store.db import connect

from .test_notify_db import Inbox
from .test_service_db import insert, register, trace

FROST_CLEARED = datetime(2025, 11, 20, 17, 0, tzinfo=UTC)  # in the void_cold_snap trace


def _json(capsys, *argv: str):
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _fails(capsys, *argv: str) -> str:
    """Runs a command that must exit 2, and returns its error line."""
    capsys.readouterr()
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.strip().splitlines()[-1]


@pytest.fixture
def frost_history(civic_env, monkeypatch) -> str:
    """A void home's cold snap up to half a day after the frost risk cleared: the frost alert
    is cleared but not yet resolved, and a second condition (heating off) is still on."""
    url, _ = civic_env
    monkeypatch.setenv("CIVIC_ALERTS_OVERDUE_CHECK_S", "0")
    void = trace("void_cold_snap")
    register(url, [void])
    insert(url, [r for r in void.items if r.ts < FROST_CLEARED + timedelta(hours=12)])
    assert main(["alerts", "run", "--once", "--no-mqtt"]) == 0
    return url


def _alert(capsys, alert_type: str) -> dict:
    alerts = _json(capsys, "alerts", "list", "--type", alert_type, "--format", "json")
    assert len(alerts) == 1, alerts
    alert: dict = alerts[0]
    return alert


def test_ack_and_resolve_refuse_unknown_resolved_and_repeated_requests(frost_history, capsys):
    frost = _alert(capsys, "frost_risk")
    assert frost["state"] == "open"
    assert frost["cleared_at"] is not None  # the condition is over; a person still decides
    who = ("--by", "jo.smith")

    for action in ("ack", "resolve"):
        error = _fails(capsys, "alerts", action, "no-such-alert", *who, "--note", "x")
        assert error == "civic alerts: error: no alert 'no-such-alert' (see `civic alerts list`)"

    acked = _json(capsys, "alerts", "ack", frost["id"], *who, "--format", "json")
    assert acked["state"] == "acknowledged"
    error = _fails(capsys, "alerts", "ack", frost["id"], *who)
    assert error == (
        f"civic alerts: error: alert {frost['id']!r}: "
        "cannot acknowledge an alert that is acknowledged"
    )
    # A cleared condition needs no --force to resolve.
    resolved = _json(
        capsys, "alerts", "resolve", frost["id"], *who, "--note", "heating on", "--format", "json"
    )
    assert resolved["state"] == "resolved"
    for action in ("ack", "resolve"):
        error = _fails(capsys, "alerts", action, frost["id"], *who, "--note", "again")
        assert error == f"civic alerts: error: alert {frost['id']} is already resolved"

    shown = _json(capsys, "alerts", "show", frost["id"], "--format", "json")
    people = [(a["action"], a["actor"]) for a in shown["audit"] if a["actor"] == "jo.smith"]
    assert people == [("acknowledged", "jo.smith"), ("resolved", "jo.smith")]

    # An alert whose condition is still on: resolving needs --force.
    heating = _alert(capsys, "void_heating_off")
    assert heating["cleared_at"] is None
    error = _fails(capsys, "alerts", "resolve", heating["id"], *who, "--note", "checked")
    assert error.endswith("(use --force)")
    assert _alert(capsys, "void_heating_off")["state"] == "open"


def _pdf_text(pdf: bytes) -> str:
    """The text drawing operators of every page, from the PDF's compressed content streams."""
    text = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            text.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            continue  # images and fonts
    return "".join(re.findall(r"\((.*?)\)\s*Tj", "\n".join(text)))


def test_evidence_window_unknown_alert_and_pdf_content(frost_history, capsys, tmp_path) -> None:
    frost = _alert(capsys, "frost_risk")
    since = datetime.fromisoformat(frost["since"])
    cleared = datetime.fromisoformat(frost["cleared_at"])
    wide = _json(capsys, "alerts", "evidence", frost["id"], "--format", "json")
    narrow = _json(
        capsys,
        "alerts",
        "evidence",
        frost["id"],
        "--before",
        "1h",
        "--after",
        "30m",
        "--format",
        "json",
    )
    # The trace reports every 30 minutes; the history stops 12 h after the frost cleared.
    windows = [
        (wide, since - timedelta(hours=48), FROST_CLEARED + timedelta(hours=11, minutes=30)),
        (narrow, since - timedelta(hours=1), cleared + timedelta(minutes=30)),
    ]
    for pack, first, last in windows:
        times = [datetime.fromisoformat(r["ts"]) for r in pack["readings"]["env-void-03"]]
        assert first <= min(times) < first + timedelta(minutes=30)
        assert last - timedelta(minutes=30) < max(times) <= last

    error = _fails(capsys, "alerts", "evidence", frost["id"], "--before", "a while")
    assert error.startswith("civic alerts: error: ")
    assert "a while" in error
    error = _fails(capsys, "alerts", "evidence", "no-such-alert")
    assert error == "civic alerts: error: no alert 'no-such-alert'"

    pdf_path = tmp_path / "pack.pdf"
    assert main(["alerts", "evidence", frost["id"], "--format", "pdf", "-o", str(pdf_path)]) == 0
    text = _pdf_text(pdf_path.read_bytes())
    assert "Evidence pack: frost_risk at 03 Test Road" in text
    assert frost["id"] in text
    assert "void_frost" in text
    assert "below 5 C" in text  # why the rule fired


def test_the_evidence_pack_charts_carry_the_homes_thresholds(frost_history, capsys) -> None:
    frost = _alert(capsys, "frost_risk")
    pack = _json(capsys, "alerts", "evidence", frost["id"], "--format", "json")
    labels = [t["label"] for t in pack["thresholds"] if t["metric"] == "temp_c"]
    assert labels == ["void heating off below 12 °C", "frost risk below 5 °C"]


def test_the_evidence_pdf_chart_has_units_thresholds_and_a_legend(
    frost_history, capsys, tmp_path
) -> None:
    frost = _alert(capsys, "frost_risk")
    pdf_path = tmp_path / "pack.pdf"
    main(["alerts", "evidence", frost["id"], "--format", "pdf", "-o", str(pdf_path)])
    text = _pdf_text(pdf_path.read_bytes())
    expected = ["env-void-03: temperature", "5 °C", "dashed brown: frost risk below 5 °C"]
    assert [t for t in expected if t not in text] == []


def test_the_evidence_html_chart_has_axes_units_thresholds_and_a_legend(
    frost_history, capsys, tmp_path
) -> None:
    frost = _alert(capsys, "frost_risk")
    html_path = tmp_path / "pack.html"
    main(["alerts", "evidence", frost["id"], "--format", "html", "-o", str(html_path)])
    page = html_path.read_text(encoding="utf-8")
    svg = page[page.index("<figure") : page.index("</figure>")]
    expected = [
        "env-void-03: temperature (°C)",  # the chart's title with the unit
        ">5 °C</text>",  # a y-axis value with its unit
        "time (UTC)</text>",  # the x axis named
        "stroke-dasharray",  # thresholds drawn dashed
        "frost risk below 5 °C</text>",  # and named where drawn
        "threshold: frost risk below 5 °C, dashed brown, dotted</li>",  # the legend
        'role="img" aria-label="env-void-03: temperature (°C): ',  # a text alternative
    ]
    assert [t for t in expected if t not in svg] == []


def test_officer_command_stores_who_hears_about_which_patch(civic_env, capsys) -> None:
    url, _ = civic_env
    added = _json(
        capsys,
        "alerts",
        "officer",
        "ann",
        "--name",
        "Ann Patel",
        "--email",
        "ann@council.example",
        "--patch",
        "south",
        "--patch",
        "east",
        "--min-severity",
        "urgent",
        "--no-digest",
        "--format",
        "json",
    )
    assert added == {"officer_id": "ann", "patches": ["south", "east"]}
    with connect(url) as conn:
        south = officers_for(conn, "south", None)
        north = officers_for(conn, "north", None)
    assert [(o.officer_id, o.name, o.email) for o in south] == [
        ("ann", "Ann Patel", "ann@council.example")
    ]
    assert south[0].min_severity.label == "urgent"
    assert (south[0].notify_email, south[0].daily_digest) == (True, False)
    assert north == []

    # Updating replaces the patches.
    assert main(["alerts", "officer", "ann", "--name", "Ann Patel", "--patch", "north"]) == 0
    assert capsys.readouterr().out == "officer ann covers north\n"
    with connect(url) as conn:
        assert officers_for(conn, "south", None) == []
        assert [o.officer_id for o in officers_for(conn, "north", None)] == ["ann"]

    error = _fails(
        capsys,
        "alerts",
        "officer",
        "bob",
        "--name",
        "Bob",
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--webhook-secret",
        "short",
    )
    assert error == "civic alerts: error: officer bob: webhook secret must be 16+ characters"


RULES = """
[patch.north.home.cold_home]
limit_c = 21.0
severe_c = 19.0
[property.100000000001.home.cold_home]
limit_c = 19.5
severe_c = 17.0
[device.bin-000123.bin.overflow]
overflowing_pct = 90.0
"""


def test_rules_command_checks_a_file_and_shows_a_home_or_bin(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    assert main(["alerts", "rules", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: ok (1 patch, 1 property and 1 device override(s))\n"
    )
    home = _json(capsys, "alerts", "rules", str(path), "--uprn", "100000000001", "--patch", "north")
    assert (home["cold_home"]["limit_c"], home["cold_home"]["severe_c"]) == (19.5, 17.0)
    patch_only = _json(
        capsys, "alerts", "rules", str(path), "--uprn", "100000000009", "--patch", "north"
    )
    assert patch_only["cold_home"]["limit_c"] == 21.0
    elsewhere = _json(capsys, "alerts", "rules", str(path), "--uprn", "100000000009")
    assert elsewhere["cold_home"]["limit_c"] == 18.0  # the documented default
    bin_rules = _json(capsys, "alerts", "rules", str(path), "--device", "bin-000123")
    assert bin_rules["overflow"]["overflowing_pct"] == 90.0
    other_bin = _json(capsys, "alerts", "rules", str(path), "--device", "bin-000124")
    assert other_bin["overflow"]["overflowing_pct"] != 90.0

    path.write_text("[patch.north.home.cold_home]\nlimit_c = 'cold'\n")
    error = _fails(capsys, "alerts", "rules", str(path))
    assert error.startswith("civic alerts: error: ")
    assert "patch.north.home.cold_home" in error


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class CommandListener:
    """Subscribes to one device's command topic, as the device would."""

    def __init__(self, host: str, port: int, topic: str, auth) -> None:
        self.received: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        auth.apply(self.client)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.received.append(msg.payload)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_alerts_run_emails_officers_and_publishes_heating_commands(
    civic_env, monkeypatch, smtp, capsys
) -> None:
    """Only the command line and the environment wire ``alerts run`` to SMTP and MQTT."""
    url, mqtt = civic_env
    inbox, smtp_port = smtp
    void = trace("void_cold_snap")
    register(url, [void])
    # History up to the middle of the cold snap: the frost risk is on.
    insert(url, [r for r in void.items if r.ts < datetime(2025, 11, 16, tzinfo=UTC)])
    assert main(["alerts", "officer", "ann", "--name", "Ann", "--email", "ann@council.example",
                 "--patch", "south"]) == 0  # fmt: skip
    monkeypatch.setenv("CIVIC_SMTP_URL", f"smtp://127.0.0.1:{smtp_port}")
    monkeypatch.setenv("CIVIC_SMTP_FROM", "alerts@council.example")
    monkeypatch.setenv("CIVIC_ALERTS_OVERDUE_CHECK_S", "0")
    topic = f"{mqtt.prefix}/v1/devices/{void.device_id}/commands"
    listener = CommandListener(mqtt.host, mqtt.port, topic, mqtt.auth("sim"))
    try:
        capsys.readouterr()
        assert main(["alerts", "run", "--once"]) == 0
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not listener.received and datetime.now(UTC) < deadline:
            threading.Event().wait(0.1)
    finally:
        listener.close()

    frost = _alert(capsys, "frost_risk")
    subjects = {m["Subject"]: m for m in inbox.messages}
    email = next(m for s, m in subjects.items() if "frost risk" in s)
    assert email["To"] == "ann@council.example"
    assert email["From"] == "alerts@council.example"
    assert len(listener.received) == 1, listener.received
    command = CommandV1.model_validate_json(listener.received[0])
    assert command.name == "set_heating_setpoint"
    assert command.args["setpoint_c"] == 12.0
    with connect(url) as conn:
        stored = conn.execute("SELECT * FROM commands").fetchone()
    assert (stored["id"], stored["alert_id"]) == (command.id, frost["id"])
    assert stored["published_at"] is not None


def test_alerts_run_refuses_an_smtp_url_it_cannot_use(civic_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CIVIC_SMTP_URL", "mail.council.example:25")
    error = _fails(capsys, "alerts", "run", "--once", "--no-mqtt")
    assert error == (
        "civic alerts: error: CIVIC_SMTP_URL: unsupported SMTP URL "
        "'mail.council.example:25': use smtp://host:port"
    )

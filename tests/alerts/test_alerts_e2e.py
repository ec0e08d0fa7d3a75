"""End to end on real servers: simulator → Mosquitto → ingest → PostgreSQL → alerts →
email (aiosmtpd) and a frost-protection command answered by the simulated home."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller

from alerts.commands import CommandDispatcher, CommandPolicy, plan_frost_commands
from alerts.notify import SmtpSender, deliver_due, notify_cycle
from alerts.recipients import Officer, upsert_officer
from alerts.service import Evaluator, EvaluatorConfig, run_service
from device_sim import SimConfig, Simulator
from device_sim.models import HomeModel
from device_sim.responder import CommandResponder
from store.db import connect
from store.registry import parse_device_row, upsert_devices
from tests.ingest.helpers import Background, start_worker, wait_for

from .test_notify_db import Inbox
from .test_service_db import insert, register, trace

pytestmark = pytest.mark.slow

EMAIL_LATENCY_S = 5.0  # stored reading that tips the rule → email accepted by the SMTP server
VOID_HOME = {
    "device_id": "env-900001",
    "kind": "env",
    "lat": "52.63",
    "lon": "-1.14",
    "uprn": "100090000001",
    "address": "1 Frost Lane",
    "patch": "south",
    "void": "true",
    "waste_stream": "",
    "capacity_l": "",
    "threshold_pct": "",
}


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _actions(url: str, alert_id: str) -> list[str]:
    """In the order they were recorded: the simulator's history runs ahead of the wall clock,
    so data-time and wall-time stamps do not interleave meaningfully here."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT action FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,)
        ).fetchall()
    return [r["action"] for r in rows]


def _frost_alert(url: str) -> dict | None:
    with connect(url) as conn:
        return conn.execute("SELECT * FROM alerts WHERE alert_type = 'frost_risk'").fetchone()


def test_void_home_cold_snap_emails_and_heats_via_command(database_url, mqtt, smtp) -> None:
    inbox, smtp_port = smtp
    with connect(database_url) as conn:
        upsert_devices(conn, [parse_device_row(VOID_HOME)])
        upsert_officer(conn, Officer("ann", "Ann Patel", email="ann@council.example"), ["south"])
    _worker, ingest_stop, ingest_thread = start_worker(database_url, mqtt)

    sim = Simulator(
        SimConfig(
            bins=0,
            homes=1,
            interval_s=900,
            duration_s=9 * 3600,
            speed=2400,  # a 15-minute reading every 0.375 s
            seed=5,
            topic_prefix=mqtt.prefix,
            client_id=f"sim-{uuid.uuid4().hex[:8]}",
        ),
        [VOID_HOME],
        host=mqtt.host,
        port=mqtt.port,
        auth=mqtt.auth("sim"),
    )
    home = sim.devices[0].model
    assert isinstance(home, HomeModel)
    home.temp_c = 2.0  # a cold snap has already taken the empty home near freezing
    home.time_constant_h = 10_000.0  # ...and without heating it stays there
    responder = CommandResponder(
        {d.device_id: d for d in sim.devices},
        mqtt.host,
        mqtt.port,
        mqtt.prefix,
        auth=mqtt.auth("sim"),
    )
    responder.start()
    dispatcher = CommandDispatcher(
        host=mqtt.host, port=mqtt.port, prefix=mqtt.prefix, auth=mqtt.auth("alerts")
    )
    dispatcher.start()
    sender = SmtpSender("127.0.0.1", smtp_port, sender="alerts@council.example")

    def frost(conn, result) -> None:
        plan_frost_commands(conn, result, policy=CommandPolicy(setpoint_c=12.0))

    def deliver(conn, now) -> None:
        deliver_due(conn, smtp=sender, now=now)

    service_stop = threading.Event()
    service = Background(
        lambda: run_service(
            database_url,
            lambda conn: Evaluator(
                conn,
                EvaluatorConfig(lateness_allowance=timedelta(0)),
                hooks=[notify_cycle, frost],
            ),
            [dispatcher.step, deliver],
            stop=service_stop,
            interval_s=0.1,
        )
    )
    service.start()
    try:
        sim_thread = Background(sim.run)
        sim_thread.start()
        wait_for(lambda: bool(inbox.messages), 20, "the frost email")
        wait_for(lambda: home.setpoint_c == 12.0, 10, "the simulated home to get the command")
        sim_thread.join_checked(60)
        alert = _frost_alert(database_url)
        assert alert is not None
        wait_for(
            lambda: "condition_cleared" in _actions(database_url, alert["id"]),
            20,
            "the heated home to clear the frost condition",
        )
    finally:
        service_stop.set()
        ingest_stop.set()
        responder.stop()
        dispatcher.stop()
    service.join_checked(20)
    ingest_thread.join_checked(20)

    email = inbox.messages[0]
    assert email["To"] == "ann@council.example"
    assert "frost risk" in email["Subject"]
    assert "1 Frost Lane" in email["Subject"]
    with connect(database_url) as conn:
        command = conn.execute("SELECT * FROM commands").fetchone()
        latency = conn.execute(
            """SELECT extract(epoch FROM n.sent_at - r.received_at) AS s
               FROM notifications n JOIN alerts a ON a.id = n.alert_id
               JOIN readings r ON r.device_id = %s AND r.ts = a.opened_at
               WHERE n.channel = 'email' AND n.kind = 'opened'""",
            (VOID_HOME["device_id"],),
        ).fetchone()
    assert command["state"] == "done"
    assert command["alert_id"] == alert["id"]
    assert command["args"]["setpoint_c"] == 12.0
    actions = _actions(database_url, alert["id"])
    for step in (
        "opened",
        "command_issued",
        "command_published",
        "command_accepted",
        "command_done",
        "source_cleared",
        "condition_cleared",
    ):
        assert step in actions, (step, actions)
    assert actions.index("command_done") < actions.index("condition_cleared")
    assert 0 < float(latency["s"]) < EMAIL_LATENCY_S


def test_command_without_ack_escalates_to_a_visit(database_url, mqtt) -> None:
    void = trace("void_cold_snap")
    register(database_url, [void])
    # History up to the middle of the cold snap: the frost alert is open.
    insert(database_url, [r for r in void.items if r.ts < datetime(2025, 11, 16, tzinfo=UTC)])
    with connect(database_url) as conn:
        upsert_officer(conn, Officer("ann", "Ann", email="ann@council.example"), ["south"])
        policy = CommandPolicy(ttl=timedelta(seconds=1))
        evaluator = Evaluator(conn, hooks=[lambda c, r: plan_frost_commands(c, r, policy=policy)])
        evaluator.run_cycle()
        evaluator.close()
        dispatcher = CommandDispatcher(
            host=mqtt.host, port=mqtt.port, prefix=mqtt.prefix, auth=mqtt.auth("alerts")
        )
        dispatcher.start()
        try:
            dispatcher.step(conn, datetime.now(UTC))
            assert conn.execute("SELECT state FROM commands").fetchone()["state"] == "pending"
            time.sleep(1.1)  # nobody answers
            dispatcher.step(conn, datetime.now(UTC))
        finally:
            dispatcher.stop()
        command = conn.execute("SELECT * FROM commands").fetchone()
        visit = conn.execute("SELECT * FROM notifications WHERE kind = 'visit'").fetchone()
    assert command["state"] == "expired"
    assert command["published_at"] is not None
    assert command["escalated_at"] is not None
    actions = _actions(database_url, command["alert_id"])
    assert actions.index("command_published") < actions.index("visit_requested")
    assert visit["target"] == "ann@council.example"
    assert "Visit the property" in visit["payload"]["text"]

"""Notifications to real local servers: SMTP (aiosmtpd) and HTTP webhooks (http.server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from alerts import Severity
from alerts.notify import (
    SIGNATURE_HEADER,
    RetryPolicy,
    SmtpSender,
    deliver_due,
    enqueue_digests,
    notify_cycle,
)
from alerts.recipients import Officer, officers_for, upsert_officer
from alerts.service import Evaluator
from store.db import connect

from .test_service_db import insert, register, trace

SECRET = "s3cret-webhook-key-0123"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd's readiness check needs a real port, not 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Hook:
    """A webhook receiver that fails the first ``failures`` deliveries with HTTP 500."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                failing = len(outer.received) <= outer.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/civic"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook() -> Iterator[Hook]:
    hook = Hook(failures=2)
    yield hook
    hook.close()


def _evaluate_void_home(url: str) -> None:
    void = trace("void_cold_snap")
    register(url, [void])
    insert(url, list(void.items))
    with connect(url) as conn:
        evaluator = Evaluator(conn, hooks=[notify_cycle])
        evaluator.run_cycle()
        evaluator.close()


def test_routed_email_and_signed_webhook_with_retries(database_url, smtp, webhook) -> None:
    inbox, port = smtp
    with connect(database_url) as conn:
        upsert_officer(
            conn,
            Officer(
                "ann",
                "Ann Patel",
                email="ann@council.example",
                webhook_url=webhook.url,
                webhook_secret=SECRET,
                notify_webhook=True,
            ),
            ["south"],
        )
        upsert_officer(conn, Officer("bob", "Bob Jones", email="bob@council.example"), ["north"])
        upsert_officer(
            conn,
            Officer(
                "ooh", "Out of hours", email="ooh@council.example", min_severity=Severity.URGENT
            ),
            ["*"],
        )
        assert [o.officer_id for o in officers_for(conn, "south", None)] == ["ann", "ooh"]
    _evaluate_void_home(database_url)

    now = datetime.now(UTC)
    policy = RetryPolicy(max_attempts=5, base_delay=timedelta(seconds=10))
    sender = SmtpSender("127.0.0.1", port, sender="alerts@council.example")
    with connect(database_url) as conn:
        first = deliver_due(conn, smtp=sender, now=now, policy=policy)
        assert first.failed == 2  # Ann's two webhooks, refused once each
        # Backoff: nothing is retried before its delay is up, then it succeeds.
        assert (
            deliver_due(conn, smtp=sender, now=now + timedelta(seconds=5), policy=policy).sent == 0
        )
        later = deliver_due(conn, smtp=sender, now=now + timedelta(seconds=11), policy=policy)
        assert later.sent == 2
        states = conn.execute(
            "SELECT channel, officer_id, kind, state, attempts FROM notifications ORDER BY id"
        ).fetchall()

    recipients = sorted(m["To"] for m in inbox.messages)
    # Ann hears of both void-home alerts; out of hours only of the urgent frost; Bob nothing.
    assert recipients == ["ann@council.example", "ann@council.example", "ooh@council.example"]
    frost = next(m for m in inbox.messages if m["To"] == "ooh@council.example")
    assert "frost risk" in frost["Subject"]
    assert "100000000003" in frost["Subject"]
    text = frost.get_payload()
    assert "below 5 C" in text
    assert "civic alerts ack" in text
    assert {s["state"] for s in states} == {"sent"}
    assert sorted(s["attempts"] for s in states if s["channel"] == "webhook") == [2, 2]

    headers, body = webhook.received[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    payload = json.loads(body)
    assert payload["alert"]["uprn"] == "100000000003"
    assert payload["event"] == "opened"


def test_a_webhook_that_keeps_failing_goes_dead(database_url) -> None:
    hook = Hook(failures=100)
    try:
        with connect(database_url) as conn:
            upsert_officer(
                conn,
                Officer(
                    "ann",
                    "Ann",
                    webhook_url=hook.url,
                    webhook_secret=SECRET,
                    notify_webhook=True,
                    notify_email=False,
                    daily_digest=False,
                ),
                ["south"],
            )
        _evaluate_void_home(database_url)
        policy = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=1))
        now = datetime.now(UTC)
        with connect(database_url) as conn:
            reports = [
                deliver_due(conn, smtp=None, now=now + timedelta(seconds=s), policy=policy)
                for s in (0, 1, 2, 3, 100)
            ]
            rows = conn.execute("SELECT state, attempts, last_error FROM notifications").fetchall()
        assert [r.dead for r in reports] == [0, 0, 0, 2, 0]
        assert {(r["state"], r["attempts"]) for r in rows} == {("dead", 3)}
        assert "500" in rows[0]["last_error"]
        assert len(hook.received) == 6
    finally:
        hook.close()


def test_daily_digest_per_officer(database_url, smtp) -> None:
    inbox, port = smtp
    with connect(database_url) as conn:
        upsert_officer(conn, Officer("ann", "Ann Patel", email="ann@council.example"), ["south"])
        upsert_officer(conn, Officer("bob", "Bob Jones", email="bob@council.example"), ["north"])
    _evaluate_void_home(database_url)
    # The morning after the cold snap began (the trace is history).
    now = datetime(2025, 11, 16, 7, 0, tzinfo=UTC)
    sender = SmtpSender("127.0.0.1", port, sender="alerts@council.example")
    with connect(database_url) as conn:
        conn.execute("DELETE FROM notifications")
        with conn.transaction():
            assert enqueue_digests(conn, now.date(), now=now) == 2
            assert enqueue_digests(conn, now.date(), now=now) == 0  # once a day
        deliver_due(conn, smtp=sender, now=now)
    digests = {m["To"]: m for m in inbox.messages}
    assert set(digests) == {"ann@council.example", "bob@council.example"}
    ann = digests["ann@council.example"].get_payload()
    assert "frost_risk" in ann
    assert "100000000003" in ann
    assert "None open" in digests["bob@council.example"].get_payload()

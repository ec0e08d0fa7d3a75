"""Telling people: an outbox of notifications, delivered by email and signed webhooks.

Notifications are written to the ``notifications`` table in the same transaction as the alert
change that caused them (so nobody is told of an alert that was rolled back, and nothing is
lost if the process dies before sending); :func:`deliver_due` sends what is due, retrying with
exponential backoff and giving up ("dead") after ``max_attempts``. Each row has a
``dedup_key``, so evaluating the same history twice never tells anyone twice.

Webhooks carry ``X-Civic-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes
under the officer's secret; a receiver recomputes it with :func:`sign` and compares with
``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from psycopg.types.json import Jsonb

from alerts.awaab import UK_TIME
from alerts.errors import AlertsError
from alerts.events import AlertType, Severity
from alerts.lifecycle import AlertStatus, AuditAction
from alerts.recipients import ALL_PATCHES, Officer, officer, officers_for, patches_of
from alerts.store import Conn

__all__ = [
    "DIGEST_HOUR",
    "DeliveryReport",
    "NotifyError",
    "RetryPolicy",
    "SmtpSender",
    "WebhookSender",
    "deliver_due",
    "enqueue_digests",
    "enqueue_for_alert",
    "notify_cycle",
    "parse_smtp_url",
    "sign",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Civic-Signature"
DIGEST_HOUR = 7  # local (UK) time the daily digest goes out: before the working day starts
SEND_TIMEOUT_S = 10.0  # one slow server must not hold the outbox for long
NOTIFY_ON = {
    AuditAction.OPENED: "opened",
    AuditAction.ESCALATED: "escalated",
    AuditAction.REMINDED: "reminder",
    AuditAction.CONDITION_RETURNED: "returned",
}


class NotifyError(AlertsError):
    """A notification could not be delivered (the outbox retries it)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay <= timedelta(0) or self.max_delay < self.base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")

    def delay(self, attempts: int) -> timedelta:
        """Wait before attempt ``attempts + 1``: base, 2×base, 4×base… capped."""
        delay: timedelta = self.base_delay * (2 ** max(attempts - 1, 0))
        return min(delay, self.max_delay)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_smtp_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "smtp":
        raise ValueError(f"unsupported SMTP URL {url!r}: use smtp://host:port")
    return parts.hostname or "127.0.0.1", parts.port or 25


class SmtpSender:
    """Plain SMTP to a relay the council runs (authentication and TLS are the relay's job)."""

    def __init__(self, host: str, port: int, *, sender: str) -> None:
        self.host, self.port, self.sender = host, port, sender

    def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=SEND_TIMEOUT_S) as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"SMTP {self.host}:{self.port}: {exc}") from exc


class WebhookSender:
    def send(self, url: str, secret: str, body: bytes, delivery_id: str) -> None:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body),
                "X-Civic-Delivery": delivery_id,
                "User-Agent": "civic-sensors-alerts",
            },
        )
        if urlsplit(url).scheme not in ("http", "https"):
            raise NotifyError(f"webhook URL must be http(s): {url!r}")
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            raise NotifyError(f"webhook {url} answered {exc.code}") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise NotifyError(f"webhook {url}: {exc}") from exc
        if not 200 <= status < 300:
            raise NotifyError(f"webhook {url} answered {status}")


# -- what a notification says --------------------------------------------------------------


# The home's (by UPRN) or the bin's address; two indexed lookups, not a scan with OR.
_ADDRESS_SQL = """COALESCE(
    (SELECT d.address FROM devices d WHERE d.uprn = a.uprn LIMIT 1),
    (SELECT d.address FROM devices d WHERE d.device_id = a.subject_id))"""


def _alert_views(conn: Conn, alert_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The alerts with the address of their home or bin, in one query."""
    rows = conn.execute(
        f"SELECT a.*, {_ADDRESS_SQL} AS address FROM alerts a WHERE a.id = ANY(%s)",
        (list(alert_ids),),
    ).fetchall()
    return {str(r["id"]): dict(r) for r in rows}


def _public(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert fields a message carries (JSON-safe)."""
    keys = (
        "id",
        "subject_kind",
        "subject_id",
        "uprn",
        "patch",
        "address",
        "alert_type",
        "hazard",
        "state",
        "severity",
        "opened_at",
        "since",
        "reason",
        "investigate_due_at",
        "make_safe_due_at",
    )
    return {
        k: (alert[k].isoformat() if isinstance(alert.get(k), datetime) else alert.get(k))
        for k in keys
    }


def _where(alert: Mapping[str, Any]) -> str:
    place = alert.get("address") or alert["subject_id"]
    if alert.get("uprn"):
        place = f"{place} (UPRN {alert['uprn']})"
    return str(place)


def _email_text(kind: str, alert: Mapping[str, Any], note: str | None) -> tuple[str, str]:
    severity = str(alert["severity"]).upper()
    what = str(alert["alert_type"]).replace("_", " ")
    subject = f"[Civic Sensors] {severity} {what}: {_where(alert)}"
    if kind != "opened":
        subject += f" ({kind})"
    lines = [
        f"{what.capitalize()} at {_where(alert)}, patch {alert.get('patch') or '-'}.",
        "",
        f"Why: {alert['reason']}",
        f"Condition since: {alert['since'].isoformat()}",
        f"Alert opened: {alert['opened_at'].isoformat()}  (state: {alert['state']})",
    ]
    if note:
        lines += ["", note]
    for label, key in (
        ("Awaab's Law: investigate by", "investigate_due_at"),
        ("Awaab's Law: make safe by", "make_safe_due_at"),
    ):
        if alert.get(key):
            lines.append(f"{label} {alert[key].astimezone(UK_TIME):%A %d %B %Y %H:%M}")
    lines += [
        "",
        f"Acknowledge: civic alerts ack {alert['id']} --by YOUR-NAME",
        f"Evidence:    civic alerts evidence {alert['id']} --format html",
    ]
    return subject, "\n".join(lines) + "\n"


_INSERT_SQL = """INSERT INTO notifications (dedup_key, alert_id, officer_id, kind, channel,
       target, subject, payload, next_attempt_at)
   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING"""


def _messages(
    alert: Mapping[str, Any],
    kind: str,
    people: Iterable[Officer],
    *,
    event_at: datetime,
    now: datetime,
    note: str | None,
    severity: Severity | None,
) -> list[tuple[Any, ...]]:
    """Rows for :data:`_INSERT_SQL`: one per person and channel the alert should reach."""
    alert_id = str(alert["id"])
    level = severity or Severity[str(alert["severity"]).upper()]
    stamp = event_at.isoformat()
    rows: list[tuple[Any, ...]] = []
    for person in people:
        if level < person.min_severity:
            continue
        subject, text = _email_text(kind, alert, note)
        if person.notify_email and person.email:
            rows.append(
                (
                    f"{alert_id}|{kind}|{stamp}|{person.officer_id}|email",
                    alert_id,
                    person.officer_id,
                    kind,
                    "email",
                    person.email,
                    subject,
                    Jsonb({"text": text}),
                    now,
                )
            )
        if person.notify_webhook and person.webhook_url:
            payload = {"event": kind, "at": stamp, "note": note, "alert": _public(alert)}
            rows.append(
                (
                    f"{alert_id}|{kind}|{stamp}|{person.officer_id}|webhook",
                    alert_id,
                    person.officer_id,
                    kind,
                    "webhook",
                    person.webhook_url,
                    subject,
                    Jsonb(payload),
                    now,
                )
            )
    return rows


def _queue(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(_INSERT_SQL, rows)
        return max(cur.rowcount, 0)


def enqueue_for_alert(
    conn: Conn,
    alert_id: str,
    kind: str,
    *,
    event_at: datetime,
    now: datetime,
    note: str | None = None,
    severity: Severity | None = None,
) -> int:
    """Queue ``kind`` (opened, escalated, visit...) for everyone the alert routes to."""
    alert = _alert_views(conn, [alert_id]).get(alert_id)
    if alert is None:
        return 0
    people = officers_for(conn, alert["patch"], AlertType(alert["alert_type"]))
    rows = _messages(alert, kind, people, event_at=event_at, now=now, note=note, severity=severity)
    return _queue(conn, rows)


def notify_cycle(conn: Conn, result: Any) -> None:
    """Evaluator hook: queue notifications for what the cycle opened, escalated or reminded."""
    now = datetime.now(UTC)
    # A cycle that catches up on hours of data must not send a reminder per missed period:
    # only the newest event of each kind per alert is worth telling.
    latest: dict[tuple[str, str], Any] = {}
    for event in result.audit:
        kind = NOTIFY_ON.get(event.action)
        if kind is not None:
            latest[(event.alert_id, kind)] = event
    if not latest:
        return
    # One query for the alerts and one per (patch, type) for the people: a busy cycle
    # changes thousands of alerts.
    views = _alert_views(conn, sorted({alert_id for alert_id, _ in latest}))
    people: dict[tuple[str | None, str], list[Officer]] = {}
    rows: list[tuple[Any, ...]] = []
    for (alert_id, kind), event in latest.items():
        alert = views.get(alert_id)
        if alert is None:
            continue
        state = alert["state"]
        if kind != "opened":
            if state == AlertStatus.RESOLVED.value:
                continue  # nothing to chase any more
            if kind == "reminder" and state != AlertStatus.OPEN.value:
                continue
        route = (alert["patch"], str(alert["alert_type"]))
        if route not in people:
            people[route] = officers_for(conn, alert["patch"], AlertType(alert["alert_type"]))
        rows += _messages(
            alert,
            kind,
            people[route],
            event_at=event.at,
            now=now,
            note=None,
            severity=event.severity,
        )
    _queue(conn, rows)


# -- the daily digest ----------------------------------------------------------------------


def _digest_text(person: Officer, alerts: Iterable[Mapping[str, Any]], day: date) -> str:
    rows = list(alerts)
    lines = [f"Good morning {person.name},", "", f"Alerts in your patches on {day:%A %d %B %Y}:"]
    if not rows:
        lines.append("None open, none opened in the last day.")
    for a in rows:
        due = a.get("investigate_due_at") or a.get("make_safe_due_at")
        due_text = f"; statutory due {due.astimezone(UK_TIME):%d %b %H:%M}" if due else ""
        lines.append(
            f"- [{str(a['severity']).upper()}] {a['alert_type']} at {_where(a)} — {a['state']}, "
            f"opened {a['opened_at']:%d %b %H:%M}{due_text} ({a['id']})"
        )
    return "\n".join(lines) + "\n"


def enqueue_digests(conn: Conn, day: date, *, now: datetime) -> int:
    """One digest per officer who wants one: open alerts plus those opened in the last day."""
    officers = conn.execute(
        "SELECT officer_id FROM officers WHERE active AND daily_digest AND email IS NOT NULL"
        " ORDER BY officer_id"
    ).fetchall()
    queued = 0
    for row in officers:
        person = officer(conn, str(row["officer_id"]))
        if person is None or person.email is None:
            continue
        patches = patches_of(conn, person.officer_id)
        alerts = conn.execute(
            f"""SELECT a.*, {_ADDRESS_SQL} AS address
               FROM alerts a
               WHERE (%(all)s = ANY(%(patches)s) OR a.patch = ANY(%(patches)s))
                 AND (a.state <> 'resolved' OR a.opened_at > %(since)s)
               ORDER BY a.severity = 'emergency' DESC, a.opened_at""",
            {"all": ALL_PATCHES, "patches": patches, "since": now - timedelta(days=1)},
        ).fetchall()
        queued += _queue(
            conn,
            [
                (
                    f"digest|{day.isoformat()}|{person.officer_id}",
                    None,
                    person.officer_id,
                    "digest",
                    "email",
                    person.email,
                    f"[Civic Sensors] Daily alerts digest {day.isoformat()}: {len(alerts)}",
                    Jsonb({"text": _digest_text(person, alerts, day)}),
                    now,
                )
            ],
        )
    return queued


def digest_step(conn: Conn, now: datetime) -> None:
    """Service step: after :data:`DIGEST_HOUR` UK time, queue today's digests (once)."""
    local = now.astimezone(UK_TIME)
    if local.time() >= time(DIGEST_HOUR):
        with conn.transaction():
            enqueue_digests(conn, local.date(), now=now)


# -- delivery ------------------------------------------------------------------------------


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0


def deliver_due(
    conn: Conn,
    *,
    smtp: SmtpSender | None,
    webhook: WebhookSender | None = None,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
    limit: int = 100,
) -> DeliveryReport:
    """Send what is due; failures back off exponentially and die after ``max_attempts``."""
    policy = policy or RetryPolicy()
    webhook = webhook or WebhookSender()
    report = DeliveryReport()
    now = now or datetime.now(UTC)
    with conn.transaction():
        rows = conn.execute(
            """SELECT n.*, o.webhook_secret FROM notifications n
               LEFT JOIN officers o USING (officer_id)
               WHERE n.state IN ('pending', 'failed') AND n.next_attempt_at <= %s
               ORDER BY n.next_attempt_at, n.id LIMIT %s
               FOR UPDATE OF n SKIP LOCKED""",
            (now, limit),
        ).fetchall()
        for row in rows:
            try:
                if row["channel"] == "email":
                    if smtp is None:
                        report.skipped += 1
                        continue  # no server configured yet: keep it queued
                    smtp.send(row["target"], row["subject"], row["payload"]["text"])
                else:
                    if not row["webhook_secret"]:
                        raise NotifyError("officer has no webhook secret")
                    body = json.dumps(row["payload"], sort_keys=True).encode()
                    webhook.send(row["target"], row["webhook_secret"], body, str(row["id"]))
            except NotifyError as exc:
                attempts = row["attempts"] + 1
                dead = attempts >= policy.max_attempts
                conn.execute(
                    """UPDATE notifications SET attempts = %s, state = %s, last_error = %s,
                           next_attempt_at = %s WHERE id = %s""",
                    (
                        attempts,
                        "dead" if dead else "failed",
                        str(exc)[:500],
                        now + policy.delay(attempts),
                        row["id"],
                    ),
                )
                if dead:
                    report.dead += 1
                    log.error(
                        "notification %s is dead after %d attempts: %s", row["id"], attempts, exc
                    )
                else:
                    report.failed += 1
                continue
            conn.execute(
                "UPDATE notifications SET attempts = attempts + 1, state = 'sent', sent_at = %s,"
                " last_error = NULL WHERE id = %s",
                (now, row["id"]),
            )
            report.sent += 1
    return report

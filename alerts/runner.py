"""What ``civic alerts run`` runs besides the evaluator: its hooks and the steps between cycles.

After each cycle the evaluator's hooks queue notifications and plan frost-protection heating
commands; between cycles the steps publish and track device commands, send digests, deliver
queued notifications and chase overdue Awaab's Law steps. Built here from the settings, so
the command line only parses arguments and prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.commands import CommandDispatcher, CommandPolicy, plan_frost_commands
from alerts.notify import (
    RetryPolicy,
    SmtpSender,
    deliver_due,
    digest_step,
    notify_cycle,
    parse_smtp_url,
)
from alerts.settings import AlertsSettings
from alerts.statutory import escalate_overdue
from common.mqtt import MqttAuth

__all__ = ["ServiceParts", "assemble", "overdue_step"]

log = logging.getLogger(__name__)

Step = Callable[[Any, datetime], None]
Hook = Callable[[Any, Any], None]


@dataclass
class ServiceParts:
    """The evaluator's hooks, the steps between cycles (``lead_steps``: the estate-wide ones,
    run only by the evaluator holding shard 0), and the command publisher (if any), which the
    caller stops when the service ends."""

    hooks: list[Hook] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    lead_steps: list[Step] = field(default_factory=list)
    dispatcher: CommandDispatcher | None = None


def assemble(
    settings: AlertsSettings,
    *,
    broker: tuple[str, int] | None,
    topic_prefix: str,
    broker_auth: MqttAuth | None = None,
    command_secret: bytes | None = None,
) -> ServiceParts:
    """Hooks and steps from the settings; ``broker=None`` publishes no device commands.

    Raises ``ValueError`` for a setting it cannot use (an SMTP URL), ``OSError`` /
    ``TimeoutError`` when the broker cannot be reached.
    """
    policy = CommandPolicy(
        setpoint_c=settings.alerts_frost_setpoint_c,
        ttl=timedelta(seconds=settings.alerts_command_ttl_s),
    )
    smtp = None
    if settings.smtp_url:
        try:
            host, port = parse_smtp_url(settings.smtp_url)
        except ValueError as exc:
            raise ValueError(f"CIVIC_SMTP_URL: {exc}") from exc
        smtp = SmtpSender(host, port, sender=settings.smtp_from)
    else:
        log.warning("CIVIC_SMTP_URL is not set: email notifications stay queued")
    retry = RetryPolicy(max_attempts=settings.alerts_webhook_attempts)

    def frost(conn: Any, result: Any) -> None:
        plan_frost_commands(conn, result, policy=policy)

    def deliver(conn: Any, now: datetime) -> None:
        deliver_due(conn, smtp=smtp, now=now, policy=retry)

    parts = ServiceParts(hooks=[notify_cycle, frost])
    if broker is not None:
        parts.dispatcher = CommandDispatcher(
            host=broker[0],
            port=broker[1],
            prefix=topic_prefix,
            auth=broker_auth,
            command_secret=command_secret,
        )
        parts.dispatcher.start()
        # Every evaluator hears the devices' acks (and records each once: a command moves
        # only from an open state); only the lead publishes and expires.
        parts.steps.append(_record_acks(parts.dispatcher))
        parts.lead_steps.append(parts.dispatcher.step)
    # Delivery claims its rows (SKIP LOCKED), so every evaluator may send.
    parts.steps.append(deliver)
    parts.lead_steps.append(digest_step)
    if settings.alerts_overdue_check_s > 0:
        parts.lead_steps.append(overdue_step(timedelta(seconds=settings.alerts_overdue_check_s)))
    return parts


def _record_acks(dispatcher: CommandDispatcher) -> Step:
    def step(conn: Any, now: datetime) -> None:
        dispatcher.record_acks(conn)

    return step


def overdue_step(every: timedelta) -> Step:
    """Service step: escalate Awaab's Law due dates passed unrecorded, at most once per
    ``every`` (each alert and step escalates only once however often this runs)."""
    last: list[datetime] = []

    def step(conn: Any, now: datetime) -> None:
        if last and now - last[0] < every:
            return
        items = escalate_overdue(conn, now)
        last[:] = [now]
        for item in items:
            log.warning(
                "%s: Awaab's Law %s was due by %s and is not recorded; now %s",
                item.alert_id,
                item.deadline.milestone.value,
                item.deadline.due_at.isoformat(),
                item.severity.label,
            )

    return step

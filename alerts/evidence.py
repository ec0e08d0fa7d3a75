"""The evidence pack of one alert: what a council shows the Housing Ombudsman.

It holds the readings before and after (every source sensor, raw), the rule that fired and
why (each condition event with its reason and the numbers and thresholds it compared), the
statutory due dates with how they were computed, and the timeline of everything done: the
audit trail, commands sent to devices and notifications sent to people.

JSON is the complete record; HTML is the same content for people (a single self-contained
page, its stylesheet ``evidence.css`` inlined, or linked where a page may not carry inline
styles); ``evidence_pdf.render_pdf`` draws it as a PDF with a chart of the readings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.errors import AlertsError
from alerts.evidence_svg import charts_html
from alerts.rule_config import RuleConfig
from alerts.store import Conn
from alerts.thresholds import configured_rules, home_thresholds
from firmware_contracts import format_rfc3339

__all__ = [
    "STYLESHEET",
    "STYLESHEET_VERSION",
    "EvidenceNotFoundError",
    "build_evidence",
    "render_html",
    "to_json",
]

READINGS_BEFORE = timedelta(hours=48)
READINGS_AFTER = timedelta(hours=24)
MAX_READINGS_PER_DEVICE = 5_000  # about 7 weeks at 15-minute readings
_READING_COLUMNS = ("ts", "temp_c", "rh_pct", "fill_pct", "battery_v", "co2_ppm", "tilt_deg")
STYLESHEET = (Path(__file__).resolve().parent / "evidence.css").read_text(encoding="utf-8")
STYLESHEET_VERSION = hashlib.sha256(STYLESHEET.encode()).hexdigest()[:12]
"""Changes whenever the stylesheet does: a URL carrying it can be cached for good."""


class EvidenceNotFoundError(AlertsError, LookupError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"no alert {alert_id!r}")
        self.alert_id = alert_id


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def build_evidence(
    conn: Conn,
    alert_id: str,
    *,
    before: timedelta = READINGS_BEFORE,
    after: timedelta = READINGS_AFTER,
    now: datetime | None = None,
    rules: RuleConfig | None = None,
) -> dict[str, Any]:
    """The case file of ``alert_id``; ``rules`` (default: the configured rules file) gives
    the thresholds its charts draw."""
    now = now or datetime.now(UTC)
    alert = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if alert is None:
        raise EvidenceNotFoundError(alert_id)
    devices = sorted({str(d) for d, _ in alert["sources"]})
    conditions = sorted({str(c) for _, c in alert["sources"]})
    start = alert["since"] - before
    end = (alert["resolved_at"] or alert["cleared_at"] or now) + after
    registry = conn.execute(
        "SELECT device_id, kind, uprn, address, patch, void, lat, lon FROM devices"
        " WHERE device_id = ANY(%s) ORDER BY device_id",
        (devices,),
    ).fetchall()
    readings: dict[str, list[dict[str, Any]]] = {}
    for device_id in devices:
        rows = conn.execute(
            f"SELECT {', '.join(_READING_COLUMNS)} FROM readings"
            " WHERE device_id = %s AND ts BETWEEN %s AND %s ORDER BY ts LIMIT %s",
            (device_id, start, end, MAX_READINGS_PER_DEVICE),
        ).fetchall()
        readings[device_id] = [
            {k: v for k, v in r.items() if v is not None or k == "ts"} for r in rows
        ]
    rule_events = conn.execute(
        """SELECT device_id, condition, transition, at, since, severity, hazard, starts_clock,
                  reason, evidence, superseded_at
           FROM condition_events
           WHERE subject_id = %s AND alert_type = %s AND at BETWEEN %s AND %s
           ORDER BY at, id""",
        (alert["subject_id"], alert["alert_type"], start, end),
    ).fetchall()
    timeline = conn.execute(
        "SELECT at, actor, action, severity, detail, recorded_at FROM alert_events"
        " WHERE alert_id = %s ORDER BY at, id",
        (alert_id,),
    ).fetchall()
    commands = conn.execute(
        "SELECT id, device_id, name, args, issued_at, expires_at, state, published_at,"
        " acked_at, ack_detail, escalated_at FROM commands WHERE alert_id = %s ORDER BY issued_at",
        (alert_id,),
    ).fetchall()
    notifications = conn.execute(
        "SELECT kind, channel, officer_id, subject, state, attempts, created_at, sent_at,"
        " last_error FROM notifications WHERE alert_id = %s ORDER BY created_at, id",
        (alert_id,),
    ).fetchall()
    fired = next((e for e in rule_events if e["transition"] in ("on", "occurred")), None)
    pack = {
        "generated_at": now,
        "alert": dict(alert),
        "subject": {
            "kind": alert["subject_kind"],
            "id": alert["subject_id"],
            "uprn": alert["uprn"],
            "patch": alert["patch"],
            "devices": [dict(r) for r in registry],
        },
        "rule": {
            "conditions": conditions,
            "fired": dict(fired) if fired else None,
            "why": fired["reason"] if fired else alert["reason"],
        },
        "deadlines": alert["deadlines"],
        "condition_events": [dict(e) for e in rule_events],
        "timeline": [dict(t) for t in timeline],
        "commands": [dict(c) for c in commands],
        "notifications": [dict(n) for n in notifications],
        "readings_window": {"from": start, "to": end},
        "readings": readings,
        "thresholds": _thresholds(alert, registry, rules),
    }
    result: dict[str, Any] = _plain(pack)
    return result


def _thresholds(
    alert: Mapping[str, Any], registry: Sequence[Mapping[str, Any]], rules: RuleConfig | None
) -> list[dict[str, Any]]:
    """The limits the home's rules act on, for the charts (none for a bin)."""
    homes = [r for r in registry if r["kind"] == "env"]
    if alert["subject_kind"] != "home" or not homes:
        return []
    first = homes[0]
    settings = (rules or configured_rules()).for_home(
        alert["uprn"] or "", alert["patch"], first["device_id"]
    )
    return [dataclasses.asdict(t) for t in home_thresholds(settings, void=bool(first["void"]))]


def to_json(pack: Mapping[str, Any]) -> str:
    return json.dumps(pack, indent=2, sort_keys=False, default=str)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(caption: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return f"<p><strong>{_e(caption)}:</strong> none.</p>"
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        text = value.get("text")
        rest = {k: v for k, v in value.items() if k != "text"}
        parts = [_e(text)] if text else []
        parts += [f"{_e(k)}={_e(v)}" for k, v in rest.items()]
        return "<br>".join(parts)
    return _e(value)


def _style(url: str | None) -> str:
    if url is None:
        return f"<style>\n{STYLESHEET}</style>"
    return f'<link rel="stylesheet" href="{_e(url)}">'


def render_html(pack: Mapping[str, Any], *, stylesheet_url: str | None = None) -> str:
    """The pack as one page. Without ``stylesheet_url`` the stylesheet is inlined (a file
    that stands alone, for keeping and sending on); with it the page links the stylesheet
    there instead (for a site whose Content-Security-Policy refuses inline styles)."""
    a = pack["alert"]
    subject = pack["subject"]
    address = next((d.get("address") for d in subject["devices"] if d.get("address")), None)
    summary = [
        ("Alert", a["id"]),
        ("Type", a["alert_type"]),
        ("Hazard (Awaab's Law)", a["hazard"]),
        ("State", a["state"]),
        ("Severity", a["severity"]),
        ("Property", f"{address or '-'} (UPRN {a['uprn']})" if a["uprn"] else a["subject_id"]),
        ("Patch", a["patch"]),
        ("Condition since", a["since"]),
        ("Opened", a["opened_at"]),
        ("Acknowledged", f"{a['acknowledged_at'] or '-'} by {a['acknowledged_by'] or '-'}"),
        ("Resolved", f"{a['resolved_at'] or '-'} by {a['resolved_by'] or '-'}"),
        ("Resolution note", a["resolution_note"]),
        ("Statutory clock started", a["statutory_clock_started_at"]),
    ]
    summary_rows = "".join(
        f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in summary
    )
    fired = pack["rule"]["fired"] or {}
    evidence_rows = [{"quantity": k, "value": v} for k, v in (fired.get("evidence") or {}).items()]
    thresholds = pack.get("thresholds") or ()
    reading_sections = "".join(
        charts_html(device, rows, thresholds)
        + "<details><summary>"
        + _e(
            f"Readings of {device} ({len(rows)}, {pack['readings_window']['from']} to "
            f"{pack['readings_window']['to']})"
        )
        + "</summary>"
        + _table(f"Readings of {device}", _READING_COLUMNS, rows)
        + "</details>"
        for device, rows in pack["readings"].items()
    )
    return f"""<!doctype html>
<html lang="en-GB"><head><meta charset="utf-8">
<title>Evidence pack {_e(a["id"])}</title>
{_style(stylesheet_url)}</head>
<body>
<h1>Evidence pack: {_e(a["alert_type"])} at {_e(address or a["subject_id"])}</h1>
<p>Generated {_e(pack["generated_at"])} by Civic Sensors.</p>
<h2>Summary</h2>
<table><tbody>{summary_rows}</tbody></table>
<h2>The rule that fired, and why</h2>
<p>Rule: <strong>{_e(fired.get("condition"))}</strong> on sensor {_e(fired.get("device_id"))}
at {_e(fired.get("at"))}.</p>
<p>{_e(pack["rule"]["why"])}</p>
{_table("Numbers and thresholds compared", ["quantity", "value"], evidence_rows)}
{
        _table(
            "Every condition change",
            ["at", "device_id", "condition", "transition", "severity", "reason", "superseded_at"],
            pack["condition_events"],
        )
    }
<h2>Statutory deadlines (Awaab's Law)</h2>
{_table("Deadlines", ["milestone", "due_at", "due_date", "basis"], pack["deadlines"])}
<h2>Timeline of actions</h2>
{_table("Audit trail", ["at", "actor", "action", "severity", "detail"], pack["timeline"])}
{
        _table(
            "Commands to devices",
            [
                "id",
                "device_id",
                "name",
                "state",
                "issued_at",
                "expires_at",
                "acked_at",
                "ack_detail",
                "escalated_at",
            ],
            pack["commands"],
        )
    }
{
        _table(
            "Notifications",
            [
                "created_at",
                "kind",
                "channel",
                "officer_id",
                "state",
                "attempts",
                "sent_at",
                "last_error",
            ],
            pack["notifications"],
        )
    }
<h2>Readings before and after</h2>
{reading_sections}
</body></html>
"""

"""Who hears of an alert: patches (housing areas) map to officers and teams.

An officer covers one or more patches (``'*'`` for all, e.g. an out-of-hours team), may take
only some alert types there, and says how to be told: email, a signed webhook (into a team's
chat or case system), a daily digest, and the least severity worth interrupting them for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from alerts.events import AlertType, Severity
from alerts.store import Conn

__all__ = ["ALL_PATCHES", "Officer", "officers_for", "upsert_officer"]

ALL_PATCHES = "*"


@dataclass(frozen=True, slots=True)
class Officer:
    officer_id: str
    name: str
    email: str | None = None
    team: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    notify_email: bool = True
    notify_webhook: bool = False
    daily_digest: bool = True
    min_severity: Severity = Severity.ACT
    active: bool = True

    def __post_init__(self) -> None:
        if not self.officer_id.strip():
            raise ValueError("officer_id must not be empty")
        if (self.notify_email or self.daily_digest) and not self.email:
            raise ValueError(f"officer {self.officer_id}: email or digest needs an email address")
        if self.notify_webhook and not (self.webhook_url and self.webhook_secret):
            raise ValueError(f"officer {self.officer_id}: a webhook needs a URL and a secret")
        if self.webhook_secret is not None and len(self.webhook_secret) < 16:
            raise ValueError(f"officer {self.officer_id}: webhook secret must be 16+ characters")


def upsert_officer(
    conn: Conn,
    officer: Officer,
    patches: Iterable[str] | Mapping[str, Sequence[AlertType]] = (),
) -> None:
    """Create or update an officer and replace the patches they cover.

    ``patches`` is a list of patch names, or a mapping from patch to the alert types the
    officer takes there (empty: all types).
    """
    cover: dict[str, list[str]] = (
        {p: [t.value for t in types] for p, types in patches.items()}
        if isinstance(patches, Mapping)
        else {p: [] for p in patches}
    )
    with conn.transaction():
        conn.execute(
            """INSERT INTO officers (officer_id, name, team, email, webhook_url, webhook_secret,
                   notify_email, notify_webhook, daily_digest, min_severity, active)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (officer_id) DO UPDATE SET name = EXCLUDED.name,
                   team = EXCLUDED.team, email = EXCLUDED.email,
                   webhook_url = EXCLUDED.webhook_url, webhook_secret = EXCLUDED.webhook_secret,
                   notify_email = EXCLUDED.notify_email,
                   notify_webhook = EXCLUDED.notify_webhook,
                   daily_digest = EXCLUDED.daily_digest, min_severity = EXCLUDED.min_severity,
                   active = EXCLUDED.active""",
            (
                officer.officer_id,
                officer.name,
                officer.team,
                officer.email,
                officer.webhook_url,
                officer.webhook_secret,
                officer.notify_email,
                officer.notify_webhook,
                officer.daily_digest,
                officer.min_severity.label,
                officer.active,
            ),
        )
        conn.execute("DELETE FROM patch_officers WHERE officer_id = %s", (officer.officer_id,))
        for patch, types in cover.items():
            conn.execute(
                "INSERT INTO patch_officers (patch, officer_id, alert_types) VALUES (%s, %s, %s)",
                (patch, officer.officer_id, types),
            )


def _officer(row: Mapping[str, object]) -> Officer:
    return Officer(
        officer_id=str(row["officer_id"]),
        name=str(row["name"]),
        email=row["email"],  # type: ignore[arg-type]
        team=row["team"],  # type: ignore[arg-type]
        webhook_url=row["webhook_url"],  # type: ignore[arg-type]
        webhook_secret=row["webhook_secret"],  # type: ignore[arg-type]
        notify_email=bool(row["notify_email"]),
        notify_webhook=bool(row["notify_webhook"]),
        daily_digest=bool(row["daily_digest"]),
        min_severity=Severity[str(row["min_severity"]).upper()],
        active=bool(row["active"]),
    )


def officers_for(conn: Conn, patch: str | None, alert_type: AlertType | None) -> list[Officer]:
    """Active officers covering ``patch`` (or all patches) for ``alert_type`` (or any)."""
    rows = conn.execute(
        """SELECT DISTINCT o.* FROM officers o JOIN patch_officers p USING (officer_id)
           WHERE o.active
             AND (p.patch = %(all)s OR p.patch = %(patch)s)
             AND (%(type)s::text IS NULL OR cardinality(p.alert_types) = 0
                  OR %(type)s = ANY(p.alert_types))
           ORDER BY o.officer_id""",
        {"all": ALL_PATCHES, "patch": patch, "type": alert_type.value if alert_type else None},
    ).fetchall()
    return [_officer(r) for r in rows]


def officer(conn: Conn, officer_id: str) -> Officer | None:
    row = conn.execute("SELECT * FROM officers WHERE officer_id = %s", (officer_id,)).fetchone()
    return None if row is None else _officer(row)


def patches_of(conn: Conn, officer_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT patch FROM patch_officers WHERE officer_id = %s ORDER BY patch", (officer_id,)
    ).fetchall()
    return [str(r["patch"]) for r in rows]

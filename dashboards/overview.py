"""The operations overview: bins to collect, homes to visit, messages rejected."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

DAMP_RH_PCT = 70.0  # "act" level for sustained room humidity (DOMAIN *default*)
COLD_OCCUPIED_C = 18.0
COLD_VOID_C = 12.0

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;color:#1b1b1b}
a{color:#0b4f9c}
table{border-collapse:collapse;width:100%;margin:0 0 2rem}
caption{text-align:left;font-weight:600;font-size:1.15rem;padding:.5rem 0}
th,td{border-bottom:1px solid #6b6b6b;padding:.35rem .5rem;text-align:left}
th{background:#eef2f7}
.num{text-align:right;font-variant-numeric:tabular-nums}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff}
"""


def _table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    numeric: frozenset[int] = frozenset(),
) -> str:
    head = "".join(
        ('<th scope="col" class="num">' if i in numeric else '<th scope="col">')
        + f"{escape(c)}</th>"
        for i, c in enumerate(columns)
    )
    if not rows:
        body = f'<tr><td colspan="{len(columns)}">None.</td></tr>'
    else:
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{escape(_fmt(v))}</td>'
                if i in numeric
                else f"<td>{escape(_fmt(v))}</td>"
                for i, v in enumerate(row)
            )
            + "</tr>"
            for row in rows
        )
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def overview_html(conn: Any, *, limit: int = 50) -> str:
    full = conn.execute(
        "SELECT d.device_id, d.waste_stream, last.fill_pct, d.threshold_pct, last.ts"
        " FROM devices d JOIN LATERAL (SELECT fill_pct, ts FROM readings r"
        "  WHERE r.device_id = d.device_id ORDER BY ts DESC LIMIT 1) last ON true"
        " WHERE d.kind = 'bin' AND last.fill_pct >= d.threshold_pct"
        " ORDER BY last.fill_pct DESC LIMIT %s",
        (limit,),
    ).fetchall()
    homes = conn.execute(
        "SELECT d.uprn, d.address, d.patch, d.void, avg(h.rh_pct_avg) AS rh, min(h.temp_c_min) AS t"
        " FROM devices d JOIN readings_hourly h USING (device_id)"
        " WHERE d.kind = 'env' AND h.bucket > now() - interval '1 day'"
        " GROUP BY d.uprn, d.address, d.patch, d.void"
        " HAVING avg(h.rh_pct_avg) > %s"
        "     OR min(h.temp_c_min) < CASE WHEN d.void THEN %s ELSE %s END"
        " ORDER BY avg(h.rh_pct_avg) DESC LIMIT %s",
        (DAMP_RH_PCT, COLD_VOID_C, COLD_OCCUPIED_C, limit),
    ).fetchall()
    rejected = conn.execute(
        "SELECT reason, count(*) AS n, max(received_at) AS latest FROM deadletters"
        " WHERE received_at > now() - interval '1 day' GROUP BY reason ORDER BY n DESC"
    ).fetchall()
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM devices WHERE kind = 'bin') AS bins,"
        " (SELECT count(*) FROM devices WHERE kind = 'env') AS homes"
    ).fetchone()
    sections = [
        _table(
            f"Bins at or over their collection threshold ({len(full)} shown)",
            ["device", "stream", "fill %", "threshold %", "last reading"],
            [
                (r["device_id"], r["waste_stream"], r["fill_pct"], r["threshold_pct"], r["ts"])
                for r in full
            ],
            frozenset({2, 3}),
        ),
        _table(
            f"Homes damp (mean RH over {DAMP_RH_PCT:.0f} %) or cold in the last 24 hours",
            ["UPRN", "address", "patch", "void", "mean RH %", "lowest °C"],
            [(r["uprn"], r["address"], r["patch"], r["void"], r["rh"], r["t"]) for r in homes],
            frozenset({4, 5}),
        ),
        _table(
            "Messages rejected in the last 24 hours",
            ["reason", "count", "latest"],
            [(r["reason"], r["n"], r["latest"]) for r in rejected],
            frozenset({1}),
        ),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Civic Sensors overview</title><style>{_STYLE}</style></head><body>"
        '<a class="skip" href="#main">Skip to content</a>'
        f"<header><h1>Civic Sensors overview</h1><p>{counts['bins']} bins and "
        f'{counts["homes"]} homes monitored. API documentation: <a href="/docs">/docs</a>.'
        '</p></header><main id="main">' + "".join(sections) + "</main></body></html>"
    )

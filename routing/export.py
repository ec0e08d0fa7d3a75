"""Write plans for crews and map tools: GeoJSON (RFC 7946), GPX 1.1 and a CSV driver sheet.

Coordinates follow each format's rule: GeoJSON positions are ``[lon, lat]``; GPX points carry
``lat``/``lon`` attributes. Times are written as ``HH:MM:SS`` of the plan day, plus ISO 8601
(RFC 3339, UTC) timestamps when the caller gives the plan date and its UTC offset.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final

from firmware_contracts import format_rfc3339
from routing.model import Plan, PlannedStop, Route

__all__ = [
    "CSV_COLUMNS",
    "GPX_NAMESPACE",
    "clock",
    "plan_to_csv",
    "plan_to_geojson",
    "plan_to_gpx",
    "write_csv",
    "write_geojson",
    "write_gpx",
]

GPX_NAMESPACE: Final = "http://www.topografix.com/GPX/1/1"
CSV_COLUMNS: Final = (
    "vehicle",
    "seq",
    "stop_id",
    "kind",
    "eta",
    "departure",
    "load_kg",
    "load_l",
    "lat",
    "lon",
)


def clock(seconds: int) -> str:
    """``HH:MM:SS`` for seconds since midnight; hours run past 24 for shifts over midnight."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _timestamp(day: dt.datetime | None, seconds: int) -> str | None:
    if day is None:
        return None
    moment = day + dt.timedelta(seconds=seconds)
    return format_rfc3339(moment)


def _midnight(plan_date: dt.date | None, utc_offset: dt.timedelta) -> dt.datetime | None:
    if plan_date is None:
        return None
    return dt.datetime.combine(plan_date, dt.time(), tzinfo=dt.timezone(utc_offset))


def _stop_properties(
    route: Route, seq: int, stop: PlannedStop, day: dt.datetime | None
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "vehicle": route.vehicle_id,
        "seq": seq,
        "stop_id": stop.stop_id,
        "kind": stop.kind,
        "eta": clock(stop.arrival_s),
        "departure": clock(stop.departure_s),
        "load_kg": round(stop.load_kg, 1),
        "load_l": round(stop.load_l, 1),
    }
    if day is not None:
        properties["eta_utc"] = _timestamp(day, stop.arrival_s)
    return properties


def plan_to_geojson(
    plan: Plan,
    *,
    plan_date: dt.date | None = None,
    utc_offset: dt.timedelta = dt.timedelta(0),
) -> dict[str, Any]:
    """A FeatureCollection: one LineString per route, one Point per stop."""
    day = _midnight(plan_date, utc_offset)
    features: list[dict[str, Any]] = []
    for route in plan.routes:
        if route.is_empty:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[s.lon, s.lat] for s in route.stops],
                },
                "properties": {
                    "vehicle": route.vehicle_id,
                    "distance_m": route.distance_m,
                    "duration_s": route.duration_s,
                    "bins": len(route.bin_ids),
                    "tip_trips": route.tip_trips,
                },
            }
        )
        features.extend(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [stop.lon, stop.lat]},
                "properties": _stop_properties(route, seq, stop, day),
            }
            for seq, stop in enumerate(route.stops)
        )
    return {"type": "FeatureCollection", "features": features}


def plan_to_gpx(
    plan: Plan,
    *,
    plan_date: dt.date | None = None,
    utc_offset: dt.timedelta = dt.timedelta(0),
    creator: str = "Civic Sensors",
) -> str:
    """GPX 1.1 with one ``<rte>`` per vehicle and one ``<rtept>`` per stop."""
    day = _midnight(plan_date, utc_offset)
    ET.register_namespace("", GPX_NAMESPACE)
    root = ET.Element(f"{{{GPX_NAMESPACE}}}gpx", {"version": "1.1", "creator": creator})
    for route in plan.routes:
        if route.is_empty:
            continue
        rte = ET.SubElement(root, f"{{{GPX_NAMESPACE}}}rte")
        ET.SubElement(rte, f"{{{GPX_NAMESPACE}}}name").text = route.vehicle_id
        for seq, stop in enumerate(route.stops):
            point = ET.SubElement(
                rte,
                f"{{{GPX_NAMESPACE}}}rtept",
                {"lat": f"{stop.lat:.6f}", "lon": f"{stop.lon:.6f}"},
            )
            # GPX 1.1 fixes child order: time before name, desc and type.
            stamp = _timestamp(day, stop.arrival_s)
            if stamp is not None:
                ET.SubElement(point, f"{{{GPX_NAMESPACE}}}time").text = stamp
            ET.SubElement(point, f"{{{GPX_NAMESPACE}}}name").text = f"{seq}: {stop.stop_id}"
            ET.SubElement(
                point, f"{{{GPX_NAMESPACE}}}desc"
            ).text = f"{stop.kind} eta {clock(stop.arrival_s)} load {stop.load_kg:.0f} kg"
            ET.SubElement(point, f"{{{GPX_NAMESPACE}}}type").text = stop.kind
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def plan_to_csv(plan: Plan) -> str:
    """The driver sheet: one row per stop, in route order, vehicle by vehicle."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for route in plan.routes:
        if route.is_empty:
            continue
        for seq, stop in enumerate(route.stops):
            writer.writerow(
                [
                    route.vehicle_id,
                    seq,
                    stop.stop_id,
                    stop.kind,
                    clock(stop.arrival_s),
                    clock(stop.departure_s),
                    f"{stop.load_kg:.1f}",
                    f"{stop.load_l:.1f}",
                    f"{stop.lat:.6f}",
                    f"{stop.lon:.6f}",
                ]
            )
    return buffer.getvalue()


def write_geojson(plan: Plan, path: Path, **options: Any) -> None:
    path.write_text(json.dumps(plan_to_geojson(plan, **options), indent=1) + "\n")


def write_gpx(plan: Plan, path: Path, **options: Any) -> None:
    path.write_text(plan_to_gpx(plan, **options), encoding="utf-8")


def write_csv(plan: Plan, path: Path) -> None:
    path.write_text(plan_to_csv(plan), encoding="utf-8")

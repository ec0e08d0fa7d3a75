"""Write plans for crews and map tools: GeoJSON (RFC 7946), GPX 1.1 and a CSV driver sheet.

Coordinates follow each format's rule: GeoJSON positions are ``[lon, lat]``; GPX points carry
``lat``/``lon`` attributes. A plan made on a road network carries each leg's street path: the
GeoJSON lines and the GPX tracks follow the streets, and both name the map data's source
("© OpenStreetMap contributors", ODbL) as its licence requires. Without one, lines join the
stops straight and the GPX has no track to follow. Times are written as ``HH:MM:SS`` of the
plan day, plus ISO 8601 (RFC 3339, UTC) timestamps when the caller gives the plan date
and its UTC offset.
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
from routing.network import ATTRIBUTION

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
ODBL_URL: Final = "https://opendatacommons.org/licenses/odbl/1-0/"
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
                    "coordinates": [[lon, lat] for lat, lon in route.path],
                },
                "properties": {
                    "vehicle": route.vehicle_id,
                    "follows_streets": bool(route.legs),
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
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if _on_streets(plan):
        collection["attribution"] = ATTRIBUTION  # a foreign member, allowed by RFC 7946 §6.1
    return collection


def _on_streets(plan: Plan) -> bool:
    return any(route.legs for route in plan.routes)


def plan_to_gpx(
    plan: Plan,
    *,
    plan_date: dt.date | None = None,
    utc_offset: dt.timedelta = dt.timedelta(0),
    creator: str = "Civic Sensors",
) -> str:
    """GPX 1.1: every stop a ``<wpt>``; per vehicle a ``<rte>`` of its stops and, on roads,
    a ``<trk>`` along the streets for a satnav to follow."""
    day = _midnight(plan_date, utc_offset)
    ET.register_namespace("", GPX_NAMESPACE)
    root = ET.Element(f"{{{GPX_NAMESPACE}}}gpx", {"version": "1.1", "creator": creator})
    used = [route for route in plan.routes if not route.is_empty]
    # GPX 1.1 fixes the order of children: metadata, wpt, rte, trk.
    if _on_streets(plan):
        _gpx_metadata(root)
    for route in used:
        for seq, stop in enumerate(route.stops):
            _gpx_point(root, "wpt", route, seq, stop, day)
    for route in used:
        rte = ET.SubElement(root, f"{{{GPX_NAMESPACE}}}rte")
        ET.SubElement(rte, f"{{{GPX_NAMESPACE}}}name").text = route.vehicle_id
        for seq, stop in enumerate(route.stops):
            _gpx_point(rte, "rtept", route, seq, stop, day)
    for route in used:
        if not route.legs:
            continue
        trk = ET.SubElement(root, f"{{{GPX_NAMESPACE}}}trk")
        ET.SubElement(trk, f"{{{GPX_NAMESPACE}}}name").text = route.vehicle_id
        segment = ET.SubElement(trk, f"{{{GPX_NAMESPACE}}}trkseg")
        for lat, lon in route.path:
            ET.SubElement(
                segment, f"{{{GPX_NAMESPACE}}}trkpt", {"lat": f"{lat:.6f}", "lon": f"{lon:.6f}"}
            )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _gpx_metadata(root: ET.Element) -> None:
    metadata = ET.SubElement(root, f"{{{GPX_NAMESPACE}}}metadata")
    ET.SubElement(metadata, f"{{{GPX_NAMESPACE}}}desc").text = f"Street paths {ATTRIBUTION} (ODbL)"
    copyright_ = ET.SubElement(
        metadata, f"{{{GPX_NAMESPACE}}}copyright", {"author": "OpenStreetMap contributors"}
    )
    ET.SubElement(copyright_, f"{{{GPX_NAMESPACE}}}license").text = ODBL_URL


def _gpx_point(
    parent: ET.Element, tag: str, route: Route, seq: int, stop: PlannedStop, day: dt.datetime | None
) -> None:
    point = ET.SubElement(
        parent, f"{{{GPX_NAMESPACE}}}{tag}", {"lat": f"{stop.lat:.6f}", "lon": f"{stop.lon:.6f}"}
    )
    # GPX 1.1 fixes child order: time before name, desc and type.
    stamp = _timestamp(day, stop.arrival_s)
    if stamp is not None:
        ET.SubElement(point, f"{{{GPX_NAMESPACE}}}time").text = stamp
    name = (
        f"{seq}: {stop.stop_id}" if tag == "rtept" else f"{route.vehicle_id} {seq}: {stop.stop_id}"
    )
    ET.SubElement(point, f"{{{GPX_NAMESPACE}}}name").text = name
    ET.SubElement(
        point, f"{{{GPX_NAMESPACE}}}desc"
    ).text = f"{stop.kind} eta {clock(stop.arrival_s)} load {stop.load_kg:.0f} kg"
    ET.SubElement(point, f"{{{GPX_NAMESPACE}}}type").text = stop.kind


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

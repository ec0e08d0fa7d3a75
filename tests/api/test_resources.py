"""The resources each role works with, through the API, on a real database."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from api.cache import BriefCache
from firmware_contracts import Reading
from store.db import connect
from store.readings import PartitionGuard, prepare_session, write_batch
from tests.api.conftest import NORTH_OCCUPIED, NORTH_VOID, SOUTH_VOID, START, Api

REGISTRY_HEADER = (
    "device_id,kind,lat,lon,uprn,address,patch,void,waste_stream,capacity_l,threshold_pct\n"
)


def test_latest_readings_are_scoped_to_what_the_caller_may_read(api: Api) -> None:
    olivia = api.as_("olivia")("GET", "/api/v1/readings/latest").json()
    assert {r["device_id"] for r in olivia} == {"env-n1", "env-n2"}
    wendy = api.as_("wendy")("GET", "/api/v1/readings/latest").json()
    assert {r["device_id"] for r in wendy} == {"bin-1", "bin-2"}
    ed = api.as_("ed")("GET", "/api/v1/readings/latest").json()
    assert len(ed) == 5
    last = next(r for r in ed if r["device_id"] == "bin-1")
    assert last["fill_pct"] == 80.0  # 20 + 60 half-hours, the newest reading


def test_a_series_is_aggregated_in_the_database(api: Api) -> None:
    call = api.as_("wendy")
    since = (START - timedelta(hours=1)).isoformat()
    hourly = call(
        "GET", "/api/v1/devices/bin-1/readings", params={"since": since, "bucket": "1h"}
    ).json()
    assert sum(p["count"] for p in hourly) == 61
    assert all(p["count"] <= 2 for p in hourly)
    first = hourly[0]
    raw = call("GET", "/api/v1/devices/bin-1/readings", params={"since": since, "bucket": "raw"})
    points = raw.json()
    in_first = [p["fill_pct"] for p in points if p["ts"][:13] == first["ts"][:13]]
    assert first["fill_pct"] == pytest.approx(sum(in_first) / len(in_first))
    hidden = call("GET", "/api/v1/devices/env-n1/readings", params={"since": since})
    assert hidden.status_code == 404


def test_the_extract_pages_with_a_cursor_and_speaks_csv(api: Api) -> None:
    call = api.as_("ed")
    params = {"since": START.isoformat(), "device_id": "bin-2", "limit": 25}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = call(
            "GET", "/api/v1/readings", params={**params, "cursor": cursor} if cursor else params
        )
        assert response.status_code == 200
        seen += [r["ts"] for r in response.json()]
        pages += 1
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 61
    assert len(set(seen)) == 61
    assert seen == sorted(seen)
    text = call("GET", "/api/v1/readings", params={**params, "format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 25
    assert rows[0]["device_id"] == "bin-2"
    bad = call("GET", "/api/v1/readings", params={"since": "yesterday-ish"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    forged = base64.urlsafe_b64encode(b"not json").decode()
    assert call("GET", "/api/v1/readings", params={**params, "cursor": forged}).status_code == 400


def _frost_alert(api: Api, user: str) -> dict:
    alerts = api.as_(user)("GET", "/api/v1/alerts", params={"type": "frost_risk"}).json()
    assert alerts, f"{user} should have a frost alert"
    return alerts[0]


def test_an_officer_works_an_alert_through_its_lifecycle(api: Api) -> None:
    call = api.as_("olivia")
    alert = _frost_alert(api, "olivia")
    assert alert["uprn"] == NORTH_VOID
    acked = call("POST", f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": "on my way"})
    assert acked.status_code == 200, (alert["id"], acked.text)
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "user:olivia"
    still_cold = call(
        "POST", f"/api/v1/alerts/{alert['id']}/resolve", json={"note": "heating fixed"}
    )
    assert still_cold.status_code == 409
    assert "still" in still_cold.json()["detail"]
    done = call(
        "POST",
        f"/api/v1/alerts/{alert['id']}/resolve",
        json={"note": "heating fixed", "force": True},
    )
    assert done.json()["state"] == "resolved"
    actions = [t["action"] for t in done.json()["timeline"]]
    assert actions[-2:] == ["acknowledged", "resolved"]
    texts = [t["detail"].get("text", "") for t in done.json()["timeline"]]
    assert texts[-2] == "on my way"
    assert texts[-1].startswith("heating fixed")
    twice = call("POST", f"/api/v1/alerts/{alert['id']}/acknowledge", json={})
    assert twice.status_code == 409
    with connect(api.url) as conn:
        writes = conn.execute(
            "SELECT subjects, detail FROM access_log WHERE action = 'write' ORDER BY id"
        ).fetchall()
    assert [w["detail"]["change"] for w in writes] == ["acknowledged", "resolved"]
    assert writes[0]["subjects"] == [alert["id"]]


def test_a_crew_cannot_act_on_a_home_alert(api: Api) -> None:
    alert = _frost_alert(api, "sam")
    response = api.as_("wendy")("POST", f"/api/v1/alerts/{alert['id']}/acknowledge", json={})
    assert response.status_code == 404
    engineer = api.as_("ed")("POST", f"/api/v1/alerts/{alert['id']}/acknowledge", json={})
    assert engineer.status_code == 403


def test_the_evidence_pack_in_three_formats_is_logged(api: Api) -> None:
    call = api.as_("olivia")
    alert = _frost_alert(api, "olivia")
    pack = call("GET", f"/api/v1/alerts/{alert['id']}/evidence").json()
    assert json.dumps(pack).count(NORTH_VOID) >= 1
    html = call("GET", f"/api/v1/alerts/{alert['id']}/evidence", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html")
    assert NORTH_VOID in html.text
    pdf = call("GET", f"/api/v1/alerts/{alert['id']}/evidence", params={"format": "pdf"})
    assert pdf.content.startswith(b"%PDF-")
    assert api.as_("wendy")("GET", f"/api/v1/alerts/{alert['id']}/evidence").status_code == 403
    with connect(api.url) as conn:
        logged = conn.execute(
            "SELECT detail->>'evidence' AS f FROM access_log WHERE subjects = ARRAY[%s]"
            " AND action = 'read_personal' ORDER BY id",
            (alert["id"],),
        ).fetchall()
    assert [r["f"] for r in logged] == ["json", "html", "pdf"]


def test_heating_commands_are_patch_checked_queued_and_audited(api: Api) -> None:
    call = api.as_("olivia")
    sent = call("POST", f"/api/v1/homes/{NORTH_VOID}/heating", json={"setpoint_c": 14})
    assert sent.status_code == 202
    command = sent.json()
    assert command["state"] == "pending"
    assert command["device_id"] == "env-n2"
    assert command["args"]["setpoint_c"] == 14
    again = call("POST", f"/api/v1/homes/{NORTH_VOID}/heating", json={"setpoint_c": 15})
    assert again.status_code == 409
    other_patch = call("POST", f"/api/v1/homes/{SOUTH_VOID}/heating", json={"setpoint_c": 14})
    assert other_patch.status_code == 404
    too_hot = call("POST", f"/api/v1/homes/{NORTH_OCCUPIED}/heating", json={"setpoint_c": 40})
    assert too_hot.status_code == 422
    crew = api.as_("wendy")("POST", f"/api/v1/homes/{NORTH_VOID}/heating", json={"setpoint_c": 14})
    assert crew.status_code == 403
    state = call("GET", f"/api/v1/commands/{command['id']}").json()
    assert state["state"] == "pending"
    assert api.as_("sam")("GET", f"/api/v1/commands/{command['id']}").status_code == 404
    with connect(api.url) as conn:
        row = conn.execute(
            "SELECT actor, subjects FROM access_log WHERE action = 'command'"
        ).fetchone()
    assert row["actor"] == "user:olivia"
    assert row["subjects"] == [NORTH_VOID, "env-n2", command["id"]]


def test_only_an_admin_imports_and_disables_devices(api: Api) -> None:
    good = REGISTRY_HEADER + "bin-9,bin,52.6,-1.1,,,north,,general,240,80\n"
    files = {"file": ("registry.csv", good, "text/csv")}
    assert api.as_("ed")("POST", "/api/v1/devices/import", files=files).status_code == 403
    imported = api.as_("ada")("POST", "/api/v1/devices/import", files=files)
    assert imported.json() == {"added": 1, "updated": 0}
    bad = REGISTRY_HEADER + "bin-10,bin,95.0,-1.1,,,north,,general,240,80\n"
    rejected = api.as_("ada")(
        "POST", "/api/v1/devices/import", files={"file": ("r.csv", bad, "text/csv")}
    )
    assert rejected.status_code == 422
    assert "line 2" in rejected.json()["detail"]
    disabled = api.as_("ada")("POST", "/api/v1/devices/bin-9/disable")
    assert disabled.json()["disabled"] is True
    from store.registry import known_device_ids

    with connect(api.url) as conn:
        assert "bin-9" not in known_device_ids(conn)


def test_operations_for_engineers_only(api: Api) -> None:
    ed = api.as_("ed")
    health = ed("GET", "/api/v1/ops/devices", params={"unwell": True}).json()
    assert [d["device_id"] for d in health] == ["env-s1"]  # 3.1 V
    assert health[0]["low_battery"] is True
    assert health[0]["missing_24h"] == 0
    assert ed("GET", "/api/v1/ops/ingest").status_code == 200
    assert ed("GET", "/api/v1/deadletters").json() == []
    assert api.as_("olivia")("GET", "/api/v1/ops/devices").status_code == 403


def test_the_simulators_last_run_is_for_engineers_only(
    api: Api, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from device_sim.cli import _keep_last_run

    monkeypatch.setattr(api.client.app.state.settings, "data_dir", tmp_path)  # type: ignore[attr-defined]
    ed = api.as_("ed")
    assert ed("GET", "/api/v1/ops/simulator").status_code == 404  # no run recorded yet
    config = SimpleNamespace(bins=3, homes=2, interval_s=60.0, duration_s=3600.0)
    report = {"published": 300, "acked": 300, "readings_total": 290, "wall_s": 1.5}
    _keep_last_run(tmp_path, datetime.now(UTC), config, report)
    run = ed("GET", "/api/v1/ops/simulator").json()
    assert (run["bins"], run["homes"], run["report"]) == (3, 2, report)
    assert api.as_("olivia")("GET", "/api/v1/ops/simulator").status_code == 403
    assert api.as_("wendy")("GET", "/api/v1/ops/simulator").status_code == 403


def _wait_for(call, job_url: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = call("GET", job_url).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_url} did not finish: {job}")


def test_a_crew_plans_a_day_in_the_background_and_exports_it(api: Api) -> None:
    call = api.as_("wendy")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    started = call(
        "POST", "/api/v1/routes/plans", json={"date": tomorrow, "stream": "general", "seconds": 2}
    )
    assert started.status_code == 202
    job = _wait_for(call, started.headers["location"])
    assert job["state"] == "done", job
    plan_id = job["result"]["plan_id"]
    assert job["result"]["valid"] is True
    detail = call("GET", f"/api/v1/routes/plans/{plan_id}").json()
    served = [s["stop_id"] for r in detail["routes"] for s in r["stops"] if s["kind"] == "bin"]
    assert len(served) == sum(v["bins"] for v in detail["vehicles"])
    assert "bin-1" in served  # at 80 % of its threshold and rising: must collect
    assert all(r["stops"][0]["kind"] == "depot" for r in detail["routes"])
    listed = call("GET", "/api/v1/routes/plans").json()
    assert plan_id in [p["id"] for p in listed]
    geojson = call("GET", f"/api/v1/routes/plans/{plan_id}/export", params={"format": "geojson"})
    assert geojson.json()["type"] == "FeatureCollection"
    gpx = call("GET", f"/api/v1/routes/plans/{plan_id}/export", params={"format": "gpx"})
    assert gpx.text.lstrip().startswith("<?xml")
    assert api.as_("olivia")("GET", "/api/v1/routes/plans").status_code == 403
    assert call("GET", "/api/v1/routes/plans/nope").status_code == 404
    replan = call(
        "POST", f"/api/v1/routes/plans/{plan_id}/replan", json={"at": "10:00", "seconds": 1}
    )
    assert replan.status_code == 202
    replanned = _wait_for(call, replan.headers["location"])
    assert replanned["state"] == "done", replanned
    assert replanned["result"]["parent_id"] == plan_id
    unknown = call(
        "POST",
        f"/api/v1/routes/plans/{plan_id}/replan",
        json={"at": "10:00", "out_of_service": ["no-such-truck"]},
    )
    assert unknown.status_code == 422


def test_crews_records_upload(api: Api) -> None:
    sheet = f"device_id,ts,crew\nbin-1,{START.isoformat()},A\n"
    response = api.as_("wendy")(
        "POST", "/api/v1/routes/collections", files={"file": ("sheet.csv", sheet, "text/csv")}
    )
    assert response.json() == {"rows": 1, "new": 1}
    bad = "device_id,ts\nenv-n1,2026-01-01T00:00:00Z\n"
    rejected = api.as_("wendy")(
        "POST", "/api/v1/routes/collections", files={"file": ("s.csv", bad, "text/csv")}
    )
    assert rejected.status_code == 422


def _events(api: Api, headers: dict[str, str], want: int) -> list[tuple[str, str, dict]]:
    """Read ``want`` events from the live stream: (id, event, data)."""
    out: list[tuple[str, str, dict]] = []
    fields: dict[str, str] = {}
    with api.client.stream("GET", "/api/v1/live", headers=headers) as stream:
        for line in stream.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if "data" in fields:
                    out.append((fields["id"], fields["event"], json.loads(fields["data"])))
                    if len(out) >= want:
                        break
                fields = {}
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return out


def test_the_live_stream_sends_alert_changes_in_scope_and_resumes(api: Api) -> None:
    token = api.token("olivia")
    headers = {"Authorization": f"Bearer {token}"}
    north = _frost_alert(api, "olivia")
    south = _frost_alert(api, "sam")
    with connect(api.url) as conn:
        start = conn.execute("SELECT max(id) AS id FROM alert_events").fetchone()["id"]
    last_id = f"{start}.{round(datetime.now(UTC).timestamp() * 1e6)}"
    api.as_("sam")("POST", f"/api/v1/alerts/{south['id']}/acknowledge", json={})
    api.as_("olivia")("POST", f"/api/v1/alerts/{north['id']}/acknowledge", json={})
    events = _events(api, {**headers, "Last-Event-ID": last_id}, 1)
    assert [(e[1], e[2]["alert_id"], e[2]["action"]) for e in events] == [
        ("alert", north["id"], "acknowledged")
    ]


def test_the_extract_speaks_senml_that_decodes_back_to_the_stored_readings(api: Api) -> None:
    from firmware_contracts import decode_senml

    params = {"since": START.isoformat(), "device_id": "bin-2", "limit": 10, "format": "senml"}
    response = api.as_("ed")("GET", "/api/v1/readings", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/senml+json")
    pack = response.json()
    assert pack[0]["bn"] == "bin-2:"
    decoded = decode_senml("bin-2", json.dumps(pack), now=datetime.now(UTC))
    as_json = api.as_("ed")("GET", "/api/v1/readings", params={**params, "format": "json"}).json()
    assert [fields["fill_pct"] for _, fields in decoded] == [r["fill_pct"] for r in as_json]
    assert all("uprn" not in record for record in pack)


def test_an_old_latest_is_served_once_while_it_is_remade(api: Api) -> None:
    api.client.app.state.latest_cache = BriefCache(ttl_s=0.2)  # type: ignore[attr-defined]
    call = api.as_("wendy")

    def bin_1() -> float:
        body = call("GET", "/api/v1/readings/latest").json()
        return float(next(r["fill_pct"] for r in body if r["device_id"] == "bin-1"))

    assert bin_1() == 80.0
    with connect(api.url) as conn:
        prepare_session(conn)
        newer = Reading("bin-1", START + timedelta(days=3), seq=999, fill_pct=91.0)
        write_batch(conn, [newer], [], partitions=PartitionGuard())
    assert bin_1() == 80.0  # within its period: the kept body
    time.sleep(0.3)
    assert bin_1() == 80.0  # past it: still the kept body, remade after the response
    assert bin_1() == 91.0  # the remade one

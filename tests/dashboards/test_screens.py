"""The screens through HTTP as a browser uses them (cookies, forms, redirects), against the
API tests' estate: two patches, a user per role, alerts from the real evaluator."""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dashboards.web import create_web_app
from routing.model import BinStop, DisposalSite, PlanRequest, Site, Vehicle
from routing.network import read_osm
from routing.plans import save_plan
from routing.roads import RoadProvider
from routing.solver import plan_routes
from store.db import connect
from tests.api.conftest import NORTH_OCCUPIED, NORTH_VOID, PASSWORD, SOUTH_VOID, api_settings
from tests.routing.osm import write_osm
from tests.routing.test_roads import LOOP_NODES, LOOP_WAYS, P1, P2

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def web(estate_url: str) -> Iterator[TestClient]:
    with TestClient(create_web_app(estate_url, api_settings()), follow_redirects=False) as c:
        yield c


def csrf_of(client: TestClient, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match is not None
    return match.group(1)


def log_in(client: TestClient, user: str, password: str = PASSWORD) -> None:
    token = csrf_of(client)
    response = client.post(
        "/login", data={"username": user, "password": password, "csrf": token, "next": "/"}
    )
    assert response.status_code == 303, response.text


def test_without_login_a_screen_redirects_to_the_login_form(web: TestClient) -> None:
    response = web.get(f"/homes/{NORTH_VOID}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/homes/{NORTH_VOID}"


def test_the_login_sets_httponly_strict_cookies(web: TestClient) -> None:
    token = csrf_of(web)
    response = web.post("/login", data={"username": "olivia", "password": PASSWORD, "csrf": token})
    cookies = response.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("civic_access="))
    assert ("HttpOnly" in access, "SameSite=strict" in access) == (True, True)


def test_a_wrong_password_shows_the_form_again(web: TestClient) -> None:
    token = csrf_of(web)
    response = web.post("/login", data={"username": "olivia", "password": "nope", "csrf": token})
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text


def test_a_login_post_without_the_csrf_token_is_refused(web: TestClient) -> None:
    web.get("/login")
    response = web.post("/login", data={"username": "olivia", "password": PASSWORD})
    assert response.status_code == 403


def test_the_login_never_redirects_off_site(web: TestClient) -> None:
    token = csrf_of(web)
    response = web.post(
        "/login",
        data={"username": "olivia", "password": PASSWORD, "csrf": token, "next": "//evil.example"},
    )
    assert response.headers["location"] == "/"


def test_an_officer_lands_on_the_queue(web: TestClient) -> None:
    log_in(web, "olivia")
    assert web.get("/").headers["location"] == "/queue"


def test_the_queue_lists_only_the_officers_patch(web: TestClient) -> None:
    log_in(web, "olivia")
    page = web.get("/queue").text
    assert NORTH_VOID in page
    assert SOUTH_VOID not in page


def test_an_officer_of_north_cannot_open_a_south_home(web: TestClient) -> None:
    log_in(web, "olivia")
    assert web.get(f"/homes/{SOUTH_VOID}").status_code == 404


def test_an_officer_opens_a_home_in_their_patch(web: TestClient) -> None:
    log_in(web, "olivia")
    page = web.get(f"/homes/{NORTH_VOID}")
    assert page.status_code == 200
    assert "Send heating setpoint" in page.text


def test_a_crew_member_cannot_open_the_queue_of_homes(web: TestClient) -> None:
    log_in(web, "wendy")
    assert web.get(f"/homes/{NORTH_OCCUPIED}").status_code == 403


def test_an_expired_access_token_is_renewed_from_the_refresh_cookie(web: TestClient) -> None:
    log_in(web, "olivia")
    web.cookies.delete("civic_access")
    response = web.get("/queue")
    renewed = [c for c in response.headers.get_list("set-cookie") if c.startswith("civic_access=")]
    assert (response.status_code, len(renewed)) == (200, 1)


def test_after_logging_out_the_refresh_cookie_no_longer_works(web: TestClient) -> None:
    log_in(web, "olivia")
    refresh = web.cookies.get("civic_refresh")
    token = csrf_of(web, "/queue")
    web.post("/logout", data={"csrf": token})
    web.cookies.set("civic_refresh", refresh or "")
    assert web.get("/queue").headers["location"] == "/login?next=/queue"


def test_a_forged_access_cookie_without_a_refresh_cookie_sends_to_login(web: TestClient) -> None:
    web.cookies.set("civic_access", "not-a-token")
    assert web.get("/queue").status_code == 303


def test_a_disabled_users_session_ends(web: TestClient, estate_url: str) -> None:
    from api.identity import add_user, disable_user
    from store.db import connect

    with connect(estate_url) as conn:
        add_user(conn, "dora", "housing_officer", ["north"], PASSWORD)
    log_in(web, "dora")
    with connect(estate_url) as conn:
        disable_user(conn, "dora")
    assert web.get("/queue").headers["location"] == "/login?next=/queue"


def test_an_action_without_the_csrf_token_is_refused(web: TestClient) -> None:
    log_in(web, "olivia")
    alert_id = re.search(r'data-alert="([^"]+)"', web.get("/queue").text).group(1)
    response = web.post("/queue/act", data={"alert_id": alert_id, "action": "acknowledge"})
    assert response.status_code == 403


def test_an_officer_cannot_act_on_another_patchs_alert(web: TestClient) -> None:
    log_in(web, "sam")
    south = re.search(r'data-alert="([^"]+)"', web.get("/queue").text).group(1)
    web.cookies.clear()
    log_in(web, "olivia")
    token = csrf_of(web, "/queue")
    response = web.post(
        "/queue/act", data={"alert_id": south, "action": "acknowledge", "csrf": token}
    )
    assert response.status_code == 404


def test_an_engineer_cannot_open_the_waste_screen(web: TestClient) -> None:
    log_in(web, "ed")
    assert web.get("/waste").status_code == 403


def test_a_crew_opens_the_waste_screen_before_any_plan(web: TestClient) -> None:
    log_in(web, "wendy")
    page = web.get("/waste")
    assert "No general plan for that day yet." in page.text


def test_the_week_counts_collections_and_overflow_hours_against_the_baseline(
    web: TestClient, estate_url: str
) -> None:
    from datetime import UTC, timedelta

    from firmware_contracts import Reading
    from store.db import connect
    from store.readings import PartitionGuard, prepare_session, write_batch
    from tests.api.conftest import START
    from tests.store.helpers import refresh_rollup

    log_in(web, "wendy")
    before = web.get("/waste").text
    # bin-2 overflowing for two whole UTC hours before the estate's other readings (so its
    # latest reading stays what the other tests expect).
    hour = START.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    hours = [hour + timedelta(minutes=20 * k) for k in range(6)]
    with connect(estate_url) as conn:
        prepare_session(conn)
        batch = [Reading("bin-2", ts, seq=k, fill_pct=104.0) for k, ts in enumerate(hours)]
        write_batch(conn, batch, [], partitions=PartitionGuard())
        conn.execute(
            "INSERT INTO collection_records (device_id, ts, crew) VALUES ('bin-2', %s, 'c1')",
            (START - timedelta(hours=1, minutes=7),),
        )
    refresh_rollup(estate_url)  # hours already materialised, on TimescaleDB
    after = web.get("/waste").text

    def figure(page: str, name: str) -> int:
        match = re.search(rf"<th scope=\"row\">{re.escape(name)}[^<]*</th><td>(\d+)", page)
        assert match is not None, name
        return int(match.group(1))

    assert figure(after, "Overflow-hours") - figure(before, "Overflow-hours") == 2
    assert figure(after, "Bins collected") - figure(before, "Bins collected") == 1
    assert "against the fixed round" in after  # the closed-loop results are in the repo


def test_an_engineer_opens_the_console(web: TestClient) -> None:
    log_in(web, "ed")
    assert "Engineering console" in web.get("/engineer").text


def test_screens_are_sent_with_a_content_security_policy(web: TestClient) -> None:
    policy = web.get("/login").headers["content-security-policy"]
    assert "script-src 'self';" in policy


def _north_alert(estate_url: str) -> str:
    with connect(estate_url) as conn:
        row = conn.execute(
            "SELECT id FROM alerts WHERE patch = 'north' AND subject_kind = 'home'"
            " ORDER BY opened_at LIMIT 1"
        ).fetchone()
    return str(row["id"])


def test_the_evidence_page_links_its_stylesheet_which_the_policy_allows(
    web: TestClient, estate_url: str
) -> None:
    log_in(web, "olivia")
    page = web.get("/alerts/evidence", params={"id": _north_alert(estate_url), "format": "html"})
    href = re.search(r'<link rel="stylesheet" href="(/static/evidence/[0-9a-f]+\.css)">', page.text)
    assert href is not None
    assert "<style" not in page.text
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    sheet = web.get(href.group(1))
    assert (sheet.status_code, sheet.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert "border-collapse" in sheet.text
    assert "immutable" in sheet.headers["cache-control"]


def test_an_old_releases_evidence_stylesheet_is_not_found(web: TestClient) -> None:
    assert web.get("/static/evidence/000000000000.css").status_code == 404


def test_the_evidence_page_downloaded_is_one_file_with_its_stylesheet_inside(
    web: TestClient, estate_url: str
) -> None:
    log_in(web, "olivia")
    params = {"id": _north_alert(estate_url), "format": "html", "download": "true"}
    page = web.get("/alerts/evidence", params=params)
    assert page.headers["content-disposition"].startswith("attachment; filename=")
    assert "<style>" in page.text
    assert "border-collapse" in page.text
    assert "<link" not in page.text


def test_the_api_keeps_its_own_headers(web: TestClient) -> None:
    assert "content-security-policy" not in web.get("/healthz").headers


def test_the_waste_map_draws_a_road_plan_along_the_streets(
    web: TestClient, estate_url: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        roads = RoadProvider.from_network(
            read_osm(write_osm(Path(folder) / "loop.osm", LOOP_NODES, LOOP_WAYS))
        )
    request = PlanRequest(
        depots=(Site("depot", 0.0005, 0.00104),),
        tips=(DisposalSite("tip", 0.00104, 0.0005),),
        vehicles=(Vehicle("loop-truck", "general", 1000.0, 1000.0, "depot"),),
        bins=(
            BinStop("loop-p1", *P1, "general", 10.0, 20.0, must_collect=True),
            BinStop("loop-p2", *P2, "general", 10.0, 20.0, must_collect=True),
        ),
    )
    plan = plan_routes(request, time_limit_s=1.0, matrix_provider=roads)
    with connect(estate_url) as conn:
        plan_id = save_plan(
            conn,
            plan_date=dt.date(2025, 11, 3),
            stream="general",
            as_of=dt.datetime(2025, 11, 3, 6, tzinfo=dt.UTC),
            engine="auto",
            time_limit_s=1.0,
            request=request,
            plan=plan,
            selection=[],
            fleet={},
        )
    log_in(web, "wendy")
    page = web.get(f"/waste?plan={plan_id}").text
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1))
    (route,) = data["routes"]
    # The line on the map is the street path, round the one-way block's corners.
    assert route["path"] == [list(p) for leg in plan.routes[0].legs for p in leg]
    assert [0.001, 0.001] in route["path"]


def test_the_api_docs_load_their_assets_from_this_app(web: TestClient) -> None:
    """Swagger UI works offline: every script, style and icon /docs names is served here."""
    page = web.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ['"]([^'"]+)['"]""", page.text)
    named = [a or b for a, b in urls]
    assert "/docs/assets/swagger-ui-bundle.js" in named
    assert all(u.startswith("/") and not u.startswith("//") for u in named), named
    for url in named:
        assert web.get(url).status_code == 200, url
    assert web.get("/docs/assets/package.json").status_code == 404  # only the named assets


def test_the_console_shows_the_simulators_last_run(
    web: TestClient, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from device_sim.cli import _keep_last_run

    monkeypatch.setattr(web.app.state.settings, "data_dir", tmp_path)  # type: ignore[attr-defined]
    log_in(web, "ed")
    assert "No simulator run recorded" in web.get("/engineer").text
    config = SimpleNamespace(bins=40, homes=25, interval_s=60.0, duration_s=7200.0)
    report: dict[str, Any] = {
        "published": 4321,
        "acked": 4321,
        "readings_total": 4000,
        "malformed_total": 12,
        "duplicates": 7,
        "late": 3,
        "offline_batches": 1,
        "rate_msg_s": 850.2,
        "wall_s": 5.1,
    }
    _keep_last_run(tmp_path, datetime.now(UTC), config, report)
    page = web.get("/engineer").text
    assert "40 bins and 25 homes" in page
    assert "<td>Messages published</td><td>4321</td>" in page
    assert "own TLS connections" not in page
    assert "Wire faults" not in page
    report["connections"] = {"mode": "per-device", "devices": 39, "connect_s": 2.5}
    report["wire_faults"] = {"sent": 10, "outcomes": {}}
    _keep_last_run(tmp_path, datetime.now(UTC), config, report)
    page = web.get("/engineer").text
    assert "<td>Devices on their own TLS connections</td><td>39</td>" in page
    assert "<td>Wire faults sent at the broker</td><td>10</td>" in page

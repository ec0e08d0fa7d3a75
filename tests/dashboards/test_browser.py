"""Each role uses its screens in headless Chromium (Debian's, driven by Playwright) on a small
demo estate: log in, act, see the result; axe-core checks every screen (no serious or critical
violations) and a screenshot of each goes to docs/screenshots/."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.screens import Demo, build_demo, launch_chromium, log_in, serve
from tests.api.conftest import api_settings
from tests.conftest import _fresh_database

ROOT = Path(__file__).resolve().parents[2]
# The README's screenshots are refreshed with CIVIC_SCREENSHOTS=docs/screenshots; otherwise
# they go under .civic/ so a test run leaves the tree clean.
SHOTS = ROOT / os.environ.get("CIVIC_SCREENSHOTS", ".civic/test/screenshots")
AXE = ROOT / "dashboards" / "node_modules" / "axe-core" / "axe.min.js"
WAIT_MS = 60_000  # a busy 2-core machine: generous, never a timing assertion
VIEWPORT = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def demo(services: Any) -> Iterator[Demo]:
    for url in _fresh_database(services, None):
        yield build_demo(url, bins=300, homes=80, hours=36, plan_seconds=2)


@pytest.fixture(scope="module")
def base(demo: Demo) -> Iterator[str]:
    with serve(demo.url, api_settings(api_route_max_seconds=3)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


# Records what the Content-Security-Policy blocked, so a test can say the screens need none of it.
CSP_WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(CSP_WATCH)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize(
    ("user", "path", "ready"),
    [
        ("officer.north", "/queue", "#queue-rows tr"),
        ("officer.north", "/homes/{north_void}", "section.sensor .chart canvas"),
        ("waste.ops", "/waste?plan={plan_id}", ".stop-label"),
        ("engineer", "/engineer", "#dl-chart canvas"),
    ],
)
def test_no_screen_needs_anything_its_content_security_policy_blocks(
    page: Any, base: str, demo: Demo, user: str, path: str, ready: str
) -> None:
    as_user(page, base, user)
    page.goto(base + path.format(north_void=demo.north_void, plan_id=demo.plan_id))
    page.wait_for_selector(ready)
    assert page.evaluate("window.__csp") == []


_SESSIONS: dict[str, list[Any]] = {}


def as_user(page: Any, base: str, user: str) -> None:
    """Log in once per user and module, then reuse the cookies: the API allows 10 logins a
    minute per user name, and a screen test is about the screen, not the login."""
    if user not in _SESSIONS:
        log_in(page, base, user)
        _SESSIONS[user] = page.context.cookies()
    else:
        page.context.add_cookies(_SESSIONS[user])


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical WCAG 2.x A/AA violations axe-core finds on the page."""
    # Evaluated through the browser's debugging protocol: the screens' Content-Security-Policy
    # rightly refuses an injected <script>.
    page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate(
        """() => axe.run(document, {runOnly: {type: 'tag',
             values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})"""
    )
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


# -- logging in -------------------------------------------------------------------------------


def test_without_a_login_the_queue_sends_the_browser_to_the_login_form(
    page: Any, base: str
) -> None:
    page.goto(f"{base}/queue")
    assert page.url == f"{base}/login?next=/queue"


def test_the_login_form_has_no_serious_accessibility_violations(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    shoot(page, "login")
    assert axe_violations(page) == []


def test_the_login_returns_to_the_page_asked_for(page: Any, base: str) -> None:
    page.goto(f"{base}/engineer")
    page.fill("#username", "engineer")
    page.fill("#password", "demo password for screens")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/engineer")
    assert page.locator("h1").inner_text() == "Engineering console"


def test_the_access_token_is_out_of_the_pages_reach(page: Any, base: str) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/queue")
    assert "civic_access" not in page.evaluate("document.cookie")


# -- the officer --------------------------------------------------------------------------------


def test_the_officers_queue_has_no_serious_accessibility_violations(page: Any, base: str) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/queue")
    page.wait_for_selector("#queue-rows tr[data-alert]")
    shoot(page, "officer-queue")
    assert axe_violations(page) == []


def test_the_queue_is_earliest_due_first(page: Any, base: str) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/queue")
    dues = page.locator("#queue-rows tr[data-alert] td:first-child small").all_inner_texts()
    parsed = [datetime.strptime(d, "%d %b %Y") for d in dues if d != "no statutory date"]
    assert parsed == sorted(parsed)


def test_an_officer_acknowledges_an_alert_with_the_keyboard(page: Any, base: str) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/queue")
    button = page.locator("#queue-rows button[value=acknowledge]").first
    alert_id = button.locator("xpath=ancestor::tr").get_attribute("data-alert")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash")
    row = page.locator(f'#queue-rows tr[data-alert="{alert_id}"] td:nth-child(6)')
    assert (page.locator(".flash").inner_text(), row.inner_text()) == (
        f"Acknowledged: {alert_id}",
        "acknowledged",
    )


def test_the_queue_shows_a_change_made_elsewhere_without_a_reload(
    page: Any, base: str, demo: Demo
) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/queue")
    page.wait_for_selector("#live-status:has-text('Live')")
    row = (
        page.locator("#queue-rows tr[data-alert]")
        .filter(has=page.locator("button[value=acknowledge]"))
        .first
    )
    alert_id = row.get_attribute("data-alert")
    _acknowledge_elsewhere(demo.url, alert_id)
    cell = page.locator(f'#queue-rows tr[data-alert="{alert_id}"] td:nth-child(6)')
    cell.filter(has_text="acknowledged").wait_for()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def _acknowledge_elsewhere(url: str, alert_id: str) -> None:
    from alerts.actions import acknowledge_alert
    from store.db import connect

    with connect(url) as conn:
        acknowledge_alert(conn, alert_id, by="user:colleague", at=datetime.now(UTC), note=None)


def test_an_officer_of_north_cannot_open_a_south_home_by_url(
    page: Any, base: str, demo: Demo
) -> None:
    as_user(page, base, "officer.north")
    response = page.goto(f"{base}/homes/{demo.south_home}")
    assert (response.status, page.locator("h1").inner_text()) == (404, "Not found")


def test_the_property_page_draws_its_charts_with_thresholds(
    page: Any, base: str, demo: Demo
) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/homes/{demo.north_void}")
    page.wait_for_selector("section.sensor .chart canvas")
    legends = page.locator(".chart[data-metric=temp_c] .u-legend").first.inner_text()
    assert "frost risk below 5 °C" in legends


def test_the_property_page_has_no_serious_accessibility_violations(
    page: Any, base: str, demo: Demo
) -> None:
    as_user(page, base, "officer.north")
    page.goto(f"{base}/homes/{demo.north_void}")
    page.wait_for_selector("section.sensor .chart canvas")
    shoot(page, "officer-property")
    assert axe_violations(page) == []


def test_the_evidence_pack_page_draws_charts_with_axes_thresholds_and_a_legend(
    page: Any, base: str, demo: Demo
) -> None:
    from urllib.parse import quote

    from store.db import connect

    with connect(demo.url) as conn:
        alert = conn.execute(
            "SELECT id FROM alerts WHERE patch = 'north' AND subject_kind = 'home'"
            " ORDER BY opened_at LIMIT 1"
        ).fetchone()
    as_user(page, base, "officer.north")
    page.goto(f"{base}/alerts/evidence?id={quote(alert['id'])}&format=html")
    page.wait_for_selector("figure.chart svg")
    chart = page.locator("figure.chart").first
    assert "time (UTC)" in chart.locator(":scope > svg").inner_html()
    assert "threshold:" in chart.locator("ul.legend").inner_text()
    chart.scroll_into_view_if_needed()
    shoot(page, "officer-evidence-pack")
    assert axe_violations(page) == []


def test_the_evidence_pack_opened_from_the_property_page_is_styled_within_the_policy(
    page: Any, base: str, demo: Demo
) -> None:
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    from store.db import connect

    with connect(demo.url) as conn:
        home = conn.execute(
            "SELECT uprn FROM alerts WHERE patch = 'north' AND subject_kind = 'home'"
            " ORDER BY opened_at LIMIT 1"
        ).fetchone()
    as_user(page, base, "officer.north")
    page.goto(f"{base}/homes/{home['uprn']}")
    page.locator("p.links a[href*='format=html']:not([download])").first.click()
    page.wait_for_url(lambda u: "/alerts/evidence?" in u and "format=html" in u)
    page.wait_for_selector("figure.chart svg")
    styled = page.evaluate(
        """() => {
             const style = s => getComputedStyle(document.querySelector(s));
             const th = style('table th');
             return [style('body').marginLeft, style('table').borderCollapse,
                     th.borderTopStyle + ' ' + th.borderTopColor,
                     style('ul.legend').listStyleType];
           }"""
    )
    shoot(page, "officer-evidence-pack-styled")
    assert styled == ["32px", "collapse", "solid rgb(119, 119, 119)", "none"]
    assert (page.evaluate("window.__csp"), refused) == ([], [])


class _Device:
    def __init__(self, device_id: str, model: Any) -> None:
        self.device_id = device_id
        self.model = model


def test_a_heating_command_is_acknowledged_by_the_simulated_device(
    page: Any, base: str, demo: Demo, services: Any
) -> None:
    import random

    from alerts.commands import CommandDispatcher
    from device_sim.models import HomeModel
    from device_sim.responder import CommandResponder
    from store.db import connect

    host, port = services.mqtt_host_port
    prefix = f"t{uuid.uuid4().hex[:10]}"  # this test's own topics on the shared broker
    with connect(demo.url) as conn:
        device_id = conn.execute(
            "SELECT device_id FROM devices WHERE uprn = %s", (demo.north_void,)
        ).fetchone()["device_id"]
    home = HomeModel.create(device_id, True, random.Random(1))
    # The broker refuses anonymous clients: the simulator's and the alert service's accounts.
    responder = CommandResponder(
        {device_id: _Device(device_id, home)},
        host,
        port,
        prefix,
        auth=services.local.service_auth("sim"),
    )
    dispatcher = CommandDispatcher(
        host=host, port=port, prefix=prefix, auth=services.local.service_auth("alerts")
    )
    responder.start()
    dispatcher.start()
    stop = threading.Event()

    def dispatch() -> None:
        with connect(demo.url) as conn:
            while not stop.is_set():
                dispatcher.step(conn, datetime.now(UTC))
                time.sleep(0.2)

    worker = threading.Thread(target=dispatch, daemon=True)
    worker.start()
    try:
        as_user(page, base, "officer.north")
        page.goto(f"{base}/homes/{demo.north_void}")
        page.fill("#setpoint", "14")
        page.click("text=Send heating setpoint")
        page.wait_for_selector(".flash")
        page.wait_for_selector("#commands tr[data-state=done]", timeout=WAIT_MS)
        page.evaluate("document.getElementById('heating-h').scrollIntoView()")
        shoot(page, "officer-heating-acknowledged")
        assert home.setpoint_c == 14.0
    finally:
        stop.set()
        worker.join(10)
        dispatcher.stop()
        responder.stop()


# -- waste operations -------------------------------------------------------------------------


def test_the_waste_map_draws_every_bin_and_the_plan(page: Any, base: str, demo: Demo) -> None:
    as_user(page, base, "waste.ops")
    page.goto(f"{base}/waste?stream=general&plan={demo.plan_id}")
    page.wait_for_selector("#map canvas")
    page.wait_for_selector(".stop-label")
    drawn = page.evaluate(
        "() => { let n = 0; window.civicMap.eachLayer(l => { if (l instanceof L.CircleMarker"
        " && l.options.interactive !== false) n++; }); return n; }"
    )
    expected = len(
        page.evaluate("JSON.parse(document.getElementById('map-data').textContent).bins")
    )
    assert drawn == expected


def test_a_new_reading_recolours_its_bin_on_the_map_without_a_reload(
    page: Any, base: str, demo: Demo
) -> None:
    from firmware_contracts import Reading
    from store.db import connect
    from store.readings import PartitionGuard, prepare_session, write_batch

    as_user(page, base, "waste.ops")
    page.goto(f"{base}/waste?stream=general&plan={demo.plan_id}")
    page.wait_for_selector("#live-status:has-text('Live')")
    bin_id = page.evaluate("JSON.parse(document.getElementById('map-data').textContent).bins[0][0]")
    with connect(demo.url) as conn:
        prepare_session(conn)
        reading = Reading(bin_id, datetime.now(UTC), seq=99_999, fill_pct=99.0, battery_v=3.6)
        write_batch(conn, [reading], [], partitions=PartitionGuard())
    page.wait_for_function(
        "id => window.civicMarkers[id].marker.options.describe().includes('99 % full')",
        arg=bin_id,
    )
    assert (
        page.evaluate("id => window.civicMarkers[id].marker.options.fillColor", bin_id) == "#c62828"
    )


def test_the_waste_screen_has_no_serious_accessibility_violations(
    page: Any, base: str, demo: Demo
) -> None:
    as_user(page, base, "waste.ops")
    page.goto(f"{base}/waste?stream=general&plan={demo.plan_id}")
    page.wait_for_selector(".stop-label")
    shoot(page, "waste-map")
    assert axe_violations(page) == []


def test_a_crew_plans_and_re_plans_the_day_from_the_screen(
    page: Any, base: str, demo: Demo
) -> None:
    as_user(page, base, "waste.ops")
    page.goto(f"{base}/waste?stream=general")
    page.click("form[action='/waste/plan'] button")
    page.wait_for_selector("#job")
    page.wait_for_url(lambda u: "plan=" in u, timeout=120_000)
    planned = page.url.split("plan=")[1]
    page.fill("#replan-at", "10:00")
    page.click("form.replan button")
    page.wait_for_url(
        lambda u: "plan=" in u and planned not in u.split("plan=")[1], timeout=120_000
    )
    shoot(page, "waste-replanned")
    assert f"re-plan of {planned}" in page.locator("#plan-h + p").inner_text()


def test_the_driver_sheet_lists_each_trucks_stops(page: Any, base: str, demo: Demo) -> None:
    as_user(page, base, "waste.ops")
    page.goto(f"{base}/waste/plans/{demo.plan_id}/sheet")
    shoot(page, "waste-driver-sheet")
    assert page.locator("section.sheet").count() >= 1


def test_an_uploaded_round_sheet_marks_a_planned_stop_collected(
    page: Any, base: str, demo: Demo, tmp_path: Path
) -> None:
    as_user(page, base, "waste.ops")
    page.goto(f"{base}/waste?stream=general&plan={demo.plan_id}")
    first = page.locator("details table tbody tr").filter(has_text="bin-").first
    bin_id = first.locator("td:nth-child(2)").text_content()
    sheet = tmp_path / "round.csv"
    sheet.write_text(f"device_id,ts,crew\n{bin_id},{demo.plan_date}T09:30:00+00:00,A\n")
    page.set_input_files("#sheet-file", str(sheet))
    page.click("form[action='/waste/collections'] button")
    page.wait_for_selector(".flash")
    page.goto(f"{base}/waste?stream=general&plan={demo.plan_id}")
    row = page.locator("details table tbody tr").filter(has_text=bin_id).first
    assert "✓" in row.locator("td:last-child").text_content()


def test_an_officer_cannot_open_the_waste_screen(page: Any, base: str) -> None:
    as_user(page, base, "officer.north")
    assert page.goto(f"{base}/waste").status == 403


# -- the engineer -----------------------------------------------------------------------------


def test_the_engineers_console_shows_dead_letters_by_reason(page: Any, base: str) -> None:
    as_user(page, base, "engineer")
    page.goto(f"{base}/engineer")
    page.wait_for_selector("#dl-chart canvas")
    shoot(page, "engineer-console")
    reasons = page.locator("#dl-h ~ table tbody td:first-child").all_inner_texts()
    assert "schema_invalid" in reasons


def test_the_engineers_console_has_no_serious_accessibility_violations(
    page: Any, base: str
) -> None:
    as_user(page, base, "engineer")
    page.goto(f"{base}/engineer")
    page.wait_for_selector("#dl-chart canvas")
    assert axe_violations(page) == []

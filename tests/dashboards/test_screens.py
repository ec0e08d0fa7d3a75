"""The screens through HTTP as a browser uses them (cookies, forms, redirects), against the
API tests' estate: two patches, a user per role, alerts from the real evaluator."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dashboards.web import create_web_app
from tests.api.conftest import NORTH_OCCUPIED, NORTH_VOID, PASSWORD, SOUTH_VOID, api_settings

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


def test_an_engineer_cannot_open_the_waste_screen(web: TestClient) -> None:
    log_in(web, "ed")
    assert web.get("/waste").status_code == 403

"""Logging in, tokens for scripts, refresh and revocation, and the settings' secret."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from pydantic import SecretStr

from api.identity import create_token, disable_user
from api.security import (
    ROLE_SCOPES,
    Principal,
    Role,
    TokenError,
    VerifiedTokens,
    decode_access_token,
    issue_access_token,
)
from api.settings import ApiSettingsError
from store.db import connect
from tests.api.conftest import PASSWORD, Api, api_settings

SECRET = "t" * 48


def test_no_credentials_is_401_problem_json_with_a_challenge(api: Api) -> None:
    response = api.client.get("/api/v1/homes")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert body["detail"]


def test_a_wrong_password_or_unknown_user_gets_no_token(api: Api) -> None:
    for username, password in (("olivia", "wrong password!"), ("nobody", PASSWORD)):
        response = api.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": password},
        )
        assert response.status_code == 401
        assert "access_token" not in response.json()


def test_login_gives_a_token_with_the_roles_scopes(api: Api) -> None:
    me = api.as_("olivia")("GET", "/api/v1/auth/me").json()
    assert me == {
        "name": "olivia",
        "kind": "user",
        "role": "housing_officer",
        "scopes": sorted(ROLE_SCOPES[Role.HOUSING_OFFICER]),
        "patches": ["north"],
    }


def test_a_forged_or_expired_token_is_refused(api: Api) -> None:
    principal = Principal("user", "ada", Role.ADMIN, ROLE_SCOPES[Role.ADMIN])
    expired = issue_access_token(principal, secret=SECRET, ttl=timedelta(seconds=-5))
    forged = issue_access_token(principal, secret="f" * 48, ttl=timedelta(minutes=5))
    for token, words in ((expired, "expired"), (forged, "not valid")):
        response = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert words in response.json()["detail"]


def test_a_disabled_user_is_refused_at_the_next_request(api: Api) -> None:
    call = api.as_("sam")
    assert call("GET", "/api/v1/auth/me").status_code == 200
    with connect(api.url) as conn:
        disable_user(conn, "sam")
    response = call("GET", "/api/v1/auth/me")
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


def test_refresh_tokens_rotate_and_can_be_revoked(api: Api) -> None:
    login = api.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "wendy", "password": PASSWORD},
    ).json()
    first = login["refresh_token"]
    refreshed = api.client.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert refreshed.status_code == 200
    second = refreshed.json()["refresh_token"]
    assert second != first
    again = api.client.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert again.status_code == 401  # single use
    headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (
        api.client.post("/api/v1/auth/revoke", data={"token": second}, headers=headers).status_code
        == 204
    )
    revoked = api.client.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": second}
    )
    assert revoked.status_code == 401


def test_client_credentials_for_scripts_and_revocation(api: Api) -> None:
    with connect(api.url) as conn:
        token = create_token(conn, "council-crm", role="engineer", scopes=["devices:read"])
    response = api.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": token.client_id,
            "client_secret": token.client_secret,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "devices:read"
    assert body.get("refresh_token") is None
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.client.get("/api/v1/devices", headers=headers).status_code == 200
    # A scope the engineer role has but this token was not given.
    assert api.client.get("/api/v1/ops/ingest", headers=headers).status_code == 403
    wrong = api.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": token.client_id,
            "client_secret": token.client_secret + "x",
        },
    )
    assert wrong.status_code == 401
    with connect(api.url) as conn:
        from api.identity import revoke_token

        revoke_token(conn, "council-crm")
    assert api.client.get("/api/v1/devices", headers=headers).status_code == 401


def test_a_token_never_carries_more_than_its_role() -> None:
    principal = Principal("user", "x", Role.ENGINEER, frozenset({"homes:read", "ops:read"}))
    token = issue_access_token(principal, secret=SECRET, ttl=timedelta(minutes=1))
    assert decode_access_token(token, secret=SECRET).scopes == frozenset({"ops:read"})


def test_a_verified_token_is_recognised_only_as_itself_and_until_it_expires() -> None:
    tokens = VerifiedTokens(SECRET)
    principal = Principal("user", "x", Role.ENGINEER, ROLE_SCOPES[Role.ENGINEER])
    token = issue_access_token(principal, secret=SECRET, ttl=timedelta(seconds=2))
    assert tokens.principal(token) == principal
    assert tokens.principal(token) == principal  # from memory
    forged = issue_access_token(principal, secret="f" * 48, ttl=timedelta(seconds=2))
    with pytest.raises(TokenError, match="not valid"):
        tokens.principal(forged)
    header, claims, signature = token.split(".")
    with pytest.raises(TokenError, match="not valid"):
        tokens.principal(f"{header}.{claims}.{signature[::-1]}")
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    with pytest.raises(TokenError, match="expired"):
        tokens.principal(token)


@pytest.mark.parametrize("secret", [None, "changeme", "short"])
def test_production_refuses_a_missing_or_placeholder_secret(secret: str | None) -> None:
    settings = api_settings(api_secret=SecretStr(secret) if secret else None)
    with pytest.raises(ApiSettingsError):
        settings.signing_secret()


def test_development_makes_its_own_secret_once(tmp_path) -> None:
    settings = api_settings(env="development", api_secret=None, data_dir=tmp_path)
    first = settings.signing_secret()
    assert len(first) >= 32
    assert settings.signing_secret() == first
    assert (tmp_path / "api-secret").stat().st_mode & 0o077 == 0


def test_logins_are_rate_limited_per_user(api: Api) -> None:
    codes = [
        api.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": "ed", "password": "not the password"},
        ).status_code
        for _ in range(12)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429


def test_a_callers_standing_is_read_once_per_period_and_a_refusal_never_cached() -> None:
    from api.deps import AllowedCache

    cache = AllowedCache(ttl_s=60)
    principal = Principal("user", "x", Role.ENGINEER, ROLE_SCOPES[Role.ENGINEER])
    asked: list[bool] = []

    def ask(answer: bool) -> bool:
        asked.append(answer)
        return answer

    assert cache.check(principal, lambda: ask(True))
    assert cache.check(principal, lambda: ask(False))  # within the period: not asked
    assert asked == [True]
    refusing = AllowedCache(ttl_s=60)
    assert not refusing.check(principal, lambda: ask(False))
    assert not refusing.check(principal, lambda: ask(False))
    assert asked == [True, False, False]


def test_each_caller_has_a_rate_limit_with_retry_after(estate_url: str) -> None:
    from fastapi.testclient import TestClient

    from dashboards.web import create_web_app
    from tests.api.conftest import Api

    with TestClient(create_web_app(estate_url, api_settings(api_rate_per_minute=5))) as client:
        call = Api(client, estate_url).as_("ed")
        codes = [call("GET", "/api/v1/auth/me").status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        limited = call("GET", "/api/v1/auth/me")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["content-type"] == "application/problem+json"
        # Another caller has a budget of their own.
        assert Api(client, estate_url).as_("ada")("GET", "/api/v1/auth/me").status_code == 200


def test_no_browser_origin_is_allowed_unless_configured(api: Api) -> None:
    response = api.client.options(
        "/api/v1/homes",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_operations_endpoints_without_personal_data(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api.client.get("/readyz").json()
    assert ready["checks"]["database"] == "ok"
    api.as_("ed")("GET", "/api/v1/devices")
    metrics = api.client.get("/metrics").text
    assert 'civic_api_requests_total{method="GET",route="/api/v1/devices",status="200"}' in metrics


def test_a_database_gone_mid_check_is_a_503_not_a_500(estate_url: str) -> None:
    from fastapi.testclient import TestClient

    from dashboards.web import create_web_app
    from tests.api.conftest import Api

    # The caller's standing is asked of the database at every request here (period 0).
    with TestClient(create_web_app(estate_url, api_settings())) as client:
        call = Api(client, estate_url).as_("ed")
        assert call("GET", "/api/v1/auth/me").status_code == 200
        with connect(estate_url) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        response = call("GET", "/api/v1/auth/me")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"

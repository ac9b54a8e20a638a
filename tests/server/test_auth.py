"""Universal-auth login and bearer-token checks (401/403 as Infisical answers them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError

from infisical_server.testing import RunningServer, sample_config, start_server
from tests.server.support import Api, error_body

LOGIN = "/api/v1/auth/universal-auth/login"


def test_login_through_the_sdk_returns_a_bearer_token(server: RunningServer) -> None:
    ident = server.identity()
    client = InfisicalSDKClient(host=server.url, cache_ttl=None)
    result = client.auth.universal_auth.login(client_id=ident["client_id"], client_secret=ident["client_secret"])
    assert result.tokenType == "Bearer"
    assert result.expiresIn == 7200
    assert result.accessTokenMaxTTL >= result.expiresIn
    assert result.accessToken.count(".") == 2  # a JWT, like Infisical's


@pytest.mark.parametrize(
    ("client_id", "client_secret"),
    [("fake-client-id-provisioner", "fake-wrong-secret"), ("fake-unknown-client-id", "fake-wrong-secret")],
)
def test_wrong_credentials_are_401_invalid_credentials(
    server: RunningServer, client_id: str, client_secret: str
) -> None:
    client = InfisicalSDKClient(host=server.url, cache_ttl=None)
    with pytest.raises(APIError) as raised:
        client.auth.universal_auth.login(client_id=client_id, client_secret=client_secret)
    assert raised.value.status_code == 401
    body = error_body(
        requests.post(f"{server.url}{LOGIN}", json={"clientId": client_id, "clientSecret": client_secret}, timeout=5),
        401,
    )
    assert body["message"] == "Invalid credentials"
    assert body["error"] == "UnauthorizedError"


def test_login_without_fields_is_a_zod_422(server: RunningServer) -> None:
    body = error_body(requests.post(f"{server.url}{LOGIN}", json={"clientId": "x"}, timeout=5), 422)
    assert body["error"] == "ValidationFailure"
    assert body["message"] == [
        {
            "code": "invalid_type",
            "expected": "string",
            "received": "undefined",
            "path": ["clientSecret"],
            "message": "Required",
        }
    ]


def test_missing_token_is_401_token_missing(server: RunningServer) -> None:
    body = error_body(Api(server.url, None).get("/api/v3/secrets/raw"), 401)
    assert body == {**body, "message": "Token missing", "error": "UnauthorizedError"}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (
            "not-a-jwt",
            "The provided access token is malformed. Please use a valid token or generate a new one and try again.",
        ),
        ("eyJhbGciOiJIUzI1NiJ9.eyJpZGVudGl0eUlkIjoieCJ9.c2lnbmF0dXJl", "invalid signature"),
    ],
)
def test_bad_tokens_are_403_token_error(server: RunningServer, token: str, message: str) -> None:
    body = error_body(Api(server.url, token).get("/api/v3/secrets/raw"), 403)
    assert body["error"] == "TokenError"
    assert body["message"] == message


def test_an_expired_token_is_403_and_a_new_login_works(tmp_path: Path) -> None:
    short = start_server(tmp_path, sample_config(token_ttl_seconds=2))
    try:
        ident = short.identity()
        creds = {"clientId": ident["client_id"], "clientSecret": ident["client_secret"]}
        token = requests.post(f"{short.url}{LOGIN}", json=creds, timeout=5).json()["accessToken"]
        query = {"workspaceId": short.config["projects"][0]["id"], "environment": "dev", "secretPath": "/"}
        assert Api(short.url, token).get("/api/v3/secrets/raw", params=query).status_code == 200
        time.sleep(2.2)
        body = error_body(Api(short.url, token).get("/api/v3/secrets/raw", params=query), 403)
        assert body == {
            **body,
            "error": "TokenError",
            "message": "Your token has expired. Please re-authenticate.",
        }
        fresh = requests.post(f"{short.url}{LOGIN}", json=creds, timeout=5).json()["accessToken"]
        assert Api(short.url, fresh).get("/api/v3/secrets/raw", params=query).status_code == 200
    finally:
        short.stop()


def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path, sample_config())
    token = (
        Api(first.url, None)
        .post(
            LOGIN,
            json={
                "clientId": first.identity()["client_id"],
                "clientSecret": first.identity()["client_secret"],
            },
        )
        .json()["accessToken"]
    )
    second = first.restart()
    try:
        query = {"workspaceId": second.config["projects"][0]["id"], "environment": "dev", "secretPath": "/"}
        assert Api(second.url, token).get("/api/v3/secrets/raw", params=query).status_code == 200
    finally:
        second.stop()

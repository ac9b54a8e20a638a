"""Helpers for the server tests: a raw-HTTP client, logins, Infisical's error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from infisical_server.testing import SAMPLE_PROJECT_ID, RunningServer, sample_config

READER = {
    "name": "acme-reader",
    "client_id": "fake-client-id-acme-reader",
    "client_secret": "fake-client-secret-acme-reader-0002",
    "project": SAMPLE_PROJECT_ID,
    "environments": ["dev"],
    "path_prefix": "/tenants/acme",
}


def server_config() -> dict[str, Any]:
    config = sample_config()
    config["identities"].append(dict(READER))
    return config


@dataclass
class Api:
    """Raw HTTP against the server, for what the SDK cannot show: status codes, bodies, headers."""

    url: str
    token: str | None

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token if token is not None else self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def login(server: RunningServer, identity: str | None = None) -> str:
    ident = server.identity(identity)
    response = requests.post(
        f"{server.url}/api/v1/auth/universal-auth/login",
        json={"clientId": ident["client_id"], "clientSecret": ident["client_secret"]},
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["accessToken"]
    return token


def error_body(response: requests.Response, status: int) -> dict[str, Any]:
    """Assert Infisical's error shape and status; return the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["statusCode"] == status
    assert body["reqId"].startswith("req-")
    assert {"message", "error"} <= set(body)
    return body

"""Rate limiting as Infisical Cloud answers it, and the admin controls: counts, faults, settings."""

from __future__ import annotations

import pytest
import requests

from infisical_server.testing import RunningServer
from tests.server.support import Api, error_body


def test_rate_limit_429_with_headers(server: RunningServer, api: Api, project_id: str) -> None:
    server.settings(rate_limits={"read": 0, "write": 0, "secrets": 2})
    query = {"workspaceId": project_id, "environment": "dev", "secretPath": "/"}
    first = api.get("/api/v3/secrets/raw", params=query)
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    api.get("/api/v3/secrets/raw", params=query)
    refused = api.get("/api/v3/secrets/raw", params=query)
    body = error_body(refused, 429)
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60
    assert body["error"] == "RateLimitExceeded"
    assert body["message"] == f"Rate limit exceeded. Please try again in {wait} seconds"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) == wait
    # Other categories have their own counters: folder reads are "read" (unlimited here).
    assert (
        api.get("/api/v2/folders", params={"projectId": project_id, "environment": "dev", "path": "/"}).status_code
        == 200
    )


def test_a_shorter_window_names_its_own_wait(server: RunningServer, api: Api, project_id: str) -> None:
    settings = server.settings(rate_limits={"read": 0, "write": 0, "secrets": 1}, rate_limit_window_seconds=2)
    assert settings["rate_limit_window_seconds"] == 2.0
    query = {"workspaceId": project_id, "environment": "dev", "secretPath": "/"}
    assert api.get("/api/v3/secrets/raw", params=query).status_code == 200
    refused = api.get("/api/v3/secrets/raw", params=query)
    assert error_body(refused, 429)["error"] == "RateLimitExceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert server.admin("GET", "settings")["rate_limit_window_seconds"] == 2.0
    for bad in (0, -1, "2", True, 3601):
        response = requests.put(f"{server.url}/__admin/settings", json={"rate_limit_window_seconds": bad}, timeout=5)
        assert response.status_code == 400


def test_unlimited_by_default_sends_no_rate_limit_headers(api: Api, project_id: str) -> None:
    response = api.get(
        "/api/v3/secrets/raw", params={"workspaceId": project_id, "environment": "dev", "secretPath": "/"}
    )
    assert "x-ratelimit-limit" not in response.headers


def test_request_counts_by_route_template(server: RunningServer, api: Api, project_id: str, folder: str) -> None:
    server.reset_requests()
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    api.post("/api/v3/secrets/raw/C1", json={**where, "secretValue": "fake-c1"})
    api.get("/api/v3/secrets/raw/C1", params=where)
    api.get("/api/v3/secrets/raw/C2", params=where)
    counts = server.admin("GET", "requests")
    assert counts == {
        "counts": {"GET /api/v3/secrets/raw/{secretName}": 2, "POST /api/v3/secrets/raw/{secretName}": 1},
        "total": 3,
    }


def test_fault_status_then_recovery(server: RunningServer, api: Api, project_id: str, folder: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    server.add_fault("/api/v3/secrets/batch/raw", method="POST", count=2, status=503)
    item = {**where, "secrets": [{"secretKey": "F", "secretValue": "fake-f"}]}
    for _ in range(2):
        body = error_body(api.post("/api/v3/secrets/batch/raw", json=item), 503)
        assert body["error"] == "ServiceUnavailable"
    assert api.post("/api/v3/secrets/batch/raw", json=item).status_code == 200


def test_fault_matches_route_templates_and_429_looks_like_the_limiter(
    server: RunningServer, api: Api, project_id: str
) -> None:
    server.add_fault("/api/v3/secrets/raw/{secretName}", status=429)
    refused = api.get("/api/v3/secrets/raw/ANY", params={"workspaceId": project_id, "environment": "dev"})
    assert error_body(refused, 429)["message"] == "Rate limit exceeded. Please try again in 1 seconds"
    assert refused.headers["retry-after"] == "1"


def test_fault_drop_closes_the_connection_without_a_response(server: RunningServer, api: Api, project_id: str) -> None:
    server.add_fault("/api/v3/secrets/raw", method="GET", drop=True)
    with pytest.raises(requests.ConnectionError):
        api.get("/api/v3/secrets/raw", params={"workspaceId": project_id, "environment": "dev"})
    assert server.admin("GET", "faults") == {"faults": []}  # used up


def test_error_rate_and_latency_settings(server: RunningServer, api: Api, project_id: str) -> None:
    settings = server.settings(error_rate=1.0, latency_ms=5)
    assert settings["error_rate"] == 1.0
    assert settings["latency_ms"] == 5
    assert api.get("/api/v3/secrets/raw", params={"workspaceId": project_id, "environment": "dev"}).status_code == 503
    assert server.admin("GET", "settings")["error_rate"] == 1.0


def test_admin_input_is_checked(server: RunningServer) -> None:
    response = requests.post(f"{server.url}/__admin/faults", json={"path": "no-slash"}, timeout=5)
    assert response.status_code == 400
    response = requests.put(f"{server.url}/__admin/settings", json={"rate_limits": {"bogus": 1}}, timeout=5)
    assert response.status_code == 400


def test_unknown_routes_are_fastify_404s(api: Api) -> None:
    response = api.get("/api/v9/nothing")
    assert response.status_code == 404
    assert response.json() == {
        "message": "Route GET:/api/v9/nothing not found",
        "error": "Not Found",
        "statusCode": 404,
    }


def test_a_fault_after_the_handler_keeps_the_change_and_loses_the_answer(
    server: RunningServer, api: Api, project_id: str, folder: str
) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    server.add_fault("/api/v3/secrets/raw/{secretName}", method="POST", drop=True, after=True)
    with pytest.raises(requests.ConnectionError):
        api.post("/api/v3/secrets/raw/KEPT", json={**where, "secretValue": "fake-kept"})
    assert api.get("/api/v3/secrets/raw/KEPT", params=where).json()["secret"]["secretValue"] == "fake-kept"

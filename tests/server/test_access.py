"""Per-identity access: environments and a path prefix; outside them, Infisical's 403 bodies."""

from __future__ import annotations

from infisical_server.testing import RunningServer
from tests.server.support import Api, error_body


def test_reader_works_inside_its_environment_and_prefix(api: Api, reader_api: Api, project_id: str) -> None:
    api.post(
        "/api/v2/folders",
        json={"projectId": project_id, "environment": "dev", "name": "acme", "path": "/tenants"},
    )
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": "/tenants/acme"}
    created = reader_api.post("/api/v3/secrets/raw/MINE", json={**where, "secretValue": "fake-mine"})
    assert created.status_code == 200, created.text
    assert reader_api.get("/api/v3/secrets/raw/MINE", params=where).json()["secret"]["secretValue"] == "fake-mine"


def test_writes_outside_the_prefix_are_permission_denied(reader_api: Api, project_id: str) -> None:
    body = error_body(
        reader_api.post(
            "/api/v3/secrets/batch/raw",
            json={
                "workspaceId": project_id,
                "environment": "dev",
                "secretPath": "/",
                "secrets": [{"secretKey": "K", "secretValue": "fake"}],
            },
        ),
        403,
    )
    assert body["error"] == "PermissionDenied"
    assert body["message"] == "You are not allowed to create on secrets"
    assert body["details"][0]["conditions"]["secretPath"] == {"$glob": "/tenants/acme/**"}
    folder = error_body(
        reader_api.post(
            "/api/v2/folders",
            json={"projectId": project_id, "environment": "dev", "name": "x", "path": "/tenants"},
        ),
        403,
    )
    assert folder["message"] == "You are not allowed to create on secret-folders"


def test_reads_outside_the_environment_are_forbidden(api: Api, reader_api: Api, project_id: str) -> None:
    api.post(
        "/api/v2/folders",
        json={"projectId": project_id, "environment": "prod", "name": "acme", "path": "/tenants"},
    )
    where = {"workspaceId": project_id, "environment": "prod", "secretPath": "/tenants/acme"}
    body = error_body(reader_api.get("/api/v3/secrets/raw", params=where), 403)
    assert (body["error"], body["message"]) == (
        "ForbiddenError",
        "You do not have permission to read secret values",
    )


def test_another_project_is_refused(reader_api: Api, server: RunningServer) -> None:
    body = error_body(
        reader_api.get(
            "/api/v3/secrets/raw",
            params={"workspaceId": "00000000-0000-4000-8000-000000000000", "environment": "dev"},
        ),
        404,
    )
    assert body["message"] == "Project with 00000000-0000-4000-8000-000000000000 not found"

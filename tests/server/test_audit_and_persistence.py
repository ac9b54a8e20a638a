"""The audit log, the server log (never a value, client secret or token), and restarts."""

from __future__ import annotations

from pathlib import Path

from infisical_sdk import InfisicalSDKClient

from infisical_server.testing import RunningServer, sample_config, start_server
from tests.server.support import Api, login

VALUES = ("fake-audit-value-0001", "fake-audit-value-0002", "fake-audit-value-0003")


def test_every_mutation_is_audited_without_values(server: RunningServer, api: Api, project_id: str) -> None:
    before = len(server.audit())
    api.post(
        "/api/v2/folders",
        json={"projectId": project_id, "environment": "staging", "name": "audited", "path": "/"},
    )
    where = {"workspaceId": project_id, "environment": "staging", "secretPath": "/audited"}
    api.post("/api/v3/secrets/raw/ONE", json={**where, "secretValue": VALUES[0]})
    api.post(
        "/api/v3/secrets/batch/raw",
        json={**where, "secrets": [{"secretKey": "TWO", "secretValue": VALUES[1]}]},
    )
    api.patch("/api/v3/secrets/raw/ONE", json={**where, "secretValue": VALUES[2], "newSecretName": "UNO"})
    api.delete("/api/v3/secrets/batch/raw", json={**where, "secrets": [{"secretKey": "TWO"}]})
    api.delete(
        "/api/v2/folders/audited",
        json={"projectId": project_id, "environment": "staging", "path": "/", "forceDelete": True},
    )

    entries = server.audit()[before:]
    assert [(e["action"], e["path"], e["key"]) for e in entries] == [
        ("create-folder", "/", "audited"),
        ("create-secret", "/audited", "ONE"),
        ("create-secret", "/audited", "TWO"),
        ("update-secret", "/audited", "ONE"),
        ("rename-secret", "/audited", "UNO"),
        ("delete-secret", "/audited", "TWO"),
        ("delete-folder", "/", "audited"),
    ]
    assert all(set(e) == {"identity", "time", "environment", "path", "key", "action"} for e in entries)
    assert {e["identity"] for e in entries} == {"provisioner"}
    assert not any(value in str(entries) for value in VALUES)


def test_the_server_log_holds_no_values_secrets_or_tokens(
    server: RunningServer, sdk: InfisicalSDKClient, project_id: str, folder: str
) -> None:
    sdk.secrets.create_secret_by_name(
        secret_name="LOGGED",
        secret_value="fake-never-logged-0001",
        environment_slug="dev",
        project_id=project_id,
        secret_path=folder,
    )
    sdk.secrets.list_secrets(environment_slug="dev", project_id=project_id, secret_path=folder)
    token = login(server)
    log = server.log()
    assert "POST /api/v3/secrets/raw/{secretName} -> 200" in log
    for forbidden in ("fake-never-logged-0001", server.identity()["client_secret"], token, sdk.get_token()):
        assert forbidden not in log


def test_state_persists_across_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path, sample_config())
    project_id = first.config["projects"][0]["id"]
    api = Api(first.url, login(first))
    api.post(
        "/api/v2/folders",
        json={"projectId": project_id, "environment": "prod", "name": "acme", "path": "/tenants"},
    )
    where = {"workspaceId": project_id, "environment": "prod", "secretPath": "/tenants/acme"}
    api.post("/api/v3/secrets/raw/KEPT", json={**where, "secretValue": "fake-kept-0001"})
    api.patch("/api/v3/secrets/raw/KEPT", json={**where, "secretValue": "fake-kept-0002"})
    audited = len(first.audit())

    second = first.restart()
    try:
        again = Api(second.url, login(second))
        secret = again.get("/api/v3/secrets/raw/KEPT", params=where).json()["secret"]
        assert (secret["secretValue"], secret["version"]) == ("fake-kept-0002", 2)
        assert (
            again.get("/api/v3/secrets/raw/KEPT", params={**where, "version": "1"}).json()["secret"]["secretValue"]
            == "fake-kept-0001"
        )
        assert len(second.audit()) == audited
    finally:
        second.stop()

"""Folders through the official SDK (v2), and the error cases and v1 routes through raw HTTP."""

from __future__ import annotations

import uuid

import pytest
import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError

from tests.server.support import Api, error_body

INVALID_NAME = "Invalid folder name. Only alphanumeric characters, dashes, and underscores are allowed."


def test_create_list_get_update_delete_through_the_sdk(sdk: InfisicalSDKClient, project_id: str, folder: str) -> None:
    created = sdk.folders.create_folder(
        name="acme", environment_slug="dev", project_id=project_id, path=folder, description="tenant acme"
    )
    assert created.path == f"{folder}/acme"
    assert created.version == 1
    assert created.description == "tenant acme"

    listed = sdk.folders.list_folders(project_id=project_id, environment_slug="dev", path=folder)
    assert [f.name for f in listed.folders] == ["acme"]

    fetched = sdk.folders.get_folder_by_id(created.id)
    assert fetched.path == f"{folder}/acme"
    assert fetched.projectId == project_id
    assert fetched.environment.envSlug == "dev"
    assert fetched.environment.envName == "Development"

    renamed = sdk.folders.update_folder(
        folder_id=created.id, name="acme2", environment_slug="dev", project_id=project_id, path=folder
    )
    assert renamed.path == f"{folder}/acme2"
    assert renamed.version == 2
    assert renamed.description == "tenant acme"  # not sent, so unchanged

    deleted = sdk.folders.delete_folder(
        folder_id_or_name="acme2", environment_slug="dev", project_id=project_id, path=folder
    )
    assert deleted.id == created.id
    assert sdk.folders.list_folders(project_id=project_id, environment_slug="dev", path=folder).folders == []


def test_missing_parents_are_created_like_mkdir_p(sdk: InfisicalSDKClient, project_id: str, folder: str) -> None:
    created = sdk.folders.create_folder(name="c", environment_slug="dev", project_id=project_id, path=f"{folder}/a/b")
    assert created.path == f"{folder}/a/b/c"
    deep = sdk.folders.list_folders(project_id=project_id, environment_slug="dev", path=folder, recursive=True)
    assert [(f.name, f.relativePath) for f in deep.folders] == [("a", "/a"), ("b", "/a/b"), ("c", "/a/b/c")]


def test_creating_an_existing_folder_is_400(sdk: InfisicalSDKClient, api: Api, project_id: str, folder: str) -> None:
    sdk.folders.create_folder(name="dup", environment_slug="dev", project_id=project_id, path=folder)
    with pytest.raises(APIError) as raised:
        sdk.folders.create_folder(name="dup", environment_slug="dev", project_id=project_id, path=folder)
    assert raised.value.status_code == 400
    body = error_body(
        api.post(
            "/api/v2/folders",
            json={"projectId": project_id, "environment": "dev", "name": "dup", "path": folder},
        ),
        400,
    )
    assert body["message"] == f"Folder with name 'dup' already exists in path '{folder}'"
    assert body["error"] == "BadRequest"


@pytest.mark.parametrize("name", ["has space", "dot.ted", "slash/ed", ""])
def test_invalid_folder_names_are_422(api: Api, project_id: str, name: str) -> None:
    body = error_body(
        api.post("/api/v2/folders", json={"projectId": project_id, "environment": "dev", "name": name}), 422
    )
    assert body["message"] == [
        {
            "code": "custom",
            "message": INVALID_NAME,
            "path": ["name"],
        }
    ]


def test_an_invalid_parent_path_is_400(api: Api, project_id: str) -> None:
    body = error_body(
        api.post(
            "/api/v2/folders",
            json={"projectId": project_id, "environment": "dev", "name": "ok", "path": "/bad path"},
        ),
        400,
    )
    assert body["message"] == "Invalid secret path. Only alphanumeric characters, dashes, and underscores are allowed."


def test_unknown_environment(api: Api, project_id: str) -> None:
    # Writes check permissions first, and no identity is granted an environment the project lacks.
    denied = error_body(
        api.post("/api/v2/folders", json={"projectId": project_id, "environment": "qa", "name": "x"}), 403
    )
    assert denied["error"] == "PermissionDenied"
    # Listing needs only project membership, so the lookup answers.
    missing = error_body(
        api.get("/api/v2/folders", params={"projectId": project_id, "environment": "qa", "path": "/"}), 404
    )
    assert missing["message"] == "Environment with slug 'qa' not found"


def test_listing_a_missing_path_is_empty_and_path_is_required(api: Api, project_id: str) -> None:
    query = {"projectId": project_id, "environment": "dev"}
    assert api.get("/api/v2/folders", params={**query, "path": "/no/such/path"}).json() == {"folders": []}
    body = error_body(api.get("/api/v2/folders", params=query), 422)
    assert body["message"][0]["path"] == ["path"]


def test_deleting_a_non_empty_folder_needs_force_delete(
    sdk: InfisicalSDKClient, api: Api, project_id: str, folder: str
) -> None:
    sdk.folders.create_folder(name="full", environment_slug="dev", project_id=project_id, path=folder)
    sdk.secrets.create_secret_by_name(
        secret_name="K",
        secret_path=f"{folder}/full",
        environment_slug="dev",
        project_id=project_id,
        secret_value="fake-value-0001",
    )
    request = {"projectId": project_id, "environment": "dev", "path": folder}
    body = error_body(api.delete("/api/v2/folders/full", json=request), 400)
    assert body["error"] == "deleteFolder"
    assert body["message"] == (
        'Cannot delete folder "full" because it contains resources. Use forceDelete=true to delete it forcefully.'
    )
    deleted = sdk.folders.delete_folder(
        folder_id_or_name="full",
        environment_slug="dev",
        project_id=project_id,
        path=folder,
        force_delete=True,
    )
    assert deleted.name == "full"


def test_delete_errors_name_the_missing_part(api: Api, project_id: str, folder: str) -> None:
    missing = error_body(
        api.delete("/api/v2/folders/nope", json={"projectId": project_id, "environment": "dev", "path": folder}),
        404,
    )
    assert missing["message"] == "Folder with ID 'nope' not found"
    parent = error_body(
        api.delete("/api/v2/folders/x", json={"projectId": project_id, "environment": "dev", "path": "/gone"}),
        404,
    )
    assert parent["message"] == "Folder with path '/gone' in environment with slug 'dev' not found"


def test_update_errors(sdk: InfisicalSDKClient, api: Api, project_id: str, folder: str) -> None:
    for name in ("one", "two"):
        sdk.folders.create_folder(name=name, environment_slug="dev", project_id=project_id, path=folder)
    clash = error_body(
        api.patch(
            "/api/v2/folders/one",
            json={"projectId": project_id, "environment": "dev", "name": "two", "path": folder},
        ),
        400,
    )
    assert clash["message"] == "Folder with specified name already exists"
    unknown = str(uuid.uuid4())
    missing = error_body(
        api.patch(
            f"/api/v2/folders/{unknown}",
            json={"projectId": project_id, "environment": "dev", "name": "z", "path": folder},
        ),
        404,
    )
    assert missing["message"] == f"Folder with ID '{unknown}' not found"


def test_get_by_unknown_id_is_404(api: Api) -> None:
    unknown = str(uuid.uuid4())
    assert error_body(api.get(f"/api/v2/folders/{unknown}"), 404)["message"] == f"Folder with ID '{unknown}' not found"


def test_v1_routes_take_workspace_id_and_directory(api: Api, project_id: str, folder: str) -> None:
    created = api.post(
        "/api/v1/folders",
        json={"workspaceId": project_id, "environment": "dev", "name": "old", "directory": folder},
    )
    assert created.status_code == 200, created.text
    assert created.json()["folder"]["path"] == f"{folder}/old"
    listed = api.get("/api/v1/folders", params={"workspaceId": project_id, "environment": "dev", "directory": folder})
    assert [f["name"] for f in listed.json()["folders"]] == ["old"]
    api.post(
        "/api/v3/secrets/raw/K",
        json={
            "workspaceId": project_id,
            "environment": "dev",
            "secretPath": f"{folder}/old",
            "secretValue": "fake-v",
        },
    )
    # v1 DELETE always deletes forcefully, even a folder that holds secrets.
    deleted = api.delete("/api/v1/folders/old", json={"workspaceId": project_id, "environment": "dev", "path": folder})
    assert deleted.status_code == 200, deleted.text
    assert "path" not in deleted.json()["folder"]


@pytest.mark.parametrize(("version", "project_key"), [("v2", "projectId"), ("v1", "workspaceId")])
def test_both_versions_list_422_issues_in_field_order(api: Api, version: str, project_key: str) -> None:
    def issue_paths(response: requests.Response) -> list[list[str]]:
        return [issue["path"] for issue in error_body(response, 422)["message"]]

    base = f"/api/{version}/folders"
    scope = [[project_key], ["environment"]]
    assert issue_paths(api.post(base, json={"path": 1})) == [*scope, ["name"], ["path"]]
    assert issue_paths(api.patch(f"{base}/x", json={"path": 1})) == [*scope, ["name"], ["path"]]
    # Only v2 reads forceDelete; only v2 requires the list path.
    force = [["forceDelete"]] if version == "v2" else []
    assert issue_paths(api.delete(f"{base}/x", json={"forceDelete": "yes"})) == [*scope, *force]
    required_path = [["path"]] if version == "v2" else []
    listed = api.get(base, params={"lastSecretModified": "yesterday"})
    assert issue_paths(listed) == [*scope, ["lastSecretModified"], *required_path]


def test_v1_ignores_force_delete_false_and_lists_the_root_by_default(api: Api, project_id: str, folder: str) -> None:
    scope = {"workspaceId": project_id, "environment": "dev"}
    api.post("/api/v1/folders", json={**scope, "name": "inner", "path": f"{folder}/outer"})
    deleted = api.delete("/api/v1/folders/outer", json={**scope, "path": folder, "forceDelete": False})
    assert deleted.status_code == 200, deleted.text
    root = api.get("/api/v1/folders", params=scope)
    assert folder.strip("/") in [f["name"] for f in root.json()["folders"]]

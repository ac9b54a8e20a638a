"""Single-secret routes: v3 through the official SDK, v4 and the error cases through raw HTTP."""

from __future__ import annotations

import pytest
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError

from tests.server.support import Api, error_body


def test_create_list_get_update_delete_through_the_sdk(sdk: InfisicalSDKClient, project_id: str, folder: str) -> None:
    where = {"environment_slug": "dev", "project_id": project_id, "secret_path": folder}
    created = sdk.secrets.create_secret_by_name(
        secret_name="STRIPE_KEY", secret_value="fake-stripe-key-0001", secret_comment="payments", **where
    )
    assert (created.secretKey, created.secretValue, created.version) == (
        "STRIPE_KEY",
        "fake-stripe-key-0001",
        1,
    )
    assert created.workspace == project_id
    assert created.environment == "dev"

    listed = sdk.secrets.list_secrets(**where)
    assert [(s.secretKey, s.secretValue, s.secretPath) for s in listed.secrets] == [
        ("STRIPE_KEY", "fake-stripe-key-0001", folder)
    ]

    fetched = sdk.secrets.get_secret_by_name(secret_name="STRIPE_KEY", **where)
    assert fetched.secretValue == "fake-stripe-key-0001"
    assert fetched.secretComment == "payments"

    updated = sdk.secrets.update_secret_by_name(
        current_secret_name="STRIPE_KEY", secret_value="fake-stripe-key-0002", **where
    )
    assert updated.version == 2
    assert updated.secretValue == "fake-stripe-key-0002"

    renamed = sdk.secrets.update_secret_by_name(
        current_secret_name="STRIPE_KEY", new_secret_name="STRIPE_API_KEY", **where
    )
    assert (renamed.secretKey, renamed.version) == ("STRIPE_API_KEY", 3)
    assert renamed.secretValue == ""  # as upstream: the response echoes the value sent, and none was
    assert sdk.secrets.get_secret_by_name(secret_name="STRIPE_API_KEY", **where).secretValue == "fake-stripe-key-0002"

    deleted = sdk.secrets.delete_secret_by_name(secret_name="STRIPE_API_KEY", **where)
    assert deleted.secretValue == "fake-stripe-key-0002"
    assert sdk.secrets.list_secrets(**where).secrets == []


def test_versions_increment_and_old_versions_stay_readable(
    sdk: InfisicalSDKClient, project_id: str, folder: str
) -> None:
    where = {"environment_slug": "dev", "project_id": project_id, "secret_path": folder}
    sdk.secrets.create_secret_by_name(secret_name="V", secret_value="fake-v1", **where)
    for n in (2, 3):
        assert (
            sdk.secrets.update_secret_by_name(current_secret_name="V", secret_value=f"fake-v{n}", **where).version == n
        )
    assert sdk.secrets.get_secret_by_name(secret_name="V", version="1", **where).secretValue == "fake-v1"
    assert sdk.secrets.get_secret_by_name(secret_name="V", **where).version == 3


def test_duplicate_create_is_400(sdk: InfisicalSDKClient, api: Api, project_id: str, folder: str) -> None:
    sdk.secrets.create_secret_by_name(
        secret_name="DUP",
        secret_value="fake-dup",
        environment_slug="dev",
        project_id=project_id,
        secret_path=folder,
    )
    body = error_body(
        api.post(
            "/api/v3/secrets/raw/DUP",
            json={
                "workspaceId": project_id,
                "environment": "dev",
                "secretPath": folder,
                "secretValue": "fake-x",
            },
        ),
        400,
    )
    assert (body["message"], body["error"]) == ("Secret already exists", "BadRequest")


def test_update_of_a_missing_secret_is_404(sdk: InfisicalSDKClient, api: Api, project_id: str, folder: str) -> None:
    with pytest.raises(APIError) as raised:
        sdk.secrets.update_secret_by_name(
            current_secret_name="NOPE",
            secret_value="fake-x",
            environment_slug="dev",
            project_id=project_id,
            secret_path=folder,
        )
    assert raised.value.status_code == 404
    body = error_body(
        api.patch(
            "/api/v3/secrets/raw/NOPE",
            json={"workspaceId": project_id, "environment": "dev", "secretPath": folder},
        ),
        404,
    )
    assert body["message"] == "Secret with name NOPE not found"
    gone = error_body(
        api.delete(
            "/api/v3/secrets/raw/NOPE",
            json={"workspaceId": project_id, "environment": "dev", "secretPath": folder},
        ),
        404,
    )
    assert gone["message"] == "Secret not found"


def test_renaming_onto_an_existing_key_is_400(sdk: InfisicalSDKClient, project_id: str, folder: str) -> None:
    where = {"environment_slug": "dev", "project_id": project_id, "secret_path": folder}
    for key in ("A", "B"):
        sdk.secrets.create_secret_by_name(secret_name=key, secret_value=f"fake-{key}", **where)
    with pytest.raises(APIError) as raised:
        sdk.secrets.update_secret_by_name(current_secret_name="A", new_secret_name="B", **where)
    assert (raised.value.status_code, raised.value.response["message"]) == (
        400,
        "Secret with the new name already exists",
    )


def test_missing_folder_behaviours(api: Api, project_id: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": "/no/such"}
    listed = error_body(api.get("/api/v3/secrets/raw", params=where), 404)
    assert listed["error"] == "SecretPathNotFound"
    assert listed["message"] == (
        "Folder with path '/no/such' in environment 'dev' was not found. "
        "Please ensure the environment slug and secret path is correct."
    )
    created = error_body(api.post("/api/v3/secrets/raw/K", json={**where, "secretValue": "fake-k"}), 404)
    assert created["error"] == "CreateSecret"
    assert created["message"] == "Folder with path '/no/such' in environment with slug 'dev' not found"
    assert error_body(api.get("/api/v3/secrets/raw/K", params=where), 404)["error"] == "GetSecretByName"
    # secretPath gets no leading slash added, so a relative path never matches a folder
    assert (
        error_body(api.get("/api/v3/secrets/raw", params={**where, "secretPath": "no"}), 404)["error"]
        == "SecretPathNotFound"
    )


@pytest.mark.parametrize("name", ["has:colon", "  "])
def test_invalid_secret_names_are_422(api: Api, project_id: str, folder: str, name: str) -> None:
    body = error_body(
        api.post(
            f"/api/v3/secrets/raw/{name}",
            json={
                "workspaceId": project_id,
                "environment": "dev",
                "secretPath": folder,
                "secretValue": "fake",
            },
        ),
        422,
    )
    assert body["error"] == "ValidationFailure"
    assert body["message"][0]["path"] == ["secretName"]


def test_key_rules_apply_to_new_names_and_batch_keys(api: Api, project_id: str, folder: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    api.post("/api/v3/secrets/raw/OK", json={**where, "secretValue": "fake-ok"})
    renamed = error_body(api.patch("/api/v3/secrets/raw/OK", json={**where, "newSecretName": "a/b"}), 422)
    assert renamed["message"] == [
        {
            "code": "custom",
            "message": "Secret name cannot contain colon or forward slash.",
            "path": ["newSecretName"],
        }
    ]
    batch = error_body(
        api.post(
            "/api/v3/secrets/batch/raw",
            json={**where, "secrets": [{"secretKey": "x:y", "secretValue": "fake"}]},
        ),
        422,
    )
    assert batch["message"][0]["path"] == ["secrets", 0, "secretKey"]


def test_values_are_trimmed_but_keep_one_trailing_newline(api: Api, project_id: str, folder: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    api.post("/api/v3/secrets/raw/PADDED", json={**where, "secretValue": "  fake-padded  "})
    api.post("/api/v3/secrets/raw/PEM", json={**where, "secretValue": "fake-line-1\nfake-line-2\n"})
    values = {s["secretKey"]: s["secretValue"] for s in api.get("/api/v3/secrets/raw", params=where).json()["secrets"]}
    assert values == {"PADDED": "fake-padded", "PEM": "fake-line-1\nfake-line-2\n"}


def test_query_booleans_accept_only_true_and_false(api: Api, project_id: str, folder: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    body = error_body(api.get("/api/v3/secrets/raw", params={**where, "recursive": "True"}), 422)
    assert body["message"][0]["code"] == "invalid_enum_value"
    assert body["message"][0]["path"] == ["recursive"]


def test_view_secret_value_false_hides_values(api: Api, project_id: str, folder: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    api.post("/api/v3/secrets/raw/HIDE", json={**where, "secretValue": "fake-hidden"})
    secret = api.get("/api/v3/secrets/raw", params={**where, "viewSecretValue": "false"}).json()["secrets"][0]
    assert (secret["secretValue"], secret["secretValueHidden"]) == ("<hidden-by-infisical>", True)


def test_recursive_listing_and_reference_expansion(
    sdk: InfisicalSDKClient, api: Api, project_id: str, folder: str
) -> None:
    sdk.folders.create_folder(name="child", environment_slug="dev", project_id=project_id, path=folder)
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": folder}
    api.post("/api/v3/secrets/raw/HOST", json={**where, "secretValue": "fake-host"})
    child = folder.strip("/") + ".child"
    api.post(
        "/api/v3/secrets/raw/URL",
        json={
            **where,
            "secretPath": f"{folder}/child",
            "secretValue": f"https://${{dev.{child}.USER}}@${{HOST}}",
        },
    )
    api.post(
        "/api/v3/secrets/raw/USER",
        json={**where, "secretPath": f"{folder}/child", "secretValue": "fake-user"},
    )
    deep = api.get(
        "/api/v3/secrets/raw", params={**where, "recursive": "true", "expandSecretReferences": "true"}
    ).json()
    paths = {s["secretKey"]: (s["secretPath"], s["secretValue"]) for s in deep["secrets"]}
    # ${HOST} is looked up beside URL (in child), where it does not exist, so it stays as written.
    assert paths == {
        "HOST": (folder, "fake-host"),
        "URL": (f"{folder}/child", "https://fake-user@${HOST}"),
        "USER": (f"{folder}/child", "fake-user"),
    }
    raw = api.get("/api/v3/secrets/raw/URL", params={**where, "secretPath": f"{folder}/child"}).json()["secret"]
    assert raw["secretValue"] == f"https://${{dev.{child}.USER}}@${{HOST}}"


def test_v4_routes_use_project_id(api: Api, project_id: str, folder: str) -> None:
    where = {"projectId": project_id, "environment": "dev", "secretPath": folder}
    created = api.post("/api/v4/secrets/K4", json={**where, "secretValue": "fake-v4"})
    assert created.status_code == 200, created.text
    assert created.json()["secret"]["version"] == 1
    assert api.get("/api/v4/secrets/K4", params=where).json()["secret"]["secretValue"] == "fake-v4"
    updated = api.patch("/api/v4/secrets/K4", json={**where, "secretValue": "fake-v4b"}).json()["secret"]
    assert (updated["version"], updated["secretValueHidden"]) == (2, False)
    assert [s["secretKey"] for s in api.get("/api/v4/secrets", params=where).json()["secrets"]] == ["K4"]
    assert api.delete("/api/v4/secrets/K4", json=where).json()["secret"]["secretKey"] == "K4"
    missing = error_body(api.get("/api/v4/secrets", params={"environment": "dev"}), 400)
    assert missing["message"] == "Missing project id or environment"
    assert error_body(api.post("/api/v4/secrets/K4", json={"environment": "dev", "secretValue": "fake"}), 422)[
        "message"
    ][0]["path"] == ["projectId"]

"""Batch endpoints (v3 ``/api/v3/secrets/batch/raw`` and v4 ``/api/v4/secrets/batch``): atomic, with modes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.support import Api, error_body

BATCH = "/api/v3/secrets/batch/raw"


def values(api: Api, where: dict[str, str]) -> dict[str, tuple[str, int]]:
    query = {k: v for k, v in where.items() if k != "projectId"}
    secrets: list[dict[str, Any]] = api.get("/api/v3/secrets/raw", params=query).json()["secrets"]
    return {s["secretKey"]: (s["secretValue"], s["version"]) for s in secrets}


@pytest.fixture
def where(project_id: str, folder: str) -> dict[str, str]:
    return {"workspaceId": project_id, "environment": "dev", "secretPath": folder}


def test_create_update_delete(api: Api, where: dict[str, str]) -> None:
    created = api.post(
        BATCH,
        json={
            **where,
            "secrets": [
                {"secretKey": "A", "secretValue": "fake-a"},
                {"secretKey": "B", "secretValue": "fake-b"},
            ],
        },
    )
    assert created.status_code == 200, created.text
    assert [s["secretKey"] for s in created.json()["secrets"]] == ["A", "B"]

    updated = api.patch(BATCH, json={**where, "secrets": [{"secretKey": "A", "secretValue": "fake-a2"}]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["secrets"][0]["secretValueHidden"] is False
    assert values(api, where) == {"A": ("fake-a2", 2), "B": ("fake-b", 1)}

    deleted = api.delete(BATCH, json={**where, "secrets": [{"secretKey": "A"}, {"secretKey": "B", "type": "shared"}]})
    assert deleted.status_code == 200, deleted.text
    assert values(api, where) == {}


def test_create_is_atomic_when_one_key_exists(api: Api, where: dict[str, str]) -> None:
    api.post(BATCH, json={**where, "secrets": [{"secretKey": "OLD", "secretValue": "fake-old"}]})
    body = error_body(
        api.post(
            BATCH,
            json={
                **where,
                "secrets": [
                    {"secretKey": "NEW", "secretValue": "fake-new"},
                    {"secretKey": "OLD", "secretValue": "fake-x"},
                ],
            },
        ),
        400,
    )
    assert body["message"] == "Secret already exists: OLD"
    assert values(api, where) == {"OLD": ("fake-old", 1)}


def test_update_modes(api: Api, where: dict[str, str]) -> None:
    api.post(BATCH, json={**where, "secrets": [{"secretKey": "HAVE", "secretValue": "fake-have"}]})
    items = [
        {"secretKey": "HAVE", "secretValue": "fake-have2"},
        {"secretKey": "MISSING", "secretValue": "fake-missing"},
    ]
    body = error_body(api.patch(BATCH, json={**where, "secrets": items}), 404)
    assert body["message"] == f"Secret does not exist: MISSING in path {where['secretPath']}"
    assert values(api, where) == {"HAVE": ("fake-have", 1)}  # nothing applied

    assert api.patch(BATCH, json={**where, "mode": "ignore", "secrets": items}).status_code == 200
    assert values(api, where) == {"HAVE": ("fake-have2", 2)}

    upserted = api.patch(BATCH, json={**where, "mode": "upsert", "secrets": items})
    assert [s["version"] for s in upserted.json()["secrets"]] == [3, 1]
    assert values(api, where) == {"HAVE": ("fake-have2", 3), "MISSING": ("fake-missing", 1)}

    assert error_body(api.patch(BATCH, json={**where, "mode": "sometimes", "secrets": items}), 422)["message"][0][
        "path"
    ] == ["mode"]


def test_update_items_may_name_their_own_path_and_a_new_name(api: Api, where: dict[str, str], project_id: str) -> None:
    api.post(
        "/api/v2/folders",
        json={"projectId": project_id, "environment": "dev", "name": "sub", "path": where["secretPath"]},
    )
    sub = f"{where['secretPath']}/sub"
    api.post(BATCH, json={**where, "secrets": [{"secretKey": "TOP", "secretValue": "fake-top"}]})
    api.post(BATCH, json={**where, "secretPath": sub, "secrets": [{"secretKey": "LOW", "secretValue": "fake-low"}]})
    response = api.patch(
        BATCH,
        json={
            **where,
            "secrets": [
                {"secretKey": "TOP", "newSecretName": "TOP2"},
                {"secretKey": "LOW", "secretPath": sub, "secretValue": "fake-low2"},
            ],
        },
    )
    assert response.status_code == 200, response.text
    assert values(api, where) == {"TOP2": ("fake-top", 2)}
    assert values(api, {**where, "secretPath": sub}) == {"LOW": ("fake-low2", 2)}


def test_delete_is_atomic_when_one_key_is_missing(api: Api, where: dict[str, str]) -> None:
    api.post(BATCH, json={**where, "secrets": [{"secretKey": "KEEP", "secretValue": "fake-keep"}]})
    body = error_body(
        api.delete(BATCH, json={**where, "secrets": [{"secretKey": "KEEP"}, {"secretKey": "GHOST"}]}), 404
    )
    assert body["message"].startswith("One or more secrets does not exist")
    assert values(api, where) == {"KEEP": ("fake-keep", 1)}


def test_batches_into_a_missing_folder(api: Api, project_id: str) -> None:
    where = {"workspaceId": project_id, "environment": "dev", "secretPath": "/not/there"}
    item = [{"secretKey": "K", "secretValue": "fake-k"}]
    assert error_body(api.post(BATCH, json={**where, "secrets": item}), 404)["error"] == "CreateManySecret"
    assert error_body(api.patch(BATCH, json={**where, "secrets": item}), 404)["error"] == "UpdateManySecret"
    assert (
        error_body(api.delete(BATCH, json={**where, "secrets": [{"secretKey": "K"}]}), 404)["error"]
        == "DeleteManySecret"
    )


def test_empty_batches_are_422(api: Api, where: dict[str, str]) -> None:
    body = error_body(api.post(BATCH, json={**where, "secrets": []}), 422)
    assert body["message"][0] == {
        "code": "too_small",
        "minimum": 1,
        "type": "array",
        "inclusive": True,
        "exact": False,
        "message": "Array must contain at least 1 element(s)",
        "path": ["secrets"],
    }


def test_v4_batch(api: Api, project_id: str, folder: str) -> None:
    where = {"projectId": project_id, "environment": "dev", "secretPath": folder}
    assert (
        api.post(
            "/api/v4/secrets/batch",
            json={**where, "secrets": [{"secretKey": "B4", "secretValue": "fake-b4"}]},
        ).status_code
        == 200
    )
    assert (
        api.patch(
            "/api/v4/secrets/batch",
            json={**where, "secrets": [{"secretKey": "B4", "secretValue": "fake-b4b"}]},
        ).status_code
        == 200
    )
    assert values(api, {"workspaceId": project_id, "environment": "dev", "secretPath": folder}) == {
        "B4": ("fake-b4b", 2)
    }
    assert api.delete("/api/v4/secrets/batch", json={**where, "secrets": [{"secretKey": "B4"}]}).status_code == 200


def _new_folder(api: Api, project_id: str, parent: str, name: str) -> str:
    body = {"projectId": project_id, "environment": "dev", "name": name, "path": parent}
    assert api.post("/api/v2/folders", json=body).status_code == 200
    return f"{parent}/{name}"


def test_one_upsert_writes_many_folders_by_item_path(api: Api, where: dict[str, str], project_id: str) -> None:
    """What the client's coalesced writes rely on: ``mode: upsert`` with a ``secretPath`` per item creates
    missing keys and updates existing ones in each named folder, in one request."""
    one = _new_folder(api, project_id, where["secretPath"], "one")
    two = _new_folder(api, project_id, where["secretPath"], "two")
    api.post(BATCH, json={**where, "secretPath": one, "secrets": [{"secretKey": "OLD", "secretValue": "fake-old"}]})
    items = [
        {"secretKey": "OLD", "secretValue": "fake-old2", "secretPath": one},
        {"secretKey": "NEW", "secretValue": "fake-new", "secretPath": one},
        {"secretKey": "NEW", "secretValue": "fake-new-two", "secretPath": two},
    ]
    response = api.patch(
        BATCH, json={"workspaceId": project_id, "environment": "dev", "mode": "upsert", "secrets": items}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["secrets"]) == 3
    assert values(api, {**where, "secretPath": one}) == {"OLD": ("fake-old2", 2), "NEW": ("fake-new", 1)}
    assert values(api, {**where, "secretPath": two}) == {"NEW": ("fake-new-two", 1)}


def test_an_upsert_naming_one_missing_folder_writes_nothing(api: Api, where: dict[str, str], project_id: str) -> None:
    """Upstream looks up every item's folder first: one missing answers 404 ``UpdateManySecret`` (with its
    literal 'null' path, so the answer does not say which) and no folder of the batch is written."""
    here = _new_folder(api, project_id, where["secretPath"], "here")
    items = [
        {"secretKey": "K", "secretValue": "fake-k", "secretPath": here},
        {"secretKey": "K", "secretValue": "fake-k", "secretPath": f"{where['secretPath']}/gone"},
    ]
    body = error_body(api.patch(BATCH, json={**where, "mode": "upsert", "secrets": items}), 404)
    assert (body["error"], body["message"]) == (
        "UpdateManySecret",
        "Folder with path 'null' in environment with slug 'dev' not found",
    )
    assert values(api, {**where, "secretPath": here}) == {}


def test_a_body_over_one_mebibyte_is_refused_whole(api: Api, where: dict[str, str]) -> None:
    """Fastify's default body limit (1 MiB): the parser's 413 reaches Infisical's catch-all error handler,
    which answers 500 "Something went wrong" and closes the connection; nothing is written."""
    big = [{"secretKey": f"K{i}", "secretValue": "fake-" + "x" * 1000} for i in range(1100)]
    response = api.post(BATCH, json={**where, "secrets": big})
    body = error_body(response, 500)
    assert (body["error"], body["message"]) == ("InternalServerError", "Something went wrong")
    assert response.headers["connection"] == "close"
    assert values(api, where) == {}
    fits = api.post(BATCH, json={**where, "secrets": big[:900]})
    assert fits.status_code == 200, fits.text[:200]

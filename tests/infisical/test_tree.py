"""One recursive listing for a whole environment: every folder's secrets, grouped by each one's secretPath."""

from __future__ import annotations

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import InfisicalClient


def test_a_whole_environment_in_one_request_with_values_or_names_only(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("staging", path, upsert={"STRIPE_SECRET_KEY": "fake-stripe-tree-0001"})
    client.apply_secrets("staging", f"{path}-b", upsert={"A_KEY": "fake-a-tree", "B_KEY": "fake-b-tree"})
    client.apply_secrets("staging", "/hono-api-tree", upsert={"EMAIL_FROM": "fake-sender-tree"})
    client.ensure_folder("staging", f"{path}-empty")
    server.reset_requests()

    tree = client.list_tree("staging")
    keys = client.list_tree_keys("staging", "/tenants")

    assert {folder: tree[folder] for folder in (path, f"{path}-b", "/hono-api-tree")} == {
        path: {"STRIPE_SECRET_KEY": "fake-stripe-tree-0001"},
        f"{path}-b": {"A_KEY": "fake-a-tree", "B_KEY": "fake-b-tree"},
        "/hono-api-tree": {"EMAIL_FROM": "fake-sender-tree"},
    }
    assert f"{path}-empty" not in tree  # a folder without secrets does not appear
    assert keys[f"{path}-b"] == ["A_KEY", "B_KEY"]
    assert "/hono-api-tree" not in keys
    assert server.request_counts() == {"GET /api/v3/secrets/raw": 2}
    assert client.list_tree("staging", "/no-such-folder") == {}

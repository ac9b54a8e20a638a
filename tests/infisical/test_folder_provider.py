"""Issue 13, item 5: the folder provider called directly (no engine) against the local Infisical server.
Destroy, decommission and a dropped store delete only what the stack wrote: keys and subfolders added by
hand stay, and a folder is deleted only when the stack created it and nothing else is left in it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components import providers
from infisical_server.testing import RunningServer
from tenant_secrets.engine.reconcile import desired_fingerprints
from tenant_secrets.infisical import InfisicalClient
from tenant_secrets.secret.values import fingerprint_key
from tenant_secrets.tenants_file.sources import ConfigSource, describe
from tests.infisical.conftest import credentials

DERIVATION = os.urandom(32).hex()


@pytest.fixture
def client(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[InfisicalClient]:
    creds = credentials(server)
    for name, value in {
        "INFISICAL_SITE_URL": creds.site_url,
        "INFISICAL_CLIENT_ID": creds.client_id,
        "INFISICAL_CLIENT_SECRET": creds.client_secret,
        "INFISICAL_PROJECT_ID": creds.project_id,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(providers, "_local", threading.local())
    client = InfisicalClient(creds)
    yield client
    for path in ("/hono-api", "/tenants/acme"):
        client.delete_folder("dev", path)


@pytest.fixture
def provider() -> providers.InfisicalFolderProvider:
    configured = providers.InfisicalFolderProvider()
    config = {"tenant-secrets:derivationKey": DERIVATION, "tenant-secrets:environment": "dev"}
    configured.configure(ConfigureRequest(Config(config, "tenant-secrets")))
    return configured


def props(
    provider: providers.InfisicalFolderProvider,
    owner: str,
    path: str,
    values: dict[str, str],
    *,
    decommission: bool = False,
) -> dict[str, Any]:
    """The folder's inputs, its values in the stack's `secrets` config as the provider reads them."""
    fp_key = fingerprint_key(bytes.fromhex(DERIVATION))
    assert provider._config is not None
    provider._config["secrets"] = json.dumps({owner: values})
    return {
        "owner": owner,
        "environment": "dev",
        "path": path,
        "decommission": decommission,
        "decommissioned": [],
        "fingerprints": desired_fingerprints(owner, values, fp_key),
        "sources": {key: describe(ConfigSource((owner, key))) for key in values},
    }


def test_destroy_of_a_folder_made_by_hand_leaves_its_other_keys_and_subfolders(
    client: InfisicalClient, provider: providers.InfisicalFolderProvider
) -> None:
    client.apply_secrets("dev", "/hono-api", upsert={"EMAIL_FROM": "fake@example.test"})
    client.ensure_folder("dev", "/hono-api/by-hand")
    outs = provider.create(props(provider, "hono-api", "/hono-api", {"SENTRY_DSN": "fake-sentry-dsn"})).outs
    assert outs is not None and outs["created_folder"] is False
    assert client.list_secrets("dev", "/hono-api") == {
        "EMAIL_FROM": "fake@example.test",
        "SENTRY_DSN": "fake-sentry-dsn",
    }

    provider.delete("dev:/hono-api", outs)
    assert client.list_secrets("dev", "/hono-api") == {"EMAIL_FROM": "fake@example.test"}
    assert client.list_folders("dev", "/hono-api") == ["by-hand"]


def test_a_folder_the_stack_made_goes_only_when_nothing_else_is_in_it(
    client: InfisicalClient, provider: providers.InfisicalFolderProvider
) -> None:
    outs = provider.create(props(provider, "acme", "/tenants/acme", {"STRIPE_SECRET_KEY": "fake-acme-stripe"})).outs
    assert outs is not None and outs["created_folder"] is True
    client.apply_secrets("dev", "/tenants/acme", upsert={"ADDED_BY_HAND": "fake-by-hand"})
    provider.delete("dev:/tenants/acme", outs)
    assert client.list_secrets("dev", "/tenants/acme") == {"ADDED_BY_HAND": "fake-by-hand"}

    client.apply_secrets("dev", "/tenants/acme", upsert={}, delete=["ADDED_BY_HAND"])
    provider.delete("dev:/tenants/acme", outs)
    assert not client.folder_exists("dev", "/tenants/acme")


def test_decommission_deletes_the_managed_keys_only(
    client: InfisicalClient, provider: providers.InfisicalFolderProvider
) -> None:
    declared = props(
        provider, "acme", "/tenants/acme", {"STRIPE_SECRET_KEY": "fake-acme-stripe", "SENTRY_DSN": "fake-dsn"}
    )
    outs = provider.create(declared).outs
    assert outs is not None
    client.ensure_folder("dev", "/tenants/acme/by-hand")
    client.apply_secrets("dev", "/tenants/acme", upsert={"ADDED_BY_HAND": "fake-by-hand"})

    after = provider.update(
        "dev:/tenants/acme", outs, props(provider, "acme", "/tenants/acme", {}, decommission=True)
    ).outs
    assert after is not None and after["created_folder"] is True
    assert client.list_secrets("dev", "/tenants/acme") == {"ADDED_BY_HAND": "fake-by-hand"}
    assert client.list_folders("dev", "/tenants/acme") == ["by-hand"]


def test_a_move_adopts_a_folder_without_a_write_and_counts_a_tenants_folder_as_made_by_the_stack(
    client: InfisicalClient, provider: providers.InfisicalFolderProvider, server: RunningServer
) -> None:
    """The create of a run that moves the stack between layouts (docs/decisions/0053): the folder held until now
    by the old layout's resource is read, not created, and nothing equal is written; a tenant's folder counts
    as made by the stack (a later decommission may delete it once nothing else is in it), a platform folder as
    its write finds it."""
    client.apply_secrets("dev", "/tenants/acme", upsert={"STRIPE_SECRET_KEY": "fake-acme-stripe"})
    client.apply_secrets("dev", "/hono-api", upsert={"SENTRY_DSN": "fake-sentry-dsn"})
    server.reset_requests()
    tenant = provider.adopt(props(provider, "acme", "/tenants/acme", {"STRIPE_SECRET_KEY": "fake-acme-stripe"})).outs
    platform = provider.adopt(props(provider, "hono-api", "/hono-api", {"SENTRY_DSN": "fake-sentry-dsn"})).outs
    assert [r for r in server.request_counts() if not r.startswith("GET") and "/auth/" not in r] == []
    assert tenant is not None and tenant["created_folder"] is True
    assert platform is not None and platform["created_folder"] is False

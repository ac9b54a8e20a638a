"""The master key publication provider called directly (no engine), against the local Infisical server:
what its diff tells the engine, what it writes and withdraws, and what it refuses."""

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
from tenant_secrets.infisical import InfisicalClient
from tenant_secrets.secret.keyfolder import published_values
from tenant_secrets.secret.values import fingerprint, fingerprint_key
from tests.infisical.conftest import credentials

KEY_1, KEY_2, DERIVATION = os.urandom(32).hex(), os.urandom(32).hex(), os.urandom(32).hex()


@pytest.fixture
def client(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[InfisicalClient]:
    """The server's identity in the environment, where the provider reads it; a fresh provider thread state."""
    creds = credentials(server)
    env = {
        "INFISICAL_SITE_URL": creds.site_url,
        "INFISICAL_CLIENT_ID": creds.client_id,
        "INFISICAL_CLIENT_SECRET": creds.client_secret,
        "INFISICAL_PROJECT_ID": creds.project_id,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(providers, "_local", threading.local())
    client = InfisicalClient(creds)
    yield client
    client.delete_folder("dev", "/hono-api")


def provider(keys: dict[str, str]) -> providers.MasterKeyProvider:
    raw = {"tenant-secrets:masterKeys": json.dumps(keys), "tenant-secrets:derivationKey": DERIVATION}
    configured = providers.MasterKeyProvider()
    configured.configure(ConfigureRequest(Config(raw, "tenant-secrets")))
    return configured


def props(keys: dict[int, str], *, versions: tuple[int, ...] = (), current: int | None = None) -> dict[str, Any]:
    fp_key = fingerprint_key(bytes.fromhex(DERIVATION))
    values = published_values(keys, versions=versions, current=current)
    return {
        "owner": "hono-api",
        "environment": "dev",
        "path": "/hono-api",
        "current": current,
        "fingerprints": {k: fingerprint(fp_key, "hono-api", k, v) for k, v in values.items()},
    }


def test_versions_are_published_then_withdrawn_and_the_folders_other_keys_stay(client: InfisicalClient) -> None:
    client.apply_secrets("dev", "/hono-api", upsert={"EMAIL_FROM": "fake@example.test"})
    both = provider({"v1": KEY_1, "v2": KEY_2})
    created = both.create(props({1: KEY_1, 2: KEY_2}, versions=(1, 2)))
    assert client.list_secrets("dev", "/hono-api") == {
        "EMAIL_FROM": "fake@example.test",
        "MASTER_ENCRYPTION_KEY_V1": KEY_1,
        "MASTER_ENCRYPTION_KEY_V2": KEY_2,
    }
    outs = created.outs
    assert outs is not None
    assert KEY_1 not in json.dumps(outs) and KEY_2 not in json.dumps(outs)

    # the run after the last row left v1: the engine is told to diff the inputs (it names `fingerprints`)
    news = props({1: KEY_1, 2: KEY_2}, versions=(2,))
    assert both.diff("id", outs, news).changes is None
    assert both.diff("id", outs, props({1: KEY_1, 2: KEY_2}, versions=(1, 2))).changes is False
    both.update("id", outs, news)
    assert client.list_secrets("dev", "/hono-api") == {
        "EMAIL_FROM": "fake@example.test",
        "MASTER_ENCRYPTION_KEY_V2": KEY_2,
    }

    # delete withdraws what it published, and nothing else
    both.delete("id", {**news, "declared_fingerprints": news["fingerprints"]})
    assert client.list_secrets("dev", "/hono-api") == {"EMAIL_FROM": "fake@example.test"}


def test_a_key_changed_by_hand_shows_as_drift_and_is_restored(client: InfisicalClient) -> None:
    current = provider({"v1": KEY_1})
    outs = current.create(props({1: KEY_1}, current=1)).outs
    assert outs is not None
    client.apply_secrets("dev", "/hono-api", upsert={"MASTER_ENCRYPTION_KEY": KEY_2})
    refreshed = current.read("id", outs).outs
    assert refreshed is not None
    assert current.diff("id", refreshed, props({1: KEY_1}, current=1)).changes is True
    current.update("id", refreshed, props({1: KEY_1}, current=1))
    assert client.list_secrets("dev", "/hono-api")["MASTER_ENCRYPTION_KEY"] == KEY_1


def test_a_key_that_is_not_the_one_the_plan_fingerprinted_is_not_written(client: InfisicalClient) -> None:
    planned = props({1: KEY_1}, current=1)
    with pytest.raises(providers.ProviderError) as err:
        provider({"v1": KEY_2}).create(planned)
    assert "MASTER_ENCRYPTION_KEY would not be what the plan showed" in str(err.value)
    assert KEY_1 not in str(err.value) and KEY_2 not in str(err.value)
    assert client.list_secrets("dev", "/hono-api") == {}

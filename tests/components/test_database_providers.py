"""The database providers' order of work, on a real PostgreSQL without the engine: what runs before what
when the program's preflight could not stop a bad run (a row written between its look and the apply)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import psycopg
import pytest
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider

from components import providers
from tenant_secrets.secret.envelope import Keyring, KeyringError
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants
from tests.conftest import ACME, fake_value
from tests.store.helpers import audit_rows, secret_rows


@pytest.fixture(autouse=True)
def database_url(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The providers read DATABASE_URL at call time and keep one connection per thread: a fresh one here."""
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    monkeypatch.setattr(providers, "_local", threading.local())
    yield
    conn = getattr(providers._local, "db", None)
    if conn is not None:
        conn.close()


P = TypeVar("P", bound=ResourceProvider)


def configured(provider: P, settings: StoreSettings, keys: dict[int, bytes], active: int) -> P:
    """The provider as the engine hands it the stack's config (namespaced keys, string values)."""
    raw = {
        "tenant-secrets:masterKeys": json.dumps({f"v{v}": k.hex() for v, k in keys.items()}),
        "tenant-secrets:activeKeyVersion": str(active),
        "tenant-secrets:derivationKey": os.urandom(32).hex(),
        "tenant-secrets:createCompanies": str(settings.create_companies_table).lower(),
        "tenant-secrets:historyRetention": str(settings.history_retention),
    }
    provider.configure(ConfigureRequest(Config(raw, "tenant-secrets")))
    return provider


def schema_props(keys: dict[int, bytes], active: int, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": "x",
        "table_prefix": "",
        "create_companies": True,
        "key_version": active,
        "key_versions": sorted(str(v) for v in keys),
        "rotation_pending": False,
        "rotation_batch_size": 500,
        **extra,
    }


def test_a_keyring_without_a_version_in_use_stops_the_schema_before_roles_or_rotation(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, {ACME: TenantChange({"A": fake_value("a")})}, keyring)
    before, audited = secret_rows(db), audit_rows(db)
    role = f"tenant_app_{os.urandom(4).hex()}"
    keys = {2: os.urandom(32)}
    props = schema_props(keys, 2, app_role=role, app_role_password="fake-app-password-0001")
    schema = configured(providers.DatabaseSchemaProvider(), settings, keys, 2)

    with pytest.raises(
        providers.ProviderError, match=r"lacks key versions still in use \(version 1: 1 secrets\)"
    ) as err:
        schema.update("company_secrets", {}, props)
    assert str(err.value).startswith("database schema company_secrets: the keyring")
    assert isinstance(err.value.__cause__, KeyringError)

    assert db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None
    assert secret_rows(db) == before
    assert audit_rows(db) == audited


def test_decommissioning_a_tenant_whose_company_is_gone_succeeds(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, {ACME: TenantChange({"A": fake_value("a")})}, keyring)
    db.execute("DELETE FROM companies WHERE id = %s", [ACME])  # the application deleted it: rows cascade
    tenant = configured(providers.DatabaseTenantProvider(), settings, {1: keyring.key(1)}, 1)
    props = {"owner": "acme", "decommission": True, "decommissioned": [], "company_id": ACME, "table_prefix": ""}
    outs = tenant.update(ACME, {**props, "decommission": False, "fingerprints": {"A": "0" * 16}}, props).outs
    assert outs is not None
    assert (outs["company_id"], outs["fingerprints"]) == (ACME, {})
    tenant.delete(ACME, props)  # the entry removed afterwards: nothing left to delete, no error

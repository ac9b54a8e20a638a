"""The database providers' order of work, on a real PostgreSQL without the engine: what runs before what
when the program's preflight could not stop a bad run (a row written between its look and the apply)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from components import providers
from tenant_secrets.envelope import Keyring, KeyringError
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants
from tests.db.conftest import ACME, fake_value
from tests.db.helpers import audit_rows, secret_rows


@pytest.fixture(autouse=True)
def database_url(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The providers read DATABASE_URL at call time and keep one connection per thread: a fresh one here."""
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    monkeypatch.setattr(providers, "_local", threading.local())
    yield
    conn = getattr(providers._local, "db", None)
    if conn is not None:
        conn.close()


def schema_props(keys: dict[int, bytes], active: int, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": "x",
        "table_prefix": "",
        "create_companies": True,
        "history_retention": 10,
        "keyring": {str(v): k.hex() for v, k in keys.items()},
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
    props = schema_props({2: os.urandom(32)}, 2, app_role=role, app_role_password="fake-app-password-0001")

    with pytest.raises(KeyringError, match=r"lacks key versions still in use \(version 1: 1 secrets\)"):
        providers.DatabaseSchemaProvider().update("company_secrets", {}, props)

    assert db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None
    assert secret_rows(db) == before
    assert audit_rows(db) == audited


def test_decommissioning_a_tenant_whose_company_is_gone_succeeds(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, {ACME: TenantChange({"A": fake_value("a")})}, keyring)
    db.execute("DELETE FROM companies WHERE id = %s", [ACME])  # the application deleted it: rows cascade
    tenant = providers.DatabaseTenantProvider()
    props = {
        "owner": "acme",
        "decommission": True,
        "decommissioned": [],
        "company_id": ACME,
        "table_prefix": "",
        "create_companies": False,
        "history_retention": 10,
        "keyring": {"1": keyring.key(1).hex()},
        "key_version": 1,
        "fingerprint_key": os.urandom(32).hex(),
    }
    outs = tenant.update(ACME, {**props, "decommission": False, "fingerprints": {"A": "0" * 16}}, props).outs
    assert outs is not None
    assert (outs["company_id"], outs["fingerprints"]) == (ACME, {})
    tenant.delete(ACME, props)  # the entry removed afterwards: nothing left to delete, no error

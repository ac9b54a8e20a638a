"""Batching: a provisioning run costs a fixed handful of statements, whatever the number of rows."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psycopg

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants, ensure_companies, rotate
from tests.conftest import fake_value

COMPANIES = 200
KEYS_PER_COMPANY = 5
MAX_STATEMENTS = 20


def statements(conn: psycopg.Connection[Any], action: Callable[[], object]) -> int:
    """Statements the server ran for ``action`` in this database, per pg_stat_statements."""
    found = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
    assert found is not None
    conn.execute("SELECT pg_stat_statements_reset(0, %s::oid, 0)", [found[0]])
    action()
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = %s::oid AND query NOT LIKE %s",
        [found[0], "%pg_stat_statements%"],
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_1000_secrets_for_200_companies_take_a_bounded_number_of_statements(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    ids = ensure_companies(db, settings, {f"tenant{n:03}": (None, None) for n in range(COMPANIES)})

    def desired(version: str) -> dict[str, TenantChange]:
        return {
            cid: TenantChange({f"KEY_{k}": fake_value(f"{version}-{cid[:8]}-{k}") for k in range(KEYS_PER_COMPANY)})
            for cid in ids.values()
        }

    created = statements(db, lambda: apply_tenants(db, settings, desired("v1"), keyring))
    unchanged = statements(db, lambda: apply_tenants(db, settings, desired("v1"), keyring))
    updated = statements(db, lambda: apply_tenants(db, settings, desired("v2"), keyring))
    rotated = statements(db, lambda: rotate(db, settings, Keyring({1: keyring.key(1), 2: os.urandom(32)}, 2)))
    print(f"statements: create {created}, no-op {unchanged}, update {updated}, rotate(batch 500) {rotated}")

    assert db.execute("SELECT count(*) FROM company_secrets").fetchone() == (COMPANIES * KEYS_PER_COMPANY,)
    assert created < MAX_STATEMENTS
    assert unchanged < MAX_STATEMENTS
    assert updated < MAX_STATEMENTS
    # 1,000 rows + 1,000 history entries in batches of 500: 4 batches of a few statements each, + checks.
    assert rotated < 40

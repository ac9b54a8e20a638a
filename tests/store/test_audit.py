"""The audit trail: one row per changed secret, with who and what, and never a value or a ciphertext."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants, rotate
from tests.conftest import ACME, GLOBEX, fake_value
from tests.store.helpers import audit_rows


def test_insert_update_reencrypt_delete_are_audited_without_values(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    ciphertexts: set[str] = set()

    def remember() -> None:
        for table in ("company_secrets", "company_secret_versions"):
            query = sql.SQL("SELECT secret_value_encrypted FROM {}").format(sql.Identifier(table))
            ciphertexts.update(r[0] for r in db.execute(query))

    apply_tenants(db, settings, {ACME: TenantChange({"API_KEY": fake_value("v1"), "TOKEN": fake_value("t")})}, keyring)
    remember()
    apply_tenants(db, settings, {ACME: TenantChange({"API_KEY": fake_value("v2")})}, keyring)
    remember()
    two = Keyring({1: keyring.key(1), 2: os.urandom(32)}, active=2)
    rotate(db, settings, two)
    remember()
    apply_tenants(db, settings, {ACME: TenantChange(delete=["TOKEN"])}, two)

    trail = audit_rows(db)
    assert trail[:3] == [
        (ACME, "API_KEY", "insert", 1, 1),
        (ACME, "TOKEN", "insert", 1, 1),
        (ACME, "API_KEY", "update", 2, 1),
    ]
    assert sorted(trail[3:5]) == [(ACME, "API_KEY", "reencrypt", 2, 2), (ACME, "TOKEN", "reencrypt", 1, 2)]
    assert trail[5:] == [(ACME, "TOKEN", "delete", 1, 2)]
    roles = set(db.execute("SELECT db_role, session_role FROM company_secret_audit"))
    assert roles == {("tenant_admin", "tenant_admin")}

    # Scan every column of every audit row, whatever columns there are.
    dumped = [r[0] for r in db.execute("SELECT row_to_json(a)::text FROM company_secret_audit a")]
    assert len(ciphertexts) >= 6
    for text in dumped:
        assert "fake-" not in text and "not-a-real-secret" not in text
        for ciphertext in ciphertexts:
            for part in ciphertext.split(":"):
                assert part not in text


def test_deleting_a_company_audits_its_secrets_deletion(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, {GLOBEX: TenantChange({"A": fake_value("a"), "B": fake_value("b")})}, keyring)
    db.execute("DELETE FROM companies WHERE id = %s", [GLOBEX])
    assert audit_rows(db)[-2:] == [(GLOBEX, "A", "delete", 1, 1), (GLOBEX, "B", "delete", 1, 1)]


def test_one_apply_is_one_audit_statement_per_write_statement(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    """Statement-level triggers: 50 inserted rows, 50 audit rows, all at the same transaction time."""
    apply_tenants(db, settings, {ACME: TenantChange({f"K{n}": fake_value(str(n)) for n in range(50)})}, keyring)
    assert db.execute("SELECT count(*), count(DISTINCT at) FROM company_secret_audit").fetchone() == (50, 1)

"""Issue 31: the application's own setTenantSecret (Drizzle and pg in Node.js, the seed's code unchanged) writes
the table the store provisions; the database completes each write (migration 0008), a holder of the keyring
binds it afterwards, and a plain UPDATE that moves a ciphertext is still told from a write."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.binding import Problem
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import (
    TenantChange,
    apply_tenants,
    bind_rows,
    read_rows,
    read_tenant,
    read_tenants,
    record_key_state,
    recorded_key_version,
    rotate,
)
from tenant_secrets.store.preflight import TenantRef, inspect
from tenant_secrets.store.settings import StoreSettings
from tests.conftest import ACME, GLOBEX, fake_value
from tests.seed_writes import get_op, run_seed, set_op
from tests.store.helpers import audit_rows, history_rows

TENANTS = [TenantRef("acme"), TenantRef("globex")]
APP_KEY = "WEBHOOK_SIGNING_SECRET"  # not in any tenants.yaml here: the application's own key


def seed(dsn: str, keyring: Keyring, ops: list[dict[str, str]], version: int | None = None) -> list[dict[str, Any]]:
    """Run the seed's code with MASTER_ENCRYPTION_KEY = the keyring's key ``version`` (by default its active one)."""
    key = keyring.key(keyring.active if version is None else version)
    return run_seed(dsn, ops, keyHex=key.hex())


def row(db: psycopg.Connection[Any], company: str, key: str) -> tuple[Any, ...]:
    """``(key_version, version, binding is null)`` of one row."""
    found = db.execute(
        "SELECT key_version, version, binding IS NULL FROM company_secrets WHERE company_id = %s AND secret_key = %s",
        [company, key],
    ).fetchone()
    assert found is not None
    return tuple(found)


@pytest.fixture
def recorded(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> psycopg.Connection[Any]:
    """The store as a first `up` leaves it: the active key version recorded for writers without the keyring."""
    record_key_state(db, settings, app_key_version=keyring.active)
    return db


def test_a_migrated_table_labels_keyless_writes_until_the_stack_records_its_version(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_dsn: str
) -> None:
    # the migration records version 1 (a table the application made from the seed holds version 1 rows) ...
    assert recorded_key_version(db, settings) == 1
    record_key_state(db, settings, app_key_version=3)  # ... until the schema resource records the stack's
    assert recorded_key_version(db, settings) == 3
    # without any record, a keyless write is refused, with what to do and never the value
    db.execute("DELETE FROM tenant_secrets_key_state")
    (result,) = seed(pg_dsn, keyring, [set_op(ACME, APP_KEY, fake_value("acme-webhook"))])
    assert result["ok"] is False
    assert result["code"] == "55000"
    assert "no master key version is recorded" in result["error"]
    assert fake_value("acme-webhook") not in result["error"]


def test_the_seeds_insert_update_and_read_keep_every_invariant(
    recorded: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_dsn: str
) -> None:
    db = recorded
    results = seed(
        pg_dsn,
        keyring,
        [
            set_op(ACME, APP_KEY, fake_value("acme-webhook-1")),
            get_op(ACME, APP_KEY),
            set_op(ACME, APP_KEY, fake_value("acme-webhook-2")),
            get_op(ACME, APP_KEY),
            get_op(GLOBEX, APP_KEY),
        ],
    )
    assert [r["ok"] for r in results] == [True] * 5
    assert [r.get("value") for r in results] == [
        None,
        fake_value("acme-webhook-1"),
        None,
        fake_value("acme-webhook-2"),
        None,
    ]
    assert row(db, ACME, APP_KEY) == (keyring.active, 2, True)  # labelled, bumped, not bound yet
    history = history_rows(db)
    assert [(h[0], h[1], h[2], h[3]) for h in history] == [(ACME, APP_KEY, 1, keyring.active)]
    assert keyring.decrypt(history[0][4], history[0][3]) == fake_value("acme-webhook-1")
    assert [a[:4] for a in audit_rows(db)] == [(ACME, APP_KEY, "insert", 1), (ACME, APP_KEY, "update", 2)]
    # the store's own readers see the application's value
    assert read_tenants(db, settings, [ACME], keyring)[ACME][APP_KEY].value == fake_value("acme-webhook-2")

    # the next `up` binds it (and its history entry), without changing the value or its version
    found = inspect(db, settings, TENANTS, keyring)
    assert (found.binding_problems, [p.secret_key for p in found.pending]) == ((), [APP_KEY])
    assert bind_rows(db, settings, keyring) == 2
    assert row(db, ACME, APP_KEY) == (keyring.active, 2, False)
    assert not inspect(db, settings, TENANTS, keyring).bindings_pending
    assert seed(pg_dsn, keyring, [get_op(ACME, APP_KEY)])[0]["value"] == fake_value("acme-webhook-2")


def test_a_declared_run_leaves_the_applications_keys_alone(
    recorded: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_dsn: str
) -> None:
    db = recorded
    seed(pg_dsn, keyring, [set_op(ACME, APP_KEY, fake_value("acme-webhook"))])
    before = db.execute("SELECT secret_value_encrypted, version FROM company_secrets").fetchall()
    apply_tenants(db, settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme-stripe")})}, keyring)
    after = db.execute(
        "SELECT secret_value_encrypted, version FROM company_secrets WHERE secret_key = %s", [APP_KEY]
    ).fetchall()
    assert after == before
    # the application overwrites a declared key: the database keeps tenants.yaml's value as history, and the
    # declared run puts it back
    seed(pg_dsn, keyring, [set_op(ACME, "STRIPE_SECRET_KEY", fake_value("acme-stripe-by-the-app"))])
    assert row(db, ACME, "STRIPE_SECRET_KEY") == (keyring.active, 2, True)
    result = apply_tenants(
        db, settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme-stripe")})}, keyring
    )
    assert result.updated == 1
    assert seed(pg_dsn, keyring, [get_op(ACME, "STRIPE_SECRET_KEY")])[0]["value"] == fake_value("acme-stripe")
    assert row(db, ACME, "STRIPE_SECRET_KEY") == (keyring.active, 3, False)


def test_a_rotation_reencrypts_the_applications_rows_and_the_seed_reads_them_with_the_new_key(
    recorded: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_dsn: str
) -> None:
    db = recorded
    apply_tenants(db, settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme-stripe")})}, keyring)
    seed(pg_dsn, keyring, [set_op(ACME, APP_KEY, fake_value("acme-webhook")), set_op(GLOBEX, APP_KEY, fake_value("g"))])
    rotated = Keyring({**keyring.keys, 2: os.urandom(32)}, active=2)
    # what the schema resource does: record the new version, re-encrypt, bind
    record_key_state(db, settings, app_key_version=2)
    # an application that still held MASTER_ENCRYPTION_KEY v1 writes between the record and the switch:
    # its row is labelled 2 but encrypted with 1; the bind finds the key that opens it
    seed(pg_dsn, rotated, [set_op(GLOBEX, "LATE_KEY", fake_value("globex-late"))], version=1)
    assert row(db, GLOBEX, "LATE_KEY") == (2, 1, True)
    rotate(db, settings, rotated)
    bind_rows(db, settings, rotated)
    assert {kv for (kv,) in db.execute("SELECT key_version FROM company_secrets")} == {2}
    assert not inspect(db, settings, TENANTS, rotated).bindings_pending
    results = seed(
        pg_dsn,
        rotated,
        [get_op(ACME, "STRIPE_SECRET_KEY"), get_op(ACME, APP_KEY), get_op(GLOBEX, APP_KEY), get_op(GLOBEX, "LATE_KEY")],
    )
    assert [r["value"] for r in results] == [
        fake_value("acme-stripe"),
        fake_value("acme-webhook"),
        fake_value("g"),
        fake_value("globex-late"),
    ]
    # after the rotation the application writes under v2, and the database labels it so
    seed(pg_dsn, rotated, [set_op(ACME, APP_KEY, fake_value("acme-webhook-2"))])
    assert row(db, ACME, APP_KEY) == (2, 2, True)


def test_a_ciphertext_moved_by_a_plain_update_is_named_never_bound_and_overwritten(
    recorded: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_dsn: str
) -> None:
    db = recorded
    key = "STRIPE_SECRET_KEY"
    wanted = {
        ACME: TenantChange({key: fake_value("acme-stripe")}),
        GLOBEX: TenantChange({key: fake_value("globex-stripe")}),
    }
    apply_tenants(db, settings, wanted, keyring)
    db.execute(
        "UPDATE company_secrets AS s SET secret_value_encrypted = (SELECT secret_value_encrypted FROM company_secrets o"
        " WHERE o.secret_key = s.secret_key AND o.company_id <> s.company_id) WHERE secret_key = %s",
        [key],
    )
    found = inspect(db, settings, TENANTS, keyring)
    assert sorted((p.row.company_id, p.problem) for p in found.binding_problems) == [
        (ACME, Problem.SWAPPED),
        (GLOBEX, Problem.SWAPPED),
    ]
    readings = read_rows(db, settings, [ACME, GLOBEX], keyring)
    assert {(r.company_id, r.problem) for r in readings} == {(ACME, "unbound"), (GLOBEX, "unbound")}
    assert all(r.value is None for r in readings)
    bind_rows(db, settings, keyring)
    assert row(db, ACME, key)[2] is True and row(db, GLOBEX, key)[2] is True  # never blessed
    result = apply_tenants(db, settings, wanted, keyring)
    assert result.updated == 2
    values = read_tenants(db, settings, [ACME, GLOBEX], keyring)
    assert (values[ACME][key].value, values[GLOBEX][key].value) == (
        fake_value("acme-stripe"),
        fake_value("globex-stripe"),
    )
    # each history entry is its own row's earlier value, never the other tenant's
    for company, _key, _version, key_version, ciphertext in history_rows(db):
        assert keyring.decrypt(ciphertext, key_version) == (
            fake_value("acme-stripe") if company == ACME else fake_value("globex-stripe")
        )


def test_a_row_of_the_application_that_does_not_open_never_fails_a_read_of_declared_keys(
    recorded: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_dsn: str
) -> None:
    """A refresh reads only the keys its resource wrote: an application row under a key the stack never had
    (the application's own mistake) is the application's to fix, and verify names it."""
    db = recorded
    apply_tenants(db, settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme-stripe")})}, keyring)
    stranger = Keyring({1: os.urandom(32)}, active=1)
    seed(pg_dsn, stranger, [set_op(ACME, APP_KEY, fake_value("acme-webhook"))])
    declared = read_tenant(db, settings, ACME, keyring, keys=["STRIPE_SECRET_KEY"])
    assert {k: v.value for k, v in declared.items()} == {"STRIPE_SECRET_KEY": fake_value("acme-stripe")}
    readings = {r.secret_key: r.problem for r in read_rows(db, settings, [ACME], keyring)}
    assert readings == {"STRIPE_SECRET_KEY": None, APP_KEY: "undecryptable"}

"""The preflight: what a provisioning run checks, read-only, before it declares or writes anything."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.envelope import Keyring, encrypt
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants
from tenant_secrets.store.preflight import PreflightError, TenantRef, inspect
from tests.conftest import ACME, GLOBEX, fake_value
from tests.store.helpers import secret_rows
from tests.store.test_batching import statements

APP = StoreSettings()  # the application owns companies: they must exist


def test_companies_are_resolved_by_subdomain_or_by_the_id_given(db: psycopg.Connection[Any], keyring: Keyring) -> None:
    found = inspect(db, APP, [TenantRef("acme"), TenantRef("globex", GLOBEX)], keyring)
    assert found.company_ids == {"acme": ACME, "globex": GLOBEX}
    assert found.schema_exists
    assert found.key_usage == {}


def test_every_missing_company_is_named_in_one_error_but_decommissioned_ones_may_be_gone(
    db: psycopg.Connection[Any], keyring: Keyring
) -> None:
    tenants = [TenantRef("acme"), TenantRef("initech"), TenantRef("hooli", "00000000-0000-4000-a000-0000000000ff")]
    with pytest.raises(PreflightError) as info:
        inspect(db, APP, [*tenants, TenantRef("gone", decommission=True)], keyring)
    assert info.value.problems == (
        "no company with subdomain initech, hooli (company_id given in tenants.yaml) in 'companies': create the "
        "companies in the application first, or fix the subdomain in tenants.yaml",
    )
    assert str(info.value).endswith("nothing was written")
    # the demo creates missing companies, so they are not an error there
    demo = inspect(db, StoreSettings(create_companies_table=True), tenants, keyring)
    assert demo.company_ids == {"acme": ACME}


def test_a_company_id_must_belong_to_its_subdomain(db: psycopg.Connection[Any], keyring: Keyring) -> None:
    with pytest.raises(PreflightError) as info:
        inspect(
            db, APP, [TenantRef("acme", GLOBEX), TenantRef("globex", "00000000-0000-4000-a000-0000000000ff")], keyring
        )
    assert info.value.problems == (
        "acme: the company_id in tenants.yaml is the company with subdomain 'globex' in 'companies': fix the "
        "company_id, or leave it out to look the company up",
        "globex: the company with this subdomain in 'companies' has another id than the company_id in "
        "tenants.yaml: fix the company_id, or leave it out to look the company up",
    )
    with pytest.raises(PreflightError, match=r"acme: company id must be a UUID"):
        inspect(db, APP, [TenantRef("acme", "not-a-uuid")], keyring)


def test_a_database_without_the_companies_table_is_refused_unless_the_demo_creates_it(
    conn: psycopg.Connection[Any], keyring: Keyring
) -> None:
    with pytest.raises(PreflightError, match=r"table 'companies' does not exist: .* run the application's migrations"):
        inspect(conn, APP, [TenantRef("acme")], keyring)
    fresh = inspect(conn, StoreSettings(create_companies_table=True), [TenantRef("acme")], keyring)
    assert (fresh.company_ids, fresh.key_usage, fresh.schema_exists) == ({}, {}, False)


def test_the_keyring_must_hold_and_match_every_key_version_still_stored(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, {ACME: TenantChange({"A": fake_value("a"), "B": fake_value("b")})}, keyring)
    apply_tenants(db, settings, {ACME: TenantChange({"A": fake_value("a2")})}, keyring)  # one history entry
    tenants = [TenantRef("acme")]
    found = inspect(db, settings, tenants, keyring)
    assert found.key_usage == {1: {"secrets": 2, "history entries": 1}}
    assert not found.rotation_pending(1)
    assert found.rotation_pending(2)

    second = os.urandom(32)
    with pytest.raises(PreflightError) as info:
        inspect(db, settings, tenants, Keyring({2: second}, 2), key_field="tenant-secrets:masterKeys")
    assert info.value.problems == (
        "tenant-secrets:masterKeys.v1 is missing, but values stored with key version 1 still need it "
        "(history entries: 1, secrets: 2): keep it until a run with another active key has re-encrypted them",
    )
    with pytest.raises(PreflightError) as info:
        inspect(db, settings, tenants, Keyring({1: os.urandom(32), 2: second}, 2))
    assert info.value.problems == (
        "masterKeys.v1 does not decrypt the values stored with key version 1 (history entries: 1, secrets: 2): "
        "it is not the key they were written with; restore the original key for this version",
    )


def test_one_corrupt_row_is_named_and_is_not_a_wrong_key(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    values = {"A": fake_value("a"), "B": fake_value("b"), "C": fake_value("c")}
    apply_tenants(db, settings, {ACME: TenantChange(values), GLOBEX: TenantChange({"A": fake_value("g")})}, keyring)
    # A whole envelope that does not decrypt (another key's, its IV zeroed so that it sorts first: the very
    # value the preflight samples). A malformed one is never sampled; the binding check names either.
    _, ciphertext, tag = encrypt(fake_value("x"), os.urandom(32)).split(":")
    corrupt = f"{'00' * 12}:{ciphertext}:{tag}"
    db.execute("UPDATE company_secrets SET secret_value_encrypted = %s WHERE secret_key = 'B'", [corrupt])
    found = inspect(db, settings, [TenantRef("acme"), TenantRef("globex")], keyring)
    assert found.undecryptable == ("acme B",)
    # a plain UPDATE is a keyless write (decision 0049): the row is pending its binding, not altered
    assert [(p.row.secret_key, p.problem) for p in found.binding_problems] == []
    assert [row.secret_key for row in found.pending] == ["B"]

    # Declaring a new value overwrites the corrupt row (an update, audited); the other rows are untouched.
    before = secret_rows(db)
    result = apply_tenants(db, settings, {ACME: TenantChange({**values, "B": fake_value("b2")})}, keyring)
    assert result.companies[ACME].updated == ("B",)
    after = secret_rows(db)
    assert after[ACME, "A"] == before[ACME, "A"]
    assert after[ACME, "B"][3] == before[ACME, "B"][3] + 1  # a new version of the secret
    assert inspect(db, settings, [TenantRef("acme")], keyring).undecryptable == ()
    audit = db.execute("SELECT action FROM company_secret_audit WHERE secret_key = 'B' ORDER BY id").fetchall()
    assert audit[-1] == ("update",)

    # When no row decrypts, it is the key that is wrong, as before.
    with pytest.raises(PreflightError, match=r"masterKeys\.v1 does not decrypt the values stored with key version 1"):
        inspect(db, settings, [TenantRef("acme")], Keyring({1: os.urandom(32)}, 1))


def test_it_reads_in_four_statements_whatever_the_number_of_tenants_and_writes_nothing(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    apply_tenants(db, settings, {ACME: TenantChange({"A": fake_value("a")})}, keyring)
    before = secret_rows(db)
    tenants = [TenantRef("acme"), TenantRef("globex"), *(TenantRef(f"t{n}", decommission=True) for n in range(50))]
    assert statements(db, lambda: inspect(db, settings, tenants, keyring)) == 4
    assert secret_rows(db) == before


def test_a_provisioner_that_is_the_application_role_fails_the_preview_read_only(
    db: psycopg.Connection[Any], keyring: Keyring
) -> None:
    """Issue 26, item 2: the swap is refused by the preview's own look at the database, before any `up`, as
    the pull-request guide's preview role (no privilege on the role record) runs it."""
    db.execute("CREATE ROLE fake_app_login LOGIN")
    db.execute("CREATE ROLE fake_preview NOLOGIN")
    try:
        db.execute(
            "CREATE POLICY tenant_secrets_app_read ON company_secrets FOR SELECT TO fake_app_login"
            " USING (company_id = nullif(current_setting('app.company_id', true), '')::uuid)"
        )
        db.execute("GRANT SELECT ON companies, company_secrets, company_secret_versions TO fake_preview")
        for table in ("company_secrets", "company_secret_versions"):
            db.execute(f"CREATE POLICY preview_read ON {table} FOR SELECT TO fake_preview USING (true)")
        db.execute("SET ROLE fake_preview")
        with pytest.raises(PreflightError) as info:
            inspect(db, APP, [TenantRef("acme")], keyring, app_role="fake_decoy", provisioner_role="fake_app_login")
        [problem] = info.value.problems
        assert problem.startswith(
            "role 'fake_app_login' is the application's role (the read policy on company_secrets names it): "
            "as the provisioner it would give the application INSERT, UPDATE and DELETE"
        )
        # the roles as they were: nothing to refuse
        inspect(db, APP, [TenantRef("acme")], keyring, app_role="fake_app_login", provisioner_role="fake_provisioner")
    finally:
        db.execute("RESET ROLE")
        for role in ("fake_app_login", "fake_preview"):
            db.execute(f"DROP OWNED BY {role}")
            db.execute(f"DROP ROLE {role}")

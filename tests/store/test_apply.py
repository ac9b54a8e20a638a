"""apply_tenants: create, no-op, change with history, delete of listed keys only, atomicity."""

from __future__ import annotations

import os
import uuid
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.envelope import Keyring, KeyringError
from tenant_secrets.store import (
    CompanyNotFoundError,
    StoredSecret,
    StoreError,
    StoreSettings,
    TenantChange,
    apply_tenants,
    insert_if_absent,
    read_tenant,
    read_tenants,
    require_companies,
)
from tests.conftest import ACME, GLOBEX, fake_value
from tests.store.helpers import audit_rows, count, history_rows, secret_rows

ACME_SECRETS = {"STRIPE_SECRET_KEY": fake_value("stripe"), "SENDGRID_API_KEY": fake_value("sendgrid")}
GLOBEX_SECRETS = {"STRIPE_SECRET_KEY": fake_value("globex-stripe")}


def both(acme: dict[str, str] = ACME_SECRETS, globex: dict[str, str] = GLOBEX_SECRETS) -> dict[str, TenantChange]:
    return {ACME: TenantChange(acme), GLOBEX: TenantChange(globex)}


def values(conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> dict[str, dict[str, str]]:
    found = read_tenants(conn, settings, [ACME, GLOBEX], keyring)
    return {cid: {k: s.value for k, s in secrets.items()} for cid, secrets in found.items()}


def test_create(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> None:
    result = apply_tenants(db, settings, both(), keyring)
    assert (result.created, result.updated, result.deleted, result.unchanged) == (3, 0, 0, 0)
    assert result.companies[ACME].created == ("SENDGRID_API_KEY", "STRIPE_SECRET_KEY")
    assert values(db, settings, keyring) == {ACME: ACME_SECRETS, GLOBEX: GLOBEX_SECRETS}
    assert read_tenant(db, settings, ACME, keyring)["STRIPE_SECRET_KEY"] == StoredSecret(
        fake_value("stripe"), version=1, key_version=1
    )
    assert history_rows(db) == []


def test_second_apply_writes_nothing(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> None:
    apply_tenants(db, settings, both(), keyring)
    before, audit_before = secret_rows(db), audit_rows(db)

    result = apply_tenants(db, settings, both(), keyring)

    assert not result.wrote
    assert (result.created, result.updated, result.reencrypted, result.deleted, result.unchanged) == (
        0,
        0,
        0,
        0,
        3,
    )
    assert secret_rows(db) == before, "same ciphertext (no fresh IV), same updated_at, same xmin"
    assert audit_rows(db) == audit_before
    db.execute("SELECT pg_stat_force_next_flush()")
    row = db.execute(
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = 'company_secrets'"
    ).fetchone()
    assert row == (3, 0, 0)


def test_one_change_is_one_update_with_history(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, both(), keyring)
    before = secret_rows(db)
    changed = {**ACME_SECRETS, "STRIPE_SECRET_KEY": fake_value("stripe-rotated")}

    result = apply_tenants(db, settings, both(acme=changed), keyring)

    assert (result.updated, result.unchanged) == (1, 2)
    assert result.companies[ACME].updated == ("STRIPE_SECRET_KEY",)
    after = secret_rows(db)
    assert {k for k in before if before[k] != after[k]} == {(ACME, "STRIPE_SECRET_KEY")}
    old, new = before[ACME, "STRIPE_SECRET_KEY"], after[ACME, "STRIPE_SECRET_KEY"]
    assert new[0] != old[0] and new[1] > old[1]
    assert (new[3], new[4]) == (2, 1), "version bumped, on the active key"
    assert history_rows(db) == [(ACME, "STRIPE_SECRET_KEY", 1, 1, old[0])]
    assert audit_rows(db)[-1] == (ACME, "STRIPE_SECRET_KEY", "update", 2, 1)
    assert values(db, settings, keyring)[ACME] == changed


@pytest.mark.parametrize(("retention", "kept"), [(2, [4, 5]), (0, []), (10, [1, 2, 3, 4, 5])])
def test_history_is_pruned_to_the_retention(
    db: psycopg.Connection[Any], keyring: Keyring, retention: int, kept: list[int]
) -> None:
    settings = StoreSettings(history_retention=retention)
    for n in range(6):
        apply_tenants(db, settings, {ACME: TenantChange({"WEBHOOK_SECRET": fake_value(f"webhook-{n}")})}, keyring)
    assert [row[2] for row in history_rows(db)] == kept
    assert read_tenant(db, settings, ACME, keyring)["WEBHOOK_SECRET"].version == 6
    entries = db.execute("SELECT version, secret_value_encrypted, key_version FROM company_secret_versions")
    for version, ciphertext, key_version in entries:
        assert keyring.decrypt(ciphertext, key_version) == fake_value(f"webhook-{version - 1}")


def test_only_listed_keys_are_deleted(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> None:
    apply_tenants(db, settings, both(), keyring)
    apply_tenants(db, settings, both(acme={**ACME_SECRETS, "STRIPE_SECRET_KEY": fake_value("v2")}), keyring)
    assert count(db, "company_secret_versions") == 1

    result = apply_tenants(
        db,
        settings,
        {ACME: TenantChange(delete={"STRIPE_SECRET_KEY", "NEVER_EXISTED"}), GLOBEX: TenantChange()},
        keyring,
    )

    assert result.companies[ACME].deleted == ("STRIPE_SECRET_KEY",)
    assert (result.deleted, result.created, result.updated) == (1, 0, 0)
    assert values(db, settings, keyring) == {
        ACME: {"SENDGRID_API_KEY": fake_value("sendgrid")},  # not in desired, not listed: kept
        GLOBEX: GLOBEX_SECRETS,
    }
    assert count(db, "company_secret_versions") == 0, "a deleted secret's history goes with it"


def test_set_and_delete_together(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> None:
    apply_tenants(db, settings, both(), keyring)
    result = apply_tenants(
        db,
        settings,
        {ACME: TenantChange({"NEW_KEY": fake_value("new")}, delete=["SENDGRID_API_KEY"])},
        keyring,
    )
    assert (result.created, result.deleted, result.unchanged) == (1, 1, 0)
    assert set(values(db, settings, keyring)[ACME]) == {"STRIPE_SECRET_KEY", "NEW_KEY"}


def test_unknown_company_fails_before_any_write(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    stranger = str(uuid.uuid4())
    with pytest.raises(CompanyNotFoundError, match=f"no company with id {stranger}.*nothing was written"):
        apply_tenants(db, settings, {**both(), stranger: TenantChange({"K": fake_value("k")})}, keyring)
    assert count(db, "company_secrets") == 0
    with pytest.raises(CompanyNotFoundError, match="no company with subdomain initech") as info:
        require_companies(db, settings, ["acme", "initech", "globex"])
    assert info.value.missing == ("initech",)
    assert require_companies(db, settings, ["acme"]) == {"acme": ACME}


def test_failure_mid_call_rolls_everything_back_and_the_next_call_converges(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, both(), keyring)
    before, audit_before = secret_rows(db), audit_rows(db)
    # A row the database refuses, in the last statement of the call (after its deletes and updates).
    db.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
    )
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON company_secrets FOR EACH ROW"
        " WHEN (NEW.secret_key = 'EXPLODES') EXECUTE FUNCTION refuse()"
    )
    wanted = {
        ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("v2")}, delete={"SENDGRID_API_KEY"}),
        GLOBEX: TenantChange({"EXPLODES": fake_value("boom"), "FINE": fake_value("fine")}),
    }

    with pytest.raises(psycopg.errors.RaiseException, match="injected failure"):
        apply_tenants(db, settings, wanted, keyring)

    assert secret_rows(db) == before
    assert history_rows(db) == []
    assert audit_rows(db) == audit_before

    db.execute("DROP TRIGGER refuse ON company_secrets")
    result = apply_tenants(db, settings, wanted, keyring)
    assert (result.created, result.updated, result.deleted) == (2, 1, 1)
    assert values(db, settings, keyring) == {
        ACME: {"STRIPE_SECRET_KEY": fake_value("v2")},
        GLOBEX: {**GLOBEX_SECRETS, "EXPLODES": fake_value("boom"), "FINE": fake_value("fine")},
    }
    assert not apply_tenants(db, settings, wanted, keyring).wrote


def test_same_value_on_an_old_key_is_reencrypted_in_place(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, both(), keyring)
    before = secret_rows(db)
    newer = Keyring({1: keyring.key(1), 2: os.urandom(32)}, active=2)

    result = apply_tenants(db, settings, both(), newer)

    assert (result.reencrypted, result.updated, result.unchanged) == (3, 0, 0)
    after = secret_rows(db)
    for key, (ciphertext, updated_at, _xmin, version, key_version) in after.items():
        assert ciphertext != before[key][0]
        assert (updated_at, version, key_version) == (before[key][1], 1, 2)
    assert history_rows(db) == []
    assert {row[2] for row in audit_rows(db)[-3:]} == {"reencrypt"}
    assert not apply_tenants(db, settings, both(), newer).wrote


def test_a_keyring_without_a_version_in_use_fails_before_any_write(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, both(), keyring)
    before = secret_rows(db)
    only_new = Keyring({2: os.urandom(32)}, active=2)
    with pytest.raises(KeyringError, match=r"key version\(s\) 1, which the keyring \(versions 2\) lacks"):
        apply_tenants(db, settings, both(acme={"STRIPE_SECRET_KEY": fake_value("v2")}), only_new)
    assert secret_rows(db) == before


def test_a_wrong_key_is_named_without_the_value(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, both(), keyring)
    impostor = Keyring({1: os.urandom(32)}, active=1)
    with pytest.raises(StoreError, match=r"cannot decrypt the stored 'S\w+' of company \S+ \(key version 1\)") as info:
        read_tenant(db, settings, ACME, impostor)
    assert "fake-" not in str(info.value)


def test_inputs_are_validated_and_values_never_shown() -> None:
    change = TenantChange({"STRIPE_SECRET_KEY": fake_value("shown?")}, delete=["OLD"])
    assert repr(change) == "TenantChange(desired=['STRIPE_SECRET_KEY'], delete=['OLD'])"
    assert "fake-" not in repr(StoredSecret(fake_value("shown?"), 1, 1))
    with pytest.raises(ValueError, match="both set and deleted"):
        TenantChange({"K": fake_value("k")}, delete=["K"])
    for bad in ("", "K" * 256, "NUL\x00KEY"):
        with pytest.raises(ValueError, match="1 to 255 characters"):
            TenantChange({bad: fake_value("k")})


def test_a_company_id_that_is_not_a_uuid_is_refused(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    with pytest.raises(ValueError, match="acme: company id must be a UUID"):
        apply_tenants(db, settings, {"acme": TenantChange({"K": fake_value("k")})}, keyring)


def test_nothing_to_do_touches_nothing(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> None:
    assert apply_tenants(db, settings, {}, keyring).companies == {}
    assert read_tenant(db, settings, ACME, keyring) == {}


def test_insert_if_absent_writes_a_new_key_under_the_active_version_and_never_touches_a_row(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(db, settings, both(), keyring)
    rotated = Keyring({1: keyring.key(1), 2: os.urandom(32)}, active=2)
    before = secret_rows(db)

    assert not insert_if_absent(db, settings, ACME, "STRIPE_SECRET_KEY", fake_value("other"), keyring=rotated)
    assert secret_rows(db) == before
    assert insert_if_absent(db, settings, ACME, "NEW_KEY", fake_value("new"), keyring=rotated)
    assert read_tenant(db, settings, ACME, rotated)["NEW_KEY"] == StoredSecret(fake_value("new"), 1, 2)
    assert audit_rows(db)[-1] == (ACME, "NEW_KEY", "insert", 1, 2)

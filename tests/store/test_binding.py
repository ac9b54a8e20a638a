"""Issue 13, item 1: a ciphertext moved to another row is found by the preflight, refused by the reader,
overwritten by the tenant's next run, and never re-bound by a rotation; rows without a binding get one."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.binding import Problem
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import TenantChange, apply_tenants, bind_rows, read_tenants, rotate
from tenant_secrets.store.preflight import TenantRef, inspect
from tenant_secrets.store.settings import StoreSettings
from tests.conftest import ACME, GLOBEX, fake_value
from tests.store.helpers import history_rows

KEY = "STRIPE_SECRET_KEY"
TENANTS = [TenantRef("acme"), TenantRef("globex")]


@pytest.fixture
def stored(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> psycopg.Connection[Any]:
    """acme and globex each with their own Stripe key, bound to their rows."""
    wanted = {ACME: {KEY: fake_value("acme-stripe")}, GLOBEX: {KEY: fake_value("globex-stripe")}}
    apply_tenants(db, settings, {c: TenantChange(v) for c, v in wanted.items()}, keyring)
    return db


def swap(db: psycopg.Connection[Any], *, columns: str = "secret_value_encrypted, binding") -> None:
    """What someone who can write the table does: trade the two rows' ciphertexts (and bindings)."""
    db.execute(
        f"UPDATE company_secrets AS s SET ({columns}) = (SELECT {columns} FROM company_secrets o"  # noqa: S608
        " WHERE o.secret_key = s.secret_key AND o.company_id <> s.company_id) WHERE secret_key = %s",
        [KEY],
    )


def problems(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> list[tuple[str, Problem]]:
    found = inspect(db, settings, TENANTS, keyring)
    return [(p.row.company_id, p.problem) for p in found.binding_problems]


@pytest.mark.parametrize("columns", ["secret_value_encrypted, binding", "secret_value_encrypted"])
def test_a_swap_is_named_by_the_preflight_and_overwritten_by_the_next_apply(
    stored: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, columns: str
) -> None:
    swap(stored, columns=columns)
    # the seed's decryptSecret would now serve globex's key to acme: the values themselves still decrypt
    assert read_tenants(stored, settings, [ACME], keyring)[ACME][KEY].value == fake_value("globex-stripe")
    assert problems(stored, settings, keyring) == [(ACME, Problem.SWAPPED), (GLOBEX, Problem.SWAPPED)]

    result = apply_tenants(
        stored,
        settings,
        {
            ACME: TenantChange({KEY: fake_value("acme-stripe")}),
            GLOBEX: TenantChange({KEY: fake_value("globex-stripe")}),
        },
        keyring,
    )
    assert result.updated == 2
    # another tenant's ciphertext is never kept as this one's history; a swap by a plain UPDATE leaves each
    # row's own previous value there (the database keeps it for every keyless write: decision 0049)
    history = history_rows(stored)
    assert len(history) == (0 if "binding" in columns else 2)
    for company, _key, _version, key_version, ciphertext in history:
        own = fake_value("acme-stripe" if company == ACME else "globex-stripe")
        assert keyring.decrypt(ciphertext, key_version) == own
    assert problems(stored, settings, keyring) == []
    assert read_tenants(stored, settings, [ACME], keyring)[ACME][KEY].value == fake_value("acme-stripe")


def test_a_copy_and_a_truncation_are_each_named(
    stored: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    stored.execute(
        "UPDATE company_secrets SET (secret_value_encrypted, binding) = (SELECT secret_value_encrypted, binding"
        " FROM company_secrets WHERE company_id = %s) WHERE company_id = %s",
        [ACME, GLOBEX],
    )
    assert problems(stored, settings, keyring) == [(GLOBEX, Problem.COPIED)]
    stored.execute(
        "UPDATE company_secrets SET secret_value_encrypted = left(secret_value_encrypted, 40) WHERE company_id = %s",
        [ACME],
    )
    assert sorted(problems(stored, settings, keyring)) == [(ACME, Problem.MALFORMED), (GLOBEX, Problem.COPIED)]


def test_a_rotation_never_binds_a_moved_ciphertext_and_binds_every_unbound_row(
    stored: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(stored, settings, {ACME: TenantChange({KEY: fake_value("acme-stripe-2")})}, keyring)  # history
    stored.execute("UPDATE company_secrets SET binding = NULL WHERE company_id = %s", [ACME])
    stored.execute("UPDATE company_secret_versions SET binding = NULL")
    found = inspect(stored, settings, TENANTS, keyring)
    assert (found.binding_problems, found.bindings_pending) == ((), True)
    assert bind_rows(stored, settings, keyring) == 2  # acme's row and its history entry
    assert not inspect(stored, settings, TENANTS, keyring).bindings_pending

    swap(stored)
    rotated = Keyring({**keyring.keys, 2: os.urandom(32)}, active=2)
    assert rotate(stored, settings, rotated) == 1  # the history entry; both swapped rows are left as they are
    assert sorted(problems(stored, settings, rotated)) == [(ACME, Problem.SWAPPED), (GLOBEX, Problem.SWAPPED)]

"""Key rotation: rows and history move to the new key batch by batch, readable throughout."""

from __future__ import annotations

import math
import os
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.envelope import Keyring, KeyringError
from tenant_secrets.store import (
    StoreError,
    StoreSettings,
    TenantChange,
    apply_tenants,
    check_keyring,
    connect,
    ensure_companies,
    iter_rotate,
    key_versions_in_use,
    read_tenants,
    rotate,
)
from tests.conftest import fake_value
from tests.store.helpers import audit_rows, history_rows, secret_rows

COMPANIES = 4
KEYS = 3


@pytest.fixture
def populated(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> dict[str, dict[str, str]]:
    """Four companies with three secrets each on key 1, one of each changed once (so history exists)."""
    ids = ensure_companies(db, settings, {f"tenant{n}": (None, None) for n in range(COMPANIES)})
    wanted = {cid: {f"KEY_{k}": fake_value(f"{cid[:8]}-{k}") for k in range(KEYS)} for cid in ids.values()}
    apply_tenants(db, settings, {cid: TenantChange({**w, "KEY_0": "fake-first"}) for cid, w in wanted.items()}, keyring)
    apply_tenants(db, settings, {cid: TenantChange(w) for cid, w in wanted.items()}, keyring)
    return wanted


def readable_with(pg_dsn: str, settings: StoreSettings, keyring: Keyring) -> dict[str, dict[str, str]]:
    """What an application holding ``keyring`` reads, on its own connection."""
    with connect(pg_dsn) as app:
        found = read_tenants(app, settings, list(_company_ids(app)), keyring)
        for _cid, _key, version, key_version, ciphertext in history_rows(app):
            assert keyring.decrypt(ciphertext, key_version) == "fake-first", f"history v{version}"
    return {cid: {k: s.value for k, s in secrets.items()} for cid, secrets in found.items()}


def _company_ids(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id::text FROM companies")]


def test_rotation_moves_everything_to_the_new_key_readable_throughout(
    db: psycopg.Connection[Any],
    pg_dsn: str,
    settings: StoreSettings,
    keyring: Keyring,
    populated: dict[str, dict[str, str]],
) -> None:
    old_key, new_key = keyring.key(1), os.urandom(32)
    both = Keyring({1: old_key, 2: new_key}, active=2)
    before = secret_rows(db)
    history_before = len(history_rows(db))
    assert key_versions_in_use(db, settings) == {1: {"secrets": 12, "history entries": 4}}

    batches = []
    for moved in iter_rotate(db, settings, both, batch_size=5):
        batches.append(moved)
        assert readable_with(pg_dsn, settings, both) == populated  # committed, mixed keys, all readable

    assert batches == [5, 5, 2, 4]
    assert len(batches) == math.ceil(12 / 5) + math.ceil(4 / 5)
    assert key_versions_in_use(db, settings) == {2: {"secrets": 12, "history entries": 4}}
    after = secret_rows(db)
    for key, (ciphertext, updated_at, _xmin, version, key_version) in after.items():
        assert ciphertext != before[key][0]
        assert (updated_at, version, key_version) == (before[key][1], before[key][3], 2)
    assert len(history_rows(db)) == history_before, "rotation adds no history: values did not change"
    assert [row[2] for row in audit_rows(db)].count("reencrypt") == 12

    only_new = Keyring({2: new_key}, active=2)
    check_keyring(db, settings, only_new)
    assert readable_with(pg_dsn, settings, only_new) == populated
    assert rotate(db, settings, only_new) == 0
    assert not apply_tenants(db, settings, {c: TenantChange(w) for c, w in populated.items()}, only_new).wrote


def test_dropping_a_key_still_in_use_is_refused_before_any_write(
    db: psycopg.Connection[Any], settings: StoreSettings, populated: dict[str, dict[str, str]]
) -> None:
    before = secret_rows(db)
    only_new = Keyring({2: os.urandom(32)}, active=2)
    message = r"lacks key versions still in use \(version 1: 4 history entries, 12 secrets\)"
    with pytest.raises(KeyringError, match=message):
        check_keyring(db, settings, only_new)
    with pytest.raises(KeyringError, match=message):
        rotate(db, settings, only_new)
    assert secret_rows(db) == before


def test_rotation_needs_a_connection_outside_a_transaction(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    with db.transaction(), pytest.raises(StoreError, match="not inside a transaction"):
        rotate(db, settings, keyring)
    with pytest.raises(ValueError, match="batch_size"):
        rotate(db, settings, keyring, batch_size=0)


def test_rotating_back_to_an_older_version_works_too(
    db: psycopg.Connection[Any],
    pg_dsn: str,
    settings: StoreSettings,
    keyring: Keyring,
    populated: dict[str, dict[str, str]],
) -> None:
    two = Keyring({1: keyring.key(1), 2: os.urandom(32)}, active=2)
    assert rotate(db, settings, two) == 16
    back = Keyring(two.keys, active=1)
    assert rotate(db, settings, back, batch_size=1000) == 16
    assert key_versions_in_use(db, settings) == {1: {"secrets": 12, "history entries": 4}}
    assert readable_with(pg_dsn, settings, keyring) == populated

"""Every store function leaves the connection as it found it, autocommit or not."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from psycopg import pq

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import (
    StoreSettings,
    TenantChange,
    apply_tenants,
    check_keyring,
    connect,
    ensure_companies,
    lookup_companies,
    migrate,
    read_tenant,
    rotate,
)
from tests.conftest import ACME, fake_value


def test_a_non_autocommit_connection_is_left_idle_and_everything_is_committed(
    pg_dsn: str, settings: StoreSettings, keyring: Keyring
) -> None:
    two = Keyring({1: keyring.key(1), 2: os.urandom(32)}, active=2)
    with connect(pg_dsn, autocommit=False) as conn:
        steps: list[Callable[[], object]] = [
            lambda: migrate(conn, settings),
            lambda: ensure_companies(conn, settings, {"acme": (ACME, None)}),
            lambda: lookup_companies(conn, settings, ["acme"]),
            lambda: apply_tenants(conn, settings, {ACME: TenantChange({"K": fake_value("k")})}, keyring),
            lambda: read_tenant(conn, settings, ACME, keyring),
            lambda: check_keyring(conn, settings, two),
            lambda: rotate(conn, settings, two),
        ]
        for step in steps:
            step()
            assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    with connect(pg_dsn) as other:
        assert read_tenant(other, settings, ACME, two)["K"].key_version == 2


def test_inside_a_callers_transaction_the_caller_decides(
    pg_dsn: str, settings: StoreSettings, keyring: Keyring
) -> None:
    with connect(pg_dsn) as conn:
        migrate(conn, settings)
        ensure_companies(conn, settings, {"acme": (ACME, None)})
        with pytest.raises(RuntimeError, match="changed my mind"), conn.transaction():
            apply_tenants(conn, settings, {ACME: TenantChange({"K": fake_value("k")})}, keyring)
            raise RuntimeError("changed my mind")
        assert read_tenant(conn, settings, ACME, keyring) == {}

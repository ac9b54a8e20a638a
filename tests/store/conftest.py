"""Fixtures for the store's tests: a migrated database per test, two companies, a fresh keyring."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import StoreSettings, connect, ensure_companies, migrate

# Obviously fake company ids, so a failing assertion is easy to read.
ACME = "00000000-0000-4000-a000-00000000000a"
GLOBEX = "00000000-0000-4000-a000-00000000000b"


def fake_value(label: str) -> str:
    """A value that is plainly not a real secret, but distinctive enough to search for."""
    return f"fake-{label}-not-a-real-secret"


@pytest.fixture
def settings() -> StoreSettings:
    return StoreSettings(create_companies_table=True)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({1: os.urandom(32)}, active=1)


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection as the cluster's superuser (the store's owner) to a fresh database."""
    with connect(pg_dsn) as connection:
        yield connection


@pytest.fixture
def db(conn: psycopg.Connection[Any], settings: StoreSettings) -> psycopg.Connection[Any]:
    """``conn`` after migrate, with the companies acme and globex."""
    migrate(conn, settings)
    ensure_companies(conn, settings, {"acme": (ACME, "Acme Test Co"), "globex": (GLOBEX, None)})
    return conn

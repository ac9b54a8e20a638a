"""Fixtures shared by every test layer: a real, private PostgreSQL cluster per test session, and a migrated
store in a fresh database with two companies (the store's tests, and the tests of what runs on it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dev.pg import Cluster
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import StoreSettings, connect, ensure_companies, migrate


@pytest.fixture(scope="session")
def cluster_root() -> Iterator[Path]:
    """A session's directory for PostgreSQL clusters, outside pytest's temp root: run as root, a cluster runs as
    `postgres`, which must traverse its parents, and every new pytest session on the machine resets pytest's
    root to mode 0700, which would stop another session's running servers."""
    root = Path(tempfile.mkdtemp(prefix="tenant-secrets-pg-"))
    yield root
    shutil.rmtree(root)


@contextmanager
def running_cluster(root: Path) -> Iterator[Cluster]:
    """A real PostgreSQL server with its data under ``root``, stopped on leaving."""
    cluster = Cluster(root)
    cluster.ensure_started()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster(cluster_root: Path) -> Iterator[Cluster]:
    """A real PostgreSQL server in a temp directory, started once per session and stopped after."""
    with running_cluster(cluster_root / "pg") as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database for one test (created from template0, dropped afterwards)."""
    with fresh_database(pg_cluster) as dsn:
        yield dsn


@contextmanager
def fresh_database(cluster: Cluster) -> Iterator[str]:
    """The DSN of a new, empty database of ``cluster`` (created from template0), dropped on leaving."""
    name = f"t_{abs(hash(object())) % 10**12}"
    with psycopg.connect(cluster.dsn(dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    yield cluster.dsn(dbname=name)
    with psycopg.connect(cluster.dsn(dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

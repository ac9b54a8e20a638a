"""Fixtures shared by every test layer: a real, private PostgreSQL cluster per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dev.pg import Cluster


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real PostgreSQL server in a temp directory, started once per session and stopped after."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("pg")))
    cluster.ensure_started()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_dsn(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database for one test (created from template0, dropped afterwards)."""
    name = f"t_{abs(hash(object())) % 10**12}"
    with psycopg.connect(pg_cluster.dsn(dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    yield pg_cluster.dsn(dbname=name)
    with psycopg.connect(pg_cluster.dsn(dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

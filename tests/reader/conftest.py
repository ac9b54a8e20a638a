"""The reader against the real services: a migrated database with two companies, the application and
provisioning roles of decision 0010, and a local Infisical server whose key folder publishes a keyring."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dev.pg import Cluster
from infisical_server.testing import RunningServer, sample_config, start_server
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, RetryPolicy
from tenant_secrets.reader import DsnConnections
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import published_values
from tenant_secrets.store import StoreSettings, connect, ensure_companies, ensure_roles, migrate
from tests.conftest import ACME, GLOBEX

ENVIRONMENT = "dev"
INFISICAL_ONLY = "initech"  # a tenant with a folder in Infisical and no companies row (storage: infisical)
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
SECRETS_ROUTE = "GET /api/v3/secrets/raw"  # a listing: the key folder
SECRET_ROUTE = "GET /api/v3/secrets/raw/{secretName}"  # one secret: a tenant's folder

__all__ = ["ACME", "GLOBEX"]


@dataclass(frozen=True)
class Database:
    owner: psycopg.Connection[Any]
    settings: StoreSettings
    app_dsn: str
    provisioner_dsn: str


@pytest.fixture
def database(pg_cluster: Cluster, pg_dsn: str) -> Iterator[Database]:
    """Migrated, with companies acme and globex, and this test's own application and provisioning roles."""
    settings = StoreSettings(create_companies_table=True)
    suffix = secrets.token_hex(4)
    app, provisioner = f"reader_app_{suffix}", f"reader_provisioner_{suffix}"
    app_password, provisioner_password = f"fake-app-{suffix}", f"fake-provisioner-{suffix}"
    dbname = str(conninfo_to_dict(pg_dsn)["dbname"])
    with connect(pg_dsn) as owner:
        migrate(owner, settings)
        ensure_companies(owner, settings, {"acme": (ACME, None), "globex": (GLOBEX, None)})
        ensure_roles(
            owner,
            settings,
            app_role=app,
            app_password=app_password,
            provisioner_role=provisioner,
            provisioner_password=provisioner_password,
        )
        yield Database(
            owner,
            settings,
            pg_cluster.dsn(user=app, password=app_password, dbname=dbname),
            pg_cluster.dsn(user=provisioner, password=provisioner_password, dbname=dbname),
        )
        owner.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)", [[app, provisioner]]
        )
        for role in (app, provisioner):  # roles are cluster-wide
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


class Connections:
    """Autocommit connections as one role, counting what the reader asks of the database: each loan, and
    each network round trip (a ``ReadyForQuery`` in libpq's protocol trace) while single-threaded.

    ``hold`` keeps each loan open that many seconds, so that concurrent lookups overlap in a test."""

    def __init__(self, dsn: str, trace_dir: Path, *, hold: float = 0.0) -> None:
        self._pool = DsnConnections(dsn, max_idle=16)
        self._trace = trace_dir / f"trace-{uuid.uuid4().hex[:8]}.txt"
        self._hold = hold
        self._lock = threading.Lock()
        self.loans = 0

    def __call__(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._lend()

    @contextmanager
    def _lend(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            self.loans += 1
        with self._pool() as conn, self._trace.open("a") as trace:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
            try:
                yield conn
                time.sleep(self._hold)
            finally:
                conn.pgconn.untrace()

    def round_trips(self) -> int:
        if not self._trace.exists():
            return 0
        return sum("\tReadyForQuery\t" in line for line in self._trace.read_text().splitlines())

    def close(self) -> None:
        self._pool.close()


@pytest.fixture
def make_connections(tmp_path: Path) -> Iterator[Callable[..., Connections]]:
    made: list[Connections] = []

    def make(dsn: str, *, hold: float = 0.0) -> Connections:
        made.append(Connections(dsn, tmp_path, hold=hold))
        return made[-1]

    yield make
    for connections in made:
        connections.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("infisical"), sample_config())
    yield running
    running.stop()


@pytest.fixture
def credentials(server: RunningServer) -> Iterator[InfisicalCredentials]:
    ident = server.identity()
    yield InfisicalCredentials(server.url, ident["client_id"], ident["client_secret"], ident["project"])
    server.clear_faults()
    server.settings(latency_ms=0)


@pytest.fixture
def infisical(credentials: InfisicalCredentials) -> Iterator[InfisicalClient]:
    """A client to arrange folders with; the tenants' and key folders are removed after each test."""
    client = InfisicalClient(credentials, FAST)
    yield client
    for path in ("/tenants/acme", "/tenants/globex", f"/tenants/{INFISICAL_ONLY}", "/hono-api"):
        client.delete_folder(ENVIRONMENT, path)


@dataclass(frozen=True)
class Services:
    """Both services for a test that uses the Infisical fallback or the key folder."""

    database: Database
    connections: Callable[..., Connections]
    server: RunningServer
    credentials: InfisicalCredentials
    infisical: InfisicalClient
    master_keys: dict[int, str]


@pytest.fixture
def services(
    database: Database,
    make_connections: Callable[..., Connections],
    server: RunningServer,
    credentials: InfisicalCredentials,
    infisical: InfisicalClient,
) -> Services:
    master_keys = {1: os.urandom(32).hex(), 2: os.urandom(32).hex()}
    return Services(database, make_connections, server, credentials, infisical, master_keys)


def publish(client: InfisicalClient, keys: dict[int, str], versions: list[int], current: int) -> Keyring:
    """Put a keyring into the key folder as the key publication does (tenant_secrets.secret.keyfolder)."""
    client.apply_secrets(ENVIRONMENT, "/hono-api", upsert=published_values(keys, versions=versions, current=current))
    return Keyring.from_hex({v: keys[v] for v in {*versions, current}}, current)


def canary() -> str:
    """A value that must never appear in an error, a log record or an audit row."""
    return f"fake-canary-{secrets.token_hex(8)}-not-a-real-secret"

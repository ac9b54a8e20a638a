"""The services one benchmark run talks to: a private PostgreSQL cluster, the local Infisical server,
and a counting TCP proxy in front of PostgreSQL.

The proxy exists to count round trips, which pg_stat_statements cannot: it forwards bytes untouched
and counts, per connection, each time the client speaks again after the server has answered (a
request/response exchange, whatever the protocol does inside it: startup and SCRAM exchanges,
BEGIN, each statement, COMMIT). Pipelined statements sent in one flight count once, as they should.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

from dev.pg import Cluster, free_port
from infisical_server.testing import RunningServer, sample_config, start_server

# --- PostgreSQL -----------------------------------------------------------------------------------


@dataclass
class Postgres:
    """One private cluster for the whole run; a fresh database per (design, size)."""

    cluster: Cluster

    @classmethod
    def start(cls, root: Path) -> Postgres:
        cluster = Cluster(root)
        cluster.ensure_started()
        return cls(cluster)

    def stop(self) -> None:
        self.cluster.stop()

    @property
    def pid(self) -> int:
        """The postmaster's pid (its backends are its children)."""
        return int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.cluster.dsn(dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.cluster.dsn(dbname=name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.cluster.dsn(dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def admin(self) -> psycopg.Connection[Any]:
        """A superuser connection to the cluster's main database (pg_stat_statements lives there)."""
        return psycopg.connect(self.cluster.dsn(), autocommit=True)

    def reset_statements(self) -> None:
        with self.admin() as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

    def statements(self, dbname: str) -> dict[str, Any]:
        """Statements run in `dbname` since the last reset: total calls and the busiest texts."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT s.calls, s.rows, s.total_exec_time, s.query FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s ORDER BY s.calls DESC",
                [dbname],
            ).fetchall()
        writes = sum(r[0] for r in rows if str(r[3]).lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")))
        return {
            "calls": int(sum(r[0] for r in rows)),
            "writes": int(writes),
            "rows": int(sum(r[1] for r in rows)),
            "exec_ms": round(float(sum(r[2] for r in rows)), 1),
            "top": [{"calls": int(r[0]), "query": " ".join(str(r[3]).split())[:120]} for r in rows[:8]],
        }


# --- the counting proxy ---------------------------------------------------------------------------


@dataclass
class _Counts:
    connections: int = 0
    round_trips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass
class CountingProxy:
    """A loopback TCP proxy to PostgreSQL that counts connections, round trips and bytes."""

    target_port: int
    port: int = field(default_factory=free_port)
    _counts: _Counts = field(default_factory=_Counts)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> CountingProxy:
        self._thread = threading.Thread(target=self._run, name="pg-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the PostgreSQL counting proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        with self._lock:
            self._counts = _Counts()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {
                "connections": c.connections,
                "round_trips": c.round_trips,
                "bytes_up": c.bytes_up,
                "bytes_down": c.bytes_down,
            }

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        with self._lock:
            self._counts.connections += 1
        # True once the server has spoken since the client last did: the client's next bytes start
        # a new round trip.
        answered = [True]

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await reader.read(65536):
                    with self._lock:
                        if upstream:
                            self._counts.bytes_up += len(data)
                            if answered[0]:
                                self._counts.round_trips += 1
                                answered[0] = False
                        else:
                            self._counts.bytes_down += len(data)
                            answered[0] = True
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    writer.close()

        await asyncio.gather(
            pump(client_reader, server_writer, upstream=True),
            pump(server_reader, client_writer, upstream=False),
        )


# --- Infisical --------------------------------------------------------------------------------------


@dataclass
class Infisical:
    """The project's Infisical-compatible server (one per design and size: fresh data, fresh counters)."""

    server: RunningServer
    project_id: str
    client_id: str
    client_secret: str

    @classmethod
    def start(cls, root: Path) -> Infisical:
        project_id, client_id, client_secret = str(uuid.uuid4()), str(uuid.uuid4()), secrets.token_hex(32)
        config = sample_config(project_id=project_id, client_id=client_id, client_secret=client_secret)
        return cls(start_server(root, config), project_id, client_id, client_secret)

    def stop(self) -> None:
        self.server.stop()

    @property
    def pid(self) -> int:
        return self.server.process.pid

    @property
    def env(self) -> dict[str, str]:
        return {
            "INFISICAL_SITE_URL": self.server.url,
            "INFISICAL_PROJECT_ID": self.project_id,
            "INFISICAL_CLIENT_ID": self.client_id,
            "INFISICAL_CLIENT_SECRET": self.client_secret,
        }

    def reset(self) -> None:
        requests.post(f"{self.server.url}/__admin/requests/reset", timeout=10).raise_for_status()

    def counts(self) -> dict[str, int]:
        """API requests since the last reset, `"<METHOD> <route>"` -> count (admin calls excluded)."""
        body = requests.get(f"{self.server.url}/__admin/requests", timeout=10).json()
        return {route: int(n) for route, n in body["counts"].items() if "/__admin" not in route}


@contextlib.contextmanager
def infisical_server(root: Path) -> Iterator[Infisical]:
    server = Infisical.start(root)
    try:
        yield server
    finally:
        server.stop()

"""The reader's database side: a tenant's secret in one round trip, as the application role.

:func:`read_secret` sends two statements in one simple query, which PostgreSQL runs as one implicit
transaction for one network round trip: the first resolves the company (by subdomain or id) and sets
``app.company_id`` for that transaction only (``set_config(..., true)``); the second reads the company and
its row, which row-level security (decision 0010) lets the application role see only for that company.
After the query the setting is gone, so a pooled connection carries no tenant into its next use.

Both statements are prepared once per connection (``PREPARE``, sent in the same query as their first
``EXECUTE``): planning them cost more than the round trip itself. The query goes through libpq directly
(``pgconn.exec_``, which releases the GIL while it waits), the values quoted by libpq
(``PQescapeLiteral``): through psycopg's pipeline mode the same read cost twice as much (decision 0048). A connection
whose statements were dropped behind our back (``DISCARD ALL`` by a pool) prepares them again; one that
already has them uses them; one that cannot keep them (a transaction-mode pooler) runs them unprepared:
the same answer, one or two more round trips.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.errors import DuplicatePreparedStatement, InvalidSqlStatementName
from psycopg.pq import DiagnosticField, Escaping, ExecStatus, TransactionStatus

from tenant_secrets.store.connection import connect
from tenant_secrets.store.settings import COMPANIES, SECRETS, StoreSettings

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
"""Lends a connection for one use, e.g. :class:`DsnConnections` or ``psycopg_pool.ConnectionPool.connection``.
Connections must be in autocommit mode (the reader's transaction is the pipeline's implicit one)."""


@dataclass(frozen=True)
class StoredRow:
    """A row as stored: the envelope (never shown), the master key version it was encrypted with, the
    secret's version and the row's binding (:mod:`tenant_secrets.secret.binding`; None before it is bound)."""

    envelope: str = field(repr=False)
    key_version: int
    version: int = 1
    binding: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Lookup:
    """The company (None when no company matches) and its row for the key (None when it has none)."""

    company_id: str | None
    subdomain: str | None
    row: StoredRow | None


def tenant_ref(tenant: str | uuid.UUID) -> str | uuid.UUID:
    """``tenant`` as the reader resolves it: text that reads as a UUID is a company id, never a subdomain.

    "Reads as a UUID" is ASCII text that ``uuid.UUID`` accepts (braces, ``urn:uuid:``, hyphens anywhere, a
    ``0x`` prefix, underscores between digits): the Node reader parses exactly that
    (packages/tenant-secrets-reader/src/names.ts, both checked on tests/fixtures/reader-vectors.json).
    Python's ``int`` alone would also take other scripts' digits and spaces, which the Node reader has no
    parser for, so the two readers would resolve such text differently; no company id is written so.

    Validation refuses subdomains that read as one (`uuid_label_problem`, the same ``uuid.UUID`` call); a
    company named so before that rule is still never found by that text, so a tenant cannot stand in for
    the company whose id it took as its name (issue 26, item 6).
    """
    if isinstance(tenant, str) and len(tenant) >= _UUID_HEX_DIGITS and tenant.isascii():  # else no UUID: no parse
        try:
            return uuid.UUID(tenant)
        except ValueError:
            return tenant
    return tenant


_UUID_HEX_DIGITS = 32
"""Every spelling ``uuid.UUID`` reads has at least the 32 hex digits."""


def read_secret(conn: psycopg.Connection[Any], settings: StoreSettings, tenant: str | uuid.UUID, key: str) -> Lookup:
    """The company named by ``tenant`` (a subdomain, or a company id: a UUID, or text that reads as one) and
    its row for ``key``."""
    tenant = tenant_ref(tenant)
    info = conn.info
    if not conn.autocommit or info.transaction_status != TransactionStatus.IDLE:
        raise ValueError(
            "the reader needs an idle autocommit connection: app.company_id is set for one implicit transaction"
        )
    statements = _statements(settings, isinstance(tenant, uuid.UUID))
    pgconn, encoding = conn.pgconn, info.encoding
    quote = Escaping(pgconn).escape_literal
    arguments = (quote(str(tenant).encode(encoding)), quote(key.encode(encoding)))
    with conn.lock:
        prepared = _PREPARED.setdefault(conn, set())
        if statements.name in prepared:
            result = pgconn.exec_(statements.execute(*arguments))
            if result.status != ExecStatus.TUPLES_OK and _sqlstate(result) == InvalidSqlStatementName.sqlstate:
                prepared.discard(statements.name)  # dropped since (DISCARD ALL): prepare again
        if statements.name not in prepared:
            result = pgconn.exec_(statements.prepare + statements.execute(*arguments))
            if result.status == ExecStatus.TUPLES_OK:
                prepared.add(statements.name)
            elif _sqlstate(result) == DuplicatePreparedStatement.sqlstate:
                # The session has them (a PREPARE outlives the failed query it was sent with): use them. If
                # they are gone again at once (a transaction-mode pooler's other session), run them unprepared.
                prepared.add(statements.name)
                result = pgconn.exec_(statements.execute(*arguments))
                if result.status != ExecStatus.TUPLES_OK and _sqlstate(result) == InvalidSqlStatementName.sqlstate:
                    prepared.discard(statements.name)
                    result = pgconn.exec_(statements.unprepared(*arguments))
    if result.status != ExecStatus.TUPLES_OK:
        raise _error(result, encoding)
    if not result.ntuples:
        return Lookup(None, None, None)
    company_id, subdomain, envelope, key_version, version, binding = (
        None if (value := result.get_value(0, column)) is None else value.decode(encoding) for column in range(6)
    )
    if company_id is None or subdomain is None:
        return Lookup(None, None, None)
    if envelope is None or key_version is None or version is None:
        return Lookup(company_id, subdomain, None)
    return Lookup(company_id, subdomain, StoredRow(envelope, int(key_version), int(version), binding))


_PREPARED: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = weakref.WeakKeyDictionary()
"""The statements each open connection has prepared (as far as this process knows)."""


@dataclass(frozen=True)
class _Statements:
    """:func:`read_secret`'s two statements for one store and one way of naming the company."""

    name: str
    resolve: bytes
    read: bytes

    @property
    def prepare(self) -> bytes:
        name = self.name.encode()
        return b"PREPARE %s_r(text) AS %s; PREPARE %s_s(text) AS %s; " % (
            name,
            self.resolve.replace(b"{}", b"$1"),
            name,
            self.read.replace(b"{}", b"$1"),
        )

    def execute(self, tenant: bytes, key: bytes) -> bytes:
        name = self.name.encode()
        return b"EXECUTE %s_r(%s); EXECUTE %s_s(%s)" % (name, tenant, name, key)

    def unprepared(self, tenant: bytes, key: bytes) -> bytes:
        return self.resolve.replace(b"{}", tenant) + b"; " + self.read.replace(b"{}", key)


@functools.lru_cache(maxsize=32)
def _statements(settings: StoreSettings, by_id: bool) -> _Statements:
    """Composed once per store and naming (``{}`` marks where the argument goes): composing them, identifiers
    quoted, costs more than running them."""
    column = sql.SQL("c.id = {}::uuid" if by_id else "c.subdomain = {}")  # inserted as is: "{}" stays
    resolve = sql.SQL(
        "SELECT set_config('app.company_id', coalesce((SELECT c.id::text FROM {} AS c WHERE {}), ''), true)"
    ).format(settings.table(COMPANIES), column)
    # The company filter repeats the policy's, so an owner or provisioner connection reads the same row.
    read = sql.SQL(
        "SELECT c.id::text, c.subdomain, s.secret_value_encrypted, s.key_version, s.version, s.binding"
        " FROM {} AS c LEFT JOIN {} AS s ON s.company_id = c.id AND s.secret_key = {{}}"
        " WHERE c.id = nullif(current_setting('app.company_id', true), '')::uuid"
    ).format(settings.table(COMPANIES), settings.table(SECRETS))
    resolve_text, read_text = resolve.as_bytes(None), read.as_bytes(None)
    digest = hashlib.sha256(resolve_text + b"\0" + read_text).hexdigest()[:16]
    return _Statements(f"tenant_secrets_reader_{digest}", resolve_text, read_text)


def _sqlstate(result: psycopg.pq.abc.PGresult) -> str | None:
    state = result.error_field(DiagnosticField.SQLSTATE)
    return None if state is None else state.decode()


def _error(result: psycopg.pq.abc.PGresult, encoding: str) -> psycopg.Error:
    """The server's error as psycopg's class for its SQLSTATE, with its first line only (never a detail)."""
    state = _sqlstate(result)
    message = (result.error_message or b"").decode(encoding, "replace").splitlines()
    kind = psycopg.errors.lookup(state) if state else psycopg.OperationalError
    return kind(message[0] if message else "the database answered an error")


class DsnConnections:
    """A small pool for :class:`~tenant_secrets.reader.SecretReader`: autocommit connections to ``dsn``,
    one per concurrent use, at most ``max_idle`` kept open between uses. Errors never show the password."""

    def __init__(self, dsn: str, *, max_idle: int = 4) -> None:
        self._dsn = dsn
        self._max_idle = max_idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DsnConnections(idle={len(self._idle)}, max_idle={self._max_idle})"

    def __call__(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._lend()

    @contextmanager
    def _lend(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self._dsn)
        try:
            yield conn
        finally:
            reusable = not conn.closed and not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE
            with self._lock:
                if reusable and not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Close the idle connections (connections in use are closed when returned)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

"""The reader's database side: a tenant's secret in one round trip, as the application role.

:func:`read_secret` pipelines two statements behind one ``Sync``, so they run in one implicit
transaction and cost one network round trip: the first resolves the company (by subdomain or id) and
sets ``app.company_id`` for that transaction only (``set_config(..., true)``); the second reads the
row, which row-level security (decision 0010) lets the application role see only for that company.
After the ``Sync`` the setting is gone, so a pooled connection carries no tenant into its next use.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

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

    Validation refuses subdomains that read as one (`uuid_label_problem`); a company named so before that
    rule is still never found by that text, so a tenant cannot stand in for the company whose id it took
    as its name (issue 26, item 6).
    """
    if isinstance(tenant, str) and len(tenant) >= _UUID_HEX_DIGITS:  # shorter text is no UUID: skip the parse
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
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError(
            "the reader needs an idle autocommit connection: app.company_id is set for one implicit transaction"
        )
    resolve, select = _statements(settings, isinstance(tenant, uuid.UUID), conn)
    with conn.pipeline():
        company = conn.execute(resolve, [str(tenant)])
        secret = conn.execute(select, [key])
    resolved = company.fetchone()
    found = secret.fetchone()
    if resolved is None or resolved[0] is None:
        return Lookup(None, None, None)
    row = None if found is None else StoredRow(str(found[0]), int(found[1]), int(found[2]), found[3])
    return Lookup(str(resolved[0]), str(resolved[1]), row)


_STATEMENTS: dict[tuple[StoreSettings, bool, str], tuple[bytes, bytes]] = {}


def _statements(settings: StoreSettings, by_id: bool, conn: psycopg.Connection[Any]) -> tuple[bytes, bytes]:
    """:func:`read_secret`'s two statements as bytes, composed once per settings and encoding: composing
    them (identifiers quoted by libpq) cost more per miss than the server took to run them."""
    cache_key = (settings, by_id, conn.info.encoding)
    statements = _STATEMENTS.get(cache_key)
    if statements is None:
        column = sql.SQL("c.id = %s::uuid" if by_id else "c.subdomain = %s")
        resolve = sql.SQL(
            "SELECT c.id::text, c.subdomain, set_config('app.company_id', coalesce(c.id::text, ''), true)"
            " FROM (SELECT) AS one LEFT JOIN {} AS c ON {}"
        ).format(settings.table(COMPANIES), column)
        # The company filter repeats the policy's, so an owner or provisioner connection reads the same row.
        select = sql.SQL(
            "SELECT secret_value_encrypted, key_version, version, binding FROM {}"
            " WHERE company_id = nullif(current_setting('app.company_id', true), '')::uuid AND secret_key = %s"
        ).format(settings.table(SECRETS))
        statements = _STATEMENTS[cache_key] = (resolve.as_bytes(conn), select.as_bytes(conn))
    return statements


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

"""Recording every read (the seed's "log all secret access attempts"): who asked for which key, where
it was found, and with what outcome; never the value.

:class:`LoggerAccessLog` (the default) writes one line per access to a Python logger;
:class:`TableAccessLog` appends to the store's ``company_secret_access`` table through its
``SECURITY DEFINER`` function (migration 0004), which the application role may execute but whose
table it can neither read nor change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from psycopg import sql

from tenant_secrets.reader.database import ConnectionFactory
from tenant_secrets.store.settings import StoreSettings


class Source(StrEnum):
    """Where a value was found (or where the lookup ended)."""

    CACHE = "cache"
    DATABASE = "database"
    INFISICAL = "infisical"


class Outcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    UNKNOWN_TENANT = "unknown_tenant"
    UNDECRYPTABLE = "undecryptable"
    FAILED = "failed"


@dataclass(frozen=True)
class AccessEvent:
    """One call of :meth:`SecretReader.get`: names and outcome only, by construction no value.

    ``tenant`` is what the caller passed (subdomain or company id); ``company_id`` is known once the
    database has resolved it. ``source`` is None when no source was asked (an invalid subdomain). A call
    that joined another thread's lookup of the same secret reports that lookup's source and outcome.
    """

    tenant: str
    company_id: str | None
    key: str
    source: Source | None
    outcome: Outcome
    wrote_back: bool = False


class AccessLog(Protocol):
    """Where accesses are recorded. The reader's journal (:mod:`tenant_secrets.reader.journal`) calls
    ``record_batch(events)`` when the log has one (one write for many accesses), else ``record`` per event."""

    def record(self, event: AccessEvent) -> None:
        """Record ``event``; raising makes reads refused until the log records again (the entry is kept)."""


class LoggerAccessLog:
    """One log record per access on ``logger`` (default ``tenant_secrets.reader.access``): INFO when the
    value was found, WARNING otherwise. The event is attached as ``record.access``. Records are made by
    the reader's journal, off the hot path, so their thread is not the reading one."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("tenant_secrets.reader.access")

    def record(self, event: AccessEvent) -> None:
        level = logging.INFO if event.outcome is Outcome.FOUND else logging.WARNING
        if not self._logger.isEnabledFor(level):
            return
        # makeRecord and handle, not log(): log() walks the stack for the caller's file and line (a third of
        # a record's cost), which would only name the journal's delivery anyway.
        record = self._logger.makeRecord(
            self._logger.name,
            level,
            __file__,
            0,
            "secret access: tenant=%s company=%s key=%s source=%s outcome=%s%s",
            (
                event.tenant,
                event.company_id or "-",
                event.key,
                event.source or "-",
                event.outcome,
                " wrote_back" if event.wrote_back else "",
            ),
            None,
            extra={"access": event},
        )
        self._logger.handle(record)


class TableAccessLog:
    """Appends each access to ``company_secret_access`` (one statement per access, cache hits included),
    on a connection from ``connections`` as the application role (``ensure_roles`` grants EXECUTE)."""

    def __init__(self, connections: ConnectionFactory, settings: StoreSettings | None = None) -> None:
        self._connections = connections
        self._statement = sql.SQL("SELECT {}(%s, %s, %s, %s, %s, %s)").format(
            sql.Identifier((settings or StoreSettings()).access_function())
        )

    def record(self, event: AccessEvent) -> None:
        with self._connections() as conn:
            conn.execute(self._statement, _row(event))

    def record_batch(self, events: Sequence[AccessEvent]) -> None:
        """All of ``events`` in one transaction, the statements pipelined (psycopg's ``executemany``): a batch
        is recorded whole or not at all, so the journal's retry of a refused batch writes no row twice."""
        with self._connections() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(self._statement, [_row(event) for event in events])


def _row(event: AccessEvent) -> list[object]:
    return [
        event.company_id,
        event.tenant,
        event.key,
        None if event.source is None else str(event.source),
        str(event.outcome),
        event.wrote_back,
    ]

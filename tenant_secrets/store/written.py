"""When each stored value was written, from the audit trail (never a value, never a ciphertext).

The rows' own ``updated_at`` is a ``timestamp`` without a time zone (the seed's Drizzle schema); the
audit's ``at`` is a ``timestamptz`` written by the database's trigger, so it is what `tenantctl rotation
status` trusts: the time of the insert or update that wrote the row's current ``version``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.companies import company_id
from tenant_secrets.store.settings import AUDIT, SECRETS, StoreSettings

Written = tuple[datetime | None, int]
"""When the current value was written (None if the audit has no record of it), and its version."""


def written_times(
    conn: psycopg.Connection[Any], settings: StoreSettings, companies: Collection[str]
) -> dict[tuple[str, str], Written]:
    """``(company id, key) -> (written at, version)`` for every row of these companies, in one query."""
    ids = [company_id(c, label=c) for c in companies]
    if not ids:
        return {}
    query = sql.SQL(
        "SELECT s.company_id::text, s.secret_key, s.version, max(a.at) FROM {secrets} s "
        "LEFT JOIN {audit} a ON a.secret_id = s.id AND a.version = s.version AND a.action IN ('insert', 'update') "
        "WHERE s.company_id = ANY(%s::uuid[]) GROUP BY 1, 2, 3"
    ).format(secrets=settings.table(SECRETS), audit=settings.table(AUDIT))
    try:
        with conn.transaction():
            rows = conn.execute(query, [ids]).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {(str(cid), str(key)): (at, int(version)) for cid, key, version, at in rows}


def key_version_since(conn: psycopg.Connection[Any], settings: StoreSettings, key_version: int) -> datetime | None:
    """When a row was first written with this master key version (an insert, or the first re-encryption)."""
    query = sql.SQL("SELECT min(at) FROM {} WHERE key_version = %s AND action <> 'delete'").format(
        settings.table(AUDIT)
    )
    try:
        with conn.transaction():
            row = conn.execute(query, [key_version]).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else row[0]

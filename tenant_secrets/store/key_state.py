"""What the database keeps for writers that do not hold the keyring: the application's key version.

The seed's ``setTenantSecret`` encrypts with ``MASTER_ENCRYPTION_KEY`` and names only the seed's columns;
the store's trigger (migration ``0008_keyless_writes``) labels such a row with the key version recorded
here and keeps the previous value as history, pruned to the retention recorded here. The schema
resource records both on every `pulumi up` (docs/decisions/0049-keyless-writes.md). A number, never a key.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.settings import KEY_STATE, SECRETS, StoreSettings


def record_key_state(conn: psycopg.Connection[Any], settings: StoreSettings, *, app_key_version: int | None) -> None:
    """Record ``app_key_version`` (the version ``MASTER_ENCRYPTION_KEY`` holds for the application; None keeps
    the one recorded) and the settings' history retention; a no-op write is skipped, so an unchanged `up`
    writes nothing."""
    if app_key_version is not None and app_key_version < 1:
        raise ValueError("app_key_version: a master key version, >= 1")
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "INSERT INTO {0} AS k (app_key_version, history_retention)"
                " SELECT coalesce(%s, (SELECT max(key_version) FROM {1}), 1), %s"
                " ON CONFLICT (singleton) DO UPDATE SET"
                " app_key_version = coalesce(%s, k.app_key_version),"
                " history_retention = excluded.history_retention, recorded_at = now()"
                " WHERE (k.app_key_version, k.history_retention)"
                " IS DISTINCT FROM (coalesce(%s, k.app_key_version), excluded.history_retention)"
            ).format(settings.table(KEY_STATE), settings.table(SECRETS)),
            [app_key_version, settings.history_retention, app_key_version, app_key_version],
        )


def recorded_key_version(conn: psycopg.Connection[Any], settings: StoreSettings) -> int | None:
    """The key version recorded for writers without the keyring, or None before the first record."""
    try:
        with conn.transaction():
            row = conn.execute(sql.SQL("SELECT app_key_version FROM {}").format(settings.table(KEY_STATE))).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else int(row[0])

"""Ciphertexts of unbound rows that are found elsewhere too: moved, not written (decision 0049).

A row without a binding was written by a writer without the keyring (the application's own
setTenantSecret) or moved there by a plain UPDATE: the database cannot tell them apart, since both name
only the seed's columns. A writer that encrypts always draws a fresh IV, so its ciphertext is found nowhere
else; a plain UPDATE that moves one leaves the row's previous ciphertext as history (migration 0008), so the
moved one is still held by its source row or by that row's history. Such a row is never bound or read as
the row's own value.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.settings import HISTORY, SECRETS, StoreSettings


def moved_ciphertexts(conn: psycopg.Connection[Any], settings: StoreSettings, unbound: Collection[str]) -> set[str]:
    """Those of ``unbound`` (ciphertexts of rows without a binding) that two or more rows or history entries
    hold, in one query; the ciphertexts themselves are never shown by a caller."""
    if not unbound:
        return set()
    wanted = list(unbound)
    query = sql.SQL(
        "SELECT c FROM (SELECT secret_value_encrypted AS c FROM {0} WHERE secret_value_encrypted = ANY(%s)"
        " UNION ALL SELECT secret_value_encrypted FROM {1} WHERE secret_value_encrypted = ANY(%s)) AS held"
        " GROUP BY c HAVING count(*) > 1"
    ).format(settings.table(SECRETS), settings.table(HISTORY))
    return {str(row[0]) for row in conn.execute(query, [wanted, wanted])}

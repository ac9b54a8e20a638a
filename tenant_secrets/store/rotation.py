"""Master key rotation: move every stored ciphertext onto the keyring's active key.

Rotation runs in batches, each its own short transaction, so a large table is never locked as a
whole. Between batches some rows are on the old key and some on the new one; each row's
``key_version`` says which, so an application that holds both keys reads every row throughout.
Values do not change: a re-encrypted row keeps its ``version`` and ``updated_at`` and gets no history
entry (the audit trail records it as ``reencrypt``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql

from tenant_secrets.envelope import EnvelopeError, Keyring, KeyringError
from tenant_secrets.store.errors import StoreError
from tenant_secrets.store.settings import HISTORY, SECRETS, StoreSettings


@dataclass(frozen=True)
class _Table:
    base: str
    id_type: str  # the SQL type of its id column
    label: str  # how errors name its rows


_TABLES = (_Table(SECRETS, "uuid", "secrets"), _Table(HISTORY, "bigint", "history entries"))


def key_versions_in_use(conn: psycopg.Connection[Any], settings: StoreSettings) -> dict[int, dict[str, int]]:
    """``key version -> {"secrets": rows, "history entries": rows}`` for every version still stored."""
    usage: dict[int, dict[str, int]] = {}
    with conn.transaction():
        for table in _TABLES:
            query = sql.SQL("SELECT key_version, count(*) FROM {} GROUP BY key_version").format(
                settings.table(table.base)
            )
            for version, count in conn.execute(query).fetchall():
                usage.setdefault(int(version), {})[table.label] = int(count)
    return usage


def check_keyring(conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring) -> None:
    """Raise :class:`KeyringError` naming the key versions still in use that the keyring lacks."""
    usage = key_versions_in_use(conn, settings)
    missing = sorted(usage.keys() - keyring.keys.keys())
    if missing:
        detail = "; ".join(
            f"version {v}: " + ", ".join(f"{n} {label}" for label, n in sorted(usage[v].items())) for v in missing
        )
        raise KeyringError(
            f"the keyring (versions {', '.join(map(str, keyring.versions))}) lacks key versions still in "
            f"use ({detail}): keep those keys until `rotate` has moved every value to the active key"
        )


def iter_rotate(
    conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, batch_size: int = 500
) -> Iterator[int]:
    """Re-encrypt onto the active key, one committed batch at a time; yield each batch's row count.

    ``conn`` must not be inside a transaction (each batch commits on its own). Rows changed
    concurrently are left to a later batch or are already on the active key: each update checks
    that the row still has the key version it was read with.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise StoreError("rotate commits batch by batch: pass a connection that is not inside a transaction")
    check_keyring(conn, settings, keyring)
    for table in _TABLES:
        while count := _rotate_batch(conn, settings, keyring, table, batch_size):
            yield count


def rotate(conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, batch_size: int = 500) -> int:
    """Re-encrypt every row and history entry not on the active key; return how many were."""
    return sum(iter_rotate(conn, settings, keyring, batch_size))


def _rotate_batch(
    conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, table: _Table, batch_size: int
) -> int:
    name = settings.table(table.base)
    id_array = sql.SQL(f"{table.id_type}[]")
    with conn.transaction():
        rows = conn.execute(
            sql.SQL(
                "SELECT id, secret_value_encrypted, key_version FROM {} WHERE key_version <> %s"
                " ORDER BY id LIMIT %s FOR UPDATE"
            ).format(name),
            [keyring.active, batch_size],
        ).fetchall()
        if not rows:
            return 0
        ids = [row[0] for row in rows]
        old_versions = [row[2] for row in rows]
        ciphertexts = [_reencrypt(keyring, table, row_id, ct, version) for row_id, ct, version in rows]
        conn.execute(
            sql.SQL(
                "UPDATE {} AS t SET secret_value_encrypted = u.ciphertext, key_version = %s"
                " FROM unnest(%s::{}, %s::text[], %s::int[]) AS u(id, ciphertext, old_version)"
                " WHERE t.id = u.id AND t.key_version = u.old_version"
            ).format(name, id_array),
            [keyring.active, ids, ciphertexts, old_versions],
        )
    return len(rows)


def _reencrypt(keyring: Keyring, table: _Table, row_id: object, ciphertext: str, version: int) -> str:
    try:
        return keyring.encrypt(keyring.decrypt(ciphertext, version))
    except EnvelopeError as exc:
        raise StoreError(
            f"cannot decrypt {table.label} row {row_id} (key version {version}): {exc}; check that the "
            f"keyring's key {version} is the one it was written with (nothing in this batch was written)"
        ) from None

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

from tenant_secrets.secret.binding import BoundRow, Problem, bind, check_row
from tenant_secrets.secret.envelope import EnvelopeError, Keyring, KeyringError
from tenant_secrets.store.errors import StoreError
from tenant_secrets.store.moved import moved_ciphertexts
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
    that the row still has the key version it was read with. A row whose ciphertext is not bound to it
    (:mod:`tenant_secrets.secret.binding`: moved from another row, altered) is left as it is, so a rotation
    never blesses it with a fresh binding; the preflight names it and its tenant's run overwrites it.
    """
    return _batches(conn, settings, keyring, batch_size, which=sql.SQL("key_version <> %s"), params=[keyring.active])


def rotate(conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, batch_size: int = 500) -> int:
    """Re-encrypt every row and history entry not on the active key; return how many were."""
    return sum(iter_rotate(conn, settings, keyring, batch_size))


def bind_rows(conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, batch_size: int = 500) -> int:
    """Give every row and history entry that has no binding yet (written before migration 0005, or by
    another writer) its binding, re-encrypted onto the active key; return how many were. Committed batch
    by batch, like :func:`rotate`."""
    return sum(_batches(conn, settings, keyring, batch_size, which=sql.SQL("binding IS NULL"), params=[]))


def _batches(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    keyring: Keyring,
    batch_size: int,
    *,
    which: sql.Composable,
    params: list[Any],
) -> Iterator[int]:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise StoreError("rotate commits batch by batch: pass a connection that is not inside a transaction")
    check_keyring(conn, settings, keyring)
    for table in _TABLES:
        after: object = None
        while True:
            count, after = _rotate_batch(conn, settings, keyring, table, batch_size, which, params, after)
            if after is None:
                break
            if count:
                yield count


def _rotate_batch(  # noqa: PLR0917 - one batch of one table, all of it needed
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    keyring: Keyring,
    table: _Table,
    batch_size: int,
    which: sql.Composable,
    params: list[Any],
    after: object,
) -> tuple[int, object]:
    """Rewrite one batch of rows matching ``which`` with ids after ``after``; (rows written, last id read),
    the last id None when no row was left."""
    name = settings.table(table.base)
    id_array = sql.SQL(f"{table.id_type}[]")
    with conn.transaction():
        rows = conn.execute(
            sql.SQL(
                "SELECT id, company_id::text, secret_key, version, secret_value_encrypted, key_version, binding"
                " FROM {} WHERE {} AND (%s::{} IS NULL OR id > %s::{}) ORDER BY id LIMIT %s FOR UPDATE"
            ).format(name, which, sql.SQL(table.id_type), sql.SQL(table.id_type)),
            [*params, after, after, batch_size],
        ).fetchall()
        if not rows:
            return 0, None
        moved = moved_ciphertexts(conn, settings, [r[4] for r in rows if r[6] is None])
        updates: list[tuple[object, str, int, str]] = []  # id, ciphertext, old key version, binding
        for row_id, company, key, version, ciphertext, key_version, binding in rows:
            stored = BoundRow(company, key, key_version, version, ciphertext, binding)
            if check_row(keyring, stored) not in {None, Problem.MISSING} or ciphertext in moved:
                continue
            fresh = _reencrypt(keyring, table, row_id, ciphertext, key_version, unbound=binding is None)
            bound = bind(keyring, BoundRow(company, key, keyring.active, version, fresh))
            updates.append((row_id, fresh, key_version, bound))
        if updates:
            ids, ciphertexts, old_versions, bindings = (list(column) for column in zip(*updates, strict=True))
            conn.execute(
                sql.SQL(
                    "UPDATE {} AS t SET secret_value_encrypted = u.ciphertext, key_version = %s, binding = u.binding"
                    " FROM unnest(%s::{}, %s::text[], %s::int[], %s::text[]) AS u(id, ciphertext, old_version, binding)"
                    " WHERE t.id = u.id AND t.key_version = u.old_version"
                ).format(name, id_array),
                [keyring.active, ids, ciphertexts, old_versions, bindings],
            )
    return len(updates), rows[-1][0]


def _reencrypt(
    keyring: Keyring, table: _Table, row_id: object, ciphertext: str, version: int, *, unbound: bool = False
) -> str:
    """The value under the active key. A row without a binding was written by a writer without the keyring,
    labelled with the version the database had recorded (decision 0049): when the application's key moved
    between that record and its write, another version of the keyring opens it, and that one is used."""
    versions = [version, *(v for v in keyring.versions if v != version)] if unbound else [version]
    for candidate in versions:
        if candidate not in keyring.keys:
            continue
        try:
            return keyring.encrypt(keyring.decrypt(ciphertext, candidate))
        except EnvelopeError:
            continue
    try:
        return keyring.encrypt(keyring.decrypt(ciphertext, version))
    except EnvelopeError as exc:
        raise StoreError(
            f"cannot decrypt {table.label} row {row_id} (key version {version}): {exc}; check that the "
            f"keyring's key {version} is the one it was written with (nothing in this batch was written)"
        ) from None

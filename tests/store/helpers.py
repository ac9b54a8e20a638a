"""Reading the store's tables back in tests: snapshots to compare before and after a call."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

Snapshot = dict[tuple[str, str], tuple[Any, ...]]


def secret_rows(conn: psycopg.Connection[Any]) -> Snapshot:
    """``(company id, key) -> (ciphertext, updated_at, xmin, version, key_version)``.

    ``xmin`` changes on any UPDATE of a row, even one that writes the same values back.
    """
    rows = conn.execute(
        "SELECT company_id::text, secret_key, secret_value_encrypted, updated_at, xmin::text,"
        " version, key_version FROM company_secrets"
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def history_rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """``(company id, key, version, key_version, ciphertext)`` of every history entry, oldest first."""
    return conn.execute(
        "SELECT company_id::text, secret_key, version, key_version, secret_value_encrypted"
        " FROM company_secret_versions ORDER BY company_id, secret_key, version"
    ).fetchall()


def audit_rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """``(company id, key, action, version, key_version)`` of the audit trail, in order."""
    return conn.execute(
        "SELECT company_id::text, secret_key, action, version, key_version FROM company_secret_audit ORDER BY id"
    ).fetchall()


def count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])

"""The audit log: one row per mutation, naming who changed which key where, never a value."""

from __future__ import annotations

import sqlite3
from typing import Any

from infisical_server.data.db import Database, now_iso
from infisical_server.paths import Location


def record(conn: sqlite3.Connection, identity: str, where: Location, key: str, action: str) -> None:
    """Append an entry inside the caller's transaction, so it commits with the change it describes."""
    conn.execute(
        "INSERT INTO audit (identity, time, environment, path, key, action) VALUES (?, ?, ?, ?, ?, ?)",
        (identity, now_iso(), where.environment, where.path, key, action),
    )


def entries(db: Database) -> list[dict[str, Any]]:
    with db.reader() as conn:
        rows = conn.execute("SELECT identity, time, environment, path, key, action FROM audit ORDER BY seq").fetchall()
    return [dict(row) for row in rows]

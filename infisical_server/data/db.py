"""The SQLite file that holds environments, folders, secrets, their versions and the audit log.

One connection, serialized by a lock; every mutation runs in one ``BEGIN IMMEDIATE`` transaction, so a
batch either applies completely or not at all. Folders form an adjacency list like Infisical's
``secret_folders`` (a ``root`` folder per environment, children deleted by ``ON DELETE CASCADE``).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from infisical_server.errors import DatabaseFailure

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS environments (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (project_id, slug)
);
CREATE TABLE IF NOT EXISTS folders (
    id TEXT PRIMARY KEY,
    env_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES folders(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    description TEXT,
    is_reserved INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_secret_modified TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS folders_unique_child ON folders (env_id, COALESCE(parent_id, ''), name);
CREATE TABLE IF NOT EXISTS secrets (
    id TEXT PRIMARY KEY,
    folder_id TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    comment TEXT NOT NULL,
    version INTEGER NOT NULL,
    skip_multiline_encoding INTEGER,
    reminder_note TEXT,
    reminder_repeat_days REAL,
    actor_id TEXT,
    actor_name TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (folder_id, key, type)
);
CREATE TABLE IF NOT EXISTS secret_versions (
    secret_id TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (secret_id, version)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL,
    time TEXT NOT NULL,
    environment TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    action TEXT NOT NULL
);
"""

# Infisical's DEFAULT_PROJECT_ENVS names; other slugs use the slug as the name.
DEFAULT_ENV_NAMES = {"dev": "Development", "staging": "Staging", "prod": "Production"}


def now_iso() -> str:
    """A timestamp as JavaScript's ``Date.toISOString`` prints it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def fetch_optional(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    return row


def fetch_one(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> sqlite3.Row:
    """A row that must exist (e.g. one just written); its absence is a database failure."""
    row = fetch_optional(conn, sql, params)
    if row is None:
        raise DatabaseFailure(name="DatabaseError")
    return row


class Database:
    """The store's single connection; use :meth:`transaction` for writes and :meth:`reader` for reads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def meta(self, key: str, create: str) -> str:
        """A persistent setting, created with ``create`` on first use (e.g. the token signing key)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return str(row["value"])
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, create))
            return create

    def ensure_environment(self, project_id: str, slug: str) -> None:
        """Create an environment and its root folder unless they exist (the config seeds them)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM environments WHERE project_id = ? AND slug = ?", (project_id, slug)
            ).fetchone()
            if row is not None:
                return
            env_id = new_id()
            conn.execute(
                "INSERT INTO environments (id, project_id, slug, name) VALUES (?, ?, ?, ?)",
                (env_id, project_id, slug, DEFAULT_ENV_NAMES.get(slug, slug)),
            )
            stamp = now_iso()
            conn.execute(
                "INSERT INTO folders (id, env_id, parent_id, name, created_at, updated_at) "
                "VALUES (?, ?, NULL, 'root', ?, ?)",
                (new_id(), env_id, stamp, stamp),
            )

"""Secrets: the raw (plaintext) secret operations of Infisical's secret-v2 bridge service.

Source: ``services/secret-v2-bridge/secret-v2-bridge-service.ts`` (@0b1895f, the newer behaviour) and
``reshapeBridgeSecret`` in ``secret-v2-bridge-fns.ts`` for the returned shape. Every write runs in one
transaction with its audit entries, so a batch is all or nothing. Versions start at 1 and every update
adds one; each version's key, value and comment are kept for ``GET ...?version=N``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infisical_server.data import audit
from infisical_server.data.auth import Guard
from infisical_server.data.db import Database, fetch_one, fetch_optional, new_id, now_iso
from infisical_server.data.folder_store import (
    descendants,
    find_env,
    find_folder,
    locate,
    require_folder,
    unknown_environment,
)
from infisical_server.data.references import expand
from infisical_server.errors import BadRequest, ForbiddenRequest, NotFound
from infisical_server.paths import Location, is_within

HIDDEN_VALUE = "<hidden-by-infisical>"
SECRETS = "secrets"
PERSONAL = "personal"
UPDATE_MODES = ("failOnNotFound", "upsert", "ignore")
SHARED_BY_KEY = "SELECT * FROM secrets WHERE folder_id = ? AND key = ? AND type = 'shared'"


@dataclass(frozen=True)
class SecretInput:
    """A secret to create (values already passed through the routes' transforms)."""

    key: str
    value: str
    comment: str = ""
    skip_multiline_encoding: bool | None = None
    reminder_note: str | None = None
    reminder_repeat_days: float | None = None


@dataclass(frozen=True)
class SecretChange:
    """An update: None means "leave as is"."""

    key: str
    value: str | None = None
    comment: str | None = None
    skip_multiline_encoding: bool | None = None
    new_key: str | None = None
    secret_path: str | None = None
    reminder_note: str | None = None
    reminder_repeat_days: float | None = None


def shape(
    row: sqlite3.Row,
    where: Location,
    *,
    value: str | None = None,
    comment: str | None = None,
    hidden: bool = False,
) -> dict[str, Any]:
    """Infisical's ``secretRawSchema`` for one row; ``value``/``comment`` override the stored ones."""
    skip = row["skip_multiline_encoding"]
    secret: dict[str, Any] = {
        "id": row["id"],
        "_id": row["id"],
        "workspace": where.project_id,
        "environment": where.environment,
        "version": row["version"],
        "type": row["type"],
        "secretKey": row["key"],
        "secretValue": HIDDEN_VALUE if hidden else (row["value"] if value is None else value),
        "secretComment": row["comment"] if comment is None else comment,
        "secretReminderNote": row["reminder_note"],
        "secretReminderRepeatDays": row["reminder_repeat_days"],
        "skipMultilineEncoding": None if skip is None else bool(skip),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "isRotatedSecret": False,
    }
    if row["actor_id"]:
        secret["actor"] = {
            "actorId": row["actor_id"],
            "actorType": "identity",
            "name": row["actor_name"],
            "membershipId": None,
            "groupId": None,
        }
    return secret


def with_visibility(secret: dict[str, Any], hidden: bool = False) -> dict[str, Any]:
    return {**secret, "secretValueHidden": hidden}


def with_details(secret: dict[str, Any], path: str, hidden: bool) -> dict[str, Any]:
    """The read routes' extras: visibility, path, and (always empty here) tags and metadata."""
    return {**with_visibility(secret, hidden), "secretPath": path, "tags": [], "secretMetadata": []}


def _refuse_personal(kind: str, verb: str) -> None:
    """Machine identities cannot own personal secrets."""
    if kind == PERSONAL:
        raise BadRequest(f"Must be user to {verb} personal secret")


class SecretStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reads -----------------------------------------------------------------------------------

    def list_secrets(
        self,
        guard: Guard,
        where: Location,
        *,
        recursive: bool,
        view_value: bool,
        expand_references: bool,
        filtered_out: bool,
    ) -> list[dict[str, Any]]:
        """Secrets of a folder (and its subfolders when recursive), each with its ``secretPath``.

        ``filtered_out`` is set when a tag or metadata filter was given: no secret here has tags or
        metadata, so the answer is empty once the folder is known to exist.
        """
        if not recursive:
            guard.require_read(where.environment, where.path)
        elif where.environment not in guard.identity.environments:
            raise ForbiddenRequest("You do not have permission to read secret values")
        with self.db.reader() as conn:
            if recursive and find_env(conn, where.project_id, where.environment) is None:
                raise unknown_environment(where, quote_project=False)
            folder = locate(conn, where)
            if folder is None:
                raise NotFound(
                    f"Folder with path '{where.path}' in environment '{where.environment}' was not found. "
                    "Please ensure the environment slug and secret path is correct.",
                    name="SecretPathNotFound",
                )
            folders = [(folder["id"], where.path)]
            if recursive:
                base = "" if where.path == "/" else where.path
                folders += [(row["id"], f"{base}{rel}") for row, rel in descendants(conn, folder["id"])]
                folders = [(fid, path) for fid, path in folders if is_within(path, guard.identity.path_prefix)]
            if filtered_out:
                return []
            result = []
            for folder_id, path in folders:
                here = Location(where.project_id, where.environment, path)
                rows = conn.execute(
                    "SELECT * FROM secrets WHERE folder_id = ? AND type = 'shared' ORDER BY key", (folder_id,)
                ).fetchall()
                for row in rows:
                    value = row["value"]
                    if expand_references and view_value:
                        value = self._expand(conn, guard, here, row, value=value)
                    result.append(
                        with_details(shape(row, here, value=value, hidden=not view_value), path, not view_value)
                    )
            return result

    def get(
        self,
        guard: Guard,
        where: Location,
        key: str,
        *,
        kind: str,
        version: int | None,
        view_value: bool,
        expand_references: bool,
    ) -> dict[str, Any]:
        guard.require_read(where.environment, where.path)
        with self.db.reader() as conn:
            folder = require_folder(conn, where, "GetSecretByName")
            row = fetch_optional(
                conn,
                "SELECT * FROM secrets WHERE folder_id = ? AND key = ? AND type = ?",
                (folder["id"], key, kind),
            )
            if row is None:
                raise NotFound(f"Secret with name '{key}' not found")
            value = row["value"]
            if version is not None:
                old = fetch_optional(
                    conn,
                    "SELECT value FROM secret_versions WHERE secret_id = ? AND version = ?",
                    (row["id"], version),
                )
                if old is None:
                    raise NotFound(f"Secret with name '{key}' not found")
                value = old["value"]
            if expand_references and view_value:
                value = self._expand(conn, guard, where, row, value=value)
            return with_details(shape(row, where, value=value, hidden=not view_value), where.path, not view_value)

    @staticmethod
    def _expand(conn: sqlite3.Connection, guard: Guard, where: Location, row: sqlite3.Row, *, value: str) -> str:
        cache: dict[tuple[str, str], dict[str, str]] = {}

        def fetch(environment: str, path: str, key: str) -> str:
            if (environment, path) not in cache:
                folder = locate(conn, Location(where.project_id, environment, path))
                query = "SELECT key, value FROM secrets WHERE folder_id = ? AND type = 'shared'"
                rows = [] if folder is None else conn.execute(query, (folder["id"],)).fetchall()
                cache[(environment, path)] = {r["key"]: r["value"] for r in rows}
            return cache[(environment, path)].get(key, "")

        return expand(
            value,
            environment=where.environment,
            path=where.path,
            key=row["key"],
            fetch=fetch,
            can_read=guard.allows,
            skip_multiline_encoding=bool(row["skip_multiline_encoding"]),
        )

    # --- single writes ---------------------------------------------------------------------------

    def create(self, guard: Guard, where: Location, item: SecretInput, *, kind: str) -> dict[str, Any]:
        with self.db.transaction() as conn:
            folder = require_folder(conn, where, "CreateSecret")
            _refuse_personal(kind, "create")
            if fetch_optional(conn, SHARED_BY_KEY, (folder["id"], item.key)) is not None:
                raise BadRequest("Secret already exists")
            guard.require("create", SECRETS, where.environment, where.path)
            row = self._insert(conn, guard, folder["id"], item)
            self._touch_folder(conn, folder["id"])
            audit.record(conn, guard.identity.name, where, item.key, "create-secret")
            return shape(row, where, value=item.value, comment=item.comment)

    def update(self, guard: Guard, where: Location, change: SecretChange, *, kind: str) -> dict[str, Any]:
        with self.db.transaction() as conn:
            folder = require_folder(conn, where, "UpdateSecret")
            _refuse_personal(kind, "create")
            row = fetch_optional(conn, SHARED_BY_KEY, (folder["id"], change.key))
            if row is None:
                raise NotFound(f"Secret with name {change.key} not found")
            guard.require("edit", SECRETS, where.environment, where.path)
            renamed = change.new_key and change.new_key != change.key
            if renamed and fetch_optional(conn, SHARED_BY_KEY, (folder["id"], change.new_key)) is not None:
                raise BadRequest("Secret with the new name already exists")
            updated = self._apply(conn, guard, row, change)
            self._touch_folder(conn, folder["id"])
            self._audit_change(conn, guard, where, change)
            # As upstream: the response echoes the value and comment sent, or "" when none was sent.
            return with_visibility(shape(updated, where, value=change.value or "", comment=change.comment or ""))

    def delete(self, guard: Guard, where: Location, key: str, *, kind: str) -> dict[str, Any]:
        with self.db.transaction() as conn:
            folder = require_folder(conn, where, "DeleteSecret")
            _refuse_personal(kind, "delete")
            row = fetch_optional(conn, SHARED_BY_KEY, (folder["id"], key))
            if row is None:
                raise NotFound("Secret not found")
            guard.require("delete", SECRETS, where.environment, where.path)
            conn.execute("DELETE FROM secrets WHERE id = ?", (row["id"],))
            self._touch_folder(conn, folder["id"])
            audit.record(conn, guard.identity.name, where, key, "delete-secret")
            return with_visibility(shape(row, where))

    # --- batch writes ----------------------------------------------------------------------------

    def create_many(self, guard: Guard, where: Location, items: Sequence[SecretInput]) -> list[dict[str, Any]]:
        with self.db.transaction() as conn:
            folder = require_folder(conn, where, "CreateManySecret")
            keys = [item.key for item in items]
            existing = [k for k in dict.fromkeys(keys) if fetch_optional(conn, SHARED_BY_KEY, (folder["id"], k))]
            # Keys repeated within one request would collide the same way.
            clashes = existing or sorted({k for k in keys if keys.count(k) > 1})
            if clashes:
                raise BadRequest(f"Secret already exists: {','.join(clashes)}")
            guard.require("create", SECRETS, where.environment, where.path)
            created = []
            for item in items:
                created.append(shape(self._insert(conn, guard, folder["id"], item), where))
                audit.record(conn, guard.identity.name, where, item.key, "create-secret")
            self._touch_folder(conn, folder["id"])
            return created

    def update_many(
        self, guard: Guard, where: Location, changes: Sequence[SecretChange], *, mode: str
    ) -> list[dict[str, Any]]:
        """Update secrets, grouped by each item's ``secretPath`` (default: the request's path)."""
        groups: dict[str, list[SecretChange]] = {}
        for change in changes:
            groups.setdefault(change.secret_path or where.path, []).append(change)
        with self.db.transaction() as conn:
            env = find_env(conn, where.project_id, where.environment)
            if env is None:
                raise unknown_environment(where)
            folders = {path: find_folder(conn, env.id, path) for path in groups}
            result: list[dict[str, Any]] = []
            for path, group in groups.items():
                folder = folders[path]
                if folder is None:
                    # Upstream interpolates a null here; clients see exactly this message.
                    raise NotFound(
                        f"Folder with path 'null' in environment with slug '{where.environment}' not found",
                        name="UpdateManySecret",
                    )
                here = Location(where.project_id, where.environment, path)
                result += self._update_group(conn, guard, here, folder["id"], group, mode=mode)
                self._touch_folder(conn, folder["id"])
            return result

    def _update_group(
        self,
        conn: sqlite3.Connection,
        guard: Guard,
        where: Location,
        folder_id: str,
        group: Sequence[SecretChange],
        *,
        mode: str,
    ) -> list[dict[str, Any]]:
        rows = {c.key: fetch_optional(conn, SHARED_BY_KEY, (folder_id, c.key)) for c in group}
        missing = [c.key for c in group if rows[c.key] is None]
        if missing and mode == "failOnNotFound":
            raise NotFound(f"Secret does not exist: {', '.join(missing)} in path {where.path}")
        to_update = [(c, row) for c in group if (row := rows[c.key]) is not None]
        to_create = list({c.key: c for c in group if rows[c.key] is None}.values()) if mode == "upsert" else []
        if to_update:
            guard.require("edit", SECRETS, where.environment, where.path)
        if to_create:
            guard.require("create", SECRETS, where.environment, where.path)
        renamed = [c.new_key for c, _ in to_update if c.new_key and c.new_key != c.key]
        if any(fetch_optional(conn, SHARED_BY_KEY, (folder_id, new_key)) for new_key in renamed):
            raise BadRequest(f"Secret with new name already exists: {', '.join(k for k in renamed if k)}")
        result = []
        for change, row in to_update:
            result.append(with_visibility(shape(self._apply(conn, guard, row, change), where)))
            self._audit_change(conn, guard, where, change)
        for change in to_create:
            item = SecretInput(
                key=change.key,
                value=change.value or "",
                comment=change.comment or "",
                skip_multiline_encoding=change.skip_multiline_encoding,
                reminder_note=change.reminder_note,
                reminder_repeat_days=change.reminder_repeat_days,
            )
            result.append(with_visibility(shape(self._insert(conn, guard, folder_id, item), where)))
            audit.record(conn, guard.identity.name, where, change.key, "create-secret")
        return result

    def delete_many(self, guard: Guard, where: Location, keys: Sequence[str]) -> list[dict[str, Any]]:
        with self.db.transaction() as conn:
            folder = require_folder(conn, where, "DeleteManySecret")
            found = [fetch_optional(conn, SHARED_BY_KEY, (folder["id"], key)) for key in dict.fromkeys(keys)]
            rows = [row for row in found if row is not None]
            if len(rows) != len(keys):
                # Upstream lists the keys it *found* in this message, not the missing ones.
                raise NotFound(f"One or more secrets does not exist: {', '.join(row['key'] for row in rows)}")
            guard.require("delete", SECRETS, where.environment, where.path)
            for row in rows:
                conn.execute("DELETE FROM secrets WHERE id = ?", (row["id"],))
                audit.record(conn, guard.identity.name, where, row["key"], "delete-secret")
            self._touch_folder(conn, folder["id"])
            return [with_visibility(shape(row, where)) for row in rows]

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _touch_folder(conn: sqlite3.Connection, folder_id: str) -> None:
        conn.execute("UPDATE folders SET last_secret_modified = ? WHERE id = ?", (now_iso(), folder_id))

    @staticmethod
    def _insert(conn: sqlite3.Connection, guard: Guard, folder_id: str, item: SecretInput) -> sqlite3.Row:
        secret_id, stamp = new_id(), now_iso()
        skip = None if item.skip_multiline_encoding is None else int(item.skip_multiline_encoding)
        conn.execute(
            "INSERT INTO secrets (id, folder_id, key, type, value, comment, version, "
            "skip_multiline_encoding, reminder_note, reminder_repeat_days, actor_id, actor_name, "
            "created_at, updated_at) "
            "VALUES (?, ?, ?, 'shared', ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
            (
                secret_id,
                folder_id,
                item.key,
                item.value,
                item.comment,
                skip,
                item.reminder_note,
                item.reminder_repeat_days,
                guard.identity.id,
                guard.identity.name,
                stamp,
                stamp,
            ),
        )
        conn.execute(
            "INSERT INTO secret_versions (secret_id, version, key, value, comment, created_at) "
            "VALUES (?, 1, ?, ?, ?, ?)",
            (secret_id, item.key, item.value, item.comment, stamp),
        )
        return fetch_one(conn, "SELECT * FROM secrets WHERE id = ?", (secret_id,))

    @staticmethod
    def _apply(conn: sqlite3.Connection, guard: Guard, row: sqlite3.Row, change: SecretChange) -> sqlite3.Row:
        """Write one change and record the new version (every update adds a version, as upstream)."""
        key = change.new_key or row["key"]
        value = row["value"] if change.value is None else change.value
        comment = row["comment"] if change.comment is None else change.comment
        skip = row["skip_multiline_encoding"]
        if change.skip_multiline_encoding is not None:
            skip = int(change.skip_multiline_encoding)
        stamp = now_iso()
        conn.execute(
            "UPDATE secrets SET key = ?, value = ?, comment = ?, skip_multiline_encoding = ?, "
            "reminder_note = COALESCE(?, reminder_note), "
            "reminder_repeat_days = COALESCE(?, reminder_repeat_days), "
            "version = version + 1, actor_id = ?, actor_name = ?, updated_at = ? WHERE id = ?",
            (
                key,
                value,
                comment,
                skip,
                change.reminder_note,
                change.reminder_repeat_days,
                guard.identity.id,
                guard.identity.name,
                stamp,
                row["id"],
            ),
        )
        updated = fetch_one(conn, "SELECT * FROM secrets WHERE id = ?", (row["id"],))
        conn.execute(
            "INSERT INTO secret_versions (secret_id, version, key, value, comment, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (row["id"], updated["version"], key, value, comment, stamp),
        )
        return updated

    @staticmethod
    def _audit_change(conn: sqlite3.Connection, guard: Guard, where: Location, change: SecretChange) -> None:
        audit.record(conn, guard.identity.name, where, change.key, "update-secret")
        if change.new_key and change.new_key != change.key:
            audit.record(conn, guard.identity.name, where, change.new_key, "rename-secret")

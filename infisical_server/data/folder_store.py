"""Folders: lookups by path, and the create/list/get/update/delete rules of Infisical's folder service.

Source: ``services/secret-folder/secret-folder-service.ts`` and ``secret-folder-dal.ts`` (@4af4016).
The newer behaviour is followed where versions differ: creating an existing folder is a 400, and a
folder that still holds secrets or subfolders is only deleted with ``forceDelete``. In the methods
below, ``where.path`` is the *parent* path, as in the API.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infisical_server.data import audit
from infisical_server.data.auth import Guard
from infisical_server.data.db import Database, fetch_one, fetch_optional, new_id, now_iso
from infisical_server.errors import BadRequest, ForbiddenRequest, NotFound
from infisical_server.paths import Location, is_valid_secret_path, join, segments

INVALID_PATH = "Invalid secret path. Only alphanumeric characters, dashes, and underscores are allowed."
FOLDERS = "secret-folders"
CHILD = "SELECT * FROM folders WHERE parent_id = ? AND name = ? AND is_reserved = 0"


@dataclass(frozen=True)
class Env:
    id: str
    project_id: str
    slug: str
    name: str


def find_env(conn: sqlite3.Connection, project_id: str, slug: str) -> Env | None:
    row = fetch_optional(conn, "SELECT * FROM environments WHERE project_id = ? AND slug = ?", (project_id, slug))
    return None if row is None else Env(row["id"], row["project_id"], row["slug"], row["name"])


def find_folder(conn: sqlite3.Connection, env_id: str, path: str) -> sqlite3.Row | None:
    """The folder at exactly ``path``; a path without a leading slash never matches (as upstream).

    Raises 400 when a segment is not a valid folder name (``findBySecretPath``).
    """
    if not is_valid_secret_path(path):
        raise BadRequest(INVALID_PATH)
    names = segments(path)
    if path != "/" + "/".join(names):
        return None
    folder = fetch_optional(
        conn, "SELECT * FROM folders WHERE env_id = ? AND parent_id IS NULL AND name = 'root'", (env_id,)
    )
    for name in names:
        if folder is None:
            return None
        folder = fetch_optional(conn, CHILD, (folder["id"], name))
    return folder


def locate(conn: sqlite3.Connection, where: Location) -> sqlite3.Row | None:
    """The folder at ``where`` (None when the environment or the folder does not exist)."""
    env = find_env(conn, where.project_id, where.environment)
    return None if env is None else find_folder(conn, env.id, where.path)


def folder_path(conn: sqlite3.Connection, folder_id: str) -> str:
    names: list[str] = []
    row = fetch_optional(conn, "SELECT name, parent_id FROM folders WHERE id = ?", (folder_id,))
    while row is not None and row["parent_id"] is not None:
        names.append(row["name"])
        row = fetch_optional(conn, "SELECT name, parent_id FROM folders WHERE id = ?", (row["parent_id"],))
    return "/" + "/".join(reversed(names))


def children(conn: sqlite3.Connection, folder_id: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM folders WHERE parent_id = ? AND is_reserved = 0 ORDER BY name", (folder_id,)
    ).fetchall()


def descendants(conn: sqlite3.Connection, folder_id: str) -> list[tuple[sqlite3.Row, str]]:
    """Every folder below ``folder_id`` with its path relative to it, by depth then name."""
    found: list[tuple[sqlite3.Row, str]] = []
    level: list[tuple[str, str]] = [(folder_id, "")]
    while level:
        next_level: list[tuple[str, str]] = []
        for parent_id, parent_rel in level:
            for row in children(conn, parent_id):
                rel = f"{parent_rel}/{row['name']}"
                found.append((row, rel))
                next_level.append((row["id"], rel))
        level = next_level
    return found


def serialize(row: sqlite3.Row) -> dict[str, Any]:
    """Infisical's SecretFoldersSchema."""
    return {
        "id": row["id"],
        "name": row["name"],
        "version": row["version"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "envId": row["env_id"],
        "parentId": row["parent_id"],
        "isReserved": bool(row["is_reserved"]),
        "description": row["description"],
        "lastSecretModified": row["last_secret_modified"],
    }


def _missing_folder(where: Location, name: str | None = None) -> NotFound:
    return NotFound(
        f"Folder with path '{where.path}' in environment with slug '{where.environment}' not found", name=name
    )


def require_folder(conn: sqlite3.Connection, where: Location, error_name: str | None = None) -> sqlite3.Row:
    """The folder at ``where``; a 404 (named ``error_name``) when it or its environment does not exist."""
    folder = locate(conn, where)
    if folder is None:
        raise _missing_folder(where, error_name)
    return folder


def unknown_environment(where: Location, *, quote_project: bool = True) -> NotFound:
    project = f"'{where.project_id}'" if quote_project else where.project_id
    return NotFound(f"Environment with slug '{where.environment}' in project with ID {project} not found")


def locate_in_known_env(conn: sqlite3.Connection, where: Location) -> sqlite3.Row | None:
    """The folder at ``where`` (None when it does not exist); 404 when the environment does not."""
    env = find_env(conn, where.project_id, where.environment)
    if env is None:
        raise NotFound(f"Environment with slug '{where.environment}' not found")
    return find_folder(conn, env.id, where.path)


def _modified_since(folder: dict[str, Any], cutoff: datetime) -> bool:
    stamp = folder["lastSecretModified"]
    return bool(stamp) and datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= cutoff


class FolderStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, guard: Guard, where: Location, name: str, *, description: str | None) -> dict[str, Any]:
        """Create ``where.path/name``, with missing parents (like ``mkdir -p``); an existing one is a 400."""
        guard.require("create", FOLDERS, where.environment, where.path)
        with self.db.transaction() as conn:
            env = find_env(conn, where.project_id, where.environment)
            if env is None:
                raise unknown_environment(where)
            target = join(where.path, name)
            if not is_valid_secret_path(target):
                raise BadRequest(INVALID_PATH)
            if find_folder(conn, env.id, target) is not None:
                raise BadRequest(f"Folder with name '{name}' already exists in path '{where.path}'")
            current = fetch_one(
                conn,
                "SELECT * FROM folders WHERE env_id = ? AND parent_id IS NULL AND name = 'root'",
                (env.id,),
            )
            current_path = "/"
            names = segments(target)
            for depth, segment in enumerate(names, start=1):
                child = fetch_optional(conn, CHILD, (current["id"], segment))
                if child is None:
                    described = description if depth == len(names) else None
                    child = self._insert(conn, env.id, current["id"], segment, described)
                    parent = Location(where.project_id, where.environment, current_path)
                    audit.record(conn, guard.identity.name, parent, segment, "create-folder")
                current, current_path = child, join(current_path, segment)
            return {**serialize(current), "path": target}

    @staticmethod
    def _insert(
        conn: sqlite3.Connection, env_id: str, parent_id: str, name: str, description: str | None
    ) -> sqlite3.Row:
        stamp, folder_id = now_iso(), new_id()
        conn.execute(
            "INSERT INTO folders (id, env_id, parent_id, name, description, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (folder_id, env_id, parent_id, name, description, stamp, stamp),
        )
        return fetch_one(conn, "SELECT * FROM folders WHERE id = ?", (folder_id,))

    def list_folders(
        self, where: Location, *, recursive: bool, last_secret_modified: datetime | None
    ) -> list[dict[str, Any]]:
        """Subfolders of ``where.path`` (all descendants, with ``relativePath``, when recursive).

        [] when the path does not exist. As upstream, listing needs only project membership.
        """
        with self.db.reader() as conn:
            parent = locate_in_known_env(conn, where)
            if parent is None:
                return []
            if recursive:
                found = [{**serialize(row), "relativePath": rel} for row, rel in descendants(conn, parent["id"])]
            else:
                found = [serialize(row) for row in children(conn, parent["id"])]
        if last_secret_modified is not None:
            found = [folder for folder in found if _modified_since(folder, last_secret_modified)]
        return found

    def get(self, guard: Guard, folder_id: str) -> dict[str, Any]:
        with self.db.reader() as conn:
            row = fetch_optional(
                conn,
                "SELECT folders.*, environments.project_id, environments.slug AS env_slug, "
                "environments.name AS env_name FROM folders "
                "JOIN environments ON environments.id = folders.env_id WHERE folders.id = ?",
                (folder_id,),
            )
            if row is None:
                raise NotFound(f"Folder with ID '{folder_id}' not found")
            if row["project_id"] != guard.identity.project:
                raise ForbiddenRequest()
            path = folder_path(conn, folder_id)
        return {
            **serialize(row),
            "environment": {"envId": row["env_id"], "envName": row["env_name"], "envSlug": row["env_slug"]},
            "path": path,
            "projectId": row["project_id"],
        }

    def update(
        self,
        guard: Guard,
        where: Location,
        folder_id: str,
        name: str,
        *,
        description: str | None,
        description_given: bool,
    ) -> dict[str, Any]:
        """Rename (and re-describe) ``folder_id`` (an id, or a name for old CLIs) under ``where.path``."""
        guard.require("edit", FOLDERS, where.environment, where.path)
        with self.db.transaction() as conn:
            parent = require_folder(conn, where, "UpdateFolder")
            folder = fetch_optional(
                conn,
                "SELECT * FROM folders WHERE parent_id = ? AND is_reserved = 0 AND (id = ? OR name = ?) "
                "ORDER BY id = ? DESC LIMIT 1",
                (parent["id"], folder_id, folder_id, folder_id),
            )
            if folder is None:
                raise NotFound(f"Folder with ID '{folder_id}' not found", name="UpdateFolder")
            clash = fetch_optional(conn, "SELECT 1 FROM folders WHERE parent_id = ? AND name = ?", (parent["id"], name))
            if name != folder["name"] and clash is not None:
                raise BadRequest("Folder with specified name already exists", name="UpdateFolder")
            conn.execute(
                "UPDATE folders SET name = ?, description = ?, version = version + 1, updated_at = ? WHERE id = ?",
                (name, description if description_given else folder["description"], now_iso(), folder["id"]),
            )
            audit.record(conn, guard.identity.name, where, name, "update-folder")
            row = fetch_one(conn, "SELECT * FROM folders WHERE id = ?", (folder["id"],))
            return {**serialize(row), "path": join(where.path, name)}

    def delete(self, guard: Guard, where: Location, id_or_name: str, *, force: bool) -> dict[str, Any]:
        """Delete a folder found by name, else by id (children cascade); a non-empty one needs ``force``."""
        guard.require("delete", FOLDERS, where.environment, where.path)
        with self.db.transaction() as conn:
            parent = locate_in_known_env(conn, where)
            if parent is None:
                raise _missing_folder(where)
            folder = fetch_optional(conn, CHILD, (parent["id"], id_or_name))
            if folder is None and _is_uuid(id_or_name):
                folder = fetch_optional(
                    conn,
                    "SELECT * FROM folders WHERE parent_id = ? AND id = ? AND is_reserved = 0",
                    (parent["id"], id_or_name),
                )
            if folder is None:
                raise NotFound(f"Folder with ID '{id_or_name}' not found")
            if not force and _has_contents(conn, folder["id"]):
                raise BadRequest(
                    f'Cannot delete folder "{folder["name"]}" because it contains resources. '
                    "Use forceDelete=true to delete it forcefully.",
                    name="deleteFolder",
                )
            conn.execute("DELETE FROM folders WHERE id = ?", (folder["id"],))
            audit.record(conn, guard.identity.name, where, folder["name"], "delete-folder")
            return serialize(folder)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _has_contents(conn: sqlite3.Connection, folder_id: str) -> bool:
    """Secrets or subfolders (this server has no dynamic secrets)."""
    secret = fetch_optional(conn, "SELECT 1 FROM secrets WHERE folder_id = ? LIMIT 1", (folder_id,))
    child = fetch_optional(conn, "SELECT 1 FROM folders WHERE parent_id = ? LIMIT 1", (folder_id,))
    return secret is not None or child is not None

"""Folder routes, v2 (``projectId``) and the deprecated v1 (``workspaceId``, ``directory``).

Sources: ``routes/v2/secret-folder-router.ts`` (@09a41c3/@4af4016) and
``routes/v1/deprecated-secret-folder-router.ts`` (@225f59e). One set of handlers serves both versions;
a :class:`Version` holds what differs. Writes use the secrets rate limit, reads the read limit. v1
DELETE always deletes forcefully.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route

from infisical_server.api.http import Context, endpoint
from infisical_server.api.schema import Parser
from infisical_server.paths import Location, is_valid_folder_name, normalize_folder_path

INVALID_NAME = "Invalid folder name. Only alphanumeric characters, dashes, and underscores are allowed."


def _name(p: Parser) -> str:
    return p.text("name", refinements=[(is_valid_folder_name, INVALID_NAME)])


def _path(p: Parser) -> str:
    """``path``, default "/": trimmed, with a leading slash and without a trailing one."""
    return p.text("path", default="/", transform=normalize_folder_path)


def _required_path(p: Parser) -> str:
    """``path`` as :func:`_path`, but with no default (the v2 list route requires it)."""
    return p.text("path", transform=normalize_folder_path)


def _v1_path(p: Parser) -> str:
    """v1 takes ``path`` or its CLI alias ``directory``; neither means the root."""
    path = p.optional_text("path", transform=normalize_folder_path)
    directory = p.optional_text("directory", transform=normalize_folder_path)
    return path or directory or "/"


def _force_delete(p: Parser) -> bool:
    """v2's ``forceDelete``, default false."""
    return bool(p.boolean("forceDelete", default=False))


def _always_force(_: Parser) -> bool:
    """v1 reads no ``forceDelete``: it always deletes forcefully."""
    return True


def _description(p: Parser) -> tuple[str | None, bool]:
    """The description, and whether one was sent (an update leaves it alone otherwise)."""
    return p.optional_text("description", nullable=True, trim=False), p.present("description")


@dataclass(frozen=True)
class Version:
    """What differs between v1 and v2: the prefix, the project field, how paths are read, forcing."""

    prefix: str
    project_key: str
    path: Callable[[Parser], str]
    """The (parent) path of create, update and delete."""
    list_path: Callable[[Parser], str]
    force: Callable[[Parser], bool]


V2 = Version("/api/v2/folders", "projectId", path=_path, list_path=_required_path, force=_force_delete)
V1 = Version("/api/v1/folders", "workspaceId", path=_v1_path, list_path=_v1_path, force=_always_force)


async def _body(ctx: Context, id_key: str) -> tuple[Parser, str]:
    """A parser for the body, sharing its issue list with the path parameter ``id_key``, and that parameter."""
    params = Parser(ctx.params)
    target = params.text(id_key, trim=False)
    return Parser(await ctx.body(), issues=params.issues), target


@endpoint("read")
async def get_folder(ctx: Context) -> dict[str, Any]:
    p = Parser(ctx.params)
    folder_id = p.text("id")
    p.check()
    return {"folder": ctx.services.folders.get(ctx.guard, folder_id)}


def routes(version: Version) -> list[Route]:
    """The five folder routes of one version (fields are read in the order their 422 issues list them)."""

    def scope(p: Parser) -> tuple[str, str]:
        """The project field and ``environment``, read first by every route of this version."""
        return p.text(version.project_key), p.text("environment")

    @endpoint("secrets")
    async def create_folder(ctx: Context) -> dict[str, Any]:
        p = Parser(await ctx.body())
        (project_id, environment), name, path = scope(p), _name(p), version.path(p)
        description, _ = _description(p)
        p.check()
        where = Location(ctx.project(project_id), environment, path)
        return {"folder": ctx.services.folders.create(ctx.guard, where, name, description=description)}

    @endpoint("read")
    async def list_folders(ctx: Context) -> dict[str, Any]:
        p = Parser(ctx.query)
        project_id, environment = scope(p)
        modified = p.datetime_string("lastSecretModified")
        path = version.list_path(p)
        recursive = p.loose_boolean("recursive", default=False)
        p.check()
        where = Location(ctx.project(project_id), environment, path)
        folders = ctx.services.folders.list_folders(where, recursive=recursive, last_secret_modified=modified)
        return {"folders": folders}

    @endpoint("secrets")
    async def update_folder(ctx: Context) -> dict[str, Any]:
        p, folder_id = await _body(ctx, "folderId")
        (project_id, environment), name, path = scope(p), _name(p), version.path(p)
        description, described = _description(p)
        p.check()
        where = Location(ctx.project(project_id), environment, path)
        folder = ctx.services.folders.update(
            ctx.guard, where, folder_id, name, description=description, description_given=described
        )
        return {"folder": folder}

    @endpoint("secrets")
    async def delete_folder(ctx: Context) -> dict[str, Any]:
        p, id_or_name = await _body(ctx, "folderIdOrName")
        (project_id, environment), path = scope(p), version.path(p)
        force = version.force(p)
        p.check()
        where = Location(ctx.project(project_id), environment, path)
        return {"folder": ctx.services.folders.delete(ctx.guard, where, id_or_name, force=force)}

    return [
        Route(version.prefix, create_folder, methods=["POST"]),
        Route(version.prefix, list_folders, methods=["GET"]),
        Route(f"{version.prefix}/{{id}}", get_folder, methods=["GET"]),
        Route(f"{version.prefix}/{{folderId}}", update_folder, methods=["PATCH"]),
        Route(f"{version.prefix}/{{folderIdOrName}}", delete_folder, methods=["DELETE"]),
    ]


ROUTES = routes(V2) + routes(V1)

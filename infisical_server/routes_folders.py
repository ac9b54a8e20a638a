"""Folder routes, v2 (``projectId``) and the deprecated v1 (``workspaceId``, ``directory``).

Sources: ``routes/v2/secret-folder-router.ts`` (@09a41c3/@4af4016) and
``routes/v1/deprecated-secret-folder-router.ts`` (@225f59e). Writes use the secrets rate limit, reads
the read limit. v1 DELETE always deletes forcefully.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from infisical_server.http import Context, endpoint
from infisical_server.paths import Location, is_valid_folder_name, normalize_folder_path
from infisical_server.schema import Parser

INVALID_NAME = "Invalid folder name. Only alphanumeric characters, dashes, and underscores are allowed."


def _name(p: Parser) -> str:
    return p.text("name", refinements=[(is_valid_folder_name, INVALID_NAME)])


def _path(p: Parser) -> str:
    """``path``, default "/": trimmed, with a leading slash and without a trailing one."""
    return p.text("path", default="/", transform=normalize_folder_path)


def _v1_path(p: Parser) -> str:
    """v1 takes ``path`` or its CLI alias ``directory``; neither means the root."""
    path = p.optional_text("path", transform=normalize_folder_path)
    directory = p.optional_text("directory", transform=normalize_folder_path)
    return path or directory or "/"


def _description(p: Parser) -> tuple[str | None, bool]:
    """The description, and whether one was sent (an update leaves it alone otherwise)."""
    return p.optional_text("description", nullable=True, trim=False), p.present("description")


def _target(ctx: Context, id_key: str) -> tuple[Parser, str]:
    """A parser for the body that shares its issue list with the path parameter ``id_key``."""
    params = Parser(ctx.params)
    return params, params.text(id_key, trim=False)


# --- v2 ------------------------------------------------------------------------------------------


@endpoint("secrets")
async def create_v2(ctx: Context) -> dict[str, Any]:
    p = Parser(await ctx.body())
    project_id, environment, name, path = p.text("projectId"), p.text("environment"), _name(p), _path(p)
    description, _ = _description(p)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    return {"folder": ctx.services.folders.create(ctx.guard, where, name, description=description)}


@endpoint("read")
async def list_v2(ctx: Context) -> dict[str, Any]:
    p = Parser(ctx.query)
    project_id, environment = p.text("projectId"), p.text("environment")
    modified = p.datetime_string("lastSecretModified")
    path = p.text("path", transform=normalize_folder_path)  # required in v2: no default
    recursive = p.loose_boolean("recursive", default=False)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    folders = ctx.services.folders.list_folders(where, recursive=recursive, last_secret_modified=modified)
    return {"folders": folders}


@endpoint("read")
async def get_folder(ctx: Context) -> dict[str, Any]:
    p = Parser(ctx.params)
    folder_id = p.text("id")
    p.check()
    return {"folder": ctx.services.folders.get(ctx.guard, folder_id)}


@endpoint("secrets")
async def update_v2(ctx: Context) -> dict[str, Any]:
    params, folder_id = _target(ctx, "folderId")
    p = Parser(await ctx.body(), issues=params.issues)
    project_id, environment, name, path = p.text("projectId"), p.text("environment"), _name(p), _path(p)
    description, described = _description(p)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    folder = ctx.services.folders.update(
        ctx.guard, where, folder_id, name, description=description, description_given=described
    )
    return {"folder": folder}


@endpoint("secrets")
async def delete_v2(ctx: Context) -> dict[str, Any]:
    params, id_or_name = _target(ctx, "folderIdOrName")
    p = Parser(await ctx.body(), issues=params.issues)
    project_id, environment, path = p.text("projectId"), p.text("environment"), _path(p)
    force = p.boolean("forceDelete", default=False)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    folder = ctx.services.folders.delete(ctx.guard, where, id_or_name, force=bool(force))
    return {"folder": folder}


# --- v1 ------------------------------------------------------------------------------------------


@endpoint("secrets")
async def create_v1(ctx: Context) -> dict[str, Any]:
    p = Parser(await ctx.body())
    project_id, environment, name, path = p.text("workspaceId"), p.text("environment"), _name(p), _v1_path(p)
    description, _ = _description(p)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    return {"folder": ctx.services.folders.create(ctx.guard, where, name, description=description)}


@endpoint("read")
async def list_v1(ctx: Context) -> dict[str, Any]:
    p = Parser(ctx.query)
    project_id, environment = p.text("workspaceId"), p.text("environment")
    modified = p.datetime_string("lastSecretModified")
    path = _v1_path(p)
    recursive = p.loose_boolean("recursive", default=False)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    folders = ctx.services.folders.list_folders(where, recursive=recursive, last_secret_modified=modified)
    return {"folders": folders}


@endpoint("secrets")
async def update_v1(ctx: Context) -> dict[str, Any]:
    params, folder_id = _target(ctx, "folderId")
    p = Parser(await ctx.body(), issues=params.issues)
    project_id, environment, name, path = p.text("workspaceId"), p.text("environment"), _name(p), _v1_path(p)
    description, described = _description(p)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    folder = ctx.services.folders.update(
        ctx.guard, where, folder_id, name, description=description, description_given=described
    )
    return {"folder": folder}


@endpoint("secrets")
async def delete_v1(ctx: Context) -> dict[str, Any]:
    params, id_or_name = _target(ctx, "folderIdOrName")
    p = Parser(await ctx.body(), issues=params.issues)
    project_id, environment, path = p.text("workspaceId"), p.text("environment"), _v1_path(p)
    p.check()
    where = Location(ctx.project(project_id), environment, path)
    folder = ctx.services.folders.delete(ctx.guard, where, id_or_name, force=True)
    return {"folder": folder}


ROUTES = [
    Route("/api/v2/folders", create_v2, methods=["POST"]),
    Route("/api/v2/folders", list_v2, methods=["GET"]),
    Route("/api/v2/folders/{id}", get_folder, methods=["GET"]),
    Route("/api/v2/folders/{folderId}", update_v2, methods=["PATCH"]),
    Route("/api/v2/folders/{folderIdOrName}", delete_v2, methods=["DELETE"]),
    Route("/api/v1/folders", create_v1, methods=["POST"]),
    Route("/api/v1/folders", list_v1, methods=["GET"]),
    Route("/api/v1/folders/{id}", get_folder, methods=["GET"]),
    Route("/api/v1/folders/{folderId}", update_v1, methods=["PATCH"]),
    Route("/api/v1/folders/{folderIdOrName}", delete_v1, methods=["DELETE"]),
]

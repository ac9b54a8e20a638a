"""Raw secret routes: v3 (``/api/v3/secrets/raw``, ``workspaceId`` or a slug) and v4 (``/api/v4/secrets``,
``projectId``), each with list, get, create, update, delete and the three batch operations.

Sources: ``routes/v3/deprecated-secret-router.ts`` and ``routes/v4/secret-router.ts`` (@03e75b2).
Every route uses the secrets rate limit. Query booleans accept only "true"/"false"; ``secretPath`` is
trimmed and loses a trailing slash but gains no leading one (so ``a/b`` never matches a folder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route

from infisical_server.api.http import Context, endpoint
from infisical_server.api.schema import Parser, Refinement
from infisical_server.data.secret_store import UPDATE_MODES, SecretChange, SecretInput
from infisical_server.errors import BadRequest, NotFound
from infisical_server.paths import Location, remove_trailing_slash, transform_secret_value

SECRET_TYPES = ("shared", "personal")
NAME_RULE: Refinement = (
    lambda name: ":" not in name and "/" not in name,
    "Secret name cannot contain colon or forward slash.",
)
REMINDER_NOTE_MAX = "Secret reminder note cannot exceed 1024 characters"
MISSING_BODY_PROJECT = "Must provide either project slug or projectId"

ProjectResolver = Callable[[Context], str]
LocationResolver = Callable[[Context], Location]


@dataclass(frozen=True)
class Flavor:
    """What differs between v3 and v4: the routes' paths and how the project is named."""

    single: str
    batch: str
    v4: bool

    def project(self, p: Parser, *, in_query: bool, required: bool, missing: str) -> ProjectResolver:
        """Read the project fields now (so their issues are reported); resolve after validation."""
        if self.v4:
            project_id = p.text("projectId") if required else p.optional_text("projectId")

            def by_id(ctx: Context) -> str:
                if not project_id:
                    raise BadRequest(missing)
                return ctx.project(project_id)

            return by_id
        workspace_id = p.optional_text("workspaceId")
        slug = p.optional_text("workspaceSlug" if in_query else "projectSlug")
        return lambda ctx: ctx.project_from(workspace_id, slug)

    def body_location(self, p: Parser) -> LocationResolver:
        """Read a body's project, ``environment`` and ``secretPath`` now; build the Location after validation."""
        project = self.project(p, in_query=False, required=True, missing=MISSING_BODY_PROJECT)
        environment, path = p.text("environment"), _secret_path(p)
        return lambda ctx: Location(project(ctx), environment, path)


V3 = Flavor(single="/api/v3/secrets/raw", batch="/api/v3/secrets/batch/raw", v4=False)
V4 = Flavor(single="/api/v4/secrets", batch="/api/v4/secrets/batch", v4=True)


def _secret_path(p: Parser, key: str = "secretPath") -> str:
    return p.text(key, default="/", transform=remove_trailing_slash)


def _key(p: Parser, key: str) -> str:
    """``SecretNameSchema``: trimmed, non-empty, no colon or slash."""
    return p.text(key, min_length=1, refinements=[NAME_RULE])


def _new_key(p: Parser) -> str | None:
    return p.optional_text("newSecretName", min_length=1, refinements=[NAME_RULE])


def _reminder(p: Parser) -> tuple[str | None, float | None]:
    note = p.optional_text(
        "secretReminderNote", nullable=True, trim=False, max_length=1024, max_message=REMINDER_NOTE_MAX
    )
    return note, p.number("secretReminderRepeatDays", nullable=True)


def _no_tags(tag_ids: list[str] | None) -> None:
    """This server has no tags, so any tag id is unknown (upstream: ``Tag not found``)."""
    if tag_ids:
        raise NotFound("Tag not found. Found ")


def _metadata_filter(p: Parser) -> bool:
    """Parse ``metadataFilter`` (``key=a,value=b|...``); True when it names at least one pair."""
    text = p.optional_text("metadataFilter", trim=False)
    if not text:
        return False
    pairs = 0
    for pair in text.split("|"):
        fields: dict[str, str] = {}
        parts = [part.strip() for part in pair.replace("=", ",").split(",")]
        for name, value in zip(parts[::2], parts[1::2], strict=False):
            if name.lower() in ("key", "value") and value:
                fields[name.lower()] = value
        pairs += int(len(fields) == 2)
    if pairs > 10:
        p.custom("metadataFilter", "You can only filter by up to 10 metadata fields")
    return pairs > 0


def routes(flavor: Flavor) -> list[Route]:
    """The eight routes of one flavour (batch routes first, so ``batch`` is never a secret name)."""

    @endpoint("secrets")
    async def list_secrets(ctx: Context) -> dict[str, Any]:
        p = Parser(ctx.query)
        filtered = _metadata_filter(p)
        project = flavor.project(p, in_query=True, required=False, missing="Missing project id or environment")
        environment = p.optional_text("environment")
        path = _secret_path(p)
        view = p.string_boolean("viewSecretValue", default=True)
        expand = p.string_boolean("expandSecretReferences", default=False)
        recursive = p.string_boolean("recursive", default=False)
        include_imports = p.string_boolean("include_imports", default=False)
        tags = [t.strip() for t in (p.optional_text("tagSlugs", trim=False) or "").split(",") if t.strip()]
        p.check()
        project_id = project(ctx)
        if environment is None:
            raise BadRequest("Missing project id or environment")
        secrets = ctx.services.secrets.list_secrets(
            ctx.guard,
            Location(project_id, environment, path),
            recursive=recursive,
            view_value=view,
            expand_references=expand,
            filtered_out=filtered or bool(tags),
        )
        return {"secrets": secrets, "imports": []} if include_imports else {"secrets": secrets}

    @endpoint("secrets")
    async def get_secret(ctx: Context) -> dict[str, Any]:
        params = Parser(ctx.params)
        name = params.text("secretName")
        p = Parser(ctx.query, issues=params.issues)
        missing_project = (
            "You must provide  workspaceId" if flavor.v4 else "You must provide workspaceSlug or workspaceId"
        )
        project = flavor.project(p, in_query=True, required=True, missing=missing_project)
        environment = p.optional_text("environment")
        path = _secret_path(p)
        version = p.coerced_number("version")
        kind = p.enum("type", SECRET_TYPES, default="shared")
        view = p.string_boolean("viewSecretValue", default=True)
        expand = p.string_boolean("expandSecretReferences", default=False)
        p.string_boolean("include_imports", default=False)
        p.check()
        if environment is None:
            raise BadRequest("Missing environment")
        project_id = project(ctx)
        secret = ctx.services.secrets.get(
            ctx.guard,
            Location(project_id, environment, path),
            name,
            kind=kind,
            version=version,
            view_value=view,
            expand_references=expand,
        )
        return {"secret": secret}

    @endpoint("secrets")
    async def create_secret(ctx: Context) -> dict[str, Any]:
        params = Parser(ctx.params)
        name = _key(params, "secretName")
        p = Parser(await ctx.body(), issues=params.issues)
        resolve = flavor.body_location(p)
        value = p.text("secretValue", trim=False, transform=transform_secret_value)
        comment = p.text("secretComment", default="")
        p.raw("secretMetadata")
        tag_ids = p.string_list("tagIds")
        skip = p.boolean("skipMultilineEncoding", nullable=True)
        kind = p.enum("type", SECRET_TYPES, default="shared")
        note, repeat_days = _reminder(p)
        p.check()
        where = resolve(ctx)
        _no_tags(tag_ids)
        item = SecretInput(name, value, comment, skip, note, repeat_days)
        return {"secret": ctx.services.secrets.create(ctx.guard, where, item, kind=kind)}

    @endpoint("secrets")
    async def update_secret(ctx: Context) -> dict[str, Any]:
        params = Parser(ctx.params)
        name = params.text("secretName", min_length=1)
        p = Parser(await ctx.body(), issues=params.issues)
        project = flavor.project(p, in_query=False, required=True, missing=MISSING_BODY_PROJECT)
        environment = p.text("environment")
        value = p.optional_text("secretValue", trim=False, transform=transform_secret_value)
        path = _secret_path(p)
        skip = p.boolean("skipMultilineEncoding")
        kind = p.enum("type", SECRET_TYPES, default="shared")
        tag_ids = p.string_list("tagIds")
        p.raw("metadata")
        p.raw("secretMetadata")
        note, repeat_days = _reminder(p)
        p.string_list("secretReminderRecipients")
        new_key = _new_key(p)
        comment = p.optional_text("secretComment", trim=False)
        p.check()
        where = Location(project(ctx), environment, path)
        _no_tags(tag_ids)
        change = SecretChange(name, value, comment, skip, new_key, None, note, repeat_days)
        return {"secret": ctx.services.secrets.update(ctx.guard, where, change, kind=kind)}

    @endpoint("secrets")
    async def delete_secret(ctx: Context) -> dict[str, Any]:
        params = Parser(ctx.params)
        name = params.text("secretName", trim=False, min_length=1)
        p = Parser(await ctx.body(), issues=params.issues)
        resolve = flavor.body_location(p)
        kind = p.enum("type", SECRET_TYPES, default="shared")
        p.check()
        return {"secret": ctx.services.secrets.delete(ctx.guard, resolve(ctx), name, kind=kind)}

    def create_item(p: Parser) -> tuple[SecretInput, list[str] | None]:
        key = _key(p, "secretKey")
        value = p.text("secretValue", trim=False, transform=transform_secret_value)
        comment = p.text("secretComment", default="")
        skip = p.boolean("skipMultilineEncoding", nullable=True)
        p.raw("metadata")
        p.raw("secretMetadata")
        return SecretInput(key, value, comment, skip), p.string_list("tagIds")

    def update_item(p: Parser) -> tuple[SecretChange, list[str] | None]:
        key = _key(p, "secretKey")
        value = p.optional_text("secretValue", trim=False, transform=transform_secret_value)
        path = p.optional_text("secretPath", transform=remove_trailing_slash)
        comment = p.optional_text("secretComment")
        skip = p.boolean("skipMultilineEncoding")
        new_key = _new_key(p)
        tag_ids = p.string_list("tagIds")
        note, repeat_days = _reminder(p)
        p.raw("secretMetadata")
        return SecretChange(key, value, comment, skip, new_key, path, note, repeat_days), tag_ids

    def delete_item(p: Parser) -> str:
        key = p.text("secretKey", trim=False)
        p.enum("type", SECRET_TYPES, default="shared")
        return key

    @endpoint("secrets")
    async def create_many(ctx: Context) -> dict[str, Any]:
        p = Parser(await ctx.body())
        resolve = flavor.body_location(p)
        items = p.objects("secrets", create_item, min_items=1)
        p.check()
        where = resolve(ctx)
        _no_tags([tag for _, tags in items for tag in tags or ()])
        return {"secrets": ctx.services.secrets.create_many(ctx.guard, where, [item for item, _ in items])}

    @endpoint("secrets")
    async def update_many(ctx: Context) -> dict[str, Any]:
        p = Parser(await ctx.body())
        resolve = flavor.body_location(p)
        mode = p.enum("mode", UPDATE_MODES, default="failOnNotFound")
        changes = p.objects("secrets", update_item, min_items=1)
        p.check()
        where = resolve(ctx)
        _no_tags([tag for _, tags in changes for tag in tags or ()])
        updated = ctx.services.secrets.update_many(ctx.guard, where, [change for change, _ in changes], mode=mode)
        return {"secrets": updated}

    @endpoint("secrets")
    async def delete_many(ctx: Context) -> dict[str, Any]:
        p = Parser(await ctx.body())
        resolve = flavor.body_location(p)
        keys = p.objects("secrets", delete_item, min_items=1)
        p.check()
        return {"secrets": ctx.services.secrets.delete_many(ctx.guard, resolve(ctx), keys)}

    single = f"{flavor.single}/{{secretName}}"
    return [
        Route(flavor.batch, create_many, methods=["POST"]),
        Route(flavor.batch, update_many, methods=["PATCH"]),
        Route(flavor.batch, delete_many, methods=["DELETE"]),
        Route(flavor.single, list_secrets, methods=["GET"]),
        Route(single, get_secret, methods=["GET"]),
        Route(single, create_secret, methods=["POST"]),
        Route(single, update_secret, methods=["PATCH"]),
        Route(single, delete_secret, methods=["DELETE"]),
    ]


ROUTES = routes(V3) + routes(V4)

"""The request pipeline every API route shares, in Infisical's order.

Fastify runs the auth hook (``onRequest``), then reads the body (at most :data:`BODY_LIMIT`), then the
rate limiter (``preValidation``), then zod validation, then the handler; errors become
``{reqId, statusCode, message, error}``. :func:`endpoint` wraps a handler with the same steps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from infisical_server.api.admin import AdminState
from infisical_server.api.ratelimit import Decision, RateLimiter
from infisical_server.config import ServerConfig
from infisical_server.data.auth import Authenticator, Guard
from infisical_server.data.db import Database
from infisical_server.data.folder_store import FolderStore
from infisical_server.data.secret_store import SecretStore
from infisical_server.errors import ApiError, BadRequest, NotFound, RateLimitExceeded, new_request_id

log = logging.getLogger("infisical_server")

JSON_ERROR = "Body is not valid JSON but content-type is set to 'application/json'"
BODY_LIMIT = 1_048_576
"""Fastify's default ``bodyLimit`` (1 MiB), which Infisical does not change (``server/app.ts``)."""


@dataclass
class Services:
    config: ServerConfig
    db: Database
    auth: Authenticator
    folders: FolderStore
    secrets: SecretStore
    limiter: RateLimiter
    admin: AdminState


@dataclass
class Context:
    request: Request
    services: Services
    identity_guard: Guard | None = None

    @property
    def guard(self) -> Guard:
        if self.identity_guard is None:
            raise TypeError("the guard exists only in authenticated endpoints")
        return self.identity_guard

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.request.path_params)

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query_params)

    async def body(self) -> object:
        raw = await self.request.body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadRequest(JSON_ERROR, name="Bad Request") from exc

    def project(self, project_id: str) -> str:
        """Check that the caller may use this project; return its id."""
        self.guard.require_project(project_id, self.services.config)
        return project_id

    def project_from(self, project_id: str | None, project_slug: str | None) -> str:
        """Resolve ``workspaceId`` or a project slug (``extractProjectIdFromSlug``)."""
        if project_id:
            return self.project(project_id)
        if project_slug:
            project = self.services.config.project_by_slug(project_slug)
            if project is None:
                raise NotFound(f"Project with slug '{project_slug}' not found")
            return self.project(project.id)
        raise BadRequest("Must provide either project slug or projectId")


Handler = Callable[[Context], Awaitable[dict[str, Any]]]
Endpoint = Callable[[Request], Awaitable[Response]]


class Throttled(RateLimitExceeded):
    """A rate-limit refusal that carries the limiter's headers."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reset_seconds)
        self.headers = decision.headers()


def request_id(request: Request) -> str:
    """The id the gate assigned to this request (one is made up for requests that bypassed it)."""
    rid = request.scope.get("state", {}).get("req_id")
    return rid if isinstance(rid, str) else new_request_id()


def admit(services: Services, request: Request, category: str) -> dict[str, str]:
    """Count the request against its category's limit: the rate-limit headers, or raise Throttled."""
    limit = services.admin.settings.rate_limits.for_category(category)
    client = request.client.host if request.client else "unknown"
    decision = services.limiter.hit(category, client, limit, services.admin.settings.rate_limit_window_seconds)
    if decision is None:
        return {}
    if not decision.allowed:
        raise Throttled(decision)
    return decision.headers()


def endpoint(category: str, *, authenticated: bool = True) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: auth, then the ``category`` rate limit, then the handler; errors to JSON."""

    def wrap(handler: Handler) -> Endpoint:
        async def route(request: Request) -> Response:
            services: Services = request.app.state.services
            rid = request_id(request)
            headers: dict[str, str] = {}
            try:
                guard = None
                if authenticated:
                    guard = Guard(services.auth.authenticate(request.headers.get("authorization")))
                if len(await request.body()) > BODY_LIMIT:
                    # Fastify's FST_ERR_CTP_BODY_TOO_LARGE (413), raised while parsing the body (after the
                    # auth hook, before the rate limiter), reaches Infisical's error handler, which knows
                    # no such class: its catch-all answers 500 "Something went wrong", and Fastify closes
                    # the connection.
                    return JSONResponse(ApiError().body(rid), status_code=500, headers={"connection": "close"})
                headers = admit(services, request, category)
                return JSONResponse(await handler(Context(request, services, guard)), headers=headers)
            except Throttled as exc:
                return JSONResponse(exc.body(rid), status_code=exc.status, headers=exc.headers)
            except ApiError as exc:
                return JSONResponse(exc.body(rid), status_code=exc.status, headers=headers)
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.url.path)
                return JSONResponse(ApiError().body(rid), status_code=500, headers=headers)

        route.__name__ = handler.__name__
        route.__doc__ = handler.__doc__
        return route

    return wrap

"""Assemble the ASGI application from a configuration and a data file."""

from __future__ import annotations

import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from infisical_server.api import routes_auth, routes_folders, routes_secrets
from infisical_server.api.admin import AdminState, Settings, admin_routes
from infisical_server.api.gate import Gate
from infisical_server.api.http import Services
from infisical_server.api.ratelimit import RateLimiter
from infisical_server.config import ServerConfig
from infisical_server.data.auth import Authenticator, TokenSigner
from infisical_server.data.db import Database
from infisical_server.data.folder_store import FolderStore
from infisical_server.data.secret_store import SecretStore


async def not_found(request: Request, _: Exception) -> Response:
    """Fastify's answer for an unknown route, or a known path with another method."""
    message = f"Route {request.method}:{request.url.path} not found"
    return JSONResponse({"message": message, "error": "Not Found", "statusCode": 404}, status_code=404)


def build_services(config: ServerConfig, data: Path) -> Services:
    """Open (or create) the data file, seed the configured environments, wire the stores."""
    db = Database(data)
    for project in config.projects:
        for environment in project.environments:
            db.ensure_environment(project.id, environment)
    signing_key = db.meta("token_signing_key", secrets.token_hex(32))
    return Services(
        config=config,
        db=db,
        auth=Authenticator(config, TokenSigner(bytes.fromhex(signing_key))),
        folders=FolderStore(db),
        secrets=SecretStore(db),
        limiter=RateLimiter(),
        admin=AdminState(Settings(config.rate_limits)),
    )


def create_app(services: Services) -> Starlette:
    routes = [
        *routes_auth.ROUTES,
        *routes_folders.ROUTES,
        *routes_secrets.ROUTES,
        *admin_routes(services.admin, services.db, services.limiter),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Gate, state=services.admin, routes=routes)],
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.services = services
    return app

"""``POST /api/v1/auth/universal-auth/login`` and ``GET /api/status``.

Source: ``routes/v1/identity-universal-auth-router.ts`` (login uses the write rate limit).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infisical_server.api.http import Context, endpoint
from infisical_server.api.schema import Parser
from infisical_server.data.db import now_iso


@endpoint("write", authenticated=False)
async def login(ctx: Context) -> dict[str, Any]:
    p = Parser(await ctx.body())
    client_id, client_secret = p.text("clientId"), p.text("clientSecret")
    p.optional_text("subOrganizationName")
    p.check()
    return ctx.services.auth.login(client_id, client_secret).body()


async def status(_: Request) -> Response:
    """Liveness, as Infisical's ``/api/status`` (its other fields are omitted)."""
    return JSONResponse({"date": now_iso(), "message": "Ok"})


ROUTES = [
    Route("/api/v1/auth/universal-auth/login", login, methods=["POST"]),
    Route("/api/status", status, methods=["GET"]),
]

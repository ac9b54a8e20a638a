"""The outermost middleware: request ids, request counting, injected faults and latency, access log.

It sees every API request before routing (admin requests pass straight through), so counts include
requests that later fail auth, rate limits or validation: they are what a client *sent*. The access
log names the route template and the status, never a query string or a body.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from http import HTTPStatus

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infisical_server.api.admin import ADMIN_PREFIX, AdminState, Fault
from infisical_server.api.protocol import DROP_EXTENSION
from infisical_server.errors import ApiError, RateLimitExceeded, new_request_id

log = logging.getLogger("infisical_server.access")

INJECTED_RETRY_AFTER = 1


class InjectedError(ApiError):
    """The body of an injected failure, in Infisical's error shape."""

    def __init__(self, status: int) -> None:
        phrase = HTTPStatus(status).phrase
        super().__init__(f"{phrase} (injected fault)", name=phrase.replace(" ", ""))
        self.status = status


def failure_response(status: int, request_id: str) -> JSONResponse:
    """What an injected fault answers; a 429 looks exactly like the rate limiter's."""
    if status == 429:
        error: ApiError = RateLimitExceeded(INJECTED_RETRY_AFTER)
        headers = {
            "retry-after": str(INJECTED_RETRY_AFTER),
            "x-ratelimit-limit": "0",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(INJECTED_RETRY_AFTER),
        }
        return JSONResponse(error.body(request_id), status_code=429, headers=headers)
    return JSONResponse(InjectedError(status).body(request_id), status_code=status)


async def _discard(_: Message) -> None:
    """A ``send`` that loses the response (for faults injected after the request was handled)."""


class Gate:
    def __init__(self, app: ASGIApp, state: AdminState, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["req_id"] = request_id
        if scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return

        method, path = scope["method"], scope["path"]
        template = self.template(scope)
        self.state.count(f"{method} {template or path}")
        started = time.perf_counter()
        status = [0]

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        settings = self.state.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        fault = self.state.take_fault(method, path, template)
        note = ""
        if fault is not None:
            note = " (injected drop)" if fault.drop else " (injected fault)"
            await self.inject(fault, scope, receive, tracking_send, request_id)
        elif settings.error_rate and random.random() < settings.error_rate:  # noqa: S311 - not cryptographic
            note = " (injected error rate)"
            await failure_response(503, request_id)(scope, receive, tracking_send)
        else:
            await self.app(scope, receive, tracking_send)
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s -> %s in %.0f ms%s", method, template or path, status[0] or "dropped", elapsed, note)

    async def inject(self, fault: Fault, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.after:
            await self.app(scope, receive, _discard)
        if not fault.drop:
            await failure_response(fault.status, request_id)(scope, receive, send)
            return
        drop = scope.get("extensions", {}).get(DROP_EXTENSION)
        if drop is not None:
            drop["abort"]()
            await asyncio.sleep(0.01)  # let the server notice the closed connection before we return
            return
        # Without the droppable protocol: start a response and stop half-way, which also closes it.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})

    def template(self, scope: Scope) -> str | None:
        """The route template a request matches (e.g. ``/api/v3/secrets/raw/{secretName}``)."""
        partial: str | None = None
        for route in self.routes:
            match, _ = route.matches(scope)
            route_path = getattr(route, "path", None)
            if match is Match.FULL:
                return route_path
            if match is Match.PARTIAL and partial is None:
                partial = route_path
        return partial

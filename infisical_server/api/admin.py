"""Test-only controls that the real API does not have, all under ``/__admin/``.

- ``GET /__admin/requests`` and ``POST /__admin/requests/reset``: counts of API requests received,
  keyed ``"<METHOD> <route template>"``.
- ``POST /__admin/faults``, ``GET /__admin/faults``, ``DELETE /__admin/faults``: make the next
  ``count`` matching requests fail with ``status`` or lose their connection (before or, with
  ``after``, after the request was handled).
- ``GET``/``PUT /__admin/settings``: rate limits and their window, added latency, random error rate.
- ``GET /__admin/audit``: the audit log (identity, time, environment, path, key, action).

They are unauthenticated: the server is meant for loopback use in the demo and tests.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infisical_server.api.ratelimit import WINDOW_SECONDS, RateLimiter
from infisical_server.config import ConfigError, RateLimits, parse_rate_limits
from infisical_server.data import audit
from infisical_server.data.db import Database

ADMIN_PREFIX = "/__admin"


@dataclass
class Fault:
    """The next ``remaining`` requests matching method and path fail this way.

    With ``after``, the request is first handled (and its changes committed), and only the answer is
    lost: the case of a write that succeeded but whose response never arrived.
    """

    path: str
    remaining: int
    status: int = 503
    method: str | None = None
    drop: bool = False
    latency_ms: int = 0
    after: bool = False

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path in (path, template)


@dataclass(frozen=True)
class Settings:
    rate_limits: RateLimits
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit_window_seconds: float = WINDOW_SECONDS

    def as_json(self) -> dict[str, Any]:
        return {
            "rate_limits": asdict(self.rate_limits),
            "rate_limit_window_seconds": self.rate_limit_window_seconds,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
        }


@dataclass
class AdminState:
    """Mutable test controls shared by the gate middleware and the routes."""

    settings: Settings
    counts: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def take_fault(self, method: str, path: str, template: str | None) -> Fault | None:
        """Consume one use of the first fault that matches this request."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, template):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault
        return None


class AdminInputError(ValueError):
    pass


def _int(body: dict[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise AdminInputError(f"{key} must be an integer >= {minimum}")
    return value


def parse_fault(body: object) -> Fault:
    if not isinstance(body, dict):
        raise AdminInputError("the body must be a JSON object")
    path = body.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise AdminInputError("path must be a request path or route template starting with /")
    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise AdminInputError("method must be a string such as PATCH")
    drop, after = body.get("drop", False), body.get("after", False)
    if not isinstance(drop, bool) or not isinstance(after, bool):
        raise AdminInputError("drop and after must be booleans")
    status = _int(body, "status", 503, minimum=100)
    if status > 599:
        raise AdminInputError("status must be an HTTP status code")
    return Fault(
        path=path,
        remaining=_int(body, "count", 1, minimum=1),
        status=status,
        method=method.upper() if method and method != "*" else None,
        drop=drop,
        latency_ms=_int(body, "latency_ms", 0),
        after=after,
    )


def parse_settings(body: object, current: Settings) -> Settings:
    if not isinstance(body, dict):
        raise AdminInputError("the body must be a JSON object")
    updated = current
    if "rate_limits" in body:
        try:
            updated = replace(updated, rate_limits=parse_rate_limits(body["rate_limits"], "rate_limits"))
        except ConfigError as exc:
            raise AdminInputError(str(exc)) from exc
    if "rate_limit_window_seconds" in body:
        window = body["rate_limit_window_seconds"]
        if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 3600:
            raise AdminInputError("rate_limit_window_seconds must be a number of seconds, above 0 and at most 3600")
        updated = replace(updated, rate_limit_window_seconds=float(window))
    if "latency_ms" in body:
        updated = replace(updated, latency_ms=_int(body, "latency_ms", 0))
    if "error_rate" in body:
        rate = body["error_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise AdminInputError("error_rate must be a number between 0 and 1")
        updated = replace(updated, error_rate=float(rate))
    return updated


def admin_routes(state: AdminState, db: Database, limiter: RateLimiter) -> list[Route]:
    """The ``/__admin/`` routes, bound to the server's state."""

    async def body_of(request: Request) -> object:
        try:
            return await request.json()
        except ValueError as exc:
            raise AdminInputError("the body must be JSON") from exc

    def counts() -> dict[str, Any]:
        with state.lock:
            return {"counts": dict(sorted(state.counts.items())), "total": sum(state.counts.values())}

    def faults() -> dict[str, Any]:
        with state.lock:
            return {"faults": [asdict(f) for f in state.faults]}

    async def get_requests(_: Request) -> Response:
        return JSONResponse(counts())

    async def reset_requests(_: Request) -> Response:
        with state.lock:
            state.counts.clear()
        return JSONResponse(counts())

    async def add_fault(request: Request) -> Response:
        try:
            fault = parse_fault(await body_of(request))
        except AdminInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with state.lock:
            state.faults.append(fault)
        return JSONResponse(faults())

    async def list_faults(_: Request) -> Response:
        return JSONResponse(faults())

    async def clear_faults(_: Request) -> Response:
        with state.lock:
            state.faults.clear()
        return JSONResponse(faults())

    async def get_settings(_: Request) -> Response:
        return JSONResponse(state.settings.as_json())

    async def put_settings(request: Request) -> Response:
        try:
            updated = parse_settings(await body_of(request), state.settings)
        except AdminInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if (updated.rate_limits, updated.rate_limit_window_seconds) != (
            state.settings.rate_limits,
            state.settings.rate_limit_window_seconds,
        ):
            limiter.reset()
        state.settings = updated
        return JSONResponse(updated.as_json())

    async def get_audit(_: Request) -> Response:
        return JSONResponse(audit.entries(db))

    return [
        Route(f"{ADMIN_PREFIX}/requests", get_requests, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/requests/reset", reset_requests, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/faults", add_fault, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/faults", list_faults, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/faults", clear_faults, methods=["DELETE"]),
        Route(f"{ADMIN_PREFIX}/settings", get_settings, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/settings", put_settings, methods=["PUT"]),
        Route(f"{ADMIN_PREFIX}/audit", get_audit, methods=["GET"]),
    ]

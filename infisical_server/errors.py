"""Errors with Infisical's wire shape: ``{reqId, statusCode, message, error[, details]}``.

Source: ``server/plugins/error-handler.ts`` and ``lib/errors/index.ts``. Each class carries the status
and the default ``error`` name Infisical uses for it; handlers override the name where Infisical does
(e.g. ``CreateSecret`` or ``deleteFolder``).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

_ALPHANUMERIC = string.ascii_letters + string.digits


def new_request_id() -> str:
    """Infisical's request ids look like ``req-`` followed by 14 alphanumerics."""
    return "req-" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(14))


class ApiError(Exception):
    status = 500
    default_name = "InternalServerError"
    default_message = "Something went wrong"

    def __init__(self, message: Any = None, *, name: str | None = None, details: Any = None) -> None:
        self.message: Any = self.default_message if message is None else message
        self.name = name or self.default_name
        self.details = details
        super().__init__(self.message if isinstance(self.message, str) else self.name)

    def body(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "reqId": request_id,
            "statusCode": self.status,
            "message": self.message,
            "error": self.name,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(ApiError):
    status = 400
    default_name = "BadRequest"
    default_message = "The request is invalid"


class Unauthorized(ApiError):
    status = 401
    default_name = "UnauthorizedError"
    default_message = "You are not allowed to access this resource"


class ForbiddenRequest(ApiError):
    """Infisical's ForbiddenRequestError (e.g. reading secret values without permission)."""

    status = 403
    default_name = "ForbiddenError"
    default_message = "You are not allowed to access this resource"


class PermissionDenied(ApiError):
    """A CASL permission failure: ``You are not allowed to <action> on <subject>`` plus the rules."""

    status = 403
    default_name = "PermissionDenied"


class TokenError(ApiError):
    """A malformed, badly signed or expired access token (jsonwebtoken errors map to 403)."""

    status = 403
    default_name = "TokenError"


class NotFound(ApiError):
    status = 404
    default_name = "NotFound"
    default_message = "The requested entity is not found"


class ValidationFailure(ApiError):
    """A zod failure: ``message`` is the list of issues."""

    status = 422
    default_name = "ValidationFailure"


class RateLimitExceeded(ApiError):
    status = 429
    default_name = "RateLimitExceeded"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Rate limit exceeded. Please try again in {retry_after_seconds} seconds")


class DatabaseFailure(ApiError):
    """Infisical's DatabaseError: always ``Something went wrong`` on the wire."""

    status = 500
    default_name = "DatabaseError"

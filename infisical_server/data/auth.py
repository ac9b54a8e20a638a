"""Universal-auth login, access tokens, and the per-identity access policy.

Tokens are HS256 JWTs like Infisical's (payload ``identityId``, ``authTokenType``, ``iat``, ``exp``),
signed with a key kept in the SQLite file so tokens survive a restart. Verification failures map to
Infisical's answers: no header -> 401 ``Token missing``; malformed, badly signed or expired -> 403
``TokenError`` (``server/plugins/auth/verify-auth.ts``, ``server/plugins/error-handler.ts``).

The access policy is this server's simplification of Infisical's roles: an identity may use the
environments listed for it and the folder subtree under its ``path_prefix``. Denials use Infisical's
two 403 shapes: CASL's ``PermissionDenied`` for writes, ``ForbiddenError`` for reading values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infisical_server.config import IdentityConfig, ServerConfig
from infisical_server.errors import ForbiddenRequest, NotFound, PermissionDenied, TokenError, Unauthorized
from infisical_server.paths import is_within

ACCESS_TOKEN_MAX_TTL = 2592000  # Infisical's default accessTokenMaxTTL (30 days)
_MALFORMED = "The provided access token is malformed. Please use a valid token or generate a new one and try again."
_EXPIRED = "Your token has expired. Please re-authenticate."


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies HS256 JWTs with one secret key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def issue(self, identity_id: str, ttl_seconds: int) -> str:
        now = int(self._clock())
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "identityId": identity_id,
            "identityAccessTokenId": secrets.token_hex(16),
            "authTokenType": "identityAccessToken",
            "iat": now,
            "exp": now + ttl_seconds,
        }
        signing_input = f"{_b64encode(json.dumps(header).encode())}.{_b64encode(json.dumps(payload).encode())}"
        return f"{signing_input}.{self._sign(signing_input)}"

    def verify(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError(_MALFORMED)
        try:
            payload = json.loads(_b64decode(parts[1]))
        except (binascii.Error, ValueError) as exc:
            raise TokenError(_MALFORMED) from exc
        if not isinstance(payload, dict):
            raise TokenError(_MALFORMED)
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            raise TokenError("invalid signature")
        if int(payload.get("exp", 0)) <= self._clock():
            raise TokenError(_EXPIRED)
        return payload

    def _sign(self, signing_input: str) -> str:
        return _b64encode(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())


@dataclass(frozen=True)
class LoginResult:
    access_token: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        return {
            "accessToken": self.access_token,
            "expiresIn": self.expires_in,
            "accessTokenMaxTTL": max(ACCESS_TOKEN_MAX_TTL, self.expires_in),
            "tokenType": "Bearer",
        }


class Authenticator:
    """Logs identities in and resolves a request's bearer token to its identity."""

    def __init__(self, config: ServerConfig, signer: TokenSigner) -> None:
        self._config = config
        self._signer = signer

    def login(self, client_id: str, client_secret: str) -> LoginResult:
        identity = self._config.identity_by_client_id(client_id)
        if identity is None or not hmac.compare_digest(identity.client_secret.encode(), client_secret.encode()):
            raise Unauthorized("Invalid credentials")
        ttl = self._config.token_ttl_seconds
        return LoginResult(self._signer.issue(identity.id, ttl), ttl)

    def authenticate(self, authorization: str | None) -> IdentityConfig:
        if not authorization:
            raise Unauthorized("Token missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Token missing")
        claims = self._signer.verify(token.strip())
        identity = self._config.identity_by_id(str(claims.get("identityId", "")))
        if identity is None:
            raise Unauthorized("Failed to authenticate identity access token")
        return identity


class Guard:
    """What one identity may do: its project, its environments, its path subtree."""

    def __init__(self, identity: IdentityConfig) -> None:
        self.identity = identity

    def require_project(self, project_id: str, config: ServerConfig) -> None:
        if config.project(project_id) is None:
            raise NotFound(f"Project with {project_id} not found")
        if project_id != self.identity.project:
            raise ForbiddenRequest("You are not allowed to access this resource")

    def allows(self, environment: str, path: str) -> bool:
        return environment in self.identity.environments and is_within(path, self.identity.path_prefix)

    def require_read(self, environment: str, path: str) -> None:
        if not self.allows(environment, path):
            raise ForbiddenRequest("You do not have permission to read secret values")

    def require(self, action: str, subject: str, environment: str, path: str) -> None:
        """A CASL-style check; ``subject`` is ``secrets`` or ``secret-folders``."""
        if not self.allows(environment, path):
            raise PermissionDenied(
                f"You are not allowed to {action} on {subject}",
                details=[
                    {
                        "action": [action],
                        "inverted": False,
                        "subject": subject,
                        "conditions": {
                            "environment": {"$in": list(self.identity.environments)},
                            "secretPath": {"$glob": self._glob()},
                        },
                    }
                ],
            )

    def _glob(self) -> str:
        prefix = self.identity.path_prefix
        return "/**" if prefix == "/" else f"{prefix}/**"

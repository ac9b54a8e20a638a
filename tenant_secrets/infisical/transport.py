"""Sending to Infisical: the retry policy, the token cache, and the raw calls (the SDK's, and the batch
endpoints', which the SDK lacks).

Around every call sits one retry policy: bounded exponential backoff with jitter on 429, 5xx, timeouts
and dropped connections, honouring ``retry-after`` or the wait a 429 message names. The SDK's own retry
(network errors only, 1-8 s sleeps, never 429) is kept out of the way so that one bound applies.

An access token is cached per (site URL, client id) for the whole process, because a Pulumi dynamic
provider process serves many resources (one thread logs in while the others wait); an expired or
rejected token is replaced once per call.

What to send is decided above this layer (``plan.py``, ``client.py``); nothing here looks at a folder's
contents. No secret value, client secret or token ever appears in an exception or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError
from infisical_sdk.infisical_requests import InfisicalError as SDKError
from requests.adapters import HTTPAdapter

from tenant_secrets.infisical.errors import RERUN, InfisicalError

log = logging.getLogger("tenant_secrets.infisical")  # the package's logger, one name for all its modules

ENV_VARS = ("INFISICAL_SITE_URL", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET", "INFISICAL_PROJECT_ID")
TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
BATCH_ENDPOINT = "/api/v3/secrets/batch/raw"
BATCH_METHODS = {"create": "POST", "update": "PATCH", "delete": "DELETE"}
WAIT_IN_MESSAGE = re.compile(r"try again in (\d+) seconds?", re.IGNORECASE)
RETRIES_VAR = "TENANT_SECRETS_INFISICAL_RETRIES"
BODY_LIMIT = 1_048_576
"""Infisical's request body limit (Fastify's default, 1 MiB): a larger body is answered 500, never applied."""


@dataclass(frozen=True)
class InfisicalCredentials:
    """Where Infisical is and which machine identity to log in as. ``repr`` hides the secret."""

    site_url: str
    client_id: str
    client_secret: str = field(repr=False)
    project_id: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> InfisicalCredentials:
        missing = [name for name in ENV_VARS if not env.get(name, "").strip()]
        if missing:
            raise InfisicalError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: export "
                f"{', '.join(ENV_VARS)} (a machine identity with universal auth) before running"
            )
        return cls(
            site_url=env["INFISICAL_SITE_URL"].strip().rstrip("/"),
            client_id=env["INFISICAL_CLIENT_ID"].strip(),
            client_secret=env["INFISICAL_CLIENT_SECRET"].strip(),
            project_id=env["INFISICAL_PROJECT_ID"].strip(),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; waits grow from ``base_delay`` and never exceed ``max_delay``."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RetryPolicy:
        """The default policy, or the one ``TENANT_SECRETS_INFISICAL_RETRIES`` names.

        The variable holds comma-separated ``name=value`` pairs over the fields, e.g.
        ``attempts=8,max_delay=60`` (a CI runner sharing Infisical Cloud's per-IP limit with other jobs)
        or ``attempts=3,base_delay=0.05,max_delay=0.2`` (tests). It is read when a client is made, in the
        process that calls Infisical, so nothing of it is captured in a pickled provider.
        """
        raw = env.get(RETRIES_VAR, "").strip()
        if not raw:
            return cls()
        fields: dict[str, float] = {}
        for part in raw.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if name not in ("attempts", "base_delay", "max_delay") or number < 0 or name in fields:
                raise InfisicalError(
                    f"{RETRIES_VAR}: {part.strip()!r} is not a setting; use comma-separated name=value pairs "
                    "of attempts (>= 1), base_delay and max_delay (seconds, >= 0), e.g. attempts=8,max_delay=60"
                )
            fields[name] = number
        attempts = fields.pop("attempts", cls.attempts)
        if attempts < 1 or attempts != int(attempts):
            raise InfisicalError(f"{RETRIES_VAR}: attempts must be a whole number >= 1")
        return cls(attempts=int(attempts), **fields)

    def delay(self, attempt: int, server_wait: float | None) -> float:
        """The wait after failed attempt ``attempt`` (1-based): the server's, else jittered backoff."""
        if server_wait is not None:
            return min(self.max_delay, server_wait + random.uniform(0, self.base_delay / 2))  # noqa: S311
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not cryptography


# --- transport ---------------------------------------------------------------------------------


class _TransportFailure(Exception):
    """No usable HTTP answer: refused or dropped connection, timeout, truncated body."""


class _GuardedAdapter(HTTPAdapter):
    """Adds timeouts and reports transport failures as :class:`_TransportFailure`.

    The body is read here, so a connection dropped mid-body is caught too. The SDK retries only the
    exception types ``requests`` raises, so this also keeps its retry out of ours.
    """

    def send(  # noqa: PLR0917 - the signature of HTTPAdapter.send
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        try:
            response = super().send(request, stream, timeout or TIMEOUT, verify, cert, proxies)
            _ = response.content
        except requests.Timeout as exc:
            raise _TransportFailure(f"timed out ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise _TransportFailure(f"connection failed ({type(exc).__name__})") from None
        return response


def _reply(response: requests.Response) -> _Reply:
    """A raw HTTP answer as the retry loop reads it (a body that is not JSON is kept as a short message)."""
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = {"message": response.text[:200]}
    return _Reply(response.status_code, parsed, dict(response.headers))


def _guarded_session(session: requests.Session, site_url: str) -> requests.Session:
    """Mounts the guarded adapter, and reads the environment's proxy and CA settings once, for the site.

    By default requests reads them again on every request, and urllib's proxy lookup scans the whole
    environment each time: with one variable per tenant (`{from: env}` values), that was half the
    provider process's CPU on a first `up` of 1,000 tenants. The settings are the same for every
    request to the one site, NO_PROXY included.
    """
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(site_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any
    headers: Mapping[str, str]
    ambiguous: bool = False  # an earlier attempt of this call may have been applied

    @property
    def message(self) -> str:
        if isinstance(self.body, Mapping):
            message = self.body.get("message")
            if isinstance(message, str):
                return message
            if message is not None:
                return "request validation failed"
        return ""

    @property
    def error_name(self) -> str:
        name = self.body.get("error") if isinstance(self.body, Mapping) else None
        return name if isinstance(name, str) else ""

    def server_wait(self) -> float | None:
        """Seconds the server asked us to wait: ``retry-after``, else the number in a 429 message."""
        header = next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)
        if header and header.strip().isdigit():
            return float(header.strip())
        match = WAIT_IN_MESSAGE.search(self.message)
        return float(match.group(1)) if match else None


def _is_token_problem(reply: _Reply) -> bool:
    """401, or Infisical's 403 for a malformed/expired token (not a permission denial)."""
    return reply.status == 401 or (reply.status == 403 and reply.error_name == "TokenError")


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def _scrub(text: str, sensitive: Iterable[str]) -> str:
    """Belt and braces: blank out any value we sent, should a server ever echo one."""
    for value in sensitive:
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text


# --- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float  # time.monotonic()


_TOKENS: dict[tuple[str, str], _Token] = {}
_TOKENS_LOCK = threading.Lock()
# One login at a time: the engine starts many resources at once, and each thread that finds no token
# would otherwise log in on its own (a login per folder on a first run, against the login rate limit).
_LOGIN_LOCK = threading.Lock()


def _cached_token(key: tuple[str, str]) -> str | None:
    with _TOKENS_LOCK:
        token = _TOKENS.get(key)
    return token.value if token is not None and token.expires_at > time.monotonic() else None


def _store_token(key: tuple[str, str], value: str, expires_in: float) -> None:
    margin = min(60.0, expires_in / 10)
    with _TOKENS_LOCK:
        _TOKENS[key] = _Token(value, time.monotonic() + expires_in - margin)


def _forget_token(key: tuple[str, str], value: str) -> None:
    with _TOKENS_LOCK:
        if key in _TOKENS and _TOKENS[key].value == value:
            del _TOKENS[key]


def _as_reply(send: Callable[[], Any]) -> _Reply:
    try:
        result = send()
    except APIError as error:
        body = error.response if isinstance(error.response, Mapping) else {"message": str(error.response)}
        return _Reply(int(error.status_code), body, {})
    except SDKError as error:
        raise _TransportFailure(f"unusable response ({type(error).__name__})") from None
    return result if isinstance(result, _Reply) else _Reply(200, result, {})


class Transport:
    """The calls of one machine identity to one Infisical project, under the retry policy; the client
    (``client.py``) builds on it."""

    def __init__(self, creds: InfisicalCredentials, retry: RetryPolicy | None = None) -> None:
        """``retry`` defaults to :meth:`RetryPolicy.from_env`."""
        self._creds = creds
        self._retry = retry if retry is not None else RetryPolicy.from_env()
        self._token_key = (creds.site_url.rstrip("/"), creds.client_id)
        self._sdk = InfisicalSDKClient(host=creds.site_url, cache_ttl=None)
        _guarded_session(self._sdk.api.session, creds.site_url)
        self._session = _guarded_session(requests.Session(), creds.site_url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(site_url={self._creds.site_url!r}, project_id={self._creds.project_id!r})"

    def _batch(
        self,
        verb: str,
        environment: str,
        path: str,
        body: dict[str, Any],
        *,
        keys: list[str],
        sensitive: list[str],
        applied: Callable[[], bool] | None = None,
    ) -> _Reply:
        """One batch request, under the retry policy; ``applied`` as for :meth:`_call`."""
        method = BATCH_METHODS[verb]
        payload = {
            "workspaceId": self._creds.project_id,
            "environment": environment,
            "secretPath": path,
            **body,
        }
        url = f"{self._creds.site_url.rstrip('/')}{BATCH_ENDPOINT}"

        def send() -> _Reply:
            return _reply(self._session.request(method, url, json=payload, headers=self._auth_header()))

        return self._call(
            f"batch {verb} of {len(keys)} secrets ({', '.join(keys)}) in {environment}:{path}",
            f"{method} {BATCH_ENDPOINT}",
            send,
            expected={400, 404},
            context={"environment": environment, "path": path, "keys": keys},
            sensitive=sensitive,
            applied=applied,
        )

    def _upsert_many(
        self,
        environment: str,
        body: bytes,
        *,
        what: str,
        keys: list[str],
        sensitive: list[str],
        applied: Callable[[], bool] | None = None,
    ) -> _Reply:
        """One ``PATCH`` batch upsert whose items name their own folders (``secretPath`` per item): ``body``
        is the encoded request, made by :func:`upsert_body`, under :data:`BODY_LIMIT`."""
        url = f"{self._creds.site_url.rstrip('/')}{BATCH_ENDPOINT}"

        def send() -> _Reply:
            headers = {**self._auth_header(), "Content-Type": "application/json"}
            return _reply(self._session.request("PATCH", url, data=body, headers=headers))

        return self._call(
            what,
            f"PATCH {BATCH_ENDPOINT}",
            send,
            expected={400, 403, 404, 422},
            context={"environment": environment, "keys": keys},
            sensitive=sensitive,
            applied=applied,
        )

    def upsert_body(self, environment: str, items: Iterable[tuple[str, str, str]]) -> bytes:
        """The encoded body of a batch upsert of ``(folder path, key, value)`` items."""
        payload = {
            "workspaceId": self._creds.project_id,
            "environment": environment,
            "mode": "upsert",
            "secrets": [{"secretPath": path, "secretKey": key, "secretValue": value} for path, key, value in items],
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    def _token(self) -> str:
        token = _cached_token(self._token_key)
        if token is None:
            with _LOGIN_LOCK:
                token = _cached_token(self._token_key)  # another thread may have logged in meanwhile
                if token is None:
                    token = self._login()
        self._sdk.set_token(token)
        return token

    def _login(self) -> str:
        creds = self._creds
        reply = self._call(
            f"logging in to {creds.site_url} as client id {creds.client_id}",
            "POST /api/v1/auth/universal-auth/login",
            lambda: self._sdk.auth.universal_auth.login(client_id=creds.client_id, client_secret=creds.client_secret),
            expected=set(),
            context={},
            sensitive=[creds.client_secret],
            authenticated=False,
        )
        token = str(reply.body.accessToken)
        _store_token(self._token_key, token, float(reply.body.expiresIn))
        return token

    def _call(
        self,
        what: str,
        endpoint: str,
        send: Callable[[], Any],
        *,
        expected: Collection[int],
        context: Mapping[str, Any],
        sensitive: Collection[str] = (),
        authenticated: bool = True,
        applied: Callable[[], bool] | None = None,
    ) -> _Reply:
        """Run ``send`` under the retry policy; statuses in ``expected`` are returned, not raised.

        ``applied``, for a write the server would repeat, tells before a retry whether an earlier attempt
        that may have been applied (a 5xx, a lost connection) was: then the call ends as a success.

        ``send`` returns an SDK result or a :class:`_Reply`; an SDK ``APIError`` becomes a reply.
        """
        attempts = self._retry.attempts
        ambiguous = relogged = False
        attempt = 0
        while True:
            attempt += 1
            token = self._token() if authenticated else None
            status: int | None = None
            try:
                reply = _as_reply(send)
            except _TransportFailure as failure:
                reason, wait_hint = str(failure), None
                ambiguous = ambiguous or not endpoint.startswith("GET")
            else:
                status = reply.status
                reply = _Reply(reply.status, reply.body, reply.headers, ambiguous)
                if reply.status < 400 or reply.status in expected:
                    return reply
                if authenticated and token is not None and _is_token_problem(reply) and not relogged:
                    _forget_token(self._token_key, token)
                    relogged, attempt = True, attempt - 1
                    continue
                if not _is_transient(reply.status):
                    raise self._rejected(what, reply, context, sensitive)
                reason = f"{reply.status} {_scrub(reply.message, sensitive)}".strip()
                wait_hint = reply.server_wait() if reply.status == 429 else None
                ambiguous = ambiguous or reply.status >= 500
            if attempt >= attempts:
                unreachable = "check that INFISICAL_SITE_URL is right and Infisical is up; " if status is None else ""
                raise InfisicalError(
                    f"{what} failed after {attempt} attempts (last: {reason}); {unreachable}{RERUN}",
                    status=status,
                    environment=context.get("environment"),
                    path=context.get("path"),
                    keys=context.get("keys", ()),
                )
            wait = self._retry.delay(attempt, wait_hint)
            log.warning(
                "Infisical %s: %s (attempt %d of %d); retrying in %.1f s",
                endpoint,
                reason,
                attempt,
                attempts,
                wait,
            )
            time.sleep(wait)
            if ambiguous and applied is not None and applied():
                log.info("Infisical %s: the earlier attempt was applied; not sending it again", endpoint)
                return _Reply(200, {}, {}, ambiguous=True)

    @staticmethod
    def _rejected(
        what: str, reply: _Reply, context: Mapping[str, Any], sensitive: Collection[str] = ()
    ) -> InfisicalError:
        detail = _scrub(f"{reply.error_name}: {reply.message}" if reply.error_name else reply.message, sensitive)
        hint = {
            401: "; check INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET (a machine identity with universal auth)",
            403: "; give the machine identity access to this environment and folder in Infisical",
        }.get(reply.status, "")
        return InfisicalError(
            f"Infisical refused {what}: {reply.status} {detail}".rstrip() + hint,
            status=reply.status,
            environment=context.get("environment"),
            path=context.get("path"),
            keys=context.get("keys", ()),
        )

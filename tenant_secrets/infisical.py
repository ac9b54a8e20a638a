"""The project's Infisical client: folders and secrets for one project, converging and rate-limit proof.

It uses the official SDK (``infisicalsdk``) for every call the SDK has (login, listing and reading
secrets, folders) and plain ``requests`` for the batch endpoints, which the SDK lacks. Around every
call sits one retry policy: bounded exponential backoff with jitter on 429, 5xx, timeouts and dropped
connections, honouring ``retry-after`` or the wait a 429 message names. The SDK's own retry (network
errors only, 1-8 s sleeps, never 429) is kept out of the way so that one bound applies.

An access token is cached per (site URL, client id) for the whole process, because a Pulumi dynamic
provider process serves many resources (one thread logs in while the others wait); an expired or
rejected token is replaced once per call.

:meth:`InfisicalClient.apply_secrets` writes only differences, at most one batch request per kind of
change, so a second run with nothing changed sends no write at all. No secret value, client secret
or token ever appears in an exception, a log line or a repr.

An ``InfisicalClient`` is meant for one thread; create one per provider call (they are cheap and share
the token cache).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError
from infisical_sdk.infisical_requests import InfisicalError as SDKError
from requests.adapters import HTTPAdapter

from tenant_secrets.values import JS_WHITESPACE, infisical_keeps

log = logging.getLogger(__name__)

ENV_VARS = ("INFISICAL_SITE_URL", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET", "INFISICAL_PROJECT_ID")
TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
BATCH_ENDPOINT = "/api/v3/secrets/batch/raw"
BATCH_METHODS = {"create": "POST", "update": "PATCH", "delete": "DELETE"}
FOLDER_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
WAIT_IN_MESSAGE = re.compile(r"try again in (\d+) seconds?", re.IGNORECASE)
RETRIES_VAR = "TENANT_SECRETS_INFISICAL_RETRIES"
RERUN = "re-running converges (every write is a difference against what Infisical holds)"


class InfisicalError(Exception):
    """A call to Infisical failed. The message names environment, path, keys and status, never a value."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        environment: str | None = None,
        path: str | None = None,
        keys: Collection[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.environment = environment
        self.path = path
        self.keys = tuple(keys)


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


@dataclass(frozen=True)
class ApplyResult:
    """Keys this call created, updated and deleted (sorted), and whether it created the folder."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]
    folder_created: bool = field(default=False, compare=False)  # not what it did to the secrets: not compared

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


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


# --- paths and values --------------------------------------------------------------------------


def _folder_path(path: str) -> str:
    """``/a/b`` from ``a/b/``, ``/a/b`` or ``/a/b/``; every segment must be a valid folder name."""
    stripped = path.strip()
    inner = stripped.strip("/")
    if not inner:
        return "/"
    names = inner.split("/")
    if not all(FOLDER_SEGMENT.match(name) for name in names):
        raise InfisicalError(
            f"invalid Infisical folder path {stripped!r}: segments may contain only letters, digits, - and _",
            path=stripped,
        )
    return "/" + "/".join(names)


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def _check_input(environment: str, path: str, upsert: Mapping[str, str], delete: Collection[str]) -> None:
    """Reject, before any write, keys Infisical refuses and values it would alter."""
    for key in [*upsert, *delete]:
        if not key or key != key.strip(JS_WHITESPACE) or ":" in key or "/" in key:
            raise InfisicalError(
                f"invalid secret key {key!r} for {environment}:{path}: keys must be non-empty, without "
                "surrounding whitespace, ':' or '/'",
                environment=environment,
                path=path,
                keys=[key],
            )
    both = sorted(set(upsert) & set(delete))
    if both:
        raise InfisicalError(
            f"keys {', '.join(both)} in {environment}:{path} are both set and deleted; choose one",
            environment=environment,
            path=path,
            keys=both,
        )
    altered = sorted(key for key, value in upsert.items() if not infisical_keeps(value))
    if altered:
        raise InfisicalError(
            f"the values of {', '.join(altered)} in {environment}:{path} begin or end with whitespace, which "
            "Infisical trims (only one trailing newline survives); fix the value at its source",
            environment=environment,
            path=path,
            keys=altered,
        )


@dataclass(frozen=True)
class _Plan:
    create: dict[str, str]
    update: dict[str, str]
    delete: tuple[str, ...]

    @classmethod
    def of(cls, upsert: Mapping[str, str], delete: Collection[str], current: Mapping[str, str]) -> _Plan:
        return cls(
            create={k: v for k, v in sorted(upsert.items()) if k not in current},
            update={k: v for k, v in sorted(upsert.items()) if k in current and current[k] != v},
            delete=tuple(sorted(k for k in set(delete) if k in current)),
        )


@dataclass
class _Progress:
    """Keys written so far by one apply_secrets call."""

    created: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)

    def keys(self, verb: str) -> set[str]:
        return {"create": self.created, "update": self.updated, "delete": self.deleted}[verb]

    def result(self) -> ApplyResult:
        return ApplyResult(tuple(sorted(self.created)), tuple(sorted(self.updated)), tuple(sorted(self.deleted)))


class _Conflict(Exception):
    """A batch write met another state than the one planned against: a stale ``existing``, a retried
    write that had in fact been applied, or a missing folder.

    ``uncertain`` names the batch (verb and keys) when an earlier attempt of it may have been applied.
    """

    def __init__(self, folder_missing: bool, uncertain: tuple[str, list[str]] | None) -> None:
        super().__init__("the folder changed under the write")
        self.folder_missing = folder_missing
        self.uncertain = uncertain


# --- the client --------------------------------------------------------------------------------


class InfisicalClient:
    """Folders and secrets of one Infisical project, for one machine identity."""

    def __init__(self, creds: InfisicalCredentials, retry: RetryPolicy | None = None) -> None:
        """``retry`` defaults to :meth:`RetryPolicy.from_env`."""
        self._creds = creds
        self._retry = retry if retry is not None else RetryPolicy.from_env()
        self._token_key = (creds.site_url.rstrip("/"), creds.client_id)
        self._sdk = InfisicalSDKClient(host=creds.site_url, cache_ttl=None)
        _guarded_session(self._sdk.api.session, creds.site_url)
        self._session = _guarded_session(requests.Session(), creds.site_url)

    def __repr__(self) -> str:
        return f"InfisicalClient(site_url={self._creds.site_url!r}, project_id={self._creds.project_id!r})"

    # --- reads -----------------------------------------------------------------------------------

    def list_secrets(self, environment: str, path: str) -> dict[str, str]:
        """Key -> value of the folder's own secrets; {} when the folder does not exist."""
        return self._read_folder(environment, _folder_path(path)) or {}

    def get_secret(self, environment: str, path: str, key: str) -> str | None:
        """One secret's value, or None when the key (or its folder) does not exist."""
        path = _folder_path(path)
        reply = self._call(
            f"reading {key} in {environment}:{path}",
            "GET /api/v3/secrets/raw/{secretName}",
            lambda: self._sdk.secrets.get_secret_by_name(
                secret_name=quote(key, safe=""),
                environment_slug=environment,
                secret_path=path,
                project_id=self._creds.project_id,
                expand_secret_references=False,
                include_imports=False,
                view_secret_value=True,
            ),
            expected={404},
            context={"environment": environment, "path": path, "keys": [key]},
        )
        if reply.status == 404:
            return None
        if getattr(reply.body, "secretValueHidden", False):  # Infisical's placeholder, not the value
            raise InfisicalError(
                f"the identity may not read the value of {key} in {environment}:{path}; "
                "grant it read access to that path",
                environment=environment,
                path=path,
                keys=[key],
            )
        return str(reply.body.secretValue)

    def list_folders(self, environment: str, path: str) -> list[str]:
        """Names of the folder's direct subfolders, sorted ([] also when the folder does not exist)."""
        return self._folder_names(environment, _folder_path(path)) or []

    def list_secret_keys(self, environment: str, path: str) -> list[str] | None:
        """The keys of the folder's own shared secrets, sorted, asking the server not to send values;
        None when the folder does not exist."""
        secrets = self._shared_secrets(environment, _folder_path(path), with_values=False)
        return None if secrets is None else sorted(str(s.secretKey) for s in secrets)

    def list_tree(self, environment: str, path: str = "/") -> dict[str, dict[str, str]]:
        """Every shared secret under ``path``, its subfolders' included, in one request: folder path -> key -> value.

        Infisical answers a recursive listing with each secret's ``secretPath``, so a whole environment costs
        one request whatever the number of folders. Folders without secrets do not appear; {} when ``path``
        does not exist.
        """
        secrets = self._listing(environment, _folder_path(path), with_values=True, recursive=True)
        return _by_folder(secrets or [], environment, with_values=True)

    def list_tree_keys(self, environment: str, path: str = "/") -> dict[str, list[str]]:
        """Like :meth:`list_tree`, keys only: the server is asked not to send values (``viewSecretValue=false``)."""
        secrets = self._listing(environment, _folder_path(path), with_values=False, recursive=True)
        tree = _by_folder(secrets or [], environment, with_values=False)
        return {folder: sorted(held) for folder, held in tree.items()}

    def list_tree_written(self, environment: str, path: str = "/") -> dict[str, dict[str, tuple[str, int]]]:
        """Like :meth:`list_tree_keys`, with when each secret's current value was written and its version:
        folder path -> key -> (``updatedAt`` as Infisical records it, ``version``). No value is sent."""
        secrets = self._listing(environment, _folder_path(path), with_values=False, recursive=True)
        tree: dict[str, dict[str, tuple[str, int]]] = {}
        for secret in secrets or []:
            folder = _folder_path(str(secret.secretPath or "/"))
            tree.setdefault(folder, {})[str(secret.secretKey)] = (str(secret.updatedAt), int(secret.version))
        return tree

    def _folder_names(self, environment: str, path: str) -> list[str] | None:
        reply = self._call(
            f"listing folders of {environment}:{path}",
            "GET /api/v2/folders",
            lambda: self._sdk.folders.list_folders(
                project_id=self._creds.project_id, environment_slug=environment, path=path, recursive=False
            ),
            expected={404},
            context={"environment": environment, "path": path},
        )
        if reply.status == 404:
            return None
        return sorted(str(folder.name) for folder in reply.body.folders)

    def folder_exists(self, environment: str, path: str) -> bool:
        path = _folder_path(path)
        if path == "/":
            parent, name = "/", None
        else:
            parent, name = _split(path)
        reply = self._call(
            f"listing folders of {environment}:{parent}",
            "GET /api/v2/folders",
            lambda: self._sdk.folders.list_folders(
                project_id=self._creds.project_id, environment_slug=environment, path=parent, recursive=False
            ),
            expected={404},
            context={"environment": environment, "path": parent},
        )
        if reply.status == 404:
            return False
        return name is None or any(folder.name == name for folder in reply.body.folders)

    # --- writes ----------------------------------------------------------------------------------

    def ensure_folder(self, environment: str, path: str) -> bool:
        """Create the folder (and missing parents); True if it was created, False if it existed."""
        path = _folder_path(path)
        if path == "/" or self.folder_exists(environment, path):
            return False
        return self._create_folder(environment, path)

    def _create_folder(self, environment: str, path: str) -> bool:
        """Create a folder known (or believed) to be missing; True if this call created it."""
        parent, name = _split(path)
        reply = self._call(
            f"creating folder {environment}:{path}",
            "POST /api/v2/folders",
            lambda: self._sdk.folders.create_folder(
                name=name, environment_slug=environment, project_id=self._creds.project_id, path=parent
            ),
            expected={400},
            context={"environment": environment, "path": path},
        )
        if reply.status == 400:
            if "already exist" in reply.message:
                return reply.ambiguous  # created by an earlier attempt of this call, or by someone else
            raise self._rejected(
                f"creating folder {environment}:{path}", reply, {"environment": environment, "path": path}
            )
        return True

    def delete_folder(self, environment: str, path: str) -> bool:
        """Delete the folder with everything in it; True if it existed."""
        path = _folder_path(path)
        if path == "/":
            raise InfisicalError(f"refusing to delete the root folder of {environment}", environment=environment)
        parent, name = _split(path)
        reply = self._call(
            f"deleting folder {environment}:{path}",
            "DELETE /api/v2/folders/{folderIdOrName}",
            lambda: self._sdk.folders.delete_folder(
                folder_id_or_name=name,
                environment_slug=environment,
                project_id=self._creds.project_id,
                path=parent,
                force_delete=True,
            ),
            expected={404},
            context={"environment": environment, "path": path},
        )
        return reply.status != 404 or reply.ambiguous

    def apply_secrets(
        self,
        environment: str,
        path: str,
        *,
        upsert: Mapping[str, str],
        delete: Collection[str] = (),
        existing: Mapping[str, str] | None = None,
        folder_is_new: bool = False,
    ) -> ApplyResult:
        """Make the folder hold ``upsert`` and not ``delete``, writing only differences.

        Missing keys go in one batch create, changed values in one batch update, ``delete`` keys that
        exist in one batch delete; nothing is sent when nothing differs. ``existing`` (what the folder
        holds, if the caller knows) saves the read. The folder is created when needed; when the caller
        expects it to be new (``folder_is_new``), it is created first, and a folder this call created
        is known to be empty, which saves the read too (a folder that existed is read, and adopted). If a write meets
        another state than planned (stale ``existing``, a retried write that had been applied), the
        folder is read again and the rest re-planned, once.
        """
        path = _folder_path(path)
        _check_input(environment, path, upsert, delete)
        current = existing
        made = False
        if current is None and folder_is_new and upsert and self._create_folder(environment, path):
            current, made = {}, True
        if current is None:
            current = self._read_folder(environment, path)
            if current is None:
                if upsert:  # the read just said the folder is missing: no need to ask again
                    made = self._create_folder(environment, path)
                current = {}
        progress = _Progress()
        try:
            self._execute(environment, path, _Plan.of(upsert, delete, current), upsert.values(), progress)
        except _Conflict as conflict:
            log.info("Infisical %s:%s is not in the state planned against; reading it again", environment, path)
            if conflict.folder_missing:
                made = self.ensure_folder(environment, path) or made
            fresh = self._read_folder(environment, path) or {}
            if conflict.uncertain is not None:
                # A lost answer to an applied write: credit the keys that now hold what we sent.
                verb, keys = conflict.uncertain
                settled = [k for k in keys if (k not in fresh if verb == "delete" else fresh.get(k) == upsert[k])]
                progress.keys(verb).update(settled)
            try:
                self._execute(environment, path, _Plan.of(upsert, delete, fresh), upsert.values(), progress)
            except _Conflict:
                raise InfisicalError(
                    f"{environment}:{path} keeps changing while secrets are written to it; {RERUN}",
                    environment=environment,
                    path=path,
                ) from None
        return replace(progress.result(), folder_created=made)

    # --- internals -------------------------------------------------------------------------------

    def _read_folder(self, environment: str, path: str) -> dict[str, str] | None:
        """The folder's shared secrets, or None when the folder does not exist."""
        secrets = self._shared_secrets(environment, path, with_values=True)
        if secrets is None:
            return None
        hidden = sorted(s.secretKey for s in secrets if s.secretValueHidden)
        if hidden:
            raise InfisicalError(
                f"the identity may not read the values of {', '.join(hidden)} in {environment}:{path}; "
                "grant it read access to that path",
                environment=environment,
                path=path,
                keys=hidden,
            )
        return {str(s.secretKey): str(s.secretValue) for s in secrets}

    def _shared_secrets(self, environment: str, path: str, *, with_values: bool) -> list[Any] | None:
        """One listing of the folder's own shared secrets (values only if asked), or None when it does not exist."""
        return self._listing(environment, path, with_values=with_values, recursive=False)

    def _listing(self, environment: str, path: str, *, with_values: bool, recursive: bool) -> list[Any] | None:
        """One listing of shared secrets (the subfolders' too if ``recursive``); None when ``path`` does not exist."""
        what = f"{'secrets' if with_values else 'secret keys'} of {environment}:{path}"
        what += " and its subfolders" if recursive else ""
        reply = self._call(
            f"listing {what}",
            "GET /api/v3/secrets/raw",
            lambda: self._sdk.secrets.list_secrets(
                environment_slug=environment,
                secret_path=path,
                project_id=self._creds.project_id,
                expand_secret_references=False,
                view_secret_value=with_values,
                recursive=recursive,
                include_imports=False,
            ),
            expected={404},
            context={"environment": environment, "path": path},
        )
        if reply.status == 404:
            return None
        return [s for s in reply.body.secrets if s.type == "shared"]

    def _execute(self, environment: str, path: str, plan: _Plan, sensitive: Iterable[str], progress: _Progress) -> None:
        """Send the plan's batches (create, update, delete), recording each in ``progress``.

        A 404, or a 400 "already exists", means the folder is not as planned: raise _Conflict.
        """
        values = list(sensitive)
        batches: list[tuple[str, dict[str, Any]]] = []
        if plan.create:
            items = [{"secretKey": k, "secretValue": v} for k, v in plan.create.items()]
            batches.append(("create", {"secrets": items}))
        if plan.update:
            items = [{"secretKey": k, "secretValue": v} for k, v in plan.update.items()]
            batches.append(("update", {"mode": "upsert", "secrets": items}))
        if plan.delete:
            items = [{"secretKey": k, "type": "shared"} for k in plan.delete]
            batches.append(("delete", {"secrets": items}))
        for verb, body in batches:
            keys = [item["secretKey"] for item in body["secrets"]]
            reply = self._batch(verb, environment, path, body, keys=keys, sensitive=values)
            if reply.status == 404 or (reply.status == 400 and "already exist" in reply.message):
                folder_missing = reply.status == 404 and "Folder with path" in reply.message
                raise _Conflict(folder_missing, (verb, keys) if reply.ambiguous else None)
            if reply.status >= 400:
                what = f"batch {verb} of {', '.join(keys)} in {environment}:{path}"
                context = {"environment": environment, "path": path, "keys": keys}
                raise self._rejected(what, reply, context, values)
            progress.keys(verb).update(keys)

    def _batch(
        self,
        verb: str,
        environment: str,
        path: str,
        body: dict[str, Any],
        *,
        keys: list[str],
        sensitive: list[str],
    ) -> _Reply:
        method = BATCH_METHODS[verb]
        payload = {
            "workspaceId": self._creds.project_id,
            "environment": environment,
            "secretPath": path,
            **body,
        }
        url = f"{self._creds.site_url.rstrip('/')}{BATCH_ENDPOINT}"

        def send() -> _Reply:
            response = self._session.request(method, url, json=payload, headers=self._auth_header())
            try:
                parsed: Any = response.json()
            except ValueError:
                parsed = {"message": response.text[:200]}
            return _Reply(response.status_code, parsed, dict(response.headers))

        def applied() -> bool:
            """Whether an update whose answer was lost is in place: then it is not sent again (a second
            PATCH would add a version holding the same value). Creates and deletes need no look: the
            server refuses their repetition (400 already exists, 404), which _execute handles."""
            try:
                held = self._read_folder(environment, path) or {}
            except InfisicalError:  # cannot tell: send it again, as for any other retry
                return False
            return all(held.get(item["secretKey"]) == item["secretValue"] for item in body["secrets"])

        return self._call(
            f"batch {verb} of {len(keys)} secrets ({', '.join(keys)}) in {environment}:{path}",
            f"{method} {BATCH_ENDPOINT}",
            send,
            expected={400, 404},
            context={"environment": environment, "path": path, "keys": keys},
            sensitive=sensitive,
            applied=applied if verb == "update" else None,
        )

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


def _by_folder(secrets: Iterable[Any], environment: str, *, with_values: bool) -> dict[str, dict[str, str]]:
    """A recursive listing grouped by each secret's folder (values "" when not asked for); a value the
    identity may not read is an error."""
    tree: dict[str, dict[str, str]] = {}
    hidden: list[str] = []
    for secret in secrets:
        folder = _folder_path(str(secret.secretPath or "/"))
        if with_values and secret.secretValueHidden:
            hidden.append(f"{folder}/{secret.secretKey}")
        tree.setdefault(folder, {})[str(secret.secretKey)] = str(secret.secretValue) if with_values else ""
    if hidden:
        shown = ", ".join(sorted(hidden)[:3]) + (f" and {len(hidden) - 3} more" if len(hidden) > 3 else "")
        raise InfisicalError(
            f"the identity may not read the values of {shown} in {environment}; grant it read access to those paths",
            environment=environment,
        )
    return tree


def _as_reply(send: Callable[[], Any]) -> _Reply:
    try:
        result = send()
    except APIError as error:
        body = error.response if isinstance(error.response, Mapping) else {"message": str(error.response)}
        return _Reply(int(error.status_code), body, {})
    except SDKError as error:
        raise _TransportFailure(f"unusable response ({type(error).__name__})") from None
    return result if isinstance(result, _Reply) else _Reply(200, result, {})

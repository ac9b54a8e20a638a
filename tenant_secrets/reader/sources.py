"""The reader's Infisical side: the master keyring from the key folder, and tenants' folders.

Both read through the project's :class:`~tenant_secrets.infisical.InfisicalClient` (its retry policy,
no values in errors), one client per thread since a client is meant for one thread; the access token
is shared by the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, RetryPolicy
from tenant_secrets.reader.database import ConnectionFactory
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import DEFAULT_FOLDER, keyring_from_folder
from tenant_secrets.tenants_file.names import TENANTS_FOLDER


class KeyringSource(Protocol):
    def keyring_with(self, version: int) -> Keyring:
        """A keyring to decrypt a row of ``version``: it holds that version if the source has it (the caller
        checks)."""

    def fresh_keyring(self) -> Keyring:
        """The keyring as the source holds it now, for encrypting a write: a kept one may be a rotation old."""


class StaticKeyring:
    """A keyring given directly (from the service's own configuration)."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def __repr__(self) -> str:
        return f"StaticKeyring({self._keyring!r})"

    def keyring_with(self, version: int) -> Keyring:
        return self._keyring

    def fresh_keyring(self) -> Keyring:
        return self._keyring


class _Clients(threading.local):
    client: InfisicalClient | None = None


class _InfisicalReader:
    def __init__(self, credentials: InfisicalCredentials, retry: RetryPolicy | None) -> None:
        self._credentials = credentials
        self._retry = retry
        self._clients = _Clients()

    def client(self) -> InfisicalClient:
        if self._clients.client is None:
            self._clients.client = InfisicalClient(self._credentials, self._retry)
        return self._clients.client


class KeyFolder:
    """The keyring an Infisical key folder publishes (:mod:`tenant_secrets.secret.keyfolder`), read with one
    listing and kept for ``ttl`` seconds, so a rotation's new version is picked up.

    :meth:`keyring_with` re-reads the folder once, before the ``ttl`` is up, when a row names a version
    the kept keyring lacks (a rotation has just published it); threads that find the same stale keyring
    share that one re-read.
    """

    def __init__(
        self,
        credentials: InfisicalCredentials,
        environment: str,
        *,
        folder: str = DEFAULT_FOLDER,
        ttl: float = 300.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl: seconds >= 0 to keep the key folder's keyring")
        self._infisical = _InfisicalReader(credentials, retry)
        self._environment = environment
        self._folder = folder
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: Keyring | None = None
        self._expires = 0.0

    def __repr__(self) -> str:
        return f"KeyFolder(environment={self._environment!r}, folder={self._folder!r}, ttl={self._ttl})"

    def keyring(self) -> Keyring:
        """The kept keyring, read again when its ttl is up."""
        with self._lock:
            if self._kept is None or self._clock() >= self._expires:
                return self._load()
            return self._kept

    def keyring_with(self, version: int) -> Keyring:
        seen = self.keyring()
        if version in seen.keys:
            return seen
        with self._lock:
            kept = self._kept
            if kept is None or kept is seen:  # nobody re-read it since: this thread does, once
                return self._load()
            return kept

    def fresh_keyring(self) -> Keyring:
        with self._lock:
            return self._load()

    def _load(self) -> Keyring:
        listing = self._infisical.client().list_secrets(self._environment, self._folder)
        self._kept = keyring_from_folder(listing, folder=self._folder)
        self._expires = self._clock() + self._ttl
        return self._kept


class TenantFolders:
    """The fallback: a tenant's secret from its Infisical folder ``/tenants/<subdomain>`` (one request),
    optionally written back to the database (``write_back``: connections as a role that may insert into
    ``company_secrets``, such as the provisioning role; decision 0021 says when it writes)."""

    def __init__(
        self,
        credentials: InfisicalCredentials,
        environment: str,
        *,
        write_back: ConnectionFactory | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._infisical = _InfisicalReader(credentials, retry)
        self._environment = environment
        self.write_back = write_back

    def __repr__(self) -> str:
        return f"TenantFolders(environment={self._environment!r}, write_back={self.write_back is not None})"

    def get(self, subdomain: str, key: str) -> str | None:
        """The value of ``key`` in the tenant's folder; None when the key or the folder does not exist."""
        return self._infisical.client().get_secret(self._environment, f"/{TENANTS_FOLDER}/{subdomain}", key)

    def exists(self, subdomain: str) -> bool:
        """Whether the tenant has a folder: asked only when neither the database nor the folder has the key and
        the tenant has no companies row, to tell an unknown tenant from a missing secret (one more request)."""
        return self._infisical.client().folder_exists(self._environment, f"/{TENANTS_FOLDER}/{subdomain}")

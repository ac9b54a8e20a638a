"""The seed's ``getTenantSecret`` and its hybrid, done right: cache, then database, then Infisical.

One :class:`SecretReader` serves a whole process and any number of threads. A miss costs one database
round trip (:func:`~tenant_secrets.reader.database.read_secret`), plus one Infisical request when the
database has no row and a fallback is configured; concurrent calls for the same secret share one
lookup. Design and rules: docs/decisions/0021-reader-library.md.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import psycopg

from tenant_secrets.infisical import InfisicalError
from tenant_secrets.reader.access_log import AccessEvent, AccessLog, LoggerAccessLog, Outcome, Source
from tenant_secrets.reader.cache import SecretCache, TenantRef
from tenant_secrets.reader.database import ConnectionFactory, StoredRow, read_secret, tenant_ref
from tenant_secrets.reader.errors import (
    AccessLogError,
    ReaderError,
    SecretNotFoundError,
    SourceUnavailableError,
    UndecryptableSecretError,
    UnknownTenantError,
    WriteBackError,
)
from tenant_secrets.reader.sources import KeyringSource, StaticKeyring, TenantFolders
from tenant_secrets.secret.binding import BoundRow, Problem, check_row
from tenant_secrets.secret.envelope import EnvelopeError, Keyring
from tenant_secrets.secret.keyfolder import KeyFolderError
from tenant_secrets.store.errors import StoreError
from tenant_secrets.store.secrets import MAX_KEY_LENGTH, insert_if_absent
from tenant_secrets.store.settings import StoreSettings
from tenant_secrets.tenants_file.names import subdomain_problem

_OUTCOMES: dict[type[ReaderError], Outcome] = {
    UnknownTenantError: Outcome.UNKNOWN_TENANT,
    SecretNotFoundError: Outcome.NOT_FOUND,
    UndecryptableSecretError: Outcome.UNDECRYPTABLE,
}


@dataclass(frozen=True)
class _Found:
    value: str = field(repr=False)
    company_id: str
    subdomain: str
    source: Source
    wrote_back: bool = False
    cacheable: bool = True


@dataclass(frozen=True)
class _Lookup:
    """What a lookup is about, and where it has got to, for its errors."""

    tenant: str
    key: str
    source: Source
    company_id: str | None = None

    def error(self, kind: type[ReaderError], reason: str) -> ReaderError:
        return kind(
            f"{self.key} of tenant {self.tenant}: {reason}",
            tenant=self.tenant,
            key=self.key,
            source=self.source,
            company_id=self.company_id,
        )


class SecretReader:
    """Tenants' secrets for a service: :meth:`get` by subdomain or company id.

    ``database`` lends autocommit connections as the application role; ``keyring`` is a
    :class:`~tenant_secrets.secret.envelope.Keyring` or a :class:`KeyringSource` such as
    :class:`~tenant_secrets.reader.KeyFolder`; ``fallback`` (optional) reads the tenant's Infisical
    folder when the database has no row. Every call is recorded on each of ``access_logs``.

    A row is served only if its ciphertext is bound to it (:mod:`tenant_secrets.secret.binding`): a ciphertext
    moved from another tenant's row is an :class:`UndecryptableSecretError`, never that tenant's value.
    ``allow_unbound`` also serves rows that have no binding yet, for the window between deploying this
    version and the stack's next `pulumi up`, which binds every row; an attacker who can write the table
    can clear a binding, so leave it off once that run is done.
    """

    def __init__(
        self,
        *,
        database: ConnectionFactory,
        keyring: Keyring | KeyringSource,
        settings: StoreSettings | None = None,
        fallback: TenantFolders | None = None,
        cache_ttl: float = 300.0,
        cache_size: int = 1024,
        access_logs: Sequence[AccessLog] = (LoggerAccessLog(),),
        clock: Callable[[], float] = time.monotonic,
        allow_unbound: bool = False,
    ) -> None:
        self._database = database
        self._allow_unbound = allow_unbound
        self._keys = StaticKeyring(keyring) if isinstance(keyring, Keyring) else keyring
        self._settings = settings or StoreSettings()
        self._fallback = fallback
        self._cache = SecretCache(ttl=cache_ttl, max_entries=cache_size, clock=clock)
        self._access_logs = tuple(access_logs)
        self._lock = threading.Lock()
        self._inflight: dict[tuple[TenantRef, str], Future[_Found]] = {}

    def __repr__(self) -> str:
        return f"SecretReader(cache={self._cache!r}, fallback={self._fallback!r})"

    def get(self, tenant: str | uuid.UUID, key: str) -> str:
        """The value of ``key`` for ``tenant`` (a subdomain, or a company id: a :class:`uuid.UUID`, or text
        that reads as one, which is never taken for a subdomain).

        Raises :class:`UnknownTenantError`, :class:`SecretNotFoundError`, :class:`UndecryptableSecretError`,
        :class:`SourceUnavailableError`, :class:`WriteBackError` or :class:`AccessLogError`; none of their
        messages contains a value.
        """
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            raise ValueError(f"secret key {key!r}: 1 to {MAX_KEY_LENGTH} characters, no NUL")
        tenant = tenant_ref(tenant)
        name = str(tenant)[:MAX_KEY_LENGTH]  # as recorded: a caller may pass any text as a subdomain
        try:
            found = self._find(tenant, key)
        except ReaderError as error:
            outcome = _OUTCOMES.get(type(error), Outcome.FAILED)
            self._record(AccessEvent(name, error.company_id, key, error.source, outcome))
            raise
        self._record(AccessEvent(name, found.company_id, key, found.source, Outcome.FOUND, found.wrote_back))
        return found.value

    def invalidate(self, tenant: str | uuid.UUID | None = None, key: str | None = None) -> int:
        """Forget cached values: of ``tenant`` (by subdomain or id; all if None), of ``key`` (all if None).
        Returns how many were dropped. The next :meth:`get` of each reads the database again."""
        return self._cache.invalidate(None if tenant is None else tenant_ref(tenant), key)

    # --- lookup ----------------------------------------------------------------------------------

    def _find(self, tenant: str | uuid.UUID, key: str) -> _Found:
        if isinstance(tenant, str) and (problem := subdomain_problem(tenant)) is not None:
            raise UnknownTenantError(
                f"{key} of tenant {tenant!r}: not a tenant subdomain ({problem.message})", tenant=tenant, key=key
            )
        cached = self._cache.get(tenant, key)
        shared: Future[_Found] | None = None
        if cached is None:
            with self._lock:
                shared = self._inflight.get((tenant, key))
                # looked again under the lock: a lookup that just finished has put its value by now
                cached = self._cache.get(tenant, key) if shared is None else None
                if shared is None and cached is None:
                    mine: Future[_Found] = Future()
                    self._inflight[tenant, key] = mine
        if cached is not None:
            return _Found(cached.value, cached.company_id, cached.subdomain, Source.CACHE)
        if shared is not None:  # another thread is looking this secret up: its answer is ours
            return shared.result()
        try:
            found = self._look_up(tenant, key)
            if found.cacheable:
                self._cache.put(
                    tenant,
                    key,
                    found.value,
                    company_id=found.company_id,
                    subdomain=found.subdomain,
                    source=found.source,
                )
        except BaseException as error:
            mine.set_exception(error)
            raise
        else:
            mine.set_result(found)
            return found
        finally:
            with self._lock:
                del self._inflight[tenant, key]

    def _look_up(self, tenant: TenantRef, key: str) -> _Found:
        at = _Lookup(str(tenant), key, Source.DATABASE)
        try:
            with self._database() as conn:
                lookup = read_secret(conn, self._settings, tenant, key)
        except (psycopg.Error, StoreError) as error:
            raise at.error(SourceUnavailableError, f"cannot read it from the database: {_describe(error)}") from None
        if lookup.company_id is None or lookup.subdomain is None:
            by = "id" if isinstance(tenant, uuid.UUID) else "subdomain"
            raise at.error(UnknownTenantError, f"no company has the {by} {at.tenant}")
        company, subdomain = lookup.company_id, lookup.subdomain
        at = replace(at, company_id=company)
        if lookup.row is not None:
            return _Found(self._decrypt(lookup.row, at), company, subdomain, Source.DATABASE)
        if self._fallback is None:
            raise at.error(SecretNotFoundError, "the database holds no such secret")
        at = replace(at, source=Source.INFISICAL)
        folder = f"/tenants/{subdomain}"
        try:
            fetched = self._fallback.get(subdomain, key)
        except InfisicalError as error:
            raise at.error(SourceUnavailableError, f"cannot read it from Infisical {folder}: {error}") from None
        if fetched is None:
            raise at.error(SecretNotFoundError, f"neither the database nor Infisical {folder} holds it")
        if self._fallback.write_back is None:
            return _Found(fetched, company, subdomain, Source.INFISICAL)
        wrote = self._write_back(self._fallback.write_back, at, company, fetched)
        # A row that appeared since the read (a provisioning run) wins: read it next time, do not cache.
        return _Found(fetched, company, subdomain, Source.INFISICAL, wrote_back=wrote, cacheable=wrote)

    def _decrypt(self, row: StoredRow, at: _Lookup) -> str:
        keyring = self._keyring(lambda keys: keys.keyring_with(row.key_version), at)
        if row.key_version not in keyring.keys:
            raise at.error(
                UndecryptableSecretError,
                f"it is encrypted with master key version {row.key_version}, which the keyring (versions "
                f"{', '.join(map(str, keyring.versions))}) lacks: publish that version in the key folder",
            )
        try:
            value = keyring.decrypt(row.envelope, row.key_version)
        except EnvelopeError as error:
            raise at.error(UndecryptableSecretError, f"key version {row.key_version}: {error}") from None
        problem = check_row(
            keyring, BoundRow(at.company_id or "", at.key, row.key_version, row.version, row.envelope, row.binding)
        )
        if problem is Problem.MISSING and not self._allow_unbound:
            raise at.error(
                UndecryptableSecretError,
                f"the stored row (version {row.version}, key version {row.key_version}) {problem.value}: a writer "
                "without the master keys wrote it (the application's setTenantSecret, or a hand-made UPDATE); it "
                "was not served: the stack's next `pulumi up` binds it (decision 0049), or pass allow_unbound=True",
            )
        if problem is not None and problem is not Problem.MISSING:
            raise at.error(
                UndecryptableSecretError,
                f"the stored row (version {row.version}, key version {row.key_version}) {problem.value}; "
                "it was not served: find out how it was changed, then run `pulumi up` to rewrite it",
            )
        return value

    def _write_back(self, connections: ConnectionFactory, at: _Lookup, company: str, value: str) -> bool:
        keyring = self._keyring(lambda keys: keys.fresh_keyring(), at)
        try:
            with connections() as conn:
                return insert_if_absent(conn, self._settings, company, at.key, value, keyring=keyring)
        except (psycopg.Error, StoreError) as error:
            raise at.error(WriteBackError, f"cannot write it back to the database: {_describe(error)}") from None

    def _keyring(self, read: Callable[[KeyringSource], Keyring], at: _Lookup) -> Keyring:
        try:
            return read(self._keys)
        except (InfisicalError, KeyFolderError) as error:
            raise at.error(SourceUnavailableError, f"cannot read the master keyring: {error}") from None

    def _record(self, event: AccessEvent) -> None:
        for log in self._access_logs:
            try:
                log.record(event)
            except Exception as error:
                raise AccessLogError(
                    f"{event.key} of tenant {event.tenant}: cannot record the access: {_describe(error)}",
                    tenant=event.tenant,
                    key=event.key,
                    source=event.source,
                    company_id=event.company_id,
                ) from None


def _describe(error: Exception) -> str:
    """A database error without its detail lines (which can quote a row); the store's own are value-free."""
    if isinstance(error, psycopg.Error):
        state = f" (SQLSTATE {error.sqlstate})" if error.sqlstate else ""
        return f"{type(error).__name__}{state}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
    return str(error)

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
from tenant_secrets.reader.access_log import AccessLog, LoggerAccessLog, Outcome, Source
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
from tenant_secrets.reader.journal import MAX_NAME, AccessJournal, Entry, JournalError, describe
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
    company_id: str | None  # None: a tenant kept in Infisical only
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
    folder when the database has no row. Every call is recorded on each of ``access_logs``, through a
    journal that delivers in batches off the hot path (:mod:`tenant_secrets.reader.journal`): at most
    ``access_log_pending`` entries (0: each before :meth:`get` returns) or ``access_log_interval`` seconds
    behind, never dropped; a log that fails makes every read refused until it records again. Call
    :meth:`close` (or :meth:`flush`) to deliver the last entries before the process ends.

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
        access_log_pending: int = 1024,
        access_log_interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        allow_unbound: bool = False,
    ) -> None:
        self._database = database
        self._allow_unbound = allow_unbound
        self._keys = StaticKeyring(keyring) if isinstance(keyring, Keyring) else keyring
        self._settings = settings or StoreSettings()
        self._fallback = fallback
        self._cache = SecretCache(ttl=cache_ttl, max_entries=cache_size, clock=clock)
        self._journal = AccessJournal(access_logs, max_pending=access_log_pending, interval=access_log_interval)
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
        # The hot path, a fresh cached value: one dict lookup keyed by the arguments as given (only valid
        # names are ever cached under them), one clock read, one journal append (about 0.5 us in all).
        try:
            cached = self._cache.fresh(tenant, key)
        except TypeError:  # an unhashable argument: the checks below say what is wrong with it
            cached = None
        if cached is not None:
            self._record((tenant, key, cached.company_id, Source.CACHE, Outcome.FOUND, False))
            return cached.value
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            raise ValueError(f"secret key {key!r}: 1 to {MAX_KEY_LENGTH} characters, no NUL")
        tenant = tenant_ref(tenant)
        try:
            found = self._find(tenant, key)
        except ReaderError as error:
            outcome = _OUTCOMES.get(type(error), Outcome.FAILED)
            self._record((tenant, key, error.company_id, error.source, outcome, False))
            raise
        self._record((tenant, key, found.company_id, found.source, Outcome.FOUND, found.wrote_back))
        return found.value

    def flush(self) -> None:
        """Deliver the access log's pending entries now; :class:`AccessLogError` if a log refuses them."""
        try:
            self._journal.flush()
        except JournalError as error:
            raise AccessLogError(f"cannot record the accesses: {error}", tenant="", key="") from None

    def close(self) -> None:
        """Deliver the access log's last entries and stop its thread, when the service stops reading (entries of
        reads after it wait for a :meth:`flush`, 1024 of them, or the interpreter's exit)."""
        try:
            self._journal.close()
        except JournalError as error:
            raise AccessLogError(f"cannot record the accesses: {error}", tenant="", key="") from None

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
            raise at.error(SourceUnavailableError, f"cannot read it from the database: {describe(error)}") from None
        if lookup.company_id is None or lookup.subdomain is None:
            by = "id" if isinstance(tenant, uuid.UUID) else "subdomain"
            if isinstance(tenant, uuid.UUID) or self._fallback is None:
                raise at.error(UnknownTenantError, f"no company has the {by} {at.tenant}")
            # A tenant kept in Infisical only (storage: infisical) has no companies row: its folder is
            # named by the subdomain, which subdomain_problem has already checked.
            return self._from_infisical(self._fallback, replace(at, source=Source.INFISICAL), None, tenant)
        company, subdomain = lookup.company_id, lookup.subdomain
        at = _Lookup(at.tenant, key, Source.DATABASE, company)  # not dataclasses.replace: 3 us on every miss
        if lookup.row is not None:
            return _Found(self._decrypt(lookup.row, at), company, subdomain, Source.DATABASE)
        if self._fallback is None:
            raise at.error(SecretNotFoundError, "the database holds no such secret")
        return self._from_infisical(self._fallback, replace(at, source=Source.INFISICAL), company, subdomain)

    def _from_infisical(self, fallback: TenantFolders, at: _Lookup, company: str | None, subdomain: str) -> _Found:
        """The tenant's folder ``/tenants/<subdomain>``; ``company`` is None for a tenant with no companies row,
        which is then never written back (a row needs its company) and is unknown if it has no folder either."""
        folder = f"/tenants/{subdomain}"
        try:
            fetched = fallback.get(subdomain, at.key)
            exists = fetched is not None or company is not None or fallback.exists(subdomain)
        except InfisicalError as error:
            raise at.error(SourceUnavailableError, f"cannot read it from Infisical {folder}: {error}") from None
        if not exists:
            raise at.error(UnknownTenantError, f"no company has the subdomain {subdomain}, nor has Infisical {folder}")
        if fetched is None:
            raise at.error(SecretNotFoundError, f"neither the database nor Infisical {folder} holds it")
        if fallback.write_back is None or company is None:
            return _Found(fetched, company, subdomain, Source.INFISICAL)
        wrote = self._write_back(fallback.write_back, at, company, fetched)
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
            raise at.error(WriteBackError, f"cannot write it back to the database: {describe(error)}") from None

    def _keyring(self, read: Callable[[KeyringSource], Keyring], at: _Lookup) -> Keyring:
        try:
            return read(self._keys)
        except (InfisicalError, KeyFolderError) as error:
            raise at.error(SourceUnavailableError, f"cannot read the master keyring: {error}") from None

    def _record(self, entry: Entry) -> None:
        try:
            self._journal.add(entry)
        except JournalError as error:
            tenant, key, company_id, source = str(entry[0])[:MAX_NAME], entry[1], entry[2], entry[3]
            raise AccessLogError(
                f"{key} of tenant {tenant}: cannot record the access: {error}",
                tenant=tenant,
                key=key,
                source=source,
                company_id=company_id,
            ) from None

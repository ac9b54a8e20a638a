"""The reader's in-memory cache: decrypted values for a bounded time, a bounded number of them.

Entries are keyed by the tenant as the caller names it (subdomain, or company id as a UUID) and the
secret's key; each remembers both the company id and the subdomain, so invalidating a tenant by either
drops it under both names. Least recently used entries go first when the cache is full. Only values
are cached: a missing secret is looked up again on the next call, so a new secret is seen at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from tenant_secrets.reader.access_log import Source

TenantRef = str | uuid.UUID


@dataclass(frozen=True)
class CachedSecret:
    value: str = field(repr=False)
    company_id: str | None  # None: a tenant kept in Infisical only
    subdomain: str
    source: Source
    expires_at: float


class SecretCache:
    """Thread-safe; ``ttl`` seconds per entry (0 disables caching), at most ``max_entries`` entries."""

    def __init__(self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0 or max_entries < 0:
            raise ValueError("cache: ttl (seconds) and max_entries must be >= 0")
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[TenantRef, str], CachedSecret] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretCache(entries={len(self)}, ttl={self._ttl}, max_entries={self._max})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def fresh(self, tenant: object, key: object) -> CachedSecret | None:
        """The entry for exactly these arguments if it has not expired, else None: the reader's hot path.

        Without the lock: under CPython's GIL each dict operation below is atomic, so a concurrent
        :meth:`put` or :meth:`invalidate` either has or has not happened; an entry dropped meanwhile was
        still a value this call may serve, as one read a moment earlier would have. Raises TypeError for
        unhashable arguments. Expired entries are left to :meth:`get`, which drops them under the lock.
        """
        entry = self._entries.get((tenant, key))  # type: ignore[arg-type]  # any arguments: a miss
        if entry is None or self._clock() >= entry.expires_at:
            return None
        # not contextlib.suppress, which would cost a third of this method
        try:  # noqa: SIM105
            self._entries.move_to_end((tenant, key))  # type: ignore[arg-type]
        except KeyError:
            pass  # dropped by another thread since the lookup
        return entry

    def get(self, tenant: TenantRef, key: str) -> CachedSecret | None:
        with self._lock:
            entry = self._entries.get((tenant, key))
            if entry is None:
                return None
            if self._clock() >= entry.expires_at:
                del self._entries[tenant, key]
                return None
            self._entries.move_to_end((tenant, key))
            return entry

    def put(
        self, tenant: TenantRef, key: str, value: str, *, company_id: str | None, subdomain: str, source: Source
    ) -> None:
        if not self._ttl or not self._max:
            return
        with self._lock:
            self._entries[tenant, key] = CachedSecret(value, company_id, subdomain, source, self._clock() + self._ttl)
            self._entries.move_to_end((tenant, key))
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def invalidate(self, tenant: TenantRef | None = None, key: str | None = None) -> int:
        """Drop the entries of ``tenant`` (by subdomain or id, all tenants if None) and ``key`` (all keys if
        None); returns how many were dropped."""
        with self._lock:
            doomed = [
                cache_key
                # a snapshot: fresh() reorders entries without the lock, which would break a live iteration
                for cache_key, entry in list(self._entries.items())
                if (key is None or cache_key[1] == key) and (tenant is None or _names(entry, tenant))
            ]
            for cache_key in doomed:
                del self._entries[cache_key]
            return len(doomed)


def _names(entry: CachedSecret, tenant: TenantRef) -> bool:
    if isinstance(tenant, uuid.UUID):
        return entry.company_id == str(tenant)
    return entry.subdomain == tenant

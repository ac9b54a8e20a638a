"""The cache: values kept for their ttl, at most cache_size of them, dropped on demand; and many
threads asking for the same secrets at once cause one lookup per secret."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.reader import AccessEvent, SecretReader, Source, TenantFolders
from tenant_secrets.reader.cache import SecretCache
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import TenantChange, apply_tenants
from tests.conftest import fake_value
from tests.reader.conftest import ACME, ENVIRONMENT, FAST, GLOBEX, SECRET_ROUTE, Connections, Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provisioned(database: Database) -> Keyring:
    keyring = Keyring({1: os.urandom(32)}, active=1)
    values = {f"KEY_{n}": fake_value(f"acme-{n}") for n in range(4)}
    apply_tenants(
        database.owner,
        database.settings,
        {ACME: TenantChange(values), GLOBEX: TenantChange({"KEY_0": fake_value("globex-0")})},
        keyring,
    )
    return keyring


def test_a_value_is_kept_for_its_ttl_then_read_again(
    database: Database, make_connections: Callable[..., Connections]
) -> None:
    clock = Clock()
    app = make_connections(database.app_dsn)
    reader = SecretReader(database=app, keyring=provisioned(database), cache_ttl=60, clock=clock)
    reader.get("acme", "KEY_0")
    clock.now += 59.9
    reader.get("acme", "KEY_0")
    assert app.loans == 1
    clock.now += 0.1
    reader.get("acme", "KEY_0")
    assert app.loans == 2


def test_invalidation_by_subdomain_or_id_key_or_all(
    database: Database, make_connections: Callable[..., Connections]
) -> None:
    app = make_connections(database.app_dsn)
    reader = SecretReader(database=app, keyring=provisioned(database))
    for tenant in ("acme", uuid.UUID(ACME)):
        reader.get(tenant, "KEY_0")
        reader.get(tenant, "KEY_1")
    reader.get("globex", "KEY_0")
    assert app.loans == 5

    assert reader.invalidate("acme", "KEY_0") == 2, "the entries under the subdomain and under the id"
    assert reader.invalidate(uuid.UUID(ACME)) == 2
    assert reader.invalidate("acme") == 0
    assert reader.invalidate() == 1
    reader.get("acme", "KEY_1")
    assert app.loans == 6, "read again after invalidation"


def test_the_cache_keeps_at_most_cache_size_values_dropping_the_least_recently_used(
    database: Database, make_connections: Callable[..., Connections]
) -> None:
    app = make_connections(database.app_dsn)
    reader = SecretReader(database=app, keyring=provisioned(database), cache_size=2)
    reader.get("acme", "KEY_0")
    reader.get("acme", "KEY_1")
    reader.get("acme", "KEY_0")  # KEY_1 is now the least recently used
    reader.get("acme", "KEY_2")  # evicts KEY_1
    assert app.loans == 3
    reader.get("acme", "KEY_0")
    assert app.loans == 3
    reader.get("acme", "KEY_1")
    assert app.loans == 4


def test_many_threads_asking_at_once_cause_one_lookup_per_secret(
    database: Database,
    make_connections: Callable[..., Connections],
    server: RunningServer,
    credentials: InfisicalCredentials,
    infisical: InfisicalClient,
) -> None:
    keyring = provisioned(database)
    infisical.apply_secrets(ENVIRONMENT, "/tenants/globex", upsert={"ONLY_IN_INFISICAL": fake_value("g-inf")})
    expected = {
        ("acme", "KEY_0"): fake_value("acme-0"),
        ("acme", "KEY_1"): fake_value("acme-1"),
        ("globex", "KEY_0"): fake_value("globex-0"),
        ("globex", "ONLY_IN_INFISICAL"): fake_value("g-inf"),
    }
    app = make_connections(database.app_dsn, hold=0.3)  # each lookup overlaps the other threads' calls
    events: list[AccessEvent] = []
    lock = threading.Lock()

    class Recorder:
        def record(self, event: AccessEvent) -> None:
            with lock:
                events.append(event)

    reader = SecretReader(
        database=app,
        keyring=keyring,
        fallback=TenantFolders(credentials, ENVIRONMENT, retry=FAST),
        access_logs=[Recorder()],
    )
    server.reset_requests()
    threads_per_secret = 8
    start = threading.Barrier(threads_per_secret * len(expected))
    results: dict[int, tuple[tuple[str, str], str]] = {}

    def ask(n: int, secret: tuple[str, str]) -> None:
        start.wait()
        results[n] = (secret, reader.get(*secret))

    threads = [
        threading.Thread(target=ask, args=(n, secret))
        for n, secret in enumerate(s for s in expected for _ in range(threads_per_secret))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == len(threads)
    assert all(expected[secret] == value for secret, value in results.values())
    assert app.loans == len(expected), "one database read per secret"
    assert server.request_counts() == {SECRET_ROUTE: 1}, "one Infisical request, for the one secret only there"
    reader.flush()
    assert len(events) == len(threads), "every call recorded"


def test_lock_free_hits_survive_concurrent_puts_evictions_and_invalidations() -> None:
    """Decision 0048: a hit takes no lock; writers hold it, and invalidate() walks a snapshot."""
    cache = SecretCache(ttl=60, max_entries=50)
    stop = threading.Event()
    errors: list[BaseException] = []
    served: list[str] = []

    def hit() -> None:
        while not stop.is_set():
            for n in range(100):
                try:
                    entry = cache.fresh(f"t{n}", "KEY")
                except BaseException as error:
                    errors.append(error)
                    return
                if entry is not None:
                    served.append(entry.value)

    readers = [threading.Thread(target=hit) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(20000):  # 100 names into 50 places: evictions all along
        name = f"t{i % 100}"
        cache.put(name, "KEY", fake_value(name), company_id=None, subdomain=name, source=Source.DATABASE)
        if i % 7 == 0:
            cache.invalidate(name)
        if i % 500 == 0:
            cache.invalidate()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert served, "the readers were served while the cache changed"
    assert set(served) <= {fake_value(f"t{n}") for n in range(100)}

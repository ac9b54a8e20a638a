"""The Hono example app (examples/hono-api/) end to end: a real Node.js process serving the seed's payments
route, reading each request's tenant's STRIPE_SECRET_KEY through the Node reader from the real database
(as the application role) and the local Infisical server.

The app answers with a fingerprint of the key it used, never the key: each test compares fingerprints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import published_values
from tenant_secrets.store import iter_rotate
from tests.reader.conftest import ENVIRONMENT, Services, publish
from tests.reader.node import INFISICAL_ONLY, ROUTE, VALUES, App, Load, arrange, example_app, fingerprint, tidy


@pytest.fixture
def start_app(services: Services, tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Start the example app with the given settings (after arranging the world once); all stopped after."""
    world = arrange(services)
    started: list[App] = []
    with ExitStack() as running:

        def start(**settings: str) -> App:
            started.append(
                running.enter_context(example_app({**world.app_env(), **settings}, tmp_path / f"app-{len(started)}"))
            )
            return started[-1]

        try:
            yield start
        finally:
            tidy(services)


def assert_no_value_in(text: str) -> None:
    for values in (*VALUES.values(), *INFISICAL_ONLY.values()):
        for value in values.values():
            assert value not in text


def test_two_tenants_each_get_their_own_key_and_an_unknown_tenant_is_a_clean_404(
    start_app: Callable[..., App], services: Services
) -> None:
    app = start_app()
    for tenant in ("acme", "globex", "acme", "globex"):  # the second round from the cache
        reply = app.pay(tenant)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "tenant": tenant,
            "stripeKeyFingerprint": fingerprint(VALUES[tenant]["STRIPE_SECRET_KEY"]),
        }
    # a tenant kept in Infisical only (no companies row): the reader's fallback
    reply = app.pay("initech")
    assert reply.json()["stripeKeyFingerprint"] == fingerprint(INFISICAL_ONLY["initech"]["STRIPE_SECRET_KEY"])

    for tenant in ("nobody", "11111111-2222-4333-8444-555555555555"):
        reply = app.pay(tenant)
        assert (reply.status_code, reply.json()) == (404, {"error": "unknown tenant"})
    reply = app.session.post(app.url + ROUTE, headers={"Host": "localhost"}, timeout=10)
    assert reply.status_code == 404

    with services.database.owner.transaction():
        logged = services.database.owner.execute(
            "SELECT tenant, source, outcome, count(*) FROM company_secret_access GROUP BY 1, 2, 3 ORDER BY 1, 2"
        ).fetchall()
    deadline = time.monotonic() + 5
    while sum(n for *_, n in logged) < 7 and time.monotonic() < deadline:  # the log is batched
        time.sleep(0.1)
        logged = services.database.owner.execute(
            "SELECT tenant, source, outcome, count(*) FROM company_secret_access GROUP BY 1, 2, 3 ORDER BY 1, 2"
        ).fetchall()
    assert ("acme", "cache", "found", 1) in logged and ("nobody", "infisical", "unknown_tenant", 1) in logged
    assert_no_value_in(app.log.read_text())


def test_a_swapped_ciphertext_is_refused_not_served_to_the_other_tenant(
    start_app: Callable[..., App], services: Services
) -> None:
    app = start_app(SECRET_CACHE_TTL_MS="0")
    swap = (
        "UPDATE company_secrets s SET secret_value_encrypted = o.secret_value_encrypted, binding = o.binding"
        " FROM company_secrets o WHERE s.secret_key = 'STRIPE_SECRET_KEY' AND o.secret_key = 'STRIPE_SECRET_KEY'"
        " AND s.company_id <> o.company_id"
    )
    owner = services.database.owner
    owner.execute(swap)
    for tenant in ("acme", "globex"):
        reply = app.pay(tenant)
        assert (reply.status_code, reply.json()) == (500, {"error": "the tenant's secret cannot be served"})
    owner.execute(swap)
    assert app.pay("acme").json()["stripeKeyFingerprint"] == fingerprint(VALUES["acme"]["STRIPE_SECRET_KEY"])
    log = app.log.read_text()
    assert "UndecryptableSecretError" in log and "not written for it" in log
    assert_no_value_in(log)


def test_a_master_key_rotation_during_steady_requests_fails_none_and_serves_no_wrong_value(
    start_app: Callable[..., App], services: Services
) -> None:
    """The rotation's steps in the order `pulumi up` runs them (docs/guides/master-key-and-readers.md): v2
    published beside v1, every row re-encrypted onto v2 in committed batches (one row each, with pauses, so
    requests fall between them), MASTER_ENCRYPTION_KEY moved to v2, then v1 withdrawn. The app caches no
    value (every request reads its row) and keeps the key folder's keyring for 5 minutes, so each row that
    moves to v2 finds a keyring without v2 until the reader reads the folder again."""
    app = start_app(SECRET_CACHE_TTL_MS="0")
    keys, db = services.master_keys, services.database
    expected = {tenant: values["STRIPE_SECRET_KEY"] for tenant, values in VALUES.items()}
    with Load(app, expected) as load:
        time.sleep(0.5)
        publish(services.infisical, keys, [1, 2], 1)
        time.sleep(0.3)
        both = Keyring.from_hex({str(v): k for v, k in keys.items()}, 2)
        for _batch in iter_rotate(db.owner, db.settings, both, batch_size=1):
            time.sleep(0.1)
        publish(services.infisical, keys, [1, 2], 2)
        time.sleep(0.3)
        services.infisical.apply_secrets(
            ENVIRONMENT,
            "/hono-api",
            upsert=published_values(keys, versions=[2], current=2),
            delete=["MASTER_ENCRYPTION_KEY_V1"],
        )
        time.sleep(0.5)
    with db.owner.transaction():
        versions = db.owner.execute("SELECT DISTINCT key_version FROM company_secrets").fetchall()
    assert versions == [(2,)]
    assert (load.seen["failed"], load.seen["wrong"]) == (0, 0), load.problems[:10]
    assert load.seen["ok"] >= 100, load.seen
    print(f"rotation under load: {dict(load.seen)}")

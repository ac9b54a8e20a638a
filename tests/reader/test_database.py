"""Reading from the database as the application role: one round trip per miss, row-level security,
the key chosen by each row's key_version, and the typed errors."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import InfisicalCredentials
from tenant_secrets.reader import (
    DsnConnections,
    KeyFolder,
    SecretNotFoundError,
    SecretReader,
    Source,
    SourceUnavailableError,
    TenantFolders,
    UndecryptableSecretError,
    UnknownTenantError,
)
from tenant_secrets.reader.database import _PREPARED, Lookup, _statements, read_secret
from tenant_secrets.secret.envelope import Keyring, encrypt
from tenant_secrets.store import TenantChange, apply_tenants, connect, ensure_companies, rotate
from tests.conftest import fake_value
from tests.reader.conftest import (
    ACME,
    ENVIRONMENT,
    FAST,
    GLOBEX,
    SECRETS_ROUTE,
    Connections,
    Database,
    Services,
    canary,
    publish,
)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({1: os.urandom(32)}, active=1)


def provision(database: Database, keyring: Keyring, changes: dict[str, dict[str, str]]) -> None:
    apply_tenants(database.owner, database.settings, {c: TenantChange(v) for c, v in changes.items()}, keyring)


def test_a_miss_is_one_round_trip_as_the_application_role_and_a_hit_none(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    provision(database, keyring, {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}})
    app = make_connections(database.app_dsn)
    reader = SecretReader(database=app, keyring=keyring)

    assert reader.get("acme", "STRIPE_SECRET_KEY") == fake_value("acme")
    assert (app.loans, app.round_trips()) == (1, 1)
    assert reader.get(uuid.UUID(ACME), "STRIPE_SECRET_KEY") == fake_value("acme")  # by company id
    assert (app.loans, app.round_trips()) == (2, 2)
    assert reader.get("acme", "STRIPE_SECRET_KEY") == fake_value("acme")
    assert (app.loans, app.round_trips()) == (2, 2), "a hit asks nothing"

    with app() as conn:  # the company was set for the read's transaction only
        assert conn.execute("SELECT current_setting('app.company_id', true)").fetchone() == ("",)


def test_a_reader_as_the_application_role_never_returns_another_companys_value(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    globex_only = canary()
    provision(
        database,
        keyring,
        {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}, GLOBEX: {"GLOBEX_ONLY": globex_only}},
    )
    reader = SecretReader(database=make_connections(database.app_dsn), keyring=keyring)

    with pytest.raises(SecretNotFoundError) as missing:
        reader.get("acme", "GLOBEX_ONLY")
    assert missing.value.company_id == ACME
    assert globex_only not in str(missing.value)
    assert reader.get("globex", "GLOBEX_ONLY") == globex_only  # the same reader, asked for globex
    with pytest.raises(SecretNotFoundError):
        reader.get("globex", "STRIPE_SECRET_KEY")


def test_unknown_tenants_are_named_and_invalid_subdomains_never_reach_a_source(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    app = make_connections(database.app_dsn)
    reader = SecretReader(database=app, keyring=keyring)
    with pytest.raises(UnknownTenantError, match="no company has the subdomain initech"):
        reader.get("initech", "STRIPE_SECRET_KEY")
    with pytest.raises(UnknownTenantError, match="no company has the id"):
        reader.get(uuid.UUID(int=7), "STRIPE_SECRET_KEY")
    with pytest.raises(SecretNotFoundError) as by_text:
        reader.get(ACME, "STRIPE_SECRET_KEY")  # a company id as text is the company's id
    assert by_text.value.company_id == ACME
    assert app.loans == 3
    for bad in ("../hono-api", "tenants/acme", "ACME", ""):
        with pytest.raises(UnknownTenantError, match="not a tenant subdomain") as error:
            reader.get(bad, "STRIPE_SECRET_KEY")
        assert error.value.source is None
    assert app.loans == 3


@pytest.mark.parametrize("spelling", [ACME, ACME.upper(), ACME.replace("-", ""), f"{{{ACME}}}"])
def test_a_company_id_as_text_is_never_a_subdomain_so_no_tenant_can_stand_in_for_it(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections], spelling: str
) -> None:
    """Issue 26, item 6: companies whose subdomains are acme's id, in two spellings (made before validation
    refused such names): the text reaches acme, never them."""
    impostors = {ACME: str(uuid.UUID(int=0xBAD1)), ACME.replace("-", ""): str(uuid.UUID(int=0xBAD2))}
    ensure_companies(database.owner, database.settings, {name: (id_, None) for name, id_ in impostors.items()})
    changes = {id_: {"STRIPE_SECRET_KEY": fake_value(f"impostor-{n}")} for n, id_ in enumerate(impostors.values())}
    provision(database, keyring, {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}, **changes})
    reader = SecretReader(database=make_connections(database.app_dsn), keyring=keyring)

    assert reader.get(spelling, "STRIPE_SECRET_KEY") == fake_value("acme")
    assert reader.invalidate(spelling) == 1  # the entry is acme's, found again by the id's text


def test_an_undecryptable_row_is_an_error_and_never_falls_back(
    database: Database,
    keyring: Keyring,
    make_connections: Callable[..., Connections],
    server: RunningServer,
    credentials: InfisicalCredentials,
) -> None:
    value = canary()
    other_key = os.urandom(32)
    envelope = encrypt(value, other_key)
    database.owner.execute(
        "INSERT INTO company_secrets (company_id, secret_key, secret_value_encrypted, key_version)"
        " VALUES (%s, 'STRIPE_SECRET_KEY', %s, 1), (%s, 'OLD_KEY', %s, 9)",
        [ACME, envelope, ACME, encrypt(value, keyring.key(1))],
    )
    reader = SecretReader(
        database=make_connections(database.app_dsn),
        keyring=keyring,
        fallback=TenantFolders(credentials, ENVIRONMENT, retry=FAST),
    )
    server.reset_requests()
    with pytest.raises(UndecryptableSecretError, match="another key or has been altered") as altered:
        reader.get("acme", "STRIPE_SECRET_KEY")
    with pytest.raises(UndecryptableSecretError, match="master key version 9, which the keyring") as unknown:
        reader.get("acme", "OLD_KEY")
    assert server.request_counts() == {}, "no fallback past a row that exists"
    for error in (altered.value, unknown.value):
        assert error.source is Source.DATABASE
        assert value not in str(error)
        assert envelope not in str(error)


def test_a_key_version_published_after_the_keyring_was_read_is_found_with_one_more_listing(services: Services) -> None:
    database, make_connections, server = services.database, services.connections, services.server
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    before = publish(infisical, master_keys, [1], current=1)
    provision(database, before, {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}, GLOBEX: {"TOKEN": fake_value("g")}})
    keys = KeyFolder(credentials, ENVIRONMENT, ttl=3600, retry=FAST)
    reader = SecretReader(database=make_connections(database.app_dsn), keyring=keys)
    server.reset_requests()
    assert reader.get("acme", "STRIPE_SECRET_KEY") == fake_value("acme")
    assert server.request_counts() == {SECRETS_ROUTE: 1}, "the key folder, read once"

    # A rotation: version 2 is published, the rows move to it, MASTER_ENCRYPTION_KEY follows.
    after = publish(infisical, master_keys, [1, 2], current=2)
    rotate(database.owner, database.settings, after)
    server.reset_requests()
    reader.invalidate()
    assert reader.get("acme", "STRIPE_SECRET_KEY") == fake_value("acme")
    assert reader.get("globex", "TOKEN") == fake_value("g")
    assert server.request_counts() == {SECRETS_ROUTE: 1}, "one re-read, well before the keyring's ttl"
    assert keys.keyring().active == 2

    database.owner.execute("UPDATE company_secrets SET key_version = 3 WHERE secret_key = 'TOKEN'")
    server.reset_requests()
    reader.invalidate()
    with pytest.raises(UndecryptableSecretError, match="master key version 3"):
        reader.get("globex", "TOKEN")
    assert server.request_counts() == {SECRETS_ROUTE: 1}, "re-read once, then the error"


def test_an_unreachable_database_is_a_typed_error_without_the_password(database: Database, keyring: Keyring) -> None:
    password = canary()
    dsn = database.app_dsn.replace("@", f"{password}@", 1)  # a wrong password
    reader = SecretReader(database=DsnConnections(dsn), keyring=keyring)
    with pytest.raises(SourceUnavailableError, match="cannot read it from the database") as error:
        reader.get("acme", "STRIPE_SECRET_KEY")
    assert error.value.source is Source.DATABASE
    assert password not in str(error.value)


def test_a_ciphertext_moved_from_another_tenants_row_is_never_served(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    """Issue 13, item 1: whoever can write the table swaps two tenants' ciphertexts (and their bindings)."""
    provision(
        database,
        keyring,
        {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}, GLOBEX: {"STRIPE_SECRET_KEY": fake_value("globex")}},
    )
    database.owner.execute(
        "UPDATE company_secrets AS s SET (secret_value_encrypted, binding) = (SELECT secret_value_encrypted, binding"
        " FROM company_secrets o WHERE o.secret_key = s.secret_key AND o.company_id <> s.company_id)"
    )
    reader = SecretReader(database=make_connections(database.app_dsn), keyring=keyring)
    with pytest.raises(UndecryptableSecretError) as moved:
        reader.get("acme", "STRIPE_SECRET_KEY")
    assert str(moved.value) == (
        "STRIPE_SECRET_KEY of tenant acme: the stored row (version 1, key version 1) holds a ciphertext that was not "
        "written for it (altered, truncated, or put back from elsewhere); it was not served: find out how it was "
        "changed, then run `pulumi up` to rewrite it"
    )
    assert fake_value("globex") not in str(moved.value)

    # a row written before the binding existed: served only while the caller allows it
    provision(database, keyring, {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}})
    database.owner.execute("UPDATE company_secrets SET binding = NULL WHERE company_id = %s", [ACME])
    with pytest.raises(UndecryptableSecretError, match="has no binding yet"):
        reader.get("acme", "STRIPE_SECRET_KEY")
    upgrading = SecretReader(database=make_connections(database.app_dsn), keyring=keyring, allow_unbound=True)
    assert upgrading.get("acme", "STRIPE_SECRET_KEY") == fake_value("acme")


def test_statements_dropped_by_a_pool_or_kept_by_another_session_still_read_the_row_in_one_query_each(
    database: Database, keyring: Keyring
) -> None:
    """Decision 0048: the two statements are prepared once per connection. A pool's ``DISCARD ALL`` drops
    them (prepared again, in the same query as the read), and a session that already has them under our name
    while this process does not know it (they outlive a failed query) uses them."""
    provision(database, keyring, {ACME: {"STRIPE_SECRET_KEY": fake_value("acme")}})
    with connect(database.app_dsn) as conn:
        assert read_secret(conn, database.settings, "acme", "STRIPE_SECRET_KEY").row is not None
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert prepared == (2,)

        conn.execute("DISCARD ALL")
        lookup = read_secret(conn, database.settings, "acme", "STRIPE_SECRET_KEY")
        assert (lookup.company_id, lookup.subdomain, lookup.row is not None) == (ACME, "acme", True)

        _PREPARED.pop(conn)  # this process forgets them; the session keeps them
        lookup = read_secret(conn, database.settings, uuid.UUID(ACME), "STRIPE_SECRET_KEY")
        assert (lookup.company_id, lookup.row is not None) == (ACME, True), "by id: other statements, prepared"
        _PREPARED.pop(conn)
        lookup = read_secret(conn, database.settings, "acme", "STRIPE_SECRET_KEY")
        assert (lookup.company_id, lookup.row is not None) == (ACME, True), "the session's own"
        assert "tenant_secrets_reader" in "".join(_PREPARED[conn]), "known again"
        assert read_secret(conn, database.settings, "acme", "MISSING") == Lookup(ACME, "acme", None)
        assert read_secret(conn, database.settings, "initech", "STRIPE_SECRET_KEY") == Lookup(None, None, None)
        assert conn.execute("SELECT current_setting('app.company_id', true)").fetchone() == ("",)

        # what runs when a pooler's session loses them between two queries: the same statements, unprepared
        unprepared = _statements(database.settings, False).unprepared(b"'acme'", b"'STRIPE_SECRET_KEY'")
        result = conn.pgconn.exec_(unprepared)
        assert (result.ntuples, result.get_value(0, 0), result.get_value(0, 2) is not None) == (1, ACME.encode(), True)

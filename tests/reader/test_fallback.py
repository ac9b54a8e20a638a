"""The Infisical fallback (/tenants/<subdomain>) and the write-back: one request per miss, a row written
only where none was, under the published current key, readable by the seed's decryptSecret."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_secrets.reader import (
    AccessEvent,
    KeyFolder,
    Outcome,
    SecretNotFoundError,
    SecretReader,
    Source,
    SourceUnavailableError,
    TenantFolders,
    UnknownTenantError,
    WriteBackError,
)
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import TenantChange, apply_tenants, read_tenant
from tests.conftest import fake_value
from tests.reader.conftest import (
    ACME,
    ENVIRONMENT,
    FAST,
    INFISICAL_ONLY,
    SECRET_ROUTE,
    SECRETS_ROUTE,
    Database,
    Services,
    canary,
    publish,
)
from tests.secret.test_node_compat import run_node
from tests.store.helpers import audit_rows


class Events:
    def __init__(self) -> None:
        self.seen: list[AccessEvent] = []

    def record(self, event: AccessEvent) -> None:
        self.seen.append(event)


def test_a_secret_only_in_infisical_costs_one_round_trip_and_one_request_and_is_not_written(services: Services) -> None:
    database, make_connections, server = services.database, services.connections, services.server
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    keyring = publish(infisical, master_keys, [1], current=1)
    infisical.apply_secrets(ENVIRONMENT, "/tenants/acme", upsert={"SENDGRID_API_KEY": fake_value("sendgrid")})
    app = make_connections(database.app_dsn)
    events = Events()
    reader = SecretReader(
        database=app,
        keyring=keyring,
        fallback=TenantFolders(credentials, ENVIRONMENT, retry=FAST),
        access_logs=[events],
        access_log_pending=0,  # each event recorded before get returns: checked call by call
    )
    server.reset_requests()

    assert reader.get("acme", "SENDGRID_API_KEY") == fake_value("sendgrid")
    assert (app.round_trips(), server.request_counts()) == (1, {SECRET_ROUTE: 1})
    assert reader.get("acme", "SENDGRID_API_KEY") == fake_value("sendgrid")
    assert (app.round_trips(), server.request_counts()) == (1, {SECRET_ROUTE: 1}), "then from the cache"
    assert [(e.source, e.wrote_back) for e in events.seen] == [(Source.INFISICAL, False), (Source.CACHE, False)]
    assert read_tenant(database.owner, database.settings, ACME, keyring) == {}

    with pytest.raises(SecretNotFoundError, match="neither the database nor Infisical /tenants/acme") as missing:
        reader.get("acme", "NOWHERE")
    assert missing.value.source is Source.INFISICAL
    assert server.request_counts() == {SECRET_ROUTE: 2}


def test_a_tenant_kept_in_infisical_only_is_read_from_its_folder_though_it_has_no_company_row(
    services: Services,
) -> None:
    """Issue 28: a `storage: infisical` tenant has a folder and no companies row; the reader used to answer
    UnknownTenantError because it resolved the company first."""
    database, make_connections, server = services.database, services.connections, services.server
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    keyring = publish(infisical, master_keys, [1], current=1)
    infisical.apply_secrets(ENVIRONMENT, f"/tenants/{INFISICAL_ONLY}", upsert={"STRIPE_SECRET_KEY": fake_value("i")})
    app = make_connections(database.app_dsn)
    events = Events()
    reader = SecretReader(
        database=app,
        keyring=keyring,
        # a write-back is configured, but a row needs a company: none is written
        fallback=TenantFolders(
            credentials, ENVIRONMENT, write_back=make_connections(database.provisioner_dsn), retry=FAST
        ),
        access_logs=[events],
        access_log_pending=0,  # each event recorded before get returns: checked call by call
    )
    server.reset_requests()

    assert reader.get(INFISICAL_ONLY, "STRIPE_SECRET_KEY") == fake_value("i")
    assert (app.round_trips(), server.request_counts()) == (1, {SECRET_ROUTE: 1})
    assert events.seen == [AccessEvent(INFISICAL_ONLY, None, "STRIPE_SECRET_KEY", Source.INFISICAL, Outcome.FOUND)]
    assert database.owner.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,), "nothing written"
    assert reader.get(INFISICAL_ONLY, "STRIPE_SECRET_KEY") == fake_value("i")
    assert events.seen[-1].source is Source.CACHE
    assert reader.invalidate(INFISICAL_ONLY) == 1

    with pytest.raises(SecretNotFoundError, match=f"neither the database nor Infisical /tenants/{INFISICAL_ONLY}"):
        reader.get(INFISICAL_ONLY, "NOWHERE")
    with pytest.raises(
        UnknownTenantError, match="no company has the subdomain hooli, nor has Infisical /tenants/hooli"
    ):
        reader.get("hooli", "STRIPE_SECRET_KEY")
    assert events.seen[-1].outcome is Outcome.UNKNOWN_TENANT


def test_write_back_stores_what_the_seeds_decrypt_secret_reads_with_the_published_key(services: Services) -> None:
    database, make_connections, server = services.database, services.connections, services.server
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    publish(infisical, master_keys, [1, 2], current=2)
    value = "fake-ünïcödé-sendgrid-🔑-value"
    infisical.apply_secrets(ENVIRONMENT, "/tenants/acme", upsert={"SENDGRID_API_KEY": value})
    app = make_connections(database.app_dsn)
    writer = make_connections(database.provisioner_dsn)
    events = Events()
    reader = SecretReader(
        database=app,
        keyring=KeyFolder(credentials, ENVIRONMENT, retry=FAST),
        fallback=TenantFolders(credentials, ENVIRONMENT, write_back=writer, retry=FAST),
        access_logs=[events],
        access_log_pending=0,  # each event recorded before get returns: checked call by call
    )
    server.reset_requests()

    assert reader.get("acme", "SENDGRID_API_KEY") == value
    assert server.request_counts() == {SECRET_ROUTE: 1, SECRETS_ROUTE: 1}, "the value, and the keyring once"
    assert (app.round_trips(), writer.round_trips()) == (1, 3), "the read; BEGIN, INSERT ... RETURNING, COMMIT"
    assert events.seen[-1].wrote_back

    row = database.owner.execute(
        "SELECT secret_value_encrypted, key_version, version, binding IS NOT NULL FROM company_secrets"
        " WHERE secret_key = 'SENDGRID_API_KEY'"
    ).fetchone()
    assert row is not None
    assert row[1:] == (2, 1, True), "under the current key version, as a first version, bound (decision 0049)"
    current = infisical.list_secrets(ENVIRONMENT, "/hono-api")["MASTER_ENCRYPTION_KEY"]
    assert run_node("decrypt.mjs", [{"envelope": row[0], "keyHex": current}]) == [value]
    assert audit_rows(database.owner)[-1][1:3] == ("SENDGRID_API_KEY", "insert")

    reader.invalidate("acme")
    server.reset_requests()
    assert reader.get("acme", "SENDGRID_API_KEY") == value
    assert server.request_counts() == {}, "next time from the database"
    assert events.seen[-1].source is Source.DATABASE


def test_write_back_reads_the_current_key_even_when_the_kept_keyring_is_a_rotation_old(services: Services) -> None:
    database, make_connections, server = services.database, services.connections, services.server
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    before = publish(infisical, master_keys, [1], current=1)
    apply_tenants(database.owner, database.settings, {ACME: TenantChange({"TOKEN": fake_value("t")})}, before)
    infisical.apply_secrets(ENVIRONMENT, "/tenants/acme", upsert={"SENDGRID_API_KEY": fake_value("sendgrid")})
    reader = SecretReader(
        database=make_connections(database.app_dsn),
        keyring=KeyFolder(credentials, ENVIRONMENT, ttl=3600, retry=FAST),
        fallback=TenantFolders(
            credentials, ENVIRONMENT, write_back=make_connections(database.provisioner_dsn), retry=FAST
        ),
    )
    assert reader.get("acme", "TOKEN") == fake_value("t")  # keeps the keyring of version 1 for an hour
    publish(infisical, master_keys, [1, 2], current=2)  # a rotation's switch
    server.reset_requests()

    assert reader.get("acme", "SENDGRID_API_KEY") == fake_value("sendgrid")
    assert server.request_counts() == {SECRET_ROUTE: 1, SECRETS_ROUTE: 1}, "the value, then the key folder"
    row = database.owner.execute("SELECT key_version FROM company_secrets WHERE secret_key = 'SENDGRID_API_KEY'")
    assert row.fetchone() == (2,)


class ProvisionedMeanwhile(TenantFolders):
    """A provisioning run writes the key between the reader's database read and its write-back."""

    def __init__(self, database: Database, keyring: Keyring, value: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._database, self._keyring, self._value = database, keyring, value

    def get(self, subdomain: str, key: str) -> str | None:
        change = TenantChange({key: self._value})
        apply_tenants(self._database.owner, self._database.settings, {ACME: change}, self._keyring)
        return super().get(subdomain, key)


def test_write_back_never_replaces_a_row_that_appeared_meanwhile(services: Services) -> None:
    database, make_connections = services.database, services.connections
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    keyring = publish(infisical, master_keys, [1], current=1)
    infisical.apply_secrets(ENVIRONMENT, "/tenants/acme", upsert={"STRIPE_SECRET_KEY": fake_value("infisical")})
    events = Events()
    reader = SecretReader(
        database=make_connections(database.app_dsn),
        keyring=keyring,
        fallback=ProvisionedMeanwhile(
            database,
            keyring,
            fake_value("provisioned"),
            credentials=credentials,
            environment=ENVIRONMENT,
            write_back=make_connections(database.provisioner_dsn),
            retry=FAST,
        ),
        access_logs=[events],
        access_log_pending=0,  # each event recorded before get returns: checked call by call
    )

    assert reader.get("acme", "STRIPE_SECRET_KEY") == fake_value("infisical"), "what this call read"
    assert not events.seen[-1].wrote_back
    stored = read_tenant(database.owner, database.settings, ACME, keyring)
    assert stored["STRIPE_SECRET_KEY"].value == fake_value("provisioned")
    assert reader.get("acme", "STRIPE_SECRET_KEY") == fake_value("provisioned"), "not cached: the row wins"
    assert [e.source for e in events.seen] == [Source.INFISICAL, Source.DATABASE]


def test_failures_of_infisical_and_of_the_write_back_are_typed_and_hold_no_value(
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database, make_connections, server = services.database, services.connections, services.server
    credentials, infisical, master_keys = services.credentials, services.infisical, services.master_keys
    keyring = publish(infisical, master_keys, [1], current=1)
    value = canary()
    infisical.apply_secrets(ENVIRONMENT, "/tenants/acme", upsert={"STRIPE_SECRET_KEY": value})
    caplog.set_level("DEBUG")
    read_only = SecretReader(
        database=make_connections(database.app_dsn),
        keyring=keyring,
        # the application role may not insert: the write-back fails, and the value is not returned
        fallback=TenantFolders(credentials, ENVIRONMENT, write_back=make_connections(database.app_dsn), retry=FAST),
    )
    with pytest.raises(WriteBackError, match="InsufficientPrivilege") as refused:
        read_only.get("acme", "STRIPE_SECRET_KEY")

    server.add_fault("/api/v3/secrets/raw/{secretName}", count=3, status=503)
    reader = SecretReader(
        database=make_connections(database.app_dsn),
        keyring=keyring,
        fallback=TenantFolders(credentials, ENVIRONMENT, retry=FAST),
    )
    with pytest.raises(SourceUnavailableError, match="failed after 3 attempts") as unavailable:
        reader.get("acme", "STRIPE_SECRET_KEY")
    assert unavailable.value.source is Source.INFISICAL
    assert reader.get("acme", "STRIPE_SECRET_KEY") == value, "the next call reads it"

    for error in (refused.value, unavailable.value):
        assert value not in str(error)
        assert value not in repr(error)
    assert caplog.records
    assert all(value not in record.getMessage() for record in caplog.records)

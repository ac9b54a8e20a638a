"""Every access is recorded, never with its value: to a logger by default, optionally to the access
table, which the application role can append to through its function but cannot read or change."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import psycopg
import pytest

from tenant_secrets.reader import (
    AccessEvent,
    AccessLogError,
    LoggerAccessLog,
    SecretNotFoundError,
    SecretReader,
    Source,
    TableAccessLog,
    UnknownTenantError,
)
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import TenantChange, apply_tenants
from tests.reader.conftest import ACME, GLOBEX, Connections, Database, canary


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({1: os.urandom(32)}, active=1)


def test_the_default_log_names_tenant_key_source_and_outcome_never_the_value(
    database: Database,
    keyring: Keyring,
    make_connections: Callable[..., Connections],
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme_value, globex_value = canary(), canary()
    apply_tenants(
        database.owner,
        database.settings,
        {ACME: TenantChange({"STRIPE_SECRET_KEY": acme_value}), GLOBEX: TenantChange({"ONLY_GLOBEX": globex_value})},
        keyring,
    )
    reader = SecretReader(database=make_connections(database.app_dsn), keyring=keyring)
    caplog.set_level(logging.INFO, logger="tenant_secrets.reader.access")
    reader.get("acme", "STRIPE_SECRET_KEY")
    reader.get("acme", "STRIPE_SECRET_KEY")
    with pytest.raises(SecretNotFoundError):
        reader.get("acme", "ONLY_GLOBEX")
    with pytest.raises(UnknownTenantError):
        reader.get("initech", "STRIPE_SECRET_KEY")
    reader.close()  # delivers the journal's entries (otherwise within access_log_interval)

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tenant_secrets.reader.access"]
    assert lines == [
        ("INFO", f"secret access: tenant=acme company={ACME} key=STRIPE_SECRET_KEY source=database outcome=found"),
        ("INFO", f"secret access: tenant=acme company={ACME} key=STRIPE_SECRET_KEY source=cache outcome=found"),
        ("WARNING", f"secret access: tenant=acme company={ACME} key=ONLY_GLOBEX source=database outcome=not_found"),
        (
            "WARNING",
            "secret access: tenant=initech company=- key=STRIPE_SECRET_KEY source=database outcome=unknown_tenant",
        ),
    ]
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert acme_value not in everything
    assert globex_value not in everything


def test_the_access_table_is_appended_to_by_the_application_role_which_cannot_read_or_forge_it(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    value = canary()
    apply_tenants(database.owner, database.settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": value})}, keyring)
    app = make_connections(database.app_dsn)
    reader = SecretReader(
        database=app, keyring=keyring, access_logs=[LoggerAccessLog(), TableAccessLog(app, database.settings)]
    )
    reader.get("acme", "STRIPE_SECRET_KEY")
    reader.get("acme", "STRIPE_SECRET_KEY")
    with pytest.raises(SecretNotFoundError):
        reader.get("acme", "MISSING")
    reader.flush()

    rows = database.owner.execute(
        "SELECT company_id::text, tenant, secret_key, source, outcome, wrote_back, db_role"
        " FROM company_secret_access ORDER BY id"
    ).fetchall()
    app_role = database.app_dsn.split("//")[1].split(":")[0]
    assert rows == [
        (ACME, "acme", "STRIPE_SECRET_KEY", "database", "found", False, app_role),
        (ACME, "acme", "STRIPE_SECRET_KEY", "cache", "found", False, app_role),
        (ACME, "acme", "MISSING", "database", "not_found", False, app_role),
    ]
    every_column = database.owner.execute("SELECT row_to_json(a)::text FROM company_secret_access a").fetchall()
    assert all(value not in text for (text,) in every_column)

    with app() as conn:
        for statement in (
            "SELECT * FROM company_secret_access",
            "UPDATE company_secret_access SET outcome = 'found'",
            "DELETE FROM company_secret_access",
            "INSERT INTO company_secret_access (tenant, secret_key, outcome, wrote_back, db_role, session_role)"
            " VALUES ('acme', 'X', 'found', false, 'someone_else', 'someone_else')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with make_connections(database.provisioner_dsn)() as other, pytest.raises(psycopg.errors.InsufficientPrivilege):
        other.execute("SELECT tenant_secrets_record_access(NULL, 'acme', 'X', 'cache', 'found', false)")


class Broken:
    """A log that fails while ``broken``: each event it did record is kept."""

    def __init__(self) -> None:
        self.broken = True
        self.recorded: list[AccessEvent] = []

    def record(self, event: AccessEvent) -> None:
        if self.broken:
            raise OSError("audit sink unavailable")
        self.recorded.append(event)


def test_an_access_that_cannot_be_recorded_does_not_return_the_value(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    value = canary()
    apply_tenants(database.owner, database.settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": value})}, keyring)
    reader = SecretReader(
        database=make_connections(database.app_dsn), keyring=keyring, access_logs=[Broken()], access_log_pending=0
    )
    with pytest.raises(AccessLogError, match="cannot record the access: audit sink unavailable") as error:
        reader.get("acme", "STRIPE_SECRET_KEY")
    assert (error.value.source, value in str(error.value)) == (Source.DATABASE, False)


def test_a_batched_log_that_fails_refuses_every_read_until_it_records_again_and_drops_no_entry(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    """Decision 0048: the default journal delivers off the hot path. A read served before the failure is
    delivered later (never dropped); after it, reads are refused, cache hits included."""
    value = canary()
    apply_tenants(database.owner, database.settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": value})}, keyring)
    log = Broken()
    reader = SecretReader(
        database=make_connections(database.app_dsn), keyring=keyring, access_logs=[log], access_log_interval=3600
    )
    assert reader.get("acme", "STRIPE_SECRET_KEY") == value, "journaled, delivered later"
    with pytest.raises(AccessLogError, match="cannot record the accesses: audit sink unavailable"):
        reader.flush()
    for _ in range(2):  # a cache hit too
        with pytest.raises(AccessLogError, match="cannot record the access: audit sink unavailable") as refused:
            reader.get("acme", "STRIPE_SECRET_KEY")
        assert value not in str(refused.value)

    log.broken = False
    reader.flush()
    assert [(e.tenant, e.key, e.source) for e in log.recorded] == [("acme", "STRIPE_SECRET_KEY", Source.DATABASE)]
    assert reader.get("acme", "STRIPE_SECRET_KEY") == value
    reader.close()
    assert [e.source for e in log.recorded] == [Source.DATABASE, Source.CACHE]


def test_reads_faster_than_the_log_are_slowed_to_its_pace_never_dropped(
    database: Database, keyring: Keyring, make_connections: Callable[..., Connections]
) -> None:
    apply_tenants(database.owner, database.settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": canary()})}, keyring)
    log = Broken()
    log.broken = False
    reader = SecretReader(
        database=make_connections(database.app_dsn),
        keyring=keyring,
        access_logs=[log],
        access_log_pending=10,
        access_log_interval=3600,  # no background delivery: the reading thread delivers every 10 entries
    )
    for _ in range(25):
        reader.get("acme", "STRIPE_SECRET_KEY")
    assert len(log.recorded) == 20, "delivered by the reads that found 10 waiting"
    reader.close()
    assert len(log.recorded) == 25

"""Migrations: applied once, recorded, prefixed, safe to run concurrently, clear when companies is missing."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import (
    MigrationError,
    StoreSettings,
    TenantChange,
    apply_tenants,
    connect,
    ensure_companies,
    migrate,
    read_tenant,
)
from tenant_secrets.store.schema import MIGRATIONS
from tests.conftest import ACME, fake_value

ALL = [m.name for m in MIGRATIONS]


def tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def test_migrate_applies_everything_once_and_records_it(conn: psycopg.Connection[Any], settings: StoreSettings) -> None:
    assert migrate(conn, settings) == ALL
    assert migrate(conn, settings) == []
    recorded = conn.execute("SELECT name FROM tenant_secrets_migrations ORDER BY name").fetchall()
    assert [row[0] for row in recorded] == ALL
    assert tables(conn) == {
        "companies",
        "company_secrets",
        "company_secret_versions",
        "company_secret_audit",
        "company_secret_access",
        "tenant_secrets_migrations",
        "tenant_secrets_app_roles",
        "tenant_secrets_key_state",
    }


def test_schema_matches_the_seed_plus_versions(conn: psycopg.Connection[Any], settings: StoreSettings) -> None:
    migrate(conn, settings)
    columns = conn.execute(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_name = 'company_secrets' ORDER BY ordinal_position"
    ).fetchall()
    assert [(c[0], c[1], c[2], c[3]) for c in columns] == [
        ("id", "uuid", None, "NO"),
        ("company_id", "uuid", None, "NO"),
        ("secret_key", "character varying", 255, "NO"),
        ("secret_value_encrypted", "text", None, "NO"),
        ("created_at", "timestamp without time zone", None, "NO"),
        ("updated_at", "timestamp without time zone", None, "NO"),
        ("key_version", "integer", None, "NO"),
        ("version", "integer", None, "NO"),
        ("binding", "text", None, "YES"),
    ]
    defaults = {c[0]: c[4] for c in columns}
    assert defaults["id"] == "gen_random_uuid()"
    assert defaults["key_version"] is None
    assert defaults["version"] == "1"
    constraints = dict(
        conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'company_secrets'::regclass AND contype IN ('u', 'f')"
        ).fetchall()
    )
    assert constraints == {
        "company_secrets_company_id_secret_key_unique": "UNIQUE (company_id, secret_key)",
        "company_secrets_company_id_companies_id_fk": (
            "FOREIGN KEY (company_id) REFERENCES companies(id) ON DELETE CASCADE"
        ),
    }


def test_prefix_is_honoured_and_prefixed_stores_are_independent(
    conn: psycopg.Connection[Any], keyring: Keyring
) -> None:
    acme_app = StoreSettings(table_prefix="acme-app_", create_companies_table=True)
    other = StoreSettings(table_prefix="other_", create_companies_table=True)
    assert migrate(conn, acme_app) == ALL
    assert migrate(conn, other) == ALL
    assert migrate(conn, acme_app) == []
    assert tables(conn) == {
        f"{prefix}{name}"
        for prefix in ("acme-app_", "other_")
        for name in (
            "companies",
            "company_secrets",
            "company_secret_versions",
            "company_secret_audit",
            "company_secret_access",
            "tenant_secrets_migrations",
            "tenant_secrets_app_roles",
            "tenant_secrets_key_state",
        )
    }
    ensure_companies(conn, acme_app, {"acme": (ACME, None)})
    apply_tenants(conn, acme_app, {ACME: TenantChange({"K": fake_value("k")})}, keyring)
    assert read_tenant(conn, acme_app, ACME, keyring)["K"].value == fake_value("k")
    assert conn.execute('SELECT count(*) FROM "other_company_secrets"').fetchone() == (0,)


@pytest.mark.parametrize("prefix", ["1abc_", "a b", 'a"b', "x;drop", "-a", "a" * 39])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="table_prefix"):
        StoreSettings(table_prefix=prefix)


def test_missing_companies_table_is_a_clear_error(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(MigrationError, match=r"table 'companies' does not exist.*application's own migrations"):
        migrate(conn, StoreSettings())
    assert tables(conn) == set(), "a failed migrate leaves nothing behind"


def test_an_application_created_companies_table_is_used_as_is(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE companies (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " subdomain text UNIQUE NOT NULL, name text NOT NULL, plan text)"
    )
    assert migrate(conn, StoreSettings()) == ALL
    assert "plan" in {c.name for c in conn.execute("SELECT * FROM companies").description or []}


def test_concurrent_migrations_apply_once(pg_dsn: str, settings: StoreSettings) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(pg_dsn) as conn:
                results.append(migrate(conn, settings))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], ALL]


def test_a_table_the_application_created_from_the_seed_is_adopted(
    conn: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    """Phase 2 of the seed: the app may have created company_secrets and written rows with its one key."""
    conn.execute(
        "CREATE TABLE companies (id uuid PRIMARY KEY, subdomain varchar(255) UNIQUE NOT NULL,"
        " name varchar(255) NOT NULL)"
    )
    ensure_companies(conn, settings, {"acme": (ACME, None)})
    conn.execute(
        "CREATE TABLE company_secrets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " company_id uuid NOT NULL REFERENCES companies(id) ON DELETE CASCADE,"
        " secret_key varchar(255) NOT NULL, secret_value_encrypted text NOT NULL,"
        " created_at timestamp DEFAULT now() NOT NULL, updated_at timestamp DEFAULT now() NOT NULL,"
        " UNIQUE (company_id, secret_key))"
    )
    conn.execute(
        "INSERT INTO company_secrets (company_id, secret_key, secret_value_encrypted) VALUES (%s, %s, %s)",
        [ACME, "LEGACY", keyring.encrypt(fake_value("legacy"))],
    )
    assert migrate(conn, settings) == ALL
    stored = read_tenant(conn, settings, ACME, keyring)["LEGACY"]
    assert (stored.value, stored.version, stored.key_version) == (fake_value("legacy"), 1, 1)


def test_a_database_newer_than_the_code_is_refused(conn: psycopg.Connection[Any], settings: StoreSettings) -> None:
    migrate(conn, settings)
    conn.execute("INSERT INTO tenant_secrets_migrations (name) VALUES ('9999_from_the_future')")
    with pytest.raises(MigrationError, match=r"9999_from_the_future.*upgrade tenant-secrets"):
        migrate(conn, settings)


def test_a_database_made_before_the_role_record_learns_its_application_role_and_the_log_check_on_the_next_up(
    conn: psycopg.Connection[Any], settings: StoreSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26, items 2 and 10, on an existing database: the application's role as its read policy names it
    is recorded before any run can rename it, and the access log's function is replaced by the checking one."""
    monkeypatch.setattr(
        "tenant_secrets.store.migrations.MIGRATIONS", MIGRATIONS[:5]
    )  # the schema as the release before made it
    assert migrate(conn, settings) == ALL[:5]
    ensure_companies(conn, settings, {"acme": (ACME, None)})
    conn.execute("CREATE ROLE fake_old_app NOLOGIN")
    try:
        conn.execute(
            "CREATE POLICY tenant_secrets_app_read ON company_secrets FOR SELECT TO fake_old_app"
            " USING (company_id = nullif(current_setting('app.company_id', true), '')::uuid)"
        )
        record = "SELECT tenant_secrets_record_access(%s, 'globex', 'K', 'cache', 'found', false)"
        conn.execute(record, [ACME])  # the old function logs any pair
        monkeypatch.undo()
        assert migrate(conn, settings) == ALL[5:]
        assert conn.execute("SELECT role_name FROM tenant_secrets_app_roles").fetchall() == [("fake_old_app",)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(record, [ACME])
    finally:
        conn.execute("DROP OWNED BY fake_old_app")
        conn.execute("DROP ROLE fake_old_app")

"""Applying the store's migrations: once each, in order, recorded, under an advisory lock."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.errors import MigrationError
from tenant_secrets.store.schema import DEMO_COMPANIES, MIGRATIONS
from tenant_secrets.store.settings import COMPANIES, StoreSettings
from tenant_secrets.store.settings import MIGRATIONS as MIGRATIONS_TABLE


def migrate(conn: psycopg.Connection[Any], settings: StoreSettings) -> list[str]:
    """Apply the migrations this database lacks, in one transaction; return the names applied now.

    Safe to run concurrently (the second run waits for the first, then finds nothing to do) and to re-run.
    """
    table = settings.table(MIGRATIONS_TABLE)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"tenant_secrets.tenantctl.migrate:{settings.table_prefix}"],
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ( name text PRIMARY KEY, applied_at timestamptz DEFAULT now() NOT NULL)"
            ).format(table)
        )
        applied = {row[0] for row in conn.execute(sql.SQL("SELECT name FROM {}").format(table))}
        known = {m.name for m in MIGRATIONS}
        if unknown := applied - known:
            raise MigrationError(
                f"the database has migrations this version of tenant-secrets does not know "
                f"({', '.join(sorted(unknown))}): upgrade tenant-secrets before provisioning"
            )
        pending = [m for m in MIGRATIONS if m.name not in applied]
        if not pending:
            return []
        schema = current_schema(conn)
        if settings.create_companies_table:
            conn.execute(DEMO_COMPANIES.render(settings, schema))
        _require_companies_table(conn, settings)
        for migration in pending:
            conn.execute(migration.render(settings, schema))
            conn.execute(sql.SQL("INSERT INTO {} (name) VALUES (%s)").format(table), [migration.name])
    return [m.name for m in pending]


def current_schema(conn: psycopg.Connection[Any]) -> str:
    """The schema the store's tables are created in (and found in): the first on the search_path."""
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise MigrationError("the connection's search_path names no existing schema to create tables in")
    return str(row[0])


def _require_companies_table(conn: psycopg.Connection[Any], settings: StoreSettings) -> None:
    name = settings.name(COMPANIES)
    row = conn.execute("SELECT to_regclass(%s)", [sql.Identifier(name).as_string(conn)]).fetchone()
    if row is None or row[0] is None:
        raise MigrationError(
            f"table {name!r} does not exist: company_secrets references the application's companies "
            f"table, so run the application's own migrations first (or, for a demo only, set "
            f"create_companies_table)"
        )

"""Database roles for the store: a read-only application role fenced by row-level security, and an
optional provisioning role that owns the writes.

The role that runs :func:`~tenant_secrets.store.migrate` owns the tables; it runs this too (it needs
CREATEROLE) and may provision itself. Row-level security does not apply to a table's owner, so the
owner and the provisioning role see every row; the application role sees only the rows of the company
named by ``SET app.company_id = '<uuid>'`` in its session or transaction, and nothing when it is unset.
It may also read the ``id`` and ``subdomain`` of companies and append to the access log through its
function (the reader library, :mod:`tenant_secrets.reader`), and nothing else.

Passwords are sent as SCRAM-SHA-256 verifiers computed on this side, so the plaintext never reaches the
server's statement log or ``pg_stat_statements``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.errors import StoreError
from tenant_secrets.store.migrations import current_schema
from tenant_secrets.store.settings import ACCESS, AUDIT, COMPANIES, HISTORY, MIGRATIONS, SECRETS, StoreSettings

APP_POLICY = "tenant_secrets_app_read"
PROVISIONER_POLICY = "tenant_secrets_provisioner"


def ensure_roles(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    *,
    app_role: str,
    app_password: str | None,
    provisioner_role: str | None = None,
    provisioner_password: str | None = None,
) -> None:
    """Create or update the roles, their grants and the row-level security policies; idempotent.

    A role given without a password is created ``NOLOGIN`` (grant it to the login role that uses it)
    or, if it exists, keeps its login and password. Without ``provisioner_role`` the owner provisions
    and any earlier provisioner policy is dropped.
    """
    for role in (app_role, provisioner_role):
        if role is not None and not 0 < len(role) <= 63:
            raise ValueError("role names must be 1 to 63 characters")
    if app_role == provisioner_role:
        raise ValueError("the application role and the provisioning role must differ")
    secrets = settings.table(SECRETS)
    with conn.transaction():
        owner = _table_owner(conn, settings)
        schema_name = current_schema(conn)
        schema = sql.Identifier(schema_name)
        _ensure_role(conn, app_role, app_password, owner)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(app_role)))
        conn.execute(
            sql.SQL("REVOKE ALL ON {} FROM {}").format(
                sql.SQL(", ").join(settings.table(t) for t in (SECRETS, HISTORY, AUDIT, ACCESS, MIGRATIONS)),
                sql.Identifier(app_role),
            )
        )
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(secrets, sql.Identifier(app_role)))
        # The reader library resolves a tenant by subdomain or id, and records reads through the access
        # log's function (decision 0021): two columns of companies, nothing else of it.
        conn.execute(
            sql.SQL("GRANT SELECT (id, subdomain) ON {} TO {}").format(
                settings.table(COMPANIES), sql.Identifier(app_role)
            )
        )
        conn.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}(uuid, text, text, text, text, boolean) TO {}").format(
                sql.Identifier(schema_name, settings.access_function()), sql.Identifier(app_role)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(secrets))
        _replace_policy(
            conn,
            settings,
            APP_POLICY,
            sql.SQL(
                "FOR SELECT TO {} USING (company_id = nullif(current_setting('app.company_id', true), '')::uuid)"
            ).format(sql.Identifier(app_role)),
        )
        if provisioner_role is None:
            conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(PROVISIONER_POLICY), secrets))
            return
        provisioner = sql.Identifier(provisioner_role)
        _ensure_role(conn, provisioner_role, provisioner_password, owner)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, provisioner))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(settings.table(COMPANIES), provisioner))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {}, {} TO {}").format(
                secrets, settings.table(HISTORY), provisioner
            )
        )
        _replace_policy(
            conn,
            settings,
            PROVISIONER_POLICY,
            sql.SQL("FOR ALL TO {} USING (true) WITH CHECK (true)").format(provisioner),
        )


def _ensure_role(conn: psycopg.Connection[Any], role: str, password: str | None, owner: str) -> None:
    if role == owner:
        raise StoreError(f"role {role!r} owns the store's tables, so row-level security would not apply to it")
    found = conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if found is None:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    elif found[0]:
        raise StoreError(
            f"role {role!r} is a superuser or has BYPASSRLS, so row-level security would not apply to it: "
            "use a dedicated role"
        )
    if password is not None:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        conn.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier.decode("ascii"))
            )
        )


def _replace_policy(
    conn: psycopg.Connection[Any], settings: StoreSettings, name: str, definition: sql.Composable
) -> None:
    secrets = settings.table(SECRETS)
    conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(name), secrets))
    conn.execute(sql.SQL("CREATE POLICY {} ON {} ").format(sql.Identifier(name), secrets) + definition)


def _table_owner(conn: psycopg.Connection[Any], settings: StoreSettings) -> str:
    row = conn.execute(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
        [settings.table(SECRETS).as_string(conn)],
    ).fetchone()
    if row is None:
        raise StoreError(f"table {settings.name(SECRETS)!r} does not exist: run migrate first")
    return str(row[0])

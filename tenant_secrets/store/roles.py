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
        # History holds the same ciphertexts: the same fence, should anyone ever grant the role on it.
        fenced = (secrets, settings.table(HISTORY))
        for table in fenced:
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
            _replace_policy(
                conn,
                table,
                APP_POLICY,
                sql.SQL(
                    "FOR SELECT TO {} USING (company_id = nullif(current_setting('app.company_id', true), '')::uuid)"
                ).format(sql.Identifier(app_role)),
            )
        if problems := app_role_problems(conn, settings, app_role):
            raise StoreError(f"role {app_role!r} would read more than its company's rows: " + "; ".join(problems))
        if provisioner_role is None:
            for table in fenced:
                conn.execute(
                    sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(PROVISIONER_POLICY), table)
                )
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
        for table in fenced:
            _replace_policy(
                conn,
                table,
                PROVISIONER_POLICY,
                sql.SQL("FOR ALL TO {} USING (true) WITH CHECK (true)").format(provisioner),
            )


def app_role_problems(conn: psycopg.Connection[Any], settings: StoreSettings, role: str) -> list[str]:
    """Why ``role`` could read rows of other companies or write the store: empty when it cannot.

    Counts what the role has through every role it is a member of (whether it inherits or may only
    ``SET ROLE``): superuser or BYPASSRLS anywhere in that chain, ownership of a store table (row-level
    security does not apply to owners), and table privileges beyond ``SELECT`` on company_secrets
    (granted to it, to a role it belongs to, or to PUBLIC). Reads the catalog only; the message names
    roles and tables, so ``tenantctl verify`` can report grants changed out of band.
    """
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
        return [f"role {role!r} does not exist"]
    problems = [
        f"it can act as {name!r}, which {'is a superuser' if superuser else 'has BYPASSRLS'}"
        if name != role
        else f"it {'is a superuser' if superuser else 'has BYPASSRLS'}"
        for name, superuser in conn.execute(
            "SELECT rolname, rolsuper FROM pg_roles WHERE (rolsuper OR rolbypassrls) AND pg_has_role(%s, oid, 'MEMBER')"
            " ORDER BY rolname",
            [role],
        ).fetchall()
    ]
    bases = (SECRETS, HISTORY, AUDIT, ACCESS, MIGRATIONS, COMPANIES)
    names = [settings.name(base) for base in bases]
    idents = [sql.Identifier(name).as_string(conn) for name in names]
    rows = conn.execute(
        "SELECT t.name, pg_get_userbyid(c.relowner), pg_has_role(%s, c.relowner, 'MEMBER'),"
        " array_remove(ARRAY["
        "   CASE WHEN t.base <> ALL(%s::text[]) AND has_table_privilege(%s, c.oid, 'SELECT') THEN 'SELECT' END,"
        "   CASE WHEN has_any_column_privilege(%s, c.oid, 'INSERT') THEN 'INSERT' END,"
        "   CASE WHEN has_any_column_privilege(%s, c.oid, 'UPDATE') THEN 'UPDATE' END,"
        "   CASE WHEN has_table_privilege(%s, c.oid, 'DELETE') THEN 'DELETE' END,"
        "   CASE WHEN has_table_privilege(%s, c.oid, 'TRUNCATE') THEN 'TRUNCATE' END,"
        "   CASE WHEN has_table_privilege(%s, c.oid, 'TRIGGER') THEN 'TRIGGER' END], NULL)"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS t(name, ident, base, n)"
        " JOIN pg_class c ON c.oid = to_regclass(t.ident) ORDER BY t.n",
        [role, [SECRETS, COMPANIES], *([role] * 6), names, idents, list(bases)],
    ).fetchall()
    for name, owner, member_of_owner, granted in rows:
        if member_of_owner:
            problems.append(f"it owns {name!r}" if owner == role else f"it can act as {owner!r}, which owns {name!r}")
        elif granted:
            problems.append(f"it has {'/'.join(granted)} on {name!r}")
    return problems


def _ensure_role(conn: psycopg.Connection[Any], role: str, password: str | None, owner: str) -> None:
    if role == owner:
        raise StoreError(f"role {role!r} owns the store's tables, so row-level security would not apply to it")
    found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if found is None:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    held = conn.execute(
        "SELECT rolname, rolsuper OR rolbypassrls, rolname = %s FROM pg_roles"
        " WHERE pg_has_role(%s, oid, 'MEMBER') AND (rolsuper OR rolbypassrls OR rolname = %s) ORDER BY rolname",
        [owner, role, owner],
    ).fetchall()
    if held:
        name, _bypass, owns = held[0]
        what = "owns the store's tables" if owns else "is a superuser or has BYPASSRLS"
        via = "" if name == role else f" through its membership in {name!r}, which {what}"
        raise StoreError(
            f"role {role!r} {what if not via else 'can act as another role'}{via}, so row-level security would "
            "not apply to it: use a dedicated role"
        )
    if password is not None:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        conn.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier.decode("ascii"))
            )
        )


def _replace_policy(
    conn: psycopg.Connection[Any], table: sql.Identifier, name: str, definition: sql.Composable
) -> None:
    conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(name), table))
    conn.execute(sql.SQL("CREATE POLICY {} ON {} ").format(sql.Identifier(name), table) + definition)


def _table_owner(conn: psycopg.Connection[Any], settings: StoreSettings) -> str:
    row = conn.execute(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
        [settings.table(SECRETS).as_string(conn)],
    ).fetchone()
    if row is None:
        raise StoreError(f"table {settings.name(SECRETS)!r} does not exist: run migrate first")
    return str(row[0])

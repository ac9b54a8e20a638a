"""Database roles for the store: a read-only application role fenced by row-level security, an optional
role the application writes as (fenced the same way), and an optional provisioning role that owns the writes.

The role that runs :func:`~tenant_secrets.store.migrate` owns the tables; it runs this too (it needs
CREATEROLE) and may provision itself. Row-level security does not apply to a table's owner, so the
owner and the provisioning role see every row; the application role sees only the rows of the company
named by ``SET app.company_id = '<uuid>'`` in its session or transaction, and nothing when it is unset.
It may also read the ``id`` and ``subdomain`` of companies and append to the access log through its
function (the reader library, :mod:`tenant_secrets.reader`), and nothing else.

The application's writer (``writer_role``, docs/decisions/0052) may do what the seed's ``setTenantSecret`` and
``getTenantSecret`` do, for the session's company only: insert the seed's columns, update the ciphertext and
``updated_at``, and read the seed's columns. The database completes such a write (migration 0008's
``SECURITY DEFINER`` trigger: key version, version, history), so the writer needs nothing on the history,
audit or key-state tables, and never gets DELETE: a tenant's rows go only by its ``decommission`` marker.

Passwords are sent as SCRAM-SHA-256 verifiers computed on this side, so the plaintext never reaches the
server's statement log or ``pg_stat_statements``.

Which role is the application's is recorded in the database (``tenant_secrets_app_roles``, migration 0007)
when a role is first given its rights, and the provisioner's write rights are never given to a role that is
or was the application's, or that can act as one or be acted as by one: a stack setting that swaps the two
names cannot hand the application every company's rows (docs/decisions/0042).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tenant_secrets.store.errors import StoreError
from tenant_secrets.store.migrations import current_schema
from tenant_secrets.store.settings import (
    ACCESS,
    APP_ROLES,
    AUDIT,
    COMPANIES,
    HISTORY,
    KEY_STATE,
    MIGRATIONS,
    SECRETS,
    StoreSettings,
)

APP_POLICY = "tenant_secrets_app_read"
PROVISIONER_POLICY = "tenant_secrets_provisioner"
WRITER_POLICIES = {
    "SELECT": "tenant_secrets_app_write_select",
    "INSERT": "tenant_secrets_app_write_insert",
    "UPDATE": "tenant_secrets_app_write_update",
}
"""One policy per command the writer may run: with no DELETE policy a stray DELETE grant still removes nothing."""
SEED_COLUMNS = ("id", "company_id", "secret_key", "secret_value_encrypted", "created_at", "updated_at")
"""The columns of the seed's Drizzle schema (packages/db/src/schema/company-secrets.ts): Drizzle's insert names
every one (``DEFAULT`` for those it is not given) and its ``findFirst`` selects every one."""
WRITER_UPDATES = ("secret_value_encrypted", "updated_at")
"""What the writer may update: never ``key_version``, ``version`` or ``binding`` (the trigger sets them)."""
_SESSION_COMPANY = "company_id = nullif(current_setting('app.company_id', true), '')::uuid"


def ensure_roles(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    *,
    app_role: str,
    app_password: str | None,
    provisioner_role: str | None = None,
    provisioner_password: str | None = None,
    writer_role: str | None = None,
    writer_password: str | None = None,
) -> None:
    """Create or update the roles, their grants and the row-level security policies; idempotent.

    A role given without a password is created ``NOLOGIN`` (grant it to the login role that uses it)
    or, if it exists, keeps its login and password. Without ``provisioner_role`` the owner provisions
    and any earlier provisioner policy is dropped. A ``provisioner_role`` that is, was or is tied to the
    application's role (:func:`provisioner_problems`) is refused before anything is written, and so is a
    ``writer_role`` that is the owner, the read role or the provisioner (:func:`writer_refusals`). Without
    ``writer_role`` any earlier writer's policies are dropped (its grants stay until revoked by hand).
    """
    for role in (app_role, provisioner_role, writer_role):
        if role is not None and not 0 < len(role) <= 63:
            raise ValueError("role names must be 1 to 63 characters")
    if app_role == provisioner_role:
        raise ValueError("the application role and the provisioning role must differ")
    secrets = settings.table(SECRETS)
    with conn.transaction():
        owner = _table_owner(conn, settings)
        if provisioner_role is not None and (
            refused := provisioner_problems(conn, settings, provisioner_role, app_role)
        ):
            raise StoreError("; ".join(refused))
        if writer_role is not None and (
            refused := writer_refusals(conn, settings, writer_role, app_role, provisioner_role)
        ):
            raise StoreError("; ".join(refused))
        schema_name = current_schema(conn)
        schema = sql.Identifier(schema_name)
        _ensure_role(conn, app_role, app_password, owner)
        _record_app_role(conn, settings, app_role)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(app_role)))
        conn.execute(
            sql.SQL("REVOKE ALL ON {} FROM {}").format(
                sql.SQL(", ").join(settings.table(t) for t in (SECRETS, HISTORY, AUDIT, ACCESS, MIGRATIONS, APP_ROLES)),
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
        if provisioner_role is None:
            for table in fenced:
                conn.execute(
                    sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(PROVISIONER_POLICY), table)
                )
        else:
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
        if writer_role is None:
            for policy in WRITER_POLICIES.values():
                conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(policy), secrets))
        else:
            _ensure_writer(conn, settings, schema, role=writer_role, password=writer_password, owner=owner)
        # checked once every grant is made, so that what the provisioner's and the writer's got counts too
        if problems := app_role_problems(conn, settings, app_role):
            raise StoreError(f"role {app_role!r} would read more than its company's rows: " + "; ".join(problems))
        if writer_role is not None and (problems := writer_role_problems(conn, settings, writer_role)):
            raise StoreError(
                f"role {writer_role!r} would do more than the seed's writes of its company's rows: "
                + "; ".join(problems)
            )


def _ensure_writer(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    schema: sql.Identifier,
    *,
    role: str,
    password: str | None,
    owner: str,
) -> None:
    """The writer's grants and policies, made from nothing on every run: a ``REVOKE ALL`` on a table takes
    its column grants too, so a column dropped from the lists here is dropped from the role."""
    writer, secrets = sql.Identifier(role), settings.table(SECRETS)
    _ensure_role(conn, role, password, owner)
    _record_app_role(conn, settings, role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, writer))
    conn.execute(
        sql.SQL("REVOKE ALL ON {} FROM {}").format(
            sql.SQL(", ").join(
                settings.table(t) for t in (SECRETS, HISTORY, AUDIT, ACCESS, MIGRATIONS, APP_ROLES, KEY_STATE)
            ),
            writer,
        )
    )

    def columns(names: tuple[str, ...]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(n) for n in names)

    conn.execute(
        sql.SQL("GRANT SELECT ({0}), INSERT ({0}), UPDATE ({1}) ON {2} TO {3}").format(
            columns(SEED_COLUMNS), columns(WRITER_UPDATES), secrets, writer
        )
    )
    session = sql.SQL(_SESSION_COMPANY)
    clauses = {
        "SELECT": sql.SQL("USING ({})").format(session),
        "INSERT": sql.SQL("WITH CHECK ({})").format(session),
        "UPDATE": sql.SQL("USING ({0}) WITH CHECK ({0})").format(session),
    }
    for command, policy in WRITER_POLICIES.items():
        _replace_policy(
            conn,
            secrets,
            policy,
            sql.SQL("FOR {} TO {} ").format(sql.SQL(command), writer) + clauses[command],
        )


def writer_refusals(
    conn: psycopg.Connection[Any],
    settings: StoreSettings,
    role: str,
    app_role: str | None,
    provisioner_role: str | None,
) -> list[str]:
    """Why ``role`` cannot be the application's writer at all: empty when it may be.

    The owner (or a role that can act as it) and a superuser or BYPASSRLS role are not fenced by row-level
    security, so they would write every company's rows; the read role would no longer be read-only; the
    provisioner already writes every company's rows. Reads the catalog only, so the preview checks it too.
    """
    reasons: list[str] = []
    if role == app_role:
        reasons.append("it is the application's read role (appRole), which must stay read-only")
    if role == provisioner_role:
        reasons.append("it is the provisioner, which writes every company's rows")
    secrets = settings.table(SECRETS).as_string(conn)
    found = conn.execute(
        "SELECT pg_get_userbyid(c.relowner), r.rolname = pg_get_userbyid(c.relowner),"
        " pg_has_role(r.oid, c.relowner, 'MEMBER'),"
        " EXISTS (SELECT 1 FROM pg_roles b"
        "   WHERE (b.rolsuper OR b.rolbypassrls) AND pg_has_role(r.oid, b.oid, 'MEMBER'))"
        " FROM pg_roles r, pg_class c WHERE r.rolname = %s AND c.oid = to_regclass(%s)",
        [role, secrets],
    ).fetchone()
    if found is not None:
        owner, is_owner, acts_as_owner, bypasses = found
        if is_owner:
            reasons.append(f"it owns {settings.name(SECRETS)!r}")
        elif acts_as_owner:
            reasons.append(f"it can act as {owner!r}, which owns {settings.name(SECRETS)!r}")
        if bypasses:
            reasons.append("it is or can act as a superuser or a BYPASSRLS role")
    if not reasons:
        return []
    return [
        f"role {role!r} cannot be the application's writer: {'; '.join(reasons)}, so it would not be held to one "
        "company's rows and the seed's columns; name a role of its own as the writer (appWriterRole)"
    ]


def writer_role_problems(conn: psycopg.Connection[Any], settings: StoreSettings, role: str) -> list[str]:
    """What ``role`` can do beyond the writer's rights: empty when it holds exactly those (or less).

    Counts inherited and PUBLIC grants, as the catalog's privilege functions do: on company_secrets any
    DELETE, TRUNCATE, TRIGGER or REFERENCES, an INSERT or SELECT of a column outside the seed's, an UPDATE of
    a column other than the ciphertext and ``updated_at``; any right on the history, audit, access log,
    migrations, application roles or key state tables. Reads the catalog only.
    """
    problems: list[str] = []
    secrets = settings.table(SECRETS).as_string(conn)
    extra = conn.execute(
        "SELECT array_remove(ARRAY["
        "   CASE WHEN has_table_privilege(%(r)s, to_regclass(%(t)s), 'DELETE') THEN 'DELETE' END,"
        "   CASE WHEN has_table_privilege(%(r)s, to_regclass(%(t)s), 'TRUNCATE') THEN 'TRUNCATE' END,"
        "   CASE WHEN has_table_privilege(%(r)s, to_regclass(%(t)s), 'TRIGGER') THEN 'TRIGGER' END,"
        "   CASE WHEN has_any_column_privilege(%(r)s, to_regclass(%(t)s), 'REFERENCES') THEN 'REFERENCES' END],"
        "   NULL),"
        " array(SELECT p || ' (' || a.attname || ')' FROM pg_attribute a,"
        "        unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS p"
        "        WHERE a.attrelid = to_regclass(%(t)s) AND a.attnum > 0 AND NOT a.attisdropped"
        "          AND has_column_privilege(%(r)s, a.attrelid, a.attnum, p)"
        "          AND NOT (a.attname::text = ANY (CASE WHEN p = 'UPDATE' THEN %(u)s::text[] ELSE %(s)s::text[] END))"
        "        ORDER BY a.attnum, p)",
        {"r": role, "t": secrets, "u": list(WRITER_UPDATES), "s": list(SEED_COLUMNS)},
    ).fetchone()
    if extra is not None and (extra[0] or extra[1]):
        problems.append(f"it has {', '.join([*extra[0], *extra[1]])} on {settings.name(SECRETS)!r}")
    fenced = (HISTORY, AUDIT, ACCESS, MIGRATIONS, APP_ROLES, KEY_STATE)
    names = [settings.name(base) for base in fenced]
    idents = [sql.Identifier(name).as_string(conn) for name in names]
    rows = conn.execute(
        "SELECT t.name, array_remove(ARRAY["
        "   CASE WHEN has_any_column_privilege(%(r)s, c.oid, 'SELECT') THEN 'SELECT' END,"
        "   CASE WHEN has_any_column_privilege(%(r)s, c.oid, 'INSERT') THEN 'INSERT' END,"
        "   CASE WHEN has_any_column_privilege(%(r)s, c.oid, 'UPDATE') THEN 'UPDATE' END,"
        "   CASE WHEN has_table_privilege(%(r)s, c.oid, 'DELETE') THEN 'DELETE' END,"
        "   CASE WHEN has_table_privilege(%(r)s, c.oid, 'TRUNCATE') THEN 'TRUNCATE' END], NULL)"
        " FROM unnest(%(n)s::text[], %(i)s::text[]) WITH ORDINALITY AS t(name, ident, k)"
        " JOIN pg_class c ON c.oid = to_regclass(t.ident) ORDER BY t.k",
        {"r": role, "n": names, "i": idents},
    ).fetchall()
    problems += [f"it has {'/'.join(granted)} on {name!r}" for name, granted in rows if granted]
    return problems


def role_rights(
    settings: StoreSettings, app_role: str | None, provisioner_role: str | None, writer_role: str | None = None
) -> dict[str, str]:
    """Role -> the rights :func:`ensure_roles` gives it, in words: what the preview's diff of the schema
    resource and `tenantctl plan` show a reviewer, so that a change of role names reads as who gains what."""
    secrets, history, companies = (settings.name(base) for base in (SECRETS, HISTORY, COMPANIES))
    rights: dict[str, str] = {}
    if app_role:
        rights[app_role] = (
            f"the application's role: SELECT on {secrets}, one company's rows at a time (app.company_id, "
            f"row-level security); SELECT (id, subdomain) on {companies}; EXECUTE on {settings.access_function()}"
        )
    if app_role and provisioner_role:
        rights[provisioner_role] = (
            f"the provisioner: SELECT, INSERT, UPDATE and DELETE on {secrets} and {history}, every company's "
            f"rows; SELECT on {companies}"
        )
    if app_role and writer_role:
        rights[writer_role] = (
            f"the application's writer: INSERT ({', '.join(SEED_COLUMNS)}), UPDATE ({', '.join(WRITER_UPDATES)}) "
            f"and SELECT of the same columns on {secrets}, one company's rows at a time (app.company_id, row-level "
            f"security); no DELETE, nothing on {history}"
        )
    return rights


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
    bases = (SECRETS, HISTORY, AUDIT, ACCESS, MIGRATIONS, APP_ROLES, COMPANIES)
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


def provisioner_problems(
    conn: psycopg.Connection[Any], settings: StoreSettings, role: str, app_role: str | None
) -> list[str]:
    """Why ``role`` must not be given the provisioner's write rights: empty when it may.

    The application's roles are ``app_role`` (the one this run names), those the read policy on
    company_secrets names now, and those recorded in ``tenant_secrets_app_roles`` (when the connection
    may read it: a pull request's preview role need not). ``role`` is refused when it is one of them (by
    name, or by oid after a rename), when it can act as one (the application's login role is a member of a
    ``NOLOGIN`` application role) or when one can act as it: in each case the application would hold
    INSERT, UPDATE and DELETE on every company's rows. Reads the catalog only, so a preview can check it.
    """
    secrets = settings.table(SECRETS).as_string(conn)
    recorded = settings.table(APP_ROLES).as_string(conn)
    readable = conn.execute(
        "SELECT CASE WHEN to_regclass(%s) IS NULL THEN false ELSE has_table_privilege(to_regclass(%s), 'SELECT') END",
        [recorded, recorded],
    ).fetchone()
    known = sql.SQL(" UNION ALL SELECT role_name, role_oid, 3 FROM {}").format(settings.table(APP_ROLES))
    rows = conn.execute(
        sql.SQL(
            "SELECT a.name, a.how, r.rolname, r.rolname = %s OR a.name = %s,"
            " CASE WHEN p.oid IS NULL OR r.oid IS NULL THEN false ELSE pg_has_role(p.oid, r.oid, 'MEMBER') END,"
            " CASE WHEN p.oid IS NULL OR r.oid IS NULL THEN false ELSE pg_has_role(r.oid, p.oid, 'MEMBER') END"
            " FROM (SELECT %s::text AS name, NULL::oid AS oid, 1 AS how"
            "   UNION ALL SELECT r.rolname::text, r.oid, 2"
            "   FROM pg_policy p JOIN pg_roles r ON r.oid = ANY (p.polroles)"
            "   WHERE p.polrelid = to_regclass(%s) AND p.polname = %s{}) a"
            " LEFT JOIN pg_roles r ON r.oid = a.oid OR r.rolname = a.name"
            " LEFT JOIN pg_roles p ON p.rolname = %s"
            " WHERE a.name IS NOT NULL ORDER BY a.how, a.name"
        ).format(known if readable and readable[0] else sql.SQL("")),
        [role, role, app_role, secrets, APP_POLICY, role],
    ).fetchall()
    jobs = {
        1: "the application's role",
        2: f"the application's role (the read policy on {settings.name(SECRETS)} names it)",
        3: "a former application role",
    }
    reasons: dict[str, str] = {}  # the application's role it is tied to -> how, its first reason only
    for name, how, existing, same, acts_as, acted_as in rows:
        held = existing or name
        if same:
            renamed = f" (named {name!r} then)" if existing == role and name != role else ""
            reasons.setdefault(held, f"is {jobs[how]}{renamed}")
        elif acts_as:
            reasons.setdefault(held, f"can act as {held!r}, {jobs[how]}")
        elif acted_as:
            reasons.setdefault(held, f"can be acted as by {held!r}, {jobs[how]}")
    if not reasons:
        return []
    why = "; ".join(dict.fromkeys(reasons.values()))
    return [
        f"role {role!r} {why}: as the provisioner it would give the application INSERT, UPDATE "
        f"and DELETE on every company's rows of {settings.name(SECRETS)!r}; name as provisioner a role the "
        f"application never used ({settings.name(APP_ROLES)!r} lists the roles that were the application's)"
    ]


def _record_app_role(conn: psycopg.Connection[Any], settings: StoreSettings, role: str) -> None:
    """Remember ``role`` as one that had the application's rights, by oid and name, for good."""
    try:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (role_oid, role_name) SELECT oid, rolname FROM pg_roles WHERE rolname = %s"
                " ON CONFLICT DO NOTHING"
            ).format(settings.table(APP_ROLES)),
            [role],
        )
    except psycopg.errors.UndefinedTable:
        raise StoreError(f"table {settings.name(APP_ROLES)!r} does not exist: run migrate first") from None


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

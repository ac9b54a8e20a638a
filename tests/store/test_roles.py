"""Roles: the application role reads only its company's rows and writes nothing; the provisioner writes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dev.pg import Cluster
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import (
    StoreError,
    StoreSettings,
    TenantChange,
    apply_tenants,
    connect,
    ensure_roles,
    read_tenant,
)
from tenant_secrets.store.roles import app_role_problems
from tests.conftest import ACME, GLOBEX, fake_value


@dataclass(frozen=True)
class Roles:
    app: str
    app_password: str
    app_dsn: str
    provisioner: str
    provisioner_password: str
    provisioner_dsn: str


@pytest.fixture
def roles(db: psycopg.Connection[Any], pg_cluster: Cluster, pg_dsn: str) -> Iterator[Roles]:
    """Role names unique to this test (roles are cluster-wide), dropped afterwards."""
    suffix = secrets.token_hex(4)
    dbname = str(conninfo_to_dict(pg_dsn)["dbname"])
    app, app_password = f"tenant_app_{suffix}", f"fake-app-password-{secrets.token_hex(8)}"
    provisioner = f"tenant_provisioner_{suffix}"
    provisioner_password = f"fake-provisioner-password-{secrets.token_hex(8)}"
    made = Roles(
        app,
        app_password,
        pg_cluster.dsn(user=app, password=app_password, dbname=dbname),
        provisioner,
        provisioner_password,
        pg_cluster.dsn(user=provisioner, password=provisioner_password, dbname=dbname),
    )
    yield made
    for role in (made.app, made.provisioner):
        if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def secured(db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, roles: Roles) -> Roles:
    apply_tenants(
        db,
        settings,
        {
            ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme"), "TOKEN": fake_value("acme-t")}),
            GLOBEX: TenantChange({"STRIPE_SECRET_KEY": fake_value("globex")}),
        },
        keyring,
    )
    ensure_roles(
        db,
        settings,
        app_role=roles.app,
        app_password=roles.app_password,
        provisioner_role=roles.provisioner,
        provisioner_password=roles.provisioner_password,
    )
    return roles


def test_app_role_sees_only_its_company_and_cannot_write(
    secured: Roles,
) -> None:
    with connect(secured.app_dsn) as app:
        assert app.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,), "unset: nothing"
        app.execute(sql.SQL("SET app.company_id = {}").format(sql.Literal(ACME)))
        seen = app.execute("SELECT company_id::text, secret_key FROM company_secrets ORDER BY 2").fetchall()
        assert seen == [(ACME, "STRIPE_SECRET_KEY"), (ACME, "TOKEN")]
        assert app.execute("SELECT count(*) FROM company_secrets WHERE company_id = %s", [GLOBEX]).fetchone() == (0,)

        for statement in (
            sql.SQL(
                "INSERT INTO company_secrets (company_id, secret_key, secret_value_encrypted, key_version)"
                " VALUES ({}, 'X', 'x', 1)"
            ).format(sql.Literal(ACME)),
            sql.SQL("UPDATE company_secrets SET secret_value_encrypted = 'x'"),
            sql.SQL("DELETE FROM company_secrets"),
            sql.SQL("SELECT * FROM company_secret_versions"),
            sql.SQL("SELECT * FROM company_secret_audit"),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)

        app.execute("SET app.company_id = ''")
        assert app.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,), "emptied: nothing"


def test_app_role_reads_two_columns_of_companies_and_records_reads_only_through_the_function(
    db: psycopg.Connection[Any], secured: Roles
) -> None:
    with connect(secured.app_dsn) as app:
        assert app.execute("SELECT id::text, subdomain FROM companies ORDER BY 2").fetchall() == [
            (ACME, "acme"),
            (GLOBEX, "globex"),
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT name FROM companies")
        app.execute("SELECT tenant_secrets_record_access(%s, 'acme', 'K', 'cache', 'found', false)", [ACME])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM company_secret_access")
    with connect(secured.provisioner_dsn) as provisioner, pytest.raises(psycopg.errors.InsufficientPrivilege):
        provisioner.execute("SELECT tenant_secrets_record_access(NULL, 'acme', 'K', 'cache', 'found', false)")
    recorded = db.execute("SELECT tenant, secret_key, db_role FROM company_secret_access").fetchall()
    assert recorded == [("acme", "K", secured.app)]


def test_the_app_setting_can_be_transaction_local(secured: Roles) -> None:
    """A pooled application sets the company per transaction: ``SET LOCAL`` / ``set_config(..., true)``."""
    with connect(secured.app_dsn) as app:
        with app.transaction():
            app.execute("SELECT set_config('app.company_id', %s, true)", [GLOBEX])
            rows = app.execute("SELECT company_id::text FROM company_secrets").fetchall()
            assert rows == [(GLOBEX,)]
        assert app.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,)


def test_provisioner_role_applies_and_is_named_in_the_audit(
    db: psycopg.Connection[Any],
    settings: StoreSettings,
    keyring: Keyring,
    secured: Roles,
) -> None:
    with connect(secured.provisioner_dsn) as provisioner:
        result = apply_tenants(
            provisioner,
            settings,
            {ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme-v2")}, delete=["TOKEN"])},
            keyring,
        )
        assert (result.updated, result.deleted) == (1, 1)
        assert set(read_tenant(provisioner, settings, GLOBEX, keyring)) == {"STRIPE_SECRET_KEY"}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            provisioner.execute("SELECT * FROM company_secret_audit")
    actors = db.execute(
        "SELECT DISTINCT action, db_role, session_role FROM company_secret_audit WHERE db_role <> 'tenant_admin'"
    ).fetchall()
    assert sorted(actors) == [
        ("delete", secured.provisioner, secured.provisioner),
        ("update", secured.provisioner, secured.provisioner),
    ]

    with db.transaction():
        db.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(secured.provisioner)))
        apply_tenants(db, settings, {GLOBEX: TenantChange({"NEW": fake_value("new")})}, keyring)
    last = db.execute("SELECT db_role, session_role FROM company_secret_audit ORDER BY id DESC LIMIT 1")
    assert last.fetchone() == (secured.provisioner, "tenant_admin")


def test_ensure_roles_is_idempotent_and_keeps_passwords_out_of_the_server(
    pg_cluster: Cluster, db: psycopg.Connection[Any], settings: StoreSettings, secured: Roles
) -> None:
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    ensure_roles(db, settings, app_role=secured.app, app_password=None, provisioner_role=secured.provisioner)
    policies = db.execute("SELECT tablename, policyname, roles::text FROM pg_policies ORDER BY 1, 2").fetchall()
    assert policies == [
        (table, policy, f"{{{role}}}")
        for table in ("company_secret_versions", "company_secrets")
        for policy, role in (
            ("tenant_secrets_app_read", secured.app),
            ("tenant_secrets_provisioner", secured.provisioner),
        )
    ]
    with connect(secured.app_dsn) as app:  # password kept
        assert app.execute("SELECT current_user").fetchone() == (secured.app,)
    logged = db.execute("SELECT query FROM pg_stat_statements").fetchall()
    assert not any(secured.app_password in q or secured.provisioner_password in q for (q,) in logged)
    server_log = (pg_cluster.root / "server.log").read_text(errors="replace")
    assert secured.app_password not in server_log

    ensure_roles(db, settings, app_role=secured.app, app_password=None)
    assert db.execute("SELECT tablename, policyname FROM pg_policies ORDER BY tablename").fetchall() == [
        ("company_secret_versions", "tenant_secrets_app_read"),
        ("company_secrets", "tenant_secrets_app_read"),
    ]


def test_roles_that_would_bypass_row_level_security_are_refused(
    db: psycopg.Connection[Any], settings: StoreSettings, roles: Roles
) -> None:
    with pytest.raises(StoreError, match="owns the store's tables"):
        ensure_roles(db, settings, app_role="tenant_admin", app_password=None)
    db.execute(sql.SQL("CREATE ROLE {} BYPASSRLS").format(sql.Identifier(roles.app)))
    with pytest.raises(StoreError, match="BYPASSRLS"):
        ensure_roles(db, settings, app_role=roles.app, app_password=None)


def test_ensure_roles_needs_the_tables(conn: psycopg.Connection[Any], settings: StoreSettings) -> None:
    with pytest.raises(StoreError, match="run migrate first"):
        ensure_roles(conn, settings, app_role="nobody_yet", app_password=None)


def test_inherited_rights_are_counted_not_only_the_roles_own_attributes(
    db: psycopg.Connection[Any], settings: StoreSettings, roles: Roles
) -> None:
    """Issue 13, item 4: a member of the tables' owner passed, then read every company without app.company_id."""
    owner, bypass = f"{roles.app}_owner", f"{roles.app}_bypass"
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN BYPASSRLS").format(sql.Identifier(bypass)))
    try:
        for table in ("companies", "company_secrets", "company_secret_versions", "company_secret_audit"):
            db.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(owner)))
        db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(roles.app)))
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(roles.app)))
        with pytest.raises(StoreError, match=f"through its membership in '{owner}', which owns the store's tables"):
            ensure_roles(db, settings, app_role=roles.app, app_password=None)

        db.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(owner), sql.Identifier(roles.app)))
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(bypass), sql.Identifier(roles.app)))
        with pytest.raises(
            StoreError, match=f"through its membership in '{bypass}', which is a superuser or has BYPASSRLS"
        ):
            ensure_roles(db, settings, app_role=roles.app, app_password=None)

        db.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(bypass), sql.Identifier(roles.app)))
        db.execute("GRANT SELECT, DELETE ON company_secret_versions TO PUBLIC")  # out of band, to everyone
        with pytest.raises(StoreError) as granted:
            ensure_roles(db, settings, app_role=roles.app, app_password=None)
        assert str(granted.value) == (
            f"role {roles.app!r} would read more than its company's rows: "
            "it has SELECT/DELETE on 'company_secret_versions'"
        )
        db.execute("REVOKE ALL ON company_secret_versions FROM PUBLIC")
        ensure_roles(db, settings, app_role=roles.app, app_password=None)
        assert app_role_problems(db, settings, roles.app) == []
        # the history table is fenced like company_secrets, should the role ever be granted on it
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(bypass), sql.Identifier(roles.app)))
        assert app_role_problems(db, settings, roles.app) == [f"it can act as {bypass!r}, which has BYPASSRLS"]
        assert db.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'company_secret_versions'::regclass"
        ).fetchone() == (True,)
    finally:
        for table in ("companies", "company_secrets", "company_secret_versions", "company_secret_audit"):
            db.execute(sql.SQL("ALTER TABLE {} OWNER TO CURRENT_USER").format(sql.Identifier(table)))
        for role in (owner, bypass):
            db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- the application's role never gets the provisioner's rights (issue 26, item 2) -------------------


@pytest.fixture
def decoy(db: psycopg.Connection[Any], roles: Roles) -> Iterator[str]:
    """A third role name, for the role a swap names as the application's; dropped afterwards."""
    name = f"{roles.app}_decoy"
    yield name
    if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def assert_app_is_still_fenced(app_dsn: str) -> None:
    """What the attack got: the application role reading every company's rows, and UPDATE/DELETE; it has neither."""
    with connect(app_dsn) as app:
        assert app.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,), "unset app.company_id"
        for statement in ("UPDATE company_secrets SET version = version", "DELETE FROM company_secrets"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)


def test_the_application_role_named_as_provisioner_is_refused_before_anything_is_written(
    db: psycopg.Connection[Any], settings: StoreSettings, secured: Roles, decoy: str
) -> None:
    """The swap of issue 26: appRole renamed to a decoy, the application's login role named provisionerRole."""
    with pytest.raises(StoreError) as refused:
        ensure_roles(db, settings, app_role=decoy, app_password=None, provisioner_role=secured.app)
    assert str(refused.value).startswith(
        f"role {secured.app!r} is the application's role (the read policy on company_secrets names it): "
        "as the provisioner it would give the application INSERT, UPDATE and DELETE on every company's rows"
    )
    assert "name as provisioner a role the application never used" in str(refused.value)
    assert db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [decoy]).fetchone() is None, "nothing written"
    assert_app_is_still_fenced(secured.app_dsn)


def test_a_former_application_role_stays_refused_once_the_policy_has_moved_on(
    db: psycopg.Connection[Any], settings: StoreSettings, secured: Roles, decoy: str
) -> None:
    """The record in the database remembers what the policies no longer say: two runs instead of one."""
    ensure_roles(db, settings, app_role=decoy, app_password=None)  # the first run: only the rename
    policy_roles = db.execute("SELECT DISTINCT roles::text FROM pg_policies").fetchall()
    assert policy_roles == [(f"{{{decoy}}}",)], "the old application role is no longer in any policy"
    with pytest.raises(StoreError, match=f"role {secured.app!r} is a former application role"):
        ensure_roles(db, settings, app_role=decoy, app_password=None, provisioner_role=secured.app)
    recorded = db.execute("SELECT role_name FROM tenant_secrets_app_roles ORDER BY 1").fetchall()
    assert recorded == sorted([(secured.app,), (decoy,)])
    renamed = f"{secured.app}_renamed"
    db.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(secured.app), sql.Identifier(renamed)))
    try:
        with pytest.raises(StoreError, match=f"role {renamed!r} is a former application role \\(named"):
            ensure_roles(db, settings, app_role=decoy, app_password=None, provisioner_role=renamed)
    finally:
        db.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(renamed), sql.Identifier(secured.app)))
    assert_app_is_still_fenced(secured.app_dsn)


def test_a_member_of_the_application_role_is_refused_and_so_is_a_role_it_can_act_as(
    db: psycopg.Connection[Any], settings: StoreSettings, roles: Roles, decoy: str
) -> None:
    """A NOLOGIN application role granted to the application's login role: that login role is the application."""
    ensure_roles(db, settings, app_role=decoy, app_password=None)
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(roles.provisioner)))
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(decoy), sql.Identifier(roles.provisioner)))
    with pytest.raises(StoreError, match=f"role {roles.provisioner!r} can act as {decoy!r}, the application's role"):
        ensure_roles(db, settings, app_role=decoy, app_password=None, provisioner_role=roles.provisioner)
    db.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(decoy), sql.Identifier(roles.provisioner)))
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(roles.provisioner), sql.Identifier(decoy)))
    with pytest.raises(StoreError, match=f"can be acted as by {decoy!r}, the application's role"):
        ensure_roles(db, settings, app_role=decoy, app_password=None, provisioner_role=roles.provisioner)
    db.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(roles.provisioner), sql.Identifier(decoy)))
    ensure_roles(db, settings, app_role=decoy, app_password=None, provisioner_role=roles.provisioner)  # now it may


def test_the_access_log_refuses_a_tenant_that_is_not_the_companys(db: psycopg.Connection[Any], secured: Roles) -> None:
    """Issue 26, item 10: the application role could log reads of any company under any tenant's name."""
    record = "SELECT tenant_secrets_record_access(%s, %s, 'K', 'database', 'found', false)"
    with connect(secured.app_dsn) as app:
        with pytest.raises(psycopg.errors.CheckViolation, match='tenant "globex" is neither the subdomain nor'):
            app.execute(record, [ACME, "globex"])
        with pytest.raises(psycopg.errors.CheckViolation):
            app.execute(record, [ACME, "no-such-tenant"])
        app.execute(record, [ACME, "acme"])  # by subdomain
        app.execute(record, [GLOBEX, GLOBEX.upper()])  # by id, as the reader was asked
        app.execute(record, [None, "no-such-tenant"])  # not found: no company named
    logged = db.execute("SELECT company_id::text, tenant FROM company_secret_access ORDER BY id").fetchall()
    assert logged == [(ACME, "acme"), (GLOBEX, GLOBEX.upper()), (None, "no-such-tenant")]

"""The application's writer role (docs/decisions/0052): the seed's own setTenantSecret and getTenantSecret run as
it, for the session's company, and the database completes each write; anything beyond the seed's writes of its
own company's rows is refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
    record_key_state,
)
from tenant_secrets.store.preflight import PreflightError, TenantRef, inspect
from tenant_secrets.store.roles import role_rights, writer_role_problems
from tests.conftest import ACME, GLOBEX, fake_value
from tests.seed_writes import get_op, run_seed, set_op
from tests.store.helpers import audit_rows, history_rows

APP_KEY = "WEBHOOK_SIGNING_SECRET"  # the application's own key


@dataclass(frozen=True)
class Writer:
    app: str
    name: str
    password: str
    dsn: str


@pytest.fixture
def writer(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_cluster: Cluster, pg_dsn: str
) -> Iterator[Writer]:
    """A read role and a writer role unique to this test (roles are cluster-wide), set up as `pulumi up` does
    with appRole and appWriterRole, over acme's and globex's declared rows; dropped afterwards."""
    suffix = secrets.token_hex(4)
    app, name = f"tenant_app_{suffix}", f"tenant_writer_{suffix}"
    password = f"fake-writer-password-{secrets.token_hex(8)}"
    dbname = str(conninfo_to_dict(pg_dsn)["dbname"])
    apply_tenants(
        db,
        settings,
        {
            ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme")}),
            GLOBEX: TenantChange({"STRIPE_SECRET_KEY": fake_value("globex")}),
        },
        keyring,
    )
    record_key_state(db, settings, app_key_version=keyring.active)
    ensure_roles(db, settings, app_role=app, app_password=None, writer_role=name, writer_password=password)
    yield Writer(app, name, password, pg_cluster.dsn(user=name, password=password, dbname=dbname))
    for role in (name, app):
        if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def for_company(dsn: str, company: str) -> str:
    """The writer's URL with the session's company set at connect (libpq's and node-postgres's ``options``), as
    an application sets ``app.company_id`` for the tenant it serves; the seed's code itself is unchanged."""
    return f"{dsn}?options={quote(f'-c app.company_id={company}', safe='')}"


def stored(db: psycopg.Connection[Any], company: str, key: str) -> tuple[Any, ...] | None:
    """``(key_version, version, binding is null)`` of one row, as the owner sees it."""
    found = db.execute(
        "SELECT key_version, version, binding IS NULL FROM company_secrets WHERE company_id = %s AND secret_key = %s",
        [company, key],
    ).fetchone()
    return None if found is None else tuple(found)


def test_the_seeds_write_and_read_as_the_writer_are_completed_by_the_database(
    db: psycopg.Connection[Any], keyring: Keyring, writer: Writer
) -> None:
    key = keyring.key(keyring.active).hex()
    results = run_seed(
        for_company(writer.dsn, ACME),
        [
            set_op(ACME, APP_KEY, fake_value("acme-webhook-1")),
            set_op(ACME, APP_KEY, fake_value("acme-webhook-2")),
            get_op(ACME, APP_KEY),
            get_op(ACME, "STRIPE_SECRET_KEY"),
        ],
        keyHex=key,
    )
    assert results == [
        {"ok": True},
        {"ok": True},
        {"ok": True, "value": fake_value("acme-webhook-2")},
        {"ok": True, "value": fake_value("acme")},
    ]
    assert stored(db, ACME, APP_KEY) == (keyring.active, 2, True)  # labelled, bumped, left for `up` to bind
    assert [h[:4] for h in history_rows(db) if h[1] == APP_KEY] == [(ACME, APP_KEY, 1, keyring.active)]
    assert [a[:4] for a in audit_rows(db) if a[1] == APP_KEY] == [
        (ACME, APP_KEY, "insert", 1),
        (ACME, APP_KEY, "update", 2),
    ]
    named = db.execute("SELECT DISTINCT db_role FROM company_secret_audit WHERE secret_key = %s", [APP_KEY]).fetchall()
    assert named == [(writer.name,)]

    # the session's company is the only one it sees or writes: globex's key is not there, and a write for
    # globex is refused by the row-level security check, naming no value
    other = run_seed(
        for_company(writer.dsn, ACME),
        [get_op(GLOBEX, "STRIPE_SECRET_KEY"), set_op(GLOBEX, APP_KEY, fake_value("globex-webhook"))],
        keyHex=key,
    )
    assert other[0] == {"ok": True, "value": None}
    assert (other[1]["ok"], other[1]["code"]) == (False, "42501")
    assert "row-level security" in other[1]["error"]
    assert fake_value("globex-webhook") not in other[1]["error"]
    assert stored(db, GLOBEX, APP_KEY) is None
    # without a company in its session it sees and writes nothing
    unset = run_seed(writer.dsn, [get_op(ACME, APP_KEY), set_op(ACME, "OTHER_KEY", fake_value("x"))], keyHex=key)
    assert unset[0] == {"ok": True, "value": None}
    assert (unset[1]["ok"], unset[1]["code"]) == (False, "42501")


def test_the_writer_cannot_delete_relabel_rebind_or_read_the_history(
    db: psycopg.Connection[Any], keyring: Keyring, writer: Writer
) -> None:
    before = db.execute(
        "SELECT company_id::text, secret_key, secret_value_encrypted, key_version, version, binding"
        " FROM company_secrets ORDER BY 1, 2"
    ).fetchall()
    refused: list[sql.SQL | sql.Composed] = [
        sql.SQL("DELETE FROM company_secrets"),
        sql.SQL("UPDATE company_secrets SET key_version = key_version + 1"),
        sql.SQL("UPDATE company_secrets SET binding = NULL"),
        sql.SQL("UPDATE company_secrets SET version = version + 1"),
        sql.SQL("UPDATE company_secrets SET company_id = company_id"),
        sql.SQL(
            "INSERT INTO company_secrets (company_id, secret_key, secret_value_encrypted, key_version, binding)"
            " VALUES ({}, 'FORGED', 'x', 1, 'x')"
        ).format(sql.Literal(ACME)),
        sql.SQL("SELECT key_version FROM company_secrets"),
        sql.SQL("SELECT * FROM company_secret_versions"),
        sql.SQL("SELECT * FROM company_secret_audit"),
        sql.SQL("SELECT * FROM tenant_secrets_key_state"),
        sql.SQL("UPDATE tenant_secrets_key_state SET app_key_version = 99"),
        sql.SQL("TRUNCATE company_secrets"),
    ]
    with connect(for_company(writer.dsn, ACME)) as conn:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # another company's row is not there to update: nothing changes
        moved = conn.execute("UPDATE company_secrets SET secret_value_encrypted = 'x' WHERE company_id = %s", [GLOBEX])
        assert moved.rowcount == 0
    after = db.execute(
        "SELECT company_id::text, secret_key, secret_value_encrypted, key_version, version, binding"
        " FROM company_secrets ORDER BY 1, 2"
    ).fetchall()
    assert after == before
    assert writer_role_problems(db, StoreSettings(create_companies_table=True), writer.name) == []


def test_rights_granted_beside_the_writers_are_named(
    db: psycopg.Connection[Any], settings: StoreSettings, writer: Writer
) -> None:
    """What ensure_roles does not grant but the role holds anyway (here through a role it is a member of) is
    found, and ensure_roles refuses the role until that is revoked."""
    extra = sql.Identifier(f"{writer.name}_extra")
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(extra))
    db.execute(sql.SQL("GRANT SELECT ON company_secret_versions TO {}").format(extra))
    db.execute(sql.SQL("GRANT DELETE, UPDATE (key_version) ON company_secrets TO {}").format(extra))
    db.execute(sql.SQL("GRANT {} TO {}").format(extra, sql.Identifier(writer.name)))
    try:
        assert writer_role_problems(db, settings, writer.name) == [
            "it has DELETE, UPDATE (key_version) on 'company_secrets'",
            "it has SELECT on 'company_secret_versions'",
        ]
        with pytest.raises(StoreError, match=rf"^role '{writer.name}' would do more than the seed's writes"):
            ensure_roles(db, settings, app_role=writer.app, app_password=None, writer_role=writer.name)
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(extra))
        db.execute(sql.SQL("DROP ROLE {}").format(extra))
    ensure_roles(db, settings, app_role=writer.app, app_password=None, writer_role=writer.name)
    assert writer_role_problems(db, settings, writer.name) == []


def test_the_owner_the_read_role_and_the_provisioner_are_refused_as_the_writer(
    db: psycopg.Connection[Any], settings: StoreSettings, writer: Writer
) -> None:
    owner = str((db.execute("SELECT current_user").fetchone() or ("",))[0])
    provisioner = f"tenant_provisioner_{secrets.token_hex(4)}"
    cases = {
        owner: f"role '{owner}' cannot be the application's writer: it owns 'company_secrets'",
        writer.app: f"role '{writer.app}' cannot be the application's writer: it is the application's read role",
        provisioner: f"role '{provisioner}' cannot be the application's writer: it is the provisioner",
    }
    for role, message in cases.items():
        with pytest.raises(StoreError) as raised:
            ensure_roles(
                db,
                settings,
                app_role=writer.app,
                app_password=None,
                provisioner_role=provisioner,
                writer_role=role,
            )
        assert str(raised.value).startswith(message)
        assert "\n" not in str(raised.value)
    # refused before anything was written: the provisioner was not created
    assert db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [provisioner]).fetchone() is None


def test_without_the_setting_the_writers_policies_go_and_it_writes_nothing(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, writer: Writer
) -> None:
    ensure_roles(db, settings, app_role=writer.app, app_password=None)
    (result,) = run_seed(
        for_company(writer.dsn, ACME),
        [set_op(ACME, APP_KEY, fake_value("acme-webhook"))],
        keyHex=keyring.key(keyring.active).hex(),
    )
    assert (result["ok"], result["code"]) == (False, "42501")
    assert stored(db, ACME, APP_KEY) is None


def test_the_plan_names_what_the_writer_gains(settings: StoreSettings) -> None:
    rights = role_rights(settings, "deliverychat_app", None, "deliverychat_writer")
    assert set(rights) == {"deliverychat_app", "deliverychat_writer"}
    assert rights["deliverychat_writer"].startswith(
        "the application's writer: INSERT (id, company_id, secret_key, secret_value_encrypted, created_at, "
        "updated_at), UPDATE (secret_value_encrypted, updated_at)"
    )
    assert "no DELETE" in rights["deliverychat_writer"]
    assert role_rights(settings, None, None, "deliverychat_writer") == {}  # no roles managed without appRole


def test_the_preview_refuses_the_owner_as_the_writer_before_anything_is_written(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, writer: Writer
) -> None:
    owner = str((db.execute("SELECT current_user").fetchone() or ("",))[0])
    with pytest.raises(PreflightError) as raised:
        inspect(db, settings, [TenantRef("acme")], keyring, app_role=writer.app, writer_role=owner)
    (problem,) = raised.value.problems  # the test cluster's owner is also a superuser: both are said
    assert problem.startswith(f"role '{owner}' cannot be the application's writer: it owns 'company_secrets'")
    assert problem.endswith("name a role of its own as the writer (appWriterRole)")
    assert inspect(db, settings, [TenantRef("acme")], keyring, app_role=writer.app, writer_role=writer.name)


def test_the_preflight_lists_every_key_a_decommissioned_tenants_up_deletes(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, writer: Writer
) -> None:
    """Decommission deletes the application's keys too (decision 0049): the plan gets them from here."""
    run_seed(
        for_company(writer.dsn, ACME),
        [set_op(ACME, APP_KEY, fake_value("acme-webhook"))],
        keyHex=keyring.key(keyring.active).hex(),
    )
    found = inspect(db, settings, [TenantRef("acme", decommission=True), TenantRef("globex")], keyring)
    assert found.stored_keys == {"acme": ("STRIPE_SECRET_KEY", APP_KEY)}
    assert inspect(db, settings, [TenantRef("acme"), TenantRef("globex")], keyring).stored_keys == {}

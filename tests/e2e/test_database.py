"""Strategy B through `pulumi up` on the real engine and a real PostgreSQL: schema and prefix, roles
and row-level security, the application's Node.js reader, no churn, master key rotation, bad input,
a failure half-way, the audit trail and decommissioning, and nothing secret in state or output."""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import SUPERUSER, Cluster
from tenant_secrets.store.schema import MIGRATIONS
from tests.e2e.conftest import Project, configure, example_stack
from tests.store.test_node_compat import run_node

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults: {storage: database, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}
  - subdomain: acmecorp
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SMTP:
        host: {value: smtp.example.test}
        password: {from: config}
"""
VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-codewiser-db-0001"},
    "acmecorp": {"STRIPE_SECRET_KEY": "fake-stripe-acmecorp-db-0001", "SMTP_PASSWORD": "fake-smtp-acmecorp-db-0001"},
}
DECLARED = {
    ("codewiser", "STRIPE_SECRET_KEY"): "fake-stripe-codewiser-db-0001",
    ("acmecorp", "STRIPE_SECRET_KEY"): "fake-stripe-acmecorp-db-0001",
    ("acmecorp", "SMTP_HOST"): "smtp.example.test",
    ("acmecorp", "SMTP_PASSWORD"): "fake-smtp-acmecorp-db-0001",
}
GENERATED = ("codewiser", "WEBHOOK_SIGNING_SECRET")


# --- reading the database back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    ciphertext: str
    updated_at: Any
    xmin: str  # changes on any UPDATE of the row, even one writing the same values back
    version: int
    key_version: int


def table(prefix: str, base: str) -> sql.Identifier:
    return sql.Identifier(f"{prefix}{base}")


def secret_rows(project: Project, prefix: str = "") -> dict[tuple[str, str], Row]:
    with project.db() as conn:
        found = conn.execute(
            sql.SQL(
                "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.updated_at, s.xmin::text,"
                " s.version, s.key_version FROM {} s JOIN {} c ON c.id = s.company_id"
            ).format(table(prefix, "company_secrets"), table(prefix, "companies"))
        ).fetchall()
    return {(r[0], r[1]): Row(*r[2:]) for r in found}


def history_rows(project: Project, prefix: str = "") -> dict[tuple[str, str, int], Row]:
    """(subdomain, key, version) -> the previous ciphertext kept for that version."""
    with project.db() as conn:
        found = conn.execute(
            sql.SQL(
                "SELECT c.subdomain, h.secret_key, h.version, h.secret_value_encrypted, h.written_at, h.xmin::text,"
                " h.version, h.key_version FROM {} h JOIN {} c ON c.id = h.company_id"
            ).format(table(prefix, "company_secret_versions"), table(prefix, "companies"))
        ).fetchall()
    return {(r[0], r[1], r[2]): Row(*r[3:]) for r in found}


def audit_rows(project: Project, prefix: str = "") -> list[dict[str, Any]]:
    with project.db() as conn:
        cursor = conn.execute(
            sql.SQL("SELECT a.*, c.subdomain FROM {} a LEFT JOIN {} c ON c.id = a.company_id ORDER BY a.id").format(
                table(prefix, "company_secret_audit"), table(prefix, "companies")
            )
        )
        names = [d.name for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def company_ids(project: Project, prefix: str = "") -> dict[str, str]:
    with project.db() as conn:
        found = conn.execute(sql.SQL("SELECT subdomain, id::text FROM {}").format(table(prefix, "companies")))
        return {str(s): str(i) for s, i in found.fetchall()}


def exists(project: Project, name: str) -> bool:
    with project.db() as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.Identifier(name).as_string(conn)]).fetchone()
    return bool(row and row[0])


def node_read(rows: dict[Any, Row], keys: dict[int, str]) -> dict[Any, str]:
    """Every row through the seed's decryptSecret in Node.js, each with the key its key_version names."""
    order = sorted(rows)
    items = [{"envelope": rows[k].ciphertext, "keyHex": keys[rows[k].key_version]} for k in order]
    return dict(zip(order, run_node("decrypt.mjs", items), strict=True))


# --- driving the engine ----------------------------------------------------------------------------


def failed(project: Project, action: Callable[[], object]) -> str:
    """Run an engine command that must fail; return (and keep, for the secret scan) its output."""
    with pytest.raises(auto.CommandError) as info:
        action()
    return project.capture(str(info.value))


def changes(result: auto.UpResult) -> set[str]:
    return set((result.summary.resource_changes or {}).keys())


def set_secret(stack: auto.Stack, key: str, value: str) -> None:
    stack.set_config(f"tenant-secrets:{key}", auto.ConfigValue(value, secret=True), path=True)


def set_plain(stack: auto.Stack, key: str, value: str) -> None:
    stack.set_config(f"tenant-secrets:{key}", auto.ConfigValue(value))


def declared(stack: auto.Stack) -> list[str]:
    """The project's own resources in the stack's state (the engine's root Stack resource left out)."""
    deployment = stack.export_stack().deployment or {}
    return [r["urn"] for r in deployment.get("resources") or [] if "dynamic" in r["type"]]


@dataclass(frozen=True)
class Role:
    name: str
    password: str
    dsn: str


@pytest.fixture
def roles(project: Project, pg_cluster: Cluster) -> Iterator[tuple[Role, Role]]:
    """An application and a provisioning role, named uniquely (roles are cluster-wide); dropped afterwards."""
    suffix = secrets.token_hex(4)
    dbname = str(conninfo_to_dict(project.dsn)["dbname"])
    made = []
    for kind in ("app", "provisioner"):
        name, password = f"tenant_{kind}_{suffix}", f"fake-{kind}-password-{secrets.token_hex(8)}"
        made.append(Role(name, password, pg_cluster.dsn(user=name, password=password, dbname=dbname)))
    yield made[0], made[1]
    with project.db() as conn:
        for role in made:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name]).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role.name)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role.name)))


# --- the tests -------------------------------------------------------------------------------------


def test_schema_prefix_roles_node_reader_no_churn_and_one_change(
    project: Project, master_key: str, roles: tuple[Role, Role]
) -> None:
    prefix = "deliverychat_"
    app_role, provisioner = roles
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(
        stack,
        secrets_config=VALUES,
        master_keys={"v1": master_key},
        tablePrefix=prefix,
        appRole=app_role.name,
        provisionerRole=provisioner.name,
    )
    set_secret(stack, "appRolePassword", app_role.password)
    set_secret(stack, "provisionerRolePassword", provisioner.password)
    project.up(stack)

    # The schema: every migration applied once, every table under the stack's prefix.
    with project.db() as conn:
        applied = conn.execute(
            sql.SQL("SELECT name, applied_at FROM {} ORDER BY name").format(table(prefix, "tenant_secrets_migrations"))
        ).fetchall()
    assert [name for name, _ in applied] == [m.name for m in MIGRATIONS]
    for base in ("company_secrets", "company_secret_versions", "company_secret_audit", "companies"):
        assert exists(project, prefix + base)
        assert not exists(project, base)

    # The rows: one per declared key, the application's own reader gets the declared values back.
    stored = secret_rows(project, prefix)
    assert set(stored) == {*DECLARED, GENERATED}
    assert all((row.version, row.key_version) == (1, 1) for row in stored.values())
    plain = node_read(stored, {1: master_key})
    assert {k: plain[k] for k in DECLARED} == DECLARED
    assert re.fullmatch(r"[0-9a-f]{64}", plain[GENERATED])

    # The audit trail: an insert per row, by the role that ran `pulumi up`, with versions and no value.
    audit = audit_rows(project, prefix)
    assert sorted((a["subdomain"], a["secret_key"]) for a in audit) == sorted(stored)
    assert {(a["action"], a["version"], a["key_version"], a["db_role"]) for a in audit} == {("insert", 1, 1, SUPERUSER)}

    # The application role: reads its company's rows only, nothing without app.company_id, writes nothing.
    ids = company_ids(project, prefix)
    with psycopg.connect(app_role.dsn, autocommit=True) as app:
        secrets_table = table(prefix, "company_secrets")
        query = sql.SQL("SELECT secret_key FROM {}").format(secrets_table)
        assert app.execute(query).fetchall() == []
        app.execute("SELECT set_config('app.company_id', %s, false)", [ids["acmecorp"]])
        assert {k for (k,) in app.execute(query)} == {"STRIPE_SECRET_KEY", "SMTP_HOST", "SMTP_PASSWORD"}
        app.execute("SELECT set_config('app.company_id', %s, false)", [ids["codewiser"]])
        assert {k for (k,) in app.execute(query)} == {"STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET"}
        refused = [
            sql.SQL("UPDATE {} SET secret_value_encrypted = 'x'").format(secrets_table),
            sql.SQL("DELETE FROM {}").format(secrets_table),
            sql.SQL(
                "INSERT INTO {} (company_id, secret_key, secret_value_encrypted, key_version) VALUES ({}, 'K', 'x', 1)"
            ).format(secrets_table, sql.Literal(ids["codewiser"])),
            sql.SQL("SELECT * FROM {}").format(table(prefix, "company_secret_versions")),
            sql.SQL("SELECT * FROM {}").format(table(prefix, "company_secret_audit")),
            sql.SQL("SELECT * FROM {}").format(table(prefix, "companies")),
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
    # The provisioning role sees every company's rows and may write them (rolled back here).
    with psycopg.connect(provisioner.dsn) as prov:
        assert len(prov.execute(query).fetchall()) == len(stored)
        prov.execute(sql.SQL("UPDATE {} SET version = version").format(secrets_table))
        prov.rollback()
    assert secret_rows(project, prefix) == stored

    # A no-op: the preview says so, and `up` touches no row (same ciphertext, updated_at, xmin), no audit.
    assert set(project.preview(stack).change_summary) == {"same"}
    assert changes(project.up(stack)) == {"same"}
    assert secret_rows(project, prefix) == stored
    assert audit_rows(project, prefix) == audit
    assert history_rows(project, prefix) == {}

    # One changed value: that row alone is written, its version raised, the old ciphertext kept as history.
    set_secret(stack, "secrets.acmecorp.SMTP_PASSWORD", "fake-smtp-acmecorp-db-0002")
    project.up(stack)
    after = secret_rows(project, prefix)
    changed = ("acmecorp", "SMTP_PASSWORD")
    assert {k: v for k, v in after.items() if k != changed} == {k: v for k, v in stored.items() if k != changed}
    assert after[changed].version == 2
    assert after[changed].ciphertext != stored[changed].ciphertext
    assert node_read({changed: after[changed]}, {1: master_key}) == {changed: "fake-smtp-acmecorp-db-0002"}
    history = history_rows(project, prefix)
    assert list(history) == [(*changed, 1)]
    assert history[(*changed, 1)].ciphertext == stored[changed].ciphertext
    new_audit = audit_rows(project, prefix)[len(audit) :]
    assert [(a["subdomain"], a["secret_key"], a["action"], a["version"]) for a in new_audit] == [
        (*changed, "update", 2)
    ]
    with project.db() as conn:  # still applied once
        assert (
            conn.execute(
                sql.SQL("SELECT name, applied_at FROM {} ORDER BY name").format(
                    table(prefix, "tenant_secrets_migrations")
                )
            ).fetchall()
            == applied
        )

    # Nothing secret in the state, the backend's files, the stack config or anything the engine printed.
    everything = project.persisted(stack) + "".join(project.outputs)
    secret_values = (*DECLARED.values(), plain[GENERATED], "fake-smtp-acmecorp-db-0002", master_key)
    for value in (*secret_values, app_role.password, provisioner.password):
        if value != "smtp.example.test":  # a literal from tenants.yaml, not a secret
            assert value not in everything


def test_master_key_rotation_in_batches_key_removal_and_decommission(project: Project, master_key: str) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key}, rotationBatchSize="2")
    project.up(stack)
    set_secret(stack, "secrets.codewiser.STRIPE_SECRET_KEY", "fake-stripe-codewiser-db-0002")
    project.up(stack)  # leaves one history entry, encrypted with v1
    before, history_before = secret_rows(project), history_rows(project)
    assert {row.key_version for row in [*before.values(), *history_before.values()]} == {1}
    audited = len(audit_rows(project))
    migrations = "SELECT name, applied_at FROM tenant_secrets_migrations ORDER BY name"
    with project.db() as conn:
        applied = conn.execute(migrations).fetchall()

    # A second key, made active: every row and history entry moves to it, two per transaction.
    second = os.urandom(32).hex()
    set_secret(stack, "masterKeys.v2", second)
    set_plain(stack, "activeKeyVersion", "2")
    # The rotation is the schema resource's work, between publishing v2 to the key folder and moving
    # MASTER_ENCRYPTION_KEY to it (tests/e2e/test_keyring.py): every tenant stays unchanged.
    preview = project.preview(stack)
    assert {str(op): n for op, n in preview.change_summary.items() if str(op) != "same"} == {"update": 3}
    assert "database-schema" in preview.stdout and re.search(r"~ key_version\s*: 1 => 2", preview.stdout)
    assert "hono-api-master-key-versions" in preview.stdout and "hono-api-master-key" in preview.stdout
    rotated = project.up(stack)
    assert {str(op): n for op, n in (rotated.summary.resource_changes or {}).items() if str(op) != "same"} == {
        "update": 3
    }
    after, history_after = secret_rows(project), history_rows(project)
    assert set(after) == set(before)
    for key, row in after.items():
        assert row.key_version == 2
        assert row.ciphertext != before[key].ciphertext
        assert (row.version, row.updated_at) == (before[key].version, before[key].updated_at)  # same value
    assert {k: (r.key_version, r.version) for k, r in history_after.items()} == {
        k: (2, r.version) for k, r in history_before.items()
    }
    assert len({row.xmin for row in after.values()}) == math.ceil(len(after) / 2)  # one transaction per batch
    reencrypted = audit_rows(project)[audited:]
    assert sorted((a["subdomain"], a["secret_key"]) for a in reencrypted) == sorted(after)
    assert {(a["action"], a["key_version"]) for a in reencrypted} == {("reencrypt", 2)}
    keys = {1: master_key, 2: second}
    plain = node_read(after, keys)
    assert plain[("codewiser", "STRIPE_SECRET_KEY")] == "fake-stripe-codewiser-db-0002"
    assert plain == {**node_read(before, keys), ("codewiser", "STRIPE_SECRET_KEY"): "fake-stripe-codewiser-db-0002"}
    assert list(node_read(history_after, keys).values()) == ["fake-stripe-codewiser-db-0001"]
    with project.db() as conn:  # the schema resource ran again; its migrations were not
        assert conn.execute(migrations).fetchall() == applied

    # The application, not yet redeployed with v2, writes a secret of its own with v1 (the seed's encryptSecret).
    (envelope,) = run_node("encrypt.mjs", [{"value": "fake-app-managed-0001", "keyHex": master_key}])
    with project.db() as conn:
        conn.execute(
            "INSERT INTO company_secrets (company_id, secret_key, secret_value_encrypted, key_version)"
            " SELECT id, 'APP_MANAGED_TOKEN', %s, 1 FROM companies WHERE subdomain = 'acmecorp'",
            [envelope],
        )
    mixed = secret_rows(project)
    assert node_read(mixed, keys)[("acmecorp", "APP_MANAGED_TOKEN")] == "fake-app-managed-0001"

    # Removing v1 while that row needs it fails, in preview already, naming the key; nothing is written.
    stack.remove_config("tenant-secrets:masterKeys.v1", path=True)
    for error in (failed(project, lambda: project.preview(stack)), failed(project, lambda: project.up(stack))):
        assert "tenant-secrets:masterKeys.v1 is missing" in error
        assert "values stored with key version 1 still need it (secrets: 1)" in error
    assert secret_rows(project) == mixed
    assert len(audit_rows(project)) == audited + len(after) + 1

    # With v1 back, the next up re-encrypts the straggler; then v1 can go.
    set_secret(stack, "masterKeys.v1", master_key)
    project.up(stack)
    assert {row.key_version for row in secret_rows(project).values()} == {2}
    stack.remove_config("tenant-secrets:masterKeys.v1", path=True)
    project.up(stack)
    final = secret_rows(project)
    assert {row.key_version for row in [*final.values(), *history_rows(project).values()]} == {2}
    assert node_read(final, {2: second}) == {
        **{k: v for k, v in plain.items()},
        ("acmecorp", "APP_MANAGED_TOKEN"): "fake-app-managed-0001",
    }

    # Decommissioning a tenant deletes its rows (its own and the application's), audited with role and version.
    audited = len(audit_rows(project))
    project.write_tenants(
        TENANTS.replace("  - subdomain: acmecorp\n", "  - subdomain: acmecorp\n    decommission: true\n")
    )
    project.up(stack)
    assert set(secret_rows(project)) == {("codewiser", "STRIPE_SECRET_KEY"), GENERATED}
    deleted = audit_rows(project)[audited:]
    assert sorted(a["secret_key"] for a in deleted) == [
        "APP_MANAGED_TOKEN",
        "SMTP_HOST",
        "SMTP_PASSWORD",
        "STRIPE_SECRET_KEY",
    ]
    assert {(a["action"], a["db_role"], a["key_version"]) for a in deleted} == {("delete", SUPERUSER, 2)}
    assert {a["version"] for a in deleted if a["secret_key"] != "APP_MANAGED_TOKEN"} == {1}

    # The audit names, never values: no column of any audit row holds a value or a ciphertext.
    audit_text = repr(audit_rows(project))
    for value in (*plain.values(), "fake-app-managed-0001", envelope):
        assert value not in audit_text
    for row in [*before.values(), *after.values()]:
        assert row.ciphertext not in audit_text

    everything = project.persisted(stack) + "".join(project.outputs)
    for value in (*plain.values(), "fake-stripe-codewiser-db-0001", master_key, second):
        if value != "smtp.example.test":
            assert value not in everything


def test_bad_input_fails_before_anything_is_written(project: Project, master_key: str) -> None:
    # The application's own companies table, holding acmecorp only.
    with project.db() as conn:
        conn.execute(
            "CREATE TABLE companies (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " subdomain varchar(255) NOT NULL UNIQUE, name varchar(255) NOT NULL)"
        )
        conn.execute("INSERT INTO companies (subdomain, name) VALUES ('acmecorp', 'Acme')")
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key}, createCompanies="false")

    def nothing_written() -> None:
        assert not exists(project, "company_secrets")
        assert declared(stack) == []

    # Master keys: of the wrong length, not hex, or an active version that has none.
    short = "0123456789abcdef" * 3
    set_secret(stack, "masterKeys.v1", short)
    error = failed(project, lambda: project.up(stack))
    assert "tenant-secrets:masterKeys.v1: expected 64 hex characters, got 48" in error
    assert short not in error
    not_hex = "fake-not-hex-" + "z" * 51
    set_secret(stack, "masterKeys.v1", not_hex)
    error = failed(project, lambda: project.up(stack))
    assert "tenant-secrets:masterKeys.v1: contains characters other than 0-9 and a-f" in error
    assert not_hex not in error
    set_secret(stack, "masterKeys.v1", master_key)
    set_plain(stack, "activeKeyVersion", "3")
    error = failed(project, lambda: project.up(stack))
    assert "tenant-secrets:activeKeyVersion is 3, but masterKeys has no v3" in error
    set_plain(stack, "activeKeyVersion", "1")
    nothing_written()

    # A database that cannot be reached: named, without its password.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    db_password = "fake-db-password-0042"
    unreachable = Project(
        project.root,
        {**project.env, "DATABASE_URL": f"postgresql://tenant_admin:{db_password}@127.0.0.1:{closed_port}/tenants"},
        project.dsn,
        project.infisical,
        project.outputs,
    )
    error = failed(project, lambda: unreachable.up(unreachable.stack("dev")))
    assert "DATABASE_URL: cannot connect to postgresql://tenant_admin:***@127.0.0.1" in error
    assert db_password not in error
    nothing_written()

    # A tenant whose company does not exist: the preview (the reviewer's plan) already names it.
    status, _, error = project.plan(stack)
    assert status != 0
    assert "no company with subdomain codewiser in 'companies'" in error
    error = failed(project, lambda: project.up(stack))
    assert "no company with subdomain codewiser in 'companies'" in error
    nothing_written()

    # A company_id in tenants.yaml that is another tenant's company.
    with project.db() as conn:
        conn.execute("INSERT INTO companies (subdomain, name) VALUES ('codewiser', 'CodeWiser')")
    ids = company_ids(project)
    wrong = TENANTS.replace(
        "  - subdomain: codewiser\n", f"  - subdomain: codewiser\n    company_id: {ids['acmecorp']}\n"
    )
    project.write_tenants(wrong)
    error = failed(project, lambda: project.up(stack))
    assert "codewiser: the company_id in tenants.yaml is the company with subdomain 'acmecorp'" in error
    nothing_written()

    # Fixed: the rows go to the application's companies, one given by id, the other looked up by subdomain.
    right = TENANTS.replace(
        "  - subdomain: acmecorp\n", f"  - subdomain: acmecorp\n    company_id: {ids['acmecorp']}\n"
    )
    project.write_tenants(right)
    project.up(stack)
    with project.db() as conn:
        owners = conn.execute("SELECT DISTINCT company_id::text FROM company_secrets").fetchall()
    assert {cid for (cid,) in owners} == {ids["acmecorp"], ids["codewiser"]}
    assert set(secret_rows(project)) == {*DECLARED, GENERATED}


def test_a_failure_half_way_rolls_back_and_the_next_up_converges(project: Project, master_key: str) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    project.up(stack)
    before, audited = secret_rows(project), audit_rows(project)

    # acmecorp's next apply updates a value, keeps history, then inserts a new key; the insert fails.
    with project.db() as conn:
        conn.execute(
            "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'injected failure for the test'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail_insert BEFORE INSERT ON company_secrets"
            " FOR EACH STATEMENT EXECUTE FUNCTION fail_insert()"
        )
    set_secret(stack, "secrets.acmecorp.STRIPE_SECRET_KEY", "fake-stripe-acmecorp-db-0002")
    project.write_tenants(TENANTS + "      NEW_TOKEN: {from: config}\n")
    set_secret(stack, "secrets.acmecorp.NEW_TOKEN", "fake-new-token-acmecorp-0001")
    error = failed(project, lambda: project.up(stack))
    assert "injected failure for the test" in error
    assert secret_rows(project) == before  # the update before the failing insert was rolled back too
    assert history_rows(project) == {}
    assert audit_rows(project) == audited

    # The cause gone, the next up converges, and the one after has nothing to do.
    with project.db() as conn:
        conn.execute("DROP TRIGGER fail_insert ON company_secrets")
    project.up(stack)
    after = secret_rows(project)
    assert set(after) == {*before, ("acmecorp", "NEW_TOKEN")}
    assert after[("acmecorp", "STRIPE_SECRET_KEY")].version == 2
    plain = node_read(after, {1: master_key})
    assert plain[("acmecorp", "STRIPE_SECRET_KEY")] == "fake-stripe-acmecorp-db-0002"
    assert plain[("acmecorp", "NEW_TOKEN")] == "fake-new-token-acmecorp-0001"
    assert list(history_rows(project)) == [("acmecorp", "STRIPE_SECRET_KEY", 1)]
    assert set(project.preview(stack).change_summary) == {"same"}


def statements(project: Project, action: Callable[[], object]) -> dict[str, int]:
    """Statements the server ran in the test's database during ``action`` (pg_stat_statements), by text."""
    with project.db() as conn:
        found = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
        assert found is not None
        conn.execute("SELECT pg_stat_statements_reset(0, %s::oid, 0)", [found[0]])
        action()
        rows = conn.execute(
            "SELECT query, calls FROM pg_stat_statements WHERE dbid = %s::oid AND query NOT LIKE %s",
            [found[0], "%pg_stat_statements%"],
        ).fetchall()
    return {str(query): int(calls) for query, calls in rows}


def test_the_example_tenants_file_first_and_no_op_up_statement_counts(
    project: Project, master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = example_stack(project, master_key)
    with project.db() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    try:
        first = statements(project, lambda: project.up(stack))
        no_op = statements(project, lambda: project.up(stack))
        rows = secret_rows(project)
    finally:  # the Infisical server is shared by the session's tests: leave its folders as found
        stack.destroy(on_output=project.capture, color="never")
    with capsys.disabled():
        print(
            f"\nexample tenants.yaml, dev stack: first up {sum(first.values())} statements, "
            f"no-op up {sum(no_op.values())} statements"
        )
        for query, calls in sorted(no_op.items()):
            print(f"  no-op: {calls} x {query[:110]}")

    # codewiser (both stores): WEBHOOK_SIGNING_SECRET, STRIPE_SECRET_KEY, SENDGRID_API_KEY; acmecorp (database):
    # WEBHOOK_SIGNING_SECRET, STRIPE_SECRET_KEY, SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD
    assert len(rows) == 9
    assert any('INSERT INTO "company_secrets"' in q for q in first)
    writes = re.compile(r"^\s*(INSERT|UPDATE|DELETE|CREATE|ALTER|GRANT|BEGIN)", re.IGNORECASE)
    assert [q for q in no_op if writes.match(q)] == []  # the no-op reads (the program's look) and writes nothing
    assert sum(no_op.values()) == 4  # the preflight's four reads (the fourth: row bindings), whatever the tenants

"""Strategy B through `pulumi up` on the real engine and a real PostgreSQL, as declared steps: the schema
under a table prefix, roles and row-level security, the application's Node.js reader, a failure half-way
rolled back, a master key rotation in batches, a key removed too early, the audit trail and
decommissioning, and nothing secret in state or output; then bad input refused before anything is
written. A no-op and a one-value change in both stores are steps of tests/e2e/test_lifecycle.py; the
statements of each run on the example tenants.yaml, tests/e2e/test_example.py."""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import SUPERUSER, Cluster
from tenant_secrets.store.schema import MIGRATIONS
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, assert_nothing_persisted, resources, run_steps
from tests.secret.test_node_compat import run_node

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


# --- the database's life, on one stack under a table prefix ------------------------------------------

PREFIX = "deliverychat_"
NEW_TOKEN = ("acmecorp", "NEW_TOKEN")


def migrations_applied(project: Project) -> list[tuple[str, Any]]:
    with project.db() as conn:
        found = conn.execute(
            sql.SQL("SELECT name, applied_at FROM {} ORDER BY name").format(table(PREFIX, "tenant_secrets_migrations"))
        ).fetchall()
    return [(str(name), applied) for name, applied in found]


def life(master_key: str, app_role: Role, provisioner: Role) -> list[Step]:
    """The scenario; its checks compare with what earlier steps saw (``seen``)."""
    second = os.urandom(32).hex()
    seen: dict[str, Any] = {}

    def schema_rows_audit_and_roles(project: Project, stack: auto.Stack) -> None:
        assert [name for name, _ in migrations_applied(project)] == [m.name for m in MIGRATIONS]
        for base in ("company_secrets", "company_secret_versions", "company_secret_audit", "companies"):
            assert exists(project, PREFIX + base), f"{PREFIX}{base} is missing"
            assert not exists(project, base), f"{base} exists without the prefix"
        # The rows: one per declared key, the application's own reader gets the declared values back.
        stored = secret_rows(project, PREFIX)
        assert set(stored) == {*DECLARED, GENERATED}
        assert all((row.version, row.key_version) == (1, 1) for row in stored.values())
        plain = node_read(stored, {1: master_key})
        assert {k: plain[k] for k in DECLARED} == DECLARED, "the application's reader reads other values"
        assert re.fullmatch(r"[0-9a-f]{64}", plain[GENERATED]), "codewiser's WEBHOOK_SIGNING_SECRET"
        # The audit trail: an insert per row, by the role that ran `pulumi up`, with versions and no value.
        audit = audit_rows(project, PREFIX)
        assert sorted((a["subdomain"], a["secret_key"]) for a in audit) == sorted(stored)
        assert {(a["action"], a["version"], a["key_version"], a["db_role"]) for a in audit} == {
            ("insert", 1, 1, SUPERUSER)
        }
        # The application role: reads its company's rows only, nothing without app.company_id, writes nothing.
        ids = company_ids(project, PREFIX)
        secrets_table = table(PREFIX, "company_secrets")
        query = sql.SQL("SELECT secret_key FROM {}").format(secrets_table)
        with psycopg.connect(app_role.dsn, autocommit=True) as app:
            assert app.execute(query).fetchall() == [], "the application role reads rows without app.company_id"
            app.execute("SELECT set_config('app.company_id', %s, false)", [ids["acmecorp"]])
            assert {k for (k,) in app.execute(query)} == {"STRIPE_SECRET_KEY", "SMTP_HOST", "SMTP_PASSWORD"}
            app.execute("SELECT set_config('app.company_id', %s, false)", [ids["codewiser"]])
            assert {k for (k,) in app.execute(query)} == {"STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET"}
            refused = [
                sql.SQL("UPDATE {} SET secret_value_encrypted = 'x'").format(secrets_table),
                sql.SQL("DELETE FROM {}").format(secrets_table),
                sql.SQL(
                    "INSERT INTO {} (company_id, secret_key, secret_value_encrypted, key_version)"
                    " VALUES ({}, 'K', 'x', 1)"
                ).format(secrets_table, sql.Literal(ids["codewiser"])),
                sql.SQL("SELECT * FROM {}").format(table(PREFIX, "company_secret_versions")),
                sql.SQL("SELECT * FROM {}").format(table(PREFIX, "company_secret_audit")),
                sql.SQL("SELECT * FROM {}").format(table(PREFIX, "companies")),
            ]
            for statement in refused:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(statement)
        # The provisioning role sees every company's rows and may write them (rolled back here).
        with psycopg.connect(provisioner.dsn) as prov:
            assert len(prov.execute(query).fetchall()) == len(stored)
            prov.execute(sql.SQL("UPDATE {} SET version = version").format(secrets_table))
            prov.rollback()
        assert secret_rows(project, PREFIX) == stored
        seen.update(rows=stored, audit=audit, applied=migrations_applied(project), generated=plain[GENERATED])

    def fail_inserts(project: Project) -> None:
        with project.db() as conn:
            conn.execute(
                "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'injected failure for the test'; END $$"
            )
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER fail_insert BEFORE INSERT ON {} FOR EACH STATEMENT EXECUTE FUNCTION fail_insert()"
                ).format(table(PREFIX, "company_secrets"))
            )

    def rolled_back(project: Project, stack: auto.Stack) -> None:
        assert secret_rows(project, PREFIX) == seen["rows"], "the update before the failing insert was not rolled back"
        assert history_rows(project, PREFIX) == {}
        assert audit_rows(project, PREFIX) == seen["audit"]

    def cause_gone(project: Project) -> None:
        with project.db() as conn:
            conn.execute(sql.SQL("DROP TRIGGER fail_insert ON {}").format(table(PREFIX, "company_secrets")))

    def converged(project: Project, stack: auto.Stack) -> None:
        after = secret_rows(project, PREFIX)
        changed = ("acmecorp", "STRIPE_SECRET_KEY")
        assert set(after) == {*seen["rows"], NEW_TOKEN}
        assert after[changed].version == 2
        plain = node_read(after, {1: master_key})
        assert (plain[changed], plain[NEW_TOKEN]) == ("fake-stripe-acmecorp-db-0002", "fake-new-token-acmecorp-0001")
        history = history_rows(project, PREFIX)
        assert list(history) == [(*changed, 1)]
        assert history[(*changed, 1)].ciphertext == seen["rows"][changed].ciphertext, "the old ciphertext is not kept"
        new_audit = audit_rows(project, PREFIX)[len(seen["audit"]) :]
        assert sorted((a["subdomain"], a["secret_key"], a["action"], a["version"]) for a in new_audit) == [
            (*NEW_TOKEN, "insert", 1),
            (*changed, "update", 2),
        ]
        seen.update(rows=after, history=history, audit=audit_rows(project, PREFIX), plain=plain)

    def rotated(project: Project, stack: auto.Stack) -> None:
        before, history_before = seen["rows"], seen["history"]
        after, history_after = secret_rows(project, PREFIX), history_rows(project, PREFIX)
        assert set(after) == set(before)
        for key, row in after.items():
            assert row.key_version == 2, f"{key} is on key version {row.key_version}"
            assert row.ciphertext != before[key].ciphertext, f"{key} was not re-encrypted"
            assert (row.version, row.updated_at) == (before[key].version, before[key].updated_at), f"{key}'s value"
        assert {k: (r.key_version, r.version) for k, r in history_after.items()} == {
            k: (2, r.version) for k, r in history_before.items()
        }
        assert len({row.xmin for row in after.values()}) == math.ceil(len(after) / 2)  # one transaction per batch
        reencrypted = audit_rows(project, PREFIX)[len(seen["audit"]) :]
        assert sorted((a["subdomain"], a["secret_key"]) for a in reencrypted) == sorted(after)
        assert {(a["action"], a["key_version"]) for a in reencrypted} == {("reencrypt", 2)}
        keys = {1: master_key, 2: second}
        assert node_read(after, keys) == seen["plain"]
        assert list(node_read(history_after, keys).values()) == ["fake-stripe-acmecorp-db-0001"]
        assert migrations_applied(project) == seen["applied"], "the schema resource ran its migrations again"
        seen.update(rotated=after, audited=len(audit_rows(project, PREFIX)))

    def application_writes_with_v1(project: Project) -> None:
        """The application, not yet redeployed with v2, writes a secret of its own (the seed's encryptSecret)."""
        (envelope,) = run_node("encrypt.mjs", [{"value": "fake-app-managed-0001", "keyHex": master_key}])
        with project.db() as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (company_id, secret_key, secret_value_encrypted, key_version)"
                    " SELECT id, 'APP_MANAGED_TOKEN', %s, 1 FROM {} WHERE subdomain = 'acmecorp'"
                ).format(table(PREFIX, "company_secrets"), table(PREFIX, "companies")),
                [envelope],
            )
        seen.update(envelope=envelope, mixed=secret_rows(project, PREFIX))

    def nothing_written(project: Project, stack: auto.Stack) -> None:
        assert secret_rows(project, PREFIX) == seen["mixed"]
        assert len(audit_rows(project, PREFIX)) == seen["audited"] + 1  # the application's insert

    def all_on_v2(project: Project, stack: auto.Stack) -> None:
        final = secret_rows(project, PREFIX)
        assert {row.key_version for row in [*final.values(), *history_rows(project, PREFIX).values()]} == {2}
        assert node_read(final, {2: second}) == {
            **seen["plain"],
            ("acmecorp", "APP_MANAGED_TOKEN"): "fake-app-managed-0001",
        }

    def rows_deleted_and_audited(project: Project, stack: auto.Stack) -> None:
        assert set(secret_rows(project, PREFIX)) == {("codewiser", "STRIPE_SECRET_KEY"), GENERATED}
        deleted = audit_rows(project, PREFIX)[seen["before decommission"] :]
        assert sorted(a["secret_key"] for a in deleted) == [
            "APP_MANAGED_TOKEN",
            "NEW_TOKEN",
            "SMTP_HOST",
            "SMTP_PASSWORD",
            "STRIPE_SECRET_KEY",
        ]
        assert {(a["action"], a["db_role"], a["key_version"]) for a in deleted} == {("delete", SUPERUSER, 2)}
        assert {(a["secret_key"], a["version"]) for a in deleted if a["secret_key"] != "APP_MANAGED_TOKEN"} == {
            ("NEW_TOKEN", 1),
            ("SMTP_HOST", 1),
            ("SMTP_PASSWORD", 1),
            ("STRIPE_SECRET_KEY", 2),
        }

    def audit_count(project: Project) -> None:
        seen["before decommission"] = len(audit_rows(project, PREFIX))

    def nothing_secret(project: Project, stack: auto.Stack) -> None:
        # The audit names, never values: no column of any audit row holds a value or a ciphertext.
        audit_text = repr(audit_rows(project, PREFIX))
        ciphertexts = [row.ciphertext for row in [*seen["rows"].values(), *seen["rotated"].values()]]
        plain = [v for v in seen["plain"].values() if v != "smtp.example.test"]  # a literal, not a secret
        leaked = [v for v in [*plain, "fake-app-managed-0001", seen["envelope"], *ciphertexts] if v in audit_text]
        assert leaked == [], f"{len(leaked)} value(s) or ciphertext(s) in the audit"
        secret_values = [*plain, "fake-stripe-acmecorp-db-0001", master_key, second]
        assert_nothing_persisted(project, stack, [*secret_values, app_role.password, provisioner.password])

    return [
        Step(
            "the first up: every migration once under the prefix, a row per key read back by the application,"
            " an audited insert each, and the roles' rights",
            check=schema_rows_audit_and_roles,
        ),
        Step(
            "acmecorp's apply fails half-way (a trigger refuses its insert): its update is rolled back too",
            tenants=TENANTS + "      NEW_TOKEN: {from: config}\n",
            config={
                ("acmecorp", "STRIPE_SECRET_KEY"): "fake-stripe-acmecorp-db-0002",
                NEW_TOKEN: "fake-new-token-acmecorp-0001",
            },
            by_hand=fail_inserts,
            fails=["injected failure for the test"],
            check=rolled_back,
        ),
        Step(
            "the cause gone, the next up converges: the old value kept as history, both writes audited",
            by_hand=cause_gone,
            check=converged,
        ),
        Step(
            "a second key made active: only the schema (which re-encrypts every row and history entry, two per"
            " transaction) and the key publications change",
            secret_settings={"masterKeys.v2": second},
            settings={"activeKeyVersion": "2"},
            changes={"update": 3},
            shows=["database-schema", r"~ key_version\s*: 1 => 2", "hono-api-master-key-versions"],
            check=rotated,
        ),
        Step(
            "the application, not yet redeployed, writes a row with v1: v1 removed, the preview and the up fail"
            " naming it, and write nothing",
            by_hand=application_writes_with_v1,
            secret_settings={"masterKeys.v1": None},
            preview_fails=[
                "tenant-secrets:masterKeys.v1 is missing",
                "values stored with key version 1 still need it (secrets: 1)",
            ],
            fails=[
                "tenant-secrets:masterKeys.v1 is missing",
                "values stored with key version 1 still need it (secrets: 1)",
            ],
            check=nothing_written,
        ),
        Step("with v1 back, the next up re-encrypts the straggler", secret_settings={"masterKeys.v1": master_key}),
        Step(
            "then v1 can go: every row and history entry reads with v2 alone",
            secret_settings={"masterKeys.v1": None},
            check=all_on_v2,
        ),
        Step(
            "decommissioning a tenant deletes its rows, its own and the application's, audited with role and version",
            tenants=(TENANTS + "      NEW_TOKEN: {from: config}\n").replace(
                "  - subdomain: acmecorp\n", "  - subdomain: acmecorp\n    decommission: true\n"
            ),
            by_hand=audit_count,
            check=rows_deleted_and_audited,
        ),
        Step("the audit names, never values; nothing secret persisted or printed", up=False, check=nothing_secret),
    ]


def test_the_database_through_a_failure_a_rotation_and_a_decommission(
    project: Project, master_key: str, roles: tuple[Role, Role]
) -> None:
    app_role, provisioner = roles
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(
        stack,
        secrets_config=VALUES,
        master_keys={"v1": master_key},
        tablePrefix=PREFIX,
        appRole=app_role.name,
        provisionerRole=provisioner.name,
        rotationBatchSize="2",
    )
    stack.set_all_config(
        {
            "tenant-secrets:appRolePassword": auto.ConfigValue(app_role.password, secret=True),
            "tenant-secrets:provisionerRolePassword": auto.ConfigValue(provisioner.password, secret=True),
        }
    )
    run_steps(project, stack, life(master_key, app_role, provisioner), "the database's life")


# --- bad input: refused before anything is written ---------------------------------------------------


def database_resources(stack: auto.Stack) -> list[str]:
    """The stack's database resources (schema, tenants) in its state."""
    return [name for name, r in resources(stack).items() if r["type"].startswith("tenant-secrets:index:Database")]


def bad_input(master_key: str, dsn: str) -> list[Step]:
    short, not_hex = "0123456789abcdef" * 3, "fake-not-hex-" + "z" * 51
    db_password = "fake-db-password-0042"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    ids: dict[str, str] = {}

    def nothing_written(project: Project, stack: auto.Stack) -> None:
        assert not exists(project, "company_secrets"), "company_secrets was created"
        assert database_resources(stack) == [], f"the state holds {database_resources(stack)}"

    def codewiser_is_another_company(project: Project) -> None:
        with project.db() as conn:
            conn.execute("INSERT INTO companies (subdomain, name) VALUES ('codewiser', 'CodeWiser')")
        ids.update(company_ids(project))
        project.write_tenants(
            TENANTS.replace(
                "  - subdomain: codewiser\n", f"  - subdomain: codewiser\n    company_id: {ids['acmecorp']}\n"
            )
        )

    def acmecorp_by_id(project: Project) -> None:
        project.write_tenants(
            TENANTS.replace(
                "  - subdomain: acmecorp\n", f"  - subdomain: acmecorp\n    company_id: {ids['acmecorp']}\n"
            )
        )

    def rows_in_the_applications_companies(project: Project, stack: auto.Stack) -> None:
        with project.db() as conn:
            owners = conn.execute("SELECT DISTINCT company_id::text FROM company_secrets").fetchall()
        assert {cid for (cid,) in owners} == {ids["acmecorp"], ids["codewiser"]}
        assert set(secret_rows(project)) == {*DECLARED, GENERATED}
        assert "codewiser-database" in database_resources(stack)  # what the refused runs did not record

    return [
        Step(
            "a master key of the wrong length is refused, without showing it",
            secret_settings={"masterKeys.v1": short},
            fails=["tenant-secrets:masterKeys.v1: expected 64 hex characters, got 48"],
            hides=[short],
            check=nothing_written,
        ),
        Step(
            "a master key that is not hex is refused, without showing it",
            secret_settings={"masterKeys.v1": not_hex},
            fails=["tenant-secrets:masterKeys.v1: contains characters other than 0-9 and a-f"],
            hides=[not_hex],
            check=nothing_written,
        ),
        Step(
            "an active key version without its key is refused",
            secret_settings={"masterKeys.v1": master_key},
            settings={"activeKeyVersion": "3"},
            fails=["tenant-secrets:activeKeyVersion is 3, but masterKeys has no v3"],
            check=nothing_written,
        ),
        Step(
            "a database that cannot be reached is named, without its password",
            settings={"activeKeyVersion": "1"},
            env={"DATABASE_URL": f"postgresql://tenant_admin:{db_password}@127.0.0.1:{closed_port}/tenants"},
            fails=["DATABASE_URL: cannot connect to postgresql://tenant_admin:***@127.0.0.1"],
            hides=[db_password],
            check=nothing_written,
        ),
        Step(
            "a tenant whose company does not exist: the plan already names it, and the up fails",
            env={"DATABASE_URL": dsn},
            refused=["no company with subdomain codewiser in 'companies'"],
            fails=["no company with subdomain codewiser in 'companies'"],
            check=nothing_written,
        ),
        Step(
            "a company_id in tenants.yaml that is another tenant's company is refused",
            by_hand=codewiser_is_another_company,
            fails=["codewiser: the company_id in tenants.yaml is the company with subdomain 'acmecorp'"],
            check=nothing_written,
        ),
        Step(
            "fixed: the rows go to the application's companies, one given by id, the other found by subdomain",
            by_hand=acmecorp_by_id,
            check=rows_in_the_applications_companies,
        ),
    ]


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
    run_steps(project, stack, bad_input(master_key, project.dsn), "bad input")

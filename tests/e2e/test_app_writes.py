"""Issue 31 through the real engine: the application's own setTenantSecret and getTenantSecret (the seed's code,
types removed, on drizzle-orm and pg in Node.js, its master key read from Infisical /hono-api by the official
Node SDK), as the stack's writer role (`appWriterRole`, decision 0052) with the tenant's company in its session,
against the table `pulumi up` provisions: a new key inserted, updated and read back; a declared key
overwritten, which `tenantctl verify`, the preview and the plan comment report and the next `up` puts back;
a master key rotation, after which the seed reads both; a refresh; and a destroy that leaves the
application's key alone."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import Cluster
from tenant_secrets.secret.envelope import decrypt
from tests.e2e.conftest import Project, configure, sdk, sdk_listing
from tests.e2e.steps import tenantctl
from tests.seed_writes import get_op, run_seed, set_op

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults: {storage: database, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {value: fake-stripe-codewiser-declared}
"""
DECLARED = "fake-stripe-codewiser-declared"
APP_KEY = "CUSTOM_API_KEY"  # not in tenants.yaml: the application's own


@dataclass(frozen=True)
class Roles:
    """The stack's read role and the role the application writes as, with its login."""

    app: str
    writer: str
    password: str
    dsn: str

    def settings(self, stack: auto.Stack) -> None:
        """appRole, appWriterRole and the writer's password, as a user sets them."""
        stack.set_all_config(
            {
                "tenant-secrets:appRole": auto.ConfigValue(self.app),
                "tenant-secrets:appWriterRole": auto.ConfigValue(self.writer),
                "tenant-secrets:appWriterRolePassword": auto.ConfigValue(self.password, secret=True),
            }
        )

    def url(self, company: str) -> str:
        """The writer's DATABASE_URL with the tenant's company set for its session (``options``), as the
        application sets ``app.company_id`` for the tenant it serves."""
        return f"{self.dsn}?options={quote(f'-c app.company_id={company}', safe='')}"


@pytest.fixture
def roles(project: Project, pg_cluster: Cluster) -> Iterator[Roles]:
    """Role names unique to the test (roles are cluster-wide), dropped afterwards."""
    suffix = secrets.token_hex(4)
    app, writer = f"seed_app_{suffix}", f"seed_writer_{suffix}"
    password = f"fake-writer-password-{secrets.token_hex(8)}"
    dbname = str(conninfo_to_dict(project.dsn)["dbname"])
    yield Roles(app, writer, password, pg_cluster.dsn(user=writer, password=password, dbname=dbname))
    with project.db() as conn:
        for name in (writer, app):
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def seed(project: Project, database_url: str, ops: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The seed's code as the writer role, its MASTER_ENCRYPTION_KEY read from the stack's key folder as the
    application reads it."""
    infisical = project.infisical
    return run_seed(
        database_url,
        ops,
        siteUrl=infisical.server.url,
        clientId=infisical.client_id,
        clientSecret=infisical.client_secret,
        projectId=infisical.project_id,
        environment="dev",
    )


def verify(project: Project) -> tuple[int, set[tuple[str, str, str]]]:
    done = tenantctl(project, "verify", "--stack", "dev", "--format", "json")
    report = json.loads(done.stdout)
    return done.returncode, {(f["owner"], f["key"], f["kind"]) for f in report["findings"]}


def row_state(project: Project, key: str) -> tuple[int, int, bool] | None:
    """``(key_version, version, bound)`` of codewiser's row for ``key``."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT key_version, version, binding IS NOT NULL FROM company_secrets WHERE secret_key = %s", [key]
        ).fetchone()
    return None if found is None else (int(found[0]), int(found[1]), bool(found[2]))


def test_the_applications_own_writes_survive_up_verify_rotation_and_destroy(
    project: Project, master_key: str, roles: Roles
) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    roles.settings(stack)
    project.up(stack)
    with project.db() as conn:
        (company,) = conn.execute("SELECT id::text FROM companies WHERE subdomain = 'codewiser'").fetchone() or ("",)
    url = roles.url(company)

    # a new key: inserted, updated, read back, by the seed's code unchanged
    results = seed(
        project,
        url,
        [
            set_op(company, APP_KEY, "fake-custom-1"),
            set_op(company, APP_KEY, "fake-custom-2"),
            get_op(company, APP_KEY),
        ],
    )
    assert results == [{"ok": True}, {"ok": True}, {"ok": True, "value": "fake-custom-2"}]
    assert row_state(project, APP_KEY) == (1, 2, False)

    # the application's key is not drift; the next up binds it and changes nothing else
    status, found = verify(project)
    assert (status, found) == (0, {("codewiser", APP_KEY, "application-owned")})
    project.up(stack)
    assert row_state(project, APP_KEY) == (1, 2, True)

    # the application overwrites a declared key: drift, in verify and in the preview; the next up puts it back
    assert seed(project, url, [set_op(company, "STRIPE_SECRET_KEY", "fake-stripe-by-the-app")]) == [{"ok": True}]
    status, found = verify(project)
    assert status == 1
    assert ("codewiser", "STRIPE_SECRET_KEY", "different") in found
    preview = project.preview(stack)
    assert preview.change_summary.get(auto.OpType.UPDATE, 0) >= 1
    assert "written outside tenants.yaml" in preview.stdout + preview.stderr
    code, rows, error = project.plan(stack)  # the pull request's comment, as `tenantctl plan` writes it
    assert code == 0, error
    assert [(r.owner, r.store, r.key, r.action) for r in rows if r.owner == "codewiser"] == [
        ("codewiser", "database", "STRIPE_SECRET_KEY", "restore")
    ]
    project.up(stack)
    assert seed(project, url, [get_op(company, "STRIPE_SECRET_KEY")]) == [{"ok": True, "value": DECLARED}]
    assert verify(project) == (0, {("codewiser", APP_KEY, "application-owned")})

    # a master key rotation re-encrypts the application's row with the rest; the seed reads both
    key_2 = os.urandom(32).hex()
    stack.set_config("tenant-secrets:masterKeys.v2", auto.ConfigValue(key_2, secret=True), path=True)
    stack.set_config("tenant-secrets:activeKeyVersion", auto.ConfigValue("2"))
    project.up(stack)
    assert row_state(project, APP_KEY) == (2, 2, True)
    assert seed(project, url, [get_op(company, "STRIPE_SECRET_KEY"), get_op(company, APP_KEY)]) == [
        {"ok": True, "value": DECLARED},
        {"ok": True, "value": "fake-custom-2"},
    ]
    # and the application's next write is labelled with the new version
    assert seed(project, url, [set_op(company, APP_KEY, "fake-custom-3")]) == [{"ok": True}]
    assert row_state(project, APP_KEY) == (2, 3, False)

    # a refresh reads only what the stack wrote: the application's row (unbound, new) is left as it is
    refreshed = stack.refresh(on_output=project.capture, color="never")
    assert refreshed.summary.result == "succeeded"
    assert row_state(project, APP_KEY) == (2, 3, False)

    # destroy deletes what tenants.yaml declared, never the application's key
    stack.destroy(on_output=project.capture, color="never")
    assert row_state(project, "STRIPE_SECRET_KEY") is None
    assert row_state(project, APP_KEY) == (2, 3, False)
    # and the application still reads it where it always did: the key folder keeps what its rows need
    assert seed(project, url, [get_op(company, APP_KEY)]) == [{"ok": True, "value": "fake-custom-3"}]
    folder = {s.secretKey: s.secretValue for s in sdk_listing(project.infisical, "dev", "/hono-api") or []}
    assert folder == {
        "MASTER_ENCRYPTION_KEY": key_2,
        "MASTER_ENCRYPTION_KEY_VERSION": "2",
        "MASTER_ENCRYPTION_KEY_V2": key_2,
    }, "only what the rows left need: v1 is gone"
    with project.db() as conn:
        (stored,) = conn.execute("SELECT secret_value_encrypted FROM company_secrets").fetchone() or ("",)
    assert decrypt(stored, bytes.fromhex(key_2)) == "fake-custom-3"
    everything = "\n".join(project.outputs)
    for value in ("fake-custom-1", "fake-custom-2", "fake-custom-3", "fake-stripe-by-the-app"):
        assert value not in everything


def test_with_keys_kept_by_hand_the_application_writes_under_the_version_its_key_folder_names(
    project: Project, roles: Roles
) -> None:
    """masterKeySource infisical: the team moves MASTER_ENCRYPTION_KEY itself; the next `up` re-encrypts every
    row, the application's too, and labels the application's writes with the version the folder names."""
    key_1, key_2 = os.urandom(32).hex(), os.urandom(32).hex()
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, master_keys={}, secrets_config={}, masterKeySource="infisical")
    roles.settings(stack)
    common = {"project_id": project.infisical.project_id, "environment_slug": "dev", "secret_path": "/hono-api"}
    client = sdk(project.infisical)
    client.folders.create_folder(
        name="hono-api", environment_slug="dev", project_id=project.infisical.project_id, path="/"
    )
    client.secrets.create_secret_by_name(secret_name="MASTER_ENCRYPTION_KEY", secret_value=key_1, **common)
    project.up(stack)
    with project.db() as conn:
        (company,) = conn.execute("SELECT id::text FROM companies WHERE subdomain = 'codewiser'").fetchone() or ("",)
    url = roles.url(company)
    assert seed(project, url, [set_op(company, APP_KEY, "fake-custom-1")]) == [{"ok": True}]
    assert row_state(project, APP_KEY) == (1, 1, False)

    # the rotation, by hand: both versions, then MASTER_ENCRYPTION_KEY moved to v2
    for name, value in (("MASTER_ENCRYPTION_KEY_V1", key_1), ("MASTER_ENCRYPTION_KEY_V2", key_2)):
        client.secrets.create_secret_by_name(secret_name=name, secret_value=value, **common)
    client.secrets.update_secret_by_name(current_secret_name="MASTER_ENCRYPTION_KEY", secret_value=key_2, **common)
    client.secrets.create_secret_by_name(secret_name="MASTER_ENCRYPTION_KEY_VERSION", secret_value="2", **common)
    project.up(stack)
    assert row_state(project, APP_KEY) == (2, 1, True)
    assert seed(project, url, [set_op(company, APP_KEY, "fake-custom-2"), get_op(company, APP_KEY)]) == [
        {"ok": True},
        {"ok": True, "value": "fake-custom-2"},
    ]
    assert row_state(project, APP_KEY) == (2, 2, False)


def test_a_decommissioned_tenants_application_keys_are_in_the_plan_and_go_with_it(
    project: Project, master_key: str, roles: Roles
) -> None:
    """Decommission deletes every row of the company, the application's own keys too (decision 0049); the plan
    lists each of them as a delete with the source `application`, so the reviewer sees them go."""
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    roles.settings(stack)
    project.up(stack)
    with project.db() as conn:
        (company,) = conn.execute("SELECT id::text FROM companies WHERE subdomain = 'codewiser'").fetchone() or ("",)
    assert seed(project, roles.url(company), [set_op(company, APP_KEY, "fake-custom-1")]) == [{"ok": True}]

    project.write_tenants(
        TENANTS.replace("  - subdomain: codewiser\n", "  - subdomain: codewiser\n    decommission: true\n")
    )
    code, rows, error = project.plan(stack)
    assert code == 0, error
    assert sorted((r.key, r.action, r.source) for r in rows if r.owner == "codewiser") == [
        (APP_KEY, "delete", "application"),
        ("STRIPE_SECRET_KEY", "delete", "literal"),
    ]
    project.up(stack)
    assert row_state(project, APP_KEY) is None
    assert row_state(project, "STRIPE_SECRET_KEY") is None

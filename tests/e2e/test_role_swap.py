"""Issue 26, item 2, on the real engine: a change of stack settings that names the application's login role as
the provisioner (renaming `appRole` to a decoy) is refused by the preview and the `up`, in one change or in
two; a rename alone is applied, and the plan says in words which role gains which rights. Whatever is tried,
the application's role never reads a company's rows without `app.company_id`, nor updates or deletes one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import Cluster
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, run_steps, tenantctl

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults: {storage: database, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: acmecorp
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-codewiser-roles-0001"},
    "acmecorp": {"STRIPE_SECRET_KEY": "fake-stripe-acmecorp-roles-0001"},
}


@dataclass(frozen=True)
class Roles:
    app: str
    app_password: str
    app_dsn: str
    provisioner: str
    decoy: str


@pytest.fixture
def roles(project: Project, pg_cluster: Cluster) -> Iterator[Roles]:
    """The application's login role, the provisioner and a decoy, named uniquely (roles are cluster-wide)."""
    suffix = secrets.token_hex(4)
    dbname = str(conninfo_to_dict(project.dsn)["dbname"])
    app, password = f"tenant_app_{suffix}", f"fake-app-password-{secrets.token_hex(8)}"
    made = Roles(
        app,
        password,
        pg_cluster.dsn(user=app, password=password, dbname=dbname),
        f"tenant_provisioner_{suffix}",
        f"tenant_decoy_{suffix}",
    )
    yield made
    with project.db() as conn:
        for role in (made.app, made.provisioner, made.decoy):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def swap_steps(roles: Roles) -> list[Step]:
    app, decoy = roles.app, roles.decoy

    def application_role_is_fenced(project: Project, stack: auto.Stack) -> None:
        """What the attack obtained: every company's rows without app.company_id, UPDATE and DELETE."""
        with psycopg.connect(roles.app_dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,), "unfiltered read"
            for statement in ("UPDATE company_secrets SET version = version", "DELETE FROM company_secrets"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        with project.db() as conn:
            assert conn.execute("SELECT count(*) FROM company_secrets").fetchone() == (2,), "rows lost"

    def the_plan_says_who_gains_which_rights(project: Project, stack: auto.Stack) -> None:
        done = tenantctl(project, "plan", "--stack", "dev")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "**Database roles' rights change:**" in done.stdout
        assert f"- `{decoy}` gains the application's role: SELECT on company_secrets, one company's" in done.stdout
        assert f"- `{app}` is no longer the application's role: its row-level security policy goes" in done.stdout

    refusal = "as the provisioner it would give the application INSERT, UPDATE and DELETE on every company's rows"
    return [
        Step(
            "the stack with its application and provisioning roles",
            rows={"STRIPE_SECRET_KEY"},
            check=application_role_is_fenced,
        ),
        Step(
            "the swap in one change (appRole a decoy, the application's role the provisioner): refused by the "
            "preview and by the up, which write nothing",
            settings={"appRole": decoy, "provisionerRole": app},
            preview_fails=[f"role {app!r} is the application's role (the read policy on company_secrets", refusal],
            fails=[f"role {app!r} is the application's role (the read policy on company_secrets", refusal],
            check=application_role_is_fenced,
        ),
        Step(
            "the rename alone is applied; the plan and the up's diff say which role gains which rights",
            settings={"appRole": decoy, "provisionerRole": roles.provisioner},
            before=the_plan_says_who_gains_which_rights,
            shows=[r"role_rights", re.escape("the application's role: SELECT on company_secrets")],
            check=application_role_is_fenced,
        ),
        Step(
            "then the former application role as provisioner: the database remembers it, both refuse",
            settings={"provisionerRole": app},
            preview_fails=[f"role {app!r} is a former application role", refusal],
            fails=[f"role {app!r} is a former application role", refusal],
            check=application_role_is_fenced,
        ),
    ]


def test_the_application_role_never_becomes_the_provisioner(project: Project, master_key: str, roles: Roles) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(
        stack,
        secrets_config=VALUES,
        master_keys={"v1": master_key},
        appRole=roles.app,
        provisionerRole=roles.provisioner,
    )
    stack.set_all_config({"tenant-secrets:appRolePassword": auto.ConfigValue(roles.app_password, secret=True)})
    run_steps(project, stack, swap_steps(roles), "the role swap of issue 26")

"""Issue 13, the sweep: canaries in every value source (config, env, Infisical, generated, a literal) and
in the keys (master keys, derivation key) on the real engine, through `up`, `preview`, `refresh`, a failed
`up`, the migrations of a first run, a master key rotation and `destroy`; after each, everything a user
or an attacker with read access to the logs could see is scanned. Zero hits, or the test names where.
Issue 18: that includes `pulumi stack export --show-secrets`: the state holds no value, not even encrypted,
while both stores hold the right ones."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable

import pytest
from pulumi import automation as auto

from dev.pg import Cluster
from tenant_secrets.secret.envelope import decrypt
from tenant_secrets.secret.values import generate
from tenant_secrets.tenants_file.sources import GeneratedSource
from tests.e2e.conftest import Project, configure, sdk
from tests.e2e.steps import Step, run_steps, values

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: acme
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: env, var: ACME_SENDGRID_API_KEY}
      LEGACY_TOKEN: {from: infisical, path: /legacy/acme, key: TOKEN}
      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}
      PLAN_NAME: {value: LITERAL}
  - subdomain: globex
    storage: infisical
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
TABLES = ("company_secrets", "company_secret_versions", "company_secret_audit", "company_secret_access", "companies")


def database_values(project: Project, *, master_key: str) -> dict[str, str]:
    """acme's rows, decrypted as the seed's application does (every row is on ``master_key``)."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT s.secret_key, s.secret_value_encrypted FROM company_secrets s "
            "JOIN companies c ON c.id = s.company_id WHERE c.subdomain = 'acme'"
        ).fetchall()
    return {key: decrypt(ciphertext, bytes.fromhex(master_key)) for key, ciphertext in found}


def canary(label: str) -> str:
    return f"fake-canary-{label}-{secrets.token_hex(6)}"


def scanner(
    project: Project, stack: auto.Stack, pg_cluster: Cluster, canaries: dict[str, str]
) -> Callable[[str], list[str]]:
    """'<step>: <canary> in <where>' for every hit, wherever a user or an attacker with read access looks."""

    def places() -> dict[str, str]:
        persisted = project.persisted(stack)
        with project.db() as conn:
            tables = {
                f"table {t}": json.dumps(conn.execute(f"SELECT json_agg(t) FROM {t} AS t").fetchone())  # noqa: S608
                for t in TABLES
                if conn.execute("SELECT to_regclass(%s)", [t]).fetchone() != (None,)
            }
        state_files = {
            str(p.relative_to(project.root)): p.read_text(errors="replace")
            for p in project.root.rglob("*")
            if p.is_file() and ".state" in p.parts
        }
        return {
            "stack export, backend files and stack config": persisted,
            "engine and command output, error messages": "\n".join(project.outputs),
            "Infisical stand-in's log": project.infisical.server.log(),
            "Infisical stand-in's audit": json.dumps(project.infisical.server.audit()),
            "PostgreSQL's statement log": (pg_cluster.root / "server.log").read_text(errors="replace"),
            **tables,
            **state_files,
        }

    def scan(step: str) -> list[str]:
        return [
            f"{step}: {name} in {where}"
            for where, text in places().items()
            for name, value in canaries.items()
            if value in text
        ]

    return scan


def test_no_canary_reaches_state_output_logs_audit_or_tables(
    project: Project, pg_cluster: Cluster, master_key: str
) -> None:
    derivation, second_key = os.urandom(32).hex(), os.urandom(32).hex()
    canaries = {
        "config value": canary("config"),
        "config value (changed)": canary("config-2"),
        "env value": canary("env"),
        "Infisical value": canary("infisical"),
        "literal value": canary("literal"),
        "globex config value": canary("globex"),
        "master key v1": master_key,
        "master key v2": second_key,
        "derivation key": derivation,
        "generated value": generate(
            bytes.fromhex(derivation), "dev", "acme", "WEBHOOK_SIGNING_SECRET", GeneratedSource(32, "hex", "1")
        ),
    }
    project.write_tenants(TENANTS.replace("LITERAL", canaries["literal value"]))
    project.env["ACME_SENDGRID_API_KEY"] = canaries["env value"]
    client = sdk(project.infisical)
    client.folders.create_folder(
        name="legacy", environment_slug="dev", project_id=project.infisical.project_id, path="/"
    )
    client.folders.create_folder(
        name="acme", environment_slug="dev", project_id=project.infisical.project_id, path="/legacy"
    )
    client.secrets.create_secret_by_name(
        secret_name="TOKEN",
        project_id=project.infisical.project_id,
        environment_slug="dev",
        secret_path="/legacy/acme",
        secret_value=canaries["Infisical value"],
    )
    with project.db() as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None
        conn.execute(f"ALTER DATABASE \"{name[0]}\" SET log_statement = 'all'")
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        env_allow=["ACME_SENDGRID_API_KEY"],
        shared_folders=["/legacy/acme"],
        secrets_config={
            "acme": {"STRIPE_SECRET_KEY": canaries["config value"]},
            "globex": {"STRIPE_SECRET_KEY": canaries["globex config value"]},
        },
    )
    stack.set_config("tenant-secrets:derivationKey", auto.ConfigValue(derivation, secret=True))
    scan = scanner(project, stack, pg_cluster, canaries)
    control = canary("control")
    canaries["control"] = control
    project.capture(f"planted {control}")  # the scan finds what is there
    assert scan("control") == ["control: control in engine and command output, error messages"]
    project.outputs.clear()
    del canaries["control"]

    def clean(project: Project, stack: auto.Stack) -> None:
        hits = scan("canary")
        assert hits == [], "; ".join(hits)

    def both_stores_hold_the_values(project: Project, stack: auto.Stack) -> None:
        with project.db() as conn:
            assert conn.execute("SELECT DISTINCT key_version FROM company_secrets").fetchall() == [(2,)]
        expected = {
            "STRIPE_SECRET_KEY": canaries["config value (changed)"],
            "SENDGRID_API_KEY": canaries["env value"],
            "LEGACY_TOKEN": canaries["Infisical value"],
            "WEBHOOK_SIGNING_SECRET": canaries["generated value"],
            "PLAN_NAME": canaries["literal value"],
        }
        assert values(project, "/tenants/acme") == expected, "acme's folder (values not shown)"
        assert database_values(project, master_key=second_key) == expected, "acme's rows (values not shown)"
        clean(project, stack)

    faults = project.infisical.server
    run_steps(
        project,
        stack,
        [
            Step("the first up, which applies every migration", check=clean),
            Step("a preview", preview={}, up=False, check=clean),
            Step("a refresh", refresh=0, up=False, check=clean),
            Step(
                "an up that fails (Infisical answers 503)",
                config={("acme", "STRIPE_SECRET_KEY"): canaries["config value (changed)"]},
                env={"TENANT_SECRETS_INFISICAL_RETRIES": "attempts=2,max_delay=0.1"},
                by_hand=lambda _: faults.add_fault("/api/v3/secrets/batch/raw", count=100, status=503),
                fails=["failed after 2 attempts"],
                check=clean,
            ),
            Step("the up after the failure", by_hand=lambda _: faults.clear_faults(), check=clean),
            Step(
                "a master key rotation",
                secret_settings={"masterKeys.v2": second_key},
                settings={"activeKeyVersion": "2"},
                check=both_stores_hold_the_values,
            ),
            Step("destroy", up=False, destroy=True, check=clean),
        ],
        "the canary sweep",
    )

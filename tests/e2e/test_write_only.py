"""Issue 18: the stack's state holds per key a fingerprint and a source descriptor, never a value, not even
encrypted; a stack written by the version that kept values as secret inputs moves over on its next `up`
without a write to either store. So does a stack whose resources were Python dynamic resources, moving to
the provider plugin (issue 14, decision 0039). Each move is declared steps: the old release's up, this
version's preview, its up."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from tests.e2e.conftest import REPO, Project, configure, sdk_listing
from tests.e2e.steps import Step, run_steps

pytestmark = pytest.mark.e2e

SECRET_INPUTS_RELEASE = "b7d737e"
"""The last commit whose resources took each value as a secret input."""
DYNAMIC_RELEASE = "4188de3"
"""The last commit whose resources were Python dynamic resources (docs/decisions/0039-provider-plugin.md)."""


def tenants(literal: str) -> str:
    return f"""\
version: 1
defaults: {{storage: both, environments: [dev]}}
tenants:
  - subdomain: acme
    secrets:
      STRIPE_SECRET_KEY: {{from: config}}
      SENDGRID_API_KEY: {{from: env, var: ACME_SENDGRID_API_KEY}}
      WEBHOOK_SIGNING_SECRET: {{generate: {{bytes: 32, encoding: hex}}}}
      PLAN_NAME: {{value: {literal}}}
"""


def use_code(project: Project, source: Path) -> None:
    """Run the project's program and providers from ``source`` (the repository, or an older release)."""
    for package in ("components", "tenant_secrets"):
        link = project.root / package
        link.unlink()
        link.symlink_to(source / package)
    project.env["PYTHONPATH"] = str(source)


def release(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "components", "tenant_secrets"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def stores(project: Project) -> tuple[dict[str, tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]:
    """Each Infisical secret's (value, version) and each row's (ciphertext, version): what a rewrite changes."""
    infisical = {
        s.secretKey: (s.secretValue, s.version) for s in sdk_listing(project.infisical, "dev", "/tenants/acme") or []
    }
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.version "
            "FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    return infisical, {(sub, key): (ct, version) for sub, key, ct, version in found}


SCHEMA = "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseSchema"


def moved_over(old: Path, expected: set[tuple[str, str]], canaries: dict[str, str] | None = None) -> list[Step]:
    """The stack written by the release at ``old``; with this version's code, a preview that changes no resource
    (``expected``: the providers' steps) but the schema, whose migrations this release adds (its diff names
    `schema_version`, and `role_rights`, an input the old state lacks), and an up that writes neither store."""
    expected = expected | {("update", SCHEMA)}
    seen: dict[str, Any] = {}

    def written(project: Project, stack: auto.Stack) -> None:
        seen["stores"] = stores(project)
        if canaries:
            assert all(value in project.persisted(stack) for value in canaries.values()), "that release kept them"

    def previewed(project: Project, stack: auto.Stack) -> None:
        status, document, output = project.preview_json(stack)
        assert status == 0 and document is not None, output
        changed = {(s["op"], s["urn"].rsplit("::", 2)[-2]) for s in document["steps"] if s["op"] != "same"}
        assert changed == expected
        schema = next(s for s in document["steps"] if s["urn"].rsplit("::", 2)[-2] == SCHEMA)
        reasons = set(schema.get("diffReasons") or [])
        assert "schema_version" in reasons and reasons <= {"schema_version", "role_rights"}, reasons

    def nothing_rewritten(project: Project, stack: auto.Stack) -> None:
        assert stores(project) == seen["stores"], "a value, ciphertext or version was rewritten"
        if canaries:
            after = project.persisted(stack)
            assert [name for name, value in canaries.items() if value in after] == []

    return [
        Step("the stack written by the older release", by_hand=lambda project: use_code(project, old), check=written),
        Step(
            "with this version's code, the preview changes no resource but the schema's migrations and the provider",
            by_hand=lambda project: use_code(project, REPO),
            up=False,
            check=previewed,
        ),
        Step(
            "its up writes neither store: no value, ciphertext or version rewritten",
            changes={op: 1 for op, _ in expected},
            writes=0,
            check=nothing_rewritten,
        ),
    ]


def test_an_existing_stack_moves_over_on_its_next_up_writing_neither_store(
    project: Project, master_key: str, tmp_path: Path
) -> None:
    """A stack whose resources kept each value as a secret input: no value is in its state after its next up."""
    canaries = {name: f"fake-canary-{name}-{secrets.token_hex(6)}" for name in ("config", "env", "literal")}
    project.write_tenants(tenants(canaries["literal"]))
    project.env["ACME_SENDGRID_API_KEY"] = canaries["env"]
    stack = project.stack("dev")
    config = {"acme": {"STRIPE_SECRET_KEY": canaries["config"]}}
    configure(stack, secrets_config=config, master_keys={"v1": master_key}, env_allow=["ACME_SENDGRID_API_KEY"])
    old = release(SECRET_INPUTS_RELEASE, tmp_path / "release")
    steps = moved_over(old, {("create", "pulumi:providers:tenant-secrets")}, canaries)
    run_steps(project, stack, steps, "values as secret inputs to write-only")


def plugin_resources_only(project: Project, stack: auto.Stack) -> None:
    custom = [r for r in (stack.export_stack().deployment or {})["resources"] if r.get("custom")]
    assert {r["type"] for r in custom if not r["type"].startswith("pulumi:providers:")} <= {
        f"tenant-secrets:index:{t}"
        for t in ("InfisicalFolder", "DatabaseTenant", "DatabaseSchema", "Registry", "MasterKeyPublication")
    }
    assert {r["type"] for r in custom if r["type"].startswith("pulumi:providers:")} == {
        "pulumi:providers:tenant-secrets"
    }


def test_a_stack_of_dynamic_resources_moves_to_the_plugin_replacing_and_writing_nothing(
    project: Project, master_key: str, tmp_path: Path
) -> None:
    """A stack of Python dynamic resources: the plugin's provider replaces the dynamic one, no resource changes."""
    project.write_tenants(tenants("fake-plan-literal"))
    project.env["ACME_SENDGRID_API_KEY"] = "fake-sendgrid-write-only-0001"
    stack = project.stack("dev")
    config = {"acme": {"STRIPE_SECRET_KEY": "fake-stripe-0001"}}
    configure(stack, secrets_config=config, master_keys={"v1": master_key}, env_allow=["ACME_SENDGRID_API_KEY"])
    old = release(DYNAMIC_RELEASE, tmp_path / "release")
    providers = {("create", "pulumi:providers:tenant-secrets"), ("delete", "pulumi:providers:pulumi-python")}
    steps = [
        *moved_over(old, providers),
        Step(
            "then every resource is the plugin's, and a preview shows no change",
            preview={},
            up=False,
            check=plugin_resources_only,
        ),
    ]
    run_steps(project, stack, steps, "dynamic resources to the plugin")

"""Issue 18: the stack's state holds per key a fingerprint and a source descriptor, never a value, not even
encrypted; a stack written by the version that kept values as secret inputs moves over on its next `up`
without a write to either store. So does a stack whose resources were Python dynamic resources, moving to
the provider plugin (issue 14, decision 0039)."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Project, configure, sdk_listing

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


def test_an_existing_stack_moves_over_on_its_next_up_writing_neither_store(
    project: Project, master_key: str, tmp_path: Path
) -> None:
    canaries = {name: f"fake-canary-{name}-{secrets.token_hex(6)}" for name in ("config", "env", "literal")}
    project.write_tenants(tenants(canaries["literal"]))
    project.env["ACME_SENDGRID_API_KEY"] = canaries["env"]
    use_code(project, release(SECRET_INPUTS_RELEASE, tmp_path / "release"))
    stack = project.stack("dev")
    configure(stack, secrets_config={"acme": {"STRIPE_SECRET_KEY": canaries["config"]}}, master_keys={"v1": master_key})
    project.up(stack)
    before = project.persisted(stack)
    assert all(value in before for value in canaries.values())  # that release kept them, encrypted
    written = stores(project)

    use_code(project, REPO)
    status, document, output = project.preview_json(stack)
    assert status == 0 and document is not None, output
    changed = {(s["op"], s["urn"].rsplit("::", 2)[-2]) for s in document["steps"] if s["op"] != "same"}
    assert changed == {("create", "pulumi:providers:tenant-secrets")}  # the stack's provider; no resource changes
    project.infisical.reset_counts()
    result = project.up(stack)
    assert set((result.summary.resource_changes or {}).keys()) <= {"same", "create", "delete"}
    assert project.infisical.writes() == 0
    assert stores(project) == written  # no value, ciphertext or version rewritten
    after = project.persisted(stack)
    assert [name for name, value in canaries.items() if value in after] == []


def test_a_stack_of_dynamic_resources_moves_to_the_plugin_replacing_and_writing_nothing(
    project: Project, master_key: str, tmp_path: Path
) -> None:
    project.write_tenants(tenants("fake-plan-literal"))
    project.env["ACME_SENDGRID_API_KEY"] = "fake-sendgrid-write-only-0001"
    use_code(project, release(DYNAMIC_RELEASE, tmp_path / "release"))
    stack = project.stack("dev")
    configure(stack, secrets_config={"acme": {"STRIPE_SECRET_KEY": "fake-stripe-0001"}}, master_keys={"v1": master_key})
    project.up(stack)
    written = stores(project)

    use_code(project, REPO)
    status, document, output = project.preview_json(stack)
    assert status == 0 and document is not None, output
    changed = {(s["op"], s["urn"].rsplit("::", 2)[-2]) for s in document["steps"] if s["op"] != "same"}
    # the plugin's provider replaces the dynamic one; no resource changes
    assert changed == {("create", "pulumi:providers:tenant-secrets"), ("delete", "pulumi:providers:pulumi-python")}
    project.infisical.reset_counts()
    result = project.up(stack)
    assert set((result.summary.resource_changes or {}).keys()) <= {"same", "create", "delete"}
    assert project.infisical.writes() == 0
    assert stores(project) == written  # no value, ciphertext or version rewritten

    custom = [r for r in (stack.export_stack().deployment or {})["resources"] if r.get("custom")]
    assert {r["type"] for r in custom if not r["type"].startswith("pulumi:providers:")} <= {
        f"tenant-secrets:index:{t}"
        for t in ("InfisicalFolder", "DatabaseTenant", "DatabaseSchema", "Registry", "MasterKeyPublication")
    }
    assert {r["type"] for r in custom if r["type"].startswith("pulumi:providers:")} == {
        "pulumi:providers:tenant-secrets"
    }
    status, document, output = project.preview_json(stack)
    assert status == 0 and document is not None, output
    assert {s["op"] for s in document["steps"]} == {"same"}, output

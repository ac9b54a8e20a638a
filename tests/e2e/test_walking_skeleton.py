"""The whole path on the real engine: tenants.yaml -> `pulumi up` -> Infisical folders and
encrypted rows -> a no-op preview -> destroy."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets.secret.envelope import decrypt
from tests.e2e.conftest import Infisical, Project, configure, sdk_listing
from tests.store.test_node_compat import run_node

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults:
  storage: both
  environments: [dev, staging, prod]
tenants:
  - subdomain: codewiser
    name: CodeWiser Ltd
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}, rotation: "1"}
  - subdomain: acmecorp
    storage: database
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: another-company
    storage: infisical
    secrets:
      SENDGRID_API_KEY: {from: config}
"""

VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-codewiser-0001"},
    "acmecorp": {"STRIPE_SECRET_KEY": "fake-stripe-acmecorp-0002"},
    "another-company": {"SENDGRID_API_KEY": "fake-sendgrid-another-0003"},
}


def folder_values(infisical: Infisical, env: str, path: str) -> dict[str, str] | None:
    """What the folder holds, through the official SDK; None when there is no such folder."""
    listed = sdk_listing(infisical, env, path)
    return None if listed is None else {s.secretKey: s.secretValue for s in listed}


def rows(project: Project) -> dict[tuple[str, str], tuple[str, int]]:
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.key_version "
            "FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    return {(sub, key): (ct, kv) for sub, key, ct, kv in found}


def recorded_inputs(stack: auto.Stack) -> dict[str, Any]:
    """Each resource's inputs as the state records them (secrets stay encrypted)."""
    deployment = stack.export_stack().deployment or {}
    return {r["urn"]: r.get("inputs") for r in deployment["resources"]}


def test_up_writes_both_stores_then_preview_is_a_no_op_then_destroy_cleans_up(
    project: Project, master_key: str
) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})

    result = project.up(stack)
    assert result.summary.result == "succeeded"

    # Strategy A: the folders hold exactly the declared secrets
    codewiser = folder_values(project.infisical, "dev", "/tenants/codewiser")
    assert codewiser is not None
    assert codewiser["STRIPE_SECRET_KEY"] == "fake-stripe-codewiser-0001"
    assert len(codewiser["WEBHOOK_SIGNING_SECRET"]) == 64
    assert set(codewiser) == {"STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET"}
    assert folder_values(project.infisical, "dev", "/tenants/another-company") == {
        "SENDGRID_API_KEY": "fake-sendgrid-another-0003"
    }
    assert folder_values(project.infisical, "dev", "/tenants/acmecorp") is None

    # Strategy B: the rows decrypt to the inputs, and the generated value matches Infisical's
    stored = rows(project)
    key = bytes.fromhex(master_key)
    assert set(stored) == {
        ("codewiser", "STRIPE_SECRET_KEY"),
        ("codewiser", "WEBHOOK_SIGNING_SECRET"),
        ("acmecorp", "STRIPE_SECRET_KEY"),
    }
    assert decrypt(stored[("acmecorp", "STRIPE_SECRET_KEY")][0], key) == "fake-stripe-acmecorp-0002"
    assert decrypt(stored[("codewiser", "WEBHOOK_SIGNING_SECRET")][0], key) == codewiser["WEBHOOK_SIGNING_SECRET"]
    assert all(kv == 1 for _, kv in stored.values())
    # ...and the application's own reader (the seed's decryptSecret, in Node.js) reads them unchanged
    ordered = sorted(stored)
    plain = run_node("decrypt.mjs", [{"envelope": stored[k][0], "keyHex": master_key} for k in ordered])
    assert dict(zip(ordered, plain, strict=True))[("acmecorp", "STRIPE_SECRET_KEY")] == "fake-stripe-acmecorp-0002"
    assert dict(zip(ordered, plain, strict=True))[("codewiser", "STRIPE_SECRET_KEY")] == "fake-stripe-codewiser-0001"

    # A second run changes nothing: the preview says so, and nothing is written anywhere
    project.infisical.reset_counts()
    recorded = recorded_inputs(stack)
    preview = project.preview(stack)
    assert set(preview.change_summary) == {"same"}
    again = project.up(stack)
    assert set((again.summary.resource_changes or {}).keys()) == {"same"}
    assert project.infisical.writes() == 0
    assert rows(project) == stored
    assert recorded_inputs(stack) == recorded  # not even the state's record of the inputs changes

    # No secret value anywhere in the state or the engine's output
    everything = project.persisted(stack) + "".join(project.outputs)
    for tenant in VALUES.values():
        for value in tenant.values():
            assert value not in everything
    assert master_key not in everything
    assert codewiser["WEBHOOK_SIGNING_SECRET"] not in everything

    stack.destroy(on_output=project.capture, color="never")
    assert folder_values(project.infisical, "dev", "/tenants/codewiser") is None
    assert rows(project) == {}

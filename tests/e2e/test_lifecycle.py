"""A tenant's life through pull requests, on the real engine: adoption of hand-made secrets, a
one-value change a reviewer can read, refused and marked deletions, and out-of-band drift."""

from __future__ import annotations

import pytest
from infisical_sdk import InfisicalSDKClient
from pulumi import automation as auto

from tenant_secrets.review import Row
from tests.e2e.conftest import Infisical, Project, configure

pytestmark = pytest.mark.e2e

HEAD = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: config}
"""
BETA = """\
  - subdomain: beta
    storage: infisical
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"},
    "beta": {"STRIPE_SECRET_KEY": "fake-stripe-beta-0001"},
}


def sdk(infisical: Infisical) -> InfisicalSDKClient:
    client = InfisicalSDKClient(host=infisical.server.url)
    client.auth.universal_auth.login(infisical.client_id, infisical.client_secret)
    return client


def live(infisical: Infisical, path: str) -> dict[str, tuple[str, int]]:
    listed = sdk(infisical).secrets.list_secrets(
        project_id=infisical.project_id, environment_slug="dev", secret_path=path
    )
    return {s.secretKey: (s.secretValue, s.version) for s in listed.secrets}


def set_value(stack: auto.Stack, owner: str, key: str, value: str) -> None:
    stack.set_config(f"tenant-secrets:secrets.{owner}.{key}", auto.ConfigValue(value, secret=True), path=True)


def test_a_tenant_through_review_changes_deletions_and_drift(project: Project, master_key: str) -> None:
    infisical = project.infisical
    # Before the tool: a hand-made folder holding one of the declared values.
    sdk(infisical).folders.create_folder(
        name="codewiser", environment_slug="dev", project_id=infisical.project_id, path="/tenants"
    )
    sdk(infisical).secrets.create_secret_by_name(
        secret_name="STRIPE_SECRET_KEY",
        project_id=infisical.project_id,
        secret_path="/tenants/codewiser",
        environment_slug="dev",
        secret_value="fake-stripe-cw-0001",
    )

    project.write_tenants(HEAD + BETA)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    project.up(stack)

    # Adopted: the equal hand-made secret was not rewritten (still version 1), the rest was added.
    codewiser = live(infisical, "/tenants/codewiser")
    assert codewiser["STRIPE_SECRET_KEY"] == ("fake-stripe-cw-0001", 1)
    assert codewiser["SENDGRID_API_KEY"][0] == "fake-sendgrid-cw-0001"

    # One value changed: the reviewer's plan names the tenant, stores and key; up writes once.
    set_value(stack, "codewiser", "STRIPE_SECRET_KEY", "fake-stripe-cw-0002")
    status, rows, _ = project.plan(stack)
    assert status == 0
    assert rows == [
        Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "update"),
        Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "update"),
    ]
    infisical.reset_counts()
    project.up(stack)
    assert infisical.writes() == 1
    assert live(infisical, "/tenants/codewiser")["STRIPE_SECRET_KEY"][0] == "fake-stripe-cw-0002"

    # A key dropped from tenants.yaml: refused in preview, with the marker to use; nothing deleted.
    project.write_tenants(HEAD.replace("      SENDGRID_API_KEY: {from: config}\n", "") + BETA)
    status, _, error = project.plan(stack)
    assert status != 0
    assert "SENDGRID_API_KEY: {decommission: true}" in error
    assert "SENDGRID_API_KEY" in live(infisical, "/tenants/codewiser")

    # With the marker, the next up deletes it from both stores.
    project.write_tenants(
        HEAD.replace("{from: config}\n", "{decommission: true}\n", 2).replace(
            "STRIPE_SECRET_KEY: {decommission: true}", "STRIPE_SECRET_KEY: {from: config}"
        )
        + BETA
    )
    status, rows, _ = project.plan(stack)
    assert Row("codewiser", "dev", "infisical", "SENDGRID_API_KEY", "delete") in rows
    project.up(stack)
    assert set(live(infisical, "/tenants/codewiser")) == {"STRIPE_SECRET_KEY"}
    with project.db() as conn:
        keys = {k for (k,) in conn.execute("SELECT secret_key FROM company_secrets").fetchall()}
    assert keys == {"STRIPE_SECRET_KEY"}

    # A tenant dropped from tenants.yaml: refused, naming it; with `decommission: true`, deleted.
    marked = HEAD.replace("{from: config}\n", "{decommission: true}\n", 2).replace(
        "STRIPE_SECRET_KEY: {decommission: true}", "STRIPE_SECRET_KEY: {from: config}"
    )
    project.write_tenants(marked)
    status, _, error = project.plan(stack)
    assert status != 0
    assert "beta is no longer declared" in error
    assert "decommission: true" in error
    project.write_tenants(
        marked + BETA.replace("    storage: infisical\n", "    storage: infisical\n    decommission: true\n")
    )
    project.up(stack)
    assert (
        sdk(infisical)
        .folders.list_folders(project_id=infisical.project_id, environment_slug="dev", path="/tenants")
        .folders[0]
        .name
        == "codewiser"
    )

    # Drift: a value changed by hand shows in refresh, and the next up restores the declared one.
    sdk(infisical).secrets.update_secret_by_name(
        current_secret_name="STRIPE_SECRET_KEY",
        project_id=infisical.project_id,
        secret_path="/tenants/codewiser",
        environment_slug="dev",
        secret_value="fake-changed-by-hand",
    )
    refreshed = stack.refresh(on_output=project.capture, color="never")
    assert (refreshed.summary.resource_changes or {}).get(auto.OpType.UPDATE, 0) >= 1
    project.up(stack)
    assert live(infisical, "/tenants/codewiser")["STRIPE_SECRET_KEY"][0] == "fake-stripe-cw-0002"

    # Nothing secret anywhere the stack persists or printed.
    everything = project.persisted(stack) + "".join(project.outputs)
    for value in ("fake-stripe-cw-0001", "fake-stripe-cw-0002", "fake-sendgrid-cw-0001", "fake-changed-by-hand"):
        assert value not in everything
    assert infisical.client_secret not in everything
    assert master_key not in everything

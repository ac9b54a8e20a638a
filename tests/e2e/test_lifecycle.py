"""A tenant's life through pull requests, on the real engine, as declared steps: adoption of hand-made
secrets, a one-value change a reviewer can read, refused and marked deletions, and out-of-band drift."""

from __future__ import annotations

import pytest

from tenant_secrets.tenantctl.plan_comment import Row
from tests.e2e.conftest import Project, configure, sdk
from tests.e2e.steps import Step, run_steps

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
WITHOUT_SENDGRID = HEAD.replace("      SENDGRID_API_KEY: {from: config}\n", "")
SENDGRID_MARKED = HEAD.replace("SENDGRID_API_KEY: {from: config}", "SENDGRID_API_KEY: {decommission: true}")
BETA = """\
  - subdomain: beta
    storage: infisical
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
BETA_MARKED = BETA.replace("    storage: infisical\n", "    storage: infisical\n    decommission: true\n")
VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"},
    "beta": {"STRIPE_SECRET_KEY": "fake-stripe-beta-0001"},
}
CODEWISER = "/tenants/codewiser"


def hand_made_folder(project: Project) -> None:
    """Before the tool: a folder made by hand, holding one of the declared values."""
    infisical = project.infisical
    sdk(infisical).folders.create_folder(
        name="codewiser", environment_slug="dev", project_id=infisical.project_id, path="/tenants"
    )
    sdk(infisical).secrets.create_secret_by_name(
        secret_name="STRIPE_SECRET_KEY",
        project_id=infisical.project_id,
        secret_path=CODEWISER,
        environment_slug="dev",
        secret_value="fake-stripe-cw-0001",
    )


def changed_by_hand(project: Project) -> None:
    infisical = project.infisical
    sdk(infisical).secrets.update_secret_by_name(
        current_secret_name="STRIPE_SECRET_KEY",
        project_id=infisical.project_id,
        secret_path=CODEWISER,
        environment_slug="dev",
        secret_value="fake-changed-by-hand",
    )


STEPS = [
    Step(
        "hand-made secrets are adopted: the equal one is not rewritten (still version 1), the rest is added",
        tenants=HEAD + BETA,
        by_hand=hand_made_folder,
        folders={
            CODEWISER: {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"},
            "/tenants/beta": {"STRIPE_SECRET_KEY": "fake-stripe-beta-0001"},
        },
        versions={CODEWISER: {"STRIPE_SECRET_KEY": 1}},
    ),
    Step(
        "one value changed: the plan names the tenant, stores and key; up writes once",
        config={("codewiser", "STRIPE_SECRET_KEY"): "fake-stripe-cw-0002"},
        plan=[
            Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "update"),
            Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "update"),
        ],
        writes=1,
        folders={CODEWISER: {"STRIPE_SECRET_KEY": "fake-stripe-cw-0002", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"}},
    ),
    Step(
        "a key dropped from tenants.yaml is refused in preview, with the marker to use; nothing is deleted",
        tenants=WITHOUT_SENDGRID + BETA,
        refused=["SENDGRID_API_KEY: {decommission: true}"],
        folders={CODEWISER: {"STRIPE_SECRET_KEY": "fake-stripe-cw-0002", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"}},
        rows={"STRIPE_SECRET_KEY", "SENDGRID_API_KEY"},
    ),
    Step(
        "with the marker, the key is deleted from both stores",
        tenants=SENDGRID_MARKED + BETA,
        plan_includes=[Row("codewiser", "dev", "infisical", "SENDGRID_API_KEY", "delete")],
        folders={CODEWISER: {"STRIPE_SECRET_KEY": "fake-stripe-cw-0002"}},
        rows={"STRIPE_SECRET_KEY"},
    ),
    Step(
        "a tenant dropped from tenants.yaml is refused, naming it and the marker",
        tenants=SENDGRID_MARKED,
        refused=["beta is no longer declared", "decommission: true"],
        tenant_folders={"beta": True, "codewiser": True},
    ),
    Step(
        "with `decommission: true`, the tenant's folder is deleted",
        tenants=SENDGRID_MARKED + BETA_MARKED,
        tenant_folders={"beta": False, "codewiser": True},
    ),
    Step(
        "a value changed by hand shows in refresh, and the next up restores the declared one",
        by_hand=changed_by_hand,
        refresh_finds_drift=True,
        folders={CODEWISER: {"STRIPE_SECRET_KEY": "fake-stripe-cw-0002"}},
    ),
]


def test_a_tenant_through_review_changes_deletions_and_drift(project: Project, master_key: str) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    run_steps(project, stack, STEPS)

    # Nothing secret anywhere the stack persists or printed.
    everything = project.persisted(stack) + "".join(project.outputs)
    for value in ("fake-stripe-cw-0001", "fake-stripe-cw-0002", "fake-sendgrid-cw-0001", "fake-changed-by-hand"):
        assert value not in everything
    assert project.infisical.client_secret not in everything
    assert master_key not in everything

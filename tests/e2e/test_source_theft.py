"""Issue 26 (critical), on the real engine: a pull request's tenants.yaml cannot copy the run's credentials into
a tenant's store. The attack file (a tenant whose keys read INFISICAL_CLIENT_SECRET, DATABASE_URL,
PULUMI_CONFIG_PASSPHRASE, AWS_SECRET_ACCESS_KEY and the root Infisical folder) fails the preview that
`tenantctl plan` runs with one line per key, and nothing is written; a folder no owner claims and a variable
the stack's envAllow does not list are refused too, until a base-branch setting shares them by name."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pulumi import automation as auto

from tenant_secrets.tenantctl.main import main
from tests.e2e.conftest import Project, configure, sdk
from tests.e2e.steps import Step, run_steps

pytestmark = pytest.mark.e2e

BASE = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: acme
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: env, var: ACME_SENDGRID_API_KEY}
"""
ATTACK = BASE + (
    "  - subdomain: thief\n"
    "    secrets:\n"
    "      A: {from: env, var: INFISICAL_CLIENT_SECRET}\n"
    "      B: {from: env, var: DATABASE_URL}\n"
    "      C: {from: env, var: PULUMI_CONFIG_PASSPHRASE}\n"
    "      D: {from: env, var: AWS_SECRET_ACCESS_KEY}\n"
    "      E: {from: infisical, path: /, key: ROOT_TOKEN}\n"
)
REFUSED = [
    "tenants.yaml:10:27: tenants[1].secrets.A.var: reads the environment variable INFISICAL_CLIENT_SECRET, "
    "which can never be a value source",
    "tenants.yaml:11:27: tenants[1].secrets.B.var: reads the environment variable DATABASE_URL, which can never",
    "tenants.yaml:12:27: tenants[1].secrets.C.var: reads the environment variable PULUMI_CONFIG_PASSPHRASE, which",
    "tenants.yaml:13:27: tenants[1].secrets.D.var: reads the environment variable AWS_SECRET_ACCESS_KEY, which",
    "tenants.yaml:14:34: tenants[1].secrets.E.path: reads the root folder /, which no owner claims",
]
UNSHARED = BASE + (
    "  - subdomain: thief\n"
    "    secrets:\n"
    "      PAYMENTS: {from: infisical, path: /payments, key: TOKEN}\n"
    "      TOKEN: {from: env, var: FAKE_PAYMENTS_TOKEN}\n"
)
ACME_ROWS = {"STRIPE_SECRET_KEY", "SENDGRID_API_KEY"}
FAKE = {
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-0001",
    "FAKE_PAYMENTS_TOKEN": "fake-payments-env-0001",
    "ACME_SENDGRID_API_KEY": "fake-sendgrid-acme-0001",
}


def plan_comment(project: Project, stack: auto.Stack) -> tuple[str, str]:
    """`pulumi preview --json` as `tenantctl plan` runs it, and the comment `tenantctl plan` makes of it."""
    project.infisical.reset_counts()  # what the preview sends
    status, document, output = project.preview_json(stack)
    assert status != 0 and document is not None, output[-2000:]
    preview = project.root / "preview.json"
    preview.write_text(json.dumps(document))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["plan", "--stack", stack.name, "--preview-json", str(preview)]) == 1
    return output, project.capture(printed.getvalue())


def issue_lines(comment: str) -> list[str]:
    """The comment's lines that name a place in tenants.yaml."""
    return [line.strip() for line in comment.splitlines() if line.strip().startswith("tenants.yaml:") and "[" in line]


def no_credential_shown(project: Project, *texts: str) -> None:
    credentials = [
        project.env[name] for name in ("INFISICAL_CLIENT_SECRET", "DATABASE_URL", "PULUMI_CONFIG_PASSPHRASE")
    ]
    credentials += [*FAKE.values(), "fake-root-token-0001", "fake-payments-folder-0001"]
    shown = [value[:6] for value in credentials for text in texts if value in text]
    assert not shown, f"{len(shown)} credential(s) shown"


def the_attack_is_refused_one_line_per_key(project: Project, stack: auto.Stack) -> None:
    output, comment = plan_comment(project, stack)
    assert "Traceback" not in output + comment
    assert "the preview failed" in comment
    lines = issue_lines(comment)
    assert len(lines) == len(REFUSED), lines
    assert [line for line, says in zip(lines, REFUSED, strict=True) if not line.startswith(says)] == []
    no_credential_shown(project, output, comment)
    assert project.infisical.writes() == 0


def the_unshared_reads_are_refused(project: Project, stack: auto.Stack) -> None:
    output, comment = plan_comment(project, stack)
    lines = issue_lines(comment)
    assert [line.split(". ")[0] for line in lines] == [
        "tenants.yaml:10:17: tenants[1].secrets.PAYMENTS: tenant thief, PAYMENTS: reads Infisical /payments, which "
        "is neither its own folder (/tenants/thief) nor one tenant-secrets:sharedFolders lists",
        "tenants.yaml:11:14: tenants[1].secrets.TOKEN: tenant thief, TOKEN: reads the environment variable "
        "FAKE_PAYMENTS_TOKEN, which tenant-secrets:envAllow does not allow (it does not list it)",
    ]
    no_credential_shown(project, output, comment)
    assert project.infisical.writes() == 0


def secrets_outside_any_owner(project: Project) -> None:
    """What the provisioner may read and no tenant should: a secret in the root and one in /payments."""
    client = sdk(project.infisical)
    client.folders.create_folder(
        name="payments", environment_slug="dev", project_id=project.infisical.project_id, path="/"
    )
    for path, value in (("/", "fake-root-token-0001"), ("/payments", "fake-payments-folder-0001")):
        client.secrets.create_secret_by_name(
            secret_name="ROOT_TOKEN" if path == "/" else "TOKEN",
            project_id=project.infisical.project_id,
            environment_slug="dev",
            secret_path=path,
            secret_value=value,
        )


def test_a_pull_request_cannot_copy_the_runs_credentials_into_a_tenant(project: Project, master_key: str) -> None:
    stack = project.stack("dev")
    configure(
        stack,
        secrets_config={"acme": {"STRIPE_SECRET_KEY": "fake-stripe-acme-0001"}},
        master_keys={"v1": master_key},
        env_allow=["ACME_SENDGRID_API_KEY"],
    )
    steps = [
        Step("the base: acme reads the stack config and an allow-listed variable", tenants=BASE, env=FAKE,
             by_hand=secrets_outside_any_owner, rows=ACME_ROWS),
        Step(
            "the attack file: the plan fails with one line per key; nothing is written",
            tenants=ATTACK,
            up=False,
            check=the_attack_is_refused_one_line_per_key,
            folders={"/tenants/thief": None},
            rows=ACME_ROWS,
        ),
        Step(
            "a folder no owner claims and a variable envAllow does not list: refused as well",
            tenants=UNSHARED,
            up=False,
            check=the_unshared_reads_are_refused,
            folders={"/tenants/thief": None},
            rows=ACME_ROWS,
        ),
        Step(
            "once the base branch shares /payments and allows the variable by name, the same file applies",
            settings={"sharedFolders[0]": "/payments", "envAllow[1]": "FAKE_PAYMENTS_TOKEN"},
            folders={"/tenants/thief": {"PAYMENTS": "fake-payments-folder-0001", "TOKEN": "fake-payments-env-0001"}},
        ),
    ]  # fmt: skip
    run_steps(project, stack, steps, "a pull request that reads the run's credentials")

"""Issue 26 (critical): a value source can never name a credential the run itself uses.

A pull request's tenants.yaml (previewed with the base branch's code) added a tenant whose keys read the
run's Infisical client secret, its DATABASE_URL, the passphrase of the stack config, an AWS key and the
root Infisical folder; validate said valid. Environment sources now come from the stack's `envAllow`,
Infisical sources from the owner's folder or the stack's `sharedFolders`, and a deny-list no setting opens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tenant_secrets.stack.files import StackFile
from tenant_secrets.tenantctl.main import main
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment
from tenant_secrets.tenants_file.source_policy import SourcePolicy, denied_env
from tenant_secrets.tenants_file.validation import check_sources

ATTACK = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: thief
    secrets:
      A: {from: env, var: INFISICAL_CLIENT_SECRET}
      B: {from: env, var: DATABASE_URL}
      C: {from: env, var: PULUMI_CONFIG_PASSPHRASE}
      D: {from: env, var: AWS_SECRET_ACCESS_KEY}
      E: {from: infisical, path: /, key: MASTER_ENCRYPTION_KEY}
"""


def test_the_attack_file_is_refused_by_validate_with_file_line_and_field_for_each_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tenants.yaml").write_text(ATTACK)
    assert main(["validate", str(tmp_path / "tenants.yaml")]) == 1
    lines = [line.removeprefix(f"{tmp_path}/") for line in capsys.readouterr().out.splitlines()]
    assert [line.split(": ")[:2] for line in lines] == [
        ["tenants.yaml:6:27", "tenants[0].secrets.A.var"],
        ["tenants.yaml:7:27", "tenants[0].secrets.B.var"],
        ["tenants.yaml:8:27", "tenants[0].secrets.C.var"],
        ["tenants.yaml:9:27", "tenants[0].secrets.D.var"],
        ["tenants.yaml:10:34", "tenants[0].secrets.E.path"],
    ]
    stolen = ["INFISICAL_CLIENT_SECRET", "DATABASE_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_SECRET"]
    for line, var in zip(lines, stolen, strict=False):
        assert f"reads the environment variable {var}" in line and "can never be a value source" in line
    assert "reads the root folder /, which no owner claims" in lines[4]


@pytest.mark.parametrize(
    "var",
    [
        *("DATABASE_URL", "INFISICAL_CLIENT_ID", "PULUMI_ACCESS_TOKEN", "AWS_SESSION_TOKEN", "AZURE_CLIENT_SECRET"),
        *("ARM_CLIENT_SECRET", "GOOGLE_APPLICATION_CREDENTIALS", "GCP_SA_KEY", "CLOUDSDK_AUTH_ACCESS_TOKEN"),
        *("VAULT_TOKEN", "GITHUB_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "RUNNER_TEMP", "TENANT_SECRETS_WEBHOOK_URL"),
        *("PGPASSWORD", "PGPASSFILE", "SSH_AUTH_SOCK", "ROTATION_PR_TOKEN", "database_url", "Pulumi_Config_Passphrase"),
    ],
)
def test_no_allow_list_opens_a_denied_name(var: str) -> None:
    assert denied_env(var) is not None
    policy, issues = SourcePolicy.parse([var], None, key_folder="/hono-api")
    assert [(i.setting, i.index) for i in issues] == [("envAllow", 0)]
    assert not policy.allows_env(var)
    assert policy.environ({var: "fake-credential"}) == {}


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("*", "a bare `*` would allow every variable"),
        ("_*", "not a prefix written PREFIX_*"),
        ("STRIPE*", "not a prefix written PREFIX_*"),
        ("AWS_*", "would allow AWS_*"),
        ("TENANT_*", "would allow TENANT_SECRETS_*"),
        ("P_*", None),
        ("DATA*", "not a prefix written PREFIX_*"),
        ("DATABASE_*", "would allow DATABASE_URL"),
        ("NOT-A-NAME", "not an environment variable name"),
    ],
)
def test_an_allow_list_entry_that_would_open_too_much_is_refused(entry: str, says: str | None) -> None:
    _, issues = SourcePolicy.parse([entry], None, key_folder="/hono-api")
    assert [str(i) for i in issues if says and says in i.message] == [str(i) for i in issues]
    assert bool(issues) is bool(says)


def test_the_resolver_is_handed_only_the_allow_listed_variables() -> None:
    policy, issues = SourcePolicy.parse(["RESEND_API_KEY", "STRIPE_*"], None, key_folder="/hono-api")
    assert issues == []
    environ = {
        "RESEND_API_KEY": "fake-resend",
        "STRIPE_ACME": "fake-stripe",
        "STRIPE": "fake-bare",
        "RESEND_API_KEY_2": "fake-other",
        "DATABASE_URL": "postgresql://fake",
        "INFISICAL_CLIENT_SECRET": "fake-client-secret",
        "HOME": "/root",
    }
    assert policy.environ(environ) == {"RESEND_API_KEY": "fake-resend", "STRIPE_ACME": "fake-stripe"}


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("/", "the root folder cannot be shared"),
        ("/tenants/acme", "a tenant's folder"),
        ("/Tenants", "a tenant's folder"),
        ("/hono-api", "the key folder"),
        ("/hono-api/old", "the key folder"),
        ("payments", "not an absolute Infisical folder path"),
    ],
)
def test_a_shared_folder_that_is_a_tenants_the_key_folder_or_the_root_is_refused(entry: str, says: str) -> None:
    policy, issues = SourcePolicy.parse(None, [entry], key_folder="/hono-api")
    assert [(i.setting, i.index) for i in issues] == [("sharedFolders", 0)]
    assert says in issues[0].message
    assert policy.shared_folders == frozenset()


TENANTS = """\
version: 1
defaults: {storage: infisical, environments: [dev, prod]}
platform:
  ops:
    secrets:
      OWN: {from: infisical, path: /ops/sub, key: OWN}
tenants:
  - subdomain: acme
    secrets:
      OWN: {from: infisical, path: /tenants/acme, key: OWN}
      SHARED: {from: infisical, path: /shared/stripe, key: SHARED}
      UNCLAIMED: {from: infisical, path: /payments, key: TOKEN}
      RESEND: {from: env, var: RESEND_API_KEY}
      STRIPE: {from: env, var: STRIPE_ACME}
"""
ENVIRON = {"RESEND_API_KEY": "fake-resend", "STRIPE_ACME": "fake-stripe"}


def stack_issues(stack_file: str) -> list[str]:
    stack = StackFile.parse(stack_file, "Pulumi.dev.yaml")
    policy, issues = stack.source_policy()
    plan = plan_environment(parse_tenants(TENANTS), "dev")
    issues += check_sources(plan, "tenants.yaml", config_has=bool, environ=ENVIRON, policy=policy, stack="dev")
    return [str(i) for i in issues]


def test_without_the_settings_every_env_source_and_every_unclaimed_folder_is_refused() -> None:
    lines = stack_issues("config:\n  tenant-secrets:environment: dev\n")
    assert [line.split(": ")[0] for line in lines] == [
        "tenants.yaml:13:15",  # RESEND
        "tenants.yaml:11:15",  # SHARED
        "tenants.yaml:14:15",  # STRIPE
        "tenants.yaml:12:18",  # UNCLAIMED
    ]
    assert lines[0].endswith(
        "tenant acme, RESEND: reads the environment variable RESEND_API_KEY, which tenant-secrets:envAllow does not "
        "allow (the stack has no allow-list). If the run should pass it, add it in a reviewed change of the base "
        "branch: `pulumi config set --path 'tenant-secrets:envAllow[0]' RESEND_API_KEY --stack dev` "
        "(docs/decisions/0041-value-sources-are-allow-listed.md)"
    )
    assert (
        "tenant acme, UNCLAIMED: reads Infisical /payments, which is neither its own folder (/tenants/acme) nor"
        in (lines[3])
    )
    assert "`pulumi config set --path 'tenant-secrets:sharedFolders[0]' /payments --stack dev`" in lines[3]


def test_the_stacks_settings_allow_what_they_list_and_nothing_more() -> None:
    stack_file = (
        "config:\n"
        "  tenant-secrets:envAllow:\n    - RESEND_API_KEY\n    - STRIPE_*\n"
        "  tenant-secrets:sharedFolders:\n    - /shared/stripe\n"
    )
    lines = stack_issues(stack_file)
    assert len(lines) == 1 and "tenant acme, UNCLAIMED: reads Infisical /payments" in lines[0]


def test_a_refused_setting_entry_is_reported_at_its_line_in_the_stack_file() -> None:
    stack_file = "config:\n  tenant-secrets:envAllow:\n    - RESEND_API_KEY\n    - DATABASE_URL\n"
    lines = stack_issues(stack_file)
    assert lines[0] == (
        "Pulumi.dev.yaml:4:7: config.tenant-secrets:envAllow[1]: 'DATABASE_URL' can never be a value source: "
        "a credential of the run itself"
    )

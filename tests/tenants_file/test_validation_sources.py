"""check_sources: every config path and environment variable a plan reads has a value, or the
issue says where it is declared and the command that sets it."""

from __future__ import annotations

from collections.abc import Collection

from tenant_secrets.secret.values import empty_values, infisical_alterations
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment
from tenant_secrets.tenants_file.source_policy import SourcePolicy
from tenant_secrets.tenants_file.validation import check_sources

TENANTS = """\
version: 1
defaults:
  storage: both
  environments: [dev, prod]
platform:
  hono-api:
    secrets:
      RESEND_API_KEY: {from: env, var: RESEND_API_KEY}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: env, var: CODEWISER_SENDGRID_API_KEY}
      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32}}
      SMTP:
        host: {value: smtp.example.test}
        password: {from: config}
    overrides:
      dev:
        secrets:
          STRIPE_SECRET_KEY: {from: config, key: shared.stripe_test_key}
  - subdomain: oldco
    decommission: true
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
SET: set[tuple[str, ...]] = {
    ("codewiser", "STRIPE_SECRET_KEY"),
    ("codewiser", "SMTP_PASSWORD"),
    ("shared", "stripe_test_key"),
}
ENVIRON = {"RESEND_API_KEY": "re_fake", "CODEWISER_SENDGRID_API_KEY": "SG.fake"}
POLICY = SourcePolicy(env_names=frozenset(ENVIRON), env_entries=len(ENVIRON))


def check(environment: str, config: Collection[tuple[str, ...]], environ: dict[str, str], stack: str | None = None):  # type: ignore[no-untyped-def]
    plan = plan_environment(parse_tenants(TENANTS), environment)
    return check_sources(
        plan, "tenants.yaml", config_has=lambda path: path in config, environ=environ, policy=POLICY, stack=stack
    )


def test_nothing_to_report_when_every_source_has_a_value() -> None:
    assert check("prod", SET, ENVIRON) == []
    assert check("dev", SET, ENVIRON) == []


def test_a_missing_config_value_names_the_line_and_the_command() -> None:
    issues = check("prod", SET - {("codewiser", "SMTP_PASSWORD")}, ENVIRON, stack="prod")
    assert [(i.line, i.column, i.field) for i in issues] == [(17, 19, "tenants[0].secrets.SMTP.password")]
    assert str(issues[0]) == (
        "tenants.yaml:17:19: tenants[0].secrets.SMTP.password: tenant codewiser, SMTP_PASSWORD: the stack config "
        "has no value at secrets.codewiser.SMTP_PASSWORD (prod). Set it with "
        "`pulumi config set --secret --path 'secrets.codewiser.SMTP_PASSWORD' --stack prod` (it prompts for the value)"
    )


def test_an_override_is_checked_in_its_environment_only() -> None:
    missing_shared = SET - {("shared", "stripe_test_key")}
    assert check("prod", missing_shared, ENVIRON) == []
    (issue,) = check("dev", missing_shared, ENVIRON)
    assert (issue.line, issue.column, issue.field) == (21, 30, "tenants[0].overrides.dev.secrets.STRIPE_SECRET_KEY")
    assert "--path 'secrets.shared.stripe_test_key'`" in issue.hint


def test_unset_and_empty_environment_variables() -> None:
    issues = check("prod", SET, {"CODEWISER_SENDGRID_API_KEY": ""})
    assert [(i.line, i.column, i.field) for i in issues] == [
        (13, 25, "tenants[0].secrets.SENDGRID_API_KEY"),
        (8, 23, "platform.hono-api.secrets.RESEND_API_KEY"),
    ]
    assert issues[0].message.endswith("the environment variable CODEWISER_SENDGRID_API_KEY is empty (prod)")
    assert issues[0].hint.startswith("`export CODEWISER_SENDGRID_API_KEY=<value>`")
    assert "RESEND_API_KEY is not set" in issues[1].message
    assert issues[1].message.startswith("platform folder hono-api, RESEND_API_KEY:")


def test_decommissioned_tenants_and_generated_values_need_nothing() -> None:
    issues = check("prod", set(), {})
    assert {i.field for i in issues} == {
        "tenants[0].secrets.STRIPE_SECRET_KEY",
        "tenants[0].secrets.SENDGRID_API_KEY",
        "tenants[0].secrets.SMTP.password",
        "platform.hono-api.secrets.RESEND_API_KEY",
    }


def test_empty_values_are_refused_unless_their_source_allows_them() -> None:
    """An empty secret is most often one nobody set: the program refuses it before anything is written."""
    text = (
        "version: 1\ndefaults: {storage: both, environments: [dev]}\ntenants:\n  - subdomain: codewiser\n"
        "    secrets:\n      A_KEY: {from: config}\n      B_KEY: {from: config, allow_empty: true}\n"
        '      C_KEY: {value: ""}\n      D_KEY: {from: infisical, path: /legacy, key: D}\n'
    )
    (tenant,) = plan_environment(parse_tenants(text, "tenants.yaml"), "dev").tenants
    values = dict.fromkeys(tenant.secrets, "")
    assert empty_values("codewiser", tenant.secrets, values) == ["codewiser.A_KEY", "codewiser.D_KEY"]
    assert empty_values("codewiser", tenant.secrets, dict.fromkeys(tenant.secrets, "fake-set")) == []
    # and what Infisical would trim: leading or trailing whitespace (one trailing newline survives)
    owners = {"codewiser": {"A_KEY": " fake", "B_KEY": "fake\n", "C_KEY": "fake\n\n", "D_KEY": "fake"}}
    assert infisical_alterations(owners) == ["codewiser.A_KEY", "codewiser.C_KEY"]

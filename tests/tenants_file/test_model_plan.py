"""plan_environment: the resolved view of one environment that the Pulumi program consumes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tenant_secrets.tenants_file.loader import load_tenants_file, parse_tenants
from tenant_secrets.tenants_file.model import TenantsFileError, plan_environment
from tenant_secrets.tenants_file.sources import ConfigSource, EnvSource, GeneratedSource, InfisicalSource, LiteralSource

ROOT = Path(__file__).resolve().parents[2]

TENANTS = """\
version: 1
defaults:
  storage: database
  environments: [dev, staging, prod]
  secrets:
    WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}
platform:
  hono-api:
    secrets:
      EMAIL_FROM: {value: "Delivery Chat <onboarding@example.test>"}
      RESEND_API_KEY: {from: env, var: RESEND_API_KEY}
    overrides:
      dev:
        secrets:
          RESEND_API_KEY: {value: "re_fake_dev"}
tenants:
  - subdomain: codewiser
    name: CodeWiser Ltd
    company_id: 5B0C2F7E-6A4B-4C1E-9A53-1F0E8D2C7A10
    storage: both
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      LEGACY_TOKEN: {from: infisical, path: /legacy/codewiser/, key: TOKEN, environment: prod}
      OLD_KEY: {decommission: true}
      SMTP:
        host: {value: smtp.example.test}
        password: {from: config}
    overrides:
      dev:
        secrets:
          STRIPE_SECRET_KEY: {from: config, key: shared.stripe_test_key}
          SMTP:
            host: {value: smtp.dev.example.test}
          WEBHOOK_SIGNING_SECRET: {decommission: true}
  - subdomain: newco
    environments: [dev]
    secrets:
      API_TOKEN: {generate: {bytes: 16}, rotation: 3}
  - subdomain: oldco
    environments: [dev]
    decommission: true
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""


@pytest.fixture(scope="module")
def tenants():  # type: ignore[no-untyped-def]
    return parse_tenants(TENANTS)


def test_a_tenant_in_its_default_environments_with_defaults_and_groups(tenants) -> None:  # type: ignore[no-untyped-def]
    plan = plan_environment(tenants, "prod")
    assert plan.environment == "prod"
    assert [t.subdomain for t in plan.tenants] == ["codewiser", "oldco"]
    codewiser = plan.tenants[0]
    assert codewiser.name == "CodeWiser Ltd"
    assert codewiser.company_id == "5b0c2f7e-6a4b-4c1e-9a53-1f0e8d2c7a10"
    assert codewiser.storage == frozenset({"infisical", "database"})
    assert dict(codewiser.secrets) == {
        "STRIPE_SECRET_KEY": ConfigSource(("codewiser", "STRIPE_SECRET_KEY")),
        "LEGACY_TOKEN": InfisicalSource("/legacy/codewiser", "TOKEN", "prod"),
        "SMTP_HOST": LiteralSource("smtp.example.test"),
        "SMTP_PASSWORD": ConfigSource(("codewiser", "SMTP_PASSWORD")),
        "WEBHOOK_SIGNING_SECRET": GeneratedSource(32, "hex", "1"),
    }
    assert codewiser.decommissioned_keys == frozenset({"OLD_KEY"})
    assert codewiser.decommission is False


def test_overrides_replace_key_by_key_in_their_environment(tenants) -> None:  # type: ignore[no-untyped-def]
    codewiser = plan_environment(tenants, "dev").tenants[0]
    assert codewiser.secrets["STRIPE_SECRET_KEY"] == ConfigSource(("shared", "stripe_test_key"))
    assert codewiser.secrets["SMTP_HOST"] == LiteralSource("smtp.dev.example.test")
    assert codewiser.secrets["SMTP_PASSWORD"] == ConfigSource(("codewiser", "SMTP_PASSWORD"))  # not overridden
    assert "WEBHOOK_SIGNING_SECRET" not in codewiser.secrets
    assert codewiser.decommissioned_keys == frozenset({"OLD_KEY", "WEBHOOK_SIGNING_SECRET"})


def test_locations_and_fields_point_at_the_declaring_line(tenants) -> None:  # type: ignore[no-untyped-def]
    dev = plan_environment(tenants, "dev").tenants[0]
    prod = plan_environment(tenants, "prod").tenants[0]
    assert prod.locations["STRIPE_SECRET_KEY"] == (22, 26)
    assert prod.fields["STRIPE_SECRET_KEY"] == "tenants[0].secrets.STRIPE_SECRET_KEY"
    assert dev.locations["STRIPE_SECRET_KEY"] == (31, 30)
    assert dev.fields["STRIPE_SECRET_KEY"] == "tenants[0].overrides.dev.secrets.STRIPE_SECRET_KEY"
    assert prod.locations["SMTP_PASSWORD"] == (27, 19)
    assert prod.fields["SMTP_PASSWORD"] == "tenants[0].secrets.SMTP.password"
    assert prod.fields["WEBHOOK_SIGNING_SECRET"] == "defaults.secrets.WEBHOOK_SIGNING_SECRET"
    assert prod.locations["WEBHOOK_SIGNING_SECRET"] == (6, 29)


def test_a_tenant_is_absent_outside_its_environments(tenants) -> None:  # type: ignore[no-untyped-def]
    assert [t.subdomain for t in plan_environment(tenants, "staging").tenants] == ["codewiser", "oldco"]
    newco = plan_environment(tenants, "dev").tenants[1]
    assert newco.subdomain == "newco"
    assert newco.storage == frozenset({"database"})
    assert newco.secrets["API_TOKEN"] == GeneratedSource(16, "base64", "3")


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_a_decommissioned_tenant_is_in_every_environment_with_nothing_to_write(tenants, environment: str) -> None:  # type: ignore[no-untyped-def]
    oldco = next(t for t in plan_environment(tenants, environment).tenants if t.subdomain == "oldco")
    assert oldco.decommission is True
    assert dict(oldco.secrets) == {}
    assert oldco.decommissioned_keys == frozenset()


def test_platform_folders_with_their_overrides(tenants) -> None:  # type: ignore[no-untyped-def]
    (prod,) = plan_environment(tenants, "prod").platform
    (dev,) = plan_environment(tenants, "dev").platform
    assert (prod.name, prod.path) == ("hono-api", "/hono-api")
    assert prod.secrets["RESEND_API_KEY"] == EnvSource("RESEND_API_KEY")
    assert dev.secrets["RESEND_API_KEY"] == LiteralSource("re_fake_dev")
    assert prod.secrets["EMAIL_FROM"] == LiteralSource("Delivery Chat <onboarding@example.test>")
    assert prod.decommissioned_keys == frozenset()


def test_config_default_path_of_a_platform_folder_is_its_name() -> None:
    text = TENANTS.replace("RESEND_API_KEY: {from: env, var: RESEND_API_KEY}", "RESEND_API_KEY: {from: config}")
    (folder,) = plan_environment(parse_tenants(text), "prod").platform
    assert folder.secrets["RESEND_API_KEY"] == ConfigSource(("hono-api", "RESEND_API_KEY"))


def test_an_undeclared_environment_is_an_error_not_an_empty_plan(tenants) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TenantsFileError) as caught:
        plan_environment(tenants, "qa")
    (issue,) = caught.value.issues
    assert (issue.line, issue.column, issue.field) == (4, 17, "defaults.environments")
    assert issue.message == "the stack's environment 'qa' is not declared"


def test_the_plan_is_frozen(tenants) -> None:  # type: ignore[no-untyped-def]
    plan = plan_environment(tenants, "prod")
    with pytest.raises(AttributeError):
        plan.tenants[0].decommission = True  # type: ignore[misc]


def test_the_committed_example_plans_every_environment() -> None:
    tenants = load_tenants_file(ROOT / "tenants.yaml")
    dev = plan_environment(tenants, "dev")
    prod = plan_environment(tenants, "prod")
    assert [t.subdomain for t in dev.tenants] == ["codewiser", "acmecorp", "another-company"]
    assert [t.subdomain for t in prod.tenants] == ["codewiser", "acmecorp"]
    assert {t.subdomain: sorted(t.storage) for t in dev.tenants} == {
        "codewiser": ["database", "infisical"],
        "acmecorp": ["database"],
        "another-company": ["infisical"],
    }
    acme = dev.tenants[1]
    assert {"SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD"} <= set(acme.secrets)
    kinds = {type(s) for t in dev.tenants for s in t.secrets.values()} | {
        type(s) for f in dev.platform for s in f.secrets.values()
    }
    assert kinds == {ConfigSource, EnvSource, GeneratedSource, LiteralSource}
    assert dev.tenants[0].secrets["STRIPE_SECRET_KEY"] != prod.tenants[0].secrets["STRIPE_SECRET_KEY"]
    assert [f.path for f in dev.platform] == ["/hono-api"]


def test_a_thousand_tenants_validate_and_plan() -> None:
    """The benchmark's file (bench/core/validate.py measures its time; a test asserts no time)."""
    sys.path.insert(0, str(ROOT))
    from bench.core.validate import synthetic_tenants  # noqa: PLC0415 - the bench is not a package on the path

    tenants = parse_tenants(synthetic_tenants(1000), "bench.yaml")
    dev = plan_environment(tenants, "dev")
    assert len(dev.tenants) == 1000
    assert len(dev.tenants[999].secrets) == 7
    assert dev.tenants[999].secrets["STRIPE_SECRET_KEY"] == ConfigSource(("shared", "stripe_test_key"))
    assert dev.tenants[999].locations["API_TOKEN"] == (15 * 999 + 18, 18)

"""Issue 18: values resolved by the provider at write time, from descriptors that never hold a value, and
written only when their fingerprints are the plan's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenant_secrets.engine.reconcile import desired_fingerprints
from tenant_secrets.engine.resolve_at_write import StaleValueError, TenantsFileLiterals, WriteTimeValues, config_lookup
from tenant_secrets.secret.values import Resolver, UnresolvedValueError, fingerprint_key
from tenant_secrets.tenants_file.source_policy import SourcePolicy
from tenant_secrets.tenants_file.sources import (
    ConfigSource,
    DescriptorError,
    EnvSource,
    GeneratedSource,
    InfisicalSource,
    LiteralSource,
    ValueSource,
    describe,
    described,
)

DERIVATION = bytes(range(32))
FP_KEY = fingerprint_key(DERIVATION)
TENANTS = """\
version: 1
defaults: {storage: infisical, environments: [dev]}
tenants:
  - subdomain: acme
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: env, var: ACME_SENDGRID}
      LEGACY_TOKEN: {from: infisical, path: /legacy/acme, key: TOKEN}
      WEBHOOK_SECRET: {generate: {bytes: 32, encoding: hex}}
      PLAN: {value: fake-literal-canary-0001}
"""
SOURCES: dict[str, ValueSource] = {
    "STRIPE_SECRET_KEY": ConfigSource(("acme", "STRIPE_SECRET_KEY")),
    "SENDGRID_API_KEY": EnvSource("ACME_SENDGRID"),
    "LEGACY_TOKEN": InfisicalSource("/legacy/acme", "TOKEN", None),
    "WEBHOOK_SECRET": GeneratedSource(32, "hex", "1"),
    "PLAN": LiteralSource("fake-literal-canary-0001"),
}
CONFIG = {"acme": {"STRIPE_SECRET_KEY": "fake-config-canary-0001"}}
ENVIRON = {"ACME_SENDGRID": "fake-env-canary-0001"}
INFISICAL = {("dev", "/legacy/acme", "TOKEN"): "fake-infisical-canary-0001"}
POLICY = SourcePolicy(env_names=frozenset({"ACME_SENDGRID"}), shared_folders=frozenset({"/legacy/acme"}), env_entries=1)
HOME = "/tenants/acme"


def writer(tmp_path: Path, *, config: object = None, environ: dict[str, str] | None = None) -> WriteTimeValues:
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(TENANTS)
    resolver = Resolver(
        environment="dev",
        derivation_key=DERIVATION,
        config=config_lookup(json.dumps(config if config is not None else CONFIG)),
        environ=environ if environ is not None else ENVIRON,
        infisical=lambda env, path, key: INFISICAL.get((env, path, key)),
    )
    return WriteTimeValues(resolver, TenantsFileLiterals(tenants, "dev"), FP_KEY, POLICY)


def planned(tmp_path: Path) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """What the program declares: descriptors and fingerprints of the values it resolved."""
    values = {key: writer(tmp_path).resolver.resolve("acme", key, source) for key, source in SOURCES.items()}
    return {key: describe(source) for key, source in SOURCES.items()}, desired_fingerprints("acme", values, FP_KEY)


def test_every_kind_of_source_is_resolved_again_at_write_time_to_the_planned_value(tmp_path: Path) -> None:
    descriptors, declared = planned(tmp_path)
    values = writer(tmp_path).resolve("acme", descriptors, declared, home=HOME)
    assert values["STRIPE_SECRET_KEY"] == "fake-config-canary-0001"
    assert values["SENDGRID_API_KEY"] == "fake-env-canary-0001"
    assert values["LEGACY_TOKEN"] == "fake-infisical-canary-0001"
    assert values["PLAN"] == "fake-literal-canary-0001"
    assert len(values["WEBHOOK_SECRET"]) == 64
    assert desired_fingerprints("acme", values, FP_KEY) == declared


def test_no_descriptor_holds_a_value_not_even_a_literal(tmp_path: Path) -> None:
    descriptors, _ = planned(tmp_path)
    text = json.dumps(descriptors)
    assert "canary" not in text
    assert described(descriptors["PLAN"]) != SOURCES["PLAN"]  # a reference to tenants.yaml, not the literal
    for key in ("STRIPE_SECRET_KEY", "SENDGRID_API_KEY", "LEGACY_TOKEN", "WEBHOOK_SECRET"):
        assert described(descriptors[key]) == SOURCES[key]


def test_a_value_changed_since_the_plan_is_refused_naming_key_and_source_never_the_value(tmp_path: Path) -> None:
    descriptors, declared = planned(tmp_path)
    changed = {"acme": {"STRIPE_SECRET_KEY": "fake-config-canary-0002"}}
    with pytest.raises(StaleValueError) as refused:
        writer(tmp_path, config=changed).resolve("acme", descriptors, declared, home=HOME)
    message = str(refused.value)
    assert message.startswith("acme: STRIPE_SECRET_KEY (stack config secrets.acme.STRIPE_SECRET_KEY) would not be")
    assert "run the preview again" in message and "canary" not in message


def test_a_value_gone_from_its_source_is_named(tmp_path: Path) -> None:
    descriptors, declared = planned(tmp_path)
    with pytest.raises(UnresolvedValueError, match=r"^acme\.SENDGRID_API_KEY: no value at environment variable"):
        writer(tmp_path, environ={}).resolve("acme", descriptors, declared, home=HOME)
    resolver = writer(tmp_path).resolver
    (tmp_path / "tenants.yaml").write_text(TENANTS.replace("      PLAN: {value: fake-literal-canary-0001}\n", ""))
    fresh = WriteTimeValues(resolver, TenantsFileLiterals(tmp_path / "tenants.yaml", "dev"), FP_KEY, POLICY)
    with pytest.raises(UnresolvedValueError, match=r"^acme\.PLAN: tenants.yaml no longer declares a literal"):
        fresh.resolve("acme", descriptors, declared, home=HOME)


def test_a_key_without_a_fingerprint_or_without_a_source_is_stale(tmp_path: Path) -> None:
    descriptors, declared = planned(tmp_path)
    del declared["PLAN"]
    with pytest.raises(StaleValueError, match=r"^acme: PLAN \(its literal in tenants.yaml\)"):
        writer(tmp_path).resolve("acme", descriptors, declared, home=HOME)


@pytest.mark.parametrize("descriptor", [{"from": "vault"}, {"from": "env"}, {"from": "generate", "bytes": "x"}])
def test_a_descriptor_this_version_does_not_write_is_refused(descriptor: dict[str, object]) -> None:
    with pytest.raises(DescriptorError):
        described(descriptor)


def test_the_provider_refuses_a_source_the_stack_does_not_allow_before_reading_any(tmp_path: Path) -> None:
    """Issue 26: a descriptor naming the run's credentials or an unshared folder (a state written before the
    rule, or a check that was bypassed) is refused at write time, and nothing is read from any source."""
    reads: list[str] = []

    def config(path: tuple[str, ...]) -> str:
        reads.append(".".join(path))
        return "fake-config-canary-0001"

    def infisical(_env: str, path: str, _key: str) -> str:
        reads.append(path)
        return "fake-infisical-canary-0001"

    environ = {"ACME_SENDGRID": "fake-env-canary-0001"}
    resolver = Resolver("dev", DERIVATION, config=config, environ=environ, infisical=infisical)
    stolen = {
        "STRIPE_SECRET_KEY": describe(ConfigSource(("acme", "STRIPE_SECRET_KEY"))),
        "A": describe(EnvSource("DATABASE_URL")),
        "B": describe(InfisicalSource("/", "MASTER_ENCRYPTION_KEY", None)),
        "C": describe(InfisicalSource("/payments", "TOKEN", None)),
        "D": describe(EnvSource("FAKE_UNLISTED")),
    }
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(TENANTS)
    writer = WriteTimeValues(resolver, TenantsFileLiterals(tenants, "dev"), FP_KEY, POLICY)
    with pytest.raises(UnresolvedValueError) as refused:
        writer.resolve("acme", stolen, {}, home=HOME)
    message = str(refused.value)
    assert message.startswith("acme: A: reads the environment variable DATABASE_URL, which can never be a value source")
    assert "B: reads the root folder /" in message
    assert "C: reads Infisical /payments, which is neither its own folder (/tenants/acme) nor one" in message
    assert "and 1 more; nothing of this owner was read or written" in message
    assert reads == []

"""Issue 26: the provider resolves values at write time with only the allow-listed environment, and refuses
a source the stack does not allow before it reads any (even one the program's check did not see)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components import providers
from tenant_secrets.engine import contract as c
from tenant_secrets.engine.reconcile import desired_fingerprints
from tenant_secrets.secret.values import Resolver, UnresolvedValueError, fingerprint_key
from tenant_secrets.tenants_file.sources import EnvSource, InfisicalSource, describe

DERIVATION = bytes(range(32)).hex()
FP_KEY = fingerprint_key(bytes.fromhex(DERIVATION))


def folder_provider() -> providers.InfisicalFolderProvider:
    raw = {
        "tenant-secrets:derivationKey": DERIVATION,
        "tenant-secrets:envAllow": json.dumps(["FAKE_LISTED_KEY"]),
        "tenant-secrets:sharedFolders": json.dumps(["/shared/stripe"]),
    }
    provider = providers.InfisicalFolderProvider()
    provider.configure(ConfigureRequest(Config(raw, "tenant-secrets")))
    return provider


def inputs(sources: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    declared = desired_fingerprints("acme", values, FP_KEY)
    return c.FolderInputs("acme", "dev", "/tenants/acme", False, [], declared, sources).props()


@pytest.fixture
def resolvers(monkeypatch: pytest.MonkeyPatch) -> list[Resolver]:
    """Every Resolver the provider builds, and a run environment that holds the provisioner's credentials."""
    monkeypatch.setenv("FAKE_LISTED_KEY", "fake-listed-0001")
    monkeypatch.setenv("DATABASE_URL", "postgresql://fake-provisioner:fake-password@localhost/fake")
    monkeypatch.setenv("INFISICAL_CLIENT_SECRET", "fake-client-secret-0001")
    monkeypatch.setenv("FAKE_UNLISTED_KEY", "fake-unlisted-0001")
    built: list[Resolver] = []

    def recording(**kwargs: Any) -> Resolver:
        built.append(Resolver(**kwargs))
        return built[-1]

    monkeypatch.setattr(providers, "Resolver", recording)
    return built


def test_the_resolver_at_write_time_sees_only_the_allow_listed_variables(resolvers: list[Resolver]) -> None:
    values = folder_provider()._values(
        inputs({"KEY": describe(EnvSource("FAKE_LISTED_KEY"))}, {"KEY": "fake-listed-0001"})
    )
    assert values == {"KEY": "fake-listed-0001"}
    (resolver,) = resolvers
    assert dict(resolver.environ) == {"FAKE_LISTED_KEY": "fake-listed-0001"}


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (EnvSource("DATABASE_URL"), "reads the environment variable DATABASE_URL, which can never be a value source"),
        (
            EnvSource("FAKE_UNLISTED_KEY"),
            "reads the environment variable FAKE_UNLISTED_KEY, which tenant-secrets:envAllow",
        ),
        (InfisicalSource("/", "K", None), "reads the root folder /"),
        (InfisicalSource("/payments", "K", None), "reads Infisical /payments, which is neither its own folder"),
        (InfisicalSource("/tenants/globex", "K", None), "reads Infisical /tenants/globex, which is neither"),
    ],
)
def test_a_source_the_stack_does_not_allow_is_refused_at_write_time(
    resolvers: list[Resolver], source: EnvSource | InfisicalSource, says: str
) -> None:
    with pytest.raises(UnresolvedValueError) as refused:
        folder_provider()._values(inputs({"KEY": describe(source)}, {"KEY": "fake-0001"}))
    assert f"acme: KEY: {says}" in str(refused.value)
    assert "nothing of this owner was read or written" in str(refused.value)

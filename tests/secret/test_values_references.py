"""Issue 13, item 3: a value Infisical would expand on read (`${env.folder.KEY}`) is refused, whatever
its source, so no tenant reads another's secret through its own value and both stores hold the same."""

from __future__ import annotations

import os

import pytest

from infisical_server.data.references import has_references
from tenant_secrets.secret.values import Resolver, UnresolvedValueError
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import TenantsFileError
from tenant_secrets.tenants_file.sources import (
    ConfigSource,
    EnvSource,
    InfisicalSource,
    LiteralSource,
    reference_problem,
)

REFERENCE = "fake-prefix-${dev.tenants.codewiser.STRIPE_SECRET_KEY}"


def resolver(value: str) -> Resolver:
    return Resolver(
        environment="dev",
        derivation_key=os.urandom(32),
        config=lambda _path: value,
        environ={"SUPPLIED": value},
        infisical=lambda _env, _path, _key: value,
    )


@pytest.mark.parametrize(
    ("source", "where"),
    [
        (ConfigSource(("acme", "STRIPE_SECRET_KEY")), "stack config secrets.acme.STRIPE_SECRET_KEY"),
        (EnvSource("SUPPLIED"), "environment variable SUPPLIED"),
        (InfisicalSource("/legacy/acme", "STRIPE", None), "Infisical dev:/legacy/acme/STRIPE"),
        (LiteralSource(REFERENCE), "its literal value"),
    ],
)
def test_a_value_with_a_reference_is_refused_from_every_source(source: object, where: str) -> None:
    with pytest.raises(UnresolvedValueError) as err:
        resolver(REFERENCE).resolve("acme", "STRIPE_SECRET_KEY", source)  # type: ignore[arg-type]
    assert str(err.value).startswith(f"acme.STRIPE_SECRET_KEY ({where}): the value holds an Infisical secret reference")
    assert "codewiser" not in str(err.value)


def test_a_literal_with_a_reference_fails_validation() -> None:
    text = "version: 1\ndefaults: {storage: both, environments: [dev]}\ntenants:\n  - subdomain: acme\n    secrets:\n"
    text += "      X: {value: 'fake-${KEY}'}\n"
    with pytest.raises(TenantsFileError) as err:
        parse_tenants(text)
    assert [(i.line, i.field) for i in err.value.issues] == [(6, "tenants[0].secrets.X.value")]


@pytest.mark.parametrize(
    "value",
    [REFERENCE, "${KEY}", "a${x.y}b", "${}", "$KEY", "${KEY", "{KEY}", "fake-$-{KEY}", "${a b}", "$${KEY}", "plain"],
)
def test_refused_exactly_when_the_server_would_expand(value: str) -> None:
    """The same pattern as the local server's expansion (infisical_server/data/references.py, from Infisical's)."""
    assert (reference_problem(value) is not None) == has_references(value)
    if not has_references(value):
        assert resolver(value).resolve("acme", "K", LiteralSource(value)) == value

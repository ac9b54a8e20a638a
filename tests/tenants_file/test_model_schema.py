"""tenants.schema.json is generated from the model, committed, and agrees with the validator."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tenant_secrets.tenants_file import schema
from tenant_secrets.tenants_file.loader import parse_tenants, read_yaml
from tenant_secrets.tenants_file.model import TenantsFileError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "tenants.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(schema.json_schema())

HEAD = "version: 1\ndefaults:\n  storage: both\n  environments: [dev, prod]\n"


def test_the_committed_schema_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == schema.render(), "tenants.schema.json is stale: run `tenantctl schema`"


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(COMMITTED.read_text()))


def test_tenants_yaml_points_editors_at_the_schema_and_satisfies_it() -> None:
    text = (ROOT / "tenants.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=./tenants.schema.json\n")
    errors = list(VALIDATOR.iter_errors(read_yaml(text, "tenants.yaml").data))
    assert errors == []


@pytest.mark.parametrize(
    "body",
    [
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: config}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: env, var: A_B}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {generate: {}, rotation: 2}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: infisical, path: /legacy/a1, key: K}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      SMTP: {host: {value: h}, port: {value: '1'}}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {decommission: true}\n",
        "platform:\n  hono-api:\n    secrets:\n      X: {value: y}\n",
    ],
)
def test_documents_the_validator_accepts_the_schema_accepts(body: str) -> None:
    parse_tenants(HEAD + body)
    assert VALIDATOR.is_valid(read_yaml(HEAD + body, "t.yaml").data)


@pytest.mark.parametrize(
    "body",
    [
        "tenants:\n  - subdomain: www\n",
        "tenants:\n  - subdomain: a1\n    storge: both\n",
        "tenants:\n  - subdomain: a1\n    storage: vault\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      lower: {from: config}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {from: config, value: y}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: plain text\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      X: {generate: {bytes: 8}}\n",
        "tenants:\n  - subdomain: a1\n    secrets:\n      SMTP: {Host: {value: h}}\n",
        "tenants:\n  - subdomain: a1\n    environments: {dev: {}}\n",
        "platform:\n  tenants: {}\n",
    ],
)
def test_documents_the_validator_refuses_for_one_field_the_schema_refuses(body: str) -> None:
    with pytest.raises(TenantsFileError):
        parse_tenants(HEAD + body)
    assert not VALIDATOR.is_valid(read_yaml(HEAD + body, "t.yaml").data)

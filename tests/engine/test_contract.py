"""The resource contract (tenant_secrets/engine/contract.py) against the program, the providers, the plan and the
engine's own recorded previews: any of them spelling a field or type its own way fails here."""

from __future__ import annotations

import ast
import glob
import json
from pathlib import Path
from typing import Any

import pytest

from components import resources
from tenant_secrets.engine import contract as c

ROOT = Path(__file__).resolve().parents[2]
PREVIEWS = sorted(glob.glob(str(ROOT / "tests/fixtures/previews/*.json")))
ENGINE_PROPERTIES = {"__provider"}  # the dynamic-provider host's own input and output
WIRE_NAMES = {
    value for name, value in vars(c).items() if name.isupper() and isinstance(value, str) and name != "PACKAGE"
}
# The modules that read (subscripts, ``.get``) or build (dict keys) resource properties or plan entries:
# none may spell a property name or type token itself. The plan's modules build their steps and JSON output with
# their own keys, and program.py its stack outputs: none is a resource's property.
READERS = {
    "components/program.py": (True, False),
    "components/providers.py": (True, True),
    "components/resources.py": (True, True),
    "tenant_secrets/engine/reconcile.py": (True, True),
    "tenant_secrets/tenantctl/plan_comment.py": (True, False),
    "tenant_secrets/tenantctl/plan_moves.py": (True, False),
    "tenant_secrets/tenantctl/plan_preview.py": (True, False),
    "tenant_secrets/tenantctl/plan_rows.py": (True, False),
}

RESOURCES: dict[type[resources.PluginResource], c.Schema] = {
    resources.InfisicalFolder: c.FOLDER,
    resources.DatabaseTenant: c.TENANT_ROWS,
    resources.MasterKeyPublication: c.PUBLICATION,
    resources.DatabaseSchema: c.TABLES,
    resources.Registry: c.REGISTRY_SCHEMA,
}


def test_every_resource_type_is_the_contracts() -> None:
    assert {cls.TYPE for cls in RESOURCES} == set(c.SCHEMAS)
    for cls, schema in RESOURCES.items():
        assert schema.token == cls.TYPE
        assert c.resource_type(cls.TYPE) == f"tenant-secrets:index:{schema.token}"
        assert c.dynamic_type(cls.TYPE) == f"pulumi-python:dynamic/tenants:{schema.token}"  # as older states hold


@pytest.mark.parametrize(
    ("inputs", "schema"),
    [
        (c.FolderInputs("acme", "dev", "/tenants/acme", False, ["OLD"], {"A": "fp"}, {"A": {"from": "env"}}), c.FOLDER),
        (c.TenantRowsInputs("acme", False, [], "", "", "acme", {"A": "fp"}, {"A": {"from": "env"}}), c.TENANT_ROWS),
        (c.PublicationInputs("hono-api", "dev", "/hono-api", 1, {"MASTER_ENCRYPTION_KEY": "fp"}), c.PUBLICATION),
        (c.RegistryInputs(["acme"], []), c.REGISTRY_SCHEMA),
    ],
)
def test_the_inputs_the_program_builds_are_the_schemas(inputs: Any, schema: c.Schema) -> None:
    assert list(inputs.props()) == list(schema.inputs)


def test_the_schema_settings_are_the_schema_resources_inputs() -> None:
    settings = c.SchemaSettings("0007", "", True, False, False, 500, None, None, None, None)
    assert set(settings.props(key_version=1, key_versions=["1"])) == set(c.TABLES.inputs)
    assert set(c.SCHEMA_MIGRATES) <= set(c.TABLES.watched)


def test_the_replace_rules_name_inputs_and_the_stores_are_the_plans() -> None:
    for schema in c.SCHEMAS.values():
        assert set(schema.replaces) <= set(schema.inputs), schema.token
        assert set(schema.watched) <= set(schema.inputs), schema.token
    assert c.STORES == {
        c.INFISICAL_FOLDER: "infisical",
        c.MASTER_KEY_PUBLICATION: "infisical",
        c.DATABASE_TENANT: "database",
    }


def _recorded_states() -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path in PREVIEWS:
        for step in json.loads(Path(path).read_text(encoding="utf-8")).get("steps") or []:
            for side in ("oldState", "newState"):
                state = step.get(side) or {}
                kind = str(state.get("type", ""))
                if kind in {c.resource_type(t) for t in c.SCHEMAS} | {c.dynamic_type(t) for t in c.SCHEMAS}:
                    token = c.type_name(kind)
                    for part in ("inputs", "outputs"):
                        found.append((Path(path).name, token, part, state.get(part) or {}))
    return found


def test_the_engines_recorded_previews_hold_the_contracts_fields_only() -> None:
    """The previews tests/e2e/test_review.py records from the real program and engine: every type is the
    contract's, every property a field of that type's schema: no secret value, not even as a secret."""
    states = _recorded_states()
    assert {token for _, token, _, _ in states} == set(c.SCHEMAS)
    for name, token, part, props in states:
        schema = c.SCHEMAS[token]
        allowed = set(getattr(schema, part)) | ENGINE_PROPERTIES
        stray = {p for p in props if p not in allowed}
        assert not stray, f"{name}: {token} {part} {sorted(stray)}"


def test_a_secret_key_is_an_upper_case_name_and_no_bookkeeping_property_is_one() -> None:
    assert c.is_secret_key("STRIPE_SECRET_KEY")
    assert c.is_secret_key("MASTER_ENCRYPTION_KEY_V2")
    assert not c.is_secret_key("Stripe_key")
    assert not c.is_secret_key("__provider")
    assert not c.is_secret_key("")
    assert not c.secret_keys(WIRE_NAMES)


def _spelled(path: str, *, reads: bool, builds: bool) -> list[str]:
    """String constants the contract names that a module uses as a type token, to read a property
    (``reads``: subscripts, ``.get``) or to build a property map (``builds``: dict keys)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        keys: list[ast.expr] = []
        if not reads and isinstance(node, ast.Subscript | ast.Call):
            continue
        if isinstance(node, ast.Subscript):
            keys = [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            keys = node.args[:1]
        elif isinstance(node, ast.Dict) and builds:
            keys = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.keyword) and node.arg in ("module", "name"):
            keys = [node.value]
        found += [
            f"{path}:{k.lineno}: {k.value!r}"
            for k in keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value in WIRE_NAMES
        ]
    return found


@pytest.mark.parametrize(("path", "reads", "builds"), [(p, *how) for p, how in READERS.items()])
def test_no_module_spells_a_property_name_or_type_token_itself(path: str, reads: bool, builds: bool) -> None:
    assert _spelled(path, reads=reads, builds=builds) == []

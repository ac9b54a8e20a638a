"""The floor's Pulumi program: the same resources as the project's program, doing no work.

Per tenant an infisical-like and a database-like resource, each with five secret inputs, a plain
fingerprints map and the bookkeeping inputs the project's resources carry; plus a registry and a
schema resource (the master key versions), under two components. What to declare comes from the
JSON file that config `spec` names (`floor.json`, beside the program), which the benchmark writes:
the tenant count, whether the "change one value" edit is applied, the master key versions and the
active one, and `buckets`: absent, the graph above; set, the graph of issue 29 (`bucketed`), whose
resources `plugin` has served by the provider plugin of bench/floor/plugin.py instead of dynamic
providers (the product's way, decision 0039).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from bench.buckets import assign
from bench.floor import plugin
from bench.floor.providers import NoWorkProvider
from bench.tenants import env_var, stand_in_fingerprints, stand_in_values, subdomain

KEYS = ("API_TOKEN", "PLAN", "SMTP_HOST", "STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET")


class FloorFolder(Resource, module="floor", name="Folder"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class FloorTenant(Resource, module="floor", name="Tenant"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class FloorRegistry(Resource, module="floor", name="Registry"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class FloorSchema(Resource, module="floor", name="Schema"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class FloorBucket(Resource, module="floor", name="Bucket"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class PluginResource(pulumi.CustomResource):
    """A floor resource of type `kind` sent to the provider plugin (bench/floor/plugin.py), not the dynamic host."""

    def __init__(self, kind: str, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(plugin.token(kind), name, props, opts)


DYNAMIC: dict[str, Callable[[str, dict[str, Any], pulumi.ResourceOptions | None], pulumi.CustomResource]] = {
    "Registry": FloorRegistry,
    "Schema": FloorSchema,
    "Bucket": FloorBucket,
}


def declare(
    spec: dict[str, Any], kind: str, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
) -> pulumi.CustomResource:
    """One resource of the graph, served as the spec says: by the dynamic providers, or with `plugin` by the plugin."""
    if spec.get("plugin"):
        return PluginResource(kind, name, props, opts)
    return DYNAMIC[kind](name, props, opts)


def run() -> None:
    """Declare the graph; `main` is the entry point, as the project's (components/program.py)."""
    spec = json.loads((Path.cwd() / (pulumi.Config().get("spec") or "floor.json")).read_text())
    if "buckets" in spec:
        bucketed(spec)
        return
    count, changed = int(spec["tenants"]), bool(spec["changed"])
    owners = [subdomain(i) for i in range(count)]
    infisical, database, schema = _shared(owners, spec)
    folder_fps: dict[str, Any] = {}
    tenant_fps: dict[str, Any] = {}
    for index, owner in enumerate(owners):
        values = stand_in_values(index, changed)
        secret_values = {k: pulumi.Output.secret(v) for k, v in values.items()}
        common = {"owner": owner, "decommission": False, "decommissioned": []}
        folder = FloorFolder(
            f"{owner}-infisical",
            {
                **common,
                "environment": "dev",
                "path": f"/tenants/{owner}",
                "fingerprints": stand_in_fingerprints(owner, values),
                **secret_values,
            },
            pulumi.ResourceOptions(parent=infisical),
        )
        tenant = FloorTenant(
            f"{owner}-database",
            {
                **common,
                "company_id": "",
                "company_name": f"Tenant {index}",
                "table_prefix": "",
                "fingerprints": stand_in_fingerprints(owner, values),
                **secret_values,
            },
            pulumi.ResourceOptions(parent=database, depends_on=[schema]),
        )
        folder_fps[owner] = folder.fingerprints  # type: ignore[attr-defined]
        tenant_fps[owner] = tenant.fingerprints  # type: ignore[attr-defined]
    # the project's components export every resource's fingerprints: so does the floor
    infisical.register_outputs({"fingerprints": pulumi.Output.all(**folder_fps)})
    database.register_outputs({"fingerprints": pulumi.Output.all(**tenant_fps)})
    pulumi.export("infisical_fingerprints", pulumi.Output.all(**folder_fps))
    pulumi.export("database_fingerprints", pulumi.Output.all(**tenant_fps))
    pulumi.export("environment", "dev")
    pulumi.export("tenants", {o: {"storage": ["database", "infisical"], "keys": list(KEYS)} for o in owners})


def sources(index: int) -> dict[str, dict[str, Any]]:
    """A tenant's source descriptors as the project's resources record them (decision 0034), per key."""
    return {
        "API_TOKEN": {"from": "generate", "bytes": 32, "encoding": "base64url", "rotation": "1"},
        "PLAN": {"from": "tenants.yaml"},
        "SMTP_HOST": {"from": "tenants.yaml"},
        "STRIPE_SECRET_KEY": {"from": "env", "var": env_var(index)},
        "WEBHOOK_SIGNING_SECRET": {"from": "generate", "bytes": 32, "encoding": "hex"},
    }


def bucketed(spec: dict[str, Any]) -> None:
    """Issue 29's graph: per store one resource per bucket, holding its tenants' keys.

    `buckets` null: one resource per tenant and store, of the same shape (the B = 1 baseline); a number:
    the stack's fixed bucket count, a tenant in bucket `sha256(subdomain) mod buckets` (bench/buckets.py).
    A bucket's input `tenants` maps each of its tenants to what the project's resource of that tenant
    carries (decision 0034): per key a fingerprint and a source descriptor, never a value, and the
    bookkeeping inputs. With `packed`, a tenant's whole entry is one compact JSON string with sorted keys, as
    the product packs it (tenant_secrets/engine/buckets.py): one property value per tenant, and
    `pulumi preview --diff` decodes the string and marks the changed key inside it. With
    `fingerprint_salt` set (the rotation step here), every fingerprint changes.
    """
    count, changed = int(spec["tenants"]), bool(spec["changed"])
    salt = str(spec.get("fingerprint_salt", ""))
    owners = [subdomain(i) for i in range(count)]
    index_of = {owner: i for i, owner in enumerate(owners)}
    groups = {i: [o] for i, o in enumerate(owners)} if spec["buckets"] is None else assign(owners, spec["buckets"])
    infisical, database, schema = _shared(owners, spec)
    for bucket, members in sorted(groups.items()):
        folders: dict[str, Any] = {}
        rows: dict[str, Any] = {}
        for owner in members:
            index = index_of[owner]
            fingerprints = stand_in_fingerprints(owner + salt, stand_in_values(index, changed))
            common: dict[str, Any] = {"decommission": False, "fingerprints": fingerprints, "sources": sources(index)}
            folders[owner] = pack({**common, "path": f"/tenants/{owner}"}, spec)
            rows[owner] = pack(
                {**common, "company_id": "", "company_name": f"Tenant {index}", "table_prefix": ""}, spec
            )
        name = members[0] if spec["buckets"] is None else f"bucket-{bucket:05d}"
        declare(
            spec,
            "Bucket",
            f"{name}-infisical",
            {"environment": "dev", "bucket": bucket, "tenants": folders, "decommissioned": []},
            pulumi.ResourceOptions(parent=infisical),
        )
        declare(
            spec,
            "Bucket",
            f"{name}-database",
            {"bucket": bucket, "tenants": rows, "decommissioned": []},
            pulumi.ResourceOptions(parent=database, depends_on=[schema]),
        )
    # as the project's program with buckets: no per-tenant map in the components' or the stack's outputs
    # (decision 0053), the plain counts only
    infisical.register_outputs({})
    database.register_outputs({})
    pulumi.export("environment", "dev")
    pulumi.export("counts", {"tenants": count, "buckets": len(groups)})


def pack(entry: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A tenant's entry in its bucket: with `packed`, one compact JSON string with sorted keys, as the product's
    (tenant_secrets/engine/buckets.py); else the object itself, one property value per key and property."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":")) if spec.get("packed") else entry


def _shared(owners: list[str], spec: dict[str, Any]) -> tuple[pulumi.ComponentResource, pulumi.ComponentResource, Any]:
    """What every floor graph declares besides the tenants: the registry, the two components, the schema."""
    declare(spec, "Registry", "registry", {"owners": owners, "decommissioned": []})
    infisical = pulumi.ComponentResource("bench:floor:InfisicalSecrets", "infisical")
    database = pulumi.ComponentResource("bench:floor:DatabaseSecrets", "database")
    schema = declare(
        spec,
        "Schema",
        "database-schema",
        {
            "schema_version": "floor",
            "table_prefix": "",
            "create_companies": True,
            "key_version": int(spec["key_version"]),
            "key_versions": sorted(spec["keyring"]),
            "rows_rotated": None,
        },
        pulumi.ResourceOptions(parent=database),
    )
    return infisical, database, schema


async def main() -> None:
    """The project's entry point, the same way: let the registrations start before the SDK's final wait."""
    run()
    await asyncio.sleep(0)

"""The floor's Pulumi program: the same resources as the project's program, doing no work.

Per tenant an infisical-like and a database-like resource, each with five secret inputs, a plain
fingerprints map and the bookkeeping inputs the project's resources carry; plus a registry and a
schema resource (the master key versions), under two components. What to declare comes from the
JSON file that config `spec` names (`floor.json`, beside the program), which the benchmark writes:
the tenant count, whether the "change one value" edit is applied, the master key versions and the
active one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from bench.floor.providers import NoWorkProvider
from bench.tenants import stand_in_fingerprints, stand_in_values, subdomain

KEYS = ("API_TOKEN", "PLAN", "SMTP_HOST", "STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET")


class FloorFolder(Resource, module="floor", name="Folder"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class FloorTenant(Resource, module="floor", name="Tenant"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


class FloorRegistry(Resource, module="floor", name="Registry"):
    def __init__(self, name: str, props: dict[str, Any]) -> None:
        super().__init__(NoWorkProvider(), name, props)


class FloorSchema(Resource, module="floor", name="Schema"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoWorkProvider(), name, props, opts)


def run() -> None:
    """Declare the graph; `main` is the entry point, as the project's (components/program.py)."""
    spec = json.loads((Path.cwd() / (pulumi.Config().get("spec") or "floor.json")).read_text())
    count, changed = int(spec["tenants"]), bool(spec["changed"])
    key_version = int(spec["key_version"])
    owners = [subdomain(i) for i in range(count)]
    FloorRegistry("registry", {"owners": owners, "decommissioned": []})
    infisical = pulumi.ComponentResource("bench:floor:InfisicalSecrets", "infisical")
    database = pulumi.ComponentResource("bench:floor:DatabaseSecrets", "database")
    schema = FloorSchema(
        "database-schema",
        {
            "schema_version": "floor",
            "table_prefix": "",
            "create_companies": True,
            "key_version": key_version,
            "key_versions": sorted(spec["keyring"]),
            "rows_rotated": None,
        },
        pulumi.ResourceOptions(parent=database),
    )
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


async def main() -> None:
    """The project's entry point, the same way: let the registrations start before the SDK's final wait."""
    run()
    await asyncio.sleep(0)

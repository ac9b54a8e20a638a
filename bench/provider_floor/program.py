"""The Pulumi program: N folders under one component, served by the dynamic provider or the plugin.

What to declare comes from `floor.json` beside the program, which the benchmark writes: the count,
the mode (`dynamic` or `plugin`), whether the one-value edit is applied, optionally folders to adopt
with the `import` option, and whether the plugin's folders alias the dynamic type (a migration). The
inputs and exports are the project's folder's shape and the same in both modes; only the resource
class differs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pulumi

from bench.provider_floor import store
from bench.provider_floor.dynamic import DYNAMIC_TOKEN, DynamicFolder
from bench.provider_floor.plugin import TOKEN
from bench.tenants import stand_in_fingerprints, stand_in_values, subdomain


class PluginFolder(pulumi.CustomResource):
    """The same inputs, sent to the `floorplug` provider plugin instead of the dynamic-provider host."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TOKEN, name, props, opts)


def inputs(index: int, changed: bool) -> dict[str, Any]:
    """One folder's inputs: the plain bookkeeping the project's folder carries, and five secret values."""
    owner = subdomain(index)
    secrets = stand_in_values(index, changed)
    return {
        "owner": owner,
        "environment": "dev",
        "path": f"/tenants/{owner}",
        "decommission": False,
        "decommissioned": [],
        "unbound": [],
        "fingerprints": stand_in_fingerprints(owner, secrets),
        **{k: pulumi.Output.secret(v) for k, v in secrets.items()},
    }


def run() -> None:
    spec = json.loads((Path.cwd() / "floor.json").read_text())
    count, changed, mode = int(spec["tenants"]), bool(spec["changed"]), str(spec["mode"])
    folder_class = PluginFolder if mode == "plugin" else DynamicFolder
    parent = pulumi.ComponentResource("bench:floor:InfisicalSecrets", "infisical")
    fps: dict[str, Any] = {}
    for index in range(count):
        owner = subdomain(index)
        imported = spec.get("import", {}).get(owner)
        # a stack made with the dynamic provider, moved to the plugin: the old type is an alias
        aliases = [pulumi.Alias(type_=DYNAMIC_TOKEN)] if mode == "plugin" and spec.get("alias_dynamic") else None
        opts = pulumi.ResourceOptions(parent=parent, import_=imported, aliases=aliases)
        folder = folder_class(f"{owner}-infisical", inputs(index, changed), opts)
        fps[owner] = folder.fingerprints  # type: ignore[union-attr]
    parent.register_outputs({"fingerprints": pulumi.Output.all(**fps)})
    pulumi.export("infisical_fingerprints", pulumi.Output.all(**fps))
    pulumi.export("mode", mode)
    pulumi.export("keys", list(store.KEYS))


async def main() -> None:
    """The project's entry point (decision 0019): let the registrations start before the SDK's final wait."""
    run()
    await asyncio.sleep(0)

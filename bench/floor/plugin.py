"""The bucketed floor (issue 29) served by a provider plugin that does no work, with a detailed diff.

    python -m bench.floor.plugin <engine address>     # what the engine starts

The product serves its resources through a provider plugin (decision 0039), not dynamic providers, so
the floor's figures for buckets (decision 0053) hold for the product only if they hold here too. The
design `floor-b<B>-packed-plugin` (bench/designs.py) writes an executable `pulumi-resource-floorbuckets`
into the project's `plugins/` folder and names it in Pulumi.yaml, as bench/provider_floor does
(decision 0038); the program (bench/floor/program.py) declares the registry, the schema and the buckets
with this package's type tokens.

`diff` names what a reviewer must see, and no more: per tenant of a bucket's `tenants` map that was
added, removed or changed, `tenants.<subdomain>` (the product's paths, components/buckets.py: a packed
entry is one JSON string, which the CLI decodes, marking the changed key inside it); a tenant entry that
is an object (the unpacked variant), `tenants.<subdomain>.<property>` per property that changed; any
other property whole. create and update echo the inputs as outputs; read returns the
recorded state. Nothing is written anywhere: this is the engine's cost of a plugin, the floor.
"""

from __future__ import annotations

import sys
from typing import Any

from pulumi.provider.experimental import provider as p
from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.server import main as serve

from bench.provider_floor.plugin import plain

PACKAGE = "floorbuckets"
VERSION = "0.1.0"
KINDS = ("Registry", "Schema", "Bucket")
"""The types the plugin serves, `floorbuckets:index:<kind>`: every custom resource of the bucketed floor."""
Props = dict[str, PropertyValue]


def token(kind: str) -> str:
    return f"{PACKAGE}:index:{kind}"


def _kind(old: object, new: object) -> p.PropertyDiff:
    """ADD, DELETE or UPDATE, against the old inputs (the state holds them: outputs echo inputs)."""
    if old is None:
        kind = p.PropertyDiffKind.ADD
    elif new is None:
        kind = p.PropertyDiffKind.DELETE
    else:
        kind = p.PropertyDiffKind.UPDATE
    return p.PropertyDiff(kind, input_diff=True)


def detailed_diff(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, p.PropertyDiff]:
    """Property path -> change: a bucket's tenants entry by entry and property by property, the rest whole.

    A changed tenant is named, never an unchanged one, so that a bucket of hundreds of tenants shows only the
    changed tenants; an unpacked entry with the properties that changed. A path segment is the subdomain as it
    is (`a-b`): the engine's property paths split on `.` and `[` only.
    """
    out: dict[str, p.PropertyDiff] = {}
    for name in sorted(set(olds) | set(news)):
        old, new = olds.get(name), news.get(name)
        if old == new:
            continue
        if name == "tenants" and isinstance(old, dict) and isinstance(new, dict):
            for tenant in sorted(set(old) | set(new)):
                before, after = old.get(tenant), new.get(tenant)
                if before == after:
                    continue
                if isinstance(before, dict) and isinstance(after, dict):
                    for prop in sorted(set(before) | set(after)):
                        if before.get(prop) != after.get(prop):
                            out[f"tenants.{tenant}.{prop}"] = _kind(before.get(prop), after.get(prop))
                else:
                    out[f"tenants.{tenant}"] = _kind(before, after)
        else:
            out[name] = _kind(old, new)
    return out


def _plain_map(props: Props) -> dict[str, Any]:
    return {name: plain(value) for name, value in props.items()}


class FloorBucketsProvider(p.Provider):
    """Check passes; diff is detailed; create, update, read and delete do nothing but answer."""

    async def configure(self, request: p.ConfigureRequest) -> p.ConfigureResponse:
        """No preview of create or update, as the product's plugin (components/plugin.py): a preview costs the
        engine the same calls, and a changed resource's outputs are unknown in it."""
        return p.ConfigureResponse(accept_secrets=True, supports_preview=False)

    async def check(self, request: p.CheckRequest) -> p.CheckResponse:
        return p.CheckResponse(inputs=request.new_inputs)

    async def diff(self, request: p.DiffRequest) -> p.DiffResponse:
        detailed = detailed_diff(_plain_map(request.old_state), _plain_map(request.new_inputs))
        return p.DiffResponse(
            changes=bool(detailed),
            diffs=sorted({path.split(".", 1)[0] for path in detailed}),
            detailed_diff=detailed,
        )

    async def create(self, request: p.CreateRequest) -> p.CreateResponse:
        """The id is the resource's name, unique in the floor's stack."""
        return p.CreateResponse(resource_id=request.urn.rsplit("::", 1)[-1], properties=request.properties)

    async def update(self, request: p.UpdateRequest) -> p.UpdateResponse:
        return p.UpdateResponse(properties=request.news)

    async def read(self, request: p.ReadRequest) -> p.ReadResponse:
        """What the state recorded: the floor has no store whose drift a refresh could find."""
        return p.ReadResponse(resource_id=request.resource_id, properties=request.properties, inputs=request.inputs)

    async def delete(self, request: p.DeleteRequest) -> None:
        """Nothing to remove: the floor keeps nothing outside the state."""


def main() -> None:
    serve(sys.argv[1:], VERSION, FloorBucketsProvider())


if __name__ == "__main__":
    main()

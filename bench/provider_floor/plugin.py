"""(b) The floor's folder as a provider plugin, with the SDK's provider framework.

    python -m bench.provider_floor.plugin <engine address>     # what the engine starts

The engine finds it as `pulumi-resource-floorplug`, an executable the benchmark writes into the
project's `plugins/` folder and names in Pulumi.yaml (`plugins: providers: [{name, path}]`): no
registry, no `pulumi plugin install`. `diff` reports a detailed diff: `fingerprints.<KEY>` and the
secret input `<KEY>` per changed key, each top-level plain input that changed, and `environment` or
`path` as replacing. `read` returns the recorded plain inputs, so `pulumi import` and
`pulumi refresh` work; the secret values are never read back (their fingerprints say whether they
match).

The framework serves each call as a coroutine on one event loop: a blocking call would serialize
them all, so the write runs in the loop's default thread pool (`asyncio.to_thread`), as the
project's synchronous clients would have to (min(32, CPUs + 4) threads by default).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

from pulumi.provider.experimental import provider as p
from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.server import main as serve

from bench.provider_floor import store

PACKAGE = "floorplug"
VERSION = "0.1.0"
TOKEN = f"{PACKAGE}:index:Folder"
Props = dict[str, PropertyValue]


def plain(value: PropertyValue | None) -> Any:
    """The Python value of a property, secrets unwrapped (only for the plain inputs and comparisons)."""
    if value is None:
        return None
    inner = value.value
    if isinstance(inner, Mapping):
        return {k: plain(v) for k, v in inner.items()}
    if isinstance(inner, tuple):
        return [plain(v) for v in inner]
    return inner


def wrap(value: Any) -> PropertyValue:
    """A plain Python value (from the local store) as a property value."""
    if isinstance(value, Mapping):
        return PropertyValue({k: wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return PropertyValue([wrap(v) for v in value])
    return PropertyValue(float(value) if isinstance(value, int) and not isinstance(value, bool) else value)


def _key_kind(old: object, new: object, *, replace: bool = False) -> p.PropertyDiff:
    if old is None:
        kind = p.PropertyDiffKind.ADD_REPLACE if replace else p.PropertyDiffKind.ADD
    elif new is None:
        kind = p.PropertyDiffKind.DELETE_REPLACE if replace else p.PropertyDiffKind.DELETE
    else:
        kind = p.PropertyDiffKind.UPDATE_REPLACE if replace else p.PropertyDiffKind.UPDATE
    return p.PropertyDiff(kind, input_diff=True)


def detailed_diff(olds: Props, news: Props) -> dict[str, p.PropertyDiff]:
    """Per key of the fingerprints map (and its secret input), per other plain input."""
    out: dict[str, p.PropertyDiff] = {}
    old_fps, new_fps = plain(olds.get("fingerprints")) or {}, plain(news.get("fingerprints")) or {}
    for key in sorted(set(old_fps) | set(new_fps)):
        if old_fps.get(key) != new_fps.get(key):
            out[f"fingerprints.{key}"] = _key_kind(old_fps.get(key), new_fps.get(key))
            out[key] = _key_kind(old_fps.get(key), new_fps.get(key))
    for name in store.PLAIN:
        old, new = plain(olds.get(name)), plain(news.get(name))
        if name != "fingerprints" and old != new:
            out[name] = _key_kind(old, new, replace=name in store.REPLACES)
    return out


class FolderProvider(p.Provider):
    """Check passes; diff is detailed; create, update and delete do the trivial local write."""

    async def get_schema(self, request: p.GetSchemaRequest) -> p.GetSchemaResponse:
        string = {"type": "string"}
        strings = {"type": "array", "items": string}
        properties = {
            "owner": string,
            "environment": string,
            "path": string,
            "decommission": {"type": "boolean"},
            "decommissioned": strings,
            "unbound": strings,
            "fingerprints": {"type": "object", "additionalProperties": string},
            **{key: {**string, "secret": True} for key in store.KEYS},
        }
        resource = {"inputProperties": properties, "properties": properties}
        schema = {"name": PACKAGE, "version": VERSION, "resources": {TOKEN: resource}}
        return p.GetSchemaResponse(json.dumps(schema))

    async def check(self, request: p.CheckRequest) -> p.CheckResponse:
        return p.CheckResponse(inputs=request.new_inputs)

    async def diff(self, request: p.DiffRequest) -> p.DiffResponse:
        detailed = detailed_diff(request.old_state, request.new_inputs)
        replaces = [name for name in store.REPLACES if name in detailed]
        return p.DiffResponse(
            changes=bool(detailed),
            replaces=replaces,
            diffs=sorted({path.split(".", 1)[0] for path in detailed}),
            detailed_diff=detailed,
        )

    async def create(self, request: p.CreateRequest) -> p.CreateResponse:
        props = {k: plain(v) for k, v in request.properties.items() if k in store.PLAIN}
        resource_id = store.resource_id(props)
        if not request.preview:
            await asyncio.to_thread(store.write, resource_id, props)
        return p.CreateResponse(resource_id=resource_id, properties=request.properties)

    async def update(self, request: p.UpdateRequest) -> p.UpdateResponse:
        if not request.preview:
            props = {k: plain(v) for k, v in request.news.items() if k in store.PLAIN}
            await asyncio.to_thread(store.write, request.resource_id, props)
        return p.UpdateResponse(properties=request.news)

    async def read(self, request: p.ReadRequest) -> p.ReadResponse:
        recorded = store.read(request.resource_id)
        if recorded is None:
            return p.ReadResponse()
        found = {k: wrap(v) for k, v in recorded.items()}
        return p.ReadResponse(
            resource_id=request.resource_id,
            properties={**request.properties, **found},
            inputs={**request.inputs, **found},
        )

    async def delete(self, request: p.DeleteRequest) -> None:
        store.delete(request.resource_id)


def main() -> None:
    serve(sys.argv[1:], VERSION, FolderProvider())


if __name__ == "__main__":
    main()

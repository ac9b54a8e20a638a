"""(a) The floor's folder as a Python dynamic provider, answering as the project's folder provider does.

`diff` answers "unknown" when the declared inputs changed, so that the engine diffs the inputs itself
and names the keys (tenant_secrets/engine/reconcile.py `diff_verdict`), "changed" with the replacing inputs
when the environment or path moved, and "no change" otherwise.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from bench.provider_floor import store

PROVIDER_KEY = "__provider"
DYNAMIC_TOKEN = "pulumi-python:dynamic/floor:Folder"  # noqa: S105 - the type token of DynamicFolder


def _props(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


class FolderProvider(ResourceProvider):
    """No fields: the SDK pickles it into every resource's state."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in store.REPLACES if olds.get(k) != news.get(k)]
        if replaces:
            return DiffResult(changes=True, replaces=replaces)
        changed = any(olds.get(k) != news.get(k) for k in store.PLAIN)
        return DiffResult(changes=None if changed else False, replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        resource_id = store.resource_id(props)
        store.write(resource_id, props)
        return CreateResult(resource_id, _props(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        recorded = store.read(id_)
        return ReadResult(id_ if recorded is not None else None, {**_props(props), **(recorded or {})})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        store.write(id_, news)
        return UpdateResult(_props(news))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        store.delete(id_)


class DynamicFolder(Resource, module="floor", name="Folder"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FolderProvider(), name, props, opts)

"""Dynamic providers that do nothing: what the engine costs for a resource, and no more.

They mirror the methods the project's providers implement (check, diff, create, update), answer at
once and return their inputs as outputs, so a resource's state is the same shape as the project's.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

PROVIDER_KEY = "__provider"


def _props(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


class NoWorkProvider(ResourceProvider):
    """check passes, diff compares inputs, create and update echo them."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=_props(olds) != _props(news), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(str(props.get("owner", "floor")), _props(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(_props(news))

"""The provider plugin's two guards of issue 26 (High 1), as the engine meets them (no engine, no store): a
stack holding the unfinished-reshard marker is refused before any resource is checked, and a delete the
provider was not told to make reaches no store."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from pulumi.dynamic import CreateResult
from pulumi.provider.experimental import provider as p

from components import plugin, providers
from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.stack import reshard_marker

P = "urn:pulumi:prod-03::tenant-secrets::"
PROVIDER = P + "pulumi:providers:tenant-secrets::tenant-secrets"
REGISTRY = P + "tenant-secrets:index:Registry::registry"
DECLARED = P + "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseTenant::alpha-database"
MOVED = P + "tenant-secrets:index:DatabaseTenant::alpha-database"
FINISH = "tenantctl reshard --environment prod --from 1 --to 3"


def props(**values: Any) -> dict[str, Any]:
    return plugin.wrap_map(values)


def test_an_up_or_preview_of_a_stack_in_an_unfinished_reshard_is_refused_in_check_config() -> None:
    provider = plugin.TenantSecretsProvider()
    held = props(stack="prod-03", **{reshard_marker.MARKER: FINISH})
    request = p.CheckRequest(PROVIDER, held, props(stack="prod-03"), b"")
    with pytest.raises(providers.ProviderError) as err:
        asyncio.run(provider.check_config(request))
    assert str(err.value).startswith("stack prod-03: a reshard is unfinished")
    assert str(err.value).endswith(f"Finish it first: `{FINISH}`")
    finished = p.CheckRequest(PROVIDER, props(stack="prod-03"), props(stack="prod-03"), b"")
    assert asyncio.run(provider.check_config(finished)).inputs == props(stack="prod-03")


def test_a_refresh_or_destroy_of_a_stack_in_an_unfinished_reshard_is_refused_in_configure() -> None:
    held = props(stack="prod-03", **{reshard_marker.MARKER: FINISH})
    request = p.ConfigureRequest({}, held, accept_secrets=True, accept_resources=False)
    with pytest.raises(providers.ProviderError, match="a reshard is unfinished"):
        asyncio.run(plugin.TenantSecretsProvider().configure(request))


class _Rows(providers.DatabaseTenantProvider):
    deleted: ClassVar[list[str]] = []

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self.deleted.append(props[c.OWNER])


def test_the_stray_twin_of_a_declared_tenant_is_never_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a reshard killed between its steps, the engine planned to delete the moved resource while the
    program declared it under its component: the provider refuses, and no store is touched."""
    monkeypatch.setitem(plugin._PROVIDERS, c.DATABASE_TENANT, _Rows)
    provider = plugin.TenantSecretsProvider()
    stored = {c.OWNER: "alpha", c.DECOMMISSION: False, c.COMPANY_ID: "fake-company-id", c.TABLE_PREFIX: ""}

    async def an_up_then(urn: str) -> None:
        registry = props(**{c.OWNERS: ["alpha"], c.DECOMMISSIONED: []})
        await provider.check(p.CheckRequest(REGISTRY, {}, registry, b""))
        await provider.check(p.CheckRequest(DECLARED, {}, props(owner="alpha", decommission=False), b""))
        await provider.delete(p.DeleteRequest(urn, "fake-company-id", props(**stored), 60))

    with pytest.raises(providers.ProviderError) as err:
        asyncio.run(an_up_then(MOVED))
    assert str(err.value).startswith("alpha, database rows: not deleted: this stack still declares it")
    assert _Rows.deleted == []
    asyncio.run(an_up_then(DECLARED))  # a replacement the plan shows: deleted
    assert _Rows.deleted == ["alpha"]


BUCKET = P + "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseBucket::bucket-0000-database"


class _Folders(providers.InfisicalFolderProvider):
    calls: ClassVar[list[str]] = []

    def create(self, props: dict[str, Any]) -> Any:
        self.calls.append("create")
        return CreateResult("dev:/tenants/alpha", {})

    def adopt(self, props: dict[str, Any]) -> Any:
        self.calls.append("adopt")
        return CreateResult("dev:/tenants/alpha", {})


def test_in_a_run_that_moves_the_layout_a_tenants_create_adopts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(plugin._PROVIDERS, c.INFISICAL_FOLDER, _Folders)
    folder = P + "tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalFolder::alpha-infisical"

    async def a_run(old: dict[str, Any], new: dict[str, Any]) -> None:
        provider = plugin.TenantSecretsProvider()
        await provider.check_config(p.CheckRequest(PROVIDER, props(**old), props(**new), b""))
        await provider.create(p.CreateRequest(folder, props(owner="alpha"), 60, False))

    _Folders.calls.clear()
    asyncio.run(a_run({"stack": "prod-03", "buckets": "2"}, {"stack": "prod-03"}))  # the way back
    asyncio.run(a_run({"stack": "prod-03"}, {"stack": "prod-03"}))  # a tenant added, no move
    assert _Folders.calls == ["adopt", "create"]


def test_a_run_that_sets_changes_or_removes_the_bucket_count_is_a_move() -> None:
    stack = {c.PROVIDER_STACK: "prod-03"}
    assert plugin.moves_layout(stack, {**stack, c.PROVIDER_BUCKETS: "16"})  # set
    assert plugin.moves_layout({**stack, c.PROVIDER_BUCKETS: "16"}, {**stack, c.PROVIDER_BUCKETS: "17"})  # changed
    assert plugin.moves_layout({**stack, c.PROVIDER_BUCKETS: "16"}, stack)  # removed
    assert not plugin.moves_layout({**stack, c.PROVIDER_BUCKETS: "16"}, {**stack, c.PROVIDER_BUCKETS: "16"})
    assert not plugin.moves_layout({}, {**stack, c.PROVIDER_BUCKETS: "16"})  # a new stack: nothing to move


def test_the_first_run_after_a_reshard_moved_tenants_in_is_a_move_and_the_next_is_not() -> None:
    """`tenantctl reshard` records the arrivals on the destination's provider (its old inputs in `CheckConfig`);
    that run adopts, and records the program's inputs, which never hold them."""
    stack = {c.PROVIDER_STACK: "prod-02", c.PROVIDER_BUCKETS: "2"}
    arrived = {**stack, reshard_marker.ARRIVALS: {"bravo": "prod"}}
    assert plugin.moves_layout(arrived, stack)
    assert not plugin.moves_layout(stack, stack)


def test_a_tenants_own_rows_held_by_a_bucket_of_the_run_are_forgotten_not_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(plugin._PROVIDERS, c.DATABASE_TENANT, _Rows)
    provider = plugin.TenantSecretsProvider()
    stored = {c.OWNER: "alpha", c.DECOMMISSION: False, c.COMPANY_ID: "fake-company-id", c.TABLE_PREFIX: ""}

    async def a_move() -> None:
        await provider.check(p.CheckRequest(REGISTRY, {}, props(**{c.OWNERS: ["alpha"], c.DECOMMISSIONED: []}), b""))
        alpha = {"alpha": {c.OWNER: "alpha", c.DECOMMISSION: False}}
        bucket = props(**b.join(b.DATABASE, alpha, {c.TABLE_PREFIX: ""}))
        await provider.check(p.CheckRequest(BUCKET, {}, bucket, b""))
        await provider.delete(p.DeleteRequest(DECLARED, "fake-company-id", props(**stored), 60))

    _Rows.deleted.clear()
    asyncio.run(a_move())
    assert _Rows.deleted == []

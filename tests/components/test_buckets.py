"""A bucket's provider as the engine receives its answers (no engine, no store): each tenant decided by its own
provider, a preview that names only the changed tenants, a write of only those, and a failure of one tenant
that keeps the others' new state (issue 29)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, UpdateResult
from pulumi.provider.experimental import provider as p
from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.runtime.proto import provider_pb2, status_pb2

from components import plugin, providers
from components.buckets import BucketProvider, PartialFailure
from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.engine import deletes
from tests.components.test_providers import VALUES, folder_inputs
from tests.engine.test_deletes import refusal

STACK = "urn:pulumi:dev::tenant-secrets::"
BUCKET_URN = f"{STACK}tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalBucket::bucket-0001-infisical"
OWNERS = ("acme", "bravo", "charlie-co")


def tenant_inputs(owner: str, values: Mapping[str, str] = VALUES, /, **over: Any) -> dict[str, Any]:
    return folder_inputs(values, owner=owner, **over)


def tenant_outputs(owner: str, values: Mapping[str, str] = VALUES) -> dict[str, Any]:
    """What InfisicalFolderProvider._write records after writing ``values``."""
    written = tenant_inputs(owner, values)[c.DECLARED_FINGERPRINTS]
    outs = {c.OWNER: owner, c.ENVIRONMENT: "dev", c.PATH: f"/tenants/{owner}", c.DECOMMISSION: False}
    return {**outs, c.CREATED_FOLDER: True, c.RECORDED_FINGERPRINTS: written, c.WRITTEN_FINGERPRINTS: written}


def bucket(tenants: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return b.join(b.INFISICAL, tenants, {c.ENVIRONMENT: "dev"})


def inputs(**changed: Mapping[str, Any]) -> dict[str, Any]:
    return bucket({owner: tenant_inputs(owner) for owner in OWNERS} | changed)


def state(**changed: Mapping[str, Any]) -> dict[str, Any]:
    return bucket({owner: tenant_outputs(owner) for owner in OWNERS} | changed)


def diff(old_inputs: dict[str, Any], old_state: dict[str, Any], news: dict[str, Any]) -> p.DiffResponse:
    async def call() -> p.DiffResponse:
        plugin._OLD_INPUTS.set(plugin.wrap_map(old_inputs))
        request = p.DiffRequest(
            BUCKET_URN, "bucket-0001-infisical", plugin.wrap_map(old_state), plugin.wrap_map(news), []
        )
        return await plugin.TenantSecretsProvider().diff(request)

    return asyncio.run(call())


def named(response: p.DiffResponse) -> dict[str, p.PropertyDiffKind]:
    return {path: d.kind for path, d in (response.detailed_diff or {}).items()}


CHANGED = {**VALUES, "WEBHOOK_SECRET": "fake-webhook-0002"}


def test_nothing_changed_is_no_change() -> None:
    assert diff(inputs(), state(), inputs()).changes is False


def detailed(response: p.DiffResponse) -> dict[str, tuple[p.PropertyDiffKind, bool]]:
    return {path: (d.kind, d.input_diff) for path, d in (response.detailed_diff or {}).items()}


def test_a_changed_value_names_its_tenant_only_shown_against_its_old_inputs() -> None:
    response = diff(inputs(), state(), inputs(bravo=tenant_inputs("bravo", CHANGED)))
    assert response.changes is True
    # the engine decodes the entry's JSON and shows the key that changed in it
    assert detailed(response) == {"tenants.bravo": (p.PropertyDiffKind.UPDATE, True)}
    assert response.diffs == [c.TENANTS]
    assert response.replaces == []


def test_drift_of_one_tenant_is_named_under_it_against_the_recorded_outputs() -> None:
    drifted = tenant_outputs("charlie-co") | {c.RECORDED_FINGERPRINTS: {**VALUES, "STRIPE_SECRET_KEY": "by-hand"}}
    response = diff(inputs(), state(**{"charlie-co": drifted}), inputs())
    assert detailed(response) == {'tenants["charlie-co"]': (p.PropertyDiffKind.UPDATE, False)}


def test_a_tenant_added_or_removed_is_the_whole_tenant() -> None:
    added = inputs(delta=tenant_inputs("delta"))
    assert named(diff(inputs(), state(), added)) == {"tenants.delta": p.PropertyDiffKind.ADD}
    fewer = bucket({owner: tenant_inputs(owner) for owner in ("acme", "bravo")})
    assert named(diff(inputs(), state(), fewer)) == {'tenants["charlie-co"]': p.PropertyDiffKind.DELETE}


def test_a_new_environment_replaces_the_bucket() -> None:
    moved = {**inputs(), c.ENVIRONMENT: "prod"}
    response = diff(inputs(), state(), moved)
    assert response.replaces == [c.ENVIRONMENT]
    assert response.delete_before_replace is True
    assert named(response)[c.ENVIRONMENT] == p.PropertyDiffKind.UPDATE_REPLACE


def test_a_check_failure_is_under_its_tenant_and_a_removal_guard_names_no_property() -> None:
    news = inputs(acme=tenant_inputs("acme", **{c.PATH: "/tenants/../hono-api"}), bravo=tenant_inputs("bravo", {}))

    async def call() -> p.CheckResponse:
        request = p.CheckRequest(BUCKET_URN, plugin.wrap_map(inputs()), plugin.wrap_map(news), b"")
        return await plugin.TenantSecretsProvider().check(request)

    found = sorted((f.property, f.reason.split(" is ")[0]) for f in asyncio.run(call()).failures or [])
    assert found == [
        ("", "bravo: STRIPE_SECRET_KEY"),
        ("", "bravo: WEBHOOK_SECRET"),
        ("tenants.acme.path", "acme: the folder path '/tenants/../hono-api'"),
    ]


class Recording(providers.InfisicalFolderProvider):
    """Writes nothing: records which tenants it was asked to write, and fails those in ``failing``."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failing = failing

    def _written(self, call: str, props: dict[str, Any]) -> dict[str, Any]:
        owner = props[c.OWNER]
        self.calls.append((call, owner))
        if owner in self.failing:
            raise providers.ProviderError(f"{owner}, infisical: the server answered 503")
        return tenant_outputs(
            owner,
            CHANGED
            if props[c.DECLARED_FINGERPRINTS] == tenant_inputs(owner, CHANGED)[c.DECLARED_FINGERPRINTS]
            else VALUES,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props[c.PATH], self._written("create", props))

    def adopt(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props[c.PATH], self._written("adopt", props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._written("update", news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self.calls.append(("delete", props[c.OWNER]))

    def retains_on_delete(self) -> bool:
        return False  # a stack that deletes, without a stack config to read it from


def run_update(
    member: Recording,
    olds: dict[str, Any],
    news: dict[str, Any],
    refused: frozenset[str] = frozenset(),
    moved: frozenset[str] = frozenset(),
    *,
    retains: bool = False,
) -> dict[str, Any]:
    provider = BucketProvider(b.INFISICAL, member, ThreadPoolExecutor(4))

    def judge(owner: str, _props: Mapping[str, Any]) -> deletes.Verdict:
        if owner in refused:
            return deletes.Verdict("refuse", f"{owner}, Infisical folder: not deleted")
        return deletes.Verdict("forget", f"{owner}: moved") if owner in moved else deletes.DELETE

    return asyncio.run(provider.update(BUCKET_URN, olds, news, judge, retains=lambda: retains))


def test_an_update_writes_only_the_changed_and_new_tenants_and_deletes_the_gone() -> None:
    member = Recording()
    news = bucket(
        {"acme": tenant_inputs("acme"), "bravo": tenant_inputs("bravo", CHANGED), "delta": tenant_inputs("delta")}
    )
    outs = run_update(member, state(), news)
    assert sorted(member.calls) == [("create", "delta"), ("delete", "charlie-co"), ("update", "bravo")]
    assert b.split(b.INFISICAL, outs) == {
        "acme": tenant_outputs("acme"),
        "bravo": tenant_outputs("bravo", CHANGED),
        "delta": tenant_outputs("delta"),
    }


def test_a_failed_tenant_keeps_its_old_outputs_and_the_others_their_new_ones() -> None:
    member = Recording(failing=frozenset({"bravo", "delta"}))
    news = bucket(
        {
            "acme": tenant_inputs("acme", CHANGED),
            "bravo": tenant_inputs("bravo", CHANGED),
            "charlie-co": tenant_inputs("charlie-co"),
            "delta": tenant_inputs("delta"),
        }
    )
    with pytest.raises(PartialFailure) as failed:
        run_update(member, state(), news)
    assert failed.value.reasons == [
        "bravo, infisical: the server answered 503",
        "delta, infisical: the server answered 503",
    ]
    recorded = b.split(b.INFISICAL, failed.value.outputs)
    assert recorded == {
        "acme": tenant_outputs("acme", CHANGED),  # written: recorded as such
        "bravo": tenant_outputs("bravo"),  # failed: as before, so the next diff still writes it
        "charlie-co": tenant_outputs("charlie-co"),
    }  # delta, new and failed, is not recorded: the next `up` creates it
    again = Recording()
    run_update(again, failed.value.outputs, news)
    assert sorted(again.calls) == [("create", "delta"), ("update", "bravo")]


class Together(Recording):
    """Writes several tenants in one call, as the database's provider does (one transaction)."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        super().__init__(failing)
        self.batches: list[list[str]] = []

    def write_many(
        self, writes: Mapping[str, tuple[Mapping[str, Any] | None, Mapping[str, Any]]]
    ) -> dict[str, dict[str, Any] | Exception]:
        self.batches.append(sorted(writes))
        results: dict[str, dict[str, Any] | Exception] = {}
        for owner, (old, new) in writes.items():
            try:
                results[owner] = self._written("create" if old is None else "update", dict(new))
            except providers.ProviderError as err:
                results[owner] = err
        return results


def test_a_store_that_writes_tenants_together_gets_the_buckets_writes_in_one_call() -> None:
    member = Together(failing=frozenset({"delta"}))
    news = bucket(
        {
            "acme": tenant_inputs("acme"),
            "bravo": tenant_inputs("bravo", CHANGED),
            "charlie-co": tenant_inputs("charlie-co", CHANGED),
            "delta": tenant_inputs("delta"),
        }
    )
    with pytest.raises(PartialFailure) as failed:
        run_update(member, state(), news)
    assert member.batches == [["bravo", "charlie-co", "delta"]]  # the unchanged acme is not written
    assert failed.value.reasons == ["delta, infisical: the server answered 503"]
    assert b.split(b.INFISICAL, failed.value.outputs) == {
        "acme": tenant_outputs("acme"),
        "bravo": tenant_outputs("bravo", CHANGED),
        "charlie-co": tenant_outputs("charlie-co", CHANGED),
    }


def test_a_refused_delete_keeps_the_tenant_and_says_why() -> None:
    news = bucket({owner: tenant_inputs(owner) for owner in ("acme", "bravo")})
    with pytest.raises(PartialFailure) as failed:
        run_update(Recording(), state(), news, refused=frozenset({"charlie-co"}))
    assert failed.value.reasons == ["charlie-co, Infisical folder: not deleted"]
    assert "charlie-co" in b.split(b.INFISICAL, failed.value.outputs)


def test_a_stack_that_retains_forgets_a_gone_tenant_without_deleting_or_refusing() -> None:
    member = Recording()
    news = bucket({owner: tenant_inputs(owner) for owner in ("acme", "bravo")})
    outs = run_update(member, state(), news, refused=frozenset({"charlie-co"}), retains=True)
    assert member.calls == []  # as the engine retains a tenant's own resource: no delete, no guard
    assert sorted(b.split(b.INFISICAL, outs)) == ["acme", "bravo"]


def test_a_partial_failure_reaches_the_engine_as_error_resource_init_failed() -> None:
    outs = state()
    status = plugin.partial_failure_status(PartialFailure("bucket-0001-infisical", outs, ["bravo, infisical: denied"]))
    assert status.details == "bravo, infisical: denied"
    [(name, raw)] = status.trailing_metadata
    assert name == "grpc-status-details-bin"
    decoded = status_pb2.Status.FromString(raw)
    detail = provider_pb2.ErrorResourceInitFailed()
    assert decoded.details[0].Unpack(detail)
    assert (detail.id, list(detail.reasons)) == ("bucket-0001-infisical", ["bravo, infisical: denied"])
    assert plugin.plain_map(PropertyValue.unmarshal_map(detail.properties)) == outs


def test_a_buckets_tenants_are_declared_for_the_delete_guard() -> None:
    run = deletes.RunDeclarations()
    run.saw(BUCKET_URN, c.INFISICAL_BUCKET, inputs())
    run.saw(f"{STACK}tenant-secrets:index:Registry::registry", c.REGISTRY, {c.OWNERS: [*OWNERS, "delta"]})
    props = tenant_outputs("bravo")
    # a tenant that moved to another bucket is still declared: its entry in the old one is not deleted
    assert "still declares it" in str(refusal(f"{BUCKET_URN}/bravo", c.INFISICAL_FOLDER, props, run, destroying=False))
    # a tenant whose storage no longer has this store: deleted
    assert refusal(f"{BUCKET_URN}/delta", c.INFISICAL_FOLDER, tenant_outputs("delta"), run, destroying=False) is None


def test_a_tenant_moved_to_another_resource_is_forgotten_not_deleted() -> None:
    member = Recording()
    news = bucket({owner: tenant_inputs(owner) for owner in ("acme", "bravo")})
    outs = run_update(member, state(), news, moved=frozenset({"charlie-co"}))
    assert member.calls == []  # nothing written, nothing deleted
    assert sorted(b.split(b.INFISICAL, outs)) == ["acme", "bravo"]


def test_in_a_move_a_bucket_adopts_its_tenants_and_its_delete_forgets_the_moved_ones() -> None:
    member = Recording()
    provider = BucketProvider(b.INFISICAL, member, ThreadPoolExecutor(4))
    _, outs = asyncio.run(provider.create(BUCKET_URN, inputs(), moving=True))
    assert sorted(member.calls) == [("adopt", owner) for owner in OWNERS]
    assert sorted(b.split(b.INFISICAL, outs)) == sorted(OWNERS)
    member.calls.clear()
    asyncio.run(provider.update(BUCKET_URN, state(), inputs(delta=tenant_inputs("delta")), _never, moving=True))
    assert member.calls == [("adopt", "delta")]
    member.calls.clear()

    def judge(owner: str, _props: Mapping[str, Any]) -> deletes.Verdict:
        return deletes.Verdict("forget", "moved") if owner != "acme" else deletes.DELETE

    asyncio.run(provider.delete(state(), judge))
    assert member.calls == [("delete", "acme")]


def _never(owner: str, _props: Mapping[str, Any]) -> deletes.Verdict:
    raise AssertionError(f"{owner}: no tenant leaves this bucket")


def test_the_guard_forgets_a_tenant_between_buckets_and_per_tenant_resources_of_the_same_store() -> None:
    other = BUCKET_URN.replace("bucket-0001", "bucket-0002")
    own = f"{STACK}tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalFolder::bravo-infisical"
    run = deletes.RunDeclarations()
    run.saw(f"{STACK}tenant-secrets:index:Registry::registry", c.REGISTRY, {c.OWNERS: list(OWNERS)})
    run.saw(other, c.INFISICAL_BUCKET, bucket({"bravo": tenant_inputs("bravo")}))
    run.saw(own.replace("bravo", "acme"), c.INFISICAL_FOLDER, tenant_inputs("acme"))
    props = tenant_outputs("bravo")
    # bravo left bucket 1 for bucket 2 (a bucket count change); acme left it for its own resource (the way back)
    left = deletes.judge(f"{BUCKET_URN}/bravo", c.INFISICAL_FOLDER, props, run, destroying=False)
    assert (left.action, left.reason) == (
        "forget",
        "bravo, Infisical folder: moved to bucket-0002-infisical, which holds it in this run; nothing deleted",
    )
    back = deletes.judge(f"{BUCKET_URN}/acme", c.INFISICAL_FOLDER, tenant_outputs("acme"), run, destroying=False)
    assert back.action == "forget" and "acme-infisical" in back.reason
    # bravo's own resource, gone when the stack moved to buckets
    assert deletes.judge(own, c.INFISICAL_FOLDER, props, run, destroying=False).action == "forget"


def test_a_bucket_waits_for_the_check_of_a_tenants_new_bucket_before_judging_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bucket count change: the engine may update bucket 1 before the program's later bucket is checked. The
    tenant that left is judged once its new bucket's `Check` arrived: forgotten, nothing deleted. Without that
    `Check` (its store dropped, no other tenant in its new bucket), it is judged as ever once the run is quiet."""
    member = Recording()
    monkeypatch.setitem(plugin._PROVIDERS, c.INFISICAL_FOLDER, lambda: member)
    monkeypatch.setattr(plugin, "QUIET", 0.3)
    count = 4
    mover = next(o for o in OWNERS if b.bucket_of(o, count) != 1)
    home = BUCKET_URN.replace("bucket-0001", f"bucket-{b.bucket_of(mover, count):04d}")
    stayers = bucket({owner: tenant_inputs(owner) for owner in OWNERS if owner != mover})
    registry = f"{STACK}tenant-secrets:index:Registry::registry"

    async def a_run(new_bucket_checked: bool) -> None:
        provider = plugin.TenantSecretsProvider()
        stack = plugin.wrap_map({c.PROVIDER_STACK: "dev", c.PROVIDER_BUCKETS: str(count)})
        await provider.configure(p.ConfigureRequest({}, stack, accept_secrets=True, accept_resources=False))
        await provider.check(p.CheckRequest(registry, {}, plugin.wrap_map({c.OWNERS: list(OWNERS)}), b""))
        await provider.check(p.CheckRequest(BUCKET_URN, plugin.wrap_map(inputs()), plugin.wrap_map(stayers), b""))
        update = p.UpdateRequest(
            BUCKET_URN, "bucket-0001-infisical", plugin.wrap_map(state()), plugin.wrap_map(stayers), 60, [], False
        )
        updating = asyncio.ensure_future(provider.update(update))
        await asyncio.sleep(0.1)
        assert not updating.done()  # waiting for the mover's new bucket
        if new_bucket_checked:
            moved_in = plugin.wrap_map(bucket({mover: tenant_inputs(mover)}))
            await provider.check(p.CheckRequest(home, {}, moved_in, b""))
        await updating

    asyncio.run(a_run(new_bucket_checked=True))
    assert member.calls == []  # forgotten
    asyncio.run(a_run(new_bucket_checked=False))
    assert member.calls == [("delete", mover)]  # its store dropped: deleted, as without buckets

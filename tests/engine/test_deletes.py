"""Which deletes of a tenant's store entry the provider makes (tenant_secrets/engine/deletes.py): only those
it was told to make, whatever the engine's plan asks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.engine.deletes import RunDeclarations, is_destroy, judge

P = "urn:pulumi:prod-03::tenant-secrets::"
DECLARED = P + "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseTenant::alpha-database"
ORPHAN = P + "tenant-secrets:index:DatabaseTenant::alpha-database"
FOLDER = P + "tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalFolder::alpha-infisical"
REGISTRY = P + "tenant-secrets:index:Registry::registry"
ROWS_BUCKET = P + "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseBucket::bucket-0000-database"
FOLDERS_BUCKET = P + "tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalBucket::bucket-0000-infisical"


def refusal(
    urn: str, type_name: str, props: Mapping[str, Any], run: RunDeclarations, *, destroying: bool
) -> str | None:
    """The guard's line when it refuses the delete; None when it deletes or forgets (:func:`judge` says which)."""
    verdict = judge(urn, type_name, props, run, destroying=destroying)
    return verdict.reason if verdict.action == "refuse" else None


def an_up(*owners: str, folders: bool = True) -> RunDeclarations:
    """The declarations of an `up` whose program declares ``owners`` (rows, and folders unless told not)."""
    run = RunDeclarations()
    run.saw(REGISTRY, c.REGISTRY, {c.OWNERS: list(owners), c.DECOMMISSIONED: []})
    for owner in owners:
        run.saw(DECLARED.replace("alpha", owner), c.DATABASE_TENANT, {c.OWNER: owner})
        if folders:
            run.saw(FOLDER.replace("alpha", owner), c.INFISICAL_FOLDER, {c.OWNER: owner})
    return run


def rows(owner: str = "alpha", *, decommission: bool = False) -> dict[str, object]:
    return {c.OWNER: owner, c.DECOMMISSION: decommission, c.COMPANY_ID: "fake-company-id"}


def test_a_resource_that_lost_its_parent_is_not_deleted_while_the_stack_declares_its_owner() -> None:
    """The reported case: after a reshard killed between its steps, the `up` planned to delete the moved
    resource (root-parented) while creating its twin under the component; the delete took every row."""
    refused = refusal(ORPHAN, c.DATABASE_TENANT, rows(), an_up("alpha"), destroying=False)
    assert refused is not None
    assert refused.startswith("alpha, database rows: not deleted: this stack still declares it")
    assert "a reshard was interrupted?" in refused and "\n" not in refused


def test_an_owner_gone_without_its_marker_is_not_deleted_and_a_decommissioned_one_is() -> None:
    refused = refusal(ORPHAN, c.DATABASE_TENANT, rows(), an_up("bravo"), destroying=False)
    assert refused is not None and "without its decommission marker" in refused
    assert refusal(ORPHAN, c.DATABASE_TENANT, rows(decommission=True), an_up("bravo"), destroying=False) is None


def test_on_a_regions_stack_an_owner_gone_without_its_marker_is_refused_naming_the_regions_marker() -> None:
    """The registry declares the stack's region: the line names the marker that deletes there only, and a
    bucket's tenant gone from the region is refused the same way."""
    run = RunDeclarations()
    run.saw(REGISTRY, c.REGISTRY, {c.OWNERS: ["bravo"], c.DECOMMISSIONED: [], c.REGION: "eu"})
    refused = refusal(ORPHAN, c.DATABASE_TENANT, rows(), run, destroying=False)
    assert refused == (
        "alpha, database rows: not deleted: it is gone from region eu in tenants.yaml without its decommission "
        "marker; give its entry `decommission: [eu]` (it deletes in eu only; `decommission: true`: in every "
        "region) and run `pulumi up`"
    )
    in_bucket = refusal(f"{ROWS_BUCKET}/alpha", c.DATABASE_TENANT, rows(), run, destroying=False)
    assert in_bucket is not None and "`decommission: [eu]`" in in_bucket
    without_regions = refusal(ORPHAN, c.DATABASE_TENANT, rows(), an_up("bravo"), destroying=False)
    assert without_regions is not None and "decommission: [" not in without_regions
    assert "`decommission: true` and run `pulumi up`, then remove it" in without_regions


def test_a_replacement_and_a_store_dropped_from_a_declared_owner_are_deleted() -> None:
    assert refusal(DECLARED, c.DATABASE_TENANT, rows(), an_up("alpha"), destroying=False) is None
    dropped = an_up("alpha", folders=False)  # storage: both -> database, reviewed in tenants.yaml
    assert (
        refusal(FOLDER, c.INFISICAL_FOLDER, {c.OWNER: "alpha", c.DECOMMISSION: False}, dropped, destroying=False)
        is None
    )


def test_destroy_deletes_and_a_delete_outside_an_up_or_a_destroy_does_not() -> None:
    nothing_declared = RunDeclarations()
    assert refusal(DECLARED, c.DATABASE_TENANT, rows(), nothing_declared, destroying=True) is None
    refused = refusal(DECLARED, c.DATABASE_TENANT, rows(), nothing_declared, destroying=False)
    assert refused is not None and "outside an `up` of this stack's program and outside `pulumi destroy`" in refused


def test_only_a_tenants_store_entries_are_guarded() -> None:
    schema = P + "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseSchema::database-schema"
    assert refusal(schema, c.DATABASE_SCHEMA, {}, RunDeclarations(), destroying=False) is None


def test_the_engines_command_says_whether_it_is_a_destroy() -> None:
    plugin = ["/usr/bin/python3", "-m", "components.plugin", "127.0.0.1:4000"]
    assert is_destroy([plugin, ["/opt/bin/pulumi", "destroy", "--yes", "--stack", "dev"]])
    assert is_destroy([plugin, ["pulumi", "--non-interactive", "down", "-y"]])
    assert not is_destroy([plugin, ["pulumi", "up", "--yes", "--stack", "destroy"]])
    assert not is_destroy([plugin, ["pulumi", "preview"], ["pulumi", "destroy"]])  # the nearest engine counts
    assert not is_destroy([plugin])


def in_buckets(*owners: str, folders: bool = True) -> RunDeclarations:
    """An `up` whose program declares ``owners`` in bucket 0 of each store (the stack moved to buckets)."""
    run = RunDeclarations()
    run.saw(REGISTRY, c.REGISTRY, {c.OWNERS: list(owners), c.DECOMMISSIONED: []})
    tenants = {owner: {c.OWNER: owner, c.DECOMMISSION: False} for owner in owners}
    run.saw(ROWS_BUCKET, c.DATABASE_BUCKET, b.join(b.DATABASE, tenants, {c.TABLE_PREFIX: ""}))
    if folders:
        run.saw(FOLDERS_BUCKET, c.INFISICAL_BUCKET, b.join(b.INFISICAL, tenants, {c.ENVIRONMENT: "prod"}))
    return run


def test_a_tenants_own_resource_is_forgotten_when_a_bucket_of_the_same_store_holds_it_in_this_run() -> None:
    verdict = judge(DECLARED, c.DATABASE_TENANT, rows(), in_buckets("alpha"), destroying=False)
    assert verdict.action == "forget"
    assert (
        verdict.reason
        == "alpha, database rows: moved to bucket-0000-database, which holds it in this run; nothing deleted"
    )
    assert refusal(DECLARED, c.DATABASE_TENANT, rows(), in_buckets("alpha"), destroying=False) is None


def test_a_bucket_of_the_other_store_does_not_hold_the_entry() -> None:
    """alpha's storage dropped infisical in the same run: its folder is deleted, as without buckets."""
    folder = {c.OWNER: "alpha", c.DECOMMISSION: False}
    assert judge(FOLDER, c.INFISICAL_FOLDER, folder, in_buckets("alpha", folders=False), destroying=False).action == (
        "delete"
    )


def test_a_bucket_that_is_gone_forgets_the_tenants_another_bucket_or_their_own_resource_holds() -> None:
    run = an_up("alpha")  # the way back: alpha's own resources are declared again
    gone = ROWS_BUCKET.replace("0000", "0001")
    assert judge(gone, c.DATABASE_TENANT, rows(), run, destroying=False).action == "forget"
    assert judge(f"{gone}/alpha", c.DATABASE_TENANT, rows(), run, destroying=False).action == "forget"
    moved = in_buckets("alpha")  # a bucket count change: alpha is in bucket 0 now
    assert judge(f"{gone}/alpha", c.DATABASE_TENANT, rows(), moved, destroying=False).action == "forget"
    # a tenant in no resource of the run, and not decommissioned: refused as ever
    refused = judge(f"{gone}/bravo", c.DATABASE_TENANT, rows("bravo"), moved, destroying=False)
    assert refused.action == "refuse" and "without its decommission marker" in refused.reason


def test_a_tenant_still_in_its_own_bucket_is_not_forgotten() -> None:
    """The bucket's own URN holds the tenant: a delete of it there is no move."""
    refused = judge(f"{ROWS_BUCKET}/alpha", c.DATABASE_TENANT, rows(), in_buckets("alpha"), destroying=False)
    assert refused.action == "refuse" and "still declares it" in refused.reason


def test_a_bucket_entry_a_reshard_marked_is_forgotten_naming_its_stack_and_an_unmarked_one_stays_refused() -> None:
    """A tenant gone from a source bucket after `tenantctl reshard` (its recorded entry says `moved_to`) is
    forgotten, in an `up` and in `pulumi destroy` alike: the destination holds it. Its unmarked bucket-mate,
    gone from tenants.yaml without its decommission marker, stays refused."""
    leaving = FOLDERS_BUCKET + "/bravo"
    marked = {c.OWNER: "bravo", c.DECOMMISSION: False, c.MOVED_TO: "prod-02"}
    verdict = judge(leaving, c.INFISICAL_FOLDER, marked, an_up("alpha"), destroying=False)
    assert (verdict.action, verdict.reason) == (
        "forget",
        "bravo, Infisical folder: moved to prod-02 by `tenantctl reshard`; nothing deleted",
    )
    assert judge(FOLDERS_BUCKET, c.INFISICAL_FOLDER, marked, RunDeclarations(), destroying=True).action == "forget"
    unmarked = refusal(ROWS_BUCKET + "/bravo", c.DATABASE_TENANT, rows("bravo"), an_up("alpha"), destroying=False)
    assert unmarked is not None and "without its decommission marker" in unmarked
    # the run's own declarations win over a mark: bravo declared here again, its Infisical store dropped from its
    # storage (reviewed in tenants.yaml), is judged as ever
    again = an_up("alpha", "bravo", folders=False)
    assert judge(leaving, c.INFISICAL_FOLDER, marked, again, destroying=False).action == "delete"

"""Which deletes of a tenant's store entry the provider makes (tenant_secrets/engine/deletes.py): only those
it was told to make, whatever the engine's plan asks."""

from __future__ import annotations

from tenant_secrets.engine import contract as c
from tenant_secrets.engine.deletes import RunDeclarations, is_destroy, refusal

P = "urn:pulumi:prod-03::tenant-secrets::"
DECLARED = P + "tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseTenant::alpha-database"
ORPHAN = P + "tenant-secrets:index:DatabaseTenant::alpha-database"
FOLDER = P + "tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalFolder::alpha-infisical"
REGISTRY = P + "tenant-secrets:index:Registry::registry"


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

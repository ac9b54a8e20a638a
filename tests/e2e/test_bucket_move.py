"""Moving a stack to buckets, between bucket counts, and back, each in one `pulumi up` that writes neither
store (issue 29, docs/decisions/0053-tenants-per-resource.md "Moving a stack, and back"), on the real engine,
PostgreSQL and the local Infisical server, read back with the official SDK.

Five tenants in both stores are first applied one resource per tenant and store. Setting `buckets` to 2: the
plan says each tenant moves and deletes no key; the `up` creates the buckets, which adopt every tenant, and
the engine forgets the per-tenant resources: no write request reaches Infisical, its audit records nothing,
and no row's ciphertext, version, `updated_at` or `xmin` (any write of a row changes it) changes; the next
preview is all `same`. A changed value is then written as ever. 2 -> 3 buckets, and the setting removed, move
the same way. After the way back, a tenant decommissioned still has its folder deleted: the stack made it
(`created_folder` survived two moves). A move stopped after its creates is finished by the next `up`."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets.engine.buckets import assign
from tenant_secrets.tenantctl.plan_comment import render_markdown
from tenant_secrets.tenantctl.plan_preview import parse_preview
from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import BATCH, Step, resources, run_steps, with_error, written

pytestmark = pytest.mark.e2e

TENANTS = ("alpha", "bravo", "charlie", "delta", "echo")


def tenants_file(decommissioned: str = "") -> str:
    lines = ["version: 1", "defaults: {storage: both, environments: [dev]}", "tenants:"]
    for name in TENANTS:
        lines.append(f"  - subdomain: {name}")
        if name == decommissioned:
            lines.append("    decommission: true")
        lines += ["    secrets:", "      STRIPE_SECRET_KEY: {from: config}", "      PLAN: {value: pro}"]
    return "\n".join(lines) + "\n"


def stripe(name: str, version: int) -> str:
    return f"fake-stripe-{name}-move-{version:04d}"


def stores(project: Project) -> dict[str, Any]:
    """What any write changes, of the five tenants (steps.written)."""
    return written(project, TENANTS)


def moves(owners: list[str]) -> list[Row]:
    """The plan of a move: one `move` row per tenant and store, nothing else (no key deleted)."""
    found = [Row(o, "dev", store, "-", "move") for o in owners for store in ("database", "infisical")]
    return sorted(found, key=lambda r: (r.owner, r.store))


def kinds(stack: auto.Stack) -> dict[str, int]:
    """How many resources of each tenant-secrets type the state holds."""
    found: dict[str, int] = {}
    for resource in resources(stack).values():
        name = str(resource["type"]).rsplit(":", 1)[-1]
        if name in ("InfisicalFolder", "DatabaseTenant", "InfisicalBucket", "DatabaseBucket"):
            found[name] = found.get(name, 0) + 1
    return found


def per_tenant_stack(project: Project, master_key: str) -> auto.Stack:
    """The dev stack over the five tenants, one resource per tenant and store until a step sets `buckets`."""
    project.write_tenants(tenants_file())
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        secrets_config={name: {"STRIPE_SECRET_KEY": stripe(name, 1)} for name in TENANTS},
    )
    return stack


def test_a_stack_moves_to_buckets_between_counts_and_back_writing_neither_store(
    project: Project, master_key: str
) -> None:
    two, three = assign(TENANTS, 2), assign(TENANTS, 3)
    number = {name: n for n, names in two.items() for name in names}
    changed_bucket = sorted(name for n, names in three.items() for name in names if number[name] != n)
    assert changed_bucket == ["alpha", "echo"], (two, three)  # to bucket 2; charlie stays in 0, bravo and delta in 1
    stack = per_tenant_stack(project, master_key)
    seen: dict[str, Any] = {}

    def recorded(project: Project, stack: auto.Stack) -> None:
        seen["stores"] = stores(project)

    def laid_out(per_tenant: int, buckets: int) -> Any:
        def check(project: Project, stack: auto.Stack) -> None:
            expected = {
                **({"InfisicalFolder": per_tenant, "DatabaseTenant": per_tenant} if per_tenant else {}),
                **({"InfisicalBucket": buckets, "DatabaseBucket": buckets} if buckets else {}),
            }
            assert kinds(stack) == expected
            after = stores(project)
            assert after == seen["stores"], "a value, ciphertext, version or updated_at was rewritten"

        return check

    def the_comment_says_move(project: Project, stack: auto.Stack) -> None:
        """What the reviewer reads in the pull request: every tenant moves, nothing is deleted."""
        status, document, output = project.preview_json(stack)
        assert status == 0 and document is not None, output
        comment = render_markdown(parse_preview(document, "dev"))
        assert "**5 tenant(s) move to other resources of this stack" in comment, comment
        assert "would be deleted" not in comment and "**delete**" not in comment, comment

    def created_folders(project: Project, stack: auto.Stack) -> None:
        """The per-tenant resources after two moves still record that this stack made each folder."""
        own = [r for r in resources(stack).values() if str(r["type"]).endswith(":InfisicalFolder")]
        assert {r["outputs"]["owner"]: r["outputs"]["created_folder"] for r in own} == dict.fromkeys(TENANTS, True)
        laid_out(len(TENANTS), 0)(project, stack)

    steps = [
        Step("one resource per tenant and store", check=recorded),
        Step(
            "buckets: 2; the plan says every tenant moves, no key is deleted; the up writes neither store",
            settings={"buckets": "2"},
            plan=moves(list(TENANTS)),
            before=the_comment_says_move,
            changes={"create": 4, "delete": 10, "update": 1},  # the update: the provider's bucket count
            writes=0,
            check=laid_out(0, 2),
        ),
        Step("then nothing is left to change", preview={}, up=False),
        Step(
            "a value changed after the move is written by its bucket, as ever",
            config={("bravo", "STRIPE_SECRET_KEY"): stripe("bravo", 2)},
            plan=[
                Row("bravo", "dev", "database", "STRIPE_SECRET_KEY", "update"),
                Row("bravo", "dev", "infisical", "STRIPE_SECRET_KEY", "update"),
            ],
            changes={"update": 2},
            sends={f"PATCH {BATCH}": 1},
            folders={"/tenants/bravo": {"STRIPE_SECRET_KEY": stripe("bravo", 2), "PLAN": "pro"}},
            check=recorded,
        ),
        Step(
            "buckets: 2 -> 3; the tenants whose bucket changed move, nothing is written",
            settings={"buckets": "3"},
            plan=moves(changed_bucket),
            changes={"create": 2, "update": 3},  # bucket 2 created, bucket 0 left by its movers, the provider
            writes=0,
            check=laid_out(0, 3),
        ),
        Step("then nothing is left to change", preview={}, up=False),
        Step(
            "the setting removed: back to one resource per tenant, nothing is written",
            settings={"buckets": None},
            plan=moves(list(TENANTS)),
            changes={"create": 10, "delete": 6, "update": 1},
            writes=0,
            check=created_folders,
        ),
        Step("then nothing is left to change", preview={}, up=False),
        Step(
            "a tenant decommissioned after the way back: its folder goes, the stack made it",
            tenants=tenants_file(decommissioned="echo"),
            plan_includes=[Row("echo", "dev", "infisical", "STRIPE_SECRET_KEY", "delete")],
            folders={"/tenants/echo": None, "/tenants/delta": {"STRIPE_SECRET_KEY": stripe("delta", 1), "PLAN": "pro"}},
        ),
    ]
    run_steps(project, stack, steps, "a move to buckets, between counts, and back")


PROVIDER = "urn:pulumi:dev::tenant-secrets::pulumi:providers:tenant-secrets::tenant-secrets"
BUCKET = "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:{component}$tenant-secrets:index:{kind}::{name}"


@pytest.mark.long
def test_a_move_stopped_after_its_creates_is_finished_by_the_next_up(project: Project, master_key: str) -> None:
    """The state a move leaves when it stops after the buckets' creates and before the engine's deletes (the
    checkpoint records each step as it completes), made without a kill: an `up` targeted at the buckets and the
    stack's provider runs their creates, then fails before the deletes, which are not targeted. The state then
    holds both layouts; the next `up` only forgets the per-tenant resources. Neither run writes either store.

    That preview lists the deletes alone (`pulumi preview --json` leaves the unchanged buckets out), so
    `tenantctl plan` shows them as deletes: docs/guides/operations.md says so."""
    stack = per_tenant_stack(project, master_key)
    seen: dict[str, Any] = {}
    buckets = [
        BUCKET.format(component=component, kind=kind, name=f"bucket-{n:04d}-{store}")
        for n in sorted(assign(TENANTS, 2))
        for component, kind, store in (
            ("InfisicalSecrets", "InfisicalBucket", "infisical"),
            ("DatabaseSecrets", "DatabaseBucket", "database"),
        )
    ]

    def recorded(project: Project, stack: auto.Stack) -> None:
        seen["stores"] = stores(project)

    def creates_only(project: Project) -> None:
        project.stack("dev").set_config("tenant-secrets:buckets", auto.ConfigValue("2"))
        project.infisical.reset_counts()
        # the engine creates the buckets, then stops before the deletes: they are not targeted
        with_error(
            project,
            lambda: project.up(project.stack("dev"), target=[PROVIDER, *buckets]),
            ["alpha-infisical' will be destroyed but was not specified in --target list"],
            "the targeted up",
        )
        assert project.infisical.writes() == 0

    def both_layouts(project: Project, stack: auto.Stack) -> None:
        assert kinds(stack) == {"InfisicalFolder": 5, "DatabaseTenant": 5, "InfisicalBucket": 2, "DatabaseBucket": 2}
        assert stores(project) == seen["stores"], "the stopped move wrote a store"

    def finished(project: Project, stack: auto.Stack) -> None:
        assert kinds(stack) == {"InfisicalBucket": 2, "DatabaseBucket": 2}
        assert stores(project) == seen["stores"], "finishing the move wrote a store"

    steps = [
        Step("one resource per tenant and store", check=recorded),
        Step("buckets: 2, the move stopped after its creates", by_hand=creates_only, up=False, check=both_layouts),
        Step(
            "the next up forgets the per-tenant resources, deleting nothing",
            preview={"delete": 10},
            changes={"delete": 10},
            writes=0,
            check=finished,
        ),
        Step("then nothing is left to change", preview={}, up=False),
    ]
    run_steps(project, stack, steps, "a move stopped after its creates")

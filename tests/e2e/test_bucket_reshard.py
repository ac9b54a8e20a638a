"""`tenantctl reshard` of an environment whose stacks hold buckets (docs/decisions/0053-tenants-per-resource.md,
slice 3), on the real engine, PostgreSQL and the local Infisical server, read back with the official SDK.

A bucket holds several tenants, so no state moves: the reshard marks, in the source stack's state, each tenant
that leaves and the stack it moves to, and, on the destination's provider, the tenants that arrive; then each
stack's `pulumi up`, in any order (here the source's first), forgets or adopts them. Six tenants in both stores
go from one stack to two: the reshard is first stopped after its marks (as a kill would leave it: every run of
both stacks refused) and finished by the same command; the plan of each stack shows `move` rows, never a create
or a delete; a tenant dropped from tenants.yaml without its marker, in the same change, is still refused; each
`up` sends Infisical no write request, its audit records nothing, and no row's ciphertext, version,
`updated_at` or `xmin` (any write of a row changes it) changes, but for one moving tenant's key whose declared
value a change merged between the reshard and the destination's `up` changed: the destination's plan shows that
key's update beside the moves, and its `up` writes that key alone, one Infisical write and one row; each stack's
buckets then hold exactly its shard's tenants, the next preview of each shows no change, and `tenantctl verify
--environment` is clean.
(Long) two stacks into one, the destination first: its existing buckets adopt the arrivals, and the emptied
stack's state is removed while the stores keep every entry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets.engine import contract as c
from tenant_secrets.stack.shards import shard_of
from tenant_secrets.tenantctl.plan_comment import render_markdown
from tenant_secrets.tenantctl.plan_preview import parse_preview
from tenant_secrets.tenantctl.plan_rows import Row
from tenant_secrets.tenantctl.reshard import ReshardError, reshard
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, pulumi, run_steps, tenantctl, written
from tests.e2e.test_shards import owners_in_state

pytestmark = pytest.mark.e2e

SUBDOMAINS = ("alpha", "bravo", "charlie", "delta", "echo", "hotel")
MOVING = sorted(s for s in SUBDOMAINS if shard_of(s, 2) == 2)
STAYING = sorted(s for s in SUBDOMAINS if shard_of(s, 2) == 1)
CHANGED = MOVING[0]
"""The moving tenant whose PLAN changes between the reshard and its new stack's `up`."""


def tenants_file(subdomains: Sequence[str] = SUBDOMAINS, changed: str = "") -> str:
    """Every tenant in both stores; ``changed``'s PLAN declared anew."""
    lines = ["version: 1", "defaults: {storage: both, environments: [prod]}", "tenants:"]
    for name in subdomains:
        plan = f"plan-{name}-2" if name == changed else f"plan-{name}"
        lines += [f"  - subdomain: {name}", "    secrets:", f"      PLAN: {{value: {plan}}}"]
        lines.append("      WEBHOOK_SECRET: {generate: {bytes: 16, encoding: hex}}")
    return "\n".join(lines) + "\n"


def stores(project: Project) -> dict[str, Any]:
    """What any write changes, of the six tenants (steps.written)."""
    return written(project, SUBDOMAINS, "prod")


def moves(owners: Sequence[str]) -> list[Row]:
    """The plan of a reshard on one stack: one `move` row per tenant and store, nothing else."""
    return [Row(o, "prod", store, "-", "move") for o in sorted(owners) for store in ("database", "infisical")]


def marks(project: Project, stack: str) -> dict[str, str]:
    """Tenant -> the stack its recorded bucket entries say it moves to (the same in both stores)."""
    exported = pulumi(project, "stack", "export", "--stack", stack)
    assert exported.returncode == 0, exported.stderr
    found: dict[str, set[str]] = {}
    for resource in json.loads(exported.stdout)["deployment"]["resources"]:
        if str(resource["type"]).endswith(("InfisicalBucket", "DatabaseBucket")):
            for owner, entry in (resource.get("outputs") or {}).get(c.TENANTS, {}).items():
                moved_to = json.loads(entry).get(c.MOVED_TO)
                if moved_to:
                    found.setdefault(owner, set()).add(moved_to)
    assert all(len(where) == 1 for where in found.values()), found
    return {owner: where.pop() for owner, where in found.items()}


def stopped_before_the_settings(project: Project) -> None:
    """The runner `tenantctl reshard` uses, stopped at its first `config set`: marks written, no setting changed,
    as a kill there leaves it."""

    def run(args: Sequence[str]) -> str:
        if list(args[:2]) == ["config", "set"]:
            raise ReshardError("stopped here")
        done = pulumi(project, *args)
        if done.returncode != 0:
            raise ReshardError(done.stderr.strip().splitlines()[-1])
        return done.stdout

    made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "2")
    assert made.returncode == 0, made.stderr
    with pytest.raises(ReshardError, match="stopped here"):
        reshard(Path(project.root), "prod", 1, 2, run=run, tenants_file="tenants.yaml")


def test_a_bucketed_environment_resharded_from_one_stack_to_two_writes_neither_store(
    project: Project, master_key: str
) -> None:
    assert MOVING and STAYING, (MOVING, STAYING)
    project.write_tenants(tenants_file())
    source = project.stack("prod")
    configure(source, secrets_config={}, master_keys={"v1": master_key}, buckets="2")
    seen: dict[str, Any] = {}

    def recorded(project: Project, stack: auto.Stack) -> None:
        seen["stores"] = stores(project)
        assert all(seen["stores"]["folders"].values()), seen["stores"]["folders"]

    def unchanged(project: Project, stack: auto.Stack) -> None:
        assert stores(project) == seen["stores"], "a value, ciphertext, version, updated_at or xmin was rewritten"

    def every_run_refused(project: Project, stack: auto.Stack) -> None:
        assert marks(project, "prod") == dict.fromkeys(MOVING, "prod-02")
        for name in ("prod", "prod-02"):
            status, _, output = project.preview_json(project.stack(name))
            assert status != 0 and "a reshard is unfinished" in output, output[-2000:]
        unchanged(project, stack)

    def finished(project: Project, stack: auto.Stack) -> None:
        done = tenantctl(project, "reshard", "--environment", "prod", "--from", "1", "--to", "2")
        assert done.returncode == 0, done.stderr
        assert f"marked {len(MOVING)} tenant(s) to move" in done.stdout, done.stdout
        assert "run `pulumi up` on each stack, in any order" in done.stdout, done.stdout
        assert marks(project, "prod") == dict.fromkeys(MOVING, "prod-02")

    def both_plans_say_move(project: Project, stack: auto.Stack) -> None:
        for name, owners, way in (("prod", MOVING, "to prod-02"), ("prod-02", MOVING, "from prod")):
            status, document, output = project.preview_json(project.stack(name))
            assert status == 0 and document is not None, output[-2000:]
            plan = parse_preview(document, name)
            assert list(plan.rows) == moves(owners), name
            assert plan.between_stacks == tuple((owner, way) for owner in owners), name
            comment = render_markdown(plan)
            assert "move between stacks (`tenantctl reshard`)" in comment and "**delete**" not in comment, comment

    def holds_its_shard(project: Project, stack: auto.Stack) -> None:
        state = owners_in_state(project, stack.name)
        assert state["buckets"] and state["tenants"] == STAYING
        assert marks(project, stack.name) == {}
        unchanged(project, stack)

    def plan_names_the_changed_key(project: Project, stack: auto.Stack) -> None:
        status, document, output = project.preview_json(stack)
        assert status == 0 and document is not None, output[-2000:]
        plan = parse_preview(document, stack.name)
        updates = [Row(CHANGED, "prod", store, "PLAN", "update") for store in ("database", "infisical")]
        assert list(plan.rows) == updates + moves(MOVING)
        assert plan.between_stacks == tuple((owner, "from prod") for owner in MOVING)
        comment = render_markdown(plan)
        assert f"| {CHANGED} | prod | infisical | `PLAN` | literal | update |" in comment, comment
        assert f"plan-{CHANGED}" not in comment, comment

    def only_the_changed_key_written(project: Project, stack: auto.Stack) -> None:
        state = owners_in_state(project, stack.name)
        assert state["buckets"] and state["tenants"] == MOVING
        assert marks(project, stack.name) == {}
        before, now = seen["stores"], stores(project)
        folders = {
            (name, key)
            for name in SUBDOMAINS
            for key in {*before["folders"][name], *now["folders"][name]}
            if before["folders"][name].get(key) != now["folders"][name].get(key)
        }
        assert folders == {(CHANGED, "PLAN")}, folders
        _, version = before["folders"][CHANGED]["PLAN"]
        assert now["folders"][CHANGED]["PLAN"] == (f"plan-{CHANGED}-2", version + 1)
        assert now["rows"].keys() == before["rows"].keys()
        rows = {row for row, written in now["rows"].items() if before["rows"][row] != written}
        assert rows == {(CHANGED, "PLAN")}, rows
        assert now["rows"][(CHANGED, "PLAN")][1] == before["rows"][(CHANGED, "PLAN")][1] + 1
        assert now["audited"] == before["audited"] + 1

    def verified(project: Project, stack: auto.Stack) -> None:
        done = tenantctl(project, "verify", "--environment", "prod")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("no drift on stack") == 2, done.stdout

    steps = [
        Step("one stack with two buckets per store", check=recorded),
        Step(
            "`tenantctl reshard --from 1 --to 2` stopped after its marks: every run of both stacks is refused",
            by_hand=stopped_before_the_settings,
            up=False,
            check=every_run_refused,
        ),
        Step("the same command run again finishes it", up=False, check=finished),
        Step(
            "each stack's plan shows its tenants moving, nothing created or deleted",
            up=False,
            check=both_plans_say_move,
        ),
        Step(
            f"a tenant that stays ({STAYING[0]}) dropped unmarked in the same change is still refused",
            tenants=tenants_file([s for s in SUBDOMAINS if s != STAYING[0]]),
            refused=[STAYING[0], "decommission"],
        ),
        Step(
            "the source's up forgets the tenants that left, deleting and writing nothing, one line each",
            tenants=tenants_file(),
            writes=0,
            shows=[
                f"{owner}, {what}: moved to prod-02 by `tenantctl reshard`; nothing deleted"
                for owner in MOVING
                for what in ("Infisical folder", "database rows")
            ],
            check=holds_its_shard,
        ),
        Step(
            f"a change merged since declares {CHANGED}'s PLAN anew: the destination's plan shows that key's update "
            "beside the moves, and its up adopts them, writing that key alone",
            stack="prod-02",
            tenants=tenants_file(changed=CHANGED),
            before=plan_names_the_changed_key,
            writes=1,
            check=only_the_changed_key_written,
        ),
        Step("then the source's preview shows no change", preview={}, up=False),
        Step("and the destination's", stack="prod-02", preview={}, up=False),
        Step("`tenantctl verify --environment prod` is clean", up=False, check=verified),
    ]
    run_steps(project, source, steps, "a bucketed environment resharded from one stack to two")


@pytest.mark.long
def test_two_bucketed_stacks_resharded_into_one_adopt_into_existing_buckets_and_the_emptied_stack_goes(
    project: Project, master_key: str
) -> None:
    """The other way, destination first: prod's `up` adopts prod-02's tenants into buckets it already has (a
    bucket's update, not its create), writing nothing; prod-02, every tenant of it marked, is removed with
    `pulumi stack rm --force` (its state only), and the stores keep every entry."""
    project.write_tenants(tenants_file())
    owner = project.stack("prod")
    configure(owner, secrets_config={}, master_keys={"v1": master_key}, buckets="2", shard="1/2")
    seen: dict[str, Any] = {}

    def second_shard(project: Project) -> None:
        made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "2")
        assert made.returncode == 0, made.stderr

    def recorded(project: Project, stack: auto.Stack) -> None:
        seen["stores"] = stores(project)
        assert all(seen["stores"]["folders"].values()), seen["stores"]["folders"]

    def into_one(project: Project) -> None:
        done = tenantctl(project, "reshard", "--environment", "prod", "--from", "2", "--to", "1")
        assert done.returncode == 0, done.stderr
        assert "prod-02 holds no tenant now: `pulumi stack rm --force --stack prod-02` (its state only" in done.stdout
        assert marks(project, "prod-02") == dict.fromkeys(MOVING, "prod")

    def emptied_stack_removed(project: Project, stack: auto.Stack) -> None:
        removed = pulumi(project, "stack", "rm", "--force", "--yes", "--stack", "prod-02")
        assert removed.returncode == 0, removed.stderr
        assert owners_in_state(project, "prod")["tenants"] == list(SUBDOMAINS)
        assert stores(project) == seen["stores"], "a value, ciphertext, version, updated_at or xmin was rewritten"
        done = tenantctl(project, "verify", "--environment", "prod")
        assert done.returncode == 0 and "no drift on stack" in done.stdout, done.stdout + done.stderr

    steps = [
        Step("shard 1 of 2, with buckets"),
        Step("shard 2", by_hand=second_shard, stack="prod-02", check=recorded),
        Step(
            "resharded into one: prod's plan shows prod-02's tenants arriving, nothing created",
            by_hand=into_one,
            plan=moves(MOVING),
            writes=0,
        ),
        Step("prod's up adopted them into its buckets, writing nothing", preview={}, up=False),
        Step("prod-02 removed, its state only", up=False, check=emptied_stack_removed),
    ]
    run_steps(project, owner, steps, "two bucketed stacks resharded into one")

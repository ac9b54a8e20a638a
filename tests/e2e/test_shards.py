"""Shards on the real engine: an environment in two stacks, the owner shard first (shard 2 refuses to
preview before), `tenantctl verify --environment` checking both with one Infisical listing; then (long)
resharded to three and back by moving state only: every shard's preview shows no change, no Infisical
secret is written and no row's ciphertext changes."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from psycopg import sql
from pulumi import automation as auto

from tenant_secrets.engine.buckets import KINDS, split
from tenant_secrets.stack.shards import shard_of
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Check, Step, pulumi, run_steps, tenantctl

SUBDOMAINS = ["alpha", "bravo", "charlie", "delta", "echo", "hotel"]
TENANTS = (
    "version: 1\n"
    "defaults:\n  storage: both\n  environments: [prod]\n"
    "  secrets: {WEBHOOK_SECRET: {generate: {bytes: 16, encoding: hex}}}\n"
    "platform:\n  hono-api:\n    secrets:\n      EMAIL_FROM: {value: shards@example.test}\n"
    "tenants:\n" + "".join(f"  - subdomain: {s}\n    secrets:\n      PLAN: {{value: plan-{s}}}\n" for s in SUBDOMAINS)
)


def ciphertexts(project: Project) -> dict[tuple[str, str], str]:
    with project.db() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted FROM company_secrets s"
                " JOIN companies c ON c.id = s.company_id"
            )
        ).fetchall()
    return {(subdomain, key): value for subdomain, key, value in rows}


def owners_of(resource: dict[str, Any]) -> set[str]:
    """The owners whose store entries a resource holds: its own, or a bucket's tenants."""
    kind = KINDS.get(resource["type"].rsplit(":", 1)[-1])
    if kind is not None:
        return set(split(kind, resource["inputs"]))
    owned = resource["urn"].endswith(("-infisical", "-database"))
    return {resource["inputs"]["owner"]} if owned else set()


def owners_in_state(project: Project, stack: str) -> dict[str, Any]:
    exported = json.loads(
        subprocess.run(
            ["pulumi", "stack", "export", "--stack", stack],
            cwd=project.root,
            env={**os.environ, **project.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    resources = exported["deployment"]["resources"]
    registry = next(r for r in resources if r["urn"].endswith("::registry"))
    tenants = sorted(set().union(*map(owners_of, resources)) - {"hono-api"})
    owned = ("DatabaseSchema::", "MasterKeyPublication::", "::hono-api-infisical")
    return {
        "registry": registry["outputs"]["owners"],
        "tenants": tenants,
        "owned": [r["urn"] for r in resources if any(part in r["urn"] for part in owned)],
        "buckets": any(r["type"].rsplit(":", 1)[-1] in KINDS for r in resources),
    }


def two_shards(master_key: str, *, bucketed: bool = False) -> list[Step]:
    """prod in two shards, `shards init` making the second, applied owner first; each shard verified."""

    def second_shard_made(project: Project) -> None:
        made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "2")
        assert made.returncode == 0, made.stderr

    def each_shard_holds_its_tenants(project: Project, stack: auto.Stack) -> None:
        for index, name in ((1, "prod"), (2, "prod-02")):
            state = owners_in_state(project, name)
            assert state["tenants"] == [s for s in SUBDOMAINS if shard_of(s, 2) == index], name
            assert bool(state["owned"]) == (index == 1), state["owned"]  # schema, key publication, platform folder
            assert state["buckets"] == bucketed, name

    def verified_with_one_listing(project: Project, stack: auto.Stack) -> None:
        project.infisical.reset_counts()
        verified = tenantctl(project, "verify", "--environment", "prod")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.count("no drift on stack") == 2
        reads = {route: n for route, n in project.infisical.request_counts().items() if "/auth/" not in route}
        assert sum(reads.values()) == 1, reads  # one recursive listing for both shards

    return [
        Step(
            "`tenantctl shards init` makes shard 2, which refuses to preview before shard 1 publishes the master key",
            by_hand=second_shard_made,
            stack="prod-02",
            refused=["apply shard 1 (prod) first"],
        ),
        Step("shard 1, the environment's owner, goes first"),
        Step(
            "then shard 2: each holds its own tenants, shard 1 the environment's own resources",
            stack="prod-02",
            check=each_shard_holds_its_tenants,
        ),
        Step(
            "`tenantctl verify --environment` checks both shards with one Infisical listing",
            up=False,
            check=verified_with_one_listing,
        ),
    ]


def owner_shard(project: Project, master_key: str, **settings: str) -> auto.Stack:
    project.write_tenants(TENANTS)
    owner = project.stack("prod")
    configure(owner, secrets_config={}, master_keys={"v1": master_key}, shard="1/2", **settings)
    return owner


@pytest.mark.e2e
@pytest.mark.parametrize("buckets", [None, pytest.param("2", marks=pytest.mark.long)], ids=["per-tenant", "buckets"])
def test_shard_1_owns_the_environment_and_goes_first(project: Project, master_key: str, buckets: str | None) -> None:
    """With buckets (copied to shard 2 by `shards init`), each shard's buckets hold its own tenants only."""
    owner = owner_shard(project, master_key, **({"buckets": buckets} if buckets else {}))
    run_steps(project, owner, two_shards(master_key, bucketed=bool(buckets)), "two shards")


def plans_unchanged(stacks: list[str], seen: dict[str, Any]) -> Check:
    """Every shard's preview, through `tenantctl plan --environment`: nothing to change; nothing written, no
    row's ciphertext changed."""

    def check(project: Project, stack: auto.Stack) -> None:
        planned = tenantctl(project, "plan", "--environment", "prod", "--format", "json")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        plans = json.loads(planned.stdout)
        assert [(p["stack"], p["changes"], set(p["resources"])) for p in plans] == [
            (name, [], {"same"}) for name in stacks
        ]
        assert project.infisical.writes() == 0
        assert ciphertexts(project) == seen["ciphertexts"]

    return check


@pytest.mark.e2e
@pytest.mark.long
def test_two_shards_resharded_to_three_and_back_move_state_only(project: Project, master_key: str) -> None:
    seen: dict[str, Any] = {}

    def stored(project: Project, stack: auto.Stack) -> None:
        seen["ciphertexts"] = ciphertexts(project)
        assert {s for s, _ in seen["ciphertexts"]} == set(SUBDOMAINS)
        project.infisical.reset_counts()

    def to_three(project: Project) -> None:
        made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "3")
        assert made.returncode == 0, made.stderr
        moved = tenantctl(project, "reshard", "--environment", "prod", "--from", "2", "--to", "3")
        assert moved.returncode == 0, moved.stderr

    def three_shards(project: Project, stack: auto.Stack) -> None:
        for index, name in enumerate(["prod", "prod-02", "prod-03"], start=1):
            expected = sorted(s for s in SUBDOMAINS if shard_of(s, 3) == index)
            state = owners_in_state(project, name)
            assert state["tenants"] == expected, name
            assert sorted(set(state["registry"]) - {"hono-api"}) == expected, name
            assert ("hono-api" in state["registry"]) == (index == 1)
            assert bool(state["owned"]) == (index == 1), state["owned"]  # schema, key publication, platform folder
        plans_unchanged(["prod", "prod-02", "prod-03"], seen)(project, stack)

    def back_to_two(project: Project) -> None:
        back = tenantctl(project, "reshard", "--environment", "prod", "--from", "3", "--to", "2")
        assert back.returncode == 0, back.stderr
        assert "prod-03 holds no tenant now: `pulumi stack rm --force --stack prod-03`" in back.stdout
        assert owners_in_state(project, "prod-03")["tenants"] == []
        removed = pulumi(project, "stack", "rm", "--force", "--yes", "--stack", "prod-03")
        assert removed.returncode == 0, removed.stderr

    steps = [
        *two_shards(master_key),
        Step("the rows as two shards wrote them", up=False, check=stored),
        Step(
            "resharded to three by moving state only: each shard's tenants, every preview unchanged",
            by_hand=to_three,
            up=False,
            check=three_shards,
        ),
        Step(
            "and back to two, into stacks that have their own provider, components and registry",
            by_hand=back_to_two,
            up=False,
            check=plans_unchanged(["prod", "prod-02"], seen),
        ),
    ]
    run_steps(project, owner_shard(project, master_key), steps, "resharded and back")


@pytest.mark.e2e
def test_an_owner_shard_without_database_tenants_keeps_the_schema_and_the_master_key(
    project: Project, master_key: str
) -> None:
    """Every tenant in shard 2 (as a reshard can leave it): shard 1 still declares the schema and publishes the
    master key, so shard 2 writes its rows; and shard 1's next preview deletes neither."""
    only_shard_2 = [s for s in ("bravo", "charlie", "delta") if shard_of(s, 2) == 2]
    project.write_tenants(
        TENANTS.split("tenants:\n", 1)[0]
        + "tenants:\n"
        + "".join(f"  - subdomain: {s}\n    secrets:\n      PLAN: {{value: plan-{s}}}\n" for s in only_shard_2)
    )
    owner = project.stack("prod")
    configure(owner, secrets_config={}, master_keys={"v1": master_key}, shard="1/2")

    def keeps_the_environments_own(project: Project, stack: auto.Stack) -> None:
        owned = owners_in_state(project, "prod")["owned"]
        assert [
            kind for kind in ("DatabaseSchema::", "MasterKeyPublication::") if not any(kind in u for u in owned)
        ] == []

    def second_shard_made(project: Project) -> None:
        made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "2")
        assert made.returncode == 0, made.stderr

    steps = [
        Step("shard 1, holding no tenant, keeps the schema and publishes the key", check=keeps_the_environments_own),
        Step(
            "shard 2 writes its tenants' rows under the published key",
            by_hand=second_shard_made,
            stack="prod-02",
            rows={"PLAN", "WEBHOOK_SECRET"},
        ),
        Step("shard 1's next preview changes nothing", up=False, preview={}),
    ]
    run_steps(project, owner, steps, "an owner shard without tenants")

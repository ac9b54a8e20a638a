"""`tenantctl plan` of a stack with buckets (issue 29): a bucket step is read as the steps of its tenants'
own resources, so the rows are those of one resource per tenant: tenant, store, key and action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.tenantctl.plan_comment import render_markdown
from tenant_secrets.tenantctl.plan_preview import parse_preview, rows_from_preview
from tenant_secrets.tenantctl.plan_rows import Row

URN = "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseBucket::"
FOLDER_URN = (
    "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalBucket::"
)
LITERAL = {"from": "literal"}
ENV = {"from": "env", "var": "ACME_PLAN"}


def rows(owner: str, fingerprints: Mapping[str, str], sources: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A tenant's rows' inputs (as the program declares them)."""
    return {
        c.OWNER: owner,
        c.DECOMMISSION: False,
        c.UNBOUND: [],
        c.STORED_KEYS: [],
        c.DECOMMISSIONED: [],
        c.TABLE_PREFIX: "",
        c.COMPANY_ID: f"company-{owner}",
        c.COMPANY_NAME: owner,
        c.DECLARED_FINGERPRINTS: dict(fingerprints),
        c.SOURCES: dict(sources or dict.fromkeys(fingerprints, LITERAL)),
    }


def recorded(owner: str, fingerprints: Mapping[str, str]) -> dict[str, Any]:
    return {
        c.OWNER: owner,
        c.DECOMMISSION: False,
        c.COMPANY_ID: f"company-{owner}",
        c.COMPANY_NAME: owner,
        c.TABLE_PREFIX: "",
        c.RECORDED_FINGERPRINTS: dict(fingerprints),
    }


def bucket(tenants: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return b.join(b.DATABASE, tenants, {c.TABLE_PREFIX: ""})


BEFORE = {"acme": {"PLAN": "fp-1", "API_KEY": "fp-2"}, "bravo": {"PLAN": "fp-3"}, "charlie": {"PLAN": "fp-4"}}


def step(op: str, news: Mapping[str, Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    old_inputs = bucket({owner: rows(owner, fps) for owner, fps in BEFORE.items()})
    old_outputs = bucket({owner: recorded(owner, fps) for owner, fps in BEFORE.items()})
    return {
        "op": op,
        "urn": URN + "bucket-0001-database",
        "oldState": {"inputs": old_inputs, "outputs": old_outputs},
        "newState": {"inputs": bucket(news)},
        **extra,
    }


def test_one_changed_value_is_one_row_naming_tenant_store_and_key() -> None:
    news = {owner: rows(owner, fps) for owner, fps in BEFORE.items()}
    news["bravo"] = rows("bravo", {"PLAN": "fp-3b"})
    news["charlie"] = rows("charlie", {"PLAN": "fp-4b"})  # not named by the plugin: it does not change
    document = {"steps": [step("update", news, detailedDiff={"tenants.bravo": {"kind": "update", "inputDiff": True}})]}
    assert rows_from_preview(document, "dev") == [
        Row("bravo", "dev", "database", "PLAN", "update", "tenant", "literal")
    ]


def test_a_subdomain_that_is_no_plain_path_segment_is_read_from_its_quoted_path() -> None:
    olds = {"charlie-co": rows("charlie-co", {"PLAN": "fp-1"}), "delta": rows("delta", {"PLAN": "fp-2"})}
    news = olds | {"charlie-co": rows("charlie-co", {"PLAN": "fp-1b"})}
    quoted = {
        "op": "update",
        "urn": URN + "bucket-0001-database",
        "oldState": {
            "inputs": bucket(olds),
            "outputs": bucket(
                {"charlie-co": recorded("charlie-co", {"PLAN": "fp-1"}), "delta": recorded("delta", {"PLAN": "fp-2"})}
            ),
        },
        "newState": {"inputs": bucket(news)},
        "detailedDiff": {'tenants["charlie-co"]': {"kind": "update", "inputDiff": True}},
    }
    assert [(r.owner, r.key, r.action) for r in rows_from_preview({"steps": [quoted]}, "dev")] == [
        ("charlie-co", "PLAN", "update")
    ]


def test_a_tenant_added_created_and_one_gone_deleted() -> None:
    news = {owner: rows(owner, fps) for owner, fps in BEFORE.items() if owner != "charlie"}
    news["delta"] = rows("delta", {"PLAN": "fp-5"})
    found = rows_from_preview({"steps": [step("update", news)]}, "dev")
    assert [(r.owner, r.key, r.action) for r in found] == [("charlie", "PLAN", "delete"), ("delta", "PLAN", "create")]


def test_drift_of_one_tenant_is_a_restore_of_its_key() -> None:
    news = {owner: rows(owner, fps) for owner, fps in BEFORE.items()}
    drifted = step("update", news)
    outputs = bucket(
        {owner: recorded(owner, fps) for owner, fps in BEFORE.items()}
        | {"acme": recorded("acme", {"PLAN": "fp-1", "API_KEY": "by-hand"})}
    )
    drifted["oldState"]["outputs"] = outputs
    drifted["detailedDiff"] = {"tenants.acme": {"kind": "update", "inputDiff": False}}
    assert [(r.owner, r.key, r.action) for r in rows_from_preview({"steps": [drifted]}, "dev")] == [
        ("acme", "API_KEY", "restore")
    ]


def test_a_created_bucket_lists_every_key_of_every_tenant_and_the_comment_never_a_fingerprint() -> None:
    created: dict[str, Any] = {"op": "create", "urn": FOLDER_URN + "bucket-0000-infisical", "newState": {"inputs": {}}}
    folder = {
        c.OWNER: "acme",
        c.ENVIRONMENT: "dev",
        c.PATH: "/tenants/acme",
        c.DECOMMISSION: False,
        c.DECOMMISSIONED: [],
    }
    folder |= {c.DECLARED_FINGERPRINTS: {"PLAN": "fp-1"}, c.SOURCES: {"PLAN": ENV}}
    created["newState"]["inputs"] = b.join(b.INFISICAL, {"acme": folder}, {c.ENVIRONMENT: "dev"})
    plan = parse_preview({"steps": [created]}, "dev")
    assert [(r.owner, r.store, r.key, r.action) for r in plan.rows] == [("acme", "infisical", "PLAN", "create")]
    assert [(s.owner, s.key, s.reads) for s in plan.sources] == [("acme", "PLAN", "environment variable ACME_PLAN")]
    assert "fp-1" not in render_markdown(plan)


def test_a_tenant_whose_create_failed_is_created_by_the_next_plan() -> None:
    """A partial failure recorded the bucket's inputs with every tenant, its outputs without the failed one."""
    news = {owner: rows(owner, fps) for owner, fps in BEFORE.items()}
    retried = step("update", news, detailedDiff={"tenants.charlie": {"kind": "add"}})
    retried["oldState"]["outputs"] = bucket({o: recorded(o, fps) for o, fps in BEFORE.items() if o != "charlie"})
    assert [(r.owner, r.key, r.action) for r in rows_from_preview({"steps": [retried]}, "dev")] == [
        ("charlie", "PLAN", "create")
    ]


OWN_URN = "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseTenant::"


def own_delete(owner: str, fingerprints: Mapping[str, str]) -> dict[str, Any]:
    """The delete of a tenant's own rows resource, as the preview of a move to buckets shows it."""
    return {
        "op": "delete",
        "urn": f"{OWN_URN}{owner}-database",
        "oldState": {"inputs": rows(owner, fingerprints), "outputs": recorded(owner, fingerprints)},
    }


def moved_in(news: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {"op": "create", "urn": URN + "bucket-0000-database", "newState": {"inputs": bucket(news)}}


def test_a_move_to_buckets_is_one_move_row_per_tenant_and_no_key_is_deleted() -> None:
    news = {owner: rows(owner, fps) for owner, fps in BEFORE.items()}
    steps = [*(own_delete(owner, fps) for owner, fps in BEFORE.items()), moved_in(news)]
    plan = parse_preview({"steps": steps}, "dev")
    assert [(r.owner, r.store, r.key, r.action) for r in plan.rows] == [
        (owner, "database", "-", "move") for owner in sorted(BEFORE)
    ]
    assert plan.deletions == ()
    comment = render_markdown(plan)
    assert "3 tenant(s) move to other resources of this stack" in comment
    assert "would be deleted" not in comment and "**delete**" not in comment


def test_a_key_changed_with_the_move_is_its_own_row_and_a_tenant_gone_is_still_deleted() -> None:
    """The way back: a bucket deleted, its tenants' own resources created; charlie is in none of them."""
    gone = step("delete", {})
    gone["oldState"]["retainOnDelete"] = False
    back = [
        {"op": "create", "urn": f"{OWN_URN}{owner}-database", "newState": {"inputs": rows(owner, fps)}}
        for owner, fps in (("acme", {"PLAN": "fp-1", "API_KEY": "fp-2b"}), ("bravo", BEFORE["bravo"]))
    ]
    plan = parse_preview({"steps": [gone, *back]}, "dev")
    assert [(r.owner, r.key, r.action) for r in plan.rows] == [
        ("charlie", "PLAN", "delete"),
        ("acme", "API_KEY", "update"),
        ("acme", "-", "move"),
        ("bravo", "-", "move"),
    ]
    comment = render_markdown(plan)
    assert "**1 secret(s) would be deleted:**" in comment and "2 tenant(s) move" in comment


def test_a_move_whose_creates_ran_before_shows_as_moves_and_a_stray_per_tenant_twin_does_not() -> None:
    """The deletes of a move that stopped after its creates: the bucket is `same`, it holds the tenants."""
    news = {owner: rows(owner, fps) for owner, fps in BEFORE.items()}
    held = {"op": "same", "urn": URN + "bucket-0000-database", "newState": {"inputs": bucket(news)}}
    plan = parse_preview({"steps": [held, own_delete("acme", BEFORE["acme"])]}, "dev")
    assert [(r.owner, r.key, r.action) for r in plan.rows] == [("acme", "-", "move")]
    twin = {"op": "same", "urn": f"{OWN_URN}acme-database", "newState": {"inputs": rows("acme", BEFORE["acme"])}}
    stray = own_delete("acme", BEFORE["acme"]) | {
        "urn": f"urn:pulumi:dev::tenant-secrets::{OWN_URN.rsplit('$', maxsplit=1)[-1]}acme-database"
    }
    found = parse_preview({"steps": [twin, stray]}, "dev").rows
    assert [(r.owner, r.key, r.action) for r in found] == [("acme", "API_KEY", "delete"), ("acme", "PLAN", "delete")]


PROVIDER_URN = "urn:pulumi:prod-02::tenant-secrets::pulumi:providers:tenant-secrets::tenant-secrets"


def test_tenants_a_reshard_moves_between_stacks_are_move_rows_naming_the_other_stack() -> None:
    """The source's preview drops bravo, marked `moved_to` by `tenantctl reshard`, and charlie, unmarked: bravo
    moves, charlie is a delete as ever. The destination's preview adds delta, which its provider's recorded
    inputs say arrives from prod, and echo, a new tenant: delta moves, echo is a create."""
    olds = {owner: recorded(owner, fps) for owner, fps in BEFORE.items()}
    olds["bravo"] = {**olds["bravo"], c.MOVED_TO: "prod-02"}
    source = step("update", {"acme": rows("acme", BEFORE["acme"])})
    source["oldState"]["outputs"] = bucket(olds)
    plan = parse_preview({"steps": [source]}, "prod")
    assert plan.rows == (
        Row("charlie", "prod", "database", "PLAN", "delete"),
        Row("bravo", "prod", "database", "-", "move"),
    )
    assert plan.between_stacks == (("bravo", "to prod-02"),)
    comment = render_markdown(plan)
    assert "**1 tenant(s) move between stacks (`tenantctl reshard`)" in comment and "- bravo: to prod-02" in comment
    assert "move to other resources of this stack" not in comment

    created = {
        "op": "create",
        "urn": URN + "bucket-0000-database",
        "newState": {"inputs": bucket({t: rows(t, {"PLAN": "fp-9"}) for t in ("delta", "echo")})},
    }
    arrived = {"reshardArrivals": {"delta": "prod"}, c.PROVIDER_STACK: "prod-02"}
    provider = {
        "op": "update",
        "urn": PROVIDER_URN,
        "oldState": {"inputs": arrived},
        "newState": {"inputs": {c.PROVIDER_STACK: "prod-02"}},
    }
    plan = parse_preview({"steps": [provider, created]}, "prod-02")
    assert plan.rows == (
        Row("echo", "prod-02", "database", "PLAN", "create"),
        Row("delta", "prod-02", "database", "-", "move"),
    )
    assert plan.between_stacks == (("delta", "from prod"),)


def arrived_from(source: str, entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The destination's provider step after `tenantctl reshard`: its recorded inputs name each arriving tenant's
    old stack and the entry (the packed outputs) the old stack's bucket recorded for it."""
    arrivals = {
        owner: {"from": source, "entries": {"database": b.pack(b.DATABASE, recorded(owner, fps))}}
        for owner, fps in entries.items()
    }
    return {
        "op": "update",
        "urn": PROVIDER_URN,
        "oldState": {"inputs": {"reshardArrivals": arrivals, c.PROVIDER_STACK: "prod-02"}},
        "newState": {"inputs": {c.PROVIDER_STACK: "prod-02"}},
    }


def test_a_tenant_a_reshard_moves_in_shows_each_key_declared_otherwise_than_its_old_stack_recorded() -> None:
    """delta arrives as its old stack wrote it: one `move` row. foxtrot's PLAN changed and API_KEY was added since
    (a pull request merged between the reshard and this stack's `up`): the `up` writes both, so the plan says
    so, as it does for a move within the stack; never a fingerprint."""
    declared = {"delta": {"PLAN": "fp-9"}, "foxtrot": {"PLAN": "fp-8b", "API_KEY": "fp-7"}}
    created = {
        "op": "create",
        "urn": URN + "bucket-0000-database",
        "newState": {"inputs": bucket({t: rows(t, fps) | {c.KEY_VERSION: "v2"} for t, fps in declared.items()})},
    }
    provider = arrived_from("prod", {"delta": {"PLAN": "fp-9"}, "foxtrot": {"PLAN": "fp-8"}})
    plan = parse_preview({"steps": [provider, created]}, "prod-02")
    assert plan.rows == (
        Row("foxtrot", "prod-02", "database", "PLAN", "update", source="literal"),
        Row("foxtrot", "prod-02", "database", "API_KEY", "create", source="literal"),
        Row("delta", "prod-02", "database", "-", "move"),
        Row("foxtrot", "prod-02", "database", "-", "move"),
    )
    assert plan.between_stacks == (("delta", "from prod"), ("foxtrot", "from prod"))
    comment = render_markdown(plan)
    assert "| foxtrot | prod-02 | database | `PLAN` | literal | update |" in comment
    assert "fp-" not in comment and "**delete**" not in comment

    unchanged = arrived_from("prod", declared)
    assert [(r.owner, r.key, r.action) for r in parse_preview({"steps": [unchanged, created]}, "prod-02").rows] == [
        ("delta", "-", "move"),
        ("foxtrot", "-", "move"),
    ]
    # its old stack held nothing of delta in this store (a storage changed in the same change): each key written
    del unchanged["oldState"]["inputs"]["reshardArrivals"]["delta"]["entries"]["database"]
    assert [(r.owner, r.key, r.action) for r in parse_preview({"steps": [unchanged, created]}, "prod-02").rows] == [
        ("delta", "PLAN", "create"),
        ("delta", "-", "move"),
        ("foxtrot", "-", "move"),
    ]

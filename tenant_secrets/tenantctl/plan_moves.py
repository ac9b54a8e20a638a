"""Bucket steps read as the steps of their tenants' own resources, and tenants' entries that move: between
resources of the stack, or between stacks by `tenantctl reshard`. It reads steps as plan_rows does and makes
the rows of a move with it; plan_preview puts these steps and moves together into the plan's rows.

A bucket (`InfisicalBucket`, `DatabaseBucket`: several tenants in one resource, the stack's `buckets`
setting, tenant_secrets/engine/buckets.py) is read as the per-tenant steps it stands for: each of its
tenants' entries unpacked into the inputs and outputs its own resource would have, one step per tenant
added, removed or changed, so the rows are the same as with one resource per tenant. The plugin's
detailed diff names a changed tenant whole (`tenants.<subdomain>`: its entry is one JSON string), so its
keys come from the unpacked fingerprints, compared as a tenant resource's are.

A tenant's entry in one store that one resource of the preview deletes and another creates is a *move*
(the stack's `buckets` setting was set, changed or removed: docs/decisions/0053-tenants-per-resource.md):
the new resource adopts the entry and the old one is forgotten, so its keys are compared from the old
resource's state to the new one's inputs, as an update, and the tenant shows one `move` row per store
(plus a row per key that also changes). A delete of an entry no other resource takes is a delete, as ever.

A tenant that `tenantctl reshard` moves between stacks with buckets moves with no state move (decision
0053): the source stack's bucket entry records the stack it moves to (``moved_to``), and the destination's
provider the tenants that arrive, where from, and each one's entry as the source recorded it (its old inputs
in the preview's provider step, tenant_secrets/stack/reshard_marker.py). Such a removed or added entry is a
`move` row too, never a delete or a create, and the plan names the other stack above the table. An arrival's
keys are compared from the source's recorded entry to the destination's inputs, as a move within the stack's
are, so a key declared differently since the source wrote it has its own row (the destination's `up` writes
it; in a store the source held nothing of, every key is a `create`); an arrival recorded without its entries
(a state written before they were) shows the `move` row alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.stack import reshard_marker
from tenant_secrets.tenantctl.plan_rows import (
    CREATE_OPS,
    DELETE_OPS,
    REPLACE_OPS,
    Row,
    changed_steps,
    fingerprints,
    owner_rows,
    step_inputs,
    type_name,
)


def unpacked(kind: b.BucketKind, step: Mapping[str, Any], side: str, part: str) -> dict[str, dict[str, Any]]:
    """One side's (oldState, newState) inputs or outputs of a bucket step, as each tenant's own; an entry that
    does not unpack (a state written by something else) is left out, never guessed."""
    state = step.get(side)
    props = state.get(part) if isinstance(state, Mapping) else None
    if not isinstance(props, Mapping):
        return {}
    shared = b.shared_of(kind, props)
    found: dict[str, dict[str, Any]] = {}
    for owner, entry in b.entries(props).items():
        try:
            found[owner] = b.unpack(kind, owner, entry, shared)
        except b.BucketError:
            continue
    return found


def _named_tenants(step: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """The tenants a bucket step's `detailedDiff` names, each with its paths below ``tenants.<subdomain>``; None
    when the step has no detailed diff (then each tenant's inputs and recorded fingerprints decide)."""
    detailed = step.get("detailedDiff")
    if not isinstance(detailed, Mapping) or not detailed:
        return None
    named: dict[str, list[str]] = {}
    for name in detailed:
        found = re.match(rf'^{c.TENANTS}(?:\.([^.\[]+)|\["((?:[^"\\]|\\.)*)"\])(?:\.(.*))?$', str(name))
        if found:
            named.setdefault(found[1] or found[2], []).append(found[3] or "")
    return named


def bucket_steps(step: Mapping[str, Any], op: str) -> list[tuple[str, dict[str, Any]]]:
    """A bucket step as the steps of its tenants' own resources: (op, step) for each tenant it creates, deletes
    or changes. A tenant of an updated bucket is a step when it is new or gone, when the bucket's detailed
    diff names it (a tenant the plugin's detailed diff leaves out does not change: after a partial failure its
    old inputs may differ from what its store holds), or, without a detailed diff, when its declared inputs or
    its recorded fingerprints say it changes."""
    kind = b.KINDS[type_name(step)]
    old_in, old_out = unpacked(kind, step, "oldState", "inputs"), unpacked(kind, step, "oldState", "outputs")
    new_in = unpacked(kind, step, "newState", "inputs")
    old_state = step.get("oldState")
    retain = isinstance(old_state, Mapping) and old_state.get("retainOnDelete") is True
    named = _named_tenants(step)
    old_out_known = isinstance(old_state, Mapping) and isinstance(old_state.get("outputs"), Mapping)
    steps: list[tuple[str, dict[str, Any]]] = []
    for owner in sorted({*old_in, *new_in}):
        if op in CREATE_OPS or op in DELETE_OPS or op in REPLACE_OPS:
            own = op
        elif owner not in old_in or (old_out_known and owner not in old_out):
            own = "create"  # new, or recorded by no earlier write (its create failed in a partial failure)
        elif owner not in new_in:
            own = "delete"
        else:
            recorded = fingerprints(old_out.get(owner, {}), c.RECORDED_FINGERPRINTS)
            drifted = recorded != fingerprints(new_in[owner], c.DECLARED_FINGERPRINTS)
            if named is not None and owner not in named:
                continue  # the provider's diff says this tenant does not change (it names every one that does)
            if named is None and old_in[owner] == new_in[owner] and not drifted:
                continue
            own = "update"
        if (own in CREATE_OPS and owner not in new_in) or (own in DELETE_OPS and owner not in old_in):
            continue
        paths = [p for p in (named or {}).get(owner, []) if p]
        old_side = {"inputs": old_in.get(owner, {}), "outputs": old_out.get(owner, {}), "retainOnDelete": retain}
        tenant_step = {
            "op": own,
            "urn": f"{step.get('urn', '')}/{owner}",
            "oldState": old_side,
            "newState": {"inputs": new_in.get(owner, {})},
            "detailedDiff": {name: {} for name in paths},
        }
        steps.append((own, tenant_step))
    return steps


def tenant_steps_of(step: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(op, store, step) of each tenant resource a step is, or stands for (a bucket's tenants); none for
    another resource."""
    op = str(step.get("op", "same"))
    kind = type_name(step)
    if kind in c.STORES:
        return [(op, c.STORES[kind], step)]
    if kind in b.KINDS:
        return [(own, b.KINDS[kind].store, tenant) for own, tenant in bucket_steps(step, op)]
    return []


def _step_owner(step: Mapping[str, Any]) -> str:
    old, new = step_inputs(step, "oldState"), step_inputs(step, "newState")
    return str(new.get(c.OWNER) or old.get(c.OWNER) or str(step.get("urn", "")).rsplit("::", 1)[-1])


def _base_urn(step: Mapping[str, Any]) -> str:
    """The resource a (tenant) step is of: a bucket's tenant steps are ``<bucket URN>/<subdomain>``."""
    urn = str(step.get("urn", ""))
    return urn.rsplit("/", 1)[0] if type_name({"urn": urn.rsplit("/", 1)[0]}) in b.KINDS else urn


def holders(document: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(owner, store) -> a step of the resource that declares the entry in this preview and keeps it (any op but
    a delete, `same` included): its URN and new inputs, as a tenant step."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for step in document.get("steps") or []:
        if not isinstance(step, Mapping) or str(step.get("op", "same")) in DELETE_OPS | REPLACE_OPS:
            continue
        kind = type_name(step)
        if kind in c.STORES:
            owner = step_inputs(step, "newState").get(c.OWNER)
            if owner:
                held[(str(owner), c.STORES[kind])] = {"urn": step.get("urn"), "newState": step.get("newState")}
        elif kind in b.KINDS:
            for owner, props in unpacked(b.KINDS[kind], step, "newState", "inputs").items():
                urn = f"{step.get('urn', '')}/{owner}"
                held[(owner, b.KINDS[kind].store)] = {"urn": urn, "newState": {"inputs": props}}
    return held


def split_moves(
    steps: Sequence[tuple[str, str, Mapping[str, Any]]], held: Mapping[tuple[str, str], Mapping[str, Any]]
) -> tuple[list[tuple[str, str, Mapping[str, Any]]], list[tuple[str, Mapping[str, Any]]]]:
    """The tenant steps that are not moves, and the moves: (store, the update from the deleted resource's state
    to the new holder's inputs) for each owner and store that one resource deletes and another resource of the
    preview declares: creates it, or holds it already (a move whose deletes had not run yet); one of the two a
    bucket, as the delete guard (tenant_secrets/engine/deletes.py) forgets only those."""
    by_entry: dict[tuple[str, str], list[int]] = {}
    for index, (_, store, step) in enumerate(steps):
        by_entry.setdefault((_step_owner(step), store), []).append(index)
    moved: set[int] = set()
    moves: list[tuple[str, Mapping[str, Any]]] = []
    for (owner, store), indexes in sorted(by_entry.items()):
        deleted = [i for i in indexes if steps[i][0] in DELETE_OPS]
        created = [i for i in indexes if steps[i][0] in CREATE_OPS]
        if len(deleted) != 1 or len(created) > 1:
            continue
        old = steps[deleted[0]][2]
        new = steps[created[0]][2] if created else held.get((owner, store))
        if new is None or _base_urn(new) == _base_urn(old):
            continue
        if not any(type_name({"urn": _base_urn(side)}) in b.KINDS for side in (old, new)):
            continue  # two per-tenant resources (a reshard interrupted): the delete guard refuses it, no move
        update = {
            "op": "update",
            "urn": new.get("urn"),
            "oldState": old.get("oldState"),
            "newState": new.get("newState"),
        }
        moves.append((store, update))
        moved.update((deleted[0], *created))
    return [s for i, s in enumerate(steps) if i not in moved], moves


def all_tenant_steps(document: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    return [tenant for _, step in changed_steps(document) for tenant in tenant_steps_of(step)]


def provider_inputs(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stack's provider's recorded inputs, which its step in the preview carries as its old state: where
    `tenantctl reshard` records the tenants it moved into this stack (the `up` drops them)."""
    for step in document.get("steps") or []:
        urn = str(step.get("urn", "")) if isinstance(step, Mapping) else ""
        if urn.count("::") >= 3 and urn.split("::")[2] == reshard_marker.PROVIDER_TYPE:
            return step_inputs(step, "oldState")
    return {}


def _arrivals(document: Mapping[str, Any]) -> dict[str, str]:
    """The tenants `tenantctl reshard` moved into this stack, with the stack each left."""
    return reshard_marker.arrivals(provider_inputs(document))


def between_stacks(
    steps: Sequence[tuple[str, str, Mapping[str, Any]]], document: Mapping[str, Any]
) -> list[tuple[int, str, str, str]]:
    """(index in ``steps``, store, tenant, "to <stack>" or "from <stack>") of each bucket tenant's removal that
    `tenantctl reshard` marked (its recorded entry's ``moved_to``) and each addition of a tenant it moved in."""
    arrivals = _arrivals(document)
    found = []
    for index, (op, store, step) in enumerate(steps):
        if type_name({"urn": _base_urn(step)}) not in b.KINDS:
            continue
        owner = _step_owner(step)
        old_state = step.get("oldState")
        outputs = old_state.get("outputs") if isinstance(old_state, Mapping) else None
        moved_to = outputs.get(c.MOVED_TO) if isinstance(outputs, Mapping) else None
        if op in DELETE_OPS and moved_to:
            found.append((index, store, owner, f"to {moved_to}"))
        elif op in CREATE_OPS and owner in arrivals:
            found.append((index, store, owner, f"from {arrivals[owner]}"))
    return found


def move_rows(update: Mapping[str, Any], store: str, environment: str) -> list[Row]:
    """A moving entry's rows: its `move` row and one per key that also changes, from the update that stands for
    the move (the old holder's state to the new holder's inputs)."""
    changed = owner_rows(update, "update", store, environment)
    move = replace(changed[0], key="-", action="move", source="")
    return [move, *(r for r in changed if not (r.key == "-" and r.action == "update"))]


def arrival_update(step: Mapping[str, Any], entry: str | None) -> dict[str, Any] | None:
    """The update that stands for a tenant's arrival by `tenantctl reshard` (the destination bucket's create of
    its entry, ``step``): from the entry the source stack recorded to the destination's inputs; None without a
    readable entry. The recorded entry is the source's outputs, whose fingerprints are what the store holds; it
    does not record the master key version, which is taken as the destination's, so an arrival unchanged reads
    as no change."""
    kind = b.KINDS.get(type_name({"urn": _base_urn(step)}))
    if kind is None or entry is None:
        return None
    new = step_inputs(step, "newState")
    try:
        old = b.unpack(kind, _step_owner(step), entry, b.shared_of(kind, new))
    except b.BucketError:
        return None
    old = {**old, c.KEY_VERSION: new.get(c.KEY_VERSION)} if c.KEY_VERSION in new else old
    return {
        "op": "update",
        "urn": step.get("urn"),
        "oldState": {"inputs": old, "outputs": old},
        "newState": step.get("newState"),
    }

"""Creating shard stacks, and changing an environment's number of shards without touching a secret.

    tenantctl shards init --environment prod --count 16   create the missing stacks prod-02 .. prod-16
    tenantctl reshard --environment prod --from 2 --to 3  move each tenant whose shard changes

In an environment in regions (docs/decisions/0054-regions.md) each takes `--region`: a region's stacks
(`prod-eu`, `prod-eu-02` ..) are sharded apart from every other region's, among that region's tenants only;
another region's stacks and stores are not read or written.

A reshard moves state, never data (docs/decisions/0036): for each pair of stacks, `pulumi state move`
takes the moved tenants' InfisicalFolder and DatabaseTenant resources (their secret inputs re-encrypted
by the destination's secrets provider), then one `pulumi stack export`/`import` per stack puts the
moved resources back under the destination's InfisicalSecrets / DatabaseSecrets component (state move
parents a resource whose parent stays behind to the stack itself) and updates each stack's registry, so
no tenant reads as removed. A new stack first gets its own registry and provider from a `pulumi up`
targeting only its registry. Each stack's `tenant-secrets:shard` becomes k/M.

Stacks with buckets (`tenant-secrets:buckets`) hold several tenants in one resource, so no state moves
(docs/decisions/0053-tenants-per-resource.md, slice 3): each source stack's recorded bucket entry of a leaving
tenant names its destination (``moved_to``) and its registry drops it, each destination's provider records the
tenants that arrive with their recorded entries (for `tenantctl plan`), and the shard settings change. Then each
stack's next `pulumi up`, in any order, does the move: the destination's adopts the arrivals (read; written only
where a declared value changed since the source wrote it: the entries are in the stores), the source's forgets
the departures (nothing deleted, tenant_secrets/engine/deletes.py).

While it runs, every stack involved holds the unfinished-reshard marker in its state
(tenant_secrets/stack/reshard_marker.py): from before the first state move until the last stack is settled,
any `preview`, `up`, `refresh` or `destroy` of them is refused with the one command that finishes the job,
which is this one run again: every step is derived from the state and the stack files, so a run killed at
any point is finished by the next (docs/decisions/0043). The next preview of every stack then shows no
change (with buckets: once each stack's `up` has run); no store is written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.stack import reshard_marker
from tenant_secrets.stack.files import StackFile, StackFileError, StackInfo, discover, of_environment, of_region
from tenant_secrets.stack.settings import NAMESPACE
from tenant_secrets.stack.shards import MAX_SHARDS, Shard, shard_of, stack_name
from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import EnvironmentPlan, TenantsFileError, plan_environment
from tenant_secrets.tenants_file.sources import ConfigSource

Runner = Callable[[Sequence[str]], str]
MOVED_TYPES = (c.INFISICAL_FOLDER, c.DATABASE_TENANT)
BUCKET_TYPES = (c.INFISICAL_BUCKET, c.DATABASE_BUCKET)
"""Several tenants per resource (tenant_secrets/engine/buckets.py): a reshard of stacks holding them moves no
state (:func:`mark_departures`)."""
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
URNS_PER_MOVE = 1000
"""URNs per `pulumi state move` call, to stay well under the command line's limit."""


REGION_HELP = (
    "an environment in regions: that region's stacks only (<environment>-<region>, <environment>-<region>-02 ..), "
    "sharded among its own tenants; required there, refused in an environment without regions"
)


class ReshardError(Exception):
    """The reshard cannot start or go on; one line saying what and how to go on."""


def moves(subdomains: Iterable[str], old: int, new: int) -> dict[tuple[int, int], list[str]]:
    """(from shard, to shard) -> the tenants that move, for every pair that has any."""
    found: dict[tuple[int, int], list[str]] = {}
    for subdomain in sorted(set(subdomains)):
        pair = (shard_of(subdomain, old), shard_of(subdomain, new))
        if pair[0] != pair[1]:
            found.setdefault(pair, []).append(subdomain)
    return found


def _type(urn: str) -> str:
    """The last type of a URN's type chain: `tenant-secrets:index:InfisicalFolder` (or, in an older state,
    `pulumi-python:dynamic/tenants:InfisicalFolder`)."""
    return urn.split("::")[2].rsplit("$", 1)[-1]


def _rename(urn: str, stack: str) -> str:
    """The URN with another stack's name (the project stays)."""
    head, rest = urn.split("::", 1)
    return f"{head.rsplit(':', 1)[0]}:{stack}::{rest}"


def _unparented(urn: str, stack: str) -> str:
    """The URN `pulumi state move` gives a resource whose parent stays behind: in ``stack``, parented to the
    stack, so its URN loses the parent's type."""
    head, project, types, name = _rename(urn, stack).split("::", 3)
    return f"{head}::{project}::{types.rsplit('$', 1)[-1]}::{name}"


def _kind(urn: str) -> str:
    """`InfisicalFolder` from `...$tenant-secrets:index:InfisicalFolder::x`; "" for anything else."""
    return _type(urn).rsplit(":", 1)[-1] if urn.count("::") >= 3 else ""


def tenant_resources(deployment: Mapping[str, Any], owners: Iterable[str]) -> dict[str, str]:
    """URN -> parent URN of the InfisicalFolder and DatabaseTenant resources of ``owners``."""
    wanted = set(owners)
    found: dict[str, str] = {}
    for res in deployment.get("resources") or []:
        urn = str(res.get("urn", ""))
        if _kind(urn) in MOVED_TYPES and (res.get("inputs") or {}).get(c.OWNER) in wanted and res.get("custom"):
            found[urn] = str(res.get("parent", ""))
    return found


def holds_buckets(checkpoint: Mapping[str, Any]) -> bool:
    """Whether a stack's state holds several tenants per resource (a bucket type)."""
    resources = (checkpoint.get("deployment") or {}).get("resources") or []
    return any(_kind(str(r.get("urn", ""))) in BUCKET_TYPES for r in resources)


def _bucket_tenants(res: Mapping[str, Any]) -> tuple[b.BucketKind, dict[str, dict[str, Any]]] | None:
    """A bucket resource's kind and its recorded tenants (its outputs' entries, unpacked); None for any other
    resource or a bucket with no entries recorded."""
    kind = b.KINDS.get(_kind(str(res.get("urn", ""))))
    outputs = res.get("outputs") or {}
    if kind is None or not isinstance(outputs.get(c.TENANTS), Mapping):
        return None
    shared = b.shared_of(kind, outputs)
    tenants = {}
    for owner, packed in b.entries(outputs).items():
        if not isinstance(packed, str):
            raise ReshardError(
                f"{res['urn']}: the entry of {owner} is not a plain JSON string in the state; nothing was changed"
            )
        try:
            tenants[owner] = b.unpack(kind, owner, packed, shared)
        except b.BucketError as err:
            raise ReshardError(f"{res['urn']}: {err}; nothing was changed") from None
    return kind, tenants


def mark_departures(deployment: dict[str, Any], departures: Mapping[str, str]) -> bool:
    """A source stack of a reshard with buckets, which moves no state: each bucket's recorded entry of a tenant
    that leaves names the stack it moves to (``moved_to``; any other entry's mark is taken off), and the
    registry no longer lists the tenants that leave. The stack's next `up` then forgets them (the delete guard,
    tenant_secrets/engine/deletes.py), where a tenant gone unmarked stays refused. ``departures``: subdomain ->
    the stack it moves to. Derived from the arguments alone, so a reshard run again marks the same. Returns
    whether anything changed."""
    changed = False
    for res in deployment.get("resources") or []:
        found = _bucket_tenants(res)
        if found is None:
            continue
        kind, tenants = found
        for owner, entry in tenants.items():
            entry.pop(c.MOVED_TO, None)
            if owner in departures:
                entry[c.MOVED_TO] = departures[owner]
        outputs = res["outputs"]
        marked = b.join(kind, tenants, b.shared_of(kind, outputs))[c.TENANTS]
        changed |= marked != outputs[c.TENANTS]
        outputs[c.TENANTS] = marked
    registry = _registry(deployment.get("resources") or [])
    if registry is None:
        return changed
    for side in ("inputs", "outputs"):
        props = registry.setdefault(side, {})
        for name in (c.OWNERS, c.DECOMMISSIONED):
            kept = [owner for owner in props.get(name) or () if owner not in departures]
            changed |= kept != list(props.get(name) or ())
            props[name] = kept
    return changed


def recorded_entries(deployment: Mapping[str, Any], owners: Collection[str]) -> dict[str, dict[str, str]]:
    """Subdomain -> store -> the recorded entry (the packed JSON string of its bucket's outputs: fingerprints of
    what the store holds and bookkeeping, never a value) of each of ``owners`` in a source stack's buckets,
    without the reshard's own ``moved_to``: what the destination's plan compares the declared keys with."""
    found: dict[str, dict[str, str]] = {}
    for res in deployment.get("resources") or []:
        bucket = _bucket_tenants(res)
        if bucket is None:
            continue
        kind, tenants = bucket
        for owner in set(owners) & tenants.keys():
            entry = tenants[owner]
            entry.pop(c.MOVED_TO, None)
            found.setdefault(owner, {})[kind.store] = b.pack(kind, entry)
    return found


def held_tenants(deployment: Mapping[str, Any]) -> set[str]:
    """The owners whose InfisicalFolder or DatabaseTenant resources the state holds."""
    return {
        str((r.get("inputs") or {}).get(c.OWNER))
        for r in deployment.get("resources") or []
        if _kind(str(r.get("urn", ""))) in MOVED_TYPES and r.get("custom")
    }


def components_of(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Kind of child (InfisicalFolder, DatabaseTenant) -> its component's entry, from a stack that has them."""
    by_urn = {r["urn"]: r for r in deployment.get("resources") or []}
    found: dict[str, dict[str, Any]] = {}
    for res in by_urn.values():
        parent = by_urn.get(str(res.get("parent", "")))
        if _kind(res["urn"]) in MOVED_TYPES and parent is not None and parent.get("type") != ROOT_STACK_TYPE:
            found.setdefault(_kind(res["urn"]), parent)
    return found


def _registry(resources: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in resources if _type(str(r.get("urn", ""))).endswith(f":{c.REGISTRY}")), None)


def settle(
    deployment: dict[str, Any],
    stack: str,
    *,
    components: Mapping[str, Mapping[str, Any]],
    elsewhere: Collection[str],
    decommissioned: Mapping[str, bool],
) -> bool:
    """Make one stack's state what its program declares after moves: each tenant resource that `pulumi state
    move` parented to the stack back under its component (URN and parent; the component added when the stack
    has none), and the registry listing the tenants held here, not those now held only ``elsewhere``.
    Derived from the state alone, so a reshard run again after an interruption finishes the job. Returns
    whether anything changed."""
    resources: list[dict[str, Any]] = deployment.setdefault("resources", [])
    root = next((r["urn"] for r in resources if r.get("type") == ROOT_STACK_TYPE and not r.get("parent")), None)
    if root is None:
        return False
    present = {r["urn"]: r for r in resources}
    changed = False
    added: list[dict[str, Any]] = []
    for res in resources:
        kind = _kind(res["urn"])
        if kind not in MOVED_TYPES or res.get("parent") != root or kind not in components:
            continue
        entry = components[kind]
        component = _rename(entry["urn"], stack)
        if component not in present:
            present[component] = {**entry, "urn": component, "parent": root, "outputs": {}, "dependencies": []}
            added.append(present[component])
        head, project, types, name = res["urn"].split("::", 3)
        res["urn"], res["parent"] = f"{head}::{project}::{entry['type']}${types}::{name}", component
        changed = True
    index = next(i for i, r in enumerate(resources) if r["urn"] == root) + 1
    resources[index:index] = added  # a parent comes before its children
    registry = _registry(resources)
    if registry is None:
        return changed
    here = held_tenants(deployment)
    for side in ("inputs", "outputs"):
        props = registry.setdefault(side, {})
        old = (list(props.get(c.OWNERS) or ()), list(props.get(c.DECOMMISSIONED) or ()))
        owners = (set(old[0]) - (set(elsewhere) - here)) | {t for t in here if not decommissioned.get(t, False)}
        gone = (set(old[1]) - (set(elsewhere) - here)) | {t for t in here if decommissioned.get(t, False)}
        props[c.OWNERS], props[c.DECOMMISSIONED] = sorted(owners - gone), sorted(gone)
        changed |= (props[c.OWNERS], props[c.DECOMMISSIONED]) != (sorted(old[0]), sorted(old[1]))
    return changed


def registry_provider(resources: Sequence[dict[str, Any]]) -> tuple[str, str] | None:
    """The (URN, id) of the provider the stack's resources use (its registry's), if any."""
    registry = _registry(resources)
    ref = str((registry or {}).get("provider") or "")
    urn, _, provider_id = ref.rpartition("::")
    return (urn, provider_id) if urn else None


def align_provider(source: dict[str, Any], stack: str, target: tuple[str, str]) -> bool:
    """Give the source's provider (the one named as the destination's, ``target``: URN and id) the destination's
    id, so `pulumi state move` takes the destination's provider for the moved resources: it refuses a provider
    of the same URN with another id and other inputs, and a provider's inputs name its stack (or hold its whole
    config, the engine's default provider). False when there was nothing to change."""
    resources: list[dict[str, Any]] = source.get("resources") or []
    urn, provider_id = _rename(target[0], stack), target[1]
    provider = next((r for r in resources if r.get("urn") == urn), None)
    if provider is None or provider.get("id") == provider_id:
        return False
    old, new = f"{urn}::{provider['id']}", f"{urn}::{provider_id}"
    for res in resources:
        if res.get("provider") == old:
            res["provider"] = new
    provider["id"] = provider_id
    return True


def bootstrap(run: Runner, stack: str, registry_urn: str) -> None:
    """A new shard stack's own registry (and so its own provider), by a targeted `pulumi up` that
    creates nothing else: the registry records the tenants the stack's shard setting assigns to it."""
    run(["up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack, "--target", registry_urn])


def pulumi_runner(cwd: Path) -> Runner:
    """Runs the `pulumi` on PATH in ``cwd``; a failure is a ReshardError with pulumi's last line."""

    def run(args: Sequence[str]) -> str:
        done = subprocess.run(["pulumi", *args], cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
            raise ReshardError(f"`pulumi {' '.join(args[:2])}` failed: {last[0]}")
        return done.stdout

    return run


def _export(run: Runner, stack: str) -> dict[str, Any]:
    checkpoint: dict[str, Any] = json.loads(run(["stack", "export", "--stack", stack]))
    return checkpoint


def _import(run: Runner, stack: str, checkpoint: Mapping[str, Any]) -> None:
    """`pulumi stack import` from a private directory; the checkpoint's secrets stay encrypted."""
    with tempfile.TemporaryDirectory(prefix="tenantctl-reshard-") as directory:
        path = Path(directory) / f"{stack}.json"
        path.write_text(json.dumps(checkpoint))
        run(["stack", "import", "--stack", stack, "--file", str(path)])


def _stacks_by_index(stacks: Sequence[StackInfo], count: int) -> dict[int, str]:
    return {s.index: s.name for s in stacks if (s.shard.count if s.shard else 1) == count}


def check_config(root: Path, plan: EnvironmentPlan, arriving: Mapping[str, Sequence[str]]) -> None:
    """Before anything moves: each stack has the `{from: config}` values of the tenants it receives (an
    environment's shards share one config; a value set on one stack only would be missing after the move)."""

    tenants = {t.subdomain: t for t in plan.tenants}
    missing = []
    for stack, owners in sorted(arriving.items()):
        try:
            stack_file = StackFile.read(root / f"Pulumi.{stack}.yaml")
        except TenantsFileError as err:
            raise ReshardError(str(err.issues[0])) from None
        for owner in owners:
            for source in tenants[owner].secrets.values():
                if isinstance(source, ConfigSource) and not stack_file.has_secret(source.path):
                    missing.append(f"{stack}: secrets.{'.'.join(source.path)}")
    if missing:
        raise ReshardError(
            f"{len(missing)} value(s) the moved tenants need are not in their new stack's config "
            f"({', '.join(sorted(set(missing))[:5])}{', ...' if len(set(missing)) > 5 else ''}); set each there "
            "(`pulumi config set --secret --path 'secrets.<path>' --stack <stack>`), then run this again; nothing moved"
        )


def init_shards(
    root: Path,
    environment: str,
    count: int,
    run: Runner,
    *,
    secrets_provider: str | None = None,
    region: str | None = None,
) -> list[str]:
    """Create the stacks of shards 2..count that do not exist yet, each with shard 1's config (secrets copied
    by the CLI, and so its `region` and `buckets`) and `shard: k/count`. Shard 1 is the environment's (the
    region's) existing stack."""
    if not 1 <= count <= MAX_SHARDS:
        raise ReshardError(f"--count: a whole number from 1 to {MAX_SHARDS}")
    known = discover(root)
    owners = [s for s in of_region(known, environment, region) if s.index == 1]
    where = f"environment {environment}, region {region}," if region else f"environment {environment}"
    if len(owners) != 1:
        raise ReshardError(
            f"{where} needs exactly one stack of shard 1 (its own stack) to copy from; found "
            f"{', '.join(s.name for s in owners) or 'none'}"
        )
    names = {s.name for s in known}
    created = []
    for index in range(2, count + 1):
        name = stack_name(environment, index, region)
        if name in names:
            continue
        command = ["stack", "init", name, "--copy-config-from", owners[0].name, "--no-select"]
        run([*command, *(["--secrets-provider", secrets_provider] if secrets_provider else [])])
        run(["config", "set", "--stack", name, f"{NAMESPACE}:environment", environment])
        run(["config", "set", "--stack", name, f"{NAMESPACE}:shard", str(Shard(index, count))])
        created.append(name)
    return created


@dataclass(frozen=True)
class ReshardSummary:
    moved: dict[tuple[str, str], int]
    stacks: list[str]
    emptied: list[str]
    """Stacks of shards past the new count (shrinking): nothing left in them but their registry."""
    seconds: float
    by_up: bool = False
    """Stacks with buckets: nothing moved yet; each stack's next `up` adopts or forgets its moving tenants."""

    def lines(self) -> str:
        pairs = "; ".join(f"{src} -> {dst}: {n} tenant(s)" for (src, dst), n in sorted(self.moved.items()))
        total = sum(self.moved.values())
        if self.by_up:
            text = (
                f"marked {total} tenant(s) to move in {self.seconds:.1f} s ({pairs or 'none'}); shard settings "
                f"updated on {', '.join(self.stacks)}; commit their Pulumi.<stack>.yaml files, then run `pulumi up` "
                "on each stack, in any order: the destination adopts the tenants that arrive and the source forgets "
                "those that left; their previews show these as moves, which write nothing and delete nothing\n"
            )
        else:
            text = (
                f"moved {total} tenant(s) in {self.seconds:.1f} s ({pairs or 'none'}); shard settings updated on "
                f"{', '.join(self.stacks)}; commit their Pulumi.<stack>.yaml files; a preview of each shows no change\n"
            )
        for name in self.emptied:
            kept = " (its state only: the stores keep every entry, which the other stacks adopt)" if self.by_up else ""
            text += (
                f"{name} holds no tenant now: `pulumi stack rm --force --stack {name}`{kept}, and delete "
                f"Pulumi.{name}.yaml\n"
            )
        return text


def _before(known: Sequence[StackInfo], old: int, new: int) -> dict[int, str]:
    """The stacks of shards 1..old among ``known`` (one environment's, or one region's): each says k/old, or k/new
    already when an interrupted reshard set it (a run again finishes the job); an unsharded stack is shard 1 of
    1."""
    return {
        s.index: s.name for s in known if s.index <= old and ((s.shard.count in (old, new)) if s.shard else old == 1)
    }


def _settle_and_clear(
    run: Runner,
    everything: Sequence[str],
    *,
    components: Mapping[str, Mapping[str, Any]],
    decommissioned: Mapping[str, bool],
) -> None:
    """Each stack's state as its program declares it (`settle`), and its marker off, in one import per stack."""
    after_moves = {name: _export(run, name) for name in everything}
    holders = {name: held_tenants(cp.get("deployment") or {}) for name, cp in after_moves.items()}
    for name, checkpoint in after_moves.items():
        elsewhere = set().union(*(held for other, held in holders.items() if other != name))
        deployment = checkpoint.setdefault("deployment", {})
        settled = settle(deployment, name, components=components, elsewhere=elsewhere, decommissioned=decommissioned)
        if reshard_marker.clear(deployment) | settled:
            _import(run, name, checkpoint)


def _mark(run: Runner, name: str, command: str, checkpoint: dict[str, Any] | None = None) -> None:
    """The unfinished-reshard marker on one stack's provider, before anything of it moves."""
    checkpoint = checkpoint if checkpoint is not None else _export(run, name)
    if reshard_marker.mark(checkpoint.setdefault("deployment", {}), command):
        _import(run, name, checkpoint)


def _refuse_mixed_or_decommissioned(
    bucketed: Sequence[str],
    per_tenant: Sequence[str],
    planned: Mapping[tuple[int, int], Sequence[str]],
    decommissioned: Mapping[str, bool],
) -> None:
    """Before anything is written: no stack holding tenants in resources of their own beside stacks with buckets
    (``bucketed``), and no decommissioned tenant among the moving ones (the destination's `up` would apply its
    decommission again, in stores the source's already emptied)."""
    if per_tenant:
        raise ReshardError(
            f"stack(s) {', '.join(per_tenant)} hold one resource per tenant and {', '.join(bucketed)} hold buckets "
            "(tenant-secrets:buckets): give every stack of the environment the same layout and `pulumi up` each "
            "(docs/guides/operations.md, 'Buckets'), then run this again; nothing was changed"
        )
    leaving = sorted(owner for owners in planned.values() for owner in owners if decommissioned.get(owner))
    if leaving:
        raise ReshardError(
            f"decommissioned tenant(s) {', '.join(leaving[:5])}{', ...' if len(leaving) > 5 else ''} would change "
            "shard; finish each decommission first (`pulumi up` with the marker, then remove the tenant from the "
            "tenants file and `pulumi up`: its entry goes, nothing is written), then run this again; nothing was "
            "changed"
        )


def _reshard_buckets(
    run: Runner,
    *,
    before: Mapping[int, str],
    names: Mapping[int, str],
    exports: Mapping[int, Mapping[str, Any]],
    planned: Mapping[tuple[int, int], Sequence[str]],
    registry_urn: str,
    command: str,
) -> dict[tuple[str, str], int]:
    """The reshard of stacks with buckets, which moves no state (docs/decisions/0053-tenants-per-resource.md):
    under the unfinished-reshard marker, each source stack's state marks the tenants that leave it
    (:func:`mark_departures`) and each destination's provider the tenants that arrive, with their recorded
    entries (`reshard_marker.mark_arrivals`, :func:`recorded_entries`); then each stack's `shard` setting becomes
    k/M and the markers come off. The next `up` of a destination adopts its arrivals (they are in the stores:
    only a value declared differently since the source wrote it is written), the next
    `up` of a source forgets its departures (nothing is deleted), in any order. Every step is derived from the
    arguments, so a run killed at any point is finished by the same command. Returns the tenants marked per
    (source, destination) pair."""
    departures: dict[int, dict[str, str]] = {k: {} for k in names.keys() | before.keys()}
    arrivals: dict[int, dict[str, str]] = {k: {} for k in names.keys() | before.keys()}
    entries: dict[int, dict[str, dict[str, str]]] = {k: {} for k in names.keys() | before.keys()}
    for (src_k, dst_k), owners in planned.items():
        for owner in owners:
            departures[src_k][owner] = names[dst_k]
            arrivals[dst_k][owner] = before[src_k]
        entries[dst_k].update(recorded_entries(exports[src_k].get("deployment") or {}, owners))
    for index, name in sorted(before.items()):
        checkpoint = json.loads(json.dumps(exports[index]))
        deployment = checkpoint.setdefault("deployment", {})
        changed = reshard_marker.mark(deployment, command)
        changed |= mark_departures(deployment, departures[index])
        if reshard_marker.mark_arrivals(deployment, arrivals[index], entries[index]) | changed:
            _import(run, name, checkpoint)
    for index, name in sorted(names.items()):
        if index in before:
            continue
        if _registry((_export(run, name).get("deployment") or {}).get("resources") or []) is None:
            bootstrap(run, name, _rename(registry_urn, name))
        checkpoint = _export(run, name)
        deployment = checkpoint.setdefault("deployment", {})
        arrived = reshard_marker.mark_arrivals(deployment, arrivals[index], entries[index])
        if reshard_marker.mark(deployment, command) | arrived:
            _import(run, name, checkpoint)
    for index, name in sorted(names.items()):
        run(["config", "set", "--stack", name, f"{NAMESPACE}:shard", str(Shard(index, len(names)))])
    for name in sorted({*before.values(), *names.values()}):
        checkpoint = _export(run, name)
        if reshard_marker.clear(checkpoint.setdefault("deployment", {})):
            _import(run, name, checkpoint)
    return {(before[src], names[dst]): len(owners) for (src, dst), owners in planned.items()}


def reshard(
    root: Path,
    environment: str,
    old: int,
    new: int,
    *,
    run: Runner,
    tenants_file: str,
    region: str | None = None,
) -> ReshardSummary:
    """Move each tenant whose shard changes from ``old`` to ``new`` shards, state only (see the module). In an
    environment in regions, ``region``'s stacks and tenants only."""
    started = time.monotonic()
    if not (1 <= old <= MAX_SHARDS and 1 <= new <= MAX_SHARDS) or old == new:
        raise ReshardError(f"--from and --to: two different whole numbers from 1 to {MAX_SHARDS}")
    known = of_region(discover(root), environment, region)
    before = _before(known, old, new)
    where = f"environment {environment}, region {region}," if region else f"environment {environment}"
    if sorted(before) != list(range(1, old + 1)):
        raise ReshardError(
            f"{where} is not in {old} shard(s) now: its stack files name shard(s) "
            f"{', '.join(map(str, sorted(before))) or 'none'} of {old}"
        )
    after = {k: before.get(k) or _stacks_by_index(known, new).get(k) for k in range(1, new + 1)}
    missing = [stack_name(environment, k, region) for k, name in after.items() if name is None]
    if missing:
        flag = f" --region {region}" if region else ""
        raise ReshardError(
            f"no stack for shard(s) {', '.join(missing)}: create them with "
            f"`tenantctl shards init --environment {environment}{flag} --count {new}`, then run this again"
        )
    names: dict[int, str] = {k: str(name) for k, name in after.items()}
    try:
        plan = plan_environment(load_tenants_file(Path(root, tenants_file)), environment, region)
    except TenantsFileError as err:
        raise ReshardError(f"{tenants_file} is not valid ({err.issues[0]}): run `tenantctl validate`") from None
    decommissioned = {t.subdomain: t.decommission for t in plan.tenants}
    planned = moves(decommissioned, old, new)
    check_config(root, plan, {names[dst]: owners for (_src, dst), owners in planned.items()})
    moved: dict[tuple[str, str], int] = {}
    exports = {k: _export(run, name) for k, name in before.items()}
    registry = _registry((exports[1].get("deployment") or {}).get("resources") or [])
    if registry is None:
        raise ReshardError(f"stack {before[1]} has never been applied: run `pulumi up` on every shard first")
    command = reshard_marker.finish_command(environment, old, new, region)
    bucketed = [before[k] for k, checkpoint in sorted(exports.items()) if holds_buckets(checkpoint)]
    if bucketed:
        per_tenant = [
            before[k]
            for k, checkpoint in sorted(exports.items())
            if held_tenants(checkpoint.get("deployment") or {}) & decommissioned.keys()
        ]
        _refuse_mixed_or_decommissioned(bucketed, per_tenant, planned, decommissioned)
        marked = _reshard_buckets(
            run,
            before=before,
            names=names,
            exports=exports,
            planned=planned,
            registry_urn=registry["urn"],
            command=command,
        )
        emptied = [name for k, name in sorted(before.items()) if k > new]
        elapsed = time.monotonic() - started
        return ReshardSummary(marked, [names[k] for k in sorted(names)], emptied, elapsed, by_up=True)
    components: dict[str, dict[str, Any]] = {}
    for checkpoint in exports.values():
        components = components_of(checkpoint.get("deployment") or {}) | components
    for index, name in sorted(before.items()):
        _mark(run, name, command, json.loads(json.dumps(exports[index])))
    for index, name in sorted(names.items()):
        if index in before:
            continue
        if _registry((_export(run, name).get("deployment") or {}).get("resources") or []) is None:
            bootstrap(run, name, _rename(registry["urn"], name))
        _mark(run, name, command)
    for (src_k, dst_k), owners in sorted(planned.items()):
        src, dst = before[src_k], names[dst_k]
        found = tenant_resources(exports[src_k].get("deployment") or {}, owners)
        if not found:
            continue  # tenants declared but never applied, or moved by an earlier run: nothing to move
        target = registry_provider((_export(run, dst).get("deployment") or {}).get("resources") or [])
        current = _export(run, src)
        if target is not None and align_provider(current.setdefault("deployment", {}), src, target):
            _import(run, src, current)
        for start in range(0, len(found), URNS_PER_MOVE):
            batch = sorted(found)[start : start + URNS_PER_MOVE]
            run(["state", "move", "--source", src, "--dest", dst, "--yes", *batch])
        by_urn = {r["urn"]: r for r in (exports[src_k].get("deployment") or {}).get("resources") or []}
        moved[src, dst] = len({by_urn[urn]["inputs"][c.OWNER] for urn in found})
    for index, name in sorted(names.items()):
        run(["config", "set", "--stack", name, f"{NAMESPACE}:shard", str(Shard(index, new))])
    everything = sorted({*before.values(), *names.values()})
    _settle_and_clear(run, everything, components=components, decommissioned=decommissioned)
    emptied = [name for k, name in sorted(before.items()) if k > new]
    return ReshardSummary(moved, [names[k] for k in sorted(names)], emptied, time.monotonic() - started)


def init_command(args: argparse.Namespace) -> int:
    try:
        created = init_shards(
            Path.cwd(),
            args.environment,
            args.count,
            pulumi_runner(Path.cwd()),
            secrets_provider=args.secrets_provider,
            region=args.region,
        )
    except (ReshardError, StackFileError) as err:
        print(f"tenantctl shards init: {err}", file=sys.stderr)
        return 1
    print(f"created {', '.join(created) or 'no stack (all exist)'}; commit their Pulumi.<stack>.yaml files")
    return 0


def which_command(args: argparse.Namespace) -> int:
    """The stack that applies each named tenant in an environment (in one of its regions: a tenant the tenants
    file keeps out of that region is named with the regions it lives in instead, as no stack of it applies it)."""
    elsewhere: dict[str, tuple[str, ...]] = {}
    try:
        stacks = of_region(of_environment(discover(Path.cwd()), args.environment), args.environment, args.region)
        if args.region is not None:
            plan = plan_environment(load_tenants_file(Path.cwd() / args.file), args.environment, args.region)
            elsewhere = {t.subdomain: t.regions for t in plan.elsewhere}
    except StackFileError as err:
        print(f"tenantctl shards which: {err}", file=sys.stderr)
        return 1
    except TenantsFileError as err:
        print(
            f"tenantctl shards which: {args.file} is not valid ({err.issues[0]}): run `tenantctl validate`",
            file=sys.stderr,
        )
        return 1
    for subdomain in args.tenants:
        if subdomain in elsewhere:
            print(
                f"{subdomain}: no stack in {args.region}; its regions in {args.file}: {', '.join(elsewhere[subdomain])}"
            )
        else:
            print(f"{subdomain}: {stacks[shard_of(subdomain, len(stacks)) - 1].name}")
    return 0


def reshard_command(args: argparse.Namespace) -> int:
    try:
        summary = reshard(
            Path.cwd(),
            args.environment,
            args.old,
            args.new,
            run=pulumi_runner(Path.cwd()),
            tenants_file=args.file,
            region=args.region,
        )
    except (ReshardError, StackFileError) as err:
        print(f"tenantctl reshard: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(summary.lines())
    return 0


def add_parsers(commands: Any) -> None:
    """`tenantctl shards init` and `tenantctl reshard`."""
    group = commands.add_parser("shards", help="shard stacks of an environment (of one of its regions)")
    sub = group.add_subparsers(dest="shards_command", required=True)
    init = sub.add_parser("init", help="create the missing stacks of shards 2..N, config copied from shard 1's")
    init.add_argument("--environment", required=True)
    init.add_argument("--region", help=REGION_HELP)
    init.add_argument("--count", type=int, required=True, help="N, the number of shards (of the region's stacks)")
    init.add_argument("--secrets-provider", help="passed to `pulumi stack init` (default: the backend's)")
    init.set_defaults(run=init_command)
    which = sub.add_parser("which", help="the stack that applies each tenant")
    which.add_argument("--environment", required=True)
    which.add_argument("--region", help=REGION_HELP)
    which.add_argument("--file", default="tenants.yaml", help="the tenants file (default: tenants.yaml)")
    which.add_argument("tenants", nargs="+", help="subdomains")
    which.set_defaults(run=which_command)

    move = commands.add_parser(
        "reshard",
        help="change an environment's (a region's) number of shards: moves state only, never a secret (with buckets: "
        "marks the "
        "moving tenants in the stacks' state; each stack's next `pulumi up`, in any order, adopts or forgets them, "
        "writing and deleting nothing)",
    )
    move.add_argument("--environment", required=True)
    move.add_argument("--region", help=REGION_HELP)
    move.add_argument("--from", dest="old", type=int, required=True, help="the number of shards now")
    move.add_argument("--to", dest="new", type=int, required=True, help="the number of shards wanted")
    move.add_argument("--file", default="tenants.yaml", help="the tenants file (default: tenants.yaml)")
    move.set_defaults(run=reshard_command)

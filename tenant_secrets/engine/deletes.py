"""Which deletes of a tenant's store entry the provider makes, whatever the engine's plan asks
(docs/decisions/0043-unfinished-reshard-refuses.md).

The engine deletes a resource whenever the program stops declaring its URN, and a URN changes for reasons
that have nothing to do with a tenant leaving: a resource moved between stacks without its parent (an
interrupted reshard) is a new URN to the program and an orphan to delete, and deleting the orphan deletes
the very rows and folder its twin just adopted. So the provider judges each delete of an Infisical folder
or a tenant's rows by what it was told:

- the entry is a bucket's, and `tenantctl reshard` marked it as moving to another stack (its recorded entry's
  `moved_to`), and no resource of this run declares its owner -- *forgotten*: the destination stack holds it
  (its `up` adopts the entry, or has), so neither an `up` nor `pulumi destroy` of this stack deletes it
  (docs/decisions/0053-tenants-per-resource.md, slice 3);
- the entry was decommissioned (`decommission: true`, applied: its state says so) -- deleted;
- in an `up`, whose program declared the stack's registry to this provider before any delete: the plan
  replaces this very resource (its URN is declared), or the owner is still declared without this store
  (a store dropped from its `storage`, reviewed in tenants.yaml) -- deleted;
- in `pulumi destroy`, the operator's command for the whole stack (on a stack that does not retain;
  a retaining stack never calls delete) -- deleted;
- in an `up`, the same owner's entry in the same store is declared by another resource of this run that
  holds it, and one of the two is a bucket (tenant_secrets/engine/buckets.py): the stack moved between
  per-tenant resources and buckets, or between bucket counts (docs/decisions/0053-tenants-per-resource.md,
  "Moving a stack, and back"); the other resource's create adopted the entry -- *forgotten*: the engine
  drops the old resource from the state, and neither store loses anything;
- anything else is refused with one line, and nothing is deleted: an owner the program still declares
  under another per-tenant resource (a reshard interrupted), an owner that vanished unmarked, a delete
  outside both kinds of run. The line names the marker that deletes: `decommission: true`, or on a region's
  stack (the registry declares its region) `decommission: [<region>]`, which deletes in that region only
  (docs/decisions/0054-regions.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c

GUARDED = {c.INFISICAL_FOLDER: "Infisical folder", c.DATABASE_TENANT: "database rows"}
"""The resource types whose delete removes a tenant's (or platform folder's) secrets, and what each holds."""
_DESTROY = {"destroy", "down", "dn"}


@dataclass
class RunDeclarations:
    """What the program of this run declared, as the provider saw it in `Check` (which the engine calls for
    every declared resource before it deletes any)."""

    checked: set[str] = field(default_factory=set)
    """URNs declared."""
    declared: set[tuple[str, str]] = field(default_factory=set)
    """(type name, owner) declared; a bucket's tenants under the per-tenant type (``InfisicalFolder``)."""
    holders: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(type name, owner) -> the URNs of the resources that declare it: its own resource's, or its bucket's."""
    owners: set[str] | None = None
    """The owners the registry declares (kept or decommissioned); None until the registry is checked."""
    region: str | None = None
    """The stack's region, as its registry declares it (None: a stack without regions, or no registry seen)."""

    def saw(self, urn: str, type_name: str, news: Mapping[str, Any]) -> None:
        """Record one `Check` of the program's resources."""
        self.checked.add(urn)
        if type_name == c.REGISTRY:
            self.owners = {*map(str, news.get(c.OWNERS) or ()), *map(str, news.get(c.DECOMMISSIONED) or ())}
            self.region = str(news[c.REGION]) if news.get(c.REGION) else None
        elif type_name in b.KINDS:  # a bucket declares each of its tenants' store entries
            member = b.KINDS[type_name].member_type
            for owner in b.entries(news):
                self._holds(urn, (member, owner))
        elif news.get(c.OWNER):
            self._holds(urn, (type_name, str(news[c.OWNER])))

    def _holds(self, urn: str, entry: tuple[str, str]) -> None:
        self.declared.add(entry)
        self.holders.setdefault(entry, set()).add(urn)


@dataclass(frozen=True)
class Verdict:
    """What the provider does with a delete the engine asks for: ``delete`` the store entry, ``forget`` it (the
    engine drops the resource; the entry stays, held by another resource of this run), or ``refuse`` (nothing
    is deleted, the run fails). ``reason``: one line naming the owner and store (empty for a delete)."""

    action: Literal["delete", "forget", "refuse"]
    reason: str = ""


DELETE = Verdict("delete")


def _is_bucket(urn: str) -> bool:
    """Whether a URN (or a bucket tenant's pseudo-URN ``<bucket URN>/<subdomain>``) is a bucket's."""
    return c.urn_type_name(urn) in b.KINDS


def _resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def is_destroy(command_lines: Iterable[Sequence[str]]) -> bool:
    """Whether the engine that runs this provider is `pulumi destroy` (or `down`): the first word of a
    `pulumi` command line, after its flags, among this process's ancestors."""
    for argv in command_lines:
        if not argv or argv[0].rsplit("/", 1)[-1] != "pulumi":
            continue
        words = [word for word in argv[1:] if not word.startswith("-")]
        return bool(words) and words[0] in _DESTROY
    return False


def judge(urn: str, type_name: str, props: Mapping[str, Any], run: RunDeclarations, *, destroying: bool) -> Verdict:
    """What to do with the delete of one store entry: ``urn`` is the deleted resource's (for a tenant gone from a
    bucket that stays, ``<bucket URN>/<subdomain>``), ``type_name`` the per-tenant type (``InfisicalFolder``)."""
    what = GUARDED.get(type_name)
    if what is None:
        return DELETE
    owner = str(props.get(c.OWNER) or _resource_name(urn))
    moved_to = props.get(c.MOVED_TO)
    if moved_to and (type_name, owner) not in run.declared and owner not in (run.owners or ()):
        return Verdict("forget", f"{owner}, {what}: moved to {moved_to} by `tenantctl reshard`; nothing deleted")
    if props.get(c.DECOMMISSION):
        return DELETE
    refused = f"{owner}, {what}: not deleted"
    if run.owners is None:
        if destroying:
            return DELETE
        return Verdict(
            "refuse",
            f"{refused}: the engine asked for a delete outside an `up` of this stack's program and outside "
            "`pulumi destroy`; decommission the owner in tenants.yaml (`decommission: true`, or on a region's stack "
            "`decommission: [<region>]`) and run `pulumi up`",
        )
    if urn in run.checked:
        return DELETE  # the plan replaces this very resource
    itself = urn.rsplit("/", 1)[0] if _is_bucket(urn) else urn  # a bucket's tenant: the bucket holds it no more
    others = sorted(run.holders.get((type_name, owner), set()) - {urn, itself})
    moved = [holder for holder in others if _is_bucket(urn) or _is_bucket(holder)]
    if moved:
        return Verdict(
            "forget",
            f"{owner}, {what}: moved to {_resource_name(moved[0])}, which holds it in this run; nothing deleted",
        )
    if owner in run.owners and (type_name, owner) not in run.declared:
        return DELETE  # a store dropped from the owner's storage, reviewed in tenants.yaml
    if (type_name, owner) in run.declared:
        return Verdict(
            "refuse",
            f"{refused}: this stack still declares it under another resource name ({_resource_name(urn)} "
            "lost its parent: a reshard was interrupted?); run the reshard again "
            "(docs/guides/operations.md, 'Shards: past one stack'), or `pulumi state delete` the stray resource",
        )
    if run.region is not None:
        return Verdict(
            "refuse",
            f"{refused}: it is gone from region {run.region} in tenants.yaml without its decommission marker; give "
            f"its entry `decommission: [{run.region}]` (it deletes in {run.region} only; `decommission: true`: in "
            "every region) and run `pulumi up`",
        )
    return Verdict(
        "refuse",
        f"{refused}: it is gone from tenants.yaml without its decommission marker; declare it again with "
        "`decommission: true` and run `pulumi up`, then remove it",
    )

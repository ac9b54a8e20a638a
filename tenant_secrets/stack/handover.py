"""The handover guard: a region's stack deletes a tenant that moves to other regions only once each of those
regions holds it (docs/decisions/0054-regions.md, "The handover guard").

A move is two reviewed changes: add the new region and apply; then `decommission: [<old region>]`. The
second change deletes the tenant's folder and rows in the old region, so before a stack of the old region
applies it, each region the tenant still lives in must have applied a commit that declares the tenant
there: the stack of that region that holds the tenant (its shard) recorded an applied commit (its stack tag,
`applied`) whose tenants.yaml plans the tenant in that region and environment, not decommissioned. Regions
never read each other's stores; the tags are in the backend they share, readable with its login alone.

A tenant decommissioned everywhere (`decommission: true`) leaves every region and is not a handover. A
tenant this stack already deleted (its own applied commit decommissions it here) is not checked again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tenant_secrets.stack.applied import Runner, read_applied
from tenant_secrets.stack.files import StackFileError, StackInfo, of_region
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import TenantsFile, TenantsFileError, plan_environment

TENANTS_FILE = "tenants.yaml"

GitRunner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
"""Runs `git <args>` in the repository and returns the finished process."""


def git_runner(root: Path) -> GitRunner:
    """The `git` on PATH, run in the checkout ``root``."""

    def run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)

    return run


@dataclass(frozen=True)
class Handover:
    """A tenant this stack deletes (decommissioned in its region) that lives on in ``regions``."""

    subdomain: str
    regions: tuple[str, ...]


def handovers(head: TenantsFile, stack: StackInfo) -> list[Handover]:
    """The tenants of ``stack``'s shard that are decommissioned in its region and still live in other regions
    of its environment. None in a file without regions or for a stack without one."""
    doc = head.document
    if stack.region is None or doc.regions is None:
        return []
    found = []
    for tenant in doc.tenants:
        if tenant.decommission is True or not tenant.leaves(stack.region):
            continue
        if stack.shard is not None and not stack.shard.holds(tenant.subdomain):
            continue
        if stack.environment not in (tenant.environments or doc.defaults.environments):
            continue
        remaining = tuple(r for r in doc.regions_of(tenant) or () if r != stack.region)
        if remaining:
            found.append(Handover(tenant.subdomain, remaining))
    return found


class _Applied:
    """Each stack's applied commit and each commit's tenants.yaml, read once."""

    def __init__(self, pulumi: Runner, git: GitRunner) -> None:
        self.pulumi = pulumi
        self.git = git
        self.commits: dict[str, str | None] = {}
        self.files: dict[str, TenantsFile | str] = {}

    def commit(self, stack: str) -> str | None:
        if stack not in self.commits:
            self.commits[stack] = read_applied(stack, self.pulumi)
        return self.commits[stack]

    def file(self, commit: str) -> TenantsFile | str:
        """The tenants file at ``commit``, or why it cannot be read."""
        if commit not in self.files:
            done = self.git(["show", f"{commit}:{TENANTS_FILE}"])
            if done.returncode != 0:
                self.files[commit] = f"its {TENANTS_FILE} cannot be read from this checkout (fetch the full history)"
            else:
                try:
                    self.files[commit] = parse_tenants(done.stdout, TENANTS_FILE)
                except TenantsFileError:
                    self.files[commit] = f"its {TENANTS_FILE} is not valid"
        return self.files[commit]


def _holds(tf: TenantsFile, subdomain: str, environment: str, region: str) -> bool:
    """Whether ``tf`` plans the tenant in ``environment`` and ``region``, not decommissioned there."""
    try:
        plan = plan_environment(tf, environment, region)
    except TenantsFileError:
        return False  # a file without that region (or environment) holds nothing there
    return any(t.subdomain == subdomain and not t.decommission for t in plan.tenants)


def _holders(stacks: Sequence[StackInfo], subdomain: str) -> list[StackInfo]:
    """The stacks of one region whose shard holds the tenant (two during a reshard: both must hold it)."""
    return [s for s in stacks if s.shard is None or s.shard.holds(subdomain)]


def refusals(
    head: TenantsFile, stack: StackInfo, stacks: Sequence[StackInfo], pulumi: Runner, git: GitRunner
) -> list[str]:
    """One line per tenant ``stack`` would delete in a handover before every region it moves to holds it: the
    tenant, the regions not yet holding it, their stacks, and what to do. Empty: nothing to wait for.
    AppliedError when the backend cannot say a stack's applied commit."""
    moving = handovers(head, stack)
    if not moving:
        return []
    applied = _Applied(pulumi, git)
    own = applied.commit(stack.name)
    own_file = applied.file(own) if own else None
    lines = []
    for move in moving:
        if isinstance(own_file, TenantsFile) and _left(own_file, move.subdomain, stack.region):
            continue  # this stack applied the decommission already: nothing of the tenant is left to delete here
        waiting: list[str] = []
        for region in move.regions:
            try:
                holders = _holders(of_region(stacks, stack.environment, region), move.subdomain)
            except StackFileError as err:
                waiting.append(f"{region} ({err})")
                continue
            if not holders:
                waiting.append(f"{region} (no stack of region {region} holds it: its shards are incomplete)")
            for holder in holders:
                commit = applied.commit(holder.name)
                if commit is None:
                    waiting.append(f"{region} (stack {holder.name} has applied no commit)")
                    continue
                at = applied.file(commit)
                if isinstance(at, str):
                    waiting.append(f"{region} (stack {holder.name} applied {commit[:12]}: {at})")
                elif not _holds(at, move.subdomain, stack.environment, region):
                    not_there = "which does not declare it there"
                    waiting.append(f"{region} (stack {holder.name} applied {commit[:12]}, {not_there})")
        if waiting:
            lines.append(
                f"tenant {move.subdomain}: stack {stack.name} would delete it in region {stack.region} before the "
                f"region(s) it moves to hold it: {'; '.join(waiting)}. Deploy those stacks first (rerun their failed "
                "deploy jobs, or approve them); this refusal lifts by itself once they have applied it"
            )
    return lines


def _left(tf: TenantsFile, subdomain: str, region: str | None) -> bool:
    """Whether ``tf`` decommissions the tenant in ``region``: a stack that applied it has deleted the tenant."""
    return any(t.subdomain == subdomain and t.leaves(region) for t in tf.document.tenants)

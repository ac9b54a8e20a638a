"""`tenantctl affected --base <ref>`: the stacks a change touches, so CI previews and applies only those.

    changed code (components/, tenant_secrets/, __main__.py, Pulumi.yaml, requirements.lock)  -> every stack
    Pulumi.<stack>.yaml                                                                      -> that stack
    tenants.yaml: a tenant's entry as its environment sees it                                -> the tenant's shard
                  a platform folder                                                          -> the owner shard
    tenants.yaml that does not load (at the base or here)                                    -> every stack

Defaults and groups reach a tenant through its resolved plan, so a changed default touches exactly the
tenants (in the environments) it changes. The stacks are the repository's Pulumi.<stack>.yaml files
(tenant_secrets/stack/files.py).

`--since-applied` compares each stack with the commit it last applied (its stack tag, tenant_secrets/
stack/applied.py) rather than one base for all: what a failed or never-approved deploy left undone is
applied by the next one, whatever that one's push touched. A stack that never recorded a commit, or
whose commit this checkout lacks, is applied in full (docs/decisions/0045).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tenant_secrets.stack.files import STACK_FILE, StackInfo, discover, of_environment
from tenant_secrets.stack.shards import shard_of
from tenant_secrets.tenants_file.gc_pause import gc_paused
from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import (
    EnvironmentPlan,
    FolderPlan,
    TenantPlan,
    TenantsFile,
    TenantsFileError,
    plan_before,
    plan_environment,
)

CODE = ("components/", "tenant_secrets/", "__main__.py", "Pulumi.yaml", "requirements.lock")
TENANTS_FILE = "tenants.yaml"


class AffectedError(Exception):
    """git or a stack file could not say what changed; one line."""


@dataclass(frozen=True)
class MatrixEntry:
    """One stack as a GitHub Actions matrix entry: the deploy's jobs read these fields."""

    stack: str
    environment: str
    shard: str
    """k/N, or 1/1 for an unsharded stack."""
    owner: bool
    """Whether the stack owns the environment (its schema and key folder): owners are applied first."""
    region: str | None = None
    """The stack's region; the entry has no `region` field without one (docs/decisions/0054-regions.md)."""

    @classmethod
    def of(cls, s: StackInfo) -> MatrixEntry:
        return cls(s.name, s.environment, str(s.shard or "1/1"), s.owner, s.region)


@dataclass(frozen=True)
class Affected:
    """The stacks to preview or apply, each with why."""

    stacks: tuple[StackInfo, ...]
    reasons: dict[str, list[str]]
    untouched: tuple[str, ...]
    """The other stacks' names."""

    def lines(self) -> str:
        return "".join(f"{s.name}\n" for s in self.stacks)

    def matrix(self) -> str:
        """JSON for a GitHub Actions matrix: every stack, and the owner shards apart from the others
        (the deploy applies owners first)."""

        def entry(s: StackInfo) -> dict[str, str | bool]:
            return {k: v for k, v in asdict(MatrixEntry.of(s)).items() if v is not None}

        return json.dumps(
            {
                "stacks": [entry(s) for s in self.stacks],
                "owners": [entry(s) for s in self.stacks if s.owner],
                "others": [entry(s) for s in self.stacks if not s.owner],
                "untouched": list(self.untouched),
            }
        )


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        reason = (getattr(err, "stderr", "") or str(err)).strip().splitlines()[-1:] or ["git failed"]
        raise AffectedError(f"git {' '.join(args)}: {reason[0]}") from None
    return done.stdout


def changed_paths(root: Path, base: str) -> list[str]:
    """Paths that differ between ``base`` and the working tree (committed or not), and untracked files."""
    tracked = _git(root, "diff", "--name-only", "--no-renames", base, "--").splitlines()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard").splitlines()
    return sorted({p for p in (*tracked, *untracked) if p})


def _tenants_at(root: Path, base: str) -> TenantsFile | None:
    """tenants.yaml at ``base``; None when it is absent or does not load."""
    try:
        text = _git(root, "show", f"{base}:{TENANTS_FILE}")
    except AffectedError:
        return None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / TENANTS_FILE
        path.write_text(text, encoding="utf-8")
        try:
            return load_tenants_file(path)
        except TenantsFileError:
            return None


def _owners(plan: EnvironmentPlan) -> tuple[dict[str, TenantPlan], dict[str, FolderPlan]]:
    """Each tenant's and each platform folder's entry as the stores see it (positions left out)."""
    tenants = {t.subdomain: replace(t, locations={}, fields={}) for t in plan.tenants}
    folders = {f.name: replace(f, locations={}, fields={}) for f in plan.platform}
    return tenants, folders


def changed_owners(
    base: TenantsFile, head: TenantsFile, environment: str, region: str | None = None
) -> tuple[set[str], bool]:
    """The tenants whose entry differs in ``environment`` (and ``region``: a region the base does not declare
    held nothing), and whether a platform folder does.

    A tenant's entry is made of its own part of the file and the defaults alone: when the defaults are
    the same at both ends, the tenants written the same are left out before planning (a pull request
    changes a few tenants of thousands), and only the others are planned and compared."""
    with gc_paused():
        if base.document.defaults == head.document.defaults:
            base, head = _differing_tenants(base, head)
        old_plan = plan_before(base, environment, region)
        old_tenants, old_folders = _owners(old_plan) if old_plan is not None else ({}, {})
        new_tenants, new_folders = _owners(plan_environment(head, environment, region))
        tenants = {s for s in old_tenants.keys() | new_tenants.keys() if old_tenants.get(s) != new_tenants.get(s)}
        return tenants, old_folders != new_folders


def _differing_tenants(base: TenantsFile, head: TenantsFile) -> tuple[TenantsFile, TenantsFile]:
    """Both files with only the tenants that are not written the same in both (by subdomain, which a
    valid file has once). Their positions no longer match their indexes: `_owners` leaves them out."""
    old = {t.subdomain: t for t in base.document.tenants}
    new = {t.subdomain: t for t in head.document.tenants}
    differing = {s for s in old.keys() | new.keys() if old.get(s) != new.get(s)}

    def only(tf: TenantsFile) -> TenantsFile:
        kept = [t for t in tf.document.tenants if t.subdomain in differing]
        return replace(tf, document=tf.document.model_copy(update={"tenants": kept}))

    return only(base), only(head)


def affected(root: Path, base: str, stacks: Sequence[StackInfo] | None = None) -> Affected:
    """The stacks of the project in ``root`` that the changes since ``base`` touch."""
    links = [p.name for p in (root / TENANTS_FILE, *root.glob("Pulumi.*.yaml")) if p.is_symlink()]
    if links:  # read as data from a pull request's checkout: never follow a link out of it
        raise AffectedError(f"{', '.join(sorted(links))}: a symbolic link; data files must be regular files")
    stacks = list(stacks if stacks is not None else discover(root))
    paths = changed_paths(root, base)
    reasons: dict[str, list[str]] = {}

    def touch(chosen: Iterable[StackInfo], why: str) -> None:
        for stack in chosen:
            reasons.setdefault(stack.name, []).append(why)

    code = [p for p in paths if p.startswith(CODE[:2]) or p in CODE[2:]]
    if code:
        touch(stacks, f"code changed ({code[0]}{', ...' if len(code) > 1 else ''})")
    for path in paths:
        match = STACK_FILE.fullmatch(path)
        if match:
            touch((s for s in stacks if s.name == match[1]), f"{path} changed")
    if TENANTS_FILE in paths:
        base_file = _tenants_at(root, base)
        try:
            head_file = load_tenants_file(root / TENANTS_FILE)
        except TenantsFileError:
            head_file = None
        if base_file is None or head_file is None:
            touch(stacks, f"{TENANTS_FILE} does not load at {base if base_file is None else 'the working tree'}")
        else:
            for environment in sorted({s.environment for s in stacks}):
                in_environment = of_environment(stacks, environment)
                for region in sorted({s.region for s in in_environment}, key=lambda r: r or ""):
                    shard_stacks = sorted((s for s in in_environment if s.region == region), key=lambda s: s.index)
                    count = len(shard_stacks)
                    tenants, platform = changed_owners(base_file, head_file, environment, region)
                    if platform:
                        touch((s for s in shard_stacks if s.owner), "a platform folder changed")
                    for subdomain in sorted(tenants):
                        touch([shard_stacks[shard_of(subdomain, count) - 1]], f"tenant {subdomain} changed")
    chosen = tuple(s for s in stacks if s.name in reasons)
    untouched = tuple(s.name for s in stacks if s.name not in reasons)
    return Affected(chosen, reasons, untouched)


def _has_commit(root: Path, commit: str) -> bool:
    try:
        _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    except AffectedError:
        return False
    return True


def since_applied(root: Path, applied: Mapping[str, str | None], stacks: Sequence[StackInfo] | None = None) -> Affected:
    """The stacks whose changes since the commit each last applied (``applied``: stack -> commit or None)
    are not yet applied. A stack without a commit, or with one this checkout lacks, is applied in full."""
    stacks = list(stacks if stacks is not None else discover(root))
    reasons: dict[str, list[str]] = {}
    by_base: dict[str, list[StackInfo]] = {}
    for stack in stacks:
        commit = applied.get(stack.name)
        if not commit:
            reasons[stack.name] = ["no applied commit recorded (every change applies)"]
        elif not _has_commit(root, commit):
            missing = f"its last applied commit {commit[:12]} is not in this checkout (every change applies)"
            reasons[stack.name] = [missing]
        else:
            by_base.setdefault(commit, []).append(stack)
    for commit, group in by_base.items():
        found = affected(root, commit, stacks)  # all of them: a tenant's shard is counted among its environment's
        for name in {s.name for s in group} & found.reasons.keys():
            reasons[name] = [f"since {commit[:12]} (its last applied commit): {w}" for w in found.reasons[name]]
    chosen = tuple(s for s in stacks if s.name in reasons)
    untouched = tuple(s.name for s in stacks if s.name not in reasons)
    return Affected(chosen, reasons, untouched)


@dataclass(frozen=True)
class Standing:
    """Where a stack stands against the checkout's HEAD (the nightly verify prints one line each)."""

    stack: str
    behind: bool
    line: str


def standings(root: Path, applied: Mapping[str, str | None], stacks: Sequence[StackInfo]) -> list[Standing]:
    """Each stack: behind HEAD when a change since its applied commit (or no commit at all) is not applied;
    a stack whose later commits touch nothing of it is up to date though its commit is older."""
    head = _git(root, "rev-parse", "HEAD").strip()
    pending = since_applied(root, applied, stacks)
    found: list[Standing] = []
    for stack in stacks:
        commit = applied.get(stack.name)
        if stack.name in pending.reasons:
            line = (
                f"stack {stack.name} is behind HEAD {head[:12]}: {'; '.join(pending.reasons[stack.name])}. Rerun the "
                "failed deploy jobs, or run the deploy workflow by hand (it applies every stack)"
            )
            found.append(Standing(stack.name, True, line))
        elif commit == head:
            found.append(Standing(stack.name, False, f"stack {stack.name} applied HEAD {head[:12]}"))
        else:
            line = f"stack {stack.name} is up to date: last applied {(commit or '')[:12]}, and nothing since touches it"
            found.append(Standing(stack.name, False, line))
    return found

"""The handover guard (tenant_secrets/stack/handover.py, docs/decisions/0054-regions.md): a region's stack deletes
a tenant moving to other regions only once the stack holding it in each of them applied a commit declaring it
there. The backend's tags and git's history are stand-ins here; `tenantctl handover-check` runs on a real git
repository at the end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tenant_secrets.stack import applied
from tenant_secrets.stack.files import StackInfo, from_text
from tenant_secrets.stack.handover import handovers, refusals
from tenant_secrets.stack.shards import shard_of
from tenant_secrets.tenantctl.main import main
from tenant_secrets.tenants_file.loader import parse_tenants
from tests.e2e.conftest import git

US_ONLY = "regions: [us]"
BOTH = "regions: [us, eu]"
MOVED = "regions: [eu]\n    decommission: [us]"
GONE = "regions: [eu]\n    decommission: true"
EU_SHARDS = 2


def tenants_yaml(acme: str) -> str:
    return (
        "version: 1\nregions: [eu, us]\ndefaults: {storage: infisical, environments: [prod]}\ntenants:\n"
        f"  - subdomain: acme\n    {acme}\n    secrets:\n      PLAN: {{value: fake-plan}}\n"
        "  - subdomain: bravo\n    regions: [eu]\n    secrets:\n      PLAN: {value: fake-plan}\n"
    )


def stack_file(region: str, shard: str | None) -> str:
    text = f"config:\n  tenant-secrets:environment: prod\n  tenant-secrets:region: {region}\n"
    return text + (f'  tenant-secrets:shard: "{shard}"\n' if shard else "")


STACKS = [
    from_text("prod-us", stack_file("us", None)),
    from_text("prod-eu", stack_file("eu", f"1/{EU_SHARDS}")),
    from_text("prod-eu-02", stack_file("eu", f"2/{EU_SHARDS}")),
]
US = STACKS[0]
EU_HOLDER = STACKS[shard_of("acme", EU_SHARDS)]  # prod-eu or prod-eu-02: the eu shard that holds acme
COMMITS = {"c1" * 20: tenants_yaml(US_ONLY), "c2" * 20: tenants_yaml(BOTH), "c3" * 20: tenants_yaml(MOVED)}
V1, V2, V3 = COMMITS


class Backend:
    """`pulumi stack tag ls --json`: each stack's applied commit; a stack absent here has recorded none."""

    def __init__(self, applied_commits: dict[str, str]) -> None:
        self.applied = applied_commits
        self.asked: list[str] = []

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        stack = args[args.index("--stack") + 1]
        self.asked.append(stack)
        tags = {applied.TAG: self.applied[stack]} if stack in self.applied else {}
        return subprocess.CompletedProcess(args, 0, json.dumps(tags), "")


def git_show(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`git show <commit>:tenants.yaml` of the commits above; any other commit is not in the checkout."""
    commit = args[1].split(":")[0]
    if commit in COMMITS:
        return subprocess.CompletedProcess(args, 0, COMMITS[commit], "")
    return subprocess.CompletedProcess(args, 128, "", f"fatal: invalid object name '{commit}'\n")


def check(head: str, applied_commits: dict[str, str], stack: StackInfo = US) -> list[str]:
    return refusals(parse_tenants(head), stack, STACKS, Backend(applied_commits).run, git_show)


def test_refused_while_the_new_region_applied_a_commit_before_it_held_the_tenant() -> None:
    lines = check(tenants_yaml(MOVED), {"prod-us": V2, EU_HOLDER.name: V1})
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("tenant acme: stack prod-us would delete it in region us")
    assert f"eu (stack {EU_HOLDER.name} applied {V1[:12]}, which does not declare it there)" in line
    assert "Deploy those stacks first" in line and "lifts by itself" in line


def test_allowed_once_the_new_regions_stack_applied_the_tenant() -> None:
    assert check(tenants_yaml(MOVED), {"prod-us": V2, EU_HOLDER.name: V2}) == []
    assert check(tenants_yaml(MOVED), {"prod-us": V2, EU_HOLDER.name: V3}) == []


def test_a_stack_without_an_applied_commit_does_not_hold_the_tenant() -> None:
    other_eu = next(s for s in STACKS[1:] if s != EU_HOLDER)
    lines = check(tenants_yaml(MOVED), {"prod-us": V2, other_eu.name: V2})
    assert [f"eu (stack {EU_HOLDER.name} has applied no commit)" in line for line in lines] == [True]


def test_an_applied_commit_missing_from_the_checkout_refuses_and_says_why() -> None:
    lines = check(tenants_yaml(MOVED), {"prod-us": V2, EU_HOLDER.name: "ff" * 20})
    assert len(lines) == 1 and "cannot be read from this checkout (fetch the full history)" in lines[0]


def test_decommissioned_everywhere_is_not_a_handover_and_reads_no_tag() -> None:
    backend = Backend({})
    assert handovers(parse_tenants(tenants_yaml(GONE)), US) == []
    assert refusals(parse_tenants(tenants_yaml(GONE)), US, STACKS, backend.run, git_show) == []
    assert backend.asked == []


def test_only_the_leaving_regions_stack_checks() -> None:
    assert handovers(parse_tenants(tenants_yaml(MOVED)), EU_HOLDER) == []
    assert [(h.subdomain, h.regions) for h in handovers(parse_tenants(tenants_yaml(MOVED)), US)] == [("acme", ("eu",))]


def test_a_delete_the_stack_already_applied_is_not_checked_again() -> None:
    """us applied the move: acme is gone there, so a later eu reshard (a new shard without a tag) blocks nothing."""
    assert check(tenants_yaml(MOVED), {"prod-us": V3}) == []


def test_tenantctl_handover_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command on a repository: the move refused while eu's stack applied the first commit, and passed once
    it applied the second."""
    for stack in STACKS:
        shard = f"{stack.shard}" if stack.shard else None
        (tmp_path / f"Pulumi.{stack.name}.yaml").write_text(stack_file(stack.region or "", shard))
    git(tmp_path, "init", "-q", "-b", "main")
    made = []
    for acme in (US_ONLY, BOTH, MOVED):
        (tmp_path / "tenants.yaml").write_text(tenants_yaml(acme))
        git(tmp_path, "add", ".")
        git(tmp_path, "commit", "-qm", acme)
        made.append(git(tmp_path, "rev-parse", "HEAD"))
    backend = Backend({"prod-us": made[1], EU_HOLDER.name: made[0]})
    monkeypatch.setattr(applied, "pulumi_runner", lambda cwd: backend.run)
    monkeypatch.chdir(tmp_path)

    assert main(["handover-check", "--stack", "prod-us"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tenant acme: stack prod-us would delete it in region us") and err.count("\n") == 1

    backend.applied[EU_HOLDER.name] = made[1]
    assert main(["handover-check", "--stack", "prod-us"]) == 0
    assert capsys.readouterr().out.startswith("stack prod-us: 1 tenant(s)")
    assert main(["handover-check", "--stack", EU_HOLDER.name]) == 0
    assert capsys.readouterr().out == f"stack {EU_HOLDER.name}: no tenant moves away\n"


def test_a_region_whose_shards_leave_the_tenant_without_a_stack_does_not_hold_it() -> None:
    stacks = [s for s in STACKS if s != EU_HOLDER]
    lines = refusals(parse_tenants(tenants_yaml(MOVED)), US, stacks, Backend({"prod-us": V2}).run, git_show)
    assert len(lines) == 1 and "eu (no stack of region eu holds it: its shards are incomplete)" in lines[0]

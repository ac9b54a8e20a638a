"""`tenantctl affected --since-applied` and `verify --applied`: each stack against the commit it last
applied (its stack tag), in a temporary git repository; the backend's tags come from a stand-in `pulumi`
(the real engine's tags: tests/e2e/test_deploy_applied.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tenant_secrets.stack import applied
from tenant_secrets.tenantctl import verify
from tenant_secrets.tenantctl.drift import Report
from tenant_secrets.tenantctl.main import main
from tests.tenantctl.test_affected import SUBDOMAINS, git, prod_stack, repo, tenants_yaml

__all__ = ["repo"]  # the fixture

PLANS = {s: f"plan-{s}" for s in SUBDOMAINS}


def commit(root: Path, plans: dict[str, str], message: str) -> str:
    (root / "tenants.yaml").write_text(tenants_yaml(plans))
    git(root, "-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "--allow-empty", "-qam", message)
    return rev(root)


def rev(root: Path) -> str:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


class Backend:
    """The stacks' tags as `pulumi stack tag ls --json` prints them; a stack absent here does not exist."""

    def __init__(self, tags: dict[str, dict[str, str]], *, down: bool = False) -> None:
        self.tags = tags
        self.down = down

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        stack = args[args.index("--stack") + 1]
        if self.down:
            return subprocess.CompletedProcess(args, 1, "", "error: unable to open bucket s3://fake-state: denied\n")
        if stack not in self.tags:
            return subprocess.CompletedProcess(args, 6, "", f"error: no stack named '{stack}' found\n")
        if args[:3] == ["stack", "tag", "set"]:
            self.tags[stack][args[3]] = args[4]
            return subprocess.CompletedProcess(args, 0, "", "")
        return subprocess.CompletedProcess(args, 0, json.dumps(self.tags[stack]), "")


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Backend:
    fake = Backend({})
    monkeypatch.setattr(applied, "pulumi_runner", lambda cwd: fake.run)
    return fake


def applied_at(commits: dict[str, str]) -> dict[str, dict[str, str]]:
    return {stack: {applied.TAG: sha, "pulumi:project": "tenant-secrets"} for stack, sha in commits.items()}


def since_applied(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[str], str]:
    assert main(["affected", "--since-applied", *args]) == 0
    out = capsys.readouterr()
    return out.out.splitlines(), out.err


def other_shard_tenant(than: str) -> str:
    return next(s for s in SUBDOMAINS if prod_stack(s) != prod_stack(than))


def test_a_failed_deploy_is_finished_by_the_next_push(
    repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    """Push 1 changes echo; its prod shard's deploy fails (its tag stays at the base). Push 2 changes a
    tenant of another shard: the shard that failed is applied again, for echo's change."""
    base = rev(repo)
    first = commit(repo, PLANS | {"echo": "plan-echo-2"}, "push 1: echo")
    other = other_shard_tenant("echo")
    commit(repo, PLANS | {"echo": "plan-echo-2", other: f"plan-{other}-2"}, f"push 2: {other}")
    recorded = {"dev": first, "prod": base, "prod-02": base, "prod-03": base} | {prod_stack("echo"): base}
    backend.tags = applied_at(recorded)

    stacks, why = since_applied(capsys)

    assert stacks == sorted({"dev", prod_stack("echo"), prod_stack(other)})
    assert f"{prod_stack('echo')}: since {base[:12]} (its last applied commit): tenant echo changed" in why
    # what comparing with the commit before the push chose: the failed shard left behind
    assert main(["affected", "--base", "HEAD~1"]) == 0
    assert prod_stack("echo") not in capsys.readouterr().out.splitlines()


def test_a_stack_applied_at_head_is_untouched(repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    head = commit(repo, PLANS | {"echo": "plan-echo-2"}, "echo")
    backend.tags = applied_at({s: head for s in ("dev", "prod", "prod-02", "prod-03")})
    assert since_applied(capsys)[0] == []


def test_a_stack_that_never_recorded_a_commit_is_applied_in_full(
    repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    head = commit(repo, PLANS, "nothing for the tenants")
    backend.tags = applied_at({"dev": head, "prod": head, "prod-02": head}) | {"prod-03": {"owner": "someone"}}
    stacks, why = since_applied(capsys)
    assert stacks == ["prod-03"]
    assert "prod-03: no applied commit recorded (every change applies)" in why


def test_a_stack_not_created_yet_and_a_commit_the_checkout_lacks_are_applied_in_full(
    repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    head = commit(repo, PLANS, "head")
    backend.tags = applied_at({"dev": head, "prod": head, "prod-02": "0123456789abcdef0123456789abcdef01234567"})
    stacks, why = since_applied(capsys, "--environment", "prod")
    assert stacks == ["prod-02", "prod-03"]
    assert "prod-02: its last applied commit 0123456789ab is not in this checkout" in why


def test_an_unreadable_backend_is_one_line_and_no_matrix(
    repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    backend.down = True
    assert main(["affected", "--since-applied", "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip().splitlines() == [
        "tenantctl affected: stack dev: cannot read its tags: error: unable to open bucket s3://fake-state: denied"
    ]


def test_record_applied_sets_the_full_commit(repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    head = commit(repo, PLANS, "head")
    backend.tags = {"prod": {}}
    assert main(["record-applied", "--stack", "prod"]) == 0
    assert backend.tags["prod"] == {applied.TAG: head}
    assert capsys.readouterr().out == f"stack prod: applied {head}\n"


def test_verify_names_the_stack_behind_head_one_line_per_stack(
    repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = rev(repo)
    head = commit(repo, PLANS | {"echo": "plan-echo-2"}, "echo")
    untouched = next(s for s in ("prod", "prod-02", "prod-03") if s != prod_stack("echo"))
    backend.tags = applied_at({prod_stack("echo"): base, untouched: base})  # the third never applied
    monkeypatch.setattr(verify, "run_verify", lambda stack, **_: Report(stack, "prod", counts={"echo": {}}))

    assert main(["verify", "--environment", "prod", "--applied"]) == 1

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stack ")]
    never = ({"prod", "prod-02", "prod-03"} - {prod_stack("echo"), untouched}).pop()
    assert sorted(lines) == sorted(
        [
            f"stack {prod_stack('echo')} is behind HEAD {head[:12]}: since {base[:12]} (its last applied commit): "
            "tenant echo changed. Rerun the failed deploy jobs, or run the deploy workflow by hand (it applies "
            "every stack)",
            f"stack {untouched} is up to date: last applied {base[:12]}, and nothing since touches it",
            f"stack {never} is behind HEAD {head[:12]}: no applied commit recorded (every change applies). Rerun "
            "the failed deploy jobs, or run the deploy workflow by hand (it applies every stack)",
        ]
    )


def test_verify_of_stacks_at_head_is_clean(
    repo: Path, backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    head = commit(repo, PLANS, "head")
    backend.tags = applied_at({"dev": head})
    monkeypatch.setattr(verify, "run_verify", lambda stack, **_: Report(stack, "dev", counts={"echo": {}}))
    assert main(["verify", "--stack", "dev", "--applied", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert f"- stack dev applied HEAD {head[:12]}\n" in out
    assert out.rstrip().splitlines()[-1].startswith("no drift on stack dev")

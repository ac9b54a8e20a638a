"""The workflow files themselves, run by act on the host against the local services
(docs/decisions/0051-workflows-run-in-a-test.md; the checkout they run in: tests/workflows/conftest.py)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from tenant_secrets.stack.shards import shard_of
from tests.e2e.conftest import REPO, git, sdk
from tests.workflows.conftest import OWNER_TENANT, SUBDOMAINS, Origin, tenants

pytestmark = pytest.mark.e2e


def pull_request(origin: Origin, branch: str, files: dict[str, str], message: str) -> dict[str, object]:
    """A branch with ``files`` changed, back on main after; the pull_request_target event of it."""
    base = git(origin.root, "rev-parse", "HEAD")
    git(origin.root, "checkout", "-qb", branch)
    for name, text in files.items():
        (origin.root / name).write_text(text)
    git(origin.root, "commit", "-qam", message)
    head = git(origin.root, "rev-parse", "HEAD")
    git(origin.root, "checkout", "-q", "main")
    return {
        "action": "opened",
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"sha": head, "ref": branch, "repo": {"full_name": "example/tenant-secrets"}},
            "base": {"sha": base, "ref": "main", "repo": {"full_name": "example/tenant-secrets"}},
        },
        "repository": {"full_name": "example/tenant-secrets"},
    }


def test_a_pull_request_that_edits_one_tenant_gets_one_comment_with_its_plan(origin: Origin) -> None:
    event = pull_request(
        origin, "edit-one", {"tenants.yaml": tenants({OWNER_TENANT: "plan-edited"})}, f"{OWNER_TENANT}: a new plan"
    )
    run = origin.act("pull_request_target", "pull-request.yml", event)
    assert run.status == 0, run.explain()
    assert len(run.comments) == 1, run.explain()
    body = str(run.comments[0]["body"])
    assert body.startswith("<!-- tenant-secrets plan -->"), body
    assert "Previewed, as this change touches their tenants or settings: `dev`." in body, body
    assert "Not previewed: `dev-02`." in body, body
    rows = [line for line in body.splitlines() if OWNER_TENANT in line and "PLAN" in line]
    assert rows and "update" in rows[0], body
    assert "plan-edited" not in body  # never a value


@pytest.mark.long
def test_the_deploy_of_a_merge_applies_the_owner_shard_first_then_the_others(origin: Origin) -> None:
    other = next(s for s in SUBDOMAINS if shard_of(s, 2) == 2)
    (origin.root / "tenants.yaml").write_text(tenants({OWNER_TENANT: "plan-merged", other: "plan-merged"}))
    git(origin.root, "commit", "-qam", "two tenants, one in each shard")
    deploy_secrets = {
        "PULUMI_BACKEND_URL": origin.env["PULUMI_BACKEND_URL"],
        "PULUMI_CONFIG_PASSPHRASE": origin.env["PULUMI_CONFIG_PASSPHRASE"],
        "DATABASE_URL": origin.env["DATABASE_URL"],
        "INFISICAL_CLIENT_ID": origin.env["INFISICAL_CLIENT_ID"],
        "INFISICAL_CLIENT_SECRET": origin.env["INFISICAL_CLIENT_SECRET"],
    }
    origin.secrets = deploy_secrets
    # dev's part of the deploy (this repository has no prod stack): dev-shards and the jobs it needs
    push: dict[str, object] = {"ref": "refs/heads/main", "after": git(origin.root, "rev-parse", "HEAD")}
    run = origin.act("push", "deploy.yml", push, job="dev-shards")
    assert run.status == 0, run.explain()
    lines = run.log.splitlines()
    owner_up = [i for i, line in enumerate(lines) if "dev-owner" in line and "Success - Main pulumi up" in line]
    shards_up = [i for i, line in enumerate(lines) if "dev-shards" in line and "Run Main pulumi up" in line]
    assert owner_up and shards_up and owner_up[-1] < shards_up[0], run.explain()
    # both stacks recorded this commit: nothing is left to apply
    left = origin.run("tenantctl", "affected", "--since-applied", "--environment", "dev")
    assert left.returncode == 0 and left.stdout == "", left.stdout + left.stderr


@pytest.mark.long
def test_a_code_changing_pull_request_waits_for_approval_shown_as_refused(origin: Origin) -> None:
    marker = origin.tmp / "head-code-ran"
    program = origin.root / "components" / "program.py"
    future = "from __future__ import annotations\n"
    hostile = f"{future}open({str(marker)!r}, 'a').write('ran')\n"
    event = pull_request(
        origin,
        "code-and-data",
        {
            "tenants.yaml": tenants({OWNER_TENANT: "plan-edited"}),
            "components/program.py": program.read_text().replace(future, hostile, 1),
        },
        "a tenant, and code",
    )
    # act has no environment approvals: the reviewer's refusal is `plan-code` (environment
    # pr-preview-approval) never running, so the run is the comment job and the jobs it needs
    workflow = yaml.safe_load((origin.root / ".github" / "workflows" / "pull-request.yml").read_text())
    assert workflow["jobs"]["plan-code"]["environment"] == "pr-preview-approval"
    run = origin.act("pull_request_target", "pull-request.yml", event, job="comment")
    assert run.status == 0, run.explain()
    assert len(run.comments) == 1, run.explain()
    body = str(run.comments[0]["body"])
    assert "This pull request also changes code (" in body and "components/program.py" in body, body
    assert "until a reviewer approves the `pr-preview-approval` environment" in body, body
    assert "the base branch's code" in body, body
    assert not marker.exists(), "the pull request's code ran without an approval"


@pytest.mark.long
def test_the_nightly_verify_finds_planted_drift(origin: Origin) -> None:
    other = next(s for s in SUBDOMAINS if shard_of(s, 2) == 2)
    for stack in ("dev", "dev-02"):  # both applied main's head: the only finding is the drift
        recorded = subprocess.run(
            ["tenantctl", "record-applied", "--stack", stack, "--commit", git(origin.root, "rev-parse", "HEAD")],
            cwd=origin.root,
            env={**os.environ, **origin.env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert recorded.returncode == 0, recorded.stderr
    where = {"project_id": origin.infisical.project_id, "environment_slug": "dev"}
    sdk(origin.infisical).secrets.update_secret_by_name(
        current_secret_name="PLAN", secret_path=f"/tenants/{other}", secret_value="fake-by-hand", **where
    )
    origin.secrets = {
        "PULUMI_BACKEND_URL": origin.env["PULUMI_BACKEND_URL"],
        "PULUMI_CONFIG_PASSPHRASE": origin.env["PULUMI_CONFIG_PASSPHRASE"],
        "DATABASE_URL": origin.env["DATABASE_URL"],
        "INFISICAL_CLIENT_ID": origin.env["INFISICAL_CLIENT_ID"],
        "INFISICAL_CLIENT_SECRET": origin.env["INFISICAL_CLIENT_SECRET"],
    }
    # dev's row (this repository has no prod stack)
    run = origin.act("schedule", "verify.yml", {"schedule": "17 3 * * *"}, matrix=("tenants-environment:dev",))
    assert run.status != 0, run.explain()
    findings = [line for line in run.log.splitlines() if "| " + other + " |" in line or f"| {other} " in line]
    assert findings and "PLAN" in findings[0], run.explain()
    assert not [line for line in run.log.splitlines() if f"| {OWNER_TENANT} " in line], run.explain()
    assert "fake-by-hand" not in run.log


@pytest.mark.long
def test_the_weekly_rotation_opens_its_change(origin: Origin) -> None:
    # a generated secret with a one-day period, written now: due soon, which the rotation bumps
    text = (origin.root / "tenants.yaml").read_text()
    owner = f"  - subdomain: {OWNER_TENANT}\n    secrets:\n"
    text = text.replace(owner, owner + "      API_TOKEN: {generate: {bytes: 16}, rotate_every: 1d}\n")
    (origin.root / "tenants.yaml").write_text(text)
    git(origin.root, "commit", "-qam", f"{OWNER_TENANT}: a generated token")
    (origin.root / ".venv").symlink_to(REPO / ".venv")
    up = subprocess.run(
        ["pulumi", "up", "--yes", "--skip-preview", "--stack", "dev"],
        cwd=origin.root,
        env={**os.environ, **origin.env},
        capture_output=True,
        text=True,
        check=False,
    )
    (origin.root / ".venv").unlink()
    assert up.returncode == 0, up.stdout + up.stderr
    run = origin.act("schedule", "rotation.yml", {"schedule": "41 5 * * 1"})
    assert run.status == 0, run.explain()
    opened = origin.tmp.glob("act-*/pull-requests/rotation/scheduled")
    change = next(opened, None)
    assert change is not None, run.explain()
    assert (change / "title").read_text().strip() == "Scheduled rotation of due secrets"
    diff = (change / "diff").read_text()
    assert '+      API_TOKEN: {generate: {bytes: 16}, rotation: "2", rotate_every: 1d}' in diff, diff
    body = (change / "body.md").read_text()
    assert f"| {OWNER_TENANT} | dev | infisical | `API_TOKEN` | generate | update |" in body, body

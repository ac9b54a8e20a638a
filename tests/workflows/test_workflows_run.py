"""The workflow files themselves, run by act on the host against the local services
(docs/decisions/0051-workflows-run-in-a-test.md; the checkout they run in: tests/workflows/conftest.py)."""

from __future__ import annotations

import pytest

from tests.workflows.conftest import OWNER_TENANT, Origin, git, tenants

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
    assert run.status == 0, run.log[-6000:]
    assert len(run.comments) == 1, run.log[-6000:]
    body = str(run.comments[0]["body"])
    assert body.startswith("<!-- tenant-secrets plan -->"), body
    assert "Previewed, as this change touches their tenants or settings: `dev`." in body, body
    assert "Not previewed: `dev-02`." in body, body
    rows = [line for line in body.splitlines() if OWNER_TENANT in line and "PLAN" in line]
    assert rows and "update" in rows[0], body
    assert "plan-edited" not in body  # never a value

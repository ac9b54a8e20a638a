"""The plan comment with regions (docs/decisions/0054-regions.md): a region's stack says its region, and several
stacks' plans are grouped by region, then stack; without regions the comment is as it was."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tenant_secrets.tenantctl.plan_comment import (
    render_json,
    render_markdown,
    render_plans,
    run_environment_plan,
)
from tenant_secrets.tenantctl.plan_preview import parse_preview

PREVIEWS = Path(__file__).parents[1] / "fixtures" / "previews"
ROOT = Path(__file__).resolve().parents[2]


def preview(stack: str, region: str | None) -> dict[str, Any]:
    """The recorded first preview, as the stack ``stack`` (of ``region``) of prod would print it."""
    document: dict[str, Any] = json.loads((PREVIEWS / "initial.json").read_text())
    config = {k: v for k, v in document["config"].items() if k != "tenant-secrets:region"}
    config["tenant-secrets:environment"] = "prod"
    if region:
        config["tenant-secrets:region"] = region
    return document | {"config": config}


def test_a_regions_stack_says_its_region_and_a_plain_one_does_not() -> None:
    eu = parse_preview(preview("prod-eu", "eu"), "prod-eu")
    assert eu.region == "eu"
    assert render_markdown(eu).startswith("### tenant-secrets plan: stack `prod-eu`, environment `prod`, region `eu`\n")
    assert json.loads(render_json(eu))["region"] == "eu"
    plain = parse_preview(preview("prod", None), "prod")
    assert render_markdown(plain).startswith("### tenant-secrets plan: stack `prod`, environment `prod`\n")
    assert "region" not in json.loads(render_json(plain))


def test_plans_are_grouped_by_region_then_stack() -> None:
    plans = [parse_preview(preview(s, r), s) for s, r in (("prod-us", "us"), ("prod-eu-02", "eu"), ("prod-eu", "eu"))]
    text = render_plans(plans, "markdown")
    order = [line for line in text.splitlines() if line.startswith(("## Region", "### tenant-secrets plan"))]
    assert order == [
        "## Region `eu`: 2 stack(s)",
        "### tenant-secrets plan: stack `prod-eu`, environment `prod`, region `eu`",
        "### tenant-secrets plan: stack `prod-eu-02`, environment `prod`, region `eu`",
        "## Region `us`: 1 stack(s)",
        "### tenant-secrets plan: stack `prod-us`, environment `prod`, region `us`",
    ]
    plain = [parse_preview(preview(s, None), s) for s in ("prod-02", "prod")]
    assert render_plans(plain, "markdown") == "\n".join(render_markdown(p) for p in plain)


def test_a_regions_failed_preview_stays_under_its_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tenantctl plan --environment prod --region eu`: a preview that failed (here: no project at all) has no
    stack config to say its region, and is shown under the region asked for."""
    monkeypatch.chdir(tmp_path)
    assert run_environment_plan(["prod-eu"], "markdown", region="eu") == 1
    out = capsys.readouterr().out
    assert out.startswith("## Region `eu`: 1 stack(s)\n"), out
    assert "### tenant-secrets plan: stack `prod-eu`: the preview failed" in out, out


def test_the_pull_requests_comment_groups_its_stacks_by_region(tmp_path: Path) -> None:
    entries = [
        {"stack": "prod-us", "environment": "prod", "shard": "1/1", "owner": True, "region": "us"},
        {"stack": "prod-eu-02", "environment": "prod", "shard": "2/2", "owner": False, "region": "eu"},
        {"stack": "prod-eu", "environment": "prod", "shard": "1/2", "owner": True, "region": "eu"},
    ]
    matrix = json.dumps({"stacks": entries, "untouched": []})
    for entry in entries[:2]:
        (tmp_path / f"plan-base-{entry['stack']}").mkdir()
        (tmp_path / f"plan-base-{entry['stack']}" / "plan.md").write_text(f"### plan of {entry['stack']}\n")
    body = subprocess.run(
        [
            str(ROOT / "scripts" / "pr-comment.sh"),
            "--matrix",
            matrix,
            "--plans",
            str(tmp_path),
            "--prefix",
            "plan-base",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    order = [line for line in body.splitlines() if line.startswith(("## ", "### plan", "The preview"))]
    assert order == [
        "## Region `eu`: 2 stack(s)",
        "The preview of prod-eu failed; see the job log.",
        "### plan of prod-eu-02",
        "## Region `us`: 1 stack(s)",
        "### plan of prod-us",
    ]


def test_a_move_refused_against_the_base_heads_the_comment(tmp_path: Path) -> None:
    """What the pull request's check runs (pull-request.yml, `changes`): `tenantctl validate --base` on the head's
    file; its refusal, at file, line and field, is the first thing the comment shows."""
    head = tmp_path / "head"
    head.mkdir()
    base_file = "version: 1\nregions: [eu, us]\ndefaults: {storage: infisical, environments: [prod]}\ntenants:\n"
    base_file += "  - subdomain: alpha\n    regions: [us]\n    secrets:\n      PLAN: {value: fake-plan}\n"
    (head / "tenants.yaml").write_text(base_file)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "base"]):
        subprocess.run(
            ["git", "-C", str(head), "-c", "user.email=t@example.test", "-c", "user.name=t", *args], check=True
        )
    moved = base_file.replace("regions: [us]\n", "regions: [eu]\n    decommission: [us]\n")
    (head / "tenants.yaml").write_text(moved)
    checked = subprocess.run(
        ["python", "-m", "tenant_secrets.tenantctl", "validate", str(head / "tenants.yaml"), "--base", "main"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1
    refused = tmp_path / "refused.txt"
    refused.write_text((checked.stdout + checked.stderr).replace(f"{head}/", ""))
    matrix = json.dumps({"stacks": [], "untouched": []})
    script = str(ROOT / "scripts" / "pr-comment.sh")
    body = subprocess.run(
        [script, "--matrix", matrix, "--plans", str(tmp_path), "--prefix", "plan-base", "--refused", str(refused)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "**tenants.yaml is refused against the base branch (`tenantctl validate --base`)" in body, body
    line = next(line for line in body.splitlines() if line.startswith("tenants.yaml:"))
    assert line.startswith("tenants.yaml:7:19: tenants[0].decommission: alpha gains eu and leaves us in one change"), (
        body
    )
    assert "fake-plan" not in body

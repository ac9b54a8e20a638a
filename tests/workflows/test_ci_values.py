"""The workflows keep the two rules of docs/decisions/0050-ci-env.md, read from the workflow files themselves:
`{from: env}` values reach a run only through `tenantctl ci-env` (so only what the base branch's envAllow
lists), and every job that decrypts a stack logs in through the one secrets-provider action."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PROVIDER_ACTION = ".github/actions/secrets-provider"
RUNS_THE_PROGRAM = re.compile(r"pulumi up|pr-plan\.sh|tenantctl (plan|verify|rotation status)")
ALL_SECRETS = "${{ toJSON(secrets) }}"


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """(workflow file, job id, job) for every job of every workflow."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for name, job in (document.get("jobs") or {}).items():
            found.append((path.name, name, job))
    return found


def program_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [j for j in jobs() if any(RUNS_THE_PROGRAM.search(s.get("run", "")) for s in j[2].get("steps", []))]


def allow_listed() -> set[str]:
    """Every name a committed stack file's envAllow lists."""
    names: set[str] = set()
    for path in ROOT.glob("Pulumi.*.yaml"):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        names |= {n for n in config.get("tenant-secrets:envAllow") or [] if not n.endswith("*")}
    return names


def _first(steps: list[dict[str, Any]], test: Any) -> int | None:
    return next((i for i, step in enumerate(steps) if test(step)), None)


def test_the_jobs_that_run_the_program_are_found() -> None:
    """The checks below see the deploy, both previews, verify and rotation's jobs (a rename would hide one)."""
    assert {(w, j) for w, j, _ in program_jobs()} == {
        ("apply-stacks.yml", "up"),
        ("pull-request.yml", "plan"),
        ("pull-request.yml", "plan-code"),
        ("rotation.yml", "due"),
        ("rotation.yml", "plan"),
        ("verify.yml", "verify"),
    }


@pytest.mark.parametrize(("workflow", "job"), [(w, j) for w, j, _ in program_jobs()])
def test_each_job_logs_in_to_the_secrets_provider_first(workflow: str, job: str) -> None:
    steps = next(j for w, n, j in jobs() if (w, n) == (workflow, job))["steps"]
    login = _first(steps, lambda s: str(s.get("uses", "")).endswith(PROVIDER_ACTION))
    program = _first(steps, lambda s: RUNS_THE_PROGRAM.search(s.get("run", "")))
    assert login is not None, f"{workflow} {job} does not use {PROVIDER_ACTION}"
    assert program is not None and login < program


@pytest.mark.parametrize(("workflow", "job"), [(w, j) for w, j, _ in program_jobs() if j != "due"])
def test_each_job_gets_its_values_from_ci_env_before_the_program(workflow: str, job: str) -> None:
    """`rotation status` reads the stores only; every other job previews or applies tenants.yaml's values."""
    steps = next(j for w, n, j in jobs() if (w, n) == (workflow, job))["steps"]
    values = _first(steps, lambda s: "tenantctl ci-env" in s.get("run", ""))
    program = _first(steps, lambda s: RUNS_THE_PROGRAM.search(s.get("run", "")))
    assert values is not None, f"{workflow} {job} passes no values"
    assert program is not None and values < program
    assert steps[values]["env"]["TENANT_SECRETS_CI_SECRETS"] == ALL_SECRETS
    if workflow == "pull-request.yml":
        # the base branch's stack file and tenantctl, never the pull request's
        assert steps[values]["working-directory"] == "base"
        assert "--suffix" in steps[values]["run"]


def test_all_the_secrets_are_given_only_to_the_ci_env_step() -> None:
    """`toJSON(secrets)` in a job's env, or in any other step, would hand every secret to code that may
    print it or pass it on."""
    for workflow, name, job in jobs():
        assert ALL_SECRETS not in str(job.get("env", {})), f"{workflow} {name}: all secrets in the job's env"
        for step in job.get("steps", []):
            if ALL_SECRETS in str(step.get("env", {})) or ALL_SECRETS in str(step.get("with", {})):
                assert "tenantctl ci-env" in step.get("run", ""), f"{workflow} {name}: all secrets to another step"


def test_no_workflow_names_a_value_source_itself() -> None:
    """A `{from: env}` value named in a workflow would reach the run whatever envAllow says."""
    listed = allow_listed()
    assert listed, "the committed stack files list no envAllow name"
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        named = {n for n in listed if re.search(rf"\b{n}\b", text)}
        assert not named, f"{path.name} names {sorted(named)}: pass them with `tenantctl ci-env`"


def test_no_cloud_login_outside_the_secrets_provider_action() -> None:
    logins = ("aws-actions/configure-aws-credentials", "azure/login", "google-github-actions/auth", "vault-action")
    for path in WORKFLOWS.glob("*.yml"):
        used = [login for login in logins if login in path.read_text()]
        assert not used, f"{path.name} logs in by itself ({used}): use {PROVIDER_ACTION}"

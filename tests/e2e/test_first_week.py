"""A team's first week (issue 17), on the real engine: a plan never greener than the `up` after it,
and provider errors as one readable line.

With TENANT_SECRETS_RECORD_PREVIEWS=1 the unchecked preview is saved to
tests/fixtures/previews/unchecked-database.json for tests/tenantctl/test_plan_comment.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import PASSPHRASE, Project, configure
from tests.e2e.test_review import FIXTURES, RECORD, scrub, secret_leaves, set_value

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: acmecorp
    storage: infisical
    secrets:
      API_TOKEN: {generate: {bytes: 16}}
"""
VALUES = {"codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-first-week-0001"}}


def run(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command in the project's directory, as a user runs it there."""
    return subprocess.run(
        args,
        cwd=project.root,
        env={**os.environ, **project.env, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def tenantctl_plan(project: Project, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = run(project, sys.executable, "-m", "tenant_secrets.tenantctl", "plan", "--stack", "dev", *extra, env=env)
    project.capture(done.stdout + done.stderr)
    return done.returncode, done.stdout, done.stderr


def test_a_plan_that_could_not_check_the_database_is_not_green(project: Project, master_key: str) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    del project.env["DATABASE_URL"]
    no_database = {"DATABASE_URL": ""}

    status, comment, stderr = tenantctl_plan(project, env=no_database)
    assert status == 1, comment
    title, _, warning = comment.split("\n")[:3]
    assert title == "### tenant-secrets plan: stack `dev`, environment `dev`: not fully checked"
    assert warning.startswith("**The preview could not check everything (1 warning(s))")
    assert "DATABASE_URL is not set" in comment
    assert "does not check companies and master keys against the database" in comment
    assert "| codewiser | dev | database | `STRIPE_SECRET_KEY` | create |" in comment  # the rows are still shown
    assert "--allow-unchecked" in stderr
    status, accepted, _ = tenantctl_plan(project, "--allow-unchecked", env=no_database)
    assert status == 0
    assert accepted == comment
    status, document, _ = tenantctl_plan(project, "--format", "json", env=no_database)
    plan = json.loads(document)
    assert status == 1 and plan["ok"] is True and plan["checked"] is False and len(plan["warnings"]) == 1
    if RECORD:
        done = run(
            project, "pulumi", "preview", "--json", "--diff", "--non-interactive", "--stack", "dev", env=no_database
        )
        recorded = scrub(json.loads(done.stdout))
        assert all(value == "[secret]" for _, value in secret_leaves(recorded))
        text = json.dumps(recorded, indent=1, sort_keys=True) + "\n"
        assert master_key not in text and PASSPHRASE not in text and "fake-stripe" not in text
        (FIXTURES / "unchecked-database.json").write_text(text)

    # What the plan warned about is what the `up` fails on.
    done = run(
        project, "pulumi", "up", "--yes", "--non-interactive", "--skip-preview", "--stack", "dev", env=no_database
    )
    project.capture(done.stdout + done.stderr)
    assert done.returncode != 0
    assert "DATABASE_URL is not set" in done.stdout + done.stderr


def error_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("error:")]


def test_infisical_down_is_one_line_per_failing_resource(project: Project, master_key: str) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    # Nothing listens on port 9 (discard) of the loopback: Infisical is down.
    down = {"INFISICAL_SITE_URL": "http://127.0.0.1:9", "TENANT_SECRETS_INFISICAL_RETRIES": "attempts=2,max_delay=0.1"}
    done = run(project, "pulumi", "up", "--yes", "--non-interactive", "--skip-preview", "--stack", "dev", env=down)
    output = project.capture(done.stdout + done.stderr)
    assert done.returncode != 0
    assert "Traceback" not in output
    errors = error_lines(output)
    for owner in ("codewiser", "acmecorp"):
        (line,) = {e for e in errors if e.startswith(f"error: {owner}, infisical: ")}
        assert "127.0.0.1:9" in line and "failed after 2 attempts" in line, line
    assert all(len(line) < 400 for line in errors)

    # After a good run, a failed one shows the stack's outputs unchanged, not as deletions.
    project.up(stack)
    set_value(stack, "codewiser", "STRIPE_SECRET_KEY", "fake-stripe-cw-first-week-0002")
    done = run(project, "pulumi", "up", "--yes", "--non-interactive", "--skip-preview", "--stack", "dev", env=down)
    output = project.capture(done.stdout + done.stderr)
    assert done.returncode != 0
    (line,) = {e for e in error_lines(output) if ", infisical: " in e}
    assert line.startswith("error: codewiser, infisical: logging in to http://127.0.0.1:9")
    assert "Outputs:" in output
    assert not [row for row in output.split("Outputs:", 1)[1].splitlines() if row.lstrip().startswith("- ")]

    # The traceback is there for whoever asks for it.
    debug = {**down, "TENANT_SECRETS_DEBUG": "1"}
    done = run(project, "pulumi", "up", "--yes", "--non-interactive", "--skip-preview", "--stack", "dev", env=debug)
    output = project.capture(done.stdout + done.stderr)
    assert "Traceback (most recent call last)" in output
    assert "ProviderError: codewiser, infisical: " in output


def test_a_value_infisical_would_trim_fails_the_preview(project: Project, master_key: str) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(
        stack,
        secrets_config={"codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-trailing-space "}},
        master_keys={"v1": master_key},
    )
    status, comment, _ = tenantctl_plan(project)
    assert status == 1
    assert "the preview failed" in comment
    assert "codewiser.STRIPE_SECRET_KEY" in comment and "whitespace" in comment
    # An empty value: most often one nobody set; refused in the preview, both stores untouched.
    set_value(stack, "codewiser", "STRIPE_SECRET_KEY", "")
    status, comment, _ = tenantctl_plan(project)
    assert status == 1
    assert "1 value(s) are empty: codewiser.STRIPE_SECRET_KEY" in comment and "allow_empty: true" in comment
    assert "fake-stripe-trailing-space" not in comment
    assert "Traceback" not in comment


IMPORTED = """\
version: 1
defaults: {storage: infisical, environments: [dev]}
platform:
  hono-api:
    secrets:
      MASTER_ENCRYPTION_KEY: {value: fake-imported-key-0001}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""


def test_an_infisical_only_stack_needs_no_master_key_but_its_derivation_key(project: Project) -> None:
    """An imported environment: every tenant in Infisical, /hono-api's keys imported like any other."""
    project.write_tenants(IMPORTED)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={})
    no_database = {"DATABASE_URL": ""}
    status, comment, _ = tenantctl_plan(project, env=no_database)
    assert status == 0, comment
    assert "| hono-api (platform) | dev | infisical | `MASTER_ENCRYPTION_KEY` | create |" in comment
    assert "not fully checked" not in comment and "MASTER_ENCRYPTION_KEY_V1" not in comment
    stack.remove_config("tenant-secrets:derivationKey")
    status, comment, _ = tenantctl_plan(project, env=no_database)
    assert status == 1
    assert "derivationKey must be a secret of 64 hex chars (it derives generated values and fingerprints)" in comment

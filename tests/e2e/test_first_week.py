"""A team's first week (issue 17) on the real engine, as declared steps on one stack: values Infisical
would trim or nobody set refused by the plan, a plan never greener than the `up` after it, and provider
errors as one readable line; then an Infisical-only stack that needs no master key.

With TENANT_SECRETS_RECORD_PREVIEWS=1 the unchecked preview is saved to
tests/fixtures/previews/unchecked-database.json for tests/tenantctl/test_plan_comment.py.
"""

from __future__ import annotations

import json

import pytest
from pulumi import automation as auto

from tests.e2e.conftest import PASSPHRASE, Project, configure
from tests.e2e.steps import Check, Step, run_steps, tenantctl
from tests.e2e.test_review import FIXTURES, RECORD, scrub, secret_leaves

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
STRIPE = ("codewiser", "STRIPE_SECRET_KEY")
DOWN = "http://127.0.0.1:9"  # nothing listens on port 9 (discard) of the loopback: Infisical is down


def plan(project: Project, *extra: str) -> tuple[int, str, str]:
    """`tenantctl plan --stack dev`: exit status, the comment, what it printed to stderr."""
    done = tenantctl(project, "plan", "--stack", "dev", *extra)
    return done.returncode, done.stdout, done.stderr


def plan_fails_saying(*texts: str, hidden: str = "") -> Check:
    def check(project: Project, stack: auto.Stack) -> None:
        status, comment, _ = plan(project)
        assert status == 1, comment
        missing = [text for text in ("the preview failed", *texts) if text not in comment]
        assert not missing, f"the comment lacks {missing}: {comment}"
        assert "Traceback" not in comment
        assert not hidden or hidden not in comment, "the comment shows the value"

    return check


def not_fully_checked(project: Project, stack: auto.Stack) -> None:
    """The markdown comment, its --allow-unchecked and JSON forms, from one preview."""
    status, document, output = project.preview_json(stack)
    assert document is not None, output
    preview = project.root / "preview.json"
    preview.write_text(json.dumps(document))
    status, comment, stderr = plan(project, "--preview-json", str(preview))
    assert status == 1, comment
    title, _, warning = comment.split("\n")[:3]
    assert title == "### tenant-secrets plan: stack `dev`, environment `dev`: not fully checked"
    assert warning.startswith("**The preview could not check everything (1 warning(s))")
    assert "DATABASE_URL is not set" in comment
    assert "does not check companies and master keys against the database" in comment
    # the rows are still shown
    assert "| codewiser | dev | database | `STRIPE_SECRET_KEY` | config | create |" in comment
    assert "--allow-unchecked" in stderr
    status, accepted, _ = plan(project, "--preview-json", str(preview), "--allow-unchecked")
    assert (status, accepted) == (0, comment)
    status, text, _ = plan(project, "--preview-json", str(preview), "--format", "json")
    found = json.loads(text)
    assert (status, found["ok"], found["checked"], len(found["warnings"])) == (1, True, False, 1)
    if RECORD:
        recorded = scrub(document)
        assert all(value == "[secret]" for _, value in secret_leaves(recorded))
        saved = json.dumps(recorded, indent=1, sort_keys=True) + "\n"
        kept = [config.value for config in stack.get_all_config().values() if config.secret]  # the keys, too
        assert not [v for v in [*kept, PASSPHRASE, "fake-stripe"] if v in saved], "a secret in the recorded preview"
        (FIXTURES / "unchecked-database.json").write_text(saved)


def error_lines(project: Project) -> list[str]:
    """The `error:` lines of the last engine output (a failed up's)."""
    return [line.strip() for line in project.outputs[-1].splitlines() if line.strip().startswith("error:")]


def one_line_per_resource(project: Project, stack: auto.Stack) -> None:
    errors = error_lines(project)
    for owner in ("codewiser", "acmecorp"):
        (line,) = {e for e in errors if e.startswith(f"error: {owner}, infisical: ")}
        assert "127.0.0.1:9" in line and "failed after 2 attempts" in line, line
    assert all(len(line) < 400 for line in errors), "an error line is longer than 400 characters"


def outputs_unchanged(project: Project, stack: auto.Stack) -> None:
    (line,) = {e for e in error_lines(project) if ", infisical: " in e}
    assert line.startswith("error: codewiser, infisical: logging in to http://127.0.0.1:9")
    output = project.outputs[-1]
    assert "Outputs:" in output
    assert not [row for row in output.split("Outputs:", 1)[1].splitlines() if row.lstrip().startswith("- ")]


def first_week(dsn: str, site: str) -> list[Step]:
    down: dict[str, str | None] = {
        "INFISICAL_SITE_URL": DOWN,
        "TENANT_SECRETS_INFISICAL_RETRIES": "attempts=2,max_delay=0.1",
    }
    up: dict[str, str | None] = {"INFISICAL_SITE_URL": site, "TENANT_SECRETS_INFISICAL_RETRIES": None}
    return [
        Step(
            "a value Infisical would trim fails the plan, naming the key",
            config={STRIPE: "fake-stripe-trailing-space "},
            up=False,
            check=plan_fails_saying("codewiser.STRIPE_SECRET_KEY", "whitespace"),
        ),
        Step(
            "an empty value, most often one nobody set, fails the plan",
            config={STRIPE: ""},
            up=False,
            check=plan_fails_saying(
                "1 value(s) are empty: codewiser.STRIPE_SECRET_KEY", "allow_empty: true", hidden="fake-stripe-trailing"
            ),
        ),
        Step(
            "without DATABASE_URL the plan is not green: not fully checked, yet its rows are shown",
            config={STRIPE: VALUES["codewiser"]["STRIPE_SECRET_KEY"]},
            env={"DATABASE_URL": ""},
            up=False,
            check=not_fully_checked,
        ),
        Step("what the plan warned about is what the up fails on", fails=["DATABASE_URL is not set"]),
        Step(
            "Infisical down: one short line per failing resource, no traceback",
            env={"DATABASE_URL": dsn, **down},
            fails=["failed after 2 attempts"],
            hides=["Traceback"],
            check=one_line_per_resource,
        ),
        Step("a good run", env=up),
        Step(
            "after a good run, a failed one shows the stack's outputs unchanged, not as deletions",
            config={STRIPE: "fake-stripe-cw-first-week-0002"},
            env=down,
            fails=["logging in to http://127.0.0.1:9"],
            check=outputs_unchanged,
        ),
        Step(
            "the traceback is there for whoever asks for it",
            env={"TENANT_SECRETS_DEBUG": "1"},
            fails=["Traceback (most recent call last)", "ProviderError: codewiser, infisical: "],
        ),
    ]


def test_a_first_week_of_refused_values_unchecked_plans_and_infisical_down(project: Project, master_key: str) -> None:
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    run_steps(project, stack, first_week(project.dsn, project.infisical.server.url), "a first week")


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

    def green(project: Project, stack: auto.Stack) -> None:
        status, comment, _ = plan(project)
        assert status == 0, comment
        assert "| hono-api (platform) | dev | infisical | `MASTER_ENCRYPTION_KEY` | literal | create |" in comment
        assert "not fully checked" not in comment and "MASTER_ENCRYPTION_KEY_V1" not in comment

    def derivation_key_needed(project: Project, stack: auto.Stack) -> None:
        status, comment, _ = plan(project)
        assert status == 1
        assert (
            "derivationKey must be a secret of 64 hex chars (it derives generated values and fingerprints)" in comment
        )

    steps = [
        Step("no master key and no database: the plan is green", env={"DATABASE_URL": ""}, up=False, check=green),
        Step(
            "without its derivation key, refused",
            settings={"derivationKey": None},
            up=False,
            check=derivation_key_needed,
        ),
    ]
    run_steps(project, stack, steps, "an Infisical-only stack")

"""`tenantctl plan` on real previews of real changes: the pull requests a reviewer reads.

One stack goes through a series of tenants.yaml edits, as declared steps (a changed value, a new key, a new
tenant, a decommissioned key, guarded removals, a missing value, a decommissioned tenant, a store dropped on
a retaining stack, a new table prefix); before each step's `up`, `plan_comment.run_plan` runs `pulumi
preview --json` itself, as CI does, and the rows it prints are checked. No value appears in anything it
printed.

With TENANT_SECRETS_RECORD_PREVIEWS=1 the test also saves each preview, scrubbed, to
tests/fixtures/previews/, which tests/tenantctl/test_plan_comment.py reads: the unit tests run on what the
real engine printed, not on hand-written JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.tenantctl import plan_comment
from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import PASSPHRASE, Project, configure, sdk
from tests.e2e.steps import Check, Step, run_steps

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "previews"
RECORD = os.environ.get("TENANT_SECRETS_RECORD_PREVIEWS") == "1"

V1 = """\
version: 1
defaults: {storage: both, environments: [dev]}
platform:
  hono-api:
    secrets:
      EMAIL_FROM: {value: "Delivery Chat <onboarding@example.test>"}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: config}
  - subdomain: acmecorp
    storage: database
    secrets:
      API_TOKEN: {generate: {bytes: 16}}
"""
NEWCO = """\
  - subdomain: newco
    storage: infisical
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"},
    "newco": {"STRIPE_SECRET_KEY": "fake-stripe-newco-0001"},
}
FAKE_VALUES = (
    "fake-by-hand",
    "fake-stripe-cw-0001",
    "fake-stripe-cw-0002",
    "fake-stripe-cw-0003",
    "fake-sendgrid-cw-0001",
    "fake-stripe-newco-0001",
    "fake-sendgrid-newco-0001",
    "fake-stripe-globex-0001",
    "fake-resend-0001",
)

# Everything a recorded preview keeps: what tenantctl plan reads, and enough context to read it.
NOISE = {"stackTrace", "sourcePosition", "propertyDependencies", "created", "modified", "duration", "dependencies"}


def scrub(node: Any) -> Any:
    """A preview without the noise (stack traces with local paths, timestamps); values stay as printed."""
    if isinstance(node, dict):
        return {k: scrub(v) for k, v in node.items() if k not in NOISE}
    if isinstance(node, list):
        return [scrub(v) for v in node]
    return node


def secret_leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, value) of every UPPER_CASE property of a state's inputs or outputs."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("inputs", "outputs") and isinstance(value, dict):
                found += [(f"{path}.{key}.{k}", v) for k, v in value.items() if re.fullmatch(r"[A-Z][A-Z0-9_]*", k)]
            found += secret_leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += secret_leaves(value, f"{path}[{index}]")
    return found


class Reviewer:
    """Runs `tenantctl plan` (plan_comment.run_plan) in the project, as the pull-request workflow does."""

    def __init__(self, project: Project, stack: auto.Stack, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
        self.project, self.stack, self.capsys, self.monkeypatch = project, stack, capsys, monkeypatch
        self.printed: list[str] = []
        self.secrets: list[str] = []
        monkeypatch.chdir(project.root)

    def plan(self, name: str, fmt: str = "json") -> tuple[int, dict[str, Any]]:
        """Exit status and the JSON plan (or, for markdown, {"markdown": text})."""
        for variable, value in self.project.env.items():  # the steps' environment, restored at the end
            self.monkeypatch.setenv(variable, value)
        self.capsys.readouterr()
        status = plan_comment.run_plan(self.stack.name, fmt, None, None)
        out = self.capsys.readouterr().out
        self.printed.append(out)
        if RECORD and fmt == "json":
            self.record(name)
        return status, (json.loads(out) if fmt == "json" else {"markdown": out})

    def rows(self, name: str, *, schema: bool = False) -> list[Row]:
        """The plan's rows; the schema's own row only when asked for (it also changes when the
        provider's bookkeeping does, which is not what these steps are about)."""
        status, plan = self.plan(name)
        assert status == 0, plan["errors"]
        rows = [Row(**row) for row in plan["changes"]]
        return rows if schema else [row for row in rows if row.kind != "schema"]

    def errors(self, name: str) -> list[str]:
        status, plan = self.plan(name)
        assert status == 1
        assert plan["ok"] is False
        assert plan["changes"] == []
        errors: list[str] = plan["errors"]
        return errors

    def record(self, name: str) -> None:
        done = subprocess.run(
            plan_comment.preview_command(self.stack.name, None), capture_output=True, text=True, check=False
        )
        document = scrub(json.loads(done.stdout))
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        for path, value in secret_leaves(document):
            assert value == "[secret]", f"{name}: {path} is not shown as [secret]"
        for value in (*FAKE_VALUES, *self.secrets, PASSPHRASE):
            assert value not in text, f"{name}: a secret value is in the recorded preview"
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / f"{name}.json").write_text(text)


@pytest.fixture
def cleanup(project: Project) -> Iterator[None]:
    """The stack retains on delete, like prod; the Infisical server is shared by the session's tests,
    so the folders this test leaves behind are removed at the end."""
    yield
    client = InfisicalClient(InfisicalCredentials.from_env(project.infisical.env))
    for path in ("/tenants/codewiser", "/tenants/acmecorp", "/tenants/newco", "/tenants/globex", "/hono-api"):
        client.delete_folder("dev", path)


Markdown = Callable[[str], None]


def rows(
    reviewer: Reviewer, name: str, expected: list[Row], *, schema: bool = False, markdown: Markdown | None = None
) -> Check:
    """The plan's rows are ``expected``; ``markdown`` reads its markdown form, when given."""

    def check(project: Project, stack: auto.Stack) -> None:
        assert reviewer.rows(name, schema=schema) == expected
        if markdown is not None:
            status, plan = reviewer.plan(name, "markdown")
            assert status == 0
            markdown(plan["markdown"])

    return check


def errors(reviewer: Reviewer, name: str, check_errors: Callable[[list[str]], None]) -> Check:
    """The plan fails (exit 1, no rows); ``check_errors`` reads its errors."""

    def check(project: Project, stack: auto.Stack) -> None:
        check_errors(reviewer.errors(name))

    return check


def email_from_updated(markdown: str) -> None:
    assert "| hono-api (platform) | dev | infisical | `EMAIL_FROM` | literal | update |" in markdown


def deletions_at_the_top(markdown: str) -> None:
    assert markdown.split("\n\n")[1] == "**2 secret(s) would be deleted:**"


def key_guard(found: list[str]) -> None:
    (error,) = found
    assert error.startswith("codewiser-")
    assert "SENDGRID_API_KEY is no longer declared" in error
    assert "SENDGRID_API_KEY: {decommission: true}" in error
    assert "{<nil>}" not in error


def tenant_guard(found: list[str]) -> None:
    (error,) = found
    assert error.startswith("registry: newco is no longer declared")


def missing_value(found: list[str]) -> None:
    assert "tenant newco, RESEND_API_KEY: the stack config has no value at secrets.newco.RESEND_API_KEY" in found[0]
    assert "--stack dev`" in found[0]  # the fix names the stack it is for
    assert not any("program exited with error code" in e for e in found)


def invalid_file(found: list[str]) -> None:
    (error,) = found
    assert "unknown field 'storge'" in error
    assert "did you mean 'storage'?" in error.lower()


V2 = V1.replace("onboarding@", "hello@")
V3 = V2.replace(
    "      SENDGRID_API_KEY: {from: config}\n",
    "      SENDGRID_API_KEY: {from: config}\n      WEBHOOK_SECRET: {generate: {bytes: 32, encoding: hex}}\n",
)
V4 = V3 + NEWCO
V5 = V4.replace("SENDGRID_API_KEY: {from: config}", "SENDGRID_API_KEY: {decommission: true}")
V6 = V5.replace("  - subdomain: acmecorp\n", "  - subdomain: acmecorp\n    decommission: true\n")
V7 = V6.replace(
    "  - subdomain: acmecorp\n    decommission: true\n    storage: database\n"
    "    secrets:\n      API_TOKEN: {generate: {bytes: 16}}\n",
    "",
)
V8 = (
    V7.replace(
        "WEBHOOK_SECRET: {generate: {bytes: 32, encoding: hex}}", "WEBHOOK_SECRET: {decommission: true}"
    ).replace(
        '      EMAIL_FROM: {value: "Delivery Chat <hello@example.test>"}\n',
        '      EMAIL_FROM: {value: "Delivery Chat <hello@example.test>"}\n'
        "      RESEND_API_KEY: {from: env, var: RESEND_API_KEY}\n",
    )
    + "      SENDGRID_API_KEY: {from: config}\n"
    + "  - subdomain: globex\n    secrets:\n      STRIPE_SECRET_KEY: {from: config}\n"
)


def changed_by_hand(project: Project) -> None:
    """Drift: someone edits a managed key in Infisical, outside tenants.yaml."""
    where = {"project_id": project.infisical.project_id, "environment_slug": "dev"}
    sdk(project.infisical).secrets.update_secret_by_name(
        current_secret_name="STRIPE_SECRET_KEY", secret_path="/tenants/codewiser", secret_value="fake-by-hand", **where
    )


def drift_read(markdown: str) -> None:
    assert plan_comment.DRIFT_READ in markdown
    assert "| codewiser | dev | infisical | `STRIPE_SECRET_KEY` | config | restore |" in markdown


def review(reviewer: Reviewer) -> list[Step]:
    """The pull requests, in order; each plan is checked before its up."""

    def no_changes(project: Project, stack: auto.Stack) -> None:
        status, plan = reviewer.plan("no-changes", "markdown")
        assert status == 0
        assert "No changes" in plan["markdown"]

    def the_guide_s_example(project: Project, stack: auto.Stack) -> None:
        """docs/guides/pull-requests.md's example (written where TENANT_SECRETS_PLAN_EXAMPLE says)."""
        status, plan = reviewer.plan("pull-request", "markdown")
        assert status == 0
        Path(os.environ.get("TENANT_SECRETS_PLAN_EXAMPLE", os.devnull)).write_text(plan["markdown"])

    def nothing_shown(project: Project, stack: auto.Stack) -> None:
        shown = "".join(reviewer.printed)
        leaked = [value for value in (*FAKE_VALUES, *reviewer.secrets) if value in shown]
        assert not leaked, f"{len(leaked)} value(s) shown to the reviewer"

    return [
        Step(
            "the first pull request: everything is created, the schema too",
            tenants=V1,
            before=rows(
                reviewer,
                "initial",
                [
                    Row("acmecorp", "dev", "database", "API_TOKEN", "create"),
                    Row("codewiser", "dev", "database", "SENDGRID_API_KEY", "create"),
                    Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "create"),
                    Row("codewiser", "dev", "infisical", "SENDGRID_API_KEY", "create"),
                    Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "create"),
                    Row("hono-api", "dev", "infisical", "EMAIL_FROM", "create", "platform"),
                    Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY", "create", "platform"),
                    Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY_V1", "create", "platform"),
                    Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY_VERSION", "create", "platform"),
                    Row("company_secrets", "dev", "database", "-", "create", "schema"),
                ],
                schema=True,
            ),
        ),
        Step("once applied, the comment says there is no change", up=False, check=no_changes),
        Step(
            "a value changed by hand in Infisical: the plan reads the stores first and shows the restore",
            by_hand=changed_by_hand,
            before=rows(
                reviewer,
                "drift",
                [Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "restore")],
                markdown=drift_read,
            ),
            refresh=1,  # the deploy's `pulumi up --refresh`: the declared value is written back
        ),
        Step("once restored, the comment says there is no change", up=False, check=no_changes),
        Step(
            "a value changed in the stack config, and a literal in the file (a platform folder's)",
            config={("codewiser", "STRIPE_SECRET_KEY"): "fake-stripe-cw-0002"},
            tenants=V2,
            before=rows(
                reviewer,
                "change-value",
                [
                    Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "update"),
                    Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "update"),
                    Row("hono-api", "dev", "infisical", "EMAIL_FROM", "update", "platform"),
                ],
                markdown=email_from_updated,
            ),
        ),
        Step(
            "a key added to a tenant",
            tenants=V3,
            before=rows(
                reviewer,
                "add-key",
                [
                    Row("codewiser", "dev", "database", "WEBHOOK_SECRET", "create"),
                    Row("codewiser", "dev", "infisical", "WEBHOOK_SECRET", "create"),
                ],
            ),
        ),
        Step(
            "a tenant added",
            tenants=V4,
            before=rows(reviewer, "add-tenant", [Row("newco", "dev", "infisical", "STRIPE_SECRET_KEY", "create")]),
        ),
        Step(
            "a key dropped without its marker: the removal guard fails the preview, and the plan says why",
            tenants=V4.replace("      SENDGRID_API_KEY: {from: config}\n", ""),
            up=False,
            check=errors(reviewer, "removal-guard-key", key_guard),
        ),
        Step(
            "a tenant dropped without its marker: refused by the registry",
            tenants=V4.replace(NEWCO, ""),
            up=False,
            check=errors(reviewer, "removal-guard-tenant", tenant_guard),
        ),
        Step(
            "a key marked for deletion: deletions at the top, both stores",
            tenants=V5,
            before=rows(
                reviewer,
                "decommission-key",
                [
                    Row("codewiser", "dev", "database", "SENDGRID_API_KEY", "delete"),
                    Row("codewiser", "dev", "infisical", "SENDGRID_API_KEY", "delete"),
                ],
                markdown=deletions_at_the_top,
            ),
        ),
        Step(
            "a new key whose config value nobody set: the plan names the path and the stack",
            tenants=V5.replace(NEWCO, NEWCO + "      RESEND_API_KEY: {from: config}\n"),
            up=False,
            check=errors(reviewer, "missing-value", missing_value),
        ),
        Step(
            "a file that does not validate: the plan names the field and suggests the right one",
            tenants=V5.replace("    storage: infisical\n", "    storge: infisical\n"),
            up=False,
            check=errors(reviewer, "invalid-file", invalid_file),
        ),
        Step(
            "a tenant decommissioned",
            tenants=V6,
            before=rows(reviewer, "decommission-tenant", [Row("acmecorp", "dev", "database", "API_TOKEN", "delete")]),
        ),
        Step(
            "then its entry removed: forgotten",
            tenants=V7,
            before=rows(reviewer, "forget-tenant", [Row("acmecorp", "dev", "database", "-", "forget")]),
        ),
        Step(
            "a store dropped from a tenant on a stack that retains: nothing deleted, named as no longer managed;"
            " it was the last tenant in the database, so the master keys stay published, no longer managed either",
            tenants=V7.replace("  - subdomain: codewiser\n", "  - subdomain: codewiser\n    storage: infisical\n"),
            up=False,
            check=rows(
                reviewer,
                "store-dropped-retained",
                [
                    Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "retain"),
                    Row("codewiser", "dev", "database", "WEBHOOK_SECRET", "retain"),
                    Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY", "retain", "platform"),
                    Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY_V1", "retain", "platform"),
                    Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY_VERSION", "retain", "platform"),
                ],
            ),
        ),
        Step(
            "a new table prefix: the rows are written again under it (preview only)",
            tenants=V7,
            settings={"tablePrefix": "app_"},
            up=False,
            check=rows(
                reviewer,
                "table-prefix-replace",
                [
                    Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "replace"),
                    Row("codewiser", "dev", "database", "WEBHOOK_SECRET", "replace"),
                    Row("company_secrets", "dev", "database", "-", "migrate", "schema"),
                ],
                schema=True,
            ),
        ),
        Step(
            "a pull request as engineers write them: a rotated value, a new key, a retired key, a new tenant,"
            " a platform key from CI's environment",
            settings={"tablePrefix": None},
            config={
                ("codewiser", "STRIPE_SECRET_KEY"): "fake-stripe-cw-0003",
                ("newco", "SENDGRID_API_KEY"): "fake-sendgrid-newco-0001",
                ("globex", "STRIPE_SECRET_KEY"): "fake-stripe-globex-0001",
            },
            env={"RESEND_API_KEY": "fake-resend-0001"},
            tenants=V8,
            up=False,
            check=rows(
                reviewer,
                "pull-request",
                [
                    Row("codewiser", "dev", "database", "WEBHOOK_SECRET", "delete"),
                    Row("codewiser", "dev", "infisical", "WEBHOOK_SECRET", "delete"),
                    Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "update"),
                    Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "update"),
                    Row("globex", "dev", "database", "STRIPE_SECRET_KEY", "create"),
                    Row("globex", "dev", "infisical", "STRIPE_SECRET_KEY", "create"),
                    Row("hono-api", "dev", "infisical", "RESEND_API_KEY", "create", "platform"),
                    Row("newco", "dev", "infisical", "SENDGRID_API_KEY", "create"),
                ],
            ),
        ),
        Step("docs/guides/pull-requests.md's example is that plan", up=False, check=the_guide_s_example),
        Step("nothing the reviewer was shown holds a value", up=False, check=nothing_shown),
    ]


@pytest.mark.long  # a dozen engine runs (~55 s): make test-long
@pytest.mark.usefixtures("cleanup")
def test_plans_of_real_changes(
    project: Project, master_key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = project.stack("dev")
    allow = ["RESEND_API_KEY"]
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key}, env_allow=allow, retainOnDelete="true")
    reviewer = Reviewer(project, stack, monkeypatch, capsys)
    reviewer.secrets = [master_key, stack.get_config("tenant-secrets:derivationKey").value]
    run_steps(project, stack, review(reviewer), "plans of real changes")

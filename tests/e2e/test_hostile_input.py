"""A hostile tenants.yaml through the real engine, as declared steps: `pulumi preview`, and `tenantctl plan`
(which runs `pulumi preview --json`), fail with the loader's one line, no traceback, and nothing written
(issue 19). The families of hostile files are generated in tests/tenants_file/test_hostile_input.py; this
checks the entry point once."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pulumi import automation as auto

from tenant_secrets.tenantctl.main import main
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, run_steps
from tests.tenants_file.test_hostile_input import DEEP_LIST

pytestmark = pytest.mark.e2e

ISSUE = "tenants.yaml:5:73: tenants[0][0][0]"  # where the list passes 64 levels
SAYS = ": nested more than 64 levels deep. A tenants.yaml needs about 10; write this part flat"


def shown(output: str) -> str:
    """The one line naming the issue."""
    (line,) = (line.strip() for line in output.splitlines() if ISSUE in line)
    return line


def one_line(project: Project, stack: auto.Stack) -> None:
    output = project.outputs[-1]  # the failed preview's
    assert "Traceback" not in output
    assert shown(output).endswith(SAYS)


def the_plan_says_the_same(project: Project, stack: auto.Stack) -> None:
    line = shown(project.outputs[-1])
    status, document, output = project.preview_json(stack)  # what `tenantctl plan` runs and reads
    assert status != 0 and document is not None
    assert "Traceback" not in output
    preview = project.root / "preview.json"
    preview.write_text(json.dumps(document))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # `tenantctl plan --preview-json`, in this process: no start-up
        status = main(["plan", "--stack", "dev", "--preview-json", str(preview)])
    comment = project.capture(printed.getvalue())
    assert status == 1
    assert "the preview failed" in comment and "Traceback" not in comment
    assert [text for text in comment.splitlines() if ISSUE in text] == [line]
    assert project.infisical.writes() == 0


def test_a_list_nested_5000_deep_fails_the_preview_with_one_line(project: Project, master_key: str) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    steps = [
        Step(
            "`pulumi preview` fails with the loader's one line, no traceback",
            tenants=DEEP_LIST,
            preview_fails=[ISSUE],
            up=False,
            check=one_line,
        ),
        Step(
            "`tenantctl plan` on its JSON fails with the same line; nothing was written",
            up=False,
            check=the_plan_says_the_same,
        ),
    ]
    run_steps(project, stack, steps, "a list nested 5000 deep")

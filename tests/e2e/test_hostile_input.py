"""A hostile tenants.yaml through the real engine: `pulumi preview`, and `tenantctl plan` (which runs
`pulumi preview --json`), fail with the loader's one line, no traceback, and nothing written (issue 19).
The families of hostile files are generated in tests/tenants_file/test_hostile_input.py; this checks the
entry point once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tenant_secrets.tenantctl.main import main
from tests.e2e.conftest import Project, configure
from tests.tenants_file.test_hostile_input import DEEP_LIST

pytestmark = pytest.mark.e2e

ISSUE = "tenants.yaml:5:73: tenants[0][0][0]"  # where the list passes 64 levels


def test_a_list_nested_5000_deep_fails_the_preview_with_one_line(
    project: Project, master_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    project.write_tenants(DEEP_LIST)

    done = subprocess.run(
        ["pulumi", "preview", "--non-interactive", "--stack", "dev"],
        cwd=project.root,
        env={**os.environ, **project.env},
        capture_output=True,
        text=True,
        check=False,
    )
    output = project.capture(done.stdout + done.stderr)
    assert done.returncode != 0
    assert "Traceback" not in output
    (shown,) = (line.strip() for line in output.splitlines() if ISSUE in line)
    assert shown.endswith(": nested more than 64 levels deep. A tenants.yaml needs about 10; write this part flat")

    status, document, output = project.preview_json(stack)  # what `tenantctl plan` runs and reads
    assert status != 0 and document is not None
    assert "Traceback" not in output
    preview = tmp_path / "preview.json"
    preview.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["plan", "--stack", "dev", "--preview-json", str(preview)]) == 1
    comment = capsys.readouterr().out
    assert "the preview failed" in comment and "Traceback" not in comment
    assert [line for line in comment.splitlines() if ISSUE in line] == [shown]
    assert project.infisical.writes() == 0

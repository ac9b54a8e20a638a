"""Issue 26, item 8: `tenantctl validate --stack` refuses a `{from: infisical}` source that reads a folder or
key the stack's run deletes (the program refuses the same at preview: tests/e2e/test_deleted_reads.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tenant_secrets.tenantctl.main import main

FIXTURES = Path(__file__).parents[1] / "fixtures"

MIGRATED = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: alder
    storage: database
    secrets:
      STRIPE_SECRET_KEY: {from: infisical, path: /tenants/alder, key: STRIPE_SECRET_KEY}
  - subdomain: birch
    secrets:
      STRIPE_SECRET_KEY: {from: infisical, path: /tenants/birch, key: STRIPE_SECRET_KEY}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ci stack file, and tenants.yaml after the runbook's step 6 for alder (storage: database)."""
    shutil.copy(FIXTURES / "Pulumi.ci.yaml", tmp_path / "Pulumi.ci.yaml")
    (tmp_path / "tenants.yaml").write_text(MIGRATED)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def retain_on_delete(project: Path, value: str) -> None:
    with (project / "Pulumi.ci.yaml").open("a") as stack_file:
        stack_file.write(f"  tenant-secrets:retainOnDelete: {value}\n")


def test_a_folder_the_stack_deletes_cannot_be_read(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    retain_on_delete(project, "false")
    assert main(["validate", "--stack", "ci"]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "tenants.yaml:7:26: tenants[0].secrets.STRIPE_SECRET_KEY: tenant alder, STRIPE_SECRET_KEY: reads "
        "STRIPE_SECRET_KEY from Infisical dev:/tenants/alder, a folder this stack's run deletes (tenant alder has "
        "storage: database on a stack with retainOnDelete: false, which deletes it). Keep alder at storage: both "
        "until no key reads its folder (take each value into the stack config and read it {from: config}: "
        "docs/guides/migrating-to-the-database.md, step 7), or set the stack's retainOnDelete to true (the folder "
        "then stays, no longer managed)"
    ]
    assert out.err == "tenants.yaml: 1 problem(s)\n"


@pytest.mark.parametrize("value", ["true", None])
def test_a_stack_that_retains_keeps_the_folder_readable(
    project: Path, capsys: pytest.CaptureFixture[str], value: str | None
) -> None:
    if value is not None:
        retain_on_delete(project, value)
    assert main(["validate", "--stack", "ci"]) == 0, capsys.readouterr().out


def test_a_key_marked_for_deletion_cannot_be_read(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tenants.yaml").write_text(
        MIGRATED.replace("storage: database", "storage: both")
        + "      OLD_TOKEN: {decommission: true}\n"
        + "      TOKEN: {from: infisical, path: /tenants/birch/, key: OLD_TOKEN}\n"
    )
    retain_on_delete(project, "false")
    assert main(["validate", "--stack", "ci"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "tenants.yaml:12:14: tenants[1].secrets.TOKEN: tenant birch, TOKEN: reads OLD_TOKEN from Infisical "
        "dev:/tenants/birch, which tenant birch marks {decommission: true}: this stack's run deletes it. Give TOKEN "
        "another source, or keep OLD_TOKEN (drop its decommission marker)"
    ]

"""What a pull request may hand to a trusted preview: its data files, checked; its code never."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_secrets.stack.head_data import HeadDataError, classify, render_note, stack_file_problems, take_head_data
from tenant_secrets.tenantctl.main import main

FAKE_CIPHERTEXT_MASTER = "v1:fake-ciphertext-of-the-master-key"
BASE: dict[str, Any] = {
    "encryptionsalt": "v1:fake-salt",
    "config": {
        "tenant-secrets:environment": "prod",
        "tenant-secrets:activeKeyVersion": 1,
        "tenant-secrets:masterKeys": {"v1": {"secure": FAKE_CIPHERTEXT_MASTER}},
        "tenant-secrets:derivationKey": {"secure": "v1:fake-ciphertext-of-the-derivation-key"},
        "tenant-secrets:secrets": {"codewiser": {"STRIPE_SECRET_KEY": {"secure": "v1:fake-ciphertext-stripe"}}},
    },
}


def head(**config: Any) -> dict[str, Any]:
    changed = copy.deepcopy(BASE)
    changed["config"].update(config)
    return changed


def test_only_tenants_yaml_and_stack_files_are_data() -> None:
    changes = classify(
        [
            "tenants.yaml",
            "Pulumi.prod.yaml",
            "Pulumi.yaml",
            "__main__.py",
            "components/program.py",
            "Makefile",
            "scripts/setup.sh",
            ".github/workflows/pull-request.yml",
            "README.md",
            "docs/decisions/0001-toolchain.md",
        ]
    )
    assert changes.data == ("Pulumi.prod.yaml", "tenants.yaml")
    assert changes.code == (
        ".github/workflows/pull-request.yml",
        "Makefile",
        "Pulumi.yaml",
        "__main__.py",
        "components/program.py",
        "scripts/setup.sh",
    )
    assert changes.documentation == ("README.md", "docs/decisions/0001-toolchain.md")
    assert changes.code_changed
    assert not classify(["tenants.yaml", "Pulumi.dev.yaml", "README.md"]).code_changed


def test_a_tenants_change_in_the_stack_file_is_taken() -> None:
    changed = head(**{"tenant-secrets:activeKeyVersion": 2, "tenant-secrets:historyRetention": 3})
    changed["config"]["tenant-secrets:masterKeys"]["v2"] = {"secure": "v1:fake-ciphertext-new-master-key"}
    changed["config"]["tenant-secrets:secrets"]["globex"] = {"STRIPE_SECRET_KEY": {"secure": "v1:fake-new"}}
    assert stack_file_problems("prod", BASE, changed) == []


@pytest.mark.parametrize("count", [None, 1, 16])
def test_a_bucket_count_is_pull_request_data(count: int | None) -> None:
    """Set at `stack init`, changed or removed later by a reviewed move: each previews as one."""
    with_buckets = head(**{"tenant-secrets:buckets": 4})
    changed = head(**({"tenant-secrets:buckets": count} if count else {}))
    assert stack_file_problems("prod", with_buckets, changed) == []
    assert stack_file_problems("prod", BASE, changed) == []


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_the_repositorys_own_stack_files_can_be_previewed(name: str) -> None:
    """Every setting the committed stack files hold is one a pull request that leaves them as they are can
    carry to the trusted preview (`buckets` in Pulumi.dev.yaml among them)."""
    committed = yaml.safe_load((Path(__file__).parents[2] / f"Pulumi.{name}.yaml").read_text())
    assert stack_file_problems(name, committed, committed) == []


@pytest.mark.parametrize("key", ["secretsprovider", "encryptedkey", "encryptionsalt", "environment"])
def test_how_secrets_are_decrypted_comes_from_the_base(key: str) -> None:
    changed = head()
    changed[key] = "awskms://alias/someone-elses-key"
    [problem] = stack_file_problems("prod", BASE, changed)
    assert problem.startswith(f"Pulumi.prod.yaml: `{key}` differs from the base branch's")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("tenant-secrets:tenantsFile", "../base/.state/passphrase", "`tenant-secrets:tenantsFile` differs"),
        ("tenant-secrets:environment", "staging", "`tenant-secrets:environment` differs"),
        ("tenant-secrets:keyFolder", "/other-app", "`tenant-secrets:keyFolder` differs"),
        ("tenant-secrets:masterKeySource", "infisical", "`tenant-secrets:masterKeySource` differs"),
        ("tenant-secrets:shard", "2/2", "`tenant-secrets:shard` differs"),
        ("pulumi:disable-default-providers", ["*"], "is not a tenant-secrets setting"),
        ("aws:region", "eu-west-1", "is not a tenant-secrets setting"),
        ("tenant-secrets:somethingNew", "x", "is not a setting of this project"),
        ("tenant-secrets:historyRetention", {"secure": "v1:fake-ciphertext-new"}, "must be a plain value"),
        ("tenant-secrets:derivationKey", "00" * 32, "must be set with `pulumi config set --secret`"),
    ],
)
def test_settings_a_pull_request_may_not_change(key: str, value: Any, expected: str) -> None:
    [problem] = stack_file_problems("prod", BASE, head(**{key: value}))
    assert expected in problem
    assert FAKE_CIPHERTEXT_MASTER not in problem


ROLES_BASE = head(
    **{
        "tenant-secrets:appRole": "deliverychat_app",
        "tenant-secrets:provisionerRole": "tenant_secrets_provisioner",
        "tenant-secrets:appRolePassword": {"secure": "v1:fake-ciphertext-app-password"},
        "tenant-secrets:tablePrefix": "deliverychat_",
    }
)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        pytest.param(  # the attack of issue 26, item 2: the application's login role becomes the provisioner
            {"tenant-secrets:appRole": "decoy_app", "tenant-secrets:provisionerRole": "deliverychat_app"},
            ["tenant-secrets:appRole", "tenant-secrets:provisionerRole"],
            id="app-role-made-provisioner",
        ),
        pytest.param({"tenant-secrets:appRole": None}, ["tenant-secrets:appRole"], id="app-role-removed"),
        pytest.param(
            {"tenant-secrets:provisionerRolePassword": {"secure": "v1:fake-ciphertext-known-to-the-author"}},
            ["tenant-secrets:provisionerRolePassword"],
            id="provisioner-password-added",
        ),
        pytest.param(
            {"tenant-secrets:appRolePassword": {"secure": "v1:fake-ciphertext-known-to-the-author"}},
            ["tenant-secrets:appRolePassword"],
            id="app-password-changed",
        ),
        pytest.param(  # a pull request may not hand a role the application's writes
            {
                "tenant-secrets:appWriterRole": "deliverychat_app",
                "tenant-secrets:appWriterRolePassword": {"secure": "v1:fake-ciphertext-known-to-the-author"},
            },
            ["tenant-secrets:appWriterRole", "tenant-secrets:appWriterRolePassword"],
            id="writer-added",
        ),
        pytest.param({"tenant-secrets:tablePrefix": "other_app_"}, ["tenant-secrets:tablePrefix"], id="table-prefix"),
        pytest.param({"tenant-secrets:createCompanies": "true"}, ["tenant-secrets:createCompanies"], id="companies"),
    ],
)
def test_who_gets_which_database_rights_is_not_a_pull_requests_to_change(
    changes: dict[str, Any], named: list[str]
) -> None:
    changed = copy.deepcopy(ROLES_BASE)
    for key, value in changes.items():
        if value is None:
            del changed["config"][key]
        else:
            changed["config"][key] = value
    problems = stack_file_problems("prod", ROLES_BASE, changed)
    assert [p.split("`")[1] for p in problems] == named
    for problem in problems:
        assert "previewed only after approval or merge" in problem
        assert "fake-ciphertext" not in problem


def test_a_ciphertext_moved_to_another_setting_is_refused() -> None:
    """The master key's ciphertext under a tenant's key would be decrypted and used as that key's value."""
    changed = head()
    changed["config"]["tenant-secrets:secrets"]["codewiser"]["STRIPE_SECRET_KEY"] = {"secure": FAKE_CIPHERTEXT_MASTER}
    [problem] = stack_file_problems("prod", BASE, changed)
    assert problem == (
        "Pulumi.prod.yaml: `tenant-secrets:secrets.codewiser.STRIPE_SECRET_KEY` holds the ciphertext of "
        "`tenant-secrets:masterKeys.v1`: a value moved from one setting to another is refused; set it with "
        "`pulumi config set --secret`"
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def commit(repo: Path, files: dict[str, str], symlinks: dict[str, str] | None = None) -> None:
    for name, text in files.items():
        (repo / name).write_text(text)
    for name, target in (symlinks or {}).items():
        (repo / name).unlink(missing_ok=True)
        (repo / name).symlink_to(target)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "c")


@pytest.fixture
def checkouts(tmp_path: Path) -> tuple[Path, Path]:
    """The base branch's checkout, and a clone of it for the pull request's head."""
    base, head_dir = tmp_path / "base", tmp_path / "head"
    base.mkdir()
    git(base, "init", "-q")
    commit(base, {"tenants.yaml": "version: 1\n", "Pulumi.prod.yaml": yaml.safe_dump(BASE), "Makefile": "x:\n"})
    subprocess.run(["git", "clone", "-q", str(base), str(head_dir)], check=True)
    return base, head_dir


def test_the_heads_data_is_copied_into_the_trusted_checkout(checkouts: tuple[Path, Path]) -> None:
    base, head_dir = checkouts
    changed = head(**{"tenant-secrets:activeKeyVersion": 2})
    commit(head_dir, {"tenants.yaml": "version: 1\ntenants: []\n", "Pulumi.prod.yaml": yaml.safe_dump(changed)})
    assert take_head_data(base, head_dir, "prod") == ["tenants.yaml", "Pulumi.prod.yaml"]
    assert (base / "tenants.yaml").read_text() == "version: 1\ntenants: []\n"
    assert yaml.safe_load((base / "Pulumi.prod.yaml").read_text()) == changed


def test_a_symlink_is_refused_not_followed(checkouts: tuple[Path, Path], tmp_path: Path) -> None:
    base, head_dir = checkouts
    outside = tmp_path / "outside.txt"
    outside.write_text("fake-protected-file\n")
    commit(head_dir, {}, symlinks={"tenants.yaml": str(outside)})
    with pytest.raises(HeadDataError) as caught:
        take_head_data(base, head_dir, "prod")
    assert caught.value.problems == ("tenants.yaml: not a regular file in the pull request (git mode 120000)",)
    assert (base / "tenants.yaml").read_text() == "version: 1\n"


def test_a_refused_stack_file_leaves_the_trusted_checkout_as_it_was(checkouts: tuple[Path, Path]) -> None:
    base, head_dir = checkouts
    changed = head()
    changed["secretsprovider"] = "awskms://alias/someone-elses-key"
    commit(head_dir, {"tenants.yaml": "version: 1\ntenants: []\n", "Pulumi.prod.yaml": yaml.safe_dump(changed)})
    with pytest.raises(HeadDataError):
        take_head_data(base, head_dir, "prod")
    assert (base / "tenants.yaml").read_text() == "version: 1\n"
    assert yaml.safe_load((base / "Pulumi.prod.yaml").read_text()) == BASE


def test_pr_changes_tells_the_workflow_whether_code_changed(
    checkouts: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, head_dir = checkouts
    commit(head_dir, {"tenants.yaml": "version: 1\ntenants: []\n"})
    assert main(["pr-changes", "--head", str(head_dir), "--base", str(base)]) == 0
    assert capsys.readouterr().out == "code_changed=false\n"
    commit(head_dir, {"Makefile": "x:\n\techo changed\n"})
    assert main(["pr-changes", "--head", str(head_dir), "--base", str(base)]) == 0
    printed = capsys.readouterr()
    assert printed.out == "code_changed=true\n"
    assert "code: Makefile" in printed.err


def test_the_note_says_whose_code_ran_and_what_waits_for_approval() -> None:
    note = {
        paths: render_note(
            stack="prod",
            code="base",
            base_rev="b" * 40,
            head_rev="h" * 40,
            changes=classify(paths),
            approval_environment="pr-preview-approval",
        )
        for paths in (("tenants.yaml",), ("tenants.yaml", "components/program.py"))
    }
    data_only, with_code = note[("tenants.yaml",)], note[("tenants.yaml", "components/program.py")]
    assert data_only.startswith(f"> **How this preview ran:** the base branch's code at `{'b' * 12}`, never this")
    assert "also changes code" not in data_only
    assert (
        "> This pull request also changes code (`components/program.py`). That code does not run with stack "
        "`prod`'s credentials until a reviewer approves the `pr-preview-approval` environment" in with_code
    )


def test_pr_data_puts_the_refusal_where_the_comment_is_read(
    checkouts: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head_dir = checkouts
    changed = head()
    changed["secretsprovider"] = "awskms://alias/someone-elses-key"
    commit(head_dir, {"Pulumi.prod.yaml": yaml.safe_dump(changed)})
    note = tmp_path / "plan.md"
    assert main(["pr-data", "--head", str(head_dir), "--base", str(base), "--stack", "prod", "--note", str(note)]) == 1
    assert note.read_text().startswith(
        "### tenant-secrets plan: stack `prod`: not previewed\n\n"
        "**This pull request's data files cannot be previewed with the base branch's code:**\n\n"
        "- Pulumi.prod.yaml: `secretsprovider` differs from the base branch's"
    )
    assert "tenantctl pr-data: Pulumi.prod.yaml: `secretsprovider` differs" in capsys.readouterr().err

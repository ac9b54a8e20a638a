"""tenantctl validate / schema, run in-process as a user would run them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tenant_secrets.tenantctl.main import main
from tenant_secrets.tenants_file import schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures"
ENV_VARS = ("RESEND_API_KEY", "CODEWISER_SENDGRID_API_KEY")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with the committed tenants.yaml and the ci stack file, as the cwd."""
    shutil.copy(ROOT / "tenants.yaml", tmp_path / "tenants.yaml")
    shutil.copy(FIXTURES / "Pulumi.ci.yaml", tmp_path / "Pulumi.ci.yaml")
    monkeypatch.chdir(tmp_path)
    for name in ENV_VARS:
        monkeypatch.setenv(name, f"fake-{name.lower()}")
    return tmp_path


def test_validate_a_valid_file_prints_one_summary_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert out == ("tenants.yaml: valid; 3 tenant(s), 1 platform folder(s), environments dev, staging, prod\n")


def test_validate_prints_every_issue_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FIXTURES / "broken-tenants.yaml")]) == 1
    captured = capsys.readouterr()
    lines = [line.split(str(FIXTURES) + "/")[1] for line in captured.out.splitlines()]
    assert [line.split(": ")[0:2] for line in lines] == [
        ["broken-tenants.yaml:8:5", "tenants[0].storge"],
        ["broken-tenants.yaml:10:41", "tenants[0].secrets.STRIPE_SECRET_KEY.value"],
        ["broken-tenants.yaml:11:16", "tenants[1].subdomain"],
        ["broken-tenants.yaml:12:16", "tenants[2].subdomain"],
    ]
    assert "sk_test_fake" not in captured.out
    assert captured.err.endswith("4 problem(s)\n")


def test_validate_with_a_stack_checks_every_source(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--stack", "ci"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tenants.yaml: valid; 3 tenant(s)")
    assert "; stack ci (dev): 3 tenant(s) and 1 platform folder(s) with 14 secret(s), every value source set\n" in out


def test_validate_with_a_stack_reports_missing_values_with_the_fix(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESEND_API_KEY")
    stack = (project / "Pulumi.ci.yaml").read_text().replace("    shared:\n", "    unused:\n")
    (project / "Pulumi.ci.yaml").write_text(stack)
    assert main(["validate", "--stack", "ci"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "tenants.yaml:31:23: platform.hono-api.secrets.RESEND_API_KEY: platform folder hono-api, RESEND_API_KEY: "
        "the environment variable RESEND_API_KEY is not set (dev). `export RESEND_API_KEY=<value>` where pulumi runs "
        "(in CI: a secret of that name in the job's GitHub environment, passed by `tenantctl ci-env` when the "
        "stack's tenant-secrets:envAllow lists it)",
        "tenants.yaml:42:30: tenants[0].overrides.dev.secrets.STRIPE_SECRET_KEY: tenant codewiser, STRIPE_SECRET_KEY: "
        "the stack config has no value at secrets.shared.stripe_test_key (dev). Set it with "
        "`pulumi config set --secret --path 'secrets.shared.stripe_test_key' --stack ci` (it prompts for the value)",
    ]


def test_a_secret_in_the_clear_in_the_stack_file_is_reported(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (project / "Pulumi.ci.yaml").open("a") as stack:
        stack.write("    hono-api:\n      LEAKED: fake-plain-value\n")
    assert main(["validate", "--stack", "ci"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("Pulumi.ci.yaml:30:15: config.tenant-secrets:secrets.hono-api.LEAKED: ")
    assert "stored in the clear" in line
    assert "fake-plain-value" not in line


def test_the_environment_defaults_to_the_stack_name(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (project / "Pulumi.ci.yaml").read_text().replace("  tenant-secrets:environment: dev\n", "")
    (project / "Pulumi.prod.yaml").write_text(text)
    assert main(["validate", "--stack", "prod"]) == 0
    assert "stack prod (prod): 2 tenant(s)" in capsys.readouterr().out
    (project / "Pulumi.qa.yaml").write_text(text)
    assert main(["validate", "--stack", "qa"]) == 1
    assert "the stack's environment 'qa' is not declared" in capsys.readouterr().out


def test_a_missing_stack_file_is_an_issue(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--stack", "nope"]) == 1
    assert capsys.readouterr().out.startswith(
        "Pulumi.nope.yaml:1:1: (file): cannot read the stack file: No such file or directory. Run from the project"
    )


def test_config_file_option(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "Pulumi.ci.yaml").rename(project / "elsewhere.yaml")
    assert main(["validate", "tenants.yaml", "--stack", "ci", "--config-file", "elsewhere.yaml"]) == 0


def test_github_format_annotates_the_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FIXTURES / "broken-tenants.yaml"), "--format", "github"]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"::error file={FIXTURES}/broken-tenants.yaml,line=8,col=5,title=tenants[0].storge::")
    assert first.endswith(
        "unknown field 'storge'. did you mean 'storage'? Allowed here: subdomain, name, company_id, "
        "storage, environments, secrets, overrides, regions, decommission"
    )


def test_schema_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "tenants.schema.json"
    assert main(["schema", "--check", "--output", str(target)]) == 1
    assert main(["schema", "--output", str(target)]) == 0
    assert target.read_text() == schema.render()
    assert main(["schema", "--output", str(target)]) == 0
    assert main(["schema", "--check", "--output", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{target} written", f"{target} unchanged", f"{target} is up to date"]


def test_the_committed_schema_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["schema", "--check"]) == 0


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--format", "xml"])
    assert caught.value.code == 2


def test_plan_is_wired_to_the_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preview = tmp_path / "preview.json"
    preview.write_text('{"steps": [], "config": {"tenant-secrets:environment": "dev"}}')
    assert main(["plan", "--stack", "dev", "--format", "json", "--preview-json", str(preview)]) == 0
    assert capsys.readouterr().out.strip()


def test_validate_checks_the_stack_settings_the_file_shows(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """activeKeyVersion naming a key masterKeys lacks, and no derivationKey: `plan` would refuse, so does validate."""
    text = (project / "Pulumi.ci.yaml").read_text()
    text = text.replace(
        "  tenant-secrets:environment: dev\n",
        "  tenant-secrets:environment: dev\n  tenant-secrets:activeKeyVersion: 2\n",
    )
    start = text.index("  tenant-secrets:derivationKey:\n")
    text = text[:start] + text[text.index("  tenant-secrets:masterKeys:\n") :]
    (project / "Pulumi.ci.yaml").write_text(text)
    assert main(["validate", "--stack", "ci"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Pulumi.ci.yaml:3:3: config.tenant-secrets:derivationKey: tenant-secrets:derivationKey is not set: "
        "fingerprints and generated values derive from it. Set it with "
        '`pulumi config set --secret tenant-secrets:derivationKey "$(openssl rand -hex 32)" --stack ci`',
        "Pulumi.ci.yaml:4:3: config.tenant-secrets:activeKeyVersion: tenant-secrets:activeKeyVersion is 2, but "
        "masterKeys has no v2 (tenants with database storage need it). Set it with `pulumi config set --secret "
        "--path 'tenant-secrets:masterKeys.v2' \"$(openssl rand -hex 32)\" --stack ci`, or set activeKeyVersion to "
        "a version that masterKeys has",
    ]


def test_validate_points_a_large_stack_without_buckets_at_the_move(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack made before buckets were the default keeps one resource per tenant; past 200 tenants validate
    says, on one line, how to move it. Not at 200, and not once the stack has the setting."""

    def tenants(count: int) -> str:
        rows = "".join(f"  - subdomain: tenant-{i:04d}\n    name: Tenant {i}\n" for i in range(count))
        return f"version: 1\ndefaults:\n  storage: infisical\n  environments: [dev]\ntenants:\n{rows}"

    (project / "tenants.yaml").write_text(tenants(201))
    assert main(["validate", "--stack", "ci"]) == 0
    summary, note = capsys.readouterr().out.splitlines()
    assert "; stack ci (dev): 201 tenant(s)" in summary
    assert note.startswith(
        "note: stack ci declares one resource per tenant and store for its 201 tenants; "
        "`pulumi config set tenant-secrets:buckets 4 --stack ci` (64 tenants per resource) and one `pulumi up`, "
        "which writes nothing, move it to buckets"
    )
    assert note.endswith('(docs/guides/operations.md, "Buckets")')

    (project / "tenants.yaml").write_text(tenants(200))
    assert main(["validate", "--stack", "ci"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1

    (project / "tenants.yaml").write_text(tenants(201))
    stack = project / "Pulumi.ci.yaml"
    stack.write_text(stack.read_text().replace("config:\n", "config:\n  tenant-secrets:buckets: 4\n", 1))
    assert main(["validate", "--stack", "ci"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def _git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)


def test_validate_with_a_base_refuses_removals_without_the_marker(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `plan` refuses (a key or tenant gone unmarked), validate --base finds before any preview."""
    _git(project, "init", "-q")
    _git(project, "-c", "user.email=t@example.test", "-c", "user.name=t", "add", "tenants.yaml")
    _git(project, "-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "base")
    text = (project / "tenants.yaml").read_text()
    assert main(["validate", "--base", "HEAD"]) == 0
    assert "nothing removed since HEAD" in capsys.readouterr().out
    start = text.index("  - subdomain: another-company")
    (project / "tenants.yaml").write_text(text[:start].replace("        password: {from: config}\n", ""))
    assert main(["validate", "--base", "HEAD", "--stack", "ci"]) == 1
    out = capsys.readouterr().out
    assert "dev: another-company is no longer declared in tenants.yaml" in out
    assert "dev: acmecorp: SMTP_PASSWORD is no longer declared in tenants.yaml" in out
    assert "`SMTP_PASSWORD: {decommission: true}`" in out
    assert main(["validate", "--base", "no-such-ref"]) == 1
    assert "cannot read it at no-such-ref" in capsys.readouterr().out


def test_validate_with_a_base_follows_a_linked_file_to_its_repository(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make shell` runs in the demo's copy, whose tenants.yaml links to the repository's: --base reads the
    repository's history (it answered "exists on disk, but not in 'origin/main'")."""
    _git(project, "init", "-q")
    _git(project, "-c", "user.email=t@example.test", "-c", "user.name=t", "add", "tenants.yaml")
    _git(project, "-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "base")
    copy = tmp_path_factory.mktemp("demo-project")
    (copy / "tenants.yaml").symlink_to(project / "tenants.yaml")
    shutil.copy(project / "Pulumi.ci.yaml", copy / "Pulumi.ci.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        assert main(["validate", "tenants.yaml", "--base", "HEAD"]) == 0
    assert "nothing removed since HEAD" in capsys.readouterr().out


def test_validate_a_shard_checks_its_own_tenants(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (project / "Pulumi.ci.yaml").read_text()
    (project / "Pulumi.ci.yaml").write_text(text.replace("config:\n", 'config:\n  tenant-secrets:shard: "2/2"\n', 1))
    assert main(["validate", "--stack", "ci"]) == 0
    out = capsys.readouterr().out
    # of codewiser, acmecorp and another-company, shard 2 of 2 holds codewiser; no platform folder
    assert "; stack ci (dev, shard 2/2): 1 tenant(s) and 0 platform folder(s) with " in out
    (project / "Pulumi.ci.yaml").write_text(text.replace("config:\n", 'config:\n  tenant-secrets:shard: "3/2"\n', 1))
    assert main(["validate", "--stack", "ci"]) == 1
    assert "Pulumi.ci.yaml:3:3: config.tenant-secrets:shard: tenant-secrets:shard: shard 3 of 2 does not exist" in (
        capsys.readouterr().out
    )

"""`tenantctl ci-env`, run in-process as a workflow step runs it: the environment's secrets as JSON in, only
the stack's allow-listed names out to $GITHUB_ENV, values masked and never printed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tenant_secrets.tenantctl.main import main

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {
    "RESEND_API_KEY": "fake-resend-value",
    "CODEWISER_SENDGRID_API_KEY": "fake-sendgrid-line-1\nfake-sendgrid-line-2",
    "UNLISTED_API_KEY": "fake-unlisted-value",
    "DATABASE_URL": "postgresql://fake-provisioner:fake-password@db/app",
    "INFISICAL_CLIENT_SECRET": "fake-infisical-secret",
    "github_token": "fake-github-token",
}


def _parse_env_file(text: str) -> dict[str, str]:
    """$GITHUB_ENV as the runner reads it: NAME=value, or NAME<<DELIMITER ... DELIMITER."""
    found: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            value = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            found[name] = "\n".join(value)
        else:
            name, value_text = line.split("=", 1)
            found[name] = value_text
    return found


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's own stack files (dev and prod list RESEND_API_KEY, CODEWISER_SENDGRID_API_KEY)."""
    for name in ("Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setenv("GITHUB_ENV", str(tmp_path / "github_env"))
    monkeypatch.setenv("TENANT_SECRETS_CI_SECRETS", json.dumps(SECRETS))
    return tmp_path


def _run(repo: Path, *args: str) -> int:
    return main(["ci-env", "--repo", str(repo), *args])


def test_only_allow_listed_names_reach_the_later_steps(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(repo, "--stack", "prod") == 0
    exported = _parse_env_file((repo / "github_env").read_text())
    assert exported == {
        "CODEWISER_SENDGRID_API_KEY": SECRETS["CODEWISER_SENDGRID_API_KEY"],
        "RESEND_API_KEY": SECRETS["RESEND_API_KEY"],
    }
    err = capsys.readouterr().err
    assert "stack prod: passed CODEWISER_SENDGRID_API_KEY, RESEND_API_KEY (4 other secret(s) not allow-listed)" in err


def test_a_denied_name_is_never_exported_even_when_listed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stack file that lists a denied name (a hand edit no validation saw) passes nothing: it is refused."""
    stack = repo / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace("    - RESEND_API_KEY\n", "    - RESEND_API_KEY\n    - DATABASE_URL\n"))
    assert _run(repo, "--stack", "prod") == 1
    captured = capsys.readouterr()
    assert not (repo / "github_env").exists()
    assert "'DATABASE_URL' can never be a value source" in captured.err
    for value in SECRETS.values():
        assert value not in captured.out + captured.err


def test_a_prefix_passes_its_names_and_no_denied_one(repo: Path) -> None:
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("    - RESEND_API_KEY\n", "    - UNLISTED_*\n"))
    assert _run(repo, "--stack", "dev") == 0
    exported = _parse_env_file((repo / "github_env").read_text())
    assert sorted(exported) == ["CODEWISER_SENDGRID_API_KEY", "UNLISTED_API_KEY"]


def test_values_are_masked_line_by_line_and_never_printed_otherwise(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(repo, "--stack", "prod") == 0
    captured = capsys.readouterr()
    masks = sorted(line for line in captured.out.splitlines() if line.startswith("::add-mask::"))
    assert masks == [
        "::add-mask::fake-resend-value",
        "::add-mask::fake-sendgrid-line-1",
        "::add-mask::fake-sendgrid-line-2",
    ]
    assert [line for line in captured.out.splitlines() if not line.startswith("::add-mask::")] == []
    for value in SECRETS.values():
        for line in value.splitlines():
            assert line not in captured.err


def test_an_environment_takes_every_stack_of_it(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify reads all the shards of an environment: the union of their lists (each stack's program still
    reads only its own)."""
    (repo / "Pulumi.prod-2.yaml").write_text(
        "config:\n  tenant-secrets:environment: prod\n  tenant-secrets:shard: 2/2\n"
        "  tenant-secrets:envAllow:\n    - UNLISTED_API_KEY\n"
    )
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("config:\n", "config:\n  tenant-secrets:shard: 1/2\n", 1))
    assert _run(repo, "--environment", "prod") == 0
    assert sorted(_parse_env_file((repo / "github_env").read_text())) == [
        "CODEWISER_SENDGRID_API_KEY",
        "RESEND_API_KEY",
        "UNLISTED_API_KEY",
    ]
    assert "environment prod: passed" in capsys.readouterr().err


def test_a_listed_name_with_no_secret_is_named(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = {k: v for k, v in SECRETS.items() if k != "RESEND_API_KEY"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TENANT_SECRETS_CI_SECRETS", json.dumps(secrets))
        assert _run(repo, "--stack", "dev") == 0
    assert (
        "stack dev: envAllow lists RESEND_API_KEY, but the GitHub environment has no secret of that name"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("raw", [None, "", "not json", '["a"]', '{"A": 1}'])
def test_no_usable_secrets_json_fails_without_writing(
    repo: Path, raw: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if raw is None:
        monkeypatch.delenv("TENANT_SECRETS_CI_SECRETS")
    else:
        monkeypatch.setenv("TENANT_SECRETS_CI_SECRETS", raw)
    assert _run(repo, "--stack", "prod") == 1
    assert not (repo / "github_env").exists()
    assert "TENANT_SECRETS_CI_SECRETS" in capsys.readouterr().err


def test_outside_github_actions_it_asks_for_a_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ENV")
    assert _run(repo, "--stack", "prod") == 1
    assert "pass --env-file FILE" in capsys.readouterr().err
    assert _run(repo, "--stack", "prod", "--env-file", str(repo / "out.env")) == 0
    assert sorted(_parse_env_file((repo / "out.env").read_text())) == ["CODEWISER_SENDGRID_API_KEY", "RESEND_API_KEY"]


def test_a_suffix_picks_one_environment_of_a_shared_github_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pr-preview serves dev and prod: RESEND_API_KEY_PROD reaches a prod preview as RESEND_API_KEY, the dev
    value and the unsuffixed one never do."""
    secrets = {
        "RESEND_API_KEY": "fake-unsuffixed",
        "RESEND_API_KEY_DEV": "fake-dev-value",
        "RESEND_API_KEY_PROD": "fake-prod-value",
        "PREVIEW_DATABASE_URL_PROD": "postgresql://fake-reader:fake-password@db/app",
    }
    monkeypatch.setenv("TENANT_SECRETS_CI_SECRETS", json.dumps(secrets))
    assert _run(repo, "--stack", "prod", "--suffix", "prod") == 0
    assert _parse_env_file((repo / "github_env").read_text()) == {"RESEND_API_KEY": "fake-prod-value"}


def test_a_region_takes_its_own_stacks_lists_only(repo: Path) -> None:
    """verify of one region (docs/decisions/0054-regions.md): the job holds that region's secrets, so only that
    region's stacks' lists are passed on."""
    for name, region, listed in (("prod-eu", "eu", "RESEND_API_KEY"), ("prod-us", "us", "UNLISTED_API_KEY")):
        (repo / f"Pulumi.{name}.yaml").write_text(
            f"config:\n  tenant-secrets:environment: prod\n  tenant-secrets:region: {region}\n"
            f"  tenant-secrets:envAllow:\n    - {listed}\n"
        )
    (repo / "Pulumi.prod.yaml").unlink()
    assert _run(repo, "--environment", "prod", "--region", "eu") == 0
    assert sorted(_parse_env_file((repo / "github_env").read_text())) == ["RESEND_API_KEY"]

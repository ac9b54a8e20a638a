"""`tenantctl affected`: which stacks a change touches, in a temporary git repository."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tenant_secrets.stack.shards import shard_of
from tenant_secrets.tenantctl.main import main

ROOT = Path(__file__).resolve().parents[2]
SUBDOMAINS = ["alpha", "bravo", "charlie", "delta", "echo", "hotel"]


def tenants_yaml(plans: dict[str, str], *, from_address: str = "a@example.test", extra: str = "") -> str:
    entries = "".join(f"  - subdomain: {s}\n    secrets:\n      PLAN: {{value: {p}}}\n" for s, p in plans.items())
    return (
        "version: 1\ndefaults: {storage: infisical, environments: [dev, prod]}\n"
        f"platform:\n  hono-api:\n    secrets:\n      EMAIL_FROM: {{value: {from_address}}}\n"
        f"tenants:\n{entries}{extra}"
    )


def stack_file(environment: str, shard: str | None, buckets: str | None = None) -> str:
    lines = f"config:\n  tenant-secrets:environment: {environment}\n"
    lines += f'  tenant-secrets:buckets: "{buckets}"\n' if buckets else ""
    return lines + (f'  tenant-secrets:shard: "{shard}"\n' if shard else "")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture(params=[None, "4"], ids=["per-tenant", "buckets"])
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """dev in one stack; prod in three shards (prod, prod-02, prod-03); committed as the base. Each stack with
    and without buckets (tenant-secrets:buckets): a tenant's shard, not its bucket, decides the stack."""
    buckets = request.param
    (tmp_path / "tenants.yaml").write_text(tenants_yaml({s: f"plan-{s}" for s in SUBDOMAINS}))
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file("dev", None, buckets))
    for index, name in enumerate(["prod", "prod-02", "prod-03"], start=1):
        (tmp_path / f"Pulumi.{name}.yaml").write_text(stack_file("prod", f"{index}/3", buckets))
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "program.py").write_text("# the program\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "-c", "user.email=t@example.test", "-c", "user.name=t", "add", ".")
    git(tmp_path, "-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "base")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def affected(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["affected", "--base", "main", *args]) == 0
    return capsys.readouterr().out.splitlines()


def prod_stack(subdomain: str) -> str:
    return ["prod", "prod-02", "prod-03"][shard_of(subdomain, 3) - 1]


def test_nothing_changed_touches_no_stack(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert affected(capsys) == []


def test_one_tenant_changed_touches_its_shard_and_the_unsharded_dev(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = {s: f"plan-{s}" for s in SUBDOMAINS} | {"echo": "plan-echo-2"}
    (repo / "tenants.yaml").write_text(tenants_yaml(plans))
    assert affected(capsys) == sorted(["dev", prod_stack("echo")])


def test_a_tenant_added_above_the_others_touches_only_its_own_shard(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # every other entry moves down the file: positions are not part of a tenant's entry
    plans = {"newco": "plan-newco"} | {s: f"plan-{s}" for s in SUBDOMAINS}
    (repo / "tenants.yaml").write_text(tenants_yaml(plans))
    assert affected(capsys) == sorted(["dev", prod_stack("newco")])


def test_a_tenant_only_in_dev_touches_only_dev(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = "  - subdomain: devonly\n    environments: [dev]\n    secrets:\n      PLAN: {value: p}\n"
    (repo / "tenants.yaml").write_text(tenants_yaml({s: f"plan-{s}" for s in SUBDOMAINS}, extra=extra))
    assert affected(capsys) == ["dev"]


def test_a_change_for_prod_alone_does_not_touch_dev(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    override = "    overrides:\n      prod:\n        secrets:\n          PLAN: {value: plan-prod}\n"
    text = tenants_yaml({s: f"plan-{s}" for s in SUBDOMAINS})
    text = text.replace("      PLAN: {value: plan-echo}\n", "      PLAN: {value: plan-echo}\n" + override)
    (repo / "tenants.yaml").write_text(text)
    assert affected(capsys) == [prod_stack("echo")]


def test_a_changed_default_touches_every_tenant_it_reaches(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """alpha keeps the old default as its own: its entry is the same, every other tenant's is not."""
    text = tenants_yaml({s: f"plan-{s}" for s in SUBDOMAINS}).replace("storage: infisical", "storage: both")
    text = text.replace("  - subdomain: alpha\n", "  - subdomain: alpha\n    storage: infisical\n")
    (repo / "tenants.yaml").write_text(text)
    assert affected(capsys) == sorted({"dev", *(prod_stack(s) for s in SUBDOMAINS if s != "alpha")})


def test_a_platform_folder_touches_the_owner_shard(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plans = {s: f"plan-{s}" for s in SUBDOMAINS}
    (repo / "tenants.yaml").write_text(tenants_yaml(plans, from_address="b@example.test"))
    assert affected(capsys) == ["dev", "prod"]


def test_a_stack_file_touches_that_stack_and_code_touches_all(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "Pulumi.prod-02.yaml").write_text(stack_file("prod", "2/3") + "  tenant-secrets:tablePrefix: x_\n")
    assert affected(capsys) == ["prod-02"]
    (repo / "components" / "program.py").write_text("# the program, changed\n")
    assert affected(capsys) == ["dev", "prod", "prod-02", "prod-03"]


def test_json_is_a_matrix_with_the_owners_apart(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "components" / "program.py").write_text("# the program, changed\n")
    matrix = json.loads(affected(capsys, "--json")[0])
    assert [e["stack"] for e in matrix["owners"]] == ["dev", "prod"]
    assert [e["stack"] for e in matrix["others"]] == ["prod-02", "prod-03"]
    assert matrix["stacks"][2] == {"stack": "prod-02", "environment": "prod", "shard": "2/3", "owner": False}
    assert matrix["untouched"] == []


def test_a_broken_tenants_file_touches_every_stack(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "tenants.yaml").write_text("version: 1\ntenants: [\n")
    assert affected(capsys) == ["dev", "prod", "prod-02", "prod-03"]


def test_shards_that_do_not_cover_an_environment_are_one_clear_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "Pulumi.prod-03.yaml").unlink()
    (repo / "tenants.yaml").write_text(tenants_yaml({"alpha": "x"}))
    assert main(["affected", "--base", "main"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tenantctl affected: environment prod: the stacks prod, prod-02 do not split it")


def test_another_checkout_is_read_as_data(
    repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plans = {s: f"plan-{s}" for s in SUBDOMAINS} | {"bravo": "plan-bravo-2"}
    (repo / "tenants.yaml").write_text(tenants_yaml(plans))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert affected(capsys, "--repo", str(repo)) == sorted(["dev", prod_stack("bravo")])


def test_the_comment_names_the_stacks_previewed_and_those_untouched(repo: Path, tmp_path: Path) -> None:
    plans = {s: f"plan-{s}" for s in SUBDOMAINS} | {"bravo": "plan-bravo-2"}
    (repo / "tenants.yaml").write_text(tenants_yaml(plans))
    matrix = subprocess.run(
        ["python", "-m", "tenant_secrets.tenantctl", "affected", "--base", "main", "--json"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shard = prod_stack("bravo")
    (tmp_path / "plans" / f"plan-base-{shard}").mkdir(parents=True)
    (tmp_path / "plans" / f"plan-base-{shard}" / "plan.md").write_text(f"### tenant-secrets plan: stack `{shard}`\n")
    script = str(ROOT / "scripts" / "pr-comment.sh")
    body = subprocess.run(
        [script, "--matrix", matrix, "--plans", str(tmp_path / "plans"), "--prefix", "plan-base"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    untouched = ", ".join(f"`{s}`" for s in ["prod", "prod-02", "prod-03"] if s != shard)
    assert body.startswith("<!-- tenant-secrets plan -->\n### tenant-secrets plan: 2 stack(s) previewed\n")
    assert f"Previewed, as this change touches their tenants or settings: `dev`, `{shard}`." in body
    assert f"Not previewed: {untouched}. This change touches none of their tenants or settings" in body
    assert f"### tenant-secrets plan: stack `{shard}`" in body
    assert "The preview of dev failed; see the job log." in body


def test_a_linked_data_file_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "tenants.yaml").unlink()
    (repo / "tenants.yaml").symlink_to(repo / "Pulumi.dev.yaml")
    assert main(["affected", "--base", "main"]) == 2
    assert "tenants.yaml: a symbolic link" in capsys.readouterr().err


def test_shards_which_names_each_tenants_stack(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shards", "which", "--environment", "prod", "echo", "newco"]) == 0
    assert capsys.readouterr().out == f"echo: {prod_stack('echo')}\nnewco: {prod_stack('newco')}\n"
    assert main(["shards", "which", "--environment", "dev", "echo"]) == 0
    assert capsys.readouterr().out == "echo: dev\n"

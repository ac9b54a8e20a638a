"""`tenantctl affected` with regions (docs/decisions/0054-regions.md): a tenant's change touches the stacks of
the regions it lives in (or leaves), each region's shards split its own tenants; `verify` and `plan` take an
environment in regions one region at a time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tenant_secrets.stack.shards import shard_of
from tenant_secrets.tenantctl.main import main

REGIONS = {"alpha": "[eu]", "bravo": "[eu, us]", "charlie": "[us]", "delta": "[eu]"}


def tenants_yaml(regions: dict[str, str], *, plan: str = "one", leaving: str = "") -> str:
    entries = "".join(
        f"  - subdomain: {s}\n    regions: {r}\n    secrets:\n      PLAN: {{value: {plan}-{s}}}\n"
        for s, r in regions.items()
    )
    return (
        "version: 1\nregions: [eu, us]\ndefaults: {storage: infisical, environments: [prod]}\n"
        f"tenants:\n{entries}{leaving}"
    )


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@example.test", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """prod in two regions: eu in two shards (prod-eu, prod-eu-02), us in one (prod-us); committed as the base."""
    (tmp_path / "tenants.yaml").write_text(tenants_yaml(REGIONS))
    for name, region, shard in (("prod-eu", "eu", "1/2"), ("prod-eu-02", "eu", "2/2"), ("prod-us", "us", None)):
        text = f"config:\n  tenant-secrets:environment: prod\n  tenant-secrets:region: {region}\n"
        (tmp_path / f"Pulumi.{name}.yaml").write_text(text + (f'  tenant-secrets:shard: "{shard}"\n' if shard else ""))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def affected(capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["affected", "--base", "main"]) == 0
    return capsys.readouterr().out.splitlines()


def eu_stack(subdomain: str) -> str:
    return ["prod-eu", "prod-eu-02"][shard_of(subdomain, 2) - 1]


def test_a_tenant_touches_the_stacks_of_its_regions_only(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert affected(capsys) == []
    (repo / "tenants.yaml").write_text(tenants_yaml(REGIONS).replace("one-alpha", "two-alpha"))
    assert affected(capsys) == [eu_stack("alpha")]
    (repo / "tenants.yaml").write_text(tenants_yaml(REGIONS).replace("one-bravo", "two-bravo"))
    assert sorted(affected(capsys)) == sorted([eu_stack("bravo"), "prod-us"])


def test_the_deploys_matrix_carries_each_stacks_region(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "tenants.yaml").write_text(tenants_yaml(REGIONS).replace("one-bravo", "two-bravo"))
    assert main(["affected", "--base", "main", "--json"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    owners = [{"stack": "prod-us", "environment": "prod", "shard": "1/1", "owner": True, "region": "us"}]
    if eu_stack("bravo") == "prod-eu":
        owners.insert(0, {"stack": "prod-eu", "environment": "prod", "shard": "1/2", "owner": True, "region": "eu"})
    assert matrix["owners"] == owners
    assert [(e["stack"], e["region"]) for e in matrix["others"]] == (
        [] if eu_stack("bravo") == "prod-eu" else [("prod-eu-02", "eu")]
    )


def test_a_region_added_or_left_touches_that_region(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "tenants.yaml").write_text(tenants_yaml(REGIONS | {"alpha": "[eu, us]"}))
    assert affected(capsys) == ["prod-us"]
    left = tenants_yaml(REGIONS | {"bravo": "[eu]\n    decommission: [us]"})
    (repo / "tenants.yaml").write_text(left)
    assert affected(capsys) == ["prod-us"]


def test_an_environment_in_regions_is_verified_and_planned_one_region_at_a_time(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("verify", "plan"):
        assert main([command, "--environment", "prod"]) == 2
        assert capsys.readouterr().err == (
            f"tenantctl {command}: environment prod is in regions (eu, us): pass --region, with that region's "
            "DATABASE_URL and INFISICAL_* in the environment\n"
        )
        assert main([command, "--environment", "prod", "--region", "ap"]) == 2
        assert "environment prod has no stack of region ap: its regions are eu, us" in capsys.readouterr().err

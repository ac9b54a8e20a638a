"""A stack's region (docs/decisions/0054-regions.md): the setting, the stack names, the project's stacks grouped by
region, and what a region's shard declares."""

from __future__ import annotations

import pytest

from tenant_secrets.stack.files import StackFile, StackFileError, from_text, of_environment
from tenant_secrets.stack.settings import StackConfigError
from tenant_secrets.stack.shards import Shard, select, shard_of, stack_name
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment, region_issue
from tests.stack.test_settings import load


def stack_file(name: str, **settings: str) -> str:
    lines = "".join(f"  tenant-secrets:{key}: {value}\n" for key, value in settings.items())
    return f"config:\n  tenant-secrets:environment: prod\n{lines}"


def test_the_region_setting_is_read_and_checked() -> None:
    assert load().region is None
    assert load(region="eu").region == "eu"
    with pytest.raises(StackConfigError, match=r"^tenant-secrets:region: 'EU' is not a valid region name"):
        load(region="EU")


def test_a_regions_stacks_are_named_after_environment_and_region() -> None:
    assert [stack_name("prod", k, "eu") for k in (1, 2, 12)] == ["prod-eu", "prod-eu-02", "prod-eu-12"]
    assert [stack_name("prod", k) for k in (1, 2)] == ["prod", "prod-02"]


def test_each_region_of_an_environment_is_a_whole_set_of_shards() -> None:
    stacks = [
        from_text("prod-eu", stack_file("prod-eu", region="eu", shard='"1/2"')),
        from_text("prod-eu-02", stack_file("prod-eu-02", region="eu", shard='"2/2"')),
        from_text("prod-us", stack_file("prod-us", region="us")),
    ]
    assert [(s.name, s.region) for s in of_environment(stacks, "prod")] == [
        ("prod-eu", "eu"),
        ("prod-us", "us"),
        ("prod-eu-02", "eu"),
    ]
    with pytest.raises(StackFileError, match=r"environment prod, region eu: the stacks prod-eu do not split it"):
        of_environment(stacks[:1] + stacks[2:], "prod")
    plain = from_text("prod", stack_file("prod"))
    with pytest.raises(StackFileError, match=r"the stacks prod set no tenant-secrets:region while others do"):
        of_environment([plain, stacks[2]], "prod")
    with pytest.raises(StackFileError, match=r"Pulumi.prod-xx.yaml: tenant-secrets:region: 'E U' is not a valid"):
        from_text("prod-xx", stack_file("prod-xx", region='"E U"'))


def test_a_stack_setting_that_does_not_match_the_file_is_reported_at_the_setting() -> None:
    tenants = parse_tenants("version: 1\nregions: [eu, us]\ndefaults: {storage: both, environments: [prod]}\n")
    stack = StackFile.parse(stack_file("prod-ap", region="ap"), "Pulumi.prod-ap.yaml")
    wrong = region_issue(tenants, "ap")
    assert wrong is not None
    moved = stack.region_setting(wrong)
    assert (moved.file, moved.line, moved.field) == ("Pulumi.prod-ap.yaml", 3, "config.tenant-secrets:region")
    assert moved.message == "the stack's region 'ap' is not declared"


def test_a_regions_shards_split_its_tenants_and_the_residency_check() -> None:
    subdomains = [f"t{i}" for i in range(12)]
    text = "version: 1\nregions: [eu, us]\ndefaults: {storage: both, environments: [prod]}\ntenants:\n"
    text += "".join(f"  - {{subdomain: {s}, regions: [{'eu' if i % 3 else 'us'}]}}\n" for i, s in enumerate(subdomains))
    plan = plan_environment(parse_tenants(text), "prod", "eu")
    for index in (1, 2):
        part = select(plan, Shard(index, 2))
        assert part.region == "eu"
        assert [t.subdomain for t in part.tenants] == [
            s for i, s in enumerate(subdomains) if i % 3 and shard_of(s, 2) == index
        ]
        assert [e.subdomain for e in part.elsewhere] == [
            s for i, s in enumerate(subdomains) if not i % 3 and shard_of(s, 2) == index
        ]

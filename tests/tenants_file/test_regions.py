"""Regions in tenants.yaml (docs/decisions/0054-regions.md): where a tenant's secrets may live, each mistake
reported at its line and field, and the plan of one region's stack."""

from __future__ import annotations

import pytest

from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import Elsewhere, TenantsFileError, plan_environment

HEAD = """\
version: 1
regions: [eu, us]
defaults:
  storage: both
  environments: [dev, prod]
"""  # five lines: the bodies below start on line 6


def problems(text: str) -> list[str]:
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(text)
    return [f"{i.line}:{i.field}: {i.message}" for i in caught.value.issues]


def test_a_file_without_regions_plans_as_before() -> None:
    tf = parse_tenants(
        "version: 1\ndefaults: {storage: both, environments: [dev]}\n"
        "tenants:\n  - subdomain: alpha\n  - subdomain: bravo\n    decommission: true\n"
    )
    plan = plan_environment(tf, "dev")
    assert [(t.subdomain, t.decommission) for t in plan.tenants] == [("alpha", False), ("bravo", True)]
    assert plan.region is None
    assert plan.elsewhere == ()


def test_each_region_plans_its_own_tenants_and_those_leaving_it() -> None:
    tf = parse_tenants(
        HEAD
        + "tenants:\n"
        + "  - subdomain: alpha\n    regions: [eu]\n"
        + "  - subdomain: bravo\n    regions: [eu, us]\n"
        + "  - subdomain: charlie\n    regions: [eu]\n    decommission: [us]\n"
        + "  - subdomain: delta\n    company_id: 00000000-0000-4000-a000-00000000000d\n    regions: [us]\n"
        + "  - subdomain: echo\n    decommission: true\n"
    )
    eu = plan_environment(tf, "prod", "eu")
    assert [(t.subdomain, t.decommission) for t in eu.tenants] == [
        ("alpha", False),
        ("bravo", False),
        ("charlie", False),
        ("echo", True),
    ]
    assert eu.elsewhere == (Elsewhere("delta", "00000000-0000-4000-a000-00000000000d", ("us",)),)
    us = plan_environment(tf, "prod", "us")
    assert [(t.subdomain, t.decommission) for t in us.tenants] == [
        ("bravo", False),
        ("charlie", True),  # decommissioned in us: the us stacks delete what they hold of it
        ("delta", False),
        ("echo", True),
    ]
    assert [e.subdomain for e in us.elsewhere] == ["alpha"]
    assert us.region == "us"


def test_defaults_regions_is_the_region_of_a_tenant_that_lists_none() -> None:
    tf = parse_tenants(
        HEAD.replace("  environments: [dev, prod]\n", "  environments: [dev, prod]\n  regions: [eu]\n")
        + "tenants:\n  - subdomain: alpha\n  - subdomain: bravo\n    regions: [us]\n"
    )
    assert [t.subdomain for t in plan_environment(tf, "dev", "eu").tenants] == ["alpha"]
    assert [t.subdomain for t in plan_environment(tf, "dev", "us").tenants] == ["bravo"]


def test_a_stack_region_must_match_the_file() -> None:
    with_regions = parse_tenants(HEAD + "tenants:\n  - subdomain: alpha\n    regions: [eu]\n")
    without = parse_tenants("version: 1\ndefaults: {storage: both, environments: [dev]}\n")
    cases = [
        (with_regions, None, "2:regions: the file declares regions, and the stack sets none"),
        (with_regions, "ue", "2:regions: the stack's region 'ue' is not declared"),
        (without, "eu", "1:regions: the stack's region 'eu' is not declared: the file has no `regions`"),
    ]
    for tf, region, expected in cases:
        with pytest.raises(TenantsFileError) as caught:
            plan_environment(tf, "dev", region)
        (issue,) = caught.value.issues
        assert f"{issue.line}:{issue.field}: {issue.message}".startswith(expected)
        assert "tenant-secrets:region" in issue.hint


def test_every_region_mistake_is_reported_at_its_line_and_field() -> None:
    found = problems(
        HEAD.replace("regions: [eu, us]", "regions: [eu, us, eu]")
        + "tenants:\n"
        + "  - subdomain: alpha\n    regions: [eu, ap]\n"  # 8
        + "  - subdomain: bravo\n    regions: [eu]\n    decommission: [eu]\n"  # 11
        + "  - subdomain: charlie\n"  # 12: says nothing, and the file sets no default
        + "  - subdomain: delta\n    regions: [us, us]\n"  # 14
        + "  - subdomain: echo\n    regions: []\n"  # 16
        + "  - subdomain: foxtrot\n    regions: [us]\n    decommission: [ue]\n"  # 19
    )
    assert found == [
        "2:regions[2]: 'eu' is listed twice",
        "8:tenants[0].regions[1]: 'ap' is not one of the regions in `regions`",
        "11:tenants[1].decommission[0]: 'eu' is both decommissioned and in its regions",
        "12:tenants[2].regions: tenant charlie does not say where its secrets may live",
        "14:tenants[3].regions[1]: 'us' is listed twice",
        "16:tenants[4].regions: the list is empty",
        "19:tenants[5].decommission[0]: 'ue' is not one of the regions in `regions`",
    ]


def test_regions_in_a_file_that_declares_none_are_refused() -> None:
    found = problems(
        "version: 1\ndefaults:\n  storage: both\n  environments: [dev]\n  regions: [eu]\n"
        "tenants:\n  - subdomain: alpha\n    decommission: [us]\n"
    )
    assert found == [
        "5:defaults.regions: names regions (eu), but the file declares none",
        "8:tenants[0].decommission: names regions (us), but the file declares none",
    ]


def test_a_malformed_marker_or_region_gets_one_line() -> None:
    found = problems(
        HEAD + "tenants:\n  - subdomain: alpha\n    regions: [eu]\n    decommission: us\n"
        "  - subdomain: bravo\n    regions: [EU]\n"
    )
    assert found == [
        "9:tenants[0].decommission: expected true or false, or a list, got text",
        "11:tenants[1].regions[0]: 'EU' is not a valid region name",
    ]

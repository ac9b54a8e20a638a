"""`tenantctl validate --base` per region: a region dropped from a tenant's `regions` without
`decommission: [region]` is what the run refuses, found before any preview (docs/decisions/0054-regions.md)."""

from __future__ import annotations

from tenant_secrets.tenantctl.main import removal_issues
from tenant_secrets.tenants_file.loader import parse_tenants

HEAD = "version: 1\nregions: [eu, us]\ndefaults: {storage: both, environments: [dev]}\ntenants:\n"


def removals(base: str, head: str) -> list[str]:
    return [
        issue.message for issue in removal_issues(parse_tenants(base), parse_tenants(head), "tenants.yaml", ["dev"])
    ]


def test_a_region_dropped_without_its_marker_is_refused_in_that_region_only() -> None:
    base = HEAD + "  - subdomain: alpha\n    regions: [eu, us]\n"
    (message,) = removals(base, HEAD + "  - subdomain: alpha\n    regions: [eu]\n")
    assert message.startswith("dev, region us: alpha is no longer declared in tenants.yaml")
    assert message.endswith("to delete them in region us only, `decommission: [us]`")
    assert removals(base, HEAD + "  - subdomain: alpha\n    regions: [eu]\n    decommission: [us]\n") == []
    assert removals(base, HEAD + "  - subdomain: alpha\n    regions: [eu, us]\n") == []


def test_a_region_added_to_a_tenant_or_to_the_file_removes_nothing() -> None:
    base = HEAD.replace("[eu, us]", "[eu]") + "  - subdomain: alpha\n    regions: [eu]\n"
    assert removals(base, HEAD + "  - subdomain: alpha\n    regions: [eu, us]\n") == []


def test_a_move_in_one_change_is_refused_and_in_two_is_not() -> None:
    base = HEAD + "  - subdomain: alpha\n    regions: [us]\n"
    moved = HEAD + "  - subdomain: alpha\n    regions: [eu]\n    decommission: [us]\n"
    (issue,) = removal_issues(parse_tenants(base), parse_tenants(moved), "tenants.yaml", ["dev"])
    assert (issue.line, issue.field) == (7, "tenants[0].decommission")
    assert (
        issue.message == "alpha gains eu and leaves us in one change: us could delete its secrets before eu holds them"
    )
    assert issue.hint == "move it in two changes: add eu to its regions and apply it, then decommission us"
    added = HEAD + "  - subdomain: alpha\n    regions: [us, eu]\n"
    assert removals(base, added) == []
    assert removals(added, moved) == []

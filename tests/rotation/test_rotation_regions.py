"""Rotation policies in a file with regions (docs/decisions/0054-regions.md): a region's stack reports its own
tenants; the file's own commands (`rotation bump`) see every region's, each tenant once."""

from __future__ import annotations

from tenant_secrets.rotation.policy import policies
from tenant_secrets.tenants_file.loader import parse_tenants

TENANTS = """\
version: 1
regions: [eu, us]
defaults: {storage: both, environments: [dev], rotate_every: 90d}
tenants:
  - subdomain: alpha
    regions: [eu]
    secrets: {TOKEN: {generate: {bytes: 16}}}
  - subdomain: bravo
    regions: [eu, us]
    secrets: {TOKEN: {generate: {bytes: 16}}}
  - subdomain: charlie
    regions: [eu]
    decommission: [us]
    secrets: {TOKEN: {generate: {bytes: 16}}}
"""


def test_policies_per_region_and_for_the_whole_file() -> None:
    tf = parse_tenants(TENANTS)
    assert [p.owner for p in policies(tf, "dev", "us")] == ["bravo"]
    assert [p.owner for p in policies(tf, "dev", "eu")] == ["alpha", "bravo", "charlie"]
    assert [p.owner for p in policies(tf, "dev")] == ["alpha", "bravo", "charlie"]

"""A tenant's bucket never changes because another tenant was added or removed (issue 29)."""

from __future__ import annotations

import pytest

from bench.buckets import assign, bucket_count, bucket_of
from bench.tenants import subdomain


def test_adding_and_removing_tenants_moves_no_other_tenant() -> None:
    buckets = bucket_count(1000, 16)
    before = {name: bucket for bucket, names in assign(map(subdomain, range(1000)), buckets).items() for name in names}
    grown = assign([*map(subdomain, range(1000)), "acme", "new-tenant"], buckets)
    shrunk = assign([subdomain(i) for i in range(1000) if i % 7], buckets)
    for changed in (grown, shrunk):
        after = {name: bucket for bucket, names in changed.items() for name in names}
        assert {name: after[name] for name in after if name in before} == {
            name: before[name] for name in after if name in before
        }


def test_the_bucket_count_is_the_average_load_rounded_up() -> None:
    assert bucket_count(1000, 1) == 1000
    assert bucket_count(1000, 16) == 63
    assert bucket_count(10, 256) == 1
    loads = [len(names) for names in assign(map(subdomain, range(10000)), bucket_count(10000, 64)).values()]
    assert len(loads) == 157
    assert min(loads) > 20 and max(loads) < 110  # a hash spreads the load; no bucket holds most tenants


def test_a_bucket_is_a_function_of_the_subdomain_alone() -> None:
    assert bucket_of("tenant-00042", 63) == bucket_of("tenant-00042", 63)
    assert 0 <= bucket_of("tenant-00042", 63) < 63


@pytest.mark.parametrize("bad", [0, -1])
def test_a_bucket_setting_below_one_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        bucket_count(100, bad)
    with pytest.raises(ValueError, match="at least 1"):
        bucket_of("acme", bad)

"""Shard assignment: stable, balanced, and changing N moves as few tenants as possible."""

from __future__ import annotations

from collections import Counter

import pytest

from tenant_secrets.stack.settings import StackConfigError
from tenant_secrets.stack.shards import Shard, ShardError, assign, jump_hash, shard_of, stack_name
from tests.stack.test_settings import load

TENANTS = [f"tenant-{i:05d}" for i in range(10_000)]


def test_jump_hash_gives_the_reference_implementations_buckets() -> None:
    # the published test vectors of the reference implementations (Go's dgryski/go-jump, and PyPI's
    # jump-consistent-hash 3.6.0, which also agreed on 20,000 random keys and bucket counts)
    assert [jump_hash(k, n) for k, n in [(1, 1), (42, 57), (0xDEAD10CC, 1), (0xDEAD10CC, 666), (256, 1024)]] == [
        0,
        43,
        0,
        361,
        520,
    ]


def test_a_tenants_shard_depends_only_on_its_subdomain_and_n() -> None:
    before = assign(TENANTS[:5000], 16)
    after = assign(["newco", *TENANTS[:5000:2], "globex"], 16)  # tenants added and removed around them
    assert all(after[t] == before[t] for t in TENANTS[:5000:2])
    assert shard_of("codewiser", 16) == shard_of("codewiser", 16)
    assert set(before.values()) == set(range(1, 17))


@pytest.mark.parametrize("count", [2, 8, 16])
def test_tenants_spread_evenly(count: int) -> None:
    sizes = Counter(assign(TENANTS, count).values())
    mean = len(TENANTS) / count
    assert len(sizes) == count
    assert max(abs(size - mean) for size in sizes.values()) < 0.1 * mean


@pytest.mark.parametrize("count", [1, 2, 7, 16])
def test_going_from_n_to_n_plus_1_moves_only_tenants_into_the_new_shard(count: int) -> None:
    before, after = assign(TENANTS, count), assign(TENANTS, count + 1)
    moved = [t for t in TENANTS if before[t] != after[t]]
    assert all(after[t] == count + 1 for t in moved)
    expected = len(TENANTS) / (count + 1)
    assert abs(len(moved) - expected) < 0.1 * expected


def test_the_setting_parses_and_shard_1_owns_the_environment() -> None:
    assert load().shard is None and load().owns_environment
    settings = load(shard="3/16")
    assert settings.shard == Shard(3, 16) and not settings.owns_environment
    assert load(shard=" 1/16").owns_environment
    assert settings.applies("x") == (shard_of("x", 16) == 3)
    assert (stack_name("prod", 1), stack_name("prod", 3), stack_name("prod", 120)) == ("prod", "prod-03", "prod-120")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("3", 'tenant-secrets:shard: expected "k/N"'),
        ("0/4", 'tenant-secrets:shard: expected "k/N"'),
        ("5/4", "tenant-secrets:shard: shard 5 of 4 does not exist (k runs from 1 to 4)"),
        ("1/5000", "tenant-secrets:shard: at most 1024 shards"),
    ],
)
def test_a_bad_shard_setting_is_one_line_naming_it(raw: str, message: str) -> None:
    with pytest.raises(StackConfigError) as err:
        load(shard=raw)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(ShardError):
        Shard.parse(raw)

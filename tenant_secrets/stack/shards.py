"""Shards: one environment's tenants split over N stacks, each applying one shard (docs/decisions/0035).

A tenant's shard depends only on its subdomain and N: jump consistent hash (Lamping & Veach, 2014)
over the first 8 bytes of SHA-256(subdomain). Adding or removing a tenant never moves another, and
going from N to N+1 shards moves about 1/(N+1) of the tenants, all of them into the new shard.

Shard 1 of an environment is its owner: it alone declares the platform folders, the database schema
and the master-key publication. The other shards declare their tenants only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import KeyFolderError, keyring_from_folder
from tenant_secrets.tenants_file.model import EnvironmentPlan

SETTING = "shard"
"""The stack setting `tenant-secrets:shard`, "k/N"."""
_SHARD = re.compile(r"([1-9][0-9]*)/([1-9][0-9]*)")
MAX_SHARDS = 1024
_LCG = 2862933555777941757
_MASK = (1 << 64) - 1


class ShardError(ValueError):
    """A shard setting that does not parse; the message names the setting and the form."""


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @property
    def owner(self) -> bool:
        """Shard 1 owns the environment's platform folders, schema and master-key publication."""
        return self.index == 1

    def holds(self, subdomain: str) -> bool:
        return shard_of(subdomain, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str, *, field: str = f"tenant-secrets:{SETTING}") -> Shard:
        """ "k/N" with 1 <= k <= N <= MAX_SHARDS; ShardError names ``field`` otherwise."""
        match = _SHARD.fullmatch(text.strip())
        if match is None:
            raise ShardError(f'{field}: expected "k/N" (this stack applies shard k of N, e.g. "3/16"), got {text!r}')
        index, count = int(match[1]), int(match[2])
        if count > MAX_SHARDS:
            raise ShardError(f"{field}: at most {MAX_SHARDS} shards, got {count}")
        if index > count:
            raise ShardError(f"{field}: shard {index} of {count} does not exist (k runs from 1 to {count})")
        return cls(index, count)


WHOLE = Shard(1, 1)
"""An unsharded stack: the whole environment, and its owner."""


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: the bucket (0-based) of a 64-bit ``key`` among ``buckets``."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _LCG + 1) & _MASK
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_of(subdomain: str, count: int) -> int:
    """The 1-based shard of a tenant among ``count``: stable, depends on nothing but these two."""
    digest = hashlib.sha256(subdomain.encode("utf-8")).digest()
    return jump_hash(int.from_bytes(digest[:8], "big"), count) + 1


def assign(subdomains: Iterable[str], count: int) -> dict[str, int]:
    """Each subdomain's shard among ``count``."""
    return {subdomain: shard_of(subdomain, count) for subdomain in subdomains}


def stack_name(environment: str, index: int, region: str | None = None) -> str:
    """The documented name of shard ``index``'s stack: shard 1 is the environment's own stack (`prod`, which
    keeps the platform folders, schema and key publication it already has), shard k >= 2 is
    `<environment>-<k, two digits>` (`prod-03`, `prod-100`). A region's stacks are named the same way after
    `<environment>-<region>` (`prod-eu`, `prod-eu-02`: docs/decisions/0054-regions.md)."""
    base = f"{environment}-{region}" if region else environment
    return base if index == 1 else f"{base}-{index:02d}"


def select(plan: EnvironmentPlan, shard: Shard | None) -> EnvironmentPlan:
    """The part of an environment's plan a stack declares: its shard's tenants, and the platform folders
    on the owner shard only, which also keeps the schema and master-key publication while any shard's tenant
    uses the database (an owner shard left without database tenants by a reshard must not drop them).
    In a region, the shards split the region's tenants, and each checks the residency of the tenants living
    elsewhere that would be its own. ``None``: the whole environment (or region)."""
    if shard is None:
        return plan
    return EnvironmentPlan(
        plan.environment,
        tuple(t for t in plan.tenants if shard.holds(t.subdomain)),
        plan.platform if shard.owner else (),
        others_use_database=shard.owner
        and any("database" in t.storage for t in plan.tenants if not shard.holds(t.subdomain)),
        region=plan.region,
        elsewhere=tuple(e for e in plan.elsewhere if shard.holds(e.subdomain)),
    )


def publication_problem(published: Mapping[str, str], keyring: Keyring, *, folder: str, owner_stack: str) -> str | None:
    """Why a non-owner shard must not write rows yet: the key folder (as the owner shard publishes it) does not
    hold this stack's active master key as the current one, or holds another key under its version (the
    stack's masterKeys differ from the owner's). None when it is safe. Never names a value."""
    first = f"apply shard 1 ({owner_stack}) first: it publishes the master keys and re-encrypts the rows"
    active = keyring.active
    try:
        held = keyring_from_folder(published, folder=folder)
    except KeyFolderError:
        return f"{folder} does not publish master key version {active} yet; {first}"
    if held.active > active:
        return (
            f"{folder} publishes master key version {held.active}, newer than this stack's version {active}: copy "
            f"tenant-secrets:masterKeys and activeKeyVersion from {owner_stack}'s config"
        )
    if active not in held.keys or held.active != active:
        return f"{folder} publishes master key version {held.active}, not this stack's version {active} yet; {first}"
    if held.keys[active] != keyring.keys[active]:
        return (
            f"{folder} publishes another key as version {active} than this stack's "
            f"tenant-secrets:masterKeys.v{active}: copy the master keys from {owner_stack}'s config"
        )
    return None

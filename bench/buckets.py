"""Which bucket a tenant's resource is, when one resource per store holds several tenants (issue 29).

A stack has a fixed number of buckets, a setting chosen when the stack is made: `ceil(tenants / B)`
for the B tenants per resource wanted then. A tenant's bucket is `sha256(subdomain) mod buckets`, so it
depends on its own subdomain and the stack's setting only: adding or removing another tenant never moves
it (a count derived from today's tenants would move most tenants each time it changed). B is then the
average load of a bucket, and the load drifts as tenants come and go; changing the setting is a move of
every bucket's state, like a reshard (decision 0036), never a side effect of an edit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable


def bucket_count(tenants: int, per_bucket: int) -> int:
    """The stack's bucket setting for `tenants` tenants at `per_bucket` tenants per resource on average."""
    if per_bucket < 1:
        raise ValueError(f"tenants per bucket must be at least 1, not {per_bucket}")
    return max(1, math.ceil(tenants / per_bucket))


def bucket_of(subdomain: str, buckets: int) -> int:
    """The tenant's bucket: a function of its subdomain and the stack's bucket count, nothing else."""
    if buckets < 1:
        raise ValueError(f"a stack has at least 1 bucket, not {buckets}")
    return int.from_bytes(hashlib.sha256(subdomain.encode()).digest()[:8], "big") % buckets


def assign(subdomains: Iterable[str], buckets: int) -> dict[int, list[str]]:
    """The non-empty buckets and their tenants, in the order given."""
    out: dict[int, list[str]] = {}
    for name in subdomains:
        out.setdefault(bucket_of(name, buckets), []).append(name)
    return out

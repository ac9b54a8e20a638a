"""Several tenants per resource: which bucket a tenant is in, and how a bucket's properties hold its tenants
(issue 29, docs/decisions/0053-tenants-per-resource.md).

A stack with the `tenant-secrets:buckets` setting declares, per store, one resource per non-empty bucket
(`InfisicalBucket`, `DatabaseBucket`) instead of one per tenant (`InfisicalFolder`, `DatabaseTenant`).
The engine's cost is per resource and per property value, so a bucket's property ``tenants`` maps each
subdomain to its *entry*: ONE compact JSON string with sorted keys holding the tenant's own resource
properties (declared, recorded and written fingerprints and source descriptors nested in it as objects),
less the owner (the map's key) and what the whole bucket shares (the Infisical environment, the table
prefix: one property of the bucket). The engine then handles one value per tenant and bucket, whatever the
tenant's keys (decision 0053: half the time of one string per per-key map at 10,000 tenants).
`pulumi preview --diff` decodes a JSON string and marks, inside it, the property and the key that changed,
so a reviewer still sees tenant and key, and never a value (none is a property).

The provider of a bucket (components/buckets.py) unpacks each entry into exactly the properties today's
per-tenant resource has, and hands them to today's per-tenant provider: the decisions stay theirs.

A tenant's bucket is ``sha256(subdomain)`` (its first 8 bytes, big-endian) modulo the stack's bucket
count, a setting fixed when the stack is made: it depends on the tenant's own subdomain and that setting
only, so adding or removing another tenant never moves it (a count derived from today's tenants would
move most tenants each time it changed). Changing the setting is a move of every bucket's state, like a
reshard (decision 0036), never a side effect of an edit.

No Pulumi import: the program, the provider plugin and `tenantctl plan` all read buckets through this.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tenant_secrets.engine import contract as c


class BucketError(ValueError):
    """A bucket's properties cannot be read as its tenants' (a state written by something else): one line."""


@dataclass(frozen=True)
class BucketKind:
    """A bucket resource type and the per-tenant resource type whose tenants it holds."""

    bucket_type: str
    """The contract's type name of the bucket (``InfisicalBucket``)."""
    member_type: str
    """The per-tenant type whose properties an entry holds (``InfisicalFolder``)."""
    store: str
    """infisical | database: the store its tenants are written to."""
    shared: tuple[str, ...]
    """The properties every tenant of the bucket has the same: properties of the bucket, not of an entry.
    A change of one replaces each of today's per-tenant resources, so it replaces the bucket."""


INFISICAL: Final = BucketKind(c.INFISICAL_BUCKET, c.INFISICAL_FOLDER, "infisical", (c.ENVIRONMENT,))
DATABASE: Final = BucketKind(c.DATABASE_BUCKET, c.DATABASE_TENANT, "database", (c.TABLE_PREFIX,))
KINDS: Final = {kind.bucket_type: kind for kind in (INFISICAL, DATABASE)}
"""Bucket type name -> its kind."""


TENANTS_PER_BUCKET: Final = 64
"""The average load a stack's bucket count is chosen for: `buckets` = ceil(tenants expected / 64). At 1,000
tenants 64 and 256 per bucket previewed alike (3.25 and 2.96 s, decision 0053), and a smaller bucket sends
less per write and fails less together."""
MANY_TENANTS: Final = 200
"""Past this many tenants, `tenantctl validate` points a stack with one resource per tenant at the move to
buckets: the engine's time follows the number of resources (a no-op preview of 1,000 tenants: 29.78 s in one
resource per tenant and store, 3.25 s in buckets of 64)."""


def bucket_count(tenants: int, per_bucket: int = TENANTS_PER_BUCKET) -> int:
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


def resource_name(bucket: int, store: str) -> str:
    """A bucket resource's name: ``bucket-0007-infisical``, sorted as its number in `pulumi stack`'s listing."""
    return f"bucket-{bucket:04d}-{store}"


def pack(kind: BucketKind, props: Mapping[str, Any]) -> str:
    """One tenant's per-tenant properties (inputs or outputs) as its bucket entry: one compact JSON string with
    sorted keys, so that equal properties give equal strings and the engine sees no change where there is none."""
    entry = {name: value for name, value in props.items() if name != c.OWNER and name not in kind.shared}
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def unpack(kind: BucketKind, owner: str, entry: object, shared: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket entry as the per-tenant properties today's resource of the tenant has (:func:`pack`'s inverse)."""
    try:
        found = json.loads(entry) if isinstance(entry, str) else None
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, dict):
        raise BucketError(f"{owner}: the bucket's entry of this tenant is not a JSON object string")
    return {**found, c.OWNER: owner, **{name: shared.get(name) for name in kind.shared}}


def shared_of(kind: BucketKind, props: Mapping[str, Any]) -> dict[str, Any]:
    """The bucket-wide properties of a bucket's properties."""
    return {name: props.get(name) for name in kind.shared}


def entries(props: Mapping[str, Any]) -> dict[str, object]:
    """A bucket's entries by subdomain, as its properties hold them (packed: see :func:`unpack`)."""
    found = props.get(c.TENANTS)
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise BucketError(f"the bucket's {c.TENANTS} is not an object of tenants by subdomain")
    return {str(owner): entry for owner, entry in found.items()}


def split(kind: BucketKind, props: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A bucket's properties (inputs or outputs) as each tenant's per-tenant properties, by subdomain."""
    shared = shared_of(kind, props)
    return {owner: unpack(kind, owner, entry, shared) for owner, entry in entries(props).items()}


def join(kind: BucketKind, tenants: Mapping[str, Mapping[str, Any]], shared: Mapping[str, Any]) -> dict[str, Any]:
    """The bucket's properties holding these tenants' per-tenant properties (:func:`split`'s inverse).

    ``shared`` are the bucket's own values of the bucket-wide properties: what a tenant's properties say of
    them is not kept (they are the bucket's, and a change of one replaces the bucket)."""
    packed = {owner: pack(kind, tenants[owner]) for owner in sorted(tenants)}
    return {**{name: shared.get(name) for name in kind.shared}, c.TENANTS: packed}

"""A bucket's entries hold exactly what each tenant's own resource would (issue 29), and a tenant's bucket
never changes because another tenant was added or removed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c

FOLDER_INPUTS = {
    c.OWNER: "acme-corp",
    c.ENVIRONMENT: "dev",
    c.PATH: "/tenants/acme-corp",
    c.DECOMMISSION: False,
    c.DECOMMISSIONED: ["OLD_KEY"],
    c.DECLARED_FINGERPRINTS: {"STRIPE_SECRET_KEY": "fp-2", "PLAN": "fp-1"},
    c.SOURCES: {"PLAN": {"from": "literal"}, "STRIPE_SECRET_KEY": {"from": "config", "path": ["acme-corp", "S"]}},
}
FOLDER_OUTPUTS = {
    c.OWNER: "acme-corp",
    c.ENVIRONMENT: "dev",
    c.PATH: "/tenants/acme-corp",
    c.DECOMMISSION: False,
    c.CREATED_FOLDER: True,
    c.RECORDED_FINGERPRINTS: {"PLAN": "fp-1", "STRIPE_SECRET_KEY": "fp-drifted"},
    c.WRITTEN_FINGERPRINTS: {"PLAN": "fp-1", "STRIPE_SECRET_KEY": "fp-2"},
}
ROWS_INPUTS = {
    c.OWNER: "acme-corp",
    c.DECOMMISSION: False,
    c.UNBOUND: [],
    c.STORED_KEYS: [],
    c.DECOMMISSIONED: [],
    c.TABLE_PREFIX: "app_",
    c.COMPANY_ID: "00000000-0000-4000-8000-000000000001",
    c.COMPANY_NAME: "Acme Corp",
    c.DECLARED_FINGERPRINTS: {"PLAN": "fp-1"},
    c.SOURCES: {"PLAN": {"from": "literal"}},
}
ROWS_OUTPUTS = {
    c.OWNER: "acme-corp",
    c.DECOMMISSION: False,
    c.COMPANY_ID: "00000000-0000-4000-8000-000000000001",
    c.COMPANY_NAME: "Acme Corp",
    c.TABLE_PREFIX: "app_",
    c.RECORDED_FINGERPRINTS: {"PLAN": "fp-1"},
}


@pytest.mark.parametrize(
    ("kind", "props"),
    [
        (b.INFISICAL, FOLDER_INPUTS),
        (b.INFISICAL, FOLDER_OUTPUTS),
        (b.DATABASE, ROWS_INPUTS),
        (b.DATABASE, ROWS_OUTPUTS),
    ],
)
def test_an_entry_unpacks_to_the_tenants_own_properties_exactly(kind: b.BucketKind, props: dict[str, Any]) -> None:
    entry = b.pack(kind, props)
    found = json.loads(entry)
    assert c.OWNER not in found and not set(kind.shared) & set(found)  # the map's key, and the bucket's own
    assert b.unpack(kind, "acme-corp", entry, b.shared_of(kind, props)) == props


def test_an_entry_is_one_compact_sorted_json_string_with_its_maps_nested() -> None:
    entry = b.pack(b.INFISICAL, FOLDER_OUTPUTS)
    assert entry == (
        '{"created_folder":true,"declared_fingerprints":{"PLAN":"fp-1","STRIPE_SECRET_KEY":"fp-2"},'
        '"decommission":false,'
        '"fingerprints":{"PLAN":"fp-1","STRIPE_SECRET_KEY":"fp-drifted"},"path":"/tenants/acme-corp"}'
    )
    reordered = dict(reversed(list(FOLDER_OUTPUTS.items())))
    assert b.pack(b.INFISICAL, reordered) == entry  # equal properties, equal strings: no change for the engine


def test_a_bucket_splits_into_its_tenants_and_joins_back() -> None:
    other = {**FOLDER_INPUTS, c.OWNER: "bravo", c.PATH: "/tenants/bravo", c.DECOMMISSIONED: []}
    tenants = {"acme-corp": FOLDER_INPUTS, "bravo": other}
    bucket = b.join(b.INFISICAL, tenants, {c.ENVIRONMENT: "dev"})
    assert set(bucket) == {c.ENVIRONMENT, c.TENANTS}
    assert list(bucket[c.TENANTS]) == ["acme-corp", "bravo"]
    assert all(isinstance(entry, str) for entry in bucket[c.TENANTS].values())  # one value per tenant
    assert b.split(b.INFISICAL, bucket) == tenants
    assert b.split(b.INFISICAL, {c.ENVIRONMENT: "dev"}) == {}  # a bucket whose every tenant failed to be created


@pytest.mark.parametrize("entry", ["fingerprints=PLAN:fp-1", '["PLAN"]', '"PLAN"', {c.RECORDED_FINGERPRINTS: {}}, None])
def test_an_entry_that_is_not_a_json_object_string_is_one_line_naming_the_tenant(entry: object) -> None:
    with pytest.raises(b.BucketError, match=r"^acme: the bucket's entry of this tenant is not a JSON object string$"):
        b.unpack(b.INFISICAL, "acme", entry, {c.ENVIRONMENT: "dev"})
    with pytest.raises(b.BucketError, match="not an object of tenants"):
        b.entries({c.TENANTS: ["acme"]})


def test_a_tenants_bucket_never_moves_when_others_come_and_go() -> None:
    names = [f"tenant-{i:05d}" for i in range(2000)]
    before = {name: b.bucket_of(name, 31) for name in names}
    grown = b.assign([*names, "acme", "new-tenant"], 31)
    shrunk = b.assign(names[::3], 31)
    for changed in (grown, shrunk):
        assert all(before[name] == bucket for bucket, members in changed.items() for name in members if name in before)
    assert sorted(b.assign(names, 31)) == list(range(31))  # 2,000 tenants reach every one of 31 buckets


def test_the_bucket_is_the_first_8_bytes_of_sha256_of_the_subdomain_mod_the_count() -> None:
    # sha256("acme") = 822b33ad87c148a0...
    assert b.bucket_of("acme", 1000) == 0x822B33AD87C148A0 % 1000
    assert b.bucket_of("acme", 1) == 0
    with pytest.raises(ValueError, match="at least 1 bucket"):
        b.bucket_of("acme", 0)


def test_a_bucket_resource_name_sorts_by_number() -> None:
    assert b.resource_name(7, "infisical") == "bucket-0007-infisical"
    assert b.resource_name(12, "database") == "bucket-0012-database"

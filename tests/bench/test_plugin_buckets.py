"""The bucketed floor served by a provider plugin (issue 29): what a reviewer sees of a one-value change.

A bucket holds several tenants; its plugin's detailed diff must name the bucket, the tenant and the key
that changed, print none of the bucket's other tenants, and never a value (bench/floor/plugin.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.buckets import assign, bucket_count
from bench.designs import BucketedFloor, Keys, bucket_design
from bench.floor import plugin
from bench.floor.plugin import detailed_diff
from bench.floor.program import pack
from bench.run import _environment
from bench.tenants import CHANGED_TENANT, stand_in_values, subdomain

TENANTS, PER_BUCKET = 4, 2
CHANGED = subdomain(CHANGED_TENANT)


@pytest.fixture
def design(tmp_path: Path) -> Iterator[BucketedFloor]:
    """A fresh stack of the plugin-served design, `up` with every tenant, then the "change one value" input."""
    with _environment(tmp_path, {}):
        floor = BucketedFloor(f"floor-b{PER_BUCKET}-packed-plugin", tmp_path / "design", {}, Keys())
        stack = floor.create()
        floor.write_input(TENANTS, changed=False)
        stack.up(color="never")
        floor.write_input(TENANTS, changed=True)
        yield floor


def _bucket_of_changed() -> tuple[str, list[str]]:
    """The resource name of the changed tenant's bucket, and the other tenants in it."""
    groups = assign([subdomain(i) for i in range(TENANTS)], bucket_count(TENANTS, PER_BUCKET))
    bucket, members = next((b, m) for b, m in groups.items() if CHANGED in m)
    return f"bucket-{bucket:05d}", [m for m in members if m != CHANGED]


def _shows_value(text: str, value: str) -> bool:
    """Whether `value` appears as a whole token (`pro` inside `provider` is not the value)."""
    return re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", text) is not None


@pytest.mark.e2e
@pytest.mark.long
def test_preview_diff_names_the_bucket_tenant_and_key_of_one_change_and_nothing_else(design: BucketedFloor) -> None:
    bucket, neighbours = _bucket_of_changed()
    assert neighbours, "the changed tenant must share its bucket, or nothing shows that the others are left out"

    preview = design.cli("preview", "--diff")
    assert preview.returncode == 0, preview.stderr
    # the resources come first, and they are what the plugin's detailed diff shapes; the summary follows
    resources = preview.stdout.split("\nResources:", 1)[0]
    for store in ("infisical", "database"):
        assert f"::{bucket}-{store}]" in resources, preview.stdout
    # per store: the bucket, the tenant's entry (decoded from its JSON string), the changed key's fingerprints;
    # the entry's unchanged properties are printed unmarked, and nothing else is marked as changing
    marked = [
        re.sub(r"\s+", " ", re.sub(r'"[0-9a-f]{16}"', '"<fp>"', re.sub(r"\s+:", ":", line.strip())))
        for line in resources.splitlines()
        if re.match(r"^\s*[~+-] ", line)
    ]
    per_store = ["~ tenants: {", f"~ {CHANGED}: (json) {{", "~ fingerprints: {", '~ PLAN: "<fp>" => "<fp>"']
    assert marked == [f"~ {plugin.token('Bucket')}: (update)", *per_store] * 2, resources
    for other in [*neighbours, *(subdomain(i) for i in range(TENANTS) if i != CHANGED_TENANT)]:
        assert other not in resources, resources
    values = {v for i in range(TENANTS) for changed in (False, True) for v in stand_in_values(i, changed).values()}
    shown = sorted(v for v in values if _shows_value(preview.stdout + preview.stderr, v))
    assert not shown, preview.stdout

    as_json = design.cli("preview", "--json")
    assert as_json.returncode == 0, as_json.stderr
    updates = [s for s in json.loads(as_json.stdout)["steps"] if s["op"] != "same"]
    assert sorted(s["urn"].rsplit("::", 1)[-1] for s in updates) == [f"{bucket}-database", f"{bucket}-infisical"]
    for step in updates:
        assert step["op"] == "update", step
        assert step["detailedDiff"] == {f"tenants.{CHANGED}": {"kind": "update", "inputDiff": True}}


@pytest.mark.e2e
@pytest.mark.long
def test_an_added_tenant_is_one_path_of_its_bucket(design: BucketedFloor) -> None:
    added = subdomain(TENANTS)
    design.write_input(TENANTS + 1, changed=False)
    as_json = design.cli("preview", "--json")
    assert as_json.returncode == 0, as_json.stderr
    buckets = [s for s in json.loads(as_json.stdout)["steps"] if s["op"] == "update" and ":Bucket::" in s["urn"]]
    assert len(buckets) == 2, buckets
    for step in buckets:
        assert step["detailedDiff"] == {f"tenants.{added}": {"kind": "add", "inputDiff": True}}, step


def _entry(plan: str) -> dict[str, Any]:
    return {"decommission": False, "fingerprints": {"PLAN": plan}, "path": "/tenants/a"}


@pytest.mark.parametrize(("packed", "changed"), [(True, "tenants.a"), (False, "tenants.a.fingerprints")])
def test_the_detailed_diff_names_changed_tenants_added_and_removed_tenants_and_other_inputs(
    packed: bool, changed: str
) -> None:
    def entries(plans: dict[str, str]) -> dict[str, Any]:
        return {owner: pack(_entry(plan), {"packed": packed}) for owner, plan in plans.items()}

    olds = {"bucket": 1.0, "environment": "dev", "tenants": entries({"a": "1", "b": "1", "gone": "1"})}
    news = {"bucket": 1.0, "environment": "prod", "tenants": entries({"a": "2", "b": "1", "new-1": "1"})}
    kinds = {path: diff.kind.name for path, diff in detailed_diff(olds, news).items()}
    assert kinds == {"environment": "UPDATE", changed: "UPDATE", "tenants.gone": "DELETE", "tenants.new-1": "ADD"}
    assert detailed_diff(olds, olds) == {}


def test_a_packed_entry_is_the_products_one_compact_sorted_json_string() -> None:
    entry = pack({"path": "/tenants/a", "fingerprints": {"PLAN": "1"}}, {"packed": True})
    assert entry == '{"fingerprints":{"PLAN":"1"},"path":"/tenants/a"}'


@pytest.mark.parametrize(
    ("name", "per_bucket"),
    [("floor-b64-packed-plugin", 64), ("floor-b256-plugin", 256), ("floor-b64-packed", 64), ("floor-b1", 1)],
)
def test_a_bucket_design_name_gives_b_with_or_without_packed_and_plugin(name: str, per_bucket: int) -> None:
    assert bucket_design(name) == per_bucket


@pytest.mark.parametrize(
    "name", ["floor-b0-plugin", "floor-b64-plugin-packed", "floor-b-packed-plugin", "floor-plugin"]
)
def test_a_name_out_of_that_pattern_is_no_bucket_design(name: str) -> None:
    assert bucket_design(name) is None

"""The reshard's state edits and the owner shard's key publication check, without the engine (the real
run: tests/e2e/test_shards.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_secrets.engine import contract as c
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import published_values
from tenant_secrets.stack import reshard_marker
from tenant_secrets.stack.files import StackFileError
from tenant_secrets.stack.shards import publication_problem, shard_of
from tenant_secrets.tenantctl.reshard import (
    ReshardError,
    align_provider,
    check_config,
    holds_buckets,
    init_shards,
    mark_departures,
    moves,
    registry_provider,
    reshard,
    settle,
    which_command,
)
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment

P = "urn:pulumi:{stack}::tenant-secrets::"
ROOT = P + "pulumi:pulumi:Stack::tenant-secrets-{stack}"
COMPONENT_TYPE = "tenant-secrets:index:InfisicalSecrets"
COMPONENT = P + COMPONENT_TYPE + "::infisical"
FOLDER = P + "tenant-secrets:index:InfisicalSecrets$pulumi-python:dynamic/tenants:InfisicalFolder::{owner}-infisical"
MOVED = P + "pulumi-python:dynamic/tenants:InfisicalFolder::{owner}-infisical"
PROVIDER = P + "pulumi:providers:pulumi-python::tenant-secrets"
REGISTRY = P + "pulumi-python:dynamic/tenants:Registry::registry"


def key(label: str) -> bytes:
    return hashlib.sha256(f"fake-{label}".encode()).digest()


def test_moves_are_the_tenants_whose_shard_changes() -> None:
    names = [f"t{i}" for i in range(200)]
    found = moves(names, 2, 3)
    assert set(found) <= {(1, 3), (2, 3)}
    assert sorted(n for group in found.values() for n in group) == sorted(n for n in names if shard_of(n, 3) == 3)
    assert moves(names, 3, 3) == {}


def state(stack: str, owners: list[str], *, moved: Sequence[str] = ()) -> dict[str, Any]:
    root = ROOT.format(stack=stack)
    provider = PROVIDER.format(stack=stack)
    resources: list[dict[str, Any]] = [
        {"urn": root, "type": "pulumi:pulumi:Stack", "custom": False},
        {"urn": provider, "id": f"id-{stack}", "type": "pulumi:providers:pulumi-python", "custom": True},
        {
            "urn": REGISTRY.format(stack=stack),
            "id": "registry",
            "parent": root,
            "provider": f"{provider}::id-{stack}",
            "inputs": {"owners": owners, "decommissioned": []},
            "outputs": {"owners": owners, "decommissioned": []},
        },
    ]
    for owner in moved:
        resources.append(
            {
                "urn": MOVED.format(stack=stack, owner=owner),
                "custom": True,
                "parent": root,
                "provider": f"{provider}::id-{stack}",
                "inputs": {"owner": owner},
            }
        )
    return {"resources": resources}


def test_a_moved_resource_gets_its_urn_and_component_back_and_the_registries_follow() -> None:
    dest = state("prod-03", [], moved=["alpha"])
    components = {"InfisicalFolder": {"urn": COMPONENT.format(stack="prod"), "type": COMPONENT_TYPE}}
    settled: dict[str, Any] = {"components": components, "decommissioned": {"alpha": False, "hotel": False}}
    assert settle(dest, "prod-03", elsewhere={"hotel"}, **settled)
    by_urn = {r["urn"]: r for r in dest["resources"]}
    assert by_urn[FOLDER.format(stack="prod-03", owner="alpha")]["parent"] == COMPONENT.format(stack="prod-03")
    assert by_urn[COMPONENT.format(stack="prod-03")]["parent"] == ROOT.format(stack="prod-03")
    urns = [r["urn"] for r in dest["resources"]]
    assert urns.index(COMPONENT.format(stack="prod-03")) < urns.index(FOLDER.format(stack="prod-03", owner="alpha"))
    registry = by_urn[REGISTRY.format(stack="prod-03")]
    assert registry["inputs"]["owners"] == registry["outputs"]["owners"] == ["alpha"]
    assert not settle(dest, "prod-03", elsewhere={"hotel"}, **settled)

    # the source: alpha now only elsewhere, so its registry drops it; the platform folder stays
    source = state("prod", ["alpha", "hono-api", "hotel"])
    source["resources"].append(
        {
            "urn": FOLDER.format(stack="prod", owner="hotel"),
            "custom": True,
            "parent": COMPONENT.format(stack="prod"),
            "inputs": {"owner": "hotel"},
        }
    )
    assert settle(source, "prod", elsewhere={"alpha"}, **settled)
    registry = {r["urn"]: r for r in source["resources"]}[REGISTRY.format(stack="prod")]
    assert registry["inputs"]["owners"] == registry["outputs"]["owners"] == ["hono-api", "hotel"]


def test_the_source_provider_takes_the_destinations_id() -> None:
    source = state("prod", ["alpha"], moved=["alpha"])
    target = registry_provider(state("prod-03", [])["resources"])
    assert target == (PROVIDER.format(stack="prod-03"), "id-prod-03")
    assert align_provider(source, "prod", target)
    provider = PROVIDER.format(stack="prod")
    assert {r.get("provider") for r in source["resources"] if r.get("provider")} == {f"{provider}::id-prod-03"}
    assert not align_provider(source, "prod", target)


def test_a_non_owner_shard_waits_until_shard_1_published_its_active_key() -> None:
    v1, v2 = key("master-1"), key("master-2")
    ring = Keyring({1: v1, 2: v2}, 2)
    where = {"folder": "/hono-api", "owner_stack": "prod"}
    assert "does not publish master key version 2 yet; apply shard 1 (prod) first" in str(
        publication_problem({}, ring, **where)
    )
    only_v1 = published_values({1: v1.hex()}, versions=[1], current=1)
    assert "publishes master key version 1, not this stack's version 2 yet; apply shard 1 (prod) first" in str(
        publication_problem(only_v1, ring, **where)
    )
    both = published_values({1: v1.hex(), 2: v2.hex()}, versions=[1, 2], current=2)
    assert publication_problem(both, ring, **where) is None
    behind = str(publication_problem(both, Keyring({1: v1}, 1), **where))
    assert "publishes master key version 2, newer than this stack's version 1: copy" in behind
    other = Keyring({1: v1, 2: key("another-2")}, 2)
    problem = str(publication_problem(both, other, **where))
    assert "publishes another key as version 2" in problem and v2.hex() not in problem


def test_a_tenant_does_not_move_to_a_stack_without_its_config_values(tmp_path: Path) -> None:
    tenants = parse_tenants(
        "version: 1\ndefaults: {storage: infisical, environments: [prod]}\n"
        "tenants:\n  - subdomain: alpha\n    secrets:\n      STRIPE_SECRET_KEY: {from: config}\n",
        "tenants.yaml",
    )
    plan = plan_environment(tenants, "prod")
    fake = {"secure": "v1:ZmFrZQ==:ZmFrZS1jaXBoZXJ0ZXh0"}
    with_value = {"config": {"tenant-secrets:secrets": {"alpha": {"STRIPE_SECRET_KEY": fake}}}}
    (tmp_path / "Pulumi.prod-02.yaml").write_text(yaml.safe_dump(with_value))
    (tmp_path / "Pulumi.prod-03.yaml").write_text(yaml.safe_dump({"config": {}}))
    check_config(tmp_path, plan, {"prod-02": ["alpha"]})
    with pytest.raises(ReshardError) as err:
        check_config(tmp_path, plan, {"prod-03": ["alpha"]})
    assert str(err.value).startswith(
        "1 value(s) the moved tenants need are not in their new stack's config "
        "(prod-03: secrets.alpha.STRIPE_SECRET_KEY)"
    )
    assert str(err.value).endswith("nothing moved")


def test_a_stack_with_buckets_is_seen_so_that_a_reshard_moves_no_state() -> None:
    stack = "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:"
    bucket = f"{stack}DatabaseSecrets$tenant-secrets:index:DatabaseBucket::bucket-0001-database"
    folder = f"{stack}InfisicalSecrets$tenant-secrets:index:InfisicalFolder::acme-infisical"
    assert holds_buckets({"deployment": {"resources": [{"urn": folder}, {"urn": bucket}]}})
    assert not holds_buckets({"deployment": {"resources": [{"urn": folder}]}})


BUCKET = P + "tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalBucket::bucket-0000-infisical"
OWN_PROVIDER = P + "pulumi:providers:tenant-secrets::tenant-secrets"


def entry(**extra: object) -> str:
    return json.dumps({"decommission": False, "fingerprints": {"PLAN": "fp"}, **extra}, sort_keys=True)


def bucketed(stack: str, owners: Sequence[str], **entries: str) -> dict[str, Any]:
    """A stack's deployment with one Infisical bucket holding ``owners`` (``entries``: a recorded entry of one)."""
    provider = OWN_PROVIDER.format(stack=stack)
    tenants = {owner: entries.get(owner, entry()) for owner in owners}
    return {
        "resources": [
            {"urn": ROOT.format(stack=stack), "type": "pulumi:pulumi:Stack", "custom": False},
            {"urn": provider, "id": "p", "type": reshard_marker.PROVIDER_TYPE, "custom": True, "inputs": {}},
            {
                "urn": REGISTRY.format(stack=stack),
                "provider": f"{provider}::p",
                "inputs": {"owners": list(owners), "decommissioned": []},
                "outputs": {"owners": list(owners), "decommissioned": []},
            },
            {
                "urn": BUCKET.format(stack=stack),
                "type": "tenant-secrets:index:InfisicalBucket",
                "custom": True,
                "inputs": {c.TENANTS: dict(tenants)},
                "outputs": {c.TENANTS: dict(tenants)},
            },
        ]
    }


def recorded(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    bucket = next(r for r in deployment["resources"] if r["urn"].endswith("bucket-0000-infisical"))
    return {owner: json.loads(packed) for owner, packed in bucket["outputs"][c.TENANTS].items()}


def test_a_source_stack_marks_the_tenants_that_leave_and_only_those() -> None:
    """Each leaving tenant's recorded entry names its new stack, a stale mark goes, the registry lists only the
    tenants that stay; marking again changes nothing; the declared inputs are left as they are."""
    deployment = bucketed("prod", ["alpha", "bravo", "delta"], delta=entry(moved_to="prod-09"))
    inputs = json.dumps(deployment["resources"][3]["inputs"])
    assert mark_departures(deployment, {"bravo": "prod-02"})
    entries = recorded(deployment)
    assert {owner: e.get(c.MOVED_TO) for owner, e in entries.items()} == {
        "alpha": None,
        "bravo": "prod-02",
        "delta": None,
    }
    assert entries["bravo"]["fingerprints"] == {"PLAN": "fp"}
    registry = deployment["resources"][2]
    assert registry["inputs"]["owners"] == registry["outputs"]["owners"] == ["alpha", "delta"]
    assert json.dumps(deployment["resources"][3]["inputs"]) == inputs
    assert not mark_departures(deployment, {"bravo": "prod-02"})


def test_arrivals_recorded_before_their_entries_were_still_read_and_marking_again_records_the_entries() -> None:
    """A destination's provider marked by a reshard that recorded the source stack alone: read as arrivals with
    no entry (their plan shows the `move` row alone); the reshard run again rewrites it with the entries."""
    deployment = bucketed("prod-02", [])
    provider = deployment["resources"][1]
    provider["inputs"][reshard_marker.ARRIVALS] = {"bravo": "prod"}
    assert reshard_marker.arrivals(provider["inputs"]) == {"bravo": "prod"}
    assert reshard_marker.arrival_entries(provider["inputs"]) == {}
    assert reshard_marker.mark_arrivals(deployment, {"bravo": "prod"}, {"bravo": {"infisical": entry()}})
    assert provider["inputs"][reshard_marker.ARRIVALS] == {"bravo": {"from": "prod", "entries": {"infisical": entry()}}}
    assert reshard_marker.arrival_entries(provider["outputs"]) == {"bravo": {"infisical": entry()}}
    assert not reshard_marker.mark_arrivals(deployment, {"bravo": "prod"}, {"bravo": {"infisical": entry()}})
    assert reshard_marker.mark_arrivals(deployment, {})
    assert reshard_marker.ARRIVALS not in provider["inputs"]


def test_a_bucket_whose_entries_are_not_plain_json_is_not_marked() -> None:
    deployment = bucketed("prod", ["alpha"])
    deployment["resources"][3]["outputs"][c.TENANTS]["alpha"] = {"ciphertext": "v1:ZmFrZQ=="}
    with pytest.raises(ReshardError, match="the entry of alpha is not a plain JSON string"):
        mark_departures(deployment, {"alpha": "prod-02"})


class FakeStacks:
    """The `pulumi` commands a reshard of stacks with buckets runs, on checkpoints held in memory; ``stop_at``:
    the first command that fails (a kill there)."""

    def __init__(
        self,
        root: Path,
        tenants: Sequence[str],
        stop_at: str | None = None,
        stacks: Sequence[str] = ("prod", "prod-02"),
    ) -> None:
        self.root = root
        self.states: dict[str, dict[str, Any]] = {
            stacks[0]: {"deployment": bucketed(stacks[0], tenants)},
            stacks[1]: {"deployment": {}},
        }
        self.settings: dict[str, str] = {}
        self.stop_at = stop_at
        self.commands: list[str] = []

    def __call__(self, args: Sequence[str]) -> str:
        stack = args[list(args).index("--stack") + 1]
        self.commands.append(" ".join(args[:2]))
        if self.stop_at is not None and " ".join(args[:2]) == self.stop_at:
            raise ReshardError("stopped here")
        if args[:2] == ["stack", "export"]:
            return json.dumps(self.states[stack])
        if args[:2] == ["stack", "import"]:
            self.states[stack] = json.loads(Path(args[list(args).index("--file") + 1]).read_text())
        elif args[0] == "up":  # the bootstrap: the new stack's registry and provider
            self.states[stack] = {"deployment": bucketed(stack, [])}
        elif args[:2] == ["config", "set"]:
            self.settings[stack] = args[-1]
        return ""


def environment(tmp_path: Path, tenants: str) -> None:
    (tmp_path / "tenants.yaml").write_text(tenants)
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": {"tenant-secrets:environment": "prod"}}))
    config = {"tenant-secrets:environment": "prod", "tenant-secrets:shard": "2/2"}
    (tmp_path / "Pulumi.prod-02.yaml").write_text(yaml.safe_dump({"config": config}))


NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "hotel"]


def tenants_yaml(decommissioned: str = "") -> str:
    text = "version: 1\ndefaults: {storage: infisical, environments: [prod]}\ntenants:\n"
    for name in NAMES:
        text += f"  - subdomain: {name}\n" + ("    decommission: true\n" if name == decommissioned else "")
        text += "    secrets:\n      PLAN: {value: pro}\n"
    return text


def test_a_reshard_of_buckets_stopped_after_its_marks_is_finished_by_the_same_command(tmp_path: Path) -> None:
    """No state moves: the source's entries are marked, the destination's provider records the arrivals, the
    settings change and the markers come off. Stopped before the settings (a kill there), every stack still holds
    the unfinished-reshard marker; run again, it ends as an uninterrupted run does."""
    environment(tmp_path, tenants_yaml())
    leaving = sorted(n for n in NAMES if shard_of(n, 2) == 2)
    stopped = FakeStacks(tmp_path, NAMES, stop_at="config set")
    with pytest.raises(ReshardError, match="stopped here"):
        reshard(tmp_path, "prod", 1, 2, run=stopped, tenants_file="tenants.yaml")
    assert all(reshard_marker.marked(s["deployment"]) for s in stopped.states.values())
    assert "state move" not in stopped.commands
    stopped.stop_at = None
    summary = reshard(tmp_path, "prod", 1, 2, run=stopped, tenants_file="tenants.yaml")
    straight = FakeStacks(tmp_path, NAMES)
    reshard(tmp_path, "prod", 1, 2, run=straight, tenants_file="tenants.yaml")
    assert stopped.states == straight.states and stopped.settings == straight.settings == {
        "prod": "1/2",
        "prod-02": "2/2",
    }
    source, destination = stopped.states["prod"]["deployment"], stopped.states["prod-02"]["deployment"]
    assert not reshard_marker.marked(source) and not reshard_marker.marked(destination)
    assert {o: e[c.MOVED_TO] for o, e in recorded(source).items() if c.MOVED_TO in e} == dict.fromkeys(
        leaving, "prod-02"
    )
    provider = next(r for r in destination["resources"] if r["type"] == reshard_marker.PROVIDER_TYPE)
    assert reshard_marker.arrivals(provider["inputs"]) == dict.fromkeys(leaving, "prod")
    # each arrival's entry as the source recorded it, for the destination's plan; the source's mark left out
    packed = json.dumps(json.loads(entry()), sort_keys=True, separators=(",", ":"))
    assert reshard_marker.arrival_entries(provider["inputs"]) == {o: {"infisical": packed} for o in leaving}
    assert summary.moved == {("prod", "prod-02"): len(leaving)}
    assert "run `pulumi up` on each stack, in any order" in summary.lines()


def test_a_reshard_of_buckets_refuses_a_decommissioned_tenant_that_changes_shard_before_writing(
    tmp_path: Path,
) -> None:
    leaving = sorted(n for n in NAMES if shard_of(n, 2) == 2)
    environment(tmp_path, tenants_yaml(decommissioned=leaving[0]))
    stacks = FakeStacks(tmp_path, NAMES)
    with pytest.raises(ReshardError, match=f"decommissioned tenant\\(s\\) {leaving[0]} would change shard"):
        reshard(tmp_path, "prod", 1, 2, run=stacks, tenants_file="tenants.yaml")
    assert set(stacks.commands) == {"stack export"}


def test_a_reshard_refuses_stacks_with_buckets_beside_one_holding_tenants_in_resources_of_their_own(
    tmp_path: Path,
) -> None:
    """A stack holding a tenant's own resource would need a state move; one holding none (a platform folder
    only, or nothing yet) is no obstacle."""
    environment(tmp_path, tenants_yaml())
    stacks = FakeStacks(tmp_path, NAMES)
    stacks.states["prod-02"] = {"deployment": state("prod-02", ["charlie"], moved=["charlie"])}
    (tmp_path / "Pulumi.prod.yaml").write_text(
        yaml.safe_dump({"config": {"tenant-secrets:environment": "prod", "tenant-secrets:shard": "1/2"}})
    )
    with pytest.raises(ReshardError, match="stack\\(s\\) prod-02 hold one resource per tenant and prod hold buckets"):
        reshard(tmp_path, "prod", 2, 1, run=stacks, tenants_file="tenants.yaml")
    assert set(stacks.commands) == {"stack export"}


# --- a region's stacks (docs/decisions/0054-regions.md) ---------------------------------------------------------

REGIONS_YAML = """version: 1
regions: [eu, us]
defaults: {storage: infisical, environments: [prod]}
tenants:
  - {subdomain: alpha, regions: [eu], secrets: {PLAN: {value: pro}}}
  - {subdomain: bravo, regions: [eu, us], secrets: {PLAN: {value: pro}}}
  - {subdomain: charlie, regions: [eu], secrets: {PLAN: {value: pro}}}
  - {subdomain: delta, regions: [us], secrets: {PLAN: {value: pro}}}
  - {subdomain: echo, regions: [us], secrets: {PLAN: {value: pro}}}
"""


def stack_file(root: Path, name: str, region: str | None, shard: str | None = None) -> None:
    config = {"tenant-secrets:environment": "prod", "tenant-secrets:buckets": 1}
    config |= {"tenant-secrets:region": region} if region else {}
    config |= {"tenant-secrets:shard": shard} if shard else {}
    (root / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))


def two_regions(root: Path) -> None:
    """prod in eu (one stack, and prod-eu-02 made by `shards init`) and in us (one stack)."""
    (root / "tenants.yaml").write_text(REGIONS_YAML)
    stack_file(root, "prod-eu", "eu")
    stack_file(root, "prod-eu-02", "eu", "2/2")
    stack_file(root, "prod-us", "us")


def test_a_regions_reshard_moves_that_regions_tenants_among_its_stacks_and_touches_no_other_region(
    tmp_path: Path,
) -> None:
    """eu's shard 2 receives the eu tenants whose shard changes (bravo, who lives in us too, and charlie), never a
    tenant of us alone (delta, whose shard among two is 2 as well); us's stack is not read or written, and the
    marker's command, which finishes the job, names the region."""
    two_regions(tmp_path)
    assert (shard_of("bravo", 2), shard_of("charlie", 2), shard_of("delta", 2), shard_of("alpha", 2)) == (2, 2, 2, 1)
    stacks = FakeStacks(tmp_path, ["alpha", "bravo", "charlie"], "config set", ("prod-eu", "prod-eu-02"))
    stacks.states["prod-us"] = {"deployment": bucketed("prod-us", ["bravo", "delta", "echo"])}
    us_before = json.dumps(stacks.states["prod-us"])
    touched: list[str] = []
    record = stacks.__call__

    def run(args: Sequence[str]) -> str:
        touched.append(args[list(args).index("--stack") + 1])
        return record(args)

    with pytest.raises(ReshardError, match="stopped here"):  # killed before the settings: the markers are on
        reshard(tmp_path, "prod", 1, 2, run=run, tenants_file="tenants.yaml", region="eu")
    provider = next(
        r for r in stacks.states["prod-eu-02"]["deployment"]["resources"] if r["type"] == reshard_marker.PROVIDER_TYPE
    )
    refused = reshard_marker.refusal("prod-eu-02", provider["inputs"])
    assert refused is not None
    assert refused.endswith("Finish it first: `tenantctl reshard --environment prod --region eu --from 1 --to 2`")
    stacks.stop_at = None
    summary = reshard(tmp_path, "prod", 1, 2, run=run, tenants_file="tenants.yaml", region="eu")
    assert set(touched) == {"prod-eu", "prod-eu-02"}
    assert json.dumps(stacks.states["prod-us"]) == us_before
    assert stacks.settings == {"prod-eu": "1/2", "prod-eu-02": "2/2"}
    source = stacks.states["prod-eu"]["deployment"]
    assert {o: e.get(c.MOVED_TO) for o, e in recorded(source).items()} == {
        "alpha": None,
        "bravo": "prod-eu-02",
        "charlie": "prod-eu-02",
    }
    assert summary.moved == {("prod-eu", "prod-eu-02"): 2}


def test_a_reshard_needs_the_region_in_an_environment_in_regions_and_refuses_one_without(tmp_path: Path) -> None:
    two_regions(tmp_path)
    stacks = FakeStacks(tmp_path, ["alpha"], stacks=("prod-eu", "prod-eu-02"))
    with pytest.raises(StackFileError, match=r"^environment prod is in regions \(eu, us\): pass --region$"):
        reshard(tmp_path, "prod", 1, 2, run=stacks, tenants_file="tenants.yaml")
    with pytest.raises(StackFileError, match=r"^environment prod has no stack of region ap: its regions are eu, us$"):
        reshard(tmp_path, "prod", 1, 2, run=stacks, tenants_file="tenants.yaml", region="ap")
    with pytest.raises(
        ReshardError,
        match="no stack for shard\\(s\\) prod-us-02: create them with `tenantctl shards "
        "init --environment prod --region us --count 2`",
    ):
        reshard(tmp_path, "prod", 1, 2, run=stacks, tenants_file="tenants.yaml", region="us")
    (tmp_path / "plain").mkdir()
    environment(tmp_path / "plain", tenants_yaml())
    with pytest.raises(StackFileError, match="has no stack of region eu: it has no regions: leave out --region"):
        reshard(tmp_path / "plain", "prod", 1, 2, run=stacks, tenants_file="tenants.yaml", region="eu")
    assert stacks.commands == []


def test_shards_init_makes_a_regions_stacks_from_its_own_shard_1(tmp_path: Path) -> None:
    """`shards init --region us` copies prod-us's config (its region and buckets with it) into prod-us-02 ..;
    eu's stacks are neither copied from nor made."""
    two_regions(tmp_path)
    commands: list[list[str]] = []

    def run(args: Sequence[str]) -> str:
        commands.append(list(args))
        return ""

    assert init_shards(tmp_path, "prod", 3, run, region="us") == ["prod-us-02", "prod-us-03"]
    assert commands[0] == ["stack", "init", "prod-us-02", "--copy-config-from", "prod-us", "--no-select"]
    assert commands[2] == ["config", "set", "--stack", "prod-us-02", "tenant-secrets:shard", "2/3"]
    assert {args[args.index("--stack") + 1] if "--stack" in args else args[2] for args in commands} == {
        "prod-us-02",
        "prod-us-03",
    }
    assert init_shards(tmp_path, "prod", 2, run, region="eu") == []  # prod-eu-02 exists
    with pytest.raises(StackFileError, match="pass --region"):
        init_shards(tmp_path, "prod", 2, run)


def test_shards_which_names_a_regions_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    two_regions(tmp_path)
    stack_file(tmp_path, "prod-eu", "eu", "1/2")
    monkeypatch.chdir(tmp_path)
    asked = argparse.Namespace(
        environment="prod", region="eu", file="tenants.yaml", tenants=["alpha", "charlie", "delta"]
    )
    assert which_command(asked) == 0
    assert capsys.readouterr().out == (
        "alpha: prod-eu\ncharlie: prod-eu-02\ndelta: no stack in eu; its regions in tenants.yaml: us\n"
    )
    assert (
        which_command(argparse.Namespace(environment="prod", region=None, file="tenants.yaml", tenants=["alpha"])) == 1
    )
    assert "tenantctl shards which: environment prod is in regions (eu, us): pass --region" in capsys.readouterr().err

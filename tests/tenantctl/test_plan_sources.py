"""Issue 26: the plan comment says where each changed key's value comes from (its source kind), and calls out,
above everything else, every new or changed env, config or infisical source with where it reads.

The attack this guards against: a pull request added a tenant whose keys read the run's own credentials,
and the plan showed five `create` rows and nothing else."""

from __future__ import annotations

import json
from typing import Any

from tenant_secrets.tenantctl.plan_comment import render_json, render_markdown
from tenant_secrets.tenantctl.plan_preview import parse_preview
from tenant_secrets.tenants_file.sources import (
    ConfigSource,
    EnvSource,
    GeneratedSource,
    InfisicalSource,
    LiteralSource,
    ValueSource,
    describe,
)

PREFIX = "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:"


def inputs(owner: str, sources: dict[str, ValueSource], *, path: str | None = None) -> dict[str, Any]:
    return {
        "owner": owner,
        "environment": "dev",
        "path": path or f"/tenants/{owner}",
        "decommission": False,
        "decommissioned": [],
        "fingerprints": {key: f"{len(key):016x}" for key in sources},
        "sources": {key: describe(source) for key, source in sources.items()},
    }


def step(op: str, owner: str, new: dict[str, ValueSource] | None, old: dict[str, ValueSource] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    kind = kw.pop("kind", "InfisicalFolder")
    found: dict[str, Any] = {"op": op, "urn": f"{PREFIX}{kind}::{owner}-{kind}"}
    if new is not None:
        found["newState"] = {"inputs": inputs(owner, new, **kw)}
    if old is not None:
        found["oldState"] = {"inputs": inputs(owner, old, **kw)}
    return found


ATTACK: dict[str, ValueSource] = {
    "A": EnvSource("INFISICAL_CLIENT_SECRET"),
    "B": EnvSource("DATABASE_URL"),
    "C": EnvSource("PULUMI_CONFIG_PASSPHRASE"),
    "D": EnvSource("AWS_SECRET_ACCESS_KEY"),
    "E": InfisicalSource("/", "MASTER_ENCRYPTION_KEY", None),
    "F": GeneratedSource(32, "hex", "1"),
    "G": LiteralSource("fake-literal-0001"),
}


def test_a_new_tenant_reading_the_runs_credentials_is_called_out_above_the_table() -> None:
    document = {
        "steps": [step("create", "thief", ATTACK), step("create", "thief", ATTACK, kind="DatabaseTenant")],
    }
    text = render_markdown(parse_preview(document, "dev"))
    head, table = text.split("| tenant / folder |")
    assert head.splitlines()[2:10] == [
        "**5 new or changed value source(s) read from outside tenants.yaml: check where each value comes from:**",
        "",
        "- thief, `A` (dev, new): environment variable INFISICAL_CLIENT_SECRET",
        "- thief, `B` (dev, new): environment variable DATABASE_URL",
        "- thief, `C` (dev, new): environment variable PULUMI_CONFIG_PASSPHRASE",
        "- thief, `D` (dev, new): environment variable AWS_SECRET_ACCESS_KEY",
        "- thief, `E` (dev, new): Infisical <stack environment>:/MASTER_ENCRYPTION_KEY",
        "",
    ]
    # each row names its source kind
    assert "| thief | dev | infisical | `A` | env | create |" in table
    assert "| thief | dev | database | `E` | infisical | create |" in table
    assert "| thief | dev | infisical | `F` | generate | create |" in table
    assert "| thief | dev | infisical | `G` | literal | create |" in table
    assert "fake-literal-0001" not in text


def test_a_changed_source_is_called_out_even_when_the_value_and_the_resource_are_unchanged() -> None:
    old: dict[str, ValueSource] = {"K": ConfigSource(("acme", "K")), "L": EnvSource("ACME_L"), "M": EnvSource("ACME_M")}
    new: dict[str, ValueSource] = {"K": EnvSource("ACME_K"), "L": EnvSource("ACME_L"), "M": EnvSource("ACME_M2")}
    ops = {"update": "acme", "same": "globex"}
    document = {"steps": [step(op, owner, new, old) for op, owner in ops.items()]}
    plan = parse_preview(document, "dev")
    assert [(s.owner, s.key, s.kind, s.change, s.reads) for s in plan.sources] == [
        ("acme", "K", "env", "changed", "environment variable ACME_K"),
        ("acme", "M", "env", "changed", "environment variable ACME_M2"),
        ("globex", "K", "env", "changed", "environment variable ACME_K"),
        ("globex", "M", "env", "changed", "environment variable ACME_M2"),
    ]
    assert json.loads(render_json(plan))["sources"][0] == {
        "owner": "acme",
        "environment": "dev",
        "key": "K",
        "kind": "env",
        "reads": "environment variable ACME_K",
        "change": "changed",
        "owner_kind": "tenant",
    }


def test_generated_and_literal_sources_and_unchanged_ones_are_not_called_out() -> None:
    same: dict[str, ValueSource] = {
        "K": InfisicalSource("/tenants/acme", "K", None),
        "F": GeneratedSource(32, "hex", "1"),
    }
    document = {"steps": [step("update", "acme", {**same, "G": LiteralSource("fake-0001")}, same)]}
    plan = parse_preview(document, "dev")
    assert plan.sources == ()
    assert "value source(s)" not in render_markdown(plan)


def test_the_callout_stays_short_at_any_number_of_tenants() -> None:
    document = {"steps": [step("create", f"t{i:03}", {"K": EnvSource(f"T{i:03}_K")}) for i in range(500)]}
    text = render_markdown(parse_preview(document, "dev"))
    callout = text.split("| tenant / folder |")[0].splitlines()
    assert callout[2] == (
        "**500 new or changed value source(s) read from outside tenants.yaml: check where each value comes from:**"
    )
    assert callout[4:14][-1] == "- t009, `K` (dev, new): environment variable T009_K and 490 more"
    assert len(callout) < 20


def test_a_platform_folders_source_names_the_folder() -> None:
    document = {"steps": [step("create", "ops", {"K": InfisicalSource("/payments", "K", None)}, path="/ops")]}
    text = render_markdown(parse_preview(document, "dev"))
    assert "- ops (platform), `K` (dev, new): Infisical <stack environment>:/payments/K" in text

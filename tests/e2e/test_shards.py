"""Shards on the real engine: an environment in two stacks, the owner shard first (shard 2 refuses to
preview before), `tenantctl verify --environment` checking both with one Infisical listing; then (long)
resharded to three and back by moving state only: every shard's preview shows no change, no Infisical
secret is written and no row's ciphertext changes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
from psycopg import sql

from tenant_secrets.stack.shards import shard_of
from tests.e2e.conftest import Project, configure

SUBDOMAINS = ["alpha", "bravo", "charlie", "delta", "echo", "hotel"]
TENANTS = (
    "version: 1\n"
    "defaults:\n  storage: both\n  environments: [prod]\n"
    "  secrets: {WEBHOOK_SECRET: {generate: {bytes: 16, encoding: hex}}}\n"
    "platform:\n  hono-api:\n    secrets:\n      EMAIL_FROM: {value: shards@example.test}\n"
    "tenants:\n" + "".join(f"  - subdomain: {s}\n    secrets:\n      PLAN: {{value: plan-{s}}}\n" for s in SUBDOMAINS)
)


def tenantctl(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python", "-m", "tenant_secrets.tenantctl", *args],
        cwd=project.root,
        env={**os.environ, **project.env},
        capture_output=True,
        text=True,
        check=False,
    )


def ciphertexts(project: Project) -> dict[tuple[str, str], str]:
    with project.db() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted FROM company_secrets s"
                " JOIN companies c ON c.id = s.company_id"
            )
        ).fetchall()
    return {(subdomain, key): value for subdomain, key, value in rows}


def owners_in_state(project: Project, stack: str) -> dict[str, Any]:
    exported = json.loads(
        subprocess.run(
            ["pulumi", "stack", "export", "--stack", stack],
            cwd=project.root,
            env={**os.environ, **project.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    resources = exported["deployment"]["resources"]
    registry = next(r for r in resources if r["urn"].endswith("::registry"))
    moved = ("-infisical", "-database")
    tenants = sorted({r["inputs"]["owner"] for r in resources if r["urn"].endswith(moved)} - {"hono-api"})
    owned = ("DatabaseSchema::", "MasterKeyPublication::", "::hono-api-infisical")
    return {
        "registry": registry["outputs"]["owners"],
        "tenants": tenants,
        "owned": [r["urn"] for r in resources if any(part in r["urn"] for part in owned)],
    }


def two_shards(project: Project, master_key: str) -> None:
    """prod in two shards, `shards init` making the second, applied owner first; each shard verified."""
    project.write_tenants(TENANTS)
    owner = project.stack("prod")
    configure(owner, secrets_config={}, master_keys={"v1": master_key}, shard="1/2")
    made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "2")
    assert made.returncode == 0, made.stderr
    second = project.stack("prod-02")

    # shard 2 waits for shard 1, which publishes the master key
    code, _document, output = project.preview_json(second)
    assert code != 0 and "apply shard 1 (prod) first" in output

    project.up(owner)
    project.up(second)
    for index, name in ((1, "prod"), (2, "prod-02")):
        state = owners_in_state(project, name)
        assert state["tenants"] == [s for s in SUBDOMAINS if shard_of(s, 2) == index]
        assert bool(state["owned"]) == (index == 1), state["owned"]  # schema, key publication, platform folder

    project.infisical.reset_counts()
    verified = tenantctl(project, "verify", "--environment", "prod")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("no drift on stack") == 2
    reads = {route: n for route, n in project.infisical.request_counts().items() if "/auth/" not in route}
    assert sum(reads.values()) == 1, reads  # one recursive listing for both shards


@pytest.mark.e2e
def test_shard_1_owns_the_environment_and_goes_first(project: Project, master_key: str) -> None:
    two_shards(project, master_key)


@pytest.mark.e2e
@pytest.mark.long
def test_two_shards_resharded_to_three_and_back_move_state_only(project: Project, master_key: str) -> None:
    two_shards(project, master_key)
    stored = ciphertexts(project)
    assert {s for s, _ in stored} == set(SUBDOMAINS)
    project.infisical.reset_counts()

    made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "3")
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    moved = tenantctl(project, "reshard", "--environment", "prod", "--from", "2", "--to", "3")
    print(f"reshard 2 -> 3 of {len(SUBDOMAINS)} tenants: {time.monotonic() - started:.1f} s; {moved.stdout.strip()}")
    assert moved.returncode == 0, moved.stderr

    for index, name in enumerate(["prod", "prod-02", "prod-03"], start=1):
        expected = sorted(s for s in SUBDOMAINS if shard_of(s, 3) == index)
        state = owners_in_state(project, name)
        assert state["tenants"] == expected, name
        assert sorted(set(state["registry"]) - {"hono-api"}) == expected, name
        assert ("hono-api" in state["registry"]) == (index == 1)
        assert bool(state["owned"]) == (index == 1), state["owned"]  # schema, key publication, platform folder

    # every shard's preview, through `tenantctl plan --environment`: nothing to change
    planned = tenantctl(project, "plan", "--environment", "prod", "--format", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plans = json.loads(planned.stdout)
    assert [p["stack"] for p in plans] == ["prod", "prod-02", "prod-03"]
    for plan in plans:
        assert plan["changes"] == [] and set(plan["resources"]) == {"same"}, plan
    assert project.infisical.writes() == 0
    assert ciphertexts(project) == stored

    # and back to two: the moves go into stacks that have their own provider, components and registry
    back = tenantctl(project, "reshard", "--environment", "prod", "--from", "3", "--to", "2")
    assert back.returncode == 0, back.stderr
    assert "prod-03 holds no tenant now: `pulumi stack rm --force --stack prod-03`" in back.stdout
    assert owners_in_state(project, "prod-03")["tenants"] == []
    subprocess.run(
        ["pulumi", "stack", "rm", "--force", "--yes", "--stack", "prod-03"],
        cwd=project.root,
        env={**os.environ, **project.env},
        check=True,
        capture_output=True,
    )
    planned = tenantctl(project, "plan", "--environment", "prod", "--format", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert [(p["stack"], p["changes"], set(p["resources"])) for p in json.loads(planned.stdout)] == [
        ("prod", [], {"same"}),
        ("prod-02", [], {"same"}),
    ]
    assert project.infisical.writes() == 0
    assert ciphertexts(project) == stored

"""Regions on the real engine (docs/decisions/0054-regions.md): two regions, each its own PostgreSQL cluster,
Infisical server and master key, applied by the stacks `dev-eu` and `dev-us` from one tenants.yaml.

A tenant pinned to eu is written only there; adding us writes it there too, under us's key, which cannot read
eu's rows (and the reverse: the Python reader, the seed's Node.js application with its region's key folder, and
the Node.js reader package configured with eu's Infisical and key folder);
dropping us without `decommission: [us]` is refused and deletes nothing, with the marker only us loses it; a
rotation of us's master key leaves every eu row as it was; and `tenantctl verify` on dev-us reports a folder and
rows of an eu tenant planted there by hand. A second test splits eu's stack (with buckets) into two shards
(`shards init` and `reshard` with `--region eu`): nothing is written in either region, and us's stack, state and
stores stay as they were."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pulumi import automation as auto

from dev.pg import Cluster
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.reader import DsnConnections, SecretReader, UndecryptableSecretError
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants, ensure_companies, find_companies
from tests.conftest import fresh_database, running_cluster
from tests.e2e.conftest import Infisical, Project, configure, sdk_listing, start_infisical
from tests.e2e.steps import pulumi, tenantctl
from tests.e2e.test_keyring import seed_app
from tests.e2e.test_shards import owners_in_state

pytestmark = pytest.mark.e2e

PLATFORM = "platform:\n  hono-api:\n    secrets:\n      EMAIL_FROM: {value: regions@example.test}\n"
NODE_READER = Path(__file__).resolve().parents[1] / "node" / "region_reader.mjs"
ALPHA_SECRETS = "    secrets:\n      STRIPE_SECRET_KEY: {value: fake-stripe-alpha-0001}\n"


def tenants(alpha: str) -> str:
    """tenants.yaml with regions eu and us: bravo in us, charlie in eu, and alpha as ``alpha`` says (its regions
    lines)."""
    return (
        "version: 1\nregions: [eu, us]\n"
        "defaults:\n  storage: both\n  environments: [dev]\n"
        + PLATFORM
        + "tenants:\n"
        + f"  - subdomain: alpha\n{alpha}{ALPHA_SECRETS}"
        + "  - subdomain: bravo\n    regions: [us]\n    secrets:\n      PLAN: {value: fake-plan-bravo}\n"
        + "  - subdomain: charlie\n    regions: [eu]\n    secrets:\n      PLAN: {value: fake-plan-charlie}\n"
    )


@dataclass
class Region:
    name: str
    dsn: str
    infisical: Infisical
    keys: dict[int, str]  # version -> hex

    def env(self, project: Project) -> dict[str, str]:
        return {**project.env, "DATABASE_URL": self.dsn, **self.infisical.env}

    def keyring(self) -> Keyring:
        return Keyring({v: bytes.fromhex(k) for v, k in self.keys.items()}, active=max(self.keys))

    def folder(self, subdomain: str) -> dict[str, str] | None:
        listed = sdk_listing(self.infisical, "dev", f"/tenants/{subdomain}")
        return None if listed is None else {s.secretKey: s.secretValue for s in listed}

    def rows(self, subdomain: str) -> dict[str, tuple[str, int]]:
        """The tenant's rows as stored: key -> (ciphertext, key version)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            found = conn.execute(
                "SELECT s.secret_key, s.secret_value_encrypted, s.key_version FROM company_secrets s "
                "JOIN companies c ON c.id = s.company_id WHERE c.subdomain = %s",
                [subdomain],
            ).fetchall()
        return {str(key): (str(envelope), int(version)) for key, envelope, version in found}

    def read(self, dsn: str, subdomain: str, key: str) -> str:
        """What this region's application reads from the database at ``dsn`` with this region's master keys."""
        reader = SecretReader(database=DsnConnections(dsn), keyring=self.keyring())
        try:
            return reader.get(subdomain, key)
        finally:
            reader.close()


@pytest.fixture(scope="module")
def second_cluster(cluster_root: Path) -> Iterator[Cluster]:
    """us's own PostgreSQL: a second private cluster (beside the session's, outside pytest's temp root)."""
    with running_cluster(cluster_root / "pg-us") as cluster:
        yield cluster


@pytest.fixture
def us_dsn(second_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database of us's cluster for one test (as the session's `pg_dsn` is of eu's)."""
    with fresh_database(second_cluster) as dsn:
        yield dsn


@pytest.fixture
def second_infisical(tmp_path: Path) -> Iterator[Infisical]:
    """us's own Infisical: a second server."""
    running = start_infisical(tmp_path / "infisical-us")
    yield running
    running.server.stop()


def region_stack(project: Project, region: Region) -> auto.Stack:
    stack = auto.create_or_select_stack(
        stack_name=f"dev-{region.name}",
        work_dir=str(project.root),
        opts=auto.LocalWorkspaceOptions(env_vars=region.env(project), secrets_provider="passphrase"),
    )
    configure(
        stack,
        secrets_config={},
        master_keys={f"v{v}": key for v, key in region.keys.items()},
        environment="dev",
        region=region.name,
        buckets="2",  # a new stack, as the runbook makes it (docs/guides/production.md)
    )
    return stack


def node_reader(region: Region, dsn: str, subdomain: str, key: str) -> dict[str, Any]:
    """The Node.js reader package as ``region``'s application configures it (its Infisical and key folder, no
    region setting: there is none), reading the database at ``dsn``; tests/node/region_reader.mjs."""
    request = {
        "siteUrl": region.infisical.server.url,
        "clientId": region.infisical.client_id,
        "clientSecret": region.infisical.client_secret,
        "projectId": region.infisical.project_id,
        "environment": "dev",
        "databaseUrl": dsn,
        "tenant": subdomain,
        "key": key,
    }
    done = subprocess.run(
        ["node", str(NODE_READER)], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def up(project: Project, stack: auto.Stack) -> auto.UpResult:
    return project.up(stack)


def failed_up(project: Project, stack: auto.Stack) -> str:
    with pytest.raises(auto.CommandError) as failed:
        project.up(stack)
    return str(failed.value)


def test_residency_under_adding_moving_and_removing_regions(
    project: Project, us_dsn: str, second_infisical: Infisical
) -> None:
    eu = Region("eu", project.dsn, project.infisical, {1: os.urandom(32).hex()})
    us = Region("us", us_dsn, second_infisical, {1: os.urandom(32).hex()})

    # a stack without a region cannot apply a file with regions: validate names the setting
    project.write_tenants(tenants("    regions: [eu]\n"))
    eu_stack, us_stack = region_stack(project, eu), region_stack(project, us)
    valid = tenantctl(project, "validate", "tenants.yaml", "--stack", "dev-eu")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    us_stack.remove_config("tenant-secrets:region")
    refused = tenantctl(project, "validate", "tenants.yaml", "--stack", "dev-us")
    assert refused.returncode == 1
    assert "the file declares regions, and the stack sets none" in refused.stdout, refused.stdout
    us_stack.set_config("tenant-secrets:region", auto.ConfigValue("us"))

    # alpha pinned to eu: written in eu only; bravo in us only
    up(project, eu_stack)
    up(project, us_stack)
    assert eu.folder("alpha") == {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001"}
    assert us.folder("alpha") is None
    assert set(eu.rows("alpha")) == {"STRIPE_SECRET_KEY"}
    assert us.rows("alpha") == {}
    assert eu.folder("bravo") is None and eu.rows("bravo") == {}
    assert us.folder("bravo") == {"PLAN": "fake-plan-bravo"}
    assert us.folder("charlie") is None and us.rows("charlie") == {}

    # adding us: us writes alpha under its own key; each application reads its own rows, never the other's
    project.write_tenants(tenants("    regions: [eu, us]\n"))
    eu_rows = eu.rows("alpha")
    up(project, us_stack)
    assert us.folder("alpha") == {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001"}
    assert us.rows("alpha")["STRIPE_SECRET_KEY"][0] != eu_rows["STRIPE_SECRET_KEY"][0]
    assert eu.read(eu.dsn, "alpha", "STRIPE_SECRET_KEY") == "fake-stripe-alpha-0001"
    assert us.read(us.dsn, "alpha", "STRIPE_SECRET_KEY") == "fake-stripe-alpha-0001"
    with pytest.raises(UndecryptableSecretError):
        us.read(eu.dsn, "alpha", "STRIPE_SECRET_KEY")
    with pytest.raises(UndecryptableSecretError):
        eu.read(us.dsn, "alpha", "STRIPE_SECRET_KEY")
    assert eu.rows("alpha") == eu_rows  # replication never touches the other region
    # the seed's own Node.js application, reading MASTER_ENCRYPTION_KEY from its region's Infisical /hono-api
    rows = [eu_rows["STRIPE_SECRET_KEY"], us.rows("alpha")["STRIPE_SECRET_KEY"]]
    assert [r.get("value") for r in seed_app(eu.infisical, rows, "seed")] == ["fake-stripe-alpha-0001", None]
    assert [r.get("value") for r in seed_app(us.infisical, rows, "seed")] == [None, "fake-stripe-alpha-0001"]
    # the Node.js reader package, configured with eu's Infisical and key folder: eu's row, and a refusal of us's
    assert node_reader(eu, eu.dsn, "alpha", "STRIPE_SECRET_KEY") == {"ok": True, "value": "fake-stripe-alpha-0001"}
    other = node_reader(eu, us.dsn, "alpha", "STRIPE_SECRET_KEY")
    assert other["ok"] is False and other["error"] == "UndecryptableSecretError", other
    assert "fake-stripe-alpha-0001" not in other["message"]

    # a rotation of us's master key re-encrypts us's rows only
    us.keys[2] = os.urandom(32).hex()
    us_stack.set_all_config(
        {
            "tenant-secrets:masterKeys.v2": auto.ConfigValue(us.keys[2], secret=True),
            "tenant-secrets:activeKeyVersion": auto.ConfigValue("2"),
        },
        path=True,
    )
    up(project, us_stack)
    assert {version for _, version in us.rows("alpha").values()} == {2}
    assert us.read(us.dsn, "alpha", "STRIPE_SECRET_KEY") == "fake-stripe-alpha-0001"
    assert eu.rows("alpha") == eu_rows
    assert eu.read(eu.dsn, "alpha", "STRIPE_SECRET_KEY") == "fake-stripe-alpha-0001"

    # dropping us without the marker: the run refuses, and nothing is deleted
    project.write_tenants(tenants("    regions: [eu]\n"))
    message = failed_up(project, us_stack)
    assert "alpha is no longer declared in region us" in message and "`decommission: [us]`" in message, message
    assert us.folder("alpha") is not None and us.rows("alpha") != {}

    # with `decommission: [us]`: us deletes alpha's folder and rows; eu keeps them
    project.write_tenants(tenants("    regions: [eu]\n    decommission: [us]\n"))
    up(project, us_stack)
    assert us.folder("alpha") is None
    assert us.rows("alpha") == {}
    assert eu.folder("alpha") == {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001"}
    assert eu.rows("alpha") == eu_rows
    clean = tenantctl(project, "verify", "--stack", "dev-us", env=us.env(project))
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # a folder and a row of charlie (eu only) planted in us by hand: verify on dev-us reports both, and only them
    assert eu.folder("charlie") == {"PLAN": "fake-plan-charlie"}
    plant(us, "charlie")
    planted = tenantctl(project, "verify", "--stack", "dev-us", env=us.env(project))
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert [line.split()[:4] for line in planted.stdout.splitlines()[:-1]] == [
        ["charlie", "database", "*", "out-of-region:"],
        ["charlie", "infisical", "*", "out-of-region:"],
    ], planted.stdout
    assert "tenant charlie may live in eu only, and this stack writes region us" in planted.stdout
    assert "fake-planted" not in planted.stdout + planted.stderr


def plant(region: Region, subdomain: str) -> None:
    """A tenant's folder and a row written into ``region`` by hand (as a misdirected script would)."""
    infisical = region.infisical
    client = InfisicalClient(
        InfisicalCredentials(infisical.server.url, infisical.client_id, infisical.client_secret, infisical.project_id)
    )
    client.ensure_folder("dev", f"/tenants/{subdomain}")
    client.apply_secrets("dev", f"/tenants/{subdomain}", upsert={"PLAN": "fake-planted-0001"})
    settings = StoreSettings(create_companies_table=True)
    with psycopg.connect(region.dsn, autocommit=True) as conn:
        ensure_companies(conn, settings, {subdomain: (None, None)})
        company = find_companies(conn, settings, [subdomain], [])[subdomain]
        change = TenantChange({"PLAN": "fake-planted-0001"})
        apply_tenants(conn, settings, {company: change}, region.keyring())


RESHARDED = {"eu": ("alpha", "bravo", "charlie", "hotel"), "us": ("delta", "echo")}
"""The tenants of each region in the reshard below: bravo and charlie change shard in eu (1 of 1 -> 2 of 2), and
so would delta if us were resharded."""


def resharded_file() -> str:
    lines = ["version: 1", "regions: [eu, us]", "defaults: {storage: both, environments: [dev]}", PLATFORM + "tenants:"]
    for region, names in RESHARDED.items():
        for name in names:
            lines.append(
                f"  - {{subdomain: {name}, regions: [{region}], secrets: {{PLAN: {{value: fake-plan-{name}}}}}}}"
            )
    return "\n".join(lines) + "\n"


def snapshot(region: Region, project: Project) -> dict[str, Any]:
    """What any write to a region's stores changes: each folder's keys with value and version, each row's
    ciphertext, version, updated_at and xmin, and how many changes its Infisical server audited; and its stacks'
    state (resources as exported) and stack files."""
    with psycopg.connect(region.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.version, s.updated_at::text, s.xmin::text"
            " FROM company_secrets s JOIN companies c ON c.id = s.company_id ORDER BY 1, 2"
        ).fetchall()
    folders = {}
    for name in (*RESHARDED["eu"], *RESHARDED["us"]):
        listed = sdk_listing(region.infisical, "dev", f"/tenants/{name}")
        folders[name] = None if listed is None else {s.secretKey: (s.secretValue, s.version) for s in listed}
    stacks = {}
    for path in sorted(project.root.glob(f"Pulumi.dev-{region.name}*.yaml")):
        name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        exported = pulumi(project, "stack", "export", "--stack", name)
        assert exported.returncode == 0, exported.stderr
        stacks[name] = (path.read_text(), json.loads(exported.stdout)["deployment"]["resources"])
    return {"rows": rows, "folders": folders, "audited": len(region.infisical.server.audit()), "stacks": stacks}


def test_a_regions_stacks_resharded_one_to_two_with_buckets_write_nothing_and_leave_the_other_region_alone(
    project: Project, us_dsn: str, second_infisical: Infisical
) -> None:
    """eu's stack, with buckets (a new stack's default), split into dev-eu and dev-eu-02 by `tenantctl shards init
    --region eu` and `tenantctl reshard --region eu`: each eu stack's `up` then forgets or adopts its tenants,
    writing nothing in either region, and us's stack, state and stores stay as they were (delta, of us, would
    change shard too: it is not eu's to move)."""
    eu = Region("eu", project.dsn, project.infisical, {1: os.urandom(32).hex()})
    us = Region("us", us_dsn, second_infisical, {1: os.urandom(32).hex()})
    project.write_tenants(resharded_file())
    eu_stack, us_stack = region_stack(project, eu), region_stack(project, us)
    up(project, eu_stack)
    up(project, us_stack)
    assert eu.folder("bravo") == {"PLAN": "fake-plan-bravo"} and us.folder("bravo") is None
    assert us.folder("delta") == {"PLAN": "fake-plan-delta"}
    before = {"eu": snapshot(eu, project), "us": snapshot(us, project)}

    refused = tenantctl(project, "shards", "init", "--environment", "dev", "--count", "2")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "tenantctl shards init: environment dev is in regions (eu, us): pass --region"
    made = tenantctl(project, "shards", "init", "--environment", "dev", "--region", "eu", "--count", "2")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("created dev-eu-02;"), made.stdout
    copied = (project.root / "Pulumi.dev-eu-02.yaml").read_text()
    assert "tenant-secrets:region: eu" in copied and "tenant-secrets:buckets:" in copied, copied
    done = tenantctl(project, "reshard", "--environment", "dev", "--region", "eu", "--from", "1", "--to", "2")
    assert done.returncode == 0, done.stderr
    assert "marked 2 tenant(s) to move" in done.stdout and "(dev-eu -> dev-eu-02: 2 tenant(s))" in done.stdout

    eu.infisical.reset_counts()
    us.infisical.reset_counts()
    destination = auto.select_stack(
        stack_name="dev-eu-02",
        work_dir=str(project.root),
        opts=auto.LocalWorkspaceOptions(env_vars=eu.env(project), secrets_provider="passphrase"),
    )
    for stack in (eu_stack, destination):
        assert project.preview(stack).change_summary.get(auto.OpType.DELETE, 0) == 0
        up(project, stack)
    assert eu.infisical.writes() == 0 and us.infisical.writes() == 0
    for stack in (eu_stack, destination, us_stack):
        assert set(project.preview(stack).change_summary) == {auto.OpType.SAME}, stack.name
    assert owners_in_state(project, "dev-eu")["tenants"] == ["alpha", "hotel"]
    assert owners_in_state(project, "dev-eu-02")["tenants"] == ["bravo", "charlie"]

    after = {"eu": snapshot(eu, project), "us": snapshot(us, project)}
    assert after["us"] == before["us"], "us's stack, state or stores changed"
    assert {k: v for k, v in after["eu"].items() if k != "stacks"} == {
        k: v for k, v in before["eu"].items() if k != "stacks"
    }, "a value, ciphertext, version, updated_at or xmin was rewritten in eu"
    verified = tenantctl(project, "verify", "--environment", "dev", "--region", "eu", env=eu.env(project))
    assert verified.returncode == 0 and verified.stdout.count("no drift on stack") == 2, verified.stdout

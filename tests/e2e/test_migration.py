"""Strategy A to B through the real engine (issue 12): `tenantctl migrate` in two batches, the second
`pulumi up` killed half-way and run again, `tenantctl verify` proving every value in both stores, and
verify's reports through the CLI: drift planted in the real stores, a check that cannot run, and
what one check costs (Infisical requests, database statements)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.e2e.conftest import Infisical, Project, configure, sdk, start_infisical

pytestmark = pytest.mark.e2e

TENANTS = """\
# Strategy A: every tenant's secrets in its Infisical folder.
version: 1
defaults:
  storage: infisical
  environments: [dev]

tenants:
  - subdomain: alder                     # the first customer
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: birch
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: cedar
  - subdomain: dogwood
  - subdomain: elm
  - subdomain: fir                       # already in the database only
    storage: database
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
NAMES = ("alder", "birch", "cedar", "dogwood", "elm")
STRIPE = {name: {"STRIPE_SECRET_KEY": f"fake-stripe-{name}-0001"} for name in ("alder", "birch", "fir")}
# What the folders held before the tool: keys tenants.yaml does not declare (the legacy setup).
LEGACY = {
    name: {"LEGACY_API_KEY": f"fake-legacy-{name}-0001", "WEBHOOK_SECRET": f"fake-webhook-{name}-0001"}
    for name in NAMES
}
APPLY_LOCK = "tenant_secrets.apply:"  # the advisory lock every tenant's apply takes (store/secrets.py)


@pytest.fixture
def infisical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infisical]:
    """A server of this test's own, so its recursive listing sees only this test's folders."""
    running = start_infisical(tmp_path_factory.mktemp("infisical"))
    yield running
    running.server.stop()


def tenantctl(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tenant_secrets.tenantctl", *args],
        cwd=project.root,
        env=env or {**os.environ, **project.env},
        capture_output=True,
        text=True,
        check=False,
    )
    project.capture(done.stdout + done.stderr)
    return done


def verify(project: Project, *args: str) -> tuple[int, dict[str, Any]]:
    done = tenantctl(project, "verify", "--stack", "dev", "--format", "json", *args)
    return done.returncode, json.loads(done.stdout)


def findings(report: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {(f["owner"], f["store"], f["key"], f["kind"]) for f in report["findings"]}


def rows(project: Project) -> list[tuple[str, str]]:
    """(subdomain, key) of every row, duplicates kept."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    return sorted((str(a), str(b)) for a, b in found)


def up_killed_half_way(project: Project, batch: tuple[str, ...]) -> None:
    """`pulumi up` killed while the batch's rows are being written: the engine dies with their creates in
    flight, their transactions then commit, and nothing records them (the worst moment to die)."""
    with psycopg.connect(project.dsn, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [APPLY_LOCK])
        engine = subprocess.Popen(
            ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "dev"],
            cwd=project.root,
            env={**os.environ, **project.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            waiting = 0
            deadline = time.monotonic() + 120
            while waiting < len(batch):  # every tenant of the batch waits on the lock, mid-apply
                assert engine.poll() is None and time.monotonic() < deadline, "the up ended before its writes"
                time.sleep(0.1)
                found = lock.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                waiting = int(found[0]) if found else 0
            os.kill(engine.pid, signal.SIGKILL)  # the engine only: its providers finish the calls in flight
            engine.wait()
            lock.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [APPLY_LOCK])
            deadline = time.monotonic() + 60
            while {s for s, _ in rows(project)} < {*batch, "alder", "birch", "fir"}:
                assert time.monotonic() < deadline, "the providers did not finish the writes in flight"
                time.sleep(0.1)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the language host and providers, if left behind
                os.killpg(engine.pid, signal.SIGKILL)


@pytest.mark.long
def test_two_batches_one_up_killed_then_verify_proves_both_stores(project: Project, master_key: str) -> None:
    infisical = project.infisical
    client = sdk(infisical)
    for name, secrets in LEGACY.items():
        client.folders.create_folder(
            name=name, environment_slug="dev", project_id=infisical.project_id, path="/tenants"
        )
        for key, value in secrets.items():
            client.secrets.create_secret_by_name(
                secret_name=key,
                project_id=infisical.project_id,
                secret_path=f"/tenants/{name}",
                environment_slug="dev",
                secret_value=value,
            )
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(stack, secrets_config=STRIPE, master_keys={"v1": master_key})
    project.up(stack)

    # Before the migration: the hand-made keys are in managed folders, undeclared.
    status, report = verify(project)
    assert status == 1
    assert findings(report) == {
        (name, "infisical", key, "undeclared") for name in NAMES for key in ("LEGACY_API_KEY", "WEBHOOK_SECRET")
    }

    # Batch 1: two tenants. The pull request's plan creates rows and deletes nothing.
    done = tenantctl(project, "migrate", "--to", "database", "--batch", "2")
    assert done.returncode == 0, done.stderr
    assert "2 tenant(s) now storage: both (alder, birch); 4 key(s) now read {from: infisical}" in done.stderr
    text = (project.root / "tenants.yaml").read_text()
    assert "  - subdomain: alder                     # the first customer\n    storage: both\n" in text
    assert "      LEGACY_API_KEY: {from: infisical, path: /tenants/alder, key: LEGACY_API_KEY}\n" in text
    code, plan, output = project.plan(stack)
    assert code == 0, output
    assert {r.action for r in plan} == {"create"}
    assert {r.owner for r in plan if r.store == "database"} == {"alder", "birch"}
    project.up(stack)
    status, report = verify(project, "--tenants", "alder,birch")
    assert (status, report["findings"]) == (0, [])
    assert report["counts"] == {"alder": {"database": 3, "infisical": 3}, "birch": {"database": 3, "infisical": 3}}

    # Batch 2: the other three, with the `up` killed while their rows are written; run again, it converges.
    done = tenantctl(project, "migrate", "--to", "database", "--batch", "5")
    assert "3 tenant(s) now storage: both (cedar, dogwood, elm)" in done.stderr
    up_killed_half_way(project, ("cedar", "dogwood", "elm"))
    deployment = stack.export_stack().deployment or {}
    assert deployment.get("pending_operations"), "the killed run left operations in flight"
    # the file backend keeps the dead run's lock: `pulumi cancel` clears it here (the runbook has `tenantctl recover`)
    cancel = subprocess.run(
        ["pulumi", "cancel", "--yes", "--stack", "dev"],
        cwd=project.root,
        env={**os.environ, **project.env},
        capture_output=True,
        check=False,
        text=True,
    )
    assert "The currently running update for 'dev' has been canceled" in cancel.stdout, cancel.stderr
    project.up(stack)
    assert rows(project) == sorted(
        {(name, key) for name in NAMES for key in ("LEGACY_API_KEY", "WEBHOOK_SECRET")}
        | {(name, "STRIPE_SECRET_KEY") for name in ("alder", "birch", "fir")}
    )  # every row once
    status, report = verify(project)
    assert (status, report["findings"]) == (0, [])
    assert report["counts"]["elm"] == {"database": 2, "infisical": 2}
    assert set(project.preview(stack).change_summary) == {"same"}  # a second run changes nothing

    # The reverse: a tenant only in the database gains its folder, from its declared sources.
    done = tenantctl(project, "migrate", "--to", "infisical", "--batch", "10")
    assert "1 tenant(s) now storage: both (fir)" in done.stderr
    project.up(stack)
    status, report = verify(project, "--tenants", "fir")
    assert (status, report["counts"]) == (0, {"fir": {"database": 1, "infisical": 1}})

    # What one check costs: one login and one listing; two queries in the database (the companies, the rows).
    with project.db() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    infisical.reset_counts()
    assert verify(project)[0] == 0
    assert infisical.request_counts() == {"POST /api/v1/auth/universal-auth/login": 1, "GET /api/v3/secrets/raw": 1}
    with project.db() as conn:
        statements = conn.execute(
            "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
            "current_database()) AND query NOT LIKE %s",
            ["%pg_stat_statements%"],
        ).fetchall()
    queries = sorted(q.split(" FROM ")[1].split()[0] for (q,) in statements if q not in ("BEGIN", "COMMIT"))
    assert queries == ['"companies"', '"company_secrets"'], statements

    # Each kind of drift planted in the real stores, read back through the CLI.
    def set_in_infisical(tenant: str, key: str, value: str) -> None:
        where = {"project_id": infisical.project_id, "secret_path": f"/tenants/{tenant}", "environment_slug": "dev"}
        if key == "EXTRA_KEY":
            client.secrets.create_secret_by_name(secret_name=key, secret_value=value, **where)
        else:
            client.secrets.update_secret_by_name(current_secret_name=key, secret_value=value, **where)

    set_in_infisical("alder", "STRIPE_SECRET_KEY", "fake-changed-by-hand-0002")  # a {from: config} key changed
    set_in_infisical("cedar", "LEGACY_API_KEY", "fake-changed-by-hand-0003")  # a source changed, the row did not
    set_in_infisical("dogwood", "EXTRA_KEY", "fake-extra-0001")  # undeclared
    with project.db() as conn:
        row = "secret_key = %s AND company_id = (SELECT id FROM companies WHERE subdomain = %s)"
        deleted, withdrawn, tampered = (
            ("LEGACY_API_KEY", "birch"),
            ("WEBHOOK_SECRET", "dogwood"),
            ("WEBHOOK_SECRET", "elm"),
        )
        conn.execute(sql.SQL("DELETE FROM company_secrets WHERE {}").format(sql.SQL(row)), deleted)
        conn.execute(sql.SQL("UPDATE company_secrets SET key_version = 2 WHERE {}").format(sql.SQL(row)), withdrawn)
        conn.execute(
            sql.SQL(
                "UPDATE company_secrets SET secret_value_encrypted = 'ab' || substr(secret_value_encrypted, 3) WHERE {}"
            ).format(sql.SQL(row)),
            tampered,
        )
    done = tenantctl(project, "verify", "--stack", "dev")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert [tuple(line.split(":")[0].split()) for line in lines[:-1]] == [
        ("alder", "both", "STRIPE_SECRET_KEY", "stores-disagree"),
        ("alder", "infisical", "STRIPE_SECRET_KEY", "different"),
        ("birch", "database", "LEGACY_API_KEY", "missing"),
        ("cedar", "both", "LEGACY_API_KEY", "stores-disagree"),
        ("cedar", "database", "LEGACY_API_KEY", "different"),
        ("dogwood", "database", "WEBHOOK_SECRET", "key-version"),
        ("dogwood", "infisical", "EXTRA_KEY", "undeclared"),
        ("elm", "database", "WEBHOOK_SECRET", "undecryptable"),
    ]
    assert lines[5] == (
        "dogwood  database  WEBHOOK_SECRET  key-version: the row is on key version 2, which the keyring "
        "(versions 1) lacks"
    )
    assert lines[-1] == (
        "drift on stack dev (environment dev) in 5 of 6 tenant(s) or folder(s) (alder, birch, cedar, dogwood, elm): "
        "1 missing, 1 undeclared, 2 different, 1 undecryptable, 1 key-version, 2 stores-disagree"
    )
    assert "verify: listing Infisical dev (one recursive request)" in done.stderr

    # Could not check: exit 2, one line, no traceback.
    env = {k: v for k, v in {**os.environ, **project.env}.items() if k != "DATABASE_URL"}
    done = tenantctl(project, "verify", "--stack", "dev", env=env)
    assert done.returncode == 2
    assert done.stdout.startswith("could not check stack dev (environment dev): DATABASE_URL is not set")
    assert "Traceback" not in done.stderr

    everything = "\n".join(project.outputs)
    for secrets in (*LEGACY.values(), *STRIPE.values()):
        for value in secrets.values():
            assert value not in everything
    for value in ("fake-changed-by-hand-0002", "fake-changed-by-hand-0003", "fake-extra-0001"):
        assert value not in everything

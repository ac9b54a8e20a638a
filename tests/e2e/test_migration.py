"""Strategy A to B through the real engine (issue 12), as declared steps: `tenantctl migrate` in two
batches, the second `pulumi up` killed half-way and run again, `tenantctl verify` proving every value in
both stores, and verify's reports through the CLI: drift planted in the real stores, a check that cannot
run, and what one check costs (Infisical requests, database statements)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pulumi import automation as auto

from tests.e2e.conftest import Infisical, Project, configure, sdk, start_infisical
from tests.e2e.steps import LIST, LOGIN, Check, Step, hand_made, pulumi, run_steps, tenantctl
from tests.e2e.test_security import kill_session

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
    """`pulumi up` killed while the batch's rows are being written: the engine is frozen (SIGSTOP) with their
    creates in flight, their transactions then commit, and the engine is killed before it records them (the
    worst moment to die; its plugin ends with it, components/lifetime.py)."""
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
            os.kill(engine.pid, signal.SIGSTOP)  # frozen: its plugin finishes the calls in flight, unrecorded
            lock.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [APPLY_LOCK])
            deadline = time.monotonic() + 60
            while {s for s, _ in rows(project)} < {*batch, "alder", "birch", "fir"}:
                assert time.monotonic() < deadline, "the providers did not finish the writes in flight"
                time.sleep(0.1)
            os.kill(engine.pid, signal.SIGKILL)
            engine.wait()
        finally:
            kill_session(engine.pid)  # the language host, in a process group of its own, outlives the engine


def migrated(*args: str, says: str, holds: tuple[str, ...] = ()) -> Callable[[Project], None]:
    """`tenantctl migrate <args>`: it reports ``says``, and tenants.yaml then holds each of ``holds``."""

    def run(project: Project) -> None:
        done = tenantctl(project, "migrate", *args)
        assert done.returncode == 0, done.stderr
        assert says in done.stderr, done.stderr
        text = (project.root / "tenants.yaml").read_text()
        assert [line for line in holds if line not in text] == [], text

    return run


def verified(*args: str, counts: dict[str, dict[str, int]] | None = None) -> Check:
    """`tenantctl verify <args>` finds nothing; each tenant of ``counts`` has that many keys in each store."""

    def check(project: Project, stack: auto.Stack) -> None:
        status, report = verify(project, *args)
        assert (status, report["findings"]) == (0, [])
        found = {tenant: report["counts"][tenant] for tenant in counts or {}}
        assert found == (counts or {}), report["counts"]

    return check


def legacy_folders(project: Project) -> None:
    for name, secrets in LEGACY.items():
        hand_made(project, f"/tenants/{name}", secrets)


def undeclared_before(project: Project, stack: auto.Stack) -> None:
    status, report = verify(project)
    assert status == 1
    assert findings(report) == {
        (name, "infisical", key, "undeclared") for name in NAMES for key in ("LEGACY_API_KEY", "WEBHOOK_SECRET")
    }


def creates_only(project: Project, stack: auto.Stack) -> None:
    code, plan, output = project.plan(stack)
    assert code == 0, output
    assert {r.action for r in plan} == {"create"}
    assert {r.owner for r in plan if r.store == "database"} == {"alder", "birch"}


def batch_two_killed(project: Project) -> None:
    migrated("--to", "database", "--batch", "5", says="3 tenant(s) now storage: both (cedar, dogwood, elm)")(project)
    up_killed_half_way(project, ("cedar", "dogwood", "elm"))


def operations_in_flight(project: Project, stack: auto.Stack) -> None:
    deployment = stack.export_stack().deployment or {}
    assert deployment.get("pending_operations"), "the killed run left operations in flight"


def cancelled(project: Project) -> None:
    """The file backend keeps the dead run's lock: `pulumi cancel` clears it (the runbook has `tenantctl recover`)."""
    cancel = pulumi(project, "cancel", "--yes", "--stack", "dev")
    assert "The currently running update for 'dev' has been canceled" in cancel.stdout, cancel.stderr


def every_row_once(project: Project, stack: auto.Stack) -> None:
    assert rows(project) == sorted(
        {(name, key) for name in NAMES for key in ("LEGACY_API_KEY", "WEBHOOK_SECRET")}
        | {(name, "STRIPE_SECRET_KEY") for name in ("alder", "birch", "fir")}
    )
    verified(counts={"elm": {"database": 2, "infisical": 2}})(project, stack)


def one_check_costs(project: Project, stack: auto.Stack) -> None:
    """One login and one listing; three queries in the database (the companies, the rows, their history)."""
    with project.db() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    project.infisical.reset_counts()
    assert verify(project)[0] == 0
    assert project.infisical.request_counts() == {LOGIN: 1, LIST: 1}
    with project.db() as conn:
        statements = conn.execute(
            "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
            "current_database()) AND query NOT LIKE %s",
            ["%pg_stat_statements%"],
        ).fetchall()
    queries = sorted(q.split(" FROM ")[1].split()[0] for (q,) in statements if q not in ("BEGIN", "COMMIT"))
    assert queries == ['"companies"', '"company_secret_versions"', '"company_secrets"'], statements


DRIFT = ("fake-changed-by-hand-0002", "fake-changed-by-hand-0003", "fake-extra-0001")


def plant_drift(project: Project) -> None:
    """Each kind of drift, in the real stores."""
    client = sdk(project.infisical)

    def set_in_infisical(tenant: str, key: str, value: str) -> None:
        where = {"project_id": project.infisical.project_id, "secret_path": f"/tenants/{tenant}"}
        if key == "EXTRA_KEY":
            client.secrets.create_secret_by_name(secret_name=key, secret_value=value, environment_slug="dev", **where)
        else:
            client.secrets.update_secret_by_name(
                current_secret_name=key, secret_value=value, environment_slug="dev", **where
            )

    set_in_infisical("alder", "STRIPE_SECRET_KEY", DRIFT[0])  # a {from: config} key changed
    set_in_infisical("cedar", "LEGACY_API_KEY", DRIFT[1])  # a source changed, the row did not
    set_in_infisical("dogwood", "EXTRA_KEY", DRIFT[2])  # undeclared
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


def drift_reported(project: Project, stack: auto.Stack) -> None:
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


def could_not_check(project: Project, stack: auto.Stack) -> None:
    done = tenantctl(project, "verify", "--stack", "dev", env={"DATABASE_URL": None})
    assert done.returncode == 2
    assert done.stdout.startswith("could not check stack dev (environment dev): DATABASE_URL is not set")
    assert "Traceback" not in done.stderr


def nothing_printed(project: Project, stack: auto.Stack) -> None:
    everything = "\n".join(project.outputs)
    values = [*(v for s in (*LEGACY.values(), *STRIPE.values()) for v in s.values()), *DRIFT]
    assert [value for value in values if value in everything] == []


STEPS = [
    Step(
        "the legacy folders, made by hand, are adopted: verify reports their keys undeclared",
        tenants=TENANTS,
        by_hand=legacy_folders,
        check=undeclared_before,
    ),
    Step(
        "batch 1, two tenants: the pull request's plan creates rows and deletes nothing; verify proves them",
        by_hand=migrated(
            "--to",
            "database",
            "--batch",
            "2",
            says="2 tenant(s) now storage: both (alder, birch); 4 key(s) now read {from: infisical}",
            holds=(
                "  - subdomain: alder                     # the first customer\n    storage: both\n",
                "      LEGACY_API_KEY: {from: infisical, path: /tenants/alder, key: LEGACY_API_KEY}\n",
            ),
        ),
        before=creates_only,
        check=verified(
            "--tenants",
            "alder,birch",
            counts={"alder": {"database": 3, "infisical": 3}, "birch": {"database": 3, "infisical": 3}},
        ),
    ),
    Step(
        "batch 2, three tenants: the up killed while their rows are written leaves operations in flight",
        by_hand=batch_two_killed,
        up=False,
        check=operations_in_flight,
    ),
    Step(
        "the lock cancelled, the next up converges: every row once, verify proves both stores",
        by_hand=cancelled,
        check=every_row_once,
    ),
    Step("a second run changes nothing", preview={}, up=False),
    Step(
        "the reverse: a tenant only in the database gains its folder, from its declared sources",
        by_hand=migrated("--to", "infisical", "--batch", "10", says="1 tenant(s) now storage: both (fir)"),
        check=verified("--tenants", "fir", counts={"fir": {"database": 1, "infisical": 1}}),
    ),
    Step("one check costs one Infisical listing and three queries", up=False, check=one_check_costs),
    Step("each kind of drift, planted, is reported by the CLI", by_hand=plant_drift, up=False, check=drift_reported),
    Step("without DATABASE_URL, could not check: exit 2, one line, no traceback", up=False, check=could_not_check),
    Step("no value was printed", up=False, check=nothing_printed),
]


@pytest.mark.long
def test_two_batches_one_up_killed_then_verify_proves_both_stores(project: Project, master_key: str) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config=STRIPE, master_keys={"v1": master_key})
    run_steps(project, stack, STEPS, "strategy A to B")

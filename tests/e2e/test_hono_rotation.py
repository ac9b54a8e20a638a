"""The example Hono app (examples/hono-api/) through a master key rotation made by the real engine: `pulumi up`
with `masterKeys.v2` and `activeKeyVersion: 2` (publish v2, re-encrypt every row in committed batches, move
MASTER_ENCRYPTION_KEY), then the `up` that withdraws v1, while four threads keep asking the app for each
tenant's STRIPE_SECRET_KEY. The app reads as the application role the stack manages (`appRole`), caches no
value and keeps the key folder's keyring for 5 minutes: 0 requests may fail and 0 may get another key.

tests/reader/test_hono_example.py runs the same rotation's steps without the engine, in seconds.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import Cluster
from tests.e2e.conftest import Project, configure
from tests.reader.node import Load, example_app

pytestmark = pytest.mark.e2e

TENANTS = 6  # x 1 key, re-encrypted one row per batch
VALUES = {f"tenant-{i:02d}": f"fake-stripe-tenant-{i:02d}-not-a-real-secret" for i in range(TENANTS)}


@dataclass(frozen=True)
class AppRole:
    name: str
    password: str
    dsn: str


@pytest.fixture
def app_role(project: Project, pg_cluster: Cluster) -> Iterator[AppRole]:
    """The application role the stack creates (`appRole`), named uniquely (roles are cluster-wide)."""
    name, password = f"hono_app_{secrets.token_hex(4)}", f"fake-app-password-{secrets.token_hex(8)}"
    dbname = str(conninfo_to_dict(project.dsn)["dbname"])
    yield AppRole(name, password, pg_cluster.dsn(user=name, password=password, dbname=dbname))
    with project.db() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def tenants_yaml() -> str:
    tenants = "\n".join(
        f"  - subdomain: {tenant}\n    secrets:\n      STRIPE_SECRET_KEY: {{value: {value}}}"
        for tenant, value in VALUES.items()
    )
    return f"version: 1\ndefaults:\n  storage: database\n  environments: [dev]\ntenants:\n{tenants}\n"


def test_a_rotation_by_pulumi_up_during_steady_requests_fails_none_and_serves_no_wrong_key(
    project: Project, app_role: AppRole, tmp_path: Path
) -> None:
    project.write_tenants(tenants_yaml())
    stack = project.stack("dev")
    configure(
        stack,
        secrets_config={},
        master_keys={"v1": secrets.token_hex(32)},
        appRole=app_role.name,
        rotationBatchSize="1",
    )
    stack.set_all_config({"tenant-secrets:appRolePassword": auto.ConfigValue(app_role.password, secret=True)})
    project.up(stack)

    env = {
        "DATABASE_URL": app_role.dsn,
        **project.infisical.env,
        "INFISICAL_ENVIRONMENT": "dev",
        "SECRET_CACHE_TTL_MS": "0",
    }
    with example_app(env, tmp_path / "app") as app, Load(app, VALUES) as load:
        stack.set_config(
            "tenant-secrets:masterKeys.v2", auto.ConfigValue(secrets.token_hex(32), secret=True), path=True
        )
        stack.set_config("tenant-secrets:activeKeyVersion", auto.ConfigValue("2"))
        project.up(stack)  # publish v2, re-encrypt, move MASTER_ENCRYPTION_KEY
        project.up(stack)  # withdraw v1
        during = dict(load.seen)
    with project.db() as conn:
        versions = conn.execute("SELECT DISTINCT key_version FROM company_secrets").fetchall()
    assert versions == [(2,)]
    assert (load.seen["failed"], load.seen["wrong"]) == (0, 0), load.problems[:10]
    assert during.get("ok", 0) >= 50, during
    log = app.log.read_text()
    assert not any(value in log for value in VALUES.values())
    print(f"rotation by pulumi up under load: {dict(load.seen)}")

"""The pull-request preview's database role: reads every row of the store, writes nothing.

The role is granted what scripts/preview-role.sql grants (which docs/guides/pull-requests.md runs); the check names
what a role could write, and rows that row-level security would hide from the preflight."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pulumi
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from components import pull_request
from dev.pg import Cluster
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants, connect, ensure_roles
from tenant_secrets.store.preflight import preview_role_problems
from tests.conftest import ACME, fake_value


@pytest.fixture
def preview_role(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring, pg_cluster: Cluster, pg_dsn: str
) -> Iterator[tuple[str, str]]:
    """A stored secret, the application's role (which turns row-level security on), and a login role
    with nothing granted yet: its name and DSN. Dropped afterwards (roles are cluster-wide)."""
    apply_tenants(db, settings, {ACME: TenantChange({"STRIPE_SECRET_KEY": fake_value("acme")})}, keyring)
    suffix = secrets.token_hex(4)
    app, role, password = f"tenant_app_{suffix}", f"tenant_preview_{suffix}", f"fake-preview-{secrets.token_hex(8)}"
    ensure_roles(db, settings, app_role=app, app_password=None)
    db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    yield role, pg_cluster.dsn(user=role, password=password, dbname=str(conninfo_to_dict(pg_dsn)["dbname"]))
    for name in (role, app):
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


PREVIEW_ROLE_SQL = Path(__file__).resolve().parents[2] / "scripts" / "preview-role.sql"


def grant_as_documented(db: psycopg.Connection[Any], role: str) -> None:
    """The grants of scripts/preview-role.sql, which the guides run, given to ``role`` (its CREATE ROLE left out:
    the fixture made the role under a name of its own, since roles are cluster-wide)."""
    text = "\n".join(line for line in PREVIEW_ROLE_SQL.read_text().splitlines() if not line.startswith("--"))
    statements = [statement.strip() for statement in text.split(";") if statement.strip()]
    assert statements[0].startswith("CREATE ROLE tenant_secrets_preview LOGIN"), statements[0]
    for statement in statements[1:]:
        db.execute(re.sub(r"\btenant_secrets_preview\b", role, statement))


def problems_of(dsn: str, settings: StoreSettings) -> list[str]:
    with connect(dsn) as conn:
        return preview_role_problems(conn, settings)


def test_the_documented_role_is_fit_for_a_preview(
    db: psycopg.Connection[Any], settings: StoreSettings, preview_role: tuple[str, str]
) -> None:
    role, dsn = preview_role
    grant_as_documented(db, role)
    assert problems_of(dsn, settings) == []


def test_the_deploy_role_is_refused(pg_dsn: str, db: psycopg.Connection[Any], settings: StoreSettings) -> None:
    owner = db.execute("SELECT current_user").fetchone()
    assert owner is not None
    [problem] = problems_of(pg_dsn, settings)
    assert problem.startswith(f"role {owner[0]!r} can write (is a superuser, has CREATEROLE, has CREATEDB, ")
    assert "owns company_secrets" in problem


def test_a_write_privilege_through_a_group_role_is_named(
    db: psycopg.Connection[Any], settings: StoreSettings, preview_role: tuple[str, str]
) -> None:
    role, dsn = preview_role
    grant_as_documented(db, role)
    group = sql.Identifier(f"{role}_writers")
    db.execute(sql.SQL("CREATE ROLE {}").format(group))
    db.execute(sql.SQL("GRANT UPDATE (secret_value_encrypted) ON company_secrets TO {}").format(group))
    db.execute(sql.SQL("GRANT DELETE ON company_secret_versions TO {}").format(group))
    db.execute(sql.SQL("GRANT {} TO {}").format(group, sql.Identifier(role)))
    try:
        assert problems_of(dsn, settings) == [
            f"role {role!r} can write (UPDATE on company_secrets, DELETE on company_secret_versions)"
        ]
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(group))
        db.execute(sql.SQL("DROP ROLE {}").format(group))


def test_rows_hidden_by_row_level_security_are_reported(
    db: psycopg.Connection[Any], settings: StoreSettings, preview_role: tuple[str, str]
) -> None:
    """Without the policy the role sees no row of company_secrets, and the preflight would count no key version."""
    role, dsn = preview_role
    grant_as_documented(db, role)
    db.execute("DROP POLICY tenant_secrets_preview_read ON company_secrets")
    with connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM company_secrets").fetchone() == (0,)
    assert problems_of(dsn, settings) == [
        f"row-level security hides rows of company_secrets from role {role!r}: "
        "add a policy FOR SELECT TO it USING (true)"
    ]


def stack(settings: StoreSettings) -> StackSettings:
    config = {
        "masterKeys": '{"v1": "' + os.urandom(32).hex() + '"}',
        "derivationKey": os.urandom(32).hex(),
        "createCompanies": "true",
    }
    loaded = StackSettings.load(config.get, stack="dev")
    assert loaded.store == settings
    return loaded


def test_a_pull_requests_run_previews_with_a_read_only_role_and_nothing_else(
    db: psycopg.Connection[Any],
    settings: StoreSettings,
    preview_role: tuple[str, str],
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The program's guard, as `TENANT_SECRETS_PULL_REQUEST=true` runs it: a preview with the documented
    role goes on; the deploy's role, or an update, stops with one line."""
    role, dsn = preview_role
    grant_as_documented(db, role)
    monkeypatch.setenv("TENANT_SECRETS_PULL_REQUEST", "true")
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    monkeypatch.setenv("DATABASE_URL", dsn)
    pull_request.guard(stack(settings))
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    with pytest.raises(pulumi.RunError, match="needs a read-only database role in DATABASE_URL: role "):
        pull_request.guard(stack(settings))
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    with pytest.raises(pulumi.RunError, match="a pull request's run only previews"):
        pull_request.guard(stack(settings))
    monkeypatch.delenv("TENANT_SECRETS_PULL_REQUEST")
    pull_request.guard(stack(settings))  # not a pull request's run: the deploy's `up`

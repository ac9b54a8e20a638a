"""`tenantctl verify`'s check against a real company_secrets table and a listed Infisical environment:
each kind of drift planted, each reported with tenant, store and key, never a value."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.store import TenantChange, apply_tenants, ensure_companies, ensure_roles, migrate
from tenant_secrets.tenantctl.drift import Finding, Report, render
from tenant_secrets.tenantctl.verify import CannotCheckError, check
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment

TENANTS = """\
version: 1
defaults: {storage: both, environments: [dev]}
platform:
  hono-api:
    secrets:
      EMAIL_FROM: {value: "Fake Sender <fake@example.test>"}
tenants:
  - subdomain: alpha
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      LEGACY_TOKEN: {from: infisical, path: /tenants/alpha, key: LEGACY_TOKEN}
  - subdomain: bravo
    storage: database
    secrets:
      SMTP_PASSWORD: {from: config}
      PORT: {value: "587"}
  - subdomain: charlie
    storage: infisical
    secrets:
      SENDGRID_API_KEY: {from: env, var: CHARLIE_SENDGRID}
      OLD_TOKEN: {decommission: true}
  - subdomain: gone
    decommission: true
"""
CONFIG = {
    "alpha": {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001"},
    "bravo": {"SMTP_PASSWORD": "fake-smtp-bravo-0001"},
}
ENVIRON = {"CHARLIE_SENDGRID": "fake-sendgrid-charlie-0001"}
ALPHA = "00000000-0000-4000-a000-0000000000a1"
BRAVO = "00000000-0000-4000-a000-0000000000b2"
GONE = "00000000-0000-4000-a000-0000000000c3"
KEY_V1 = os.urandom(32).hex()


class FakeInfisical:
    """One environment's folders as a recursive listing returns them; counts the listings."""

    def __init__(self) -> None:
        self.tree: dict[str, dict[str, str]] = {
            "/hono-api": {
                "EMAIL_FROM": "Fake Sender <fake@example.test>",
                "MASTER_ENCRYPTION_KEY": KEY_V1,  # the key folder's keyring: never declared, never reported
            },
            "/tenants/alpha": {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001", "LEGACY_TOKEN": "fake-legacy-alpha-0001"},
            "/tenants/charlie": {"SENDGRID_API_KEY": "fake-sendgrid-charlie-0001"},
            "/tenants/someone-else": {"NOT_OURS": "fake-not-ours"},  # not a managed folder
        }
        self.listings = 0

    def list_tree(self, environment: str, path: str = "/") -> dict[str, dict[str, str]]:
        assert (environment, path) == ("dev", "/")
        self.listings += 1
        return {folder: dict(secrets) for folder, secrets in self.tree.items()}


def config(path: tuple[str, ...]) -> str | None:
    node: Any = CONFIG
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, str) else None


@pytest.fixture
def settings() -> StackSettings:
    config = {"masterKeys": json.dumps({"v1": KEY_V1}), "createCompanies": "true", "retainOnDelete": "false"}
    config["envAllow"] = json.dumps(["CHARLIE_SENDGRID"])
    return StackSettings.load({**config, "derivationKey": os.urandom(32).hex()}.get, stack="dev")


@pytest.fixture
def stored(conn: psycopg.Connection[Any], settings: StackSettings) -> psycopg.Connection[Any]:
    """The table as `pulumi up` leaves it for TENANTS."""
    store = settings.store
    migrate(conn, store)
    ensure_companies(conn, store, {"alpha": (ALPHA, None), "bravo": (BRAVO, None), "gone": (GONE, None)})
    values = {
        ALPHA: {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001", "LEGACY_TOKEN": "fake-legacy-alpha-0001"},
        BRAVO: {"SMTP_PASSWORD": "fake-smtp-bravo-0001", "PORT": "587"},
    }
    apply_tenants(conn, store, {cid: TenantChange(v) for cid, v in values.items()}, settings.master_keys)
    return conn


def run(settings: StackSettings, infisical: FakeInfisical, conn: psycopg.Connection[Any] | None) -> Any:
    plan = plan_environment(parse_tenants(TENANTS), "dev")
    return check(
        plan,
        settings,
        stack="dev",
        config=config,
        environ=ENVIRON,
        infisical=infisical,
        database=conn,
        show_counts=True,
    )


def test_stores_as_declared_report_no_drift_with_counts(
    settings: StackSettings, stored: psycopg.Connection[Any]
) -> None:
    infisical = FakeInfisical()
    report = run(settings, infisical, stored)
    assert (report.status, report.findings) == (0, ())
    assert infisical.listings == 1
    assert dict(report.counts) == {
        "alpha": {"database": 2, "infisical": 2},
        "bravo": {"database": 2},
        "charlie": {"infisical": 1},
        "gone": {},
        "hono-api": {"infisical": 1},
    }
    text = render(report, "text")
    assert text.splitlines()[-1] == (
        "no drift on stack dev (environment dev): 5 tenant(s) or folder(s), 4 secret(s) in Infisical, "
        "4 row(s) in the database, every value as declared"
    )
    assert "alpha: 2 in infisical, 2 in database" in text
    assert "gone: in no store (decommissioned)" in text


def test_each_kind_of_drift_is_reported_by_tenant_store_and_key(
    settings: StackSettings, stored: psycopg.Connection[Any]
) -> None:
    infisical = FakeInfisical()
    # a changed Infisical value of a key the stack config declares
    infisical.tree["/tenants/alpha"]["STRIPE_SECRET_KEY"] = "fake-changed-by-hand-0002"
    # the source of alpha's LEGACY_TOKEN changed in Infisical: the declared value follows it, the table did not
    infisical.tree["/tenants/alpha"]["LEGACY_TOKEN"] = "fake-legacy-alpha-0002"
    # an undeclared key in a managed folder, and one in the platform folder
    infisical.tree["/tenants/charlie"]["HAND_MADE"] = "fake-hand-made"
    infisical.tree["/tenants/charlie"]["OLD_TOKEN"] = "fake-old-token"  # marked for deletion, not yet deleted
    infisical.tree["/hono-api"]["STRAY"] = "fake-stray"
    # a decommissioned tenant's folder still there
    infisical.tree["/tenants/gone"] = {"LEFT_OVER": "fake-left-over"}
    conn = stored
    # a tampered ciphertext: one hex digit of the ciphertext part changed
    (envelope,) = conn.execute(
        "SELECT secret_value_encrypted FROM company_secrets WHERE secret_key = 'SMTP_PASSWORD'"
    ).fetchone() or ("",)
    iv, ciphertext, tag = envelope.split(":")
    flipped = ("0" if ciphertext[0] != "0" else "1") + ciphertext[1:]
    conn.execute(
        "UPDATE company_secrets SET secret_value_encrypted = %s WHERE secret_key = 'SMTP_PASSWORD'",
        [f"{iv}:{flipped}:{tag}"],
    )
    # a row on a key version the keyring no longer has
    conn.execute("UPDATE company_secrets SET key_version = 7 WHERE secret_key = 'PORT'")
    # a deleted row, and an undeclared row; a row left by a decommissioned tenant
    conn.execute("DELETE FROM company_secrets WHERE company_id = %s AND secret_key = 'STRIPE_SECRET_KEY'", [ALPHA])
    extra = Keyring.from_hex({1: KEY_V1}, 1)
    apply_tenants(conn, settings.store, {BRAVO: TenantChange({"APP_WRITTEN": "fake-app-written"})}, extra)
    apply_tenants(conn, settings.store, {GONE: TenantChange({"LEFT_ROW": "fake-left-row"})}, extra)

    report = run(settings, infisical, conn)

    assert report.status == 1
    found = {(f.owner, f.store, f.key, f.kind) for f in report.findings}
    assert found == {
        ("alpha", "infisical", "STRIPE_SECRET_KEY", "different"),
        ("alpha", "database", "STRIPE_SECRET_KEY", "missing"),
        ("alpha", "database", "LEGACY_TOKEN", "different"),
        ("alpha", "both", "LEGACY_TOKEN", "stores-disagree"),
        ("bravo", "database", "SMTP_PASSWORD", "undecryptable"),
        ("bravo", "database", "PORT", "key-version"),
        ("bravo", "database", "APP_WRITTEN", "application-owned"),
        ("charlie", "infisical", "HAND_MADE", "undeclared"),
        ("charlie", "infisical", "OLD_TOKEN", "undeclared"),
        ("hono-api", "infisical", "STRAY", "undeclared"),
        ("gone", "infisical", "LEFT_OVER", "undeclared"),
        ("gone", "database", "LEFT_ROW", "undeclared"),
    }
    by_key = {(f.owner, f.key, f.kind): f for f in report.findings}
    assert by_key["charlie", "OLD_TOKEN", "undeclared"].detail == "marked {decommission: true}, still in the store"
    assert by_key["bravo", "PORT", "key-version"].detail == (
        "the row is on key version 7, which the keyring (versions 1) lacks"
    )
    outputs = [render(report, fmt) for fmt in ("text", "markdown", "json")]
    text, markdown, document = outputs
    assert "bravo  database  SMTP_PASSWORD  undecryptable:" in text
    assert "| alpha | both | `LEGACY_TOKEN` | **stores-disagree** |" in markdown
    assert json.loads(document)["status"] == "drift"
    assert text.splitlines()[-1] == (
        "drift on stack dev (environment dev) in 5 of 5 tenant(s) or folder(s) "
        "(alpha, bravo, charlie, gone, hono-api): "
        "1 missing, 5 undeclared, 2 different, 1 undecryptable, 1 key-version, 1 stores-disagree; "
        "1 application-owned row(s), not drift"
    )
    planted = [v for folder in infisical.tree.values() for v in folder.values()]
    planted += ["fake-app-written", "fake-left-row", *ENVIRON.values(), *CONFIG["alpha"].values(), KEY_V1]
    for output in outputs:
        for value in planted:
            assert value not in output


def test_a_ciphertext_swapped_between_two_tenants_rows_is_named_in_both(
    settings: StackSettings, stored: psycopg.Connection[Any]
) -> None:
    """Each row still decrypts (one key encrypts every row), but to the other tenant's value: only the
    binding tells (issue 13); neither value is compared or shown."""
    stored.execute(
        "UPDATE company_secrets AS a SET secret_value_encrypted = b.secret_value_encrypted"
        " FROM company_secrets AS b WHERE a.id <> b.id"
        " AND (a.company_id, a.secret_key, b.company_id, b.secret_key) IN"
        " ((%s, 'STRIPE_SECRET_KEY', %s, 'SMTP_PASSWORD'), (%s, 'SMTP_PASSWORD', %s, 'STRIPE_SECRET_KEY'))",
        [ALPHA, BRAVO, BRAVO, ALPHA],
    )
    report = run(settings, FakeInfisical(), stored)
    assert report.status == 1
    unbound = {(f.owner, f.store, f.key): f.detail for f in report.findings if f.kind == "unbound"}
    assert set(unbound) == {("alpha", "database", "STRIPE_SECRET_KEY"), ("bravo", "database", "SMTP_PASSWORD")}
    assert all("swapped" in detail for detail in unbound.values())
    text = render(report, "text")
    assert "fake-stripe-alpha-0001" not in text and "fake-smtp-bravo-0001" not in text


def test_a_missing_company_an_infisical_source_gone_and_what_cannot_be_checked(
    settings: StackSettings, conn: psycopg.Connection[Any]
) -> None:
    migrate(conn, settings.store)  # no company, no row
    infisical = FakeInfisical()
    del infisical.tree["/tenants/alpha"]["LEGACY_TOKEN"]
    report = run(settings, infisical, conn)
    assert {(f.owner, f.store, f.key, f.kind, f.detail) for f in report.findings if f.owner != "charlie"} >= {
        (
            "alpha",
            "infisical",
            "LEGACY_TOKEN",
            "missing",
            "its source Infisical dev:/tenants/alpha/LEGACY_TOKEN does not exist",
        ),
        ("bravo", "database", "*", "missing", "no company with subdomain 'bravo' in 'companies'"),
    }
    assert not [f for f in report.findings if f.key == "LEGACY_TOKEN" and f.store == "database"]

    with pytest.raises(CannotCheckError, match="DATABASE_URL is not set"):
        run(settings, FakeInfisical(), None)
    ENVIRON.pop("CHARLIE_SENDGRID")
    try:
        with pytest.raises(CannotCheckError, match=r"charlie.SENDGRID_API_KEY: no value at environment variable"):
            run(settings, FakeInfisical(), conn)
    finally:
        ENVIRON["CHARLIE_SENDGRID"] = "fake-sendgrid-charlie-0001"


def test_a_report_names_a_few_owners_and_counts_the_rest() -> None:
    findings = tuple(Finding(f"t{i:02}", "database", "KEY", "missing", "declared, not in the store") for i in range(40))
    report = Report("prod", "prod", findings, {f"t{i:02}": {"database": 0} for i in range(40)})
    assert report.summary() == (
        "drift on stack prod (environment prod) in 40 of 40 tenant(s) or folder(s) "
        "(t00, t01, t02, t03, t04 and 35 more): 40 missing"
    )
    assert Report("prod", "prod", error="DATABASE_URL is not set").status == 2


def test_a_right_granted_by_hand_to_the_applications_roles_is_drift_naming_the_role(
    stored: psycopg.Connection[Any],
) -> None:
    suffix = secrets.token_hex(4)
    app, writer = f"verify_app_{suffix}", f"verify_writer_{suffix}"
    config = {"masterKeys": json.dumps({"v1": KEY_V1}), "createCompanies": "true", "retainOnDelete": "false"}
    config |= {"envAllow": json.dumps(["CHARLIE_SENDGRID"]), "appRole": app, "appWriterRole": writer}
    settings = StackSettings.load({**config, "derivationKey": os.urandom(32).hex()}.get, stack="dev")
    ensure_roles(stored, settings.store, app_role=app, app_password=None, writer_role=writer, writer_password=None)
    try:
        assert run(settings, FakeInfisical(), stored).status == 0  # exactly the rights `up` gives

        stored.execute(sql.SQL("GRANT UPDATE ON company_secrets TO {}").format(sql.Identifier(app)))
        stored.execute(sql.SQL("GRANT DELETE ON company_secrets TO {}").format(sql.Identifier(writer)))
        report = run(settings, FakeInfisical(), stored)
        assert report.status == 1
        roles = [f for f in report.findings if f.kind == "role-rights"]
        assert {(f.owner, f.store, f.key) for f in roles} == {
            (app, "database", "appRole"),
            (writer, "database", "appWriterRole"),
        }
        assert "UPDATE" in next(f.detail for f in roles if f.owner == app)
        assert "DELETE" in next(f.detail for f in roles if f.owner == writer)
        assert report.summary() == f"drift on stack dev (environment dev) in role(s) {app}, {writer}: 2 role-rights"
        assert "*role-rights*: the application's role can do more than its job" in render(report, "markdown")
    finally:
        for role in (app, writer):
            stored.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            stored.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

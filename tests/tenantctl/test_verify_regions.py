"""`tenantctl verify` on a region's stack reports residency: a folder or rows of a tenant whose regions exclude
the stack's region, one line per tenant and store, besides drift (docs/decisions/0054-regions.md)."""

from __future__ import annotations

from typing import Any

import psycopg

from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.store import TenantChange, apply_tenants, ensure_companies, migrate
from tenant_secrets.tenantctl.drift import render
from tenant_secrets.tenantctl.verify import check
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment
from tests.tenantctl.test_verify import ALPHA, BRAVO, FakeInfisical, settings  # noqa: F401 - the fixture

TENANTS = """\
version: 1
regions: [eu, us]
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: alpha
    regions: [eu]
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: bravo
    regions: [eu, us]
    secrets:
      PORT: {value: "587"}
"""


def verify_us(stack: StackSettings, infisical: FakeInfisical, conn: psycopg.Connection[Any]) -> Any:
    plan = plan_environment(parse_tenants(TENANTS), "dev", "us")
    return check(plan, stack, stack="dev-us", config=lambda _: None, environ={}, infisical=infisical, database=conn)


def test_a_planted_out_of_region_folder_and_rows_are_reported(
    settings: StackSettings,  # noqa: F811 - the fixture
    conn: psycopg.Connection[Any],
) -> None:
    store = settings.store
    migrate(conn, store)
    ensure_companies(conn, store, {"alpha": (ALPHA, None), "bravo": (BRAVO, None)})
    apply_tenants(conn, store, {BRAVO: TenantChange({"PORT": "587"})}, settings.master_keys)
    infisical = FakeInfisical()
    infisical.tree = {"/tenants/bravo": {"PORT": "587"}}
    assert verify_us(settings, infisical, conn).status == 0  # alpha lives in eu only, and nothing of it is here

    apply_tenants(conn, store, {ALPHA: TenantChange({"STRIPE_SECRET_KEY": "fake-planted-alpha"})}, settings.master_keys)
    infisical.tree["/tenants/alpha"] = {"STRIPE_SECRET_KEY": "fake-planted-alpha"}
    report = verify_us(settings, infisical, conn)
    assert report.status == 1
    assert [f.line() for f in report.findings] == [
        "alpha  database  *  out-of-region: tenant alpha may live in eu only, and this stack writes region us: "
        f"delete its 1 row(s) of company_secrets (company {ALPHA}) from this region's database; no stack of this "
        "region declares them",
        "alpha  infisical  *  out-of-region: tenant alpha may live in eu only, and this stack writes region us: "
        "delete /tenants/alpha (1 secret(s)) from this region's Infisical; no stack of this region declares it",
    ]
    assert (
        render(report, "text")
        .splitlines()[-1]
        .startswith("drift on stack dev-us (environment dev) in 1 of 1 tenant(s) or folder(s) (alpha): 2 out-of-region")
    )
    assert "fake-planted-alpha" not in render(report, "json")

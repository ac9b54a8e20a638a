"""Running the Node.js reader package (packages/tenant-secrets-reader/) and its example app from pytest.

`make setup` installs both from their lockfiles and compiles them (scripts/setup.sh); these helpers fail
with that instruction when the compiled files are missing, since what they prove is the point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import TenantChange, apply_tenants
from tests.conftest import ACME, GLOBEX
from tests.reader.conftest import ENVIRONMENT, Services, publish

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "packages" / "tenant-secrets-reader"
EXAMPLE = REPO / "examples" / "hono-api"

VALUES = {
    "acme": {
        "STRIPE_SECRET_KEY": "fake-acme-stripe-not-a-real-secret",
        "SENDGRID_API_KEY": "fake-acme-sendgrid-not-a-real-secret",
        "WEBHOOK_SIGNING_SECRET": "fake-acme-webhook-ünïcödé-not-a-real-secret",
    },
    "globex": {
        "STRIPE_SECRET_KEY": "fake-globex-stripe-not-a-real-secret",
        "WEBHOOK_SIGNING_SECRET": "fake-globex-webhook-not-a-real-secret",
    },
}
# In Infisical only: a key of a company that has no row for it, and a tenant with no company row.
INFISICAL_ONLY = {
    "acme": {"ONLY_IN_INFISICAL": "fake-acme-only-in-infisical-not-a-real-secret"},
    "initech": {"STRIPE_SECRET_KEY": "fake-initech-stripe-not-a-real-secret"},
}
COMPANIES = {"acme": ACME, "globex": GLOBEX}


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed: the Node.js reader cannot be tested (install Node.js 20)")
    return found


def require_built(folder: Path, entry: str) -> Path:
    built = folder / entry
    if not built.exists():
        pytest.fail(
            f"{built.relative_to(REPO)} is missing: run `make setup`, which installs and compiles "
            f"{folder.relative_to(REPO)}"
        )
    return built


@dataclass(frozen=True)
class World:
    """What the Node tests and the example app are pointed at; written as JSON for them."""

    services: Services
    keyring: Keyring

    def as_json(self) -> dict[str, Any]:
        db, creds = self.services.database, self.services.credentials
        return {
            "appDsn": db.app_dsn,
            "ownerDsn": self.owner_dsn(),
            "provisionerDsn": db.provisioner_dsn,
            "infisical": {
                "siteUrl": creds.site_url,
                "clientId": creds.client_id,
                "clientSecret": creds.client_secret,
                "projectId": creds.project_id,
            },
            "environment": ENVIRONMENT,
            "companies": COMPANIES,
            "values": VALUES,
            "infisicalOnly": INFISICAL_ONLY,
            "masterKeys": {str(v): k for v, k in self.services.master_keys.items()},
        }

    def owner_dsn(self) -> str:
        info = self.services.database.owner.info
        return f"postgresql://{info.user}:{info.password}@{info.host}:{info.port}/{info.dbname}"

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.as_json()), encoding="utf-8")
        return path

    def app_env(self) -> dict[str, str]:
        """The example app's environment: the application role and the reader's Infisical identity."""
        creds = self.services.credentials
        return {
            "DATABASE_URL": self.services.database.app_dsn,
            "INFISICAL_SITE_URL": creds.site_url,
            "INFISICAL_CLIENT_ID": creds.client_id,
            "INFISICAL_CLIENT_SECRET": creds.client_secret,
            "INFISICAL_PROJECT_ID": creds.project_id,
            "INFISICAL_ENVIRONMENT": ENVIRONMENT,
        }


def arrange(services: Services) -> World:
    """Rows for acme and globex written by the provisioning code on key v1, the key folder publishing v1,
    and the Infisical-only values."""
    db = services.database
    keyring = publish(services.infisical, services.master_keys, [1], 1)
    apply_tenants(db.owner, db.settings, {COMPANIES[t]: TenantChange(v) for t, v in VALUES.items()}, keyring)
    for tenant, values in INFISICAL_ONLY.items():
        services.infisical.apply_secrets(ENVIRONMENT, f"/tenants/{tenant}", upsert=values)
    return World(services, keyring)


def tidy(services: Services) -> None:
    """What the `infisical` fixture does not remove."""
    services.infisical.delete_folder(ENVIRONMENT, "/tenants/initech")


def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=timeout
    )


__all__ = ["EXAMPLE", "INFISICAL_ONLY", "PACKAGE", "VALUES", "World", "arrange", "node", "tidy"]

"""Running the Node.js reader package (packages/tenant-secrets-reader/) and its example app from pytest.

`make setup` installs both from their lockfiles and compiles them (scripts/setup.sh); these helpers fail
with that instruction when the compiled files are missing, since what they prove is the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

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
        """The world as JSON, readable by this user only: it holds the test cluster's connections."""
        path.touch(mode=0o600)
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


ROUTE = "/api/payments/create"


def fingerprint(value: str) -> str:
    """What the example app answers for the key it used (never the key)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass
class App:
    """The example app, running: its address and its log (standard error)."""

    url: str
    log: Path
    session: requests.Session = field(default_factory=requests.Session)

    def pay(self, tenant: str) -> requests.Response:
        return self.session.post(self.url + ROUTE, headers={"Host": f"{tenant}.app.test"}, timeout=10)


@contextmanager
def example_app(env: Mapping[str, str], directory: Path) -> Iterator[App]:
    """Run examples/hono-api (compiled by `make setup`) on a free port with ``env``; stopped afterwards."""
    server = require_built(EXAMPLE, "dist/server.js")
    directory.mkdir(parents=True, exist_ok=True)
    out, log = directory / "app.out", directory / "app.log"
    with out.open("wb") as stdout, log.open("wb") as stderr:
        process = subprocess.Popen(
            [node(), str(server)],
            cwd=EXAMPLE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": "0", "ACCESS_LOG": "table", **env},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on " not in out.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the example app did not start: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield App(out.read_text().split("listening on ", 1)[1].split()[0], log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Load:
    """Steady requests from a few threads until stopped (bounded at 2 minutes whatever happens): each reply
    counted as ok, failed (not a 200) or wrong (another key's fingerprint)."""

    app: App
    expected: Mapping[str, str]
    seen: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        session = requests.Session()
        tenants = sorted(self.expected)
        i = 0
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            tenant = tenants[i % len(tenants)]
            i += 1
            try:
                reply = session.post(self.app.url + ROUTE, headers={"Host": f"{tenant}.app.test"}, timeout=10)
                body: Any = reply.json()
            except (requests.RequestException, ValueError) as error:
                self.seen["failed"] += 1
                self.problems.append(f"{tenant}: {type(error).__name__}")
                continue
            if reply.status_code != 200:
                self.seen["failed"] += 1
                self.problems.append(f"{tenant}: {reply.status_code} {body}")
            elif body.get("stripeKeyFingerprint") != fingerprint(self.expected[tenant]):
                self.seen["wrong"] += 1
            else:
                self.seen["ok"] += 1

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._run) for _ in range(4)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


__all__ = [
    "EXAMPLE",
    "INFISICAL_ONLY",
    "PACKAGE",
    "VALUES",
    "App",
    "Load",
    "World",
    "arrange",
    "example_app",
    "fingerprint",
    "node",
    "tidy",
]

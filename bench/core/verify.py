"""What one `tenantctl verify` costs at scale (docs/decisions/0024), against the local services.

    python -m bench.core.verify [--sizes 1000,5000]

For each size: N tenants in both stores (3 keys each, one of them `{from: infisical}` from its own
folder), then the check itself (`tenant_secrets.tenantctl.verify.check`, without `pulumi config`) with the real
Infisical client and PostgreSQL, and, for comparison, the same folders listed one request each, as
`pulumi refresh` reads them. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from dev.pg import Cluster
from infisical_server.testing import sample_config, start_server
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.secret.values import Resolver
from tenant_secrets.stack.settings import StackSettings
from tenant_secrets.store import TenantChange, apply_tenants, connect, ensure_companies, migrate
from tenant_secrets.tenantctl.verify import check
from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.model import plan_environment


class _Listed:
    """A listing already made, so the check's own work can be timed apart from the request."""

    def __init__(self, tree: dict[str, dict[str, str]]) -> None:
        self.tree = tree

    def list_tree(self, _environment: str, _path: str = "/") -> dict[str, dict[str, str]]:
        return self.tree


def _tenants(n: int) -> str:
    lines = ["version: 1", "defaults: {storage: both, environments: [dev]}", "tenants:"]
    for i in range(n):
        name = f"t{i:05}"
        lines += [
            f"  - subdomain: {name}",
            "    secrets:",
            f"      LEGACY_KEY: {{from: infisical, path: /tenants/{name}, key: LEGACY_KEY}}",
            "      WEBHOOK_SECRET: {generate: {bytes: 32, encoding: hex}}",
            "      STRIPE_SECRET_KEY: {from: config}",
        ]
    return "\n".join(lines) + "\n"


def run(n: int, root: Path) -> None:
    stack_config = {
        "masterKeys": json.dumps({"v1": os.urandom(32).hex()}),
        "derivationKey": os.urandom(32).hex(),
        "createCompanies": "true",
    }
    settings = StackSettings.load(stack_config.get, stack="dev")
    plan = plan_environment(parse_tenants(_tenants(n)), "dev")
    config = {t.subdomain: {"STRIPE_SECRET_KEY": f"fake-stripe-{t.subdomain}"} for t in plan.tenants}

    def lookup(path: tuple[str, ...]) -> str | None:
        return config.get(path[0], {}).get(path[-1])

    legacy = {f"/tenants/{t.subdomain}": {"LEGACY_KEY": f"fake-legacy-{t.subdomain}"} for t in plan.tenants}
    resolver = Resolver("dev", settings.derivation_key, lookup, {}, lambda _e, p, k: legacy[p].get(k))
    values = {t.subdomain: {k: resolver.resolve(t.subdomain, k, s) for k, s in t.secrets.items()} for t in plan.tenants}

    server = start_server(root / f"infisical-{n}", sample_config())
    cluster = Cluster(root / f"pg-{n}")
    cluster.ensure_started()
    try:
        ident = server.identity()
        client = InfisicalClient(
            InfisicalCredentials(server.url, ident["client_id"], ident["client_secret"], ident["project"])
        )
        for owner, held in values.items():
            client.apply_secrets("dev", f"/tenants/{owner}", upsert=held, folder_is_new=True)
        with connect(cluster.dsn(dbname="postgres")) as conn:
            migrate(conn, settings.store)
            ids = ensure_companies(conn, settings.store, dict.fromkeys(values, (None, None)))
            changes = {ids[owner]: TenantChange(held) for owner, held in values.items()}
            apply_tenants(conn, settings.store, changes, settings.master_keys)
            server.reset_requests()
            started = time.perf_counter()
            report = check(plan, settings, stack="bench", config=lookup, environ={}, infisical=client, database=conn)
            took = time.perf_counter() - started
            requests = server.request_counts()
            listed = _Listed(client.list_tree("dev"))
            started = time.perf_counter()
            check(plan, settings, stack="bench", config=lookup, environ={}, infisical=listed, database=conn)
            compared = time.perf_counter() - started
        print(f"{n} tenants: {report.summary()}")
        print(f"  verify's check: {took:.2f} s, Infisical requests {requests}")
        print(f"  of which resolving, the 2 queries and comparing (the listing already in hand): {compared:.2f} s")
        server.reset_requests()
        started = time.perf_counter()
        for owner in values:
            client.list_secrets("dev", f"/tenants/{owner}")
        print(f"  one listing per folder instead: {time.perf_counter() - started:.2f} s, {server.request_counts()}")
    finally:
        server.stop()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated numbers of tenants")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verify-scale-") as root:
        for size in (int(s) for s in args.sizes.split(",")):
            run(size, Path(root))


if __name__ == "__main__":
    main()

"""The naive design's Pulumi program: the same tenants.yaml and values, one resource per secret.

It reads the file and resolves the values with the project's pure core (so both designs write the
same values), then declares per tenant a `NaiveTenant` (folder and company) and per key a
`NaiveSecret` that depends on it. Stack config, under this project's namespace: `environment`,
`derivationKey`, `masterKeys.v<n>` and `activeKeyVersion`, as the project's program reads them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from bench.naive.providers import NaiveSecretProvider, NaiveTenantProvider
from tenant_secrets.secret.values import Resolver
from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import plan_environment


class NaiveTenant(Resource, module="naive", name="Tenant"):
    company_id: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any]) -> None:
        super().__init__(NaiveTenantProvider(), name, {**props, "company_id": None})


class NaiveSecret(Resource, module="naive", name="Secret"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(NaiveSecretProvider(), name, props, opts)


def _no_infisical(_env: str, _path: str, _key: str) -> str | None:
    raise RuntimeError("the benchmark's tenants.yaml has no {from: infisical} source")


def run() -> None:
    config = pulumi.Config()
    environment = config.require("environment")
    keys = config.require_object("masterKeys")
    keyring = {str(version).lstrip("v"): str(value) for version, value in keys.items()}
    key_version = config.get_int("activeKeyVersion") or max(int(v) for v in keyring)
    resolver = Resolver(
        environment=environment,
        derivation_key=bytes.fromhex(config.require("derivationKey")),
        config=lambda _path: None,
        environ=os.environ,
        infisical=_no_infisical,
    )
    plan = plan_environment(load_tenants_file(Path("tenants.yaml")), environment)
    secret_keyring = pulumi.Output.secret(keyring)
    for tenant in plan.tenants:
        path = f"/tenants/{tenant.subdomain}"
        owner = NaiveTenant(
            f"{tenant.subdomain}-tenant",
            {"owner": tenant.subdomain, "name": tenant.name, "environment": environment, "path": path},
        )
        for key, source in sorted(tenant.secrets.items()):
            NaiveSecret(
                f"{tenant.subdomain}-{key}",
                {
                    "company_id": owner.company_id,
                    "environment": environment,
                    "path": path,
                    "key": key,
                    "value": pulumi.Output.secret(resolver.resolve(tenant.subdomain, key, source)),
                    "keyring": secret_keyring,
                    "key_version": key_version,
                },
                pulumi.ResourceOptions(depends_on=[owner], additional_secret_outputs=["keyring"]),
            )


async def main() -> None:
    """The project's entry point (components/program.py `main`), for comparing designs on the same footing:
    `--engine-env BENCH_NAIVE_ENTRY=async` uses it; by default the naive program is the usual `run()`."""
    run()
    await asyncio.sleep(0)

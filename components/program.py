"""The Pulumi program: tenants.yaml and the stack's config in, components out.

Everything that can be wrong with the input is found before the first resource is declared, so a
bad tenants.yaml or a missing value fails `pulumi preview` with file, line and field and nothing is
touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pulumi

from components.resources import (
    DatabaseSecrets,
    DatabaseSecretsArgs,
    Folder,
    InfisicalSecrets,
    InfisicalSecretsArgs,
    Registry,
)
from tenant_secrets import store
from tenant_secrets.envelope import MasterKeyError, parse_master_key
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.loader import load_tenants_file
from tenant_secrets.model import EnvironmentPlan, TenantsFileError, plan_environment
from tenant_secrets.validation import check_sources
from tenant_secrets.values import Resolver, UnresolvedValueError, fingerprint_key

NAMESPACE = "tenant-secrets"


def _fail(message: str) -> pulumi.RunError:
    return pulumi.RunError(message)


@dataclass(frozen=True)
class StackSettings:
    """The stack's configuration (Pulumi.<stack>.yaml), read and checked once."""

    environment: str
    tenants_file: Path
    keyring: dict[str, str]
    key_version: int
    derivation_key: bytes
    table_prefix: str
    create_companies: bool
    history_retention: int
    retain_on_delete: bool

    @classmethod
    def load(cls) -> StackSettings:
        config = pulumi.Config(NAMESPACE)
        keys = config.get_object("masterKeys") or {}
        if not isinstance(keys, dict) or not keys:
            raise _fail(
                f"{NAMESPACE}:masterKeys is not set: the database store needs at least one master key; "
                f"set it with `pulumi config set --secret --path 'masterKeys.v1' $(openssl rand -hex 32)`"
            )
        keyring = {str(version).lstrip("v"): str(value) for version, value in keys.items()}
        try:
            for version, value in keyring.items():
                parse_master_key(value, field=f"{NAMESPACE}:masterKeys.v{version}")
        except MasterKeyError as err:
            raise _fail(str(err)) from None
        key_version = config.get_int("activeKeyVersion") or max(int(v) for v in keyring)
        if str(key_version) not in keyring:
            raise _fail(
                f"{NAMESPACE}:activeKeyVersion is {key_version}, but masterKeys has no v{key_version}; "
                f"add it with `pulumi config set --secret --path 'masterKeys.v{key_version}' <64 hex chars>`"
            )
        derivation = config.get("derivationKey")
        try:
            derivation_key = bytes.fromhex(derivation or "")
        except ValueError:
            derivation_key = b""
        if len(derivation_key) < 32:
            raise _fail(
                f"{NAMESPACE}:derivationKey must be a secret of 64 hex chars (it derives generated values and "
                f"fingerprints); set it with `pulumi config set --secret derivationKey $(openssl rand -hex 32)`"
            )
        return cls(
            environment=config.get("environment") or pulumi.get_stack(),
            tenants_file=Path(config.get("tenantsFile") or "tenants.yaml"),
            keyring=keyring,
            key_version=key_version,
            derivation_key=derivation_key,
            table_prefix=config.get("tablePrefix") or "",
            create_companies=config.get_bool("createCompanies") or False,
            history_retention=config.get_int("historyRetention") or 10,
            retain_on_delete=config.get_bool("retainOnDelete") is not False,
        )


@cache
def _secrets_config() -> dict[str, Any]:
    """The stack's structured `secrets` config object (decrypted in memory, never printed)."""
    raw = pulumi.Config(NAMESPACE).get("secrets")
    return json.loads(raw) if raw else {}


def _config_lookup(path: tuple[str, ...]) -> str | None:
    node: Any = _secrets_config()
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if node is None or isinstance(node, dict | list) else str(node)


@cache
def _infisical_client() -> InfisicalClient:
    return InfisicalClient(InfisicalCredentials.from_env())


def load_plan(settings: StackSettings) -> EnvironmentPlan:
    """tenants.yaml for this stack's environment, with every value source checked."""
    file = str(settings.tenants_file)
    try:
        plan = plan_environment(load_tenants_file(settings.tenants_file), settings.environment)
    except TenantsFileError as err:
        raise _fail(f"{file} is not valid:\n{err}") from None
    issues = check_sources(plan, file, config_has=lambda p: _config_lookup(p) is not None, environ=os.environ)
    if issues:
        raise _fail(
            f"{file}: some secrets have no value for stack {pulumi.get_stack()}:\n" + "\n".join(map(str, issues))
        )
    return plan


def run() -> None:
    settings = StackSettings.load()
    plan = load_plan(settings)
    resolver = Resolver(
        environment=settings.environment,
        derivation_key=settings.derivation_key,
        config=_config_lookup,
        environ=os.environ,
        infisical=lambda env, path, key: _infisical_client().get_secret(env, path, key),
    )

    def resolve(owner: str, secrets: Any) -> dict[str, str]:
        try:
            return {key: resolver.resolve(owner, key, source) for key, source in secrets.items()}
        except UnresolvedValueError as err:
            raise _fail(str(err)) from None

    infisical_folders: list[Folder] = []
    database_tenants: list[Folder] = []
    for folder in plan.platform:
        infisical_folders.append(
            Folder(
                owner=folder.name,
                path=folder.path,
                values=resolve(folder.name, folder.secrets),
                decommissioned=sorted(folder.decommissioned_keys),
                decommission=False,
            )
        )
    for tenant in plan.tenants:
        entry = Folder(
            owner=tenant.subdomain,
            path=f"/tenants/{tenant.subdomain}",
            company_id=tenant.company_id,
            company_name=tenant.name,
            values={} if tenant.decommission else resolve(tenant.subdomain, tenant.secrets),
            decommissioned=sorted(tenant.decommissioned_keys),
            decommission=tenant.decommission,
        )
        if "infisical" in tenant.storage:
            infisical_folders.append(entry)
        if "database" in tenant.storage:
            database_tenants.append(entry)

    retain = pulumi.ResourceOptions(retain_on_delete=settings.retain_on_delete)
    Registry(
        "registry",
        owners=[t.subdomain for t in plan.tenants if not t.decommission] + [f.name for f in plan.platform],
        decommissioned=[t.subdomain for t in plan.tenants if t.decommission],
    )
    fp_key = fingerprint_key(settings.derivation_key).hex()
    if infisical_folders:
        infisical = InfisicalSecrets(
            "infisical",
            InfisicalSecretsArgs(environment=settings.environment, folders=infisical_folders, fingerprint_key=fp_key),
            opts=retain,
        )
        pulumi.export("infisical_fingerprints", infisical.fingerprints)
    if database_tenants:
        database = DatabaseSecrets(
            "database",
            DatabaseSecretsArgs(
                tenants=database_tenants,
                schema={
                    "schema_version": store.SCHEMA_VERSION,
                    "table_prefix": settings.table_prefix,
                    "create_companies": settings.create_companies,
                    "history_retention": settings.history_retention,
                },
                keyring=settings.keyring,
                key_version=settings.key_version,
                fingerprint_key=fp_key,
            ),
            opts=retain,
        )
        pulumi.export("database_fingerprints", database.fingerprints)

    pulumi.export("environment", settings.environment)
    pulumi.export(
        "tenants",
        {
            t.subdomain: {
                "storage": sorted(t.storage),
                "keys": sorted(t.secrets),
                "decommission": t.decommission,
            }
            for t in plan.tenants
        },
    )

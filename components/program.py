"""The Pulumi program: tenants.yaml and the stack's config in, components out.

Everything that can be wrong with the input is found before the first resource is declared, so a
bad tenants.yaml or a missing value fails `pulumi preview` with file, line and field and nothing is
touched.
"""

from __future__ import annotations

import json
import os
import re
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
from tenant_secrets.envelope import Keyring, MasterKeyError, parse_master_key
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.loader import load_tenants_file
from tenant_secrets.model import EnvironmentPlan, TenantPlan, TenantsFileError, plan_environment
from tenant_secrets.store.preflight import Inspection, PreflightError, TenantRef, inspect
from tenant_secrets.validation import check_sources
from tenant_secrets.values import Resolver, UnresolvedValueError, fingerprint_key

NAMESPACE = "tenant-secrets"
_KEY_VERSION = re.compile(r"v?[1-9][0-9]*")


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
    app_role: str | None
    provisioner_role: str | None
    rotation_batch_size: int

    @property
    def store(self) -> store.StoreSettings:
        return store.StoreSettings(
            table_prefix=self.table_prefix,
            history_retention=self.history_retention,
            create_companies_table=self.create_companies,
        )

    @classmethod
    def load(cls) -> StackSettings:
        config = pulumi.Config(NAMESPACE)
        keys = config.get_object("masterKeys") or {}
        if not isinstance(keys, dict) or not keys:
            raise _fail(
                f"{NAMESPACE}:masterKeys is not set: the database store needs at least one master key; "
                f"set it with `pulumi config set --secret --path 'masterKeys.v1' $(openssl rand -hex 32)`"
            )
        for name in keys:
            if not _KEY_VERSION.fullmatch(str(name)):
                raise _fail(
                    f"{NAMESPACE}:masterKeys.{name}: master keys are named by version, v1, v2, ...; "
                    f"set them with `pulumi config set --secret --path 'masterKeys.v1' $(openssl rand -hex 32)`"
                )
        keyring = {str(version).lstrip("v"): str(value) for version, value in keys.items()}
        try:
            for version, value in keyring.items():
                parse_master_key(value, field=f"{NAMESPACE}:masterKeys.v{version}")
        except MasterKeyError as err:
            raise _fail(str(err)) from None
        active = config.get_int("activeKeyVersion")
        key_version = max(int(v) for v in keyring) if active is None else active
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
        app_role = config.get("appRole") or None
        provisioner_role = config.get("provisionerRole") or None
        if provisioner_role and not app_role:
            raise _fail(f"{NAMESPACE}:provisionerRole is set but {NAMESPACE}:appRole is not: set both, or neither")
        if app_role and app_role == provisioner_role:
            raise _fail(f"{NAMESPACE}:appRole and {NAMESPACE}:provisionerRole must name different roles")
        batch_size = config.get_int("rotationBatchSize")
        if batch_size is not None and batch_size < 1:
            raise _fail(f"{NAMESPACE}:rotationBatchSize: a whole number >= 1 of rows re-encrypted per transaction")
        history_retention = config.get_int("historyRetention")
        settings = cls(
            environment=config.get("environment") or pulumi.get_stack(),
            tenants_file=Path(config.get("tenantsFile") or "tenants.yaml"),
            keyring=keyring,
            key_version=key_version,
            derivation_key=derivation_key,
            table_prefix=config.get("tablePrefix") or "",
            create_companies=config.get_bool("createCompanies") or False,
            history_retention=10 if history_retention is None else history_retention,
            retain_on_delete=config.get_bool("retainOnDelete") is not False,
            app_role=app_role,
            provisioner_role=provisioner_role,
            rotation_batch_size=batch_size or 500,
        )
        try:
            settings.store  # noqa: B018 - validates tablePrefix and historyRetention
        except ValueError as err:
            field = "tablePrefix" if str(err).startswith("table_prefix") else "historyRetention"
            raise _fail(f"{NAMESPACE}:{field}: {str(err).partition(': ')[2]}") from None
        return settings


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


def _secret_config(key: str) -> pulumi.Output[str] | None:
    """A secret setting (e.g. a role's password), kept as a secret Output; None when unset."""
    return pulumi.Config(NAMESPACE).get_secret(key)


@cache
def _infisical_client() -> InfisicalClient:
    return InfisicalClient(InfisicalCredentials.from_env())


@cache
def _infisical_folder(environment: str, path: str) -> dict[str, str]:
    """An existing folder's secrets, for `{from: infisical}` sources: one request per folder, not per key
    (an imported environment reads every key from its own folder on each run)."""
    return _infisical_client().list_secrets(environment, path)


def _infisical_lookup(environment: str, path: str, key: str) -> str | None:
    return _infisical_folder(environment, path).get(key)


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


def inspect_database(settings: StackSettings, tenants: list[TenantPlan]) -> Inspection | None:
    """One look at the database before anything is declared: companies, key versions in use.

    Runs in preview too, so a missing company or a master key still needed fails the preview, naming
    the subdomain or the config key, and nothing anywhere is written. Read-only, three statements.
    Without DATABASE_URL a preview goes on (diffs need no database) with a warning; an update stops.
    """
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        names = ", ".join(t.subdomain for t in tenants)
        message = (
            f"DATABASE_URL is not set in the environment of `pulumi`, and tenants with database storage "
            f"need it ({names}): export DATABASE_URL=postgresql://<role>:<password>@<host>:<port>/<database>"
        )
        if pulumi.runtime.is_dry_run():
            pulumi.log.warn(message + "; the preview does not check companies and master keys against the database")
            return None
        raise _fail(message)
    keys: dict[str | int, str] = {version: key for version, key in settings.keyring.items()}
    keyring = Keyring.from_hex(keys, settings.key_version)
    refs = [TenantRef(t.subdomain, t.company_id, t.decommission) for t in tenants]
    try:
        with store.connect(dsn) as conn:
            return inspect(conn, settings.store, refs, keyring, key_field=f"{NAMESPACE}:masterKeys")
    except store.DatabaseUnavailableError as err:
        raise _fail(f"DATABASE_URL: {err}; nothing was written") from None
    except PreflightError as err:
        raise _fail(f"the database is not ready for tenants.yaml on stack {pulumi.get_stack()}:\n{err}") from None


def run() -> None:
    settings = StackSettings.load()
    plan = load_plan(settings)
    resolver = Resolver(
        environment=settings.environment,
        derivation_key=settings.derivation_key,
        config=_config_lookup,
        environ=os.environ,
        infisical=_infisical_lookup,
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

    database_plans = [t for t in plan.tenants if "database" in t.storage]
    inspection = inspect_database(settings, database_plans) if database_plans else None
    if inspection is not None:
        for entry in database_tenants:
            entry["company_id"] = entry.get("company_id") or inspection.company_ids.get(entry["owner"])

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
                    "rotation_pending": bool(inspection and inspection.rotation_pending(settings.key_version)),
                    "rotation_batch_size": settings.rotation_batch_size,
                    "app_role": settings.app_role,
                    "app_role_password": _secret_config("appRolePassword"),
                    "provisioner_role": settings.provisioner_role,
                    "provisioner_password": _secret_config("provisionerRolePassword"),
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

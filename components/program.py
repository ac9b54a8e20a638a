"""The Pulumi program: tenants.yaml and the stack's config in, components out.

Everything that can be wrong with the input is found before the first resource is declared, so a
bad tenants.yaml or a missing value fails `pulumi preview` with file, line and field and nothing is
touched.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import pulumi

from components.pull_request import guard as pull_request_guard
from components.resources import (
    DatabaseSecrets,
    DatabaseSecretsArgs,
    InfisicalSecrets,
    InfisicalSecretsArgs,
    MasterKeyPublication,
    Registry,
    stack_provider,
)
from tenant_secrets import store
from tenant_secrets.engine import verbose_logs
from tenant_secrets.engine.contract import OwnerSecrets, SchemaSettings
from tenant_secrets.engine.reconcile import password_fingerprint
from tenant_secrets.engine.resolve_at_write import config_lookup
from tenant_secrets.secret import keyfolder
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.values import Resolver, UnresolvedValueError, empty_values, infisical_alterations
from tenant_secrets.stack import config_size, shards
from tenant_secrets.stack.settings import NAMESPACE, StackConfigError, StackSettings
from tenant_secrets.store.preflight import Inspection, PreflightError, TenantRef, inspect
from tenant_secrets.store.roles import role_rights
from tenant_secrets.store.settings import SECRETS
from tenant_secrets.tenants_file.deleted_reads import deleted_reads
from tenant_secrets.tenants_file.loader import load_tenants_file
from tenant_secrets.tenants_file.model import (
    EnvironmentPlan,
    FolderPlan,
    TenantPlan,
    TenantsFileError,
    plan_environment,
)
from tenant_secrets.tenants_file.names import few
from tenant_secrets.tenants_file.sources import InfisicalSource
from tenant_secrets.tenants_file.validation import check_sources

if TYPE_CHECKING:
    from tenant_secrets.infisical import InfisicalClient


def _fail(message: str) -> pulumi.RunError:
    return pulumi.RunError(message)


def load_settings() -> StackSettings:
    """The stack's settings, checked before anything else happens."""
    config = pulumi.Config(NAMESPACE)
    try:
        return StackSettings.load(config.get, stack=pulumi.get_stack())
    except StackConfigError as err:
        raise _fail(str(err)) from None


@cache
def _secrets_lookup() -> Callable[[tuple[str, ...]], str | None]:
    """Paths in the stack's structured `secrets` config object (decrypted in memory, never printed)."""
    return config_lookup(pulumi.Config(NAMESPACE).get("secrets"))


def _config_lookup(path: tuple[str, ...]) -> str | None:
    return _secrets_lookup()(path)


def _password_fingerprint(settings: StackSettings, setting: str) -> str | None:
    """A role password's fingerprint (None when unset): the schema resource records this, and its provider
    reads the password itself from the stack's config."""
    return password_fingerprint(settings.fingerprint_key, setting, pulumi.Config(NAMESPACE).get(setting))


@cache
def _infisical_client() -> InfisicalClient:
    # imported here: the Infisical SDK pulls in boto3 (~0.15 s), and most runs send no request
    from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials  # noqa: PLC0415

    return InfisicalClient(InfisicalCredentials.from_env())


@cache
def _infisical_folder(environment: str, path: str) -> dict[str, str]:
    """An existing folder's secrets, for `{from: infisical}` sources: one recursive listing of the environment
    for every folder and key of the run (an imported environment reads every key from its own folder)."""
    return _infisical_client().shared_folder(environment, path)


def _infisical_lookup(environment: str, path: str, key: str) -> str | None:
    return _infisical_folder(environment, path).get(key)


def load_plan(settings: StackSettings) -> EnvironmentPlan:
    """tenants.yaml for this stack's environment and region (the tenants that may live there, and those
    decommissioned there: docs/decisions/0054-regions.md; its shard's tenants, and the platform folders on the owner
    shard: tenant_secrets/stack/shards.py), with every value source checked, and none reading what the run
    deletes (tenant_secrets/tenants_file/deleted_reads.py)."""
    file = str(settings.tenants_file)
    try:
        plan = shards.select(
            plan_environment(load_tenants_file(settings.tenants_file), settings.environment, settings.region),
            settings.shard,
        )
    except TenantsFileError as err:
        raise _fail(f"{file} is not valid:\n{err}") from None
    issues = check_sources(
        plan,
        file,
        config_has=lambda p: _config_lookup(p) is not None,
        environ=os.environ,
        policy=settings.sources,
        stack=pulumi.get_stack(),
    )
    if issues:
        raise _fail(
            f"{file}: some secrets have no value, or a source the stack does not allow, for stack "
            f"{pulumi.get_stack()}:\n" + _lines(issues, file)
        )
    deleting = deleted_reads(plan, file, retain_on_delete=settings.retain_on_delete)
    if deleting:
        raise _fail(
            f"{file}: a source reads what this run would delete; nothing was written:\n" + _lines(deleting, file)
        )
    return plan


SHOWN_ISSUES = 10
"""Lines an engine error lists: it reaches the preview's output and the pull request's comment, which must
stay short at any number of tenants; `tenantctl validate` lists every one."""


def _lines(issues: Sequence[object], file: str) -> str:
    shown = "\n".join(map(str, issues[:SHOWN_ISSUES]))
    if len(issues) <= SHOWN_ISSUES:
        return shown
    more = len(issues) - SHOWN_ISSUES
    return f"{shown}\n... and {more} more: `tenantctl validate {file} --stack {pulumi.get_stack()}` lists every one"


def load_keyring(settings: StackSettings) -> Keyring:
    """The master keys of a stack with a database store: its config, or the key folder (masterKeySource
    infisical), which then fails the preview, naming the folder and the format, when a key is missing."""
    try:
        return settings.load_keyring(_infisical_folder)
    except StackConfigError as err:
        raise _fail(str(err)) from None


def check_key_folder(settings: StackSettings, platform: Sequence[FolderPlan], file: str) -> None:
    """The keyring's secrets in the key folder are the stack's (or the team's, by hand), never tenants.yaml's."""
    for folder in platform:
        clash = sorted(key for key in folder.secrets if keyfolder.is_keyring_secret(key))
        if folder.path.rstrip("/") == settings.key_folder and clash:
            owner = "the stack publishes them" if settings.master_key_source == "stack" else "the team keeps them"
            raise _fail(
                f"{file}: platform folder {folder.name} declares {', '.join(clash)}: {settings.key_folder} holds the "
                f"master keys, and {owner} (masterKeySource {settings.master_key_source}); remove "
                f"{'it' if len(clash) == 1 else 'them'} from tenants.yaml"
            )


def check_storable(infisical_folders: Sequence[OwnerSecrets]) -> None:
    """Values Infisical would alter (leading or trailing whitespace) fail the preview, naming owner and key,
    before anything is written to either store (a tenant in both is never written to one only)."""
    altered = infisical_alterations({f.owner: f.values for f in infisical_folders})
    if altered:
        raise _fail(
            f"{len(altered)} value(s) begin or end with whitespace, which Infisical trims (only one trailing "
            f"newline survives): {few(altered)}; fix each value at its source (stack config, environment, "
            "tenants.yaml); nothing was written"
        )


def check_key_sources(settings: StackSettings, plan: EnvironmentPlan, file: str) -> None:
    """No `{from: infisical}` source copies a master key out of the key folder into an owner's folder."""
    owners = [(t.subdomain, t.secrets) for t in plan.tenants] + [(f.name, f.secrets) for f in plan.platform]
    for owner, secrets in owners:
        for key, source in sorted(secrets.items()):
            if (
                isinstance(source, InfisicalSource)
                and source.path.rstrip("/").lower() == settings.key_folder.lower()
                and keyfolder.is_keyring_secret(source.key)
            ):
                raise _fail(
                    f"{file}: {owner}.{key} reads {source.key} from {settings.key_folder}, which holds the master "
                    "keys; a master key is never copied into another folder"
                )


def publish_master_keys(
    settings: StackSettings,
    keyring: Keyring,
    inspection: Inspection | None,
    retain: pulumi.ResourceOptions,
    folder: pulumi.Resource | None,
) -> tuple[MasterKeyPublication, Callable[[Sequence[pulumi.Resource]], MasterKeyPublication]]:
    """The key folder's master keys, in the order that keeps every row readable (masterKeySource stack).

    Before the schema (so before any row is written or re-encrypted): every version a stored value still
    uses, and the active one. After every row is written: ``MASTER_ENCRYPTION_KEY``, the key the seed's
    application reads, moved to the active version. A version nothing used at the start of the run is
    withdrawn, so a version is withdrawn on the run after the last row left it. Both come after ``folder``,
    the key folder's own resource when tenants.yaml declares it (it creates the folder). Returns the first
    resource and a function that declares the second once the writers are known.
    """
    keys = {version: key.hex() for version, key in keyring.keys.items()}
    in_use = set(inspection.key_usage) if inspection is not None else set(keyring.versions)
    versions = sorted((in_use & set(keyring.versions)) | {keyring.active})
    owner = settings.key_folder.rsplit("/", 1)[-1]
    published = MasterKeyPublication(
        f"{owner}-master-key-versions",
        owner=owner,
        environment=settings.environment,
        path=settings.key_folder,
        current=None,
        values=keyfolder.published_values(keys, versions=versions),
        fingerprint_key=settings.fingerprint_key,
        opts=pulumi.ResourceOptions.merge(retain, pulumi.ResourceOptions(depends_on=[folder] if folder else [])),
    )

    def current(writers: Sequence[pulumi.Resource]) -> MasterKeyPublication:
        return MasterKeyPublication(
            f"{owner}-master-key",
            owner=owner,
            environment=settings.environment,
            path=settings.key_folder,
            current=keyring.active,
            values=keyfolder.published_values(keys, current=keyring.active),
            fingerprint_key=settings.fingerprint_key,
            opts=pulumi.ResourceOptions.merge(retain, pulumi.ResourceOptions(depends_on=list(writers))),
        )

    return published, current


def check_published(settings: StackSettings, keyring: Keyring) -> None:
    """A shard other than 1 writes rows with the active master key only once shard 1 has published it as the
    key folder's current key (masterKeySource stack): otherwise the application could not read them."""
    if settings.owns_environment or settings.master_key_source != "stack":
        return
    owner = shards.stack_name(settings.environment, 1, settings.region)
    from tenant_secrets.infisical import InfisicalError  # noqa: PLC0415 - see _infisical_client

    try:
        published = _infisical_folder(settings.environment, settings.key_folder)
    except InfisicalError as err:
        raise _fail(f"stack {pulumi.get_stack()}: cannot read the key folder {settings.key_folder}: {err}") from None
    problem = shards.publication_problem(
        published,
        keyring,
        folder=settings.key_folder,
        owner_stack=owner,
    )
    if problem:
        raise _fail(f"stack {pulumi.get_stack()} (shard {settings.shard}): {problem}")


def inspect_database(settings: StackSettings, keyring: Keyring, tenants: list[TenantPlan]) -> Inspection | None:
    """One look at the database before anything is declared: companies, key versions in use.

    Runs in preview too, so a missing company or a master key still needed fails the preview, naming
    the subdomain or the config key, and nothing anywhere is written. Read-only, four statements (six with
    a provisioning role, checked not to be the application's: docs/decisions/0042).
    Without DATABASE_URL a preview goes on (diffs need no database) with a warning; an update stops.
    """
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        names = few(t.subdomain for t in tenants)
        message = (
            f"DATABASE_URL is not set in the environment of `pulumi`, and tenants with database storage "
            f"need it ({names}): export DATABASE_URL=postgresql://<role>:<password>@<host>:<port>/<database>"
        )
        if pulumi.runtime.is_dry_run():
            pulumi.log.warn(message + "; the preview does not check companies and master keys against the database")
            return None
        raise _fail(message)
    refs = [TenantRef(t.subdomain, t.company_id, t.decommission) for t in tenants]
    try:
        with store.connect(dsn) as conn:
            key_field = f"{NAMESPACE}:masterKeys" if settings.master_key_source == "stack" else settings.key_folder
            found = inspect(
                conn,
                settings.store,
                refs,
                keyring,
                key_field=key_field,
                app_role=settings.app_role,
                provisioner_role=settings.provisioner_role,
                writer_role=settings.writer_role,
            )
    except store.DatabaseUnavailableError as err:
        raise _fail(f"DATABASE_URL: {err}; nothing was written") from None
    except PreflightError as err:
        raise _fail(f"the database is not ready for tenants.yaml on stack {pulumi.get_stack()}:\n{err}") from None
    if found.undecryptable:
        pulumi.log.warn(
            f"{len(found.undecryptable)} stored value(s) do not decrypt, although the other values of their key "
            f"version do: {few(found.undecryptable)}; the rows are corrupt (the master key is right): declare a new "
            "value for each to overwrite it on `pulumi up`, or restore them from a backup"
        )
    return found


def mark_unbound_rows(
    inspection: Inspection, tenants: Sequence[OwnerSecrets], secrets_table: str, settings: StackSettings
) -> None:
    """Name every stored ciphertext that is not bound to its row (moved from another row, copied,
    altered: tenant_secrets.secret.binding), and have the tenant that declares the key overwrite it. A sharded
    stack names only its own tenants' rows, and the owner shard the rows of no tenant of its shard."""
    by_company = {
        cid: entry for entry in tenants if (cid := entry.company_id or inspection.company_ids.get(entry.owner))
    }
    for problem in inspection.binding_problems:
        row = problem.row
        entry = by_company.get(row.company_id)
        declared = entry is not None and row.table == secrets_table and row.secret_key in entry.values
        if entry is None and not settings.owns_environment:
            continue
        if entry is not None and declared:
            entry.unbound = sorted({*entry.unbound, row.secret_key})
        if entry is not None and declared:
            action = f"tenant {entry.owner}'s run overwrites it from tenants.yaml"
        elif settings.shard is None:
            action = "no tenant of this stack declares it: delete the row, or restore it from a backup"
        else:
            action = (
                "no tenant of this shard declares it: if a tenant of another shard does, that shard's run "
                "overwrites it; else delete the row, or restore it from a backup"
            )
        pulumi.log.warn(f"{problem}; {action}")
    # Rows without a binding (a writer without the keyring wrote them: the application's own setTenantSecret,
    # decision 0049). A key tenants.yaml declares is tenants.yaml's: the application's write is drift, shown
    # here and put back by this run. Any other key is the application's: the schema resource binds it.
    for row in inspection.pending:
        entry = by_company.get(row.company_id)
        if entry is None or row.secret_key not in entry.values:
            continue
        entry.unbound = sorted({*entry.unbound, row.secret_key})
        pulumi.log.warn(
            f"{secrets_table} row {row.where} (version {row.version}) was written outside tenants.yaml (by a writer "
            f"without the master keys, such as the application); tenants.yaml declares it, so tenant {entry.owner}'s "
            "run writes the declared value back"
        )


def refuse_verbose_engine_logs() -> None:
    """Stop before any provider is configured or any secret input sent when the engine logs or traces payloads."""
    reason = verbose_logs.payload_recording(os.environ, verbose_logs.ancestor_command_lines())
    if reason:
        raise _fail(
            f"engine logging or tracing is on ({reason}): the engine records this stack's master keys, derivation "
            "key and every secret value in the clear (in its logs, a file in $TMPDIR, a trace file or a trace "
            "collector); nothing was declared. Run again without it, and delete what it wrote "
            "(docs/guides/operations.md, 'Engine logs')"
        )


def warn_near_config_limit(stack: str) -> None:
    """Say so while the config still fits: past the limit the engine cannot start the program at all, and
    its error names no key (`tenant_secrets/stack/config_size.py`)."""
    size = config_size.environment_size(os.environ)
    if size > config_size.WARN_AT * config_size.LIMIT:
        pulumi.log.warn(
            f"the stack's config takes {config_size.kib(size)} of the {config_size.kib(config_size.LIMIT)} the "
            f"engine can start the program with ({config_size.VARIABLE}); past it every run fails with `argument "
            f"list too long`. `tenantctl validate --stack {stack}` names the largest values"
        )


def run() -> None:
    """Declare every resource of the stack (synchronously: `main` is the program's entry point)."""
    refuse_verbose_engine_logs()
    warn_near_config_limit(pulumi.get_stack())
    settings = load_settings()
    pull_request_guard(settings)
    plan = load_plan(settings)
    resolver = Resolver(
        environment=settings.environment,
        derivation_key=settings.derivation_key,
        config=_config_lookup,
        environ=settings.sources.environ(os.environ),  # the allow-listed variables, nothing else
        infisical=_infisical_lookup,
    )

    empty: list[str] = []

    def resolve(owner: str, secrets: Any) -> dict[str, str]:
        try:
            values = {key: resolver.resolve(owner, key, source) for key, source in secrets.items()}
        except UnresolvedValueError as err:
            raise _fail(str(err)) from None
        empty.extend(empty_values(owner, secrets, values))
        return values

    infisical_folders: list[OwnerSecrets] = []
    database_tenants: list[OwnerSecrets] = []
    for folder in plan.platform:
        infisical_folders.append(
            OwnerSecrets(
                owner=folder.name,
                path=folder.path,
                values=resolve(folder.name, folder.secrets),
                sources=folder.secrets,
                decommissioned=sorted(folder.decommissioned_keys),
                decommission=False,
            )
        )
    for tenant in plan.tenants:
        entry = OwnerSecrets(
            owner=tenant.subdomain,
            path=f"/tenants/{tenant.subdomain}",
            company_id=tenant.company_id,
            company_name=tenant.name,
            values={} if tenant.decommission else resolve(tenant.subdomain, tenant.secrets),
            sources=tenant.secrets,
            decommissioned=sorted(tenant.decommissioned_keys),
            decommission=tenant.decommission,
        )
        if "infisical" in tenant.storage:
            infisical_folders.append(entry)
        if "database" in tenant.storage:
            database_tenants.append(entry)

    if empty:
        raise _fail(
            f"{len(empty)} value(s) are empty: {few(empty)}; set each (an empty secret is most often one nobody "
            "set), or declare `allow_empty: true` on its source in tenants.yaml; nothing was written"
        )
    check_storable(infisical_folders)
    check_key_sources(settings, plan, str(settings.tenants_file))
    database_plans = [t for t in plan.tenants if "database" in t.storage]
    uses_database = bool(database_plans) or plan.others_use_database
    if uses_database:  # without a database store the key folder holds no keyring of this stack's
        check_key_folder(settings, plan.platform, str(settings.tenants_file))
    keyring = load_keyring(settings) if uses_database else None
    if keyring is not None:
        check_published(settings, keyring)
    inspection = inspect_database(settings, keyring, database_plans) if keyring else None
    # A stack that creates its companies (the demo) finds none before its first `up`: its providers
    # resolve them at write time and record the id, so that input stays the same from run to run.
    if inspection is not None and not settings.create_companies:
        for entry in database_tenants:
            entry.company_id = entry.company_id or inspection.company_ids.get(entry.owner)
    if inspection is not None:
        mark_unbound_rows(inspection, database_tenants, settings.store.name(SECRETS), settings)
        for entry in database_tenants:  # a decommissioned tenant's rows all go: the plan lists each key
            if entry.decommission:
                entry.stored_keys = inspection.stored_keys.get(entry.owner, ())

    provider = stack_provider(pulumi.get_stack(), settings.buckets)
    # the components' children inherit the provider; the resources declared here take it themselves
    retain = pulumi.ResourceOptions(retain_on_delete=settings.retain_on_delete, providers=[provider])
    retain_own = pulumi.ResourceOptions(retain_on_delete=settings.retain_on_delete, provider=provider)
    Registry(
        "registry",
        owners=[t.subdomain for t in plan.tenants if not t.decommission] + [f.name for f in plan.platform],
        decommissioned=[t.subdomain for t in plan.tenants if t.decommission],
        region=settings.region,
        opts=pulumi.ResourceOptions(provider=provider),
    )
    fp_key = settings.fingerprint_key
    key_folder: pulumi.Resource | None = None
    if infisical_folders:
        infisical = InfisicalSecrets(
            "infisical",
            InfisicalSecretsArgs(
                environment=settings.environment,
                folders=infisical_folders,
                fingerprint_key=fp_key,
                buckets=settings.buckets,
            ),
            opts=retain,
        )
        key_folder = next((infisical.folders[f.name] for f in plan.platform if f.path == settings.key_folder), None)
    if uses_database and keyring is not None:
        published, declare_current = (
            publish_master_keys(settings, keyring, inspection, retain_own, key_folder)
            if settings.master_key_source == "stack" and settings.owns_environment
            else (None, None)
        )
        database = DatabaseSecrets(
            "database",
            DatabaseSecretsArgs(
                tenants=database_tenants,
                schema=SchemaSettings(
                    schema_version=store.SCHEMA_VERSION,
                    table_prefix=settings.table_prefix,
                    create_companies=settings.create_companies,
                    rotation_pending=bool(inspection and inspection.rotation_pending(keyring.active)),
                    bindings_pending=bool(inspection and inspection.bindings_pending),
                    rotation_batch_size=settings.rotation_batch_size,
                    app_role=settings.app_role,
                    app_role_password=_password_fingerprint(settings, "appRolePassword"),
                    provisioner_role=settings.provisioner_role,
                    provisioner_password=_password_fingerprint(settings, "provisionerRolePassword"),
                    role_rights=role_rights(
                        settings.store, settings.app_role, settings.provisioner_role, settings.writer_role
                    ),
                    writer_role=settings.writer_role,
                    writer_password=_password_fingerprint(settings, "appWriterRolePassword"),
                ),
                key_version=keyring.active,
                key_versions=sorted(str(v) for v in keyring.versions),
                fingerprint_key=fp_key,
                after=[published] if published else [],
                owns_schema=settings.owns_environment,
                buckets=settings.buckets,
            ),
            opts=retain,
        )
        if declare_current is not None:
            declare_current(database.writers)
        pulumi.export(
            "master_keys",
            {"source": settings.master_key_source, "folder": settings.key_folder, "active_version": keyring.active},
        )

    # Stack outputs are plain and do not grow with the fleet: an output that waits on a resource is shown
    # as deleted (`-`) when that resource fails, and a per-tenant map prints thousands of lines on every
    # `up`. Each resource's own outputs hold its fingerprints (`pulumi stack export`).
    pulumi.export("environment", settings.environment)
    if settings.region is not None:
        pulumi.export("region", settings.region)
    if settings.shard is not None:
        pulumi.export("shard", str(settings.shard))
    pulumi.export(
        "counts",
        {
            "tenants": sum(not t.decommission for t in plan.tenants),
            "decommissioned": sum(t.decommission for t in plan.tenants),
            "platform_folders": len(plan.platform),
            "infisical_folders": len(infisical_folders),
            "database_tenants": len(database_tenants),
        },
    )


async def main() -> None:
    """The program's entry point, for `pulumi.run`.

    Declaring the resources only schedules their registrations. When a program returns at once, the
    Python SDK's final wait starts before any registration has begun, finds none in flight, and falls
    back to polling every pending output each time one resolves: quadratic in the number of outputs,
    about a third of the program's time at 1,000 tenants (docs/performance.md). Yielding to the event
    loop once lets the registrations start, so the SDK waits on them one by one instead.
    """
    run()
    await asyncio.sleep(0)

"""The resources, served by the tenant-secrets provider plugin (components/plugin.py), and the components
that group them (tokens and property names: `tenant_secrets/engine/contract.py`).

No secret value is an input or an output, not even as a Pulumi secret: per key, a resource carries
the fingerprint of its value (an input; and, as recorded at the last write or refresh, an output) and
the descriptor of its source, from which the provider resolves the value when it writes
(docs/decisions/0034-write-only-values.md). The fingerprints let a preview, and `tenantctl plan`, name
the key that changes without showing anything of its value.

What is the same for every resource of the stack (the master keys, the fingerprint key, the store's
settings) is not an input: the providers read it from the stack's config (components/providers.py).
An input changes every resource that carries it, so a master key rotation, say, would otherwise
update every tenant although only the schema resource has work to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.engine.reconcile import desired_fingerprints
from tenant_secrets.secret.values import fingerprint
from tenant_secrets.tenants_file.names import TENANTS_FOLDER
from tenant_secrets.tenants_file.sources import ValueSource, describe

TENANT_FOLDERS = f"/{TENANTS_FOLDER}/"
"""The prefix of a tenant's folder path (a platform folder's is /<name>)."""


def stack_provider(stack: str, buckets: int | None = None) -> pulumi.ProviderResource:
    """The provider every resource of the stack uses: the plugin, whose input is the stack's name (and on a stack
    with the `buckets` setting, the bucket count: a run that changes it moves the tenants between layouts, which
    the provider sees as its old and new inputs, docs/decisions/0053-tenants-per-resource.md).

    A default provider would take its package's whole config (`tenant-secrets:*`: master keys, derivation
    key, every `{from: config}` value) as its inputs and record them in the state, encrypted. The provider
    reads the stack's config itself when it needs it (components/providers.py), so the state holds none of
    it (docs/decisions/0034-write-only-values.md). A resource moved from the dynamic provider a stack used
    before (decision 0039) is not replaced: the plugin's DiffConfig says so.
    """
    inputs = {c.PROVIDER_STACK: stack, **({c.PROVIDER_BUCKETS: str(buckets)} if buckets else {})}
    return pulumi.ProviderResource(c.PROVIDER_PACKAGE, c.PROVIDER_NAME, inputs)


class PluginResource(pulumi.CustomResource):
    """A resource of the tenant-secrets plugin, also known by the type it had as a Python dynamic resource
    (its alias), so that a stack made with the dynamic providers keeps every resource (decision 0039)."""

    TYPE: ClassVar[str]
    """The type's name in the contract (``InfisicalFolder``)."""
    MOVED_BY_RESHARD: ClassVar[bool] = False
    """Whether `tenantctl reshard` moves resources of this type between stacks: `pulumi state move` parents
    them to the destination's stack, so they are also known as children of the stack (an alias), and an
    `up` after an interrupted reshard re-parents them instead of deleting them (decision 0043)."""

    DYNAMIC_ALIAS: ClassVar[bool] = True
    """Whether the type existed as a Python dynamic resource (a bucket type never did: no alias)."""

    def _register(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None) -> None:
        aliases = [pulumi.Alias(type_=c.dynamic_type(self.TYPE))] if self.DYNAMIC_ALIAS else []
        if self.MOVED_BY_RESHARD:
            aliases.append(pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE))
        options = pulumi.ResourceOptions(aliases=aliases)
        super().__init__(c.resource_type(self.TYPE), name, props, pulumi.ResourceOptions.merge(opts, options))


def _descriptors(sources: Mapping[str, ValueSource], values: Mapping[str, str]) -> dict[str, dict[str, object]]:
    """The descriptor of every key's source: a value's source is recorded, never the value."""
    return {key: describe(sources[key]) for key in sorted(values)}


class InfisicalFolder(PluginResource):
    """An Infisical folder holding exactly the declared secrets of one owner in one environment."""

    TYPE = c.INFISICAL_FOLDER
    MOVED_BY_RESHARD = True

    fingerprints: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        *,
        folder: c.OwnerSecrets,
        environment: str,
        fingerprint_key: bytes,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        self._register(name, _folder_inputs(folder, environment, fingerprint_key), opts)


class DatabaseSchema(PluginResource):
    """The company_secrets tables, migrated, with every row on the active master key."""

    TYPE = c.DATABASE_SCHEMA

    rows_rotated: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        settings: c.SchemaSettings,
        key_version: int,
        key_versions: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = settings.props(key_version=key_version, key_versions=key_versions)
        self._register(name, props, opts)


class DatabaseTenant(PluginResource):
    """One tenant's encrypted rows in company_secrets."""

    TYPE = c.DATABASE_TENANT
    MOVED_BY_RESHARD = True

    company_id: pulumi.Output[str]
    fingerprints: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        *,
        tenant: c.OwnerSecrets,
        table_prefix: str,
        fingerprint_key: bytes,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        self._register(name, _rows_inputs(tenant, table_prefix, fingerprint_key), opts)


def _folder_inputs(folder: c.OwnerSecrets, environment: str, fingerprint_key: bytes) -> dict[str, Any]:
    return c.FolderInputs(
        owner=folder.owner,
        environment=environment,
        path=folder.path,
        decommission=folder.decommission,
        decommissioned=folder.decommissioned,
        declared=desired_fingerprints(folder.owner, folder.values, fingerprint_key),
        sources=_descriptors(folder.sources, folder.values),
    ).props()


def _rows_inputs(tenant: c.OwnerSecrets, table_prefix: str, fingerprint_key: bytes) -> dict[str, Any]:
    return c.TenantRowsInputs(
        owner=tenant.owner,
        decommission=tenant.decommission,
        decommissioned=tenant.decommissioned,
        table_prefix=table_prefix,
        company_id=tenant.company_id or "",
        company_name=tenant.company_name or tenant.owner,
        declared=desired_fingerprints(tenant.owner, tenant.values, fingerprint_key),
        sources=_descriptors(tenant.sources, tenant.values),
        unbound=tenant.unbound,
        stored_keys=tenant.stored_keys,
    ).props()


class _Bucket(PluginResource):
    """Several tenants of one store in one resource (tenant_secrets/engine/buckets.py): input ``tenants``
    maps each subdomain to its entry, one JSON string of what its own resource would have as inputs; the
    bucket-wide properties (the environment, the table prefix) are the bucket's. Its output ``tenants`` holds,
    per tenant, what its own resource would have as outputs, packed the same way."""

    DYNAMIC_ALIAS = False
    KIND: ClassVar[b.BucketKind]

    def _register_bucket(
        self,
        name: str,
        members: Sequence[dict[str, Any]],
        shared: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        props = b.join(self.KIND, {str(m[c.OWNER]): m for m in members}, shared)
        self._register(name, props, opts)


class InfisicalBucket(_Bucket):
    """The Infisical folders (/tenants/<subdomain>) of the tenants of one bucket, in one environment."""

    TYPE = c.INFISICAL_BUCKET
    KIND = b.INFISICAL

    def __init__(
        self,
        name: str,
        *,
        folders: Sequence[c.OwnerSecrets],
        environment: str,
        fingerprint_key: bytes,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        members = [_folder_inputs(folder, environment, fingerprint_key) for folder in folders]
        self._register_bucket(name, members, {c.ENVIRONMENT: environment}, opts)


class DatabaseBucket(_Bucket):
    """The rows in company_secrets of the tenants of one bucket."""

    TYPE = c.DATABASE_BUCKET
    KIND = b.DATABASE

    def __init__(
        self,
        name: str,
        *,
        tenants: Sequence[c.OwnerSecrets],
        table_prefix: str,
        fingerprint_key: bytes,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        members = [_rows_inputs(tenant, table_prefix, fingerprint_key) for tenant in tenants]
        self._register_bucket(name, members, {c.TABLE_PREFIX: table_prefix}, opts)


class MasterKeyPublication(PluginResource):
    """Master keys published to the application's key folder: the versions rows use, or the current key.

    Only fingerprints are inputs; the provider reads the keys from the stack's config."""

    TYPE = c.MASTER_KEY_PUBLICATION

    fingerprints: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        *,
        owner: str,
        environment: str,
        path: str,
        current: int | None,
        values: Mapping[str, str],
        fingerprint_key: bytes,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = c.PublicationInputs(
            owner=owner,
            environment=environment,
            path=path,
            current=current,
            declared={key: fingerprint(fingerprint_key, owner, key, value) for key, value in sorted(values.items())},
        )
        self._register(name, inputs.props(), opts)


class Registry(PluginResource):
    """The owners this stack manages, so an owner removed without its marker fails the preview."""

    TYPE = c.REGISTRY

    def __init__(
        self,
        name: str,
        *,
        owners: Sequence[str],
        decommissioned: Sequence[str],
        region: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = c.RegistryInputs(owners=owners, decommissioned=decommissioned, region=region)
        self._register(name, inputs.props(), opts)


def _child_options(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """Children carry the component's retain-on-delete choice explicitly (it is not inherited)."""
    return pulumi.ResourceOptions(parent=parent, retain_on_delete=opts.retain_on_delete if opts else None)


@dataclass(frozen=True)
class InfisicalSecretsArgs:
    """What the Infisical component declares: one folder resource per owner."""

    environment: str
    """The Infisical environment slug this stack writes to."""
    folders: Sequence[c.OwnerSecrets]
    """The folders to manage."""
    fingerprint_key: bytes
    """The key of the per-key fingerprints."""
    buckets: int | None = None
    """The stack's bucket count: the tenants' folders in one resource per non-empty bucket; None: one each.
    Platform folders keep a resource each."""


def _bucketed(owners: Sequence[c.OwnerSecrets], buckets: int) -> dict[int, list[c.OwnerSecrets]]:
    """The tenants of each non-empty bucket, by bucket number."""
    by_owner = {entry.owner: entry for entry in owners}
    return {n: [by_owner[o] for o in names] for n, names in sorted(b.assign(by_owner, buckets).items())}


class InfisicalSecrets(pulumi.ComponentResource):
    """Strategy A: a folder per tenant (and per platform folder) in one Infisical environment."""

    folders: dict[str, InfisicalFolder]
    """The folder resources by owner (with buckets: the platform folders')."""
    buckets: list[InfisicalBucket]
    """The tenants' buckets (none without the `buckets` setting)."""

    def __init__(self, name: str, args: InfisicalSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(c.INFISICAL_SECRETS_COMPONENT, name, {}, opts)

        def in_bucket(folder: c.OwnerSecrets) -> bool:
            return bool(args.buckets) and folder.path.startswith(TENANT_FOLDERS)

        folders = {
            folder.owner: InfisicalFolder(
                f"{folder.owner}-infisical",
                folder=folder,
                environment=args.environment,
                fingerprint_key=args.fingerprint_key,
                opts=_child_options(self, opts),
            )
            for folder in args.folders
            if not in_bucket(folder)
        }
        self.folders = folders
        self.buckets = [
            InfisicalBucket(
                b.resource_name(number, "infisical"),
                folders=members,
                environment=args.environment,
                fingerprint_key=args.fingerprint_key,
                opts=_child_options(self, opts),
            )
            for number, members in _bucketed([f for f in args.folders if in_bucket(f)], args.buckets or 1).items()
        ]
        # per tenant, its fingerprints by owner; with buckets none: nothing reads the map (each resource's own
        # outputs hold them), and lifting it costs the program half its CPU at 10,000 tenants (decision 0053)
        fingerprints = {owner: folder.fingerprints for owner, folder in folders.items()}
        self.register_outputs({} if self.buckets else {c.RECORDED_FINGERPRINTS: pulumi.Output.all(**fingerprints)})


@dataclass(frozen=True)
class DatabaseSecretsArgs:
    """What the database component declares: the schema resource and one rows resource per tenant."""

    tenants: Sequence[c.OwnerSecrets]
    """The tenants whose rows to manage."""
    schema: c.SchemaSettings
    """The schema resource's settings: table prefix, migrations, rotation, roles."""
    key_version: int
    """The active master key version."""
    key_versions: Sequence[str]
    """The versions in the keyring (the keys themselves are read by the provider from the stack's config)."""
    fingerprint_key: bytes
    """The key of the per-key fingerprints."""
    after: Sequence[pulumi.Resource] = ()
    """Resources the schema waits for (the key publication: no row may use a key not yet published)."""
    owns_schema: bool = True
    """False on a shard other than 1: the schema resource is shard 1's (docs/decisions/0035); default True."""
    buckets: int | None = None
    """The stack's bucket count: the tenants' rows in one resource per non-empty bucket; None: one each."""


class DatabaseSecrets(pulumi.ComponentResource):
    """Strategy B: the company_secrets schema and each tenant's encrypted rows."""

    writers: list[pulumi.Resource]
    """The schema and tenant resources: whatever waits for every row to be written depends on these."""

    def __init__(self, name: str, args: DatabaseSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(c.DATABASE_SECRETS_COMPONENT, name, {}, opts)
        schema = (
            DatabaseSchema(
                f"{name}-schema",
                settings=args.schema,
                key_version=args.key_version,
                key_versions=args.key_versions,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
            )
            if args.owns_schema
            else None
        )
        child = pulumi.ResourceOptions.merge(
            _child_options(self, opts), pulumi.ResourceOptions(depends_on=[schema] if schema else [])
        )
        if args.buckets:
            buckets = [
                DatabaseBucket(
                    b.resource_name(number, "database"),
                    tenants=members,
                    table_prefix=args.schema.table_prefix,
                    fingerprint_key=args.fingerprint_key,
                    opts=child,
                )
                for number, members in _bucketed(args.tenants, args.buckets).items()
            ]
            self.writers = [*([schema] if schema else []), *buckets]
            self.register_outputs({})  # no per-tenant map: as InfisicalSecrets with buckets
            return
        tenants = {
            tenant.owner: DatabaseTenant(
                f"{tenant.owner}-database",
                tenant=tenant,
                table_prefix=args.schema.table_prefix,
                fingerprint_key=args.fingerprint_key,
                opts=child,
            )
            for tenant in args.tenants
        }
        self.writers = [*([schema] if schema else []), *tenants.values()]
        fingerprints = {owner: t.fingerprints for owner, t in tenants.items()}
        self.register_outputs({c.RECORDED_FINGERPRINTS: pulumi.Output.all(**fingerprints)})

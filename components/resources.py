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
from typing import ClassVar

import pulumi

from tenant_secrets.engine import contract as c
from tenant_secrets.engine.reconcile import desired_fingerprints
from tenant_secrets.secret.values import fingerprint
from tenant_secrets.tenants_file.sources import ValueSource, describe


def stack_provider(stack: str) -> pulumi.ProviderResource:
    """The provider every resource of the stack uses: the plugin, whose only input is the stack's name.

    A default provider would take its package's whole config (`tenant-secrets:*`: master keys, derivation
    key, every `{from: config}` value) as its inputs and record them in the state, encrypted. The provider
    reads the stack's config itself when it needs it (components/providers.py), so the state holds none of
    it (docs/decisions/0034-write-only-values.md). A resource moved from the dynamic provider a stack used
    before (decision 0039) is not replaced: the plugin's DiffConfig says so.
    """
    return pulumi.ProviderResource(c.PROVIDER_PACKAGE, c.PROVIDER_NAME, {c.PROVIDER_STACK: stack})


class PluginResource(pulumi.CustomResource):
    """A resource of the tenant-secrets plugin, also known by the type it had as a Python dynamic resource
    (its alias), so that a stack made with the dynamic providers keeps every resource (decision 0039)."""

    TYPE: ClassVar[str]
    """The type's name in the contract (``InfisicalFolder``)."""
    MOVED_BY_RESHARD: ClassVar[bool] = False
    """Whether `tenantctl reshard` moves resources of this type between stacks: `pulumi state move` parents
    them to the destination's stack, so they are also known as children of the stack (an alias), and an
    `up` after an interrupted reshard re-parents them instead of deleting them (decision 0043)."""

    def _register(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions | None) -> None:
        aliases = [pulumi.Alias(type_=c.dynamic_type(self.TYPE))]
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
        inputs = c.FolderInputs(
            owner=folder.owner,
            environment=environment,
            path=folder.path,
            decommission=folder.decommission,
            decommissioned=folder.decommissioned,
            declared=desired_fingerprints(folder.owner, folder.values, fingerprint_key),
            sources=_descriptors(folder.sources, folder.values),
        )
        self._register(name, inputs.props(), opts)


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
        inputs = c.TenantRowsInputs(
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
        )
        self._register(name, inputs.props(), opts)


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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = c.RegistryInputs(owners=owners, decommissioned=decommissioned)
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


class InfisicalSecrets(pulumi.ComponentResource):
    """Strategy A: a folder per tenant (and per platform folder) in one Infisical environment."""

    fingerprints: pulumi.Output[dict[str, dict[str, str]]]
    folders: dict[str, InfisicalFolder]
    """The folder resources by owner."""

    def __init__(self, name: str, args: InfisicalSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(c.INFISICAL_SECRETS_COMPONENT, name, {}, opts)
        folders = {
            folder.owner: InfisicalFolder(
                f"{folder.owner}-infisical",
                folder=folder,
                environment=args.environment,
                fingerprint_key=args.fingerprint_key,
                opts=_child_options(self, opts),
            )
            for folder in args.folders
        }
        self.folders = folders
        self.fingerprints = pulumi.Output.all(**{owner: folder.fingerprints for owner, folder in folders.items()})
        self.register_outputs({c.RECORDED_FINGERPRINTS: self.fingerprints})


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


class DatabaseSecrets(pulumi.ComponentResource):
    """Strategy B: the company_secrets schema and each tenant's encrypted rows."""

    fingerprints: pulumi.Output[dict[str, dict[str, str]]]
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
        tenants = {
            tenant.owner: DatabaseTenant(
                f"{tenant.owner}-database",
                tenant=tenant,
                table_prefix=args.schema.table_prefix,
                fingerprint_key=args.fingerprint_key,
                opts=pulumi.ResourceOptions.merge(
                    _child_options(self, opts), pulumi.ResourceOptions(depends_on=[schema] if schema else [])
                ),
            )
            for tenant in args.tenants
        }
        self.writers = [*([schema] if schema else []), *tenants.values()]
        self.fingerprints = pulumi.Output.all(**{owner: t.fingerprints for owner, t in tenants.items()})
        self.register_outputs({c.RECORDED_FINGERPRINTS: self.fingerprints})

"""The resource contract: what the program declares, what the providers read and record, what the plan reads.

Every resource's type token and property name is spelled here and nowhere else; the program
(`components/resources.py`), the providers (`components/providers.py`, deciding in
`tenant_secrets/engine/reconcile.py`) and the reviewer's plan (`tenant_secrets/tenantctl/plan_rows.py`,
`tenant_secrets/tenantctl/plan_moves.py`, `tenant_secrets/tenantctl/plan_preview.py`) import them, and
`tests/engine/test_contract.py` fails when one of them drifts from it (docs/decisions/0033).

The names below are the wire names already in every stack's state: renaming an input would show every
resource as updated on the next preview, so the constants give them clear names instead. One wire name
holds two things: ``fingerprints`` is, among the inputs, the fingerprints of the *declared* values
(:data:`DECLARED_FINGERPRINTS`) and, among the outputs, those of what the store held at the last write
or refresh (:data:`RECORDED_FINGERPRINTS`); ``declared_fingerprints`` is an output, the fingerprints the
last write wrote (:data:`WRITTEN_FINGERPRINTS`), which differ from the recorded ones only after a refresh
found drift.

No property holds a secret value, not even as a Pulumi secret (docs/decisions/0034-write-only-values.md):
a tenant or folder resource carries, per key, its value's source descriptor (:data:`SOURCES`,
`tenant_secrets/tenants_file/sources.py`) and the fingerprint of the value (:data:`DECLARED_FINGERPRINTS`); its
provider resolves the value itself at write time and refuses to write one whose fingerprint differs.
States written before that held one secret input per key, named by the key (UPPER_CASE):
:func:`secret_keys` still recognises them, in the old inputs a `check` or a plan reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tenant_secrets.tenants_file.sources import ValueSource

# --- type tokens ------------------------------------------------------------------------------------

PACKAGE: Final = "tenant-secrets"
RESOURCE_MODULE: Final = "index"
"""The module of the provider plugin's resources: their types are ``tenant-secrets:index:<Type>``."""
DYNAMIC_MODULE: Final = "tenants"
"""The module the same resources had as Python dynamic resources (``pulumi-python:dynamic/tenants:<Type>``),
before the provider plugin (docs/decisions/0039-provider-plugin.md): their aliases, so that a stack made
then keeps every resource."""

INFISICAL_FOLDER: Final = "InfisicalFolder"
DATABASE_SCHEMA: Final = "DatabaseSchema"
DATABASE_TENANT: Final = "DatabaseTenant"
MASTER_KEY_PUBLICATION: Final = "MasterKeyPublication"
REGISTRY: Final = "Registry"
INFISICAL_BUCKET: Final = "InfisicalBucket"
"""Several tenants' Infisical folders in one resource (the `buckets` setting: tenant_secrets/engine/buckets.py)."""
DATABASE_BUCKET: Final = "DatabaseBucket"
"""Several tenants' rows in one resource."""


def resource_type(name: str) -> str:
    """The type token of one of the plugin's resources: ``tenant-secrets:index:InfisicalFolder``."""
    return f"{PACKAGE}:{RESOURCE_MODULE}:{name}"


def dynamic_type(name: str) -> str:
    """The type token the resource had as a Python dynamic resource: its alias."""
    return f"pulumi-python:dynamic/{DYNAMIC_MODULE}:{name}"


def type_name(token: str) -> str:
    """``InfisicalFolder`` from either type token."""
    return token.rsplit(":", 1)[-1]


def urn_type_name(urn: str) -> str:
    """``InfisicalFolder`` from ``urn:pulumi:dev::tenant-secrets::...$tenant-secrets:index:InfisicalFolder::acme``."""
    return type_name(urn.split("::")[2].rsplit("$", 1)[-1])


PROVIDER_PACKAGE: Final = PACKAGE
"""The provider plugin's package (`provider/pulumi-resource-tenant-secrets`): the stack declares one explicit
provider of it."""
PROVIDER_NAME: Final = PACKAGE
PROVIDER_STACK: Final = "stack"
"""The explicit provider's input: the stack whose config the provider reads (never a value of it)."""
PROVIDER_BUCKETS: Final = "buckets"
"""The explicit provider's other input, on a stack with the `buckets` setting: the bucket count, so that the
provider, which gets its old inputs from the state in `CheckConfig`, knows a run that moves the stack's tenants
between layouts (per-tenant resources, or another bucket count; docs/decisions/0053-tenants-per-resource.md)."""
DYNAMIC_PROVIDER_STACK: Final = f"{PACKAGE}:stack"
"""The same input of the explicit dynamic provider (``pulumi:providers:pulumi-python``) stacks held before the
plugin: what the dynamic providers' ``configure`` reads, for a resource of such a state still deleted by it."""

INFISICAL_SECRETS_COMPONENT: Final = f"{PACKAGE}:index:InfisicalSecrets"
DATABASE_SECRETS_COMPONENT: Final = f"{PACKAGE}:index:DatabaseSecrets"

# --- property names (wire names) --------------------------------------------------------------------

OWNER: Final = "owner"
"""Tenant subdomain, or platform folder name (the key folder's last segment for a publication)."""
ENVIRONMENT: Final = "environment"
"""The Infisical environment slug."""
PATH: Final = "path"
"""The Infisical folder path."""
DECOMMISSION: Final = "decommission"
"""The whole owner is marked for deletion (``decommission: true`` in tenants.yaml)."""
DECOMMISSIONED: Final = "decommissioned"
"""Keys marked ``{decommission: true}``, to delete."""
DECLARED_FINGERPRINTS: Final = "fingerprints"
"""Input: key -> fingerprint of the declared value."""
RECORDED_FINGERPRINTS: Final = "fingerprints"
"""Output: key -> fingerprint of what the store held at the last write or refresh."""
WRITTEN_FINGERPRINTS: Final = "declared_fingerprints"
"""Output: key -> fingerprint of what the last write wrote."""
TABLE_PREFIX: Final = "table_prefix"
COMPANY_ID: Final = "company_id"
"""The tenant's company: as tenants.yaml or the program's lookup gives it (input), as written (output)."""
COMPANY_NAME: Final = "company_name"
"""Display name, used when the demo creates the company."""
CURRENT: Final = "current"
"""The version ``MASTER_ENCRYPTION_KEY`` holds, or None for the resource that publishes the versions."""
UNBOUND: Final = "unbound"
STORED_KEYS: Final = "stored_keys"
"""For a decommissioned tenant: the keys its company's rows hold at planning time (names only), which its
`up` deletes, the application's own included; the plan lists those tenants.yaml never wrote."""
"""Keys whose stored row holds a ciphertext not bound to it (the preflight names them): overwritten."""
CREATED_FOLDER: Final = "created_folder"
"""Output: whether this stack created the folder (only then may it delete the folder)."""
MOVED_TO: Final = "moved_to"
"""In a bucket's recorded entry only, written there by `tenantctl reshard` (never by a provider): the stack the
tenant moves to. The source stack's next `up` forgets such an entry, deleting nothing
(tenant_secrets/engine/deletes.py)."""
SOURCES: Final = "sources"
"""Input: key -> the descriptor of its value's source (tenant_secrets/tenants_file/sources.py), never the value."""
TENANTS: Final = "tenants"
"""A bucket's tenants: subdomain -> its entry (tenant_secrets/engine/buckets.py), inputs and outputs alike."""
OWNERS: Final = "owners"
"""The registry's owners (tenants and platform folders) this stack manages."""
REGION: Final = "region"
"""The registry's stack region (tenant-secrets:region), or None: its refusals name the region's marker."""

SCHEMA_VERSION: Final = "schema_version"
CREATE_COMPANIES: Final = "create_companies"
KEY_VERSION: Final = "key_version"
"""The active master key version."""
KEY_VERSIONS: Final = "key_versions"
ROTATION_PENDING: Final = "rotation_pending"
BINDINGS_PENDING: Final = "bindings_pending"
"""Some row or history entry has no binding yet (written before migration 0005): the schema binds it."""
ROTATION_BATCH_SIZE: Final = "rotation_batch_size"
APP_ROLE: Final = "app_role"
APP_ROLE_PASSWORD: Final = "app_role_password_fingerprint"  # noqa: S105 - a property name
"""The fingerprint of the application role's password (the provider reads the password from the stack's config)."""
PROVISIONER_ROLE: Final = "provisioner_role"
PROVISIONER_PASSWORD: Final = "provisioner_password_fingerprint"  # noqa: S105 - a property name
"""The fingerprint of the provisioner role's password."""
WRITER_ROLE: Final = "writer_role"
"""The role the application writes as (`appWriterRole`, docs/decisions/0052)."""
WRITER_PASSWORD: Final = "writer_password_fingerprint"  # noqa: S105 - a property name
"""The fingerprint of the writer role's password."""
ROWS_ROTATED: Final = "rows_rotated"
ROLE_RIGHTS: Final = "role_rights"
"""Role -> the rights the schema gives it, in words (tenant_secrets.store.roles.role_rights): not watched, since
it follows the role names, but an input, so the preview's diff and the plan say who gains which rights."""

# --- secret keys ------------------------------------------------------------------------------------

SECRET_KEY: Final = re.compile(r"[A-Z][A-Z0-9_]*")
"""A secret's key, as tenants.yaml allows it (UPPER_CASE); every bookkeeping property is lowercase."""


def is_secret_key(name: object) -> bool:
    """Whether a name is a secret's key (a bookkeeping property's name never is)."""
    return isinstance(name, str) and SECRET_KEY.fullmatch(name) is not None


def secret_keys(props: Iterable[object]) -> set[str]:
    """The secret keys among a resource's property names: the secret inputs of a state written before
    values became write-only."""
    return {name for name in props if isinstance(name, str) and is_secret_key(name)}


# --- the schemas ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """One dynamic resource type: its token, its bookkeeping inputs and outputs, and its replace rules.

    ``replaces`` are the inputs whose change deletes the resource and writes it again (Terraform's
    RequiresReplace); ``watched`` those whose change is an update (besides the secret keys' fingerprints,
    which the providers compare themselves). ``store`` is where the plan files its keys ("" for none).
    """

    token: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    replaces: tuple[str, ...] = ()
    watched: tuple[str, ...] = ()
    store: str = ""

    def replaced_by(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The replace-forcing inputs that differ between the old state and the new inputs."""
        return [name for name in self.replaces if olds.get(name) != news.get(name)]

    def changed(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
        """Whether a watched input differs."""
        return any(olds.get(name) != news.get(name) for name in self.watched)


FOLDER = Schema(
    INFISICAL_FOLDER,
    inputs=(OWNER, ENVIRONMENT, PATH, DECOMMISSION, DECOMMISSIONED, DECLARED_FINGERPRINTS, SOURCES),
    outputs=(OWNER, ENVIRONMENT, PATH, DECOMMISSION, CREATED_FOLDER, RECORDED_FINGERPRINTS, WRITTEN_FINGERPRINTS),
    replaces=(ENVIRONMENT, PATH),
    store="infisical",
)
TENANT_ROWS = Schema(
    DATABASE_TENANT,
    inputs=(
        OWNER,
        DECOMMISSION,
        UNBOUND,
        STORED_KEYS,
        DECOMMISSIONED,
        TABLE_PREFIX,
        COMPANY_ID,
        COMPANY_NAME,
        DECLARED_FINGERPRINTS,
        SOURCES,
    ),
    outputs=(OWNER, DECOMMISSION, COMPANY_ID, COMPANY_NAME, TABLE_PREFIX, RECORDED_FINGERPRINTS),
    replaces=(OWNER, TABLE_PREFIX),
    store="database",
)
PUBLICATION = Schema(
    MASTER_KEY_PUBLICATION,
    inputs=(OWNER, ENVIRONMENT, PATH, CURRENT, DECLARED_FINGERPRINTS),
    outputs=(OWNER, ENVIRONMENT, PATH, CURRENT, RECORDED_FINGERPRINTS, WRITTEN_FINGERPRINTS),
    replaces=(ENVIRONMENT, PATH),
    store="infisical",
)
SCHEMA_WATCHED: Final = (
    SCHEMA_VERSION,
    TABLE_PREFIX,
    CREATE_COMPANIES,
    KEY_VERSION,
    KEY_VERSIONS,
    ROTATION_PENDING,
    BINDINGS_PENDING,
    APP_ROLE,
    APP_ROLE_PASSWORD,
    PROVISIONER_ROLE,
    PROVISIONER_PASSWORD,
    WRITER_ROLE,
    WRITER_PASSWORD,
)
TABLES = Schema(
    DATABASE_SCHEMA,
    inputs=(*SCHEMA_WATCHED, ROTATION_BATCH_SIZE, ROWS_ROTATED, ROLE_RIGHTS),
    outputs=(*SCHEMA_WATCHED, ROWS_ROTATED),
    watched=SCHEMA_WATCHED,
)
SCHEMA_MIGRATES: Final = (SCHEMA_VERSION, TABLE_PREFIX)
"""The schema inputs whose change is a migration (the plan's ``migrate``)."""
REGISTRY_SCHEMA = Schema(
    REGISTRY,
    inputs=(OWNERS, DECOMMISSIONED, REGION),
    outputs=(OWNERS, DECOMMISSIONED),
    watched=(OWNERS, DECOMMISSIONED),
)

SCHEMAS: Final = {s.token: s for s in (FOLDER, TENANT_ROWS, PUBLICATION, TABLES, REGISTRY_SCHEMA)}
STORES: Final = {s.token: s.store for s in SCHEMAS.values() if s.store}
"""Type token -> the store the plan files its keys under."""


# --- the inputs, as the program builds them ---------------------------------------------------------


@dataclass
class OwnerSecrets:
    """A plan entry: one owner's secrets for one store, resolved by the program, from which the shell declares
    an Infisical folder's resource or a tenant's rows' resource. Mutable where the program learns more after
    planning: ``company_id`` from the database's preflight, ``unbound`` from the row bindings it checked."""

    owner: str
    """Tenant subdomain, or platform folder name."""
    values: Mapping[str, str]
    """Secret key -> value, resolved in the program for the checks and the fingerprints; never an input."""
    sources: Mapping[str, ValueSource]
    """Secret key -> where its value comes from: what the resource records, for its provider to resolve."""
    decommissioned: Sequence[str]
    """Keys marked for deletion."""
    decommission: bool
    """The whole owner is marked for deletion."""
    path: str = ""
    """Infisical folder path (/tenants/<subdomain> or /<platform folder>); unused for the database."""
    company_id: str | None = None
    """The tenant's company: as tenants.yaml names it, or as the preflight found it."""
    company_name: str | None = None
    """Display name, used when the demo creates the company."""
    unbound: Sequence[str] = ()
    """Keys whose stored row holds a ciphertext not bound to it (the preflight names them): overwritten."""
    stored_keys: Sequence[str] = ()
    """For a decommissioned tenant: the keys its company's rows hold (the preflight lists them): all deleted."""


@dataclass(frozen=True)
class FolderInputs:
    """An Infisical folder's inputs (:data:`FOLDER`): per key, a fingerprint and a source descriptor."""

    owner: str
    environment: str
    path: str
    decommission: bool
    decommissioned: Sequence[str]
    declared: Mapping[str, str]
    sources: Mapping[str, Mapping[str, Any]]

    def props(self) -> dict[str, Any]:
        return {
            OWNER: self.owner,
            ENVIRONMENT: self.environment,
            PATH: self.path,
            DECOMMISSION: self.decommission,
            DECOMMISSIONED: sorted(self.decommissioned),
            DECLARED_FINGERPRINTS: dict(self.declared),
            SOURCES: {key: dict(self.sources[key]) for key in sorted(self.sources)},
        }


@dataclass(frozen=True)
class TenantRowsInputs:
    """A tenant's rows' inputs (:data:`TENANT_ROWS`): per key, a fingerprint and a source descriptor."""

    owner: str
    decommission: bool
    decommissioned: Sequence[str]
    table_prefix: str
    company_id: str
    company_name: str
    declared: Mapping[str, str]
    sources: Mapping[str, Mapping[str, Any]]
    unbound: Sequence[str] = ()
    stored_keys: Sequence[str] = ()

    def props(self) -> dict[str, Any]:
        return {
            OWNER: self.owner,
            DECOMMISSION: self.decommission,
            UNBOUND: sorted(self.unbound),
            STORED_KEYS: sorted(self.stored_keys),
            DECOMMISSIONED: sorted(self.decommissioned),
            TABLE_PREFIX: self.table_prefix,
            COMPANY_ID: self.company_id,
            COMPANY_NAME: self.company_name,
            DECLARED_FINGERPRINTS: dict(self.declared),
            SOURCES: {key: dict(self.sources[key]) for key in sorted(self.sources)},
        }


@dataclass(frozen=True)
class PublicationInputs:
    """A master key publication's inputs (:data:`PUBLICATION`): fingerprints only, never a key."""

    owner: str
    environment: str
    path: str
    current: int | None
    declared: Mapping[str, str]

    def props(self) -> dict[str, Any]:
        return {
            OWNER: self.owner,
            ENVIRONMENT: self.environment,
            PATH: self.path,
            CURRENT: self.current,
            DECLARED_FINGERPRINTS: dict(self.declared),
        }


@dataclass(frozen=True)
class SchemaSettings:
    """The schema resource's settings from the stack (:data:`TABLES`); of the role passwords, only their
    fingerprints (None when unset): the provider reads the passwords from the stack's config."""

    schema_version: str
    table_prefix: str
    create_companies: bool
    rotation_pending: bool
    bindings_pending: bool
    rotation_batch_size: int
    app_role: str | None
    app_role_password: str | None
    provisioner_role: str | None
    provisioner_password: str | None
    role_rights: Mapping[str, str] = field(default_factory=dict)
    writer_role: str | None = None
    writer_password: str | None = None

    def props(self, *, key_version: int, key_versions: Sequence[str]) -> dict[str, Any]:
        return {
            SCHEMA_VERSION: self.schema_version,
            TABLE_PREFIX: self.table_prefix,
            CREATE_COMPANIES: self.create_companies,
            ROTATION_PENDING: self.rotation_pending,
            BINDINGS_PENDING: self.bindings_pending,
            ROTATION_BATCH_SIZE: self.rotation_batch_size,
            APP_ROLE: self.app_role,
            APP_ROLE_PASSWORD: self.app_role_password,
            PROVISIONER_ROLE: self.provisioner_role,
            PROVISIONER_PASSWORD: self.provisioner_password,
            WRITER_ROLE: self.writer_role,
            WRITER_PASSWORD: self.writer_password,
            KEY_VERSION: key_version,
            KEY_VERSIONS: list(key_versions),
            ROWS_ROTATED: None,
            ROLE_RIGHTS: dict(self.role_rights),
        }


@dataclass(frozen=True)
class RegistryInputs:
    """The registry's inputs (:data:`REGISTRY_SCHEMA`)."""

    owners: Sequence[str]
    decommissioned: Sequence[str]
    region: str | None = None

    def props(self) -> dict[str, Any]:
        """None for the region is no input at all (the engine drops it): a stack without regions keeps its state."""
        return {OWNERS: sorted(self.owners), DECOMMISSIONED: sorted(self.decommissioned), REGION: self.region}

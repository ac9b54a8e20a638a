"""The stack's `tenant-secrets:*` configuration, read and checked once, with Pulumi-free parsing.

Two processes read it: the program (through `pulumi.Config`) and the provider plugin (through
`pulumi config --json`, components/providers.py). Both see the same
raw strings, so both parse them here and agree; a value that only the providers need (the master
keys, the derivation key) therefore never travels as a resource input and is never copied into the
state once per resource.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from tenant_secrets.secret.envelope import Keyring, MasterKeyError, parse_master_key, weak_key_problem
from tenant_secrets.secret.keyfolder import DEFAULT_FOLDER, KeyFolderError, keyring_from_folder
from tenant_secrets.secret.values import fingerprint_key
from tenant_secrets.stack.shards import Shard, ShardError
from tenant_secrets.store.settings import StoreSettings
from tenant_secrets.tenants_file.names import TENANTS_FOLDER, infisical_path_problem, region_problem
from tenant_secrets.tenants_file.source_policy import ENV_ALLOW, SHARED_FOLDERS, SourcePolicy

NAMESPACE = "tenant-secrets"
MASTER_KEY_SETTING = "masterKeyRotateEvery"
"""How often the master key rotates (a period, or off): read by `rotation.policy`, checked in the stack file."""
_KEY_VERSION = re.compile(r"v?[1-9][0-9]*")
_FIX_MASTER_KEY = "set it with `pulumi config set --secret --path 'masterKeys.v1' $(openssl rand -hex 32)`"

ConfigGetter = Callable[[str], str | None]
"""The raw string of `tenant-secrets:<key>`, or None when unset (object values as JSON)."""
FolderReader = Callable[[str, str], Mapping[str, str]]
"""An Infisical folder's secrets by key, given (environment, path)."""
KeySource = Literal["stack", "infisical"]


class StackConfigError(ValueError):
    """A setting is missing or malformed. The message names the key and the fix, never a value."""


def _int(get: ConfigGetter, key: str) -> int | None:
    raw = get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise StackConfigError(f"{NAMESPACE}:{key}: expected a whole number") from None


def _bool(get: ConfigGetter, key: str) -> bool | None:
    raw = get(key)
    if raw is None or raw == "":
        return None
    if raw not in ("true", "True", "false", "False"):
        raise StackConfigError(f"{NAMESPACE}:{key}: expected true or false")
    return raw in ("true", "True")


def _keyring(get: ConfigGetter) -> tuple[dict[str, str], int | None]:
    """The configured master keys (version -> hex) and the active version; ``({}, None)`` when none are set."""
    raw = get("masterKeys")
    try:
        keys = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        keys = None
    if not isinstance(keys, dict):
        raise StackConfigError(f"{NAMESPACE}:masterKeys: expected an object of keys by version; {_FIX_MASTER_KEY}")
    if not keys:
        return {}, None
    for name in keys:
        if not _KEY_VERSION.fullmatch(str(name)):
            raise StackConfigError(
                f"{NAMESPACE}:masterKeys.{name}: master keys are named by version, v1, v2, ...; {_FIX_MASTER_KEY}"
            )
    keyring = {str(version).lstrip("v"): str(value) for version, value in keys.items()}
    seen: dict[bytes, str] = {}
    for version, value in keyring.items():
        field = f"{NAMESPACE}:masterKeys.v{version}"
        try:
            key = parse_master_key(value, field=field)
        except MasterKeyError as err:
            raise StackConfigError(str(err)) from None
        if problem := weak_key_problem(key):
            raise StackConfigError(f"{field} {problem}; generate one with `openssl rand -hex 32`")
        if key in seen:
            raise StackConfigError(
                f"{field} is the same key as {NAMESPACE}:masterKeys.v{seen[key]}: each version needs a key of its own "
                "(a rotation to the same key protects nothing); generate one with `openssl rand -hex 32`"
            )
        seen[key] = version
    active = _int(get, "activeKeyVersion")
    key_version = max(int(v) for v in keyring) if active is None else active
    if str(key_version) not in keyring:
        raise StackConfigError(
            f"{NAMESPACE}:activeKeyVersion is {key_version}, but masterKeys has no v{key_version}; "
            f"add it with `pulumi config set --secret --path 'masterKeys.v{key_version}' <64 hex chars>`"
        )
    return keyring, key_version


def _derivation_key(get: ConfigGetter) -> bytes:
    try:
        derivation_key = bytes.fromhex(get("derivationKey") or "")
    except ValueError:
        derivation_key = b""
    fix = "set it with `pulumi config set --secret derivationKey $(openssl rand -hex 32)`"
    if len(derivation_key) < 32:
        raise StackConfigError(
            f"{NAMESPACE}:derivationKey must be a secret of 64 hex chars (it derives generated values and "
            f"fingerprints); {fix}"
        )
    if problem := weak_key_problem(derivation_key):
        raise StackConfigError(f"{NAMESPACE}:derivationKey {problem}; {fix}")
    return derivation_key


def _fingerprint_source(get: ConfigGetter, derivation_key: bytes) -> bytes:
    raw = get("fingerprintKey")
    if not raw:
        return derivation_key
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) < 32 or weak_key_problem(key):
        raise StackConfigError(
            f"{NAMESPACE}:fingerprintKey must be a secret of 64 random hex chars: the derivation key fingerprints "
            "were made with, kept while derivationKey changes "
            "(docs/guides/operations.md, 'Changing the derivation key')"
        )
    return key


def _list(get: ConfigGetter, key: str) -> object:
    """A list setting as the engine hands it (JSON text); None when unset, the text itself when not JSON."""
    raw = get(key)
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _source_policy(get: ConfigGetter, key_folder: str) -> SourcePolicy:
    policy, issues = SourcePolicy.parse(_list(get, ENV_ALLOW), _list(get, SHARED_FOLDERS), key_folder=key_folder)
    if issues:
        raise StackConfigError("\n".join(map(str, issues)))
    return policy


def _key_source(get: ConfigGetter) -> tuple[KeySource, str]:
    source = get("masterKeySource") or "stack"
    if source not in ("stack", "infisical"):
        raise StackConfigError(
            f"{NAMESPACE}:masterKeySource: expected `stack` (the stack's config holds the master keys and "
            f"`pulumi up` publishes them) or `infisical` (the key folder holds them, kept by hand)"
        )
    folder = get("keyFolder") or DEFAULT_FOLDER
    top = folder.strip("/").split("/")[0]
    if (problem := infisical_path_problem(folder)) is not None or top.lower() in ("", TENANTS_FOLDER):
        hint = problem.hint if problem else "a folder of its own outside /tenants, such as /hono-api"
        raise StackConfigError(f"{NAMESPACE}:keyFolder: not a usable Infisical folder path; {hint}")
    return ("infisical" if source == "infisical" else "stack"), "/" + folder.strip("/")


@dataclass(frozen=True)
class StackSettings:
    """The stack's configuration (Pulumi.<stack>.yaml)."""

    environment: str
    tenants_file: Path
    keyring: dict[str, str]
    """The master keys in the stack's config, version -> hex (empty with masterKeySource infisical)."""
    key_version: int | None
    """The configured active key version (None when the config holds no master keys)."""
    master_key_source: KeySource
    key_folder: str
    """The Infisical folder the application reads its master keys from (docs: tenant_secrets/secret/keyfolder.py)."""
    derivation_key: bytes
    fingerprint_source: bytes
    """The key fingerprints derive from: ``fingerprintKey`` when set, else the derivation key. Pinning it to
    the old derivation key before changing that key keeps every fingerprint, so a preview shows only the
    generated values as changed (issue 13, item 9)."""
    table_prefix: str
    create_companies: bool
    history_retention: int
    retain_on_delete: bool
    app_role: str | None
    provisioner_role: str | None
    rotation_batch_size: int
    writer_role: str | None = None
    """The role the application writes as (`appWriterRole`, docs/decisions/0052); None: no writer managed."""
    shard: Shard | None = None
    """The shard of the environment's tenants this stack applies (`shard: "k/N"`); None: all of them."""
    region: str | None = None
    """The region whose stores this stack writes (`region`, docs/decisions/0054-regions.md): it declares only the
    tenants that may live there; None in a project without regions."""
    buckets: int | None = None
    """The number of buckets per store (`buckets`): each store's tenants are declared as one resource per
    non-empty bucket, several tenants each (tenant_secrets/engine/buckets.py); None: one resource per tenant
    and store. Fixed for the stack once set."""
    sources: SourcePolicy = dataclasses.field(default_factory=SourcePolicy)
    """What value sources may read (`envAllow`, `sharedFolders`); the default refuses every environment
    variable and every folder but the owner's own."""

    @property
    def owns_environment(self) -> bool:
        """Whether this stack declares the platform folders, the schema and the master-key publication
        (unsharded, or shard 1: docs/decisions/0035)."""
        return self.shard is None or self.shard.owner

    def applies(self, subdomain: str) -> bool:
        """Whether this stack declares the tenant's resources."""
        return self.shard is None or self.shard.holds(subdomain)

    @property
    def store(self) -> StoreSettings:
        return StoreSettings(
            table_prefix=self.table_prefix,
            history_retention=self.history_retention,
            create_companies_table=self.create_companies,
        )

    @cached_property
    def master_keys(self) -> Keyring:
        """The keyring in the stack's config (masterKeySource stack); StackConfigError when none is set."""
        if self.master_key_source != "stack":
            raise StackConfigError(
                f"{NAMESPACE}:masterKeySource is infisical: the master keys are read from {self.key_folder}"
            )
        if self.key_version is None:
            raise StackConfigError(
                f"{NAMESPACE}:masterKeys is not set: the database store needs at least one master key; "
                f"{_FIX_MASTER_KEY}"
            )
        keys: dict[str | int, str] = {version: key for version, key in self.keyring.items()}
        return Keyring.from_hex(keys, self.key_version, field_prefix=f"{NAMESPACE}:masterKeys")

    def load_keyring(self, read_folder: FolderReader) -> Keyring:
        """The keyring the database store uses: the stack's config, or the key folder in Infisical.

        With masterKeySource infisical the key folder of the stack's environment is read once through
        ``read_folder``; a missing or malformed key raises StackConfigError naming the folder and the format.
        """
        if self.master_key_source == "stack":
            return self.master_keys
        try:
            return keyring_from_folder(read_folder(self.environment, self.key_folder), folder=self.key_folder)
        except KeyFolderError as err:
            raise StackConfigError(f"{err} (masterKeySource is infisical)") from None

    @cached_property
    def fingerprint_key(self) -> bytes:
        return fingerprint_key(self.fingerprint_source)

    @classmethod
    def load(cls, get: ConfigGetter, *, stack: str) -> StackSettings:
        """Every setting checked; the first problem raises StackConfigError. ``stack`` is the default environment."""
        source, key_folder = _key_source(get)
        keyring, key_version = _keyring(get)
        if source == "infisical" and keyring:
            raise StackConfigError(
                f"{NAMESPACE}:masterKeys is set although masterKeySource is infisical (the keys are read from "
                f"{key_folder}): remove masterKeys from the stack's config, or set masterKeySource to stack"
            )
        if source == "infisical" and not get("environment"):
            raise StackConfigError(
                f"{NAMESPACE}:environment must be set with masterKeySource infisical: it names the Infisical "
                f"environment whose {key_folder} holds the keys"
            )
        derivation_key = _derivation_key(get)
        if same := [v for v, key in keyring.items() if bytes.fromhex(key) == derivation_key]:
            raise StackConfigError(
                f"{NAMESPACE}:derivationKey is the same key as {NAMESPACE}:masterKeys.v{same[0]}: the derivation key "
                "must be a key of its own (it is used where the master keys are not); generate one with "
                "`openssl rand -hex 32`"
            )
        app_role = get("appRole") or None
        provisioner_role = get("provisionerRole") or None
        if provisioner_role and not app_role:
            raise StackConfigError(
                f"{NAMESPACE}:provisionerRole is set but {NAMESPACE}:appRole is not: set both, or neither"
            )
        if app_role and app_role == provisioner_role:
            raise StackConfigError(f"{NAMESPACE}:appRole and {NAMESPACE}:provisionerRole must name different roles")
        writer_role = get("appWriterRole") or None
        if writer_role and not app_role:
            raise StackConfigError(
                f"{NAMESPACE}:appWriterRole is set but {NAMESPACE}:appRole is not: the writer is fenced by the same "
                "row-level security as the read role, so set appRole too"
            )
        if writer_role and writer_role in (app_role, provisioner_role):
            other = "appRole" if writer_role == app_role else "provisionerRole"
            raise StackConfigError(
                f"{NAMESPACE}:appWriterRole is {other}'s role {writer_role!r}: the application's writer must be a role "
                "of its own (the read role stays read-only, the provisioner writes every company's rows)"
            )
        batch_size = _int(get, "rotationBatchSize")
        if batch_size is not None and batch_size < 1:
            raise StackConfigError(
                f"{NAMESPACE}:rotationBatchSize: a whole number >= 1 of rows re-encrypted per transaction"
            )
        history_retention = _int(get, "historyRetention")
        buckets = _int(get, "buckets")
        if buckets is not None and buckets < 1:
            raise StackConfigError(
                f"{NAMESPACE}:buckets: a whole number >= 1 of buckets per store (each holds the tenants whose "
                "subdomain hashes to it); leave it unset for one resource per tenant and store"
            )
        try:
            shard = Shard.parse(raw) if (raw := get("shard")) else None
        except ShardError as err:
            raise StackConfigError(str(err)) from None
        region = get("region") or None
        if region is not None and (problem := region_problem(region)) is not None:
            raise StackConfigError(f"{NAMESPACE}:region: {problem.message}; {problem.hint}")
        settings = cls(
            environment=get("environment") or stack,
            tenants_file=Path(get("tenantsFile") or "tenants.yaml"),
            keyring=keyring,
            key_version=key_version,
            master_key_source=source,
            key_folder=key_folder,
            derivation_key=derivation_key,
            fingerprint_source=_fingerprint_source(get, derivation_key),
            table_prefix=get("tablePrefix") or "",
            create_companies=_bool(get, "createCompanies") or False,
            history_retention=10 if history_retention is None else history_retention,
            retain_on_delete=_bool(get, "retainOnDelete") is not False,
            app_role=app_role,
            provisioner_role=provisioner_role,
            rotation_batch_size=batch_size or 500,
            writer_role=writer_role,
            shard=shard,
            region=region,
            buckets=buckets,
            sources=_source_policy(get, key_folder),
        )
        try:
            settings.store  # noqa: B018 - validates tablePrefix and historyRetention
        except ValueError as err:
            key = "tablePrefix" if str(err).startswith("table_prefix") else "historyRetention"
            raise StackConfigError(f"{NAMESPACE}:{key}: {str(err).partition(': ')[2]}") from None
        return settings

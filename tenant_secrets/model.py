"""The typed model of tenants.yaml, and its resolved view for one environment.

The pydantic models below are the one definition of the file: the validator checks against them
and `tenants.schema.json` is generated from them (`tenantctl schema`). What the program consumes
is the frozen, resolved view of one environment (`EnvironmentPlan`), built by `plan_environment`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

# Subdomains that would shadow the application's own hosts or our own folders.
RESERVED_SUBDOMAINS = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "cdn", "dashboard", "docs", "ftp", "internal",
        "localhost", "mail", "smtp", "static", "status", "support", "tenants", "webmail", "widget", "www",
    }
)  # fmt: skip
SUBDOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FOLDER_RE = re.compile(r"^[A-Za-z0-9_-]+$")
ENV_RE = re.compile(r"^[a-z0-9-]{1,64}$")
MAX_KEY_LENGTH = 255


def check_subdomain(value: str) -> str:
    if not SUBDOMAIN_RE.match(value):
        raise ValueError(
            "must be a DNS label: 1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen"
        )
    if value in RESERVED_SUBDOMAINS:
        raise ValueError(f"'{value}' is reserved (it would shadow one of the application's own hosts)")
    return value


def check_key(value: str) -> str:
    if len(value) > MAX_KEY_LENGTH or not KEY_RE.match(value):
        raise ValueError(
            "secret keys are environment-style names: an uppercase letter, then uppercase letters, digits "
            "and underscores (Infisical also refuses ':' and '/'), at most 255 characters"
        )
    return value


def check_environment(value: str) -> str:
    if not ENV_RE.match(value):
        raise ValueError("environment slugs are lowercase letters, digits and hyphens, up to 64 characters")
    return value


def check_folder(value: str) -> str:
    if not FOLDER_RE.match(value):
        raise ValueError("Infisical folder names are letters, digits, hyphens and underscores")
    return value


Subdomain = Annotated[str, AfterValidator(check_subdomain)]
SecretKey = Annotated[str, AfterValidator(check_key)]
Environment = Annotated[str, AfterValidator(check_environment)]
FolderName = Annotated[str, AfterValidator(check_folder)]
Storage = Literal["infisical", "database", "both"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- value sources, as written in the file ----------------------------------------------------------


class FromConfig(_Strict):
    """The stack's encrypted config: `pulumi config set --secret --path 'secrets.<owner>.<KEY>'`."""

    from_: Literal["config"] = Field(alias="from")
    key: str | None = Field(None, description="Another dotted path inside the `secrets` config object")


class FromEnv(_Strict):
    """An environment variable of the process that runs pulumi (how CI passes secrets)."""

    from_: Literal["env"] = Field(alias="from")
    var: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The variable's name")


class FromInfisical(_Strict):
    """An existing Infisical secret, read at preview time (the migration source)."""

    from_: Literal["infisical"] = Field(alias="from")
    path: str = Field(pattern=r"^(/[A-Za-z0-9_-]+)*/?$", description="Folder path, e.g. /legacy/acme")
    key: str = Field(min_length=1, description="The secret's key in that folder")
    environment: Environment | None = Field(None, description="Default: the stack's environment")


class GenerateSpec(_Strict):
    bytes: int = Field(32, ge=16, le=128, description="Random bytes before encoding")
    encoding: Literal["base64", "base64url", "hex"] = "base64"


class Generated(_Strict):
    """A value generated once per rotation marker (derived from the stack's derivation key)."""

    generate: GenerateSpec
    rotation: str = Field("1", min_length=1, description="Change it to generate a new value")


class Literal_(_Strict):
    """A literal, non-secret value (a sender address, a port)."""

    value: str


class Decommission(_Strict):
    """The explicit marker that deletes this key on the next `pulumi up`."""

    decommission: Literal[True]


def _source_tag(raw: Any) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    if "from" in raw:
        return f"from-{raw['from']}" if raw["from"] in ("config", "env", "infisical") else None
    for marker in ("generate", "value", "decommission"):
        if marker in raw:
            return marker
    return None


SourceSpec = Annotated[
    Annotated[FromConfig, Tag("from-config")]
    | Annotated[FromEnv, Tag("from-env")]
    | Annotated[FromInfisical, Tag("from-infisical")]
    | Annotated[Generated, Tag("generate")]
    | Annotated[Literal_, Tag("value")]
    | Annotated[Decommission, Tag("decommission")],
    Discriminator(
        _source_tag,
        custom_error_type="value_source",
        custom_error_message=(
            "needs exactly one value source: {from: config}, {from: env, var: NAME}, "
            "{from: infisical, path: /p, key: K}, {generate: {bytes: 32}}, {value: ...} or {decommission: true}"
        ),
    ),
]
GroupField = Annotated[str, AfterValidator(lambda v: v if FIELD_RE.match(v) else _bad_field(v))]
Group = dict[GroupField, SourceSpec]


def _bad_field(value: str) -> str:
    raise ValueError("group fields are lowercase names (they become KEY_FIELD)")


def _secret_tag(raw: Any) -> str:
    if isinstance(raw, Mapping) and raw and _source_tag(raw) is None and all(str(k).islower() for k in raw):
        return "group"
    return "source"


SecretSpec = Annotated[
    Annotated[SourceSpec, Tag("source")] | Annotated[Group, Tag("group")],
    Discriminator(_secret_tag),
]
Secrets = dict[SecretKey, SecretSpec]


# --- the file --------------------------------------------------------------------------------------


class Override(_Strict):
    secrets: Secrets = Field(default_factory=dict, description="Replaces or adds secrets in this environment")


class Tenant(_Strict):
    subdomain: Subdomain = Field(
        description="The tenant's subdomain: its Infisical folder /tenants/<subdomain>"
    )
    name: str | None = Field(None, description="Display name")
    company_id: UUID | None = Field(None, description="companies.id; else looked up by subdomain")
    storage: Storage | None = Field(None, description="Where its secrets live; default from `defaults`")
    environments: list[Environment] | None = Field(
        None, description="Where it exists; default from `defaults`"
    )
    secrets: Secrets = Field(default_factory=dict)
    overrides: dict[Environment, Override] = Field(
        default_factory=dict, description="Per-environment secrets, e.g. a test key in dev"
    )
    decommission: bool = Field(False, description="Delete this tenant's secrets everywhere on the next up")


class Defaults(_Strict):
    storage: Storage = "both"
    environments: list[Environment] = Field(default_factory=lambda: ["dev", "staging", "prod"])
    secrets: Secrets = Field(
        default_factory=dict, description="Secrets every tenant gets unless it overrides them"
    )


class TenantsDocument(_Strict):
    """tenants.yaml: which tenants exist in which environments, and their secrets."""

    version: Literal[1]
    defaults: Defaults = Field(default_factory=Defaults)
    platform: dict[FolderName, Secrets] = Field(
        default_factory=dict,
        description="The application's own Infisical folders, e.g. hono-api -> /hono-api",
    )
    tenants: list[Tenant] = Field(default_factory=list)


# --- the resolved view of one environment -----------------------------------------------------------


@dataclass(frozen=True)
class ConfigSource:
    path: tuple[str, ...]


@dataclass(frozen=True)
class EnvSource:
    var: str


@dataclass(frozen=True)
class GeneratedSource:
    bytes: int
    encoding: str
    rotation: str


@dataclass(frozen=True)
class InfisicalSource:
    path: str
    key: str
    environment: str | None


@dataclass(frozen=True)
class LiteralSource:
    value: str


ValueSource = ConfigSource | EnvSource | GeneratedSource | InfisicalSource | LiteralSource
Position = tuple[int, int]


@dataclass(frozen=True)
class TenantPlan:
    subdomain: str
    name: str | None
    company_id: str | None
    storage: frozenset[str]
    secrets: Mapping[str, ValueSource]
    decommissioned_keys: frozenset[str]
    decommission: bool
    locations: Mapping[str, Position] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderPlan:
    name: str
    path: str
    secrets: Mapping[str, ValueSource]
    decommissioned_keys: frozenset[str]
    locations: Mapping[str, Position] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvironmentPlan:
    environment: str
    tenants: tuple[TenantPlan, ...]
    platform: tuple[FolderPlan, ...]


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.field}: {self.message}"
        return f"{text}. {self.hint}" if self.hint else text


class TenantsFileError(Exception):
    """Everything wrong with a tenants file, each issue with file, line, column and field."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(map(str, self.issues)))


@dataclass(frozen=True)
class TenantsFile:
    """A loaded, valid tenants file, with the position of every node for later messages."""

    path: str
    document: TenantsDocument
    positions: Mapping[tuple[str | int, ...], Position]

    def position(self, loc: tuple[str | int, ...]) -> Position:
        while loc and loc not in self.positions:
            loc = loc[:-1]
        return self.positions.get(loc, (1, 1))


def _flatten(
    secrets: Mapping[str, Any], loc: tuple[str | int, ...]
) -> dict[str, tuple[Any, tuple[str | int, ...]]]:
    """Groups become KEY_FIELD keys; each key keeps the location of its declaration."""
    flat: dict[str, tuple[Any, tuple[str | int, ...]]] = {}
    for key, spec in secrets.items():
        if isinstance(spec, dict):
            for name, source in spec.items():
                flat[f"{key}_{name.upper()}"] = (source, (*loc, key, name))
        else:
            flat[key] = (spec, (*loc, key))
    return flat


def _source(spec: Any, owner: str, key: str) -> ValueSource:
    if isinstance(spec, FromConfig):
        return ConfigSource(tuple(spec.key.split(".")) if spec.key else (owner, key))
    if isinstance(spec, FromEnv):
        return EnvSource(spec.var)
    if isinstance(spec, FromInfisical):
        return InfisicalSource(spec.path.rstrip("/") or "/", spec.key, spec.environment)
    if isinstance(spec, Generated):
        return GeneratedSource(spec.generate.bytes, spec.generate.encoding, spec.rotation)
    if isinstance(spec, Literal_):
        return LiteralSource(spec.value)
    raise TypeError(f"not a value source: {type(spec).__name__}")  # pragma: no cover


def _resolve(
    tf: TenantsFile, owner: str, layers: list[tuple[Mapping[str, Any], tuple[str | int, ...]]]
) -> tuple[dict[str, ValueSource], frozenset[str], dict[str, Position]]:
    merged: dict[str, tuple[Any, tuple[str | int, ...]]] = {}
    for secrets, loc in layers:
        merged.update(_flatten(secrets, loc))
    sources: dict[str, ValueSource] = {}
    gone: set[str] = set()
    locations: dict[str, Position] = {}
    for key, (spec, loc) in sorted(merged.items()):
        locations[key] = tf.position(loc)
        if isinstance(spec, Decommission):
            gone.add(key)
        else:
            sources[key] = _source(spec, owner, key)
    return sources, frozenset(gone), locations


def plan_environment(tf: TenantsFile, environment: str) -> EnvironmentPlan:
    """The tenants and platform folders of one environment, defaults and overrides applied."""
    doc = tf.document
    tenants: list[TenantPlan] = []
    for index, tenant in enumerate(doc.tenants):
        environments = tenant.environments if tenant.environments is not None else doc.defaults.environments
        if environment not in environments and not tenant.decommission:
            continue
        storage = tenant.storage or doc.defaults.storage
        layers: list[tuple[Mapping[str, Any], tuple[str | int, ...]]] = [
            (doc.defaults.secrets, ("defaults", "secrets")),
            (tenant.secrets, ("tenants", index, "secrets")),
        ]
        if environment in tenant.overrides:
            layers.append(
                (
                    tenant.overrides[environment].secrets,
                    ("tenants", index, "overrides", environment, "secrets"),
                )
            )
        sources, gone, locations = _resolve(tf, tenant.subdomain, layers)
        tenants.append(
            TenantPlan(
                subdomain=tenant.subdomain,
                name=tenant.name,
                company_id=str(tenant.company_id) if tenant.company_id else None,
                storage=frozenset({"infisical", "database"} if storage == "both" else {storage}),
                secrets={} if tenant.decommission else sources,
                decommissioned_keys=gone,
                decommission=tenant.decommission,
                locations=locations,
            )
        )
    platform = []
    for name, secrets in doc.platform.items():
        sources, gone, locations = _resolve(tf, name, [(secrets, ("platform", name))])
        platform.append(FolderPlan(name, f"/{name}", sources, gone, locations))
    return EnvironmentPlan(environment, tuple(tenants), tuple(platform))

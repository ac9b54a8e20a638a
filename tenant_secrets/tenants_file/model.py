"""The typed model of tenants.yaml, and its resolved view for one environment.

Three layers, each feeding the next:

* the pydantic models (`TenantsDocument` and below) are the one definition of the file: the
  loader validates against them and `tenants.schema.json` is generated from them;
* `TenantsFile` is a valid document plus the position of every node, for messages;
* `plan_environment` resolves one environment into frozen dataclasses (`EnvironmentPlan`):
  defaults, overrides and groups applied, each key with its value source. That is all the
  Pulumi program sees of the file.

The shaping decisions are in docs/decisions/0004-value-sources.md, 0012-tenants-file-shape.md and
0013-secret-groups.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from tenant_secrets.tenants_file.gc_pause import gc_paused
from tenant_secrets.tenants_file.names import (
    KEY_MAX,
    RESERVED_FOLDERS,
    RESERVED_SUBDOMAINS,
    SUBDOMAIN_MAX,
    Problem,
    config_path_problem,
    env_var_problem,
    environment_problem,
    folder_problem,
    group_field_problem,
    infisical_key_problem,
    infisical_path_problem,
    key_problem,
    region_problem,
    subdomain_problem,
)
from tenant_secrets.tenants_file.periods import DATE_PATTERN, PERIOD_PATTERN, date_problem, period_problem
from tenant_secrets.tenants_file.sources import (
    ConfigSource,
    EnvSource,
    GeneratedSource,
    InfisicalSource,
    LiteralSource,
    ValueSource,
)

# --- names are checked by tenant_secrets/tenants_file/names.py; these are the file's own words -------------------

SOURCE_MARKERS = ("from", "generate", "value", "decommission")
FROM_KINDS = ("config", "env", "infisical")


def _checked(problem: Callable[[str], Problem | None], kind: str) -> AfterValidator:
    """A validator raising a custom pydantic error that carries our message and hint."""

    def check(value: str) -> str:
        found = problem(value)
        if found is not None:
            raise PydanticCustomError(kind, found.message, {"hint": found.hint})
        return value

    return AfterValidator(check)


def _string(pattern: str, description: str, **extra: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "description": description, **extra})


Subdomain = Annotated[
    str,
    _checked(subdomain_problem, "subdomain"),
    _string(
        r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        "A DNS label: 1-63 lowercase letters, digits and hyphens, no hyphen at either end; not a reserved name",
        **{"not": {"enum": sorted(RESERVED_SUBDOMAINS)}},
    ),
]
SecretKey = Annotated[
    str,
    _checked(key_problem, "secret_key"),
    _string(r"^[A-Z][A-Z0-9_]*$", "An environment-style name, e.g. STRIPE_SECRET_KEY", maxLength=KEY_MAX),
]
GroupField = Annotated[
    str,
    _checked(group_field_problem, "group_field"),
    _string(r"^[a-z][a-z0-9_]*$", "A lowercase field; the group SMTP with field host gives the key SMTP_HOST"),
]
Environment = Annotated[
    str,
    _checked(environment_problem, "environment"),
    _string(r"^[a-z0-9]+(-[a-z0-9]+)*$", "An environment's slug, as in Infisical (dev, staging, prod)"),
]
Region = Annotated[
    str,
    _checked(region_problem, "region"),
    _string(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", "A region's name, e.g. eu or us-east", maxLength=32),
]
Regions = Annotated[list[Region], Field(min_length=1)]
FolderName = Annotated[
    str,
    _checked(folder_problem, "folder"),
    _string(
        r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        "A platform folder: hono-api is the Infisical folder /hono-api",
        maxLength=SUBDOMAIN_MAX,
        **{"not": {"enum": sorted(RESERVED_FOLDERS)}},
    ),
]
EnvVarName = Annotated[
    str, _checked(env_var_problem, "env_var"), _string(r"^[A-Za-z_][A-Za-z0-9_]*$", "The variable's name")
]
ConfigPath = Annotated[
    str,
    _checked(config_path_problem, "config_path"),
    _string(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", "A dotted path inside the stack config object `secrets`"),
]
InfisicalPath = Annotated[
    str,
    _checked(infisical_path_problem, "infisical_path"),
    _string(r"^(/|(/[A-Za-z0-9_-]+)+/?)$", "The folder that holds the secret, e.g. /legacy/acmecorp"),
]
InfisicalKey = Annotated[
    str,
    _checked(infisical_key_problem, "infisical_key"),
    _string(r"^[^\s:/]([^:/]*[^\s:/])?$", "The secret's key in that folder", maxLength=KEY_MAX),
]
Rotation = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    Field(min_length=1),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "minLength": 1,
            "description": 'A marker: change it ("1" -> "2", or a date) to generate a new value',
        }
    ),
]
Period = Annotated[
    str,
    _checked(period_problem, "period"),
    _string(PERIOD_PATTERN, "A number of days, e.g. 90d"),
]
IsoDate = Annotated[str, _checked(date_problem, "date"), _string(DATE_PATTERN, "A date, YYYY-MM-DD", format="date")]
_EXPIRES = "The date this value stops working (YYYY-MM-DD): `tenantctl rotation status` reports it"
_REVIEW_BY = "The date someone must review or replace this value by (YYYY-MM-DD)"
Storage = Literal["infisical", "database", "both"]
Encoding = Literal["base64", "base64url", "hex"]


class _Strict(BaseModel):
    """Every part of the file is closed: an unknown field is a mistake, reported with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- value sources, as written in the file ---------------------------------------------------------


_ALLOW_EMPTY = "Accept an empty value; refused by default, since an empty secret is most often one nobody set"


class FromConfig(_Strict):
    """The stack's encrypted config object `secrets`: by default at <owner>.<KEY>
    (`pulumi config set --secret --path 'secrets.codewiser.STRIPE_SECRET_KEY'`)."""

    model_config = ConfigDict(title="{from: config}", json_schema_extra={"examples": [{"from": "config"}]})

    from_: Literal["config"] = Field(alias="from")
    key: ConfigPath | None = Field(None, description="Another dotted path inside the `secrets` config object")
    allow_empty: bool = Field(False, description=_ALLOW_EMPTY)
    expires: IsoDate | None = Field(None, description=_EXPIRES)
    review_by: IsoDate | None = Field(None, description=_REVIEW_BY)


class FromEnv(_Strict):
    """An environment variable of the process that runs pulumi (how CI passes secrets), one the stack's
    envAllow lists; never a credential of the run itself (docs/decisions/0041)."""

    model_config = ConfigDict(
        title="{from: env}", json_schema_extra={"examples": [{"from": "env", "var": "CODEWISER_SENDGRID_API_KEY"}]}
    )

    from_: Literal["env"] = Field(alias="from")
    var: EnvVarName = Field(description="The variable's name")
    expires: IsoDate | None = Field(None, description=_EXPIRES)
    review_by: IsoDate | None = Field(None, description=_REVIEW_BY)


class FromInfisical(_Strict):
    """An existing Infisical secret, read when the program runs (the source of a migration): in the owner's
    own folder, or in one the stack's sharedFolders lists (docs/decisions/0041)."""

    model_config = ConfigDict(
        title="{from: infisical}",
        json_schema_extra={"examples": [{"from": "infisical", "path": "/legacy/acmecorp", "key": "STRIPE_KEY"}]},
    )

    from_: Literal["infisical"] = Field(alias="from")
    path: InfisicalPath = Field(
        description="The folder that holds the secret: the owner's own, or one the stack's sharedFolders lists"
    )
    key: InfisicalKey = Field(description="The secret's key in that folder")
    environment: Environment | None = Field(None, description="Its environment; default: the stack's environment")
    allow_empty: bool = Field(False, description=_ALLOW_EMPTY)
    expires: IsoDate | None = Field(None, description=_EXPIRES)
    review_by: IsoDate | None = Field(None, description=_REVIEW_BY)


class GenerateSpec(_Strict):
    """How many random bytes, and how they are written out."""

    bytes: Annotated[int, Strict()] = Field(
        32, ge=16, le=128, description="Random bytes, 16 (128 bits) to 128; default 32"
    )
    encoding: Encoding = Field(
        "base64", description="How the bytes are written: base64 (default), base64url (unpadded) or hex"
    )


class Generated(_Strict):
    """A random value generated for this owner, key and environment; stable until `rotation` changes."""

    model_config = ConfigDict(
        title="{generate: ...}",
        json_schema_extra={"examples": [{"generate": {"bytes": 32, "encoding": "hex"}, "rotation": "1"}]},
    )

    generate: GenerateSpec = Field(description="{bytes: 32, encoding: base64|base64url|hex}")
    rotation: Rotation = "1"
    rotate_every: Period | None = Field(
        None, description="Regenerate it this often (90d): `tenantctl rotation bump --due` moves `rotation`"
    )


class LiteralValue(_Strict):
    """A literal, non-secret value (a sender address, a port): it is committed in the clear."""

    model_config = ConfigDict(title="{value: ...}", json_schema_extra={"examples": [{"value": "smtp.example.test"}]})

    value: Annotated[str, Strict()] = Field(description='Text; quote numbers ("587")')


class DecommissionKey(_Strict):
    """The explicit, reviewable marker that deletes this key on the next `pulumi up`."""

    model_config = ConfigDict(title="{decommission: true}")

    decommission: Literal[True] = Field(description="Only true: the key is deleted from its stores on the next up")


SourceSpec = FromConfig | FromEnv | FromInfisical | Generated | LiteralValue | DecommissionKey
_SOURCE_TAGS: dict[str, type[BaseModel]] = {
    "from-config": FromConfig,
    "from-env": FromEnv,
    "from-infisical": FromInfisical,
    "generate": Generated,
    "value": LiteralValue,
    "decommission": DecommissionKey,
}

SOURCE_MODELS = tuple(_SOURCE_TAGS.values())


def source_tag(raw: Any) -> str | None:
    """Which value source a mapping declares, by its first marker; None when it declares none."""
    if isinstance(raw, BaseModel):
        return next((tag for tag, model in _SOURCE_TAGS.items() if isinstance(raw, model)), None)
    if not isinstance(raw, Mapping):
        return None
    marker = next((m for m in SOURCE_MARKERS if m in raw), None)
    if marker == "from":
        return f"from-{raw['from']}" if raw["from"] in FROM_KINDS else None
    return marker


def is_group(raw: Any) -> bool:
    """A group is a mapping without a source marker whose fields hold sources (mappings)."""
    return (
        isinstance(raw, Mapping)
        and not any(m in raw for m in SOURCE_MARKERS)
        and any(isinstance(v, Mapping | BaseModel) for v in raw.values())
    )


Source = Annotated[
    Annotated[FromConfig, Tag("from-config")]
    | Annotated[FromEnv, Tag("from-env")]
    | Annotated[FromInfisical, Tag("from-infisical")]
    | Annotated[Generated, Tag("generate")]
    | Annotated[LiteralValue, Tag("value")]
    | Annotated[DecommissionKey, Tag("decommission")],
    Discriminator(source_tag, custom_error_type="value_source", custom_error_message="no value source"),
]
Group = Annotated[
    dict[GroupField, Source],
    Field(
        min_length=1,
        title="group",
        description="One logical credential: SMTP: {host: ..., port: ...} gives the keys SMTP_HOST, SMTP_PORT",
    ),
]
SecretSpec = Annotated[
    Annotated[Source, Tag("source")] | Annotated[Group, Tag("group")],
    Discriminator(lambda raw: "group" if is_group(raw) else "source"),
]
Secrets = dict[SecretKey, SecretSpec]


# --- the file --------------------------------------------------------------------------------------


class Override(_Strict):
    """What differs in one environment."""

    secrets: Secrets = Field(
        default_factory=dict, description="Replaces or adds keys in this environment ({decommission: true} drops one)"
    )


class Tenant(_Strict):
    """A company, keyed by its subdomain."""

    subdomain: Subdomain = Field(description="The tenant's subdomain; its Infisical folder is /tenants/<subdomain>")
    name: Annotated[str, Strict()] | None = Field(None, description="Display name")
    company_id: UUID | None = Field(
        None, description="The company's companies.id (a UUID); when absent, it is looked up by subdomain"
    )
    storage: Storage | None = Field(
        None, description="Where its secrets live: infisical, database or both; default: defaults.storage"
    )
    environments: Annotated[list[Environment], Field(min_length=1)] | None = Field(
        None, description="The environments it exists in (a list); default: defaults.environments"
    )
    secrets: Secrets = Field(default_factory=dict, description="KEY: value source, or GROUP: {field: value source}")
    overrides: dict[Environment, Override] = Field(
        default_factory=dict, description="Per environment: {dev: {secrets: {...}}}"
    )
    regions: Regions | None = Field(
        None, description="The regions its secrets may live in (a subset of `regions`); default: defaults.regions"
    )
    decommission: Annotated[bool, Strict()] | Regions = Field(
        False,
        description="True deletes this tenant's secrets in every environment on the next up; a list of regions "
        "([us]) deletes them in those regions only (docs/decisions/0054-regions.md)",
    )

    @property
    def decommissioned(self) -> bool:
        """Decommissioned everywhere (`decommission: true`); a list of regions decommissions it there only."""
        return self.decommission is True

    def leaves(self, region: str | None) -> bool:
        """Whether it is decommissioned in the stack's ``region``: everywhere, or that region listed."""
        return self.decommission is True or (
            region is not None and isinstance(self.decommission, list) and region in self.decommission
        )


class PlatformFolder(_Strict):
    """One of the application's own Infisical folders (the seed's /hono-api), in every environment."""

    secrets: Secrets = Field(default_factory=dict, description="KEY: value source, or GROUP: {field: value source}")
    overrides: dict[Environment, Override] = Field(
        default_factory=dict, description="Per environment: {dev: {secrets: {...}}}"
    )
    rotate_every: Period | None = Field(None, description="The rotation period of its generated secrets (90d)")


class Defaults(_Strict):
    """What a tenant has unless it says otherwise."""

    storage: Storage = Field(description="Where a tenant's secrets live: infisical, database or both")
    environments: Annotated[list[Environment], Field(min_length=1)] = Field(
        description="Every environment of the project, in order; a tenant lists a subset"
    )
    secrets: Secrets = Field(
        default_factory=dict, description="Keys every tenant gets (each its own value); a tenant may override them"
    )
    rotate_every: Period | None = Field(
        None, description="The rotation period of every tenant's generated secrets (90d); a secret's own wins"
    )
    regions: Regions | None = Field(
        None, description="The regions of a tenant that lists none; unset: every tenant lists its own"
    )


class TenantsDocument(_Strict):
    """tenants.yaml: which tenants exist in which environments, and where each of their secrets comes from."""

    model_config = ConfigDict(title="tenants.yaml")

    version: Literal[1] = Field(description="The file format's version: 1")
    defaults: Defaults = Field(
        description="What every tenant starts from, e.g. {storage: both, environments: [dev, staging, prod]}"
    )
    regions: Regions | None = Field(
        None,
        description="Every region of the project (each its own stacks, stores and master keys); unset: no regions",
    )
    platform: dict[FolderName, PlatformFolder] = Field(
        default_factory=dict, description="The application's own folders, Infisical only: hono-api -> /hono-api"
    )
    tenants: list[Tenant] = Field(default_factory=list)

    def regions_of(self, tenant: Tenant) -> list[str] | None:
        """Where the tenant's secrets may live: its own `regions`, else defaults.regions; None in a file
        without regions (and for a tenant that lists none where the file sets no default: the validator
        refuses that)."""
        if self.regions is None:
            return None
        return tenant.regions or self.defaults.regions


# --- positions and issues --------------------------------------------------------------------------

Loc = tuple[str | int, ...]
Position = tuple[int, int]
_TYPO_MAX = 100
# What an issue shows of its field, message and hint, at most: they quote what the file says, and a
# 10 MB line must not be printed back (the middle gives way, so the start and the rule at the end stay).
FIELD_SHOWN = 120
TEXT_SHOWN = 300


def clipped(text: str, limit: int, *, count: bool = True) -> str:
    """text, or its start and end around what is left out: '…' and, with count, how much."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    head = limit - tail - (30 if count else 1)
    gap = f"…({len(text) - head - tail:,} characters)…" if count else "…"
    return f"{text[:head]}{gap}{text[-tail:]}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The start of a hint, "did you mean 'x'? ", for the closest choice; empty if none is close (or the
    word is too long to be a typo of one: comparing a 10 MB value would take seconds)."""
    if len(word) > _TYPO_MAX:
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def dotted(loc: Loc) -> str:
    """('tenants', 2, 'secrets', 'X') -> 'tenants[2].secrets.X'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


@dataclass(frozen=True)
class Positions:
    """(line, column), 1-based, of every value and every mapping key of a YAML document, by data path."""

    values: Mapping[Loc, Position]
    keys: Mapping[Loc, Position]

    def value(self, loc: Loc) -> Position:
        """Where the value at loc starts, or else its nearest ancestor."""
        return self._nearest(self.values, loc)

    def key(self, loc: Loc) -> Position:
        """Where the key naming loc starts (for unknown or duplicate fields), or else its value."""
        return self.keys[loc] if loc in self.keys else self.value(loc)

    @staticmethod
    def _nearest(table: Mapping[Loc, Position], loc: Loc) -> Position:
        while loc and loc not in table:
            loc = loc[:-1]
        return table.get(loc, (1, 1))


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", clipped(self.field, FIELD_SHOWN, count=False))  # a field has no space
        object.__setattr__(self, "message", clipped(self.message, TEXT_SHOWN))
        object.__setattr__(self, "hint", clipped(self.hint, TEXT_SHOWN))

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.field}: {self.message}"
        return f"{text}. {self.hint[0].upper()}{self.hint[1:]}" if self.hint else text


def issue_at(file: str, positions: Positions, loc: Loc, message: str, hint: str = "", *, at_key: bool = False) -> Issue:
    line, column = positions.key(loc) if at_key else positions.value(loc)
    return Issue(file, line, column, dotted(loc), message, hint)


MAX_ISSUES = 1000  # a file with more gets the first ones and a count: nobody reads a hundred thousand


class TenantsFileError(Exception):
    """Everything wrong with a tenants file, each issue with file, line, column and field: the first
    MAX_ISSUES in file order, and how many `more` there are (beyond those, or left undescribed)."""

    def __init__(self, issues: Sequence[Issue], *, undescribed: int = 0) -> None:
        ordered = sorted(issues, key=lambda i: (i.file, i.line, i.column, i.field))
        self.issues = tuple(ordered[:MAX_ISSUES])
        self.more = len(ordered) - len(self.issues) + undescribed
        lines = [str(issue) for issue in self.issues]
        if self.more and self.issues:
            lines.append(more_problems(self.issues[0].file, self.more))
        super().__init__("\n".join(lines))


def more_problems(file: str, count: int) -> str:
    return f"{file}: {count:,} more problem(s) not shown; fix these and run again"


@dataclass(frozen=True)
class TenantsFile:
    """A loaded, valid tenants file, with the position of every node for later messages."""

    path: str
    document: TenantsDocument
    positions: Positions


# --- the resolved view of one environment -----------------------------------------------------------


@dataclass(frozen=True)
class TenantPlan:
    """One tenant in one environment, as the program writes it to its stores."""

    subdomain: str
    name: str | None
    company_id: str | None
    storage: frozenset[str]  # a subset of {"infisical", "database"}
    secrets: Mapping[str, ValueSource]  # flattened keys, overrides applied, decommissioned keys left out
    decommissioned_keys: frozenset[str]
    decommission: bool
    locations: Mapping[str, Position] = field(default_factory=dict)  # key -> where its source is declared
    fields: Mapping[str, str] = field(default_factory=dict)  # key -> the declaring field, tenants[0].secrets.X


@dataclass(frozen=True)
class FolderPlan:
    """One platform folder in one environment (Infisical only)."""

    name: str
    path: str  # "/hono-api"
    secrets: Mapping[str, ValueSource]
    decommissioned_keys: frozenset[str]
    locations: Mapping[str, Position] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Elsewhere:
    """A tenant whose regions exclude the stack's region: nothing of it may be in this region's stores."""

    subdomain: str
    company_id: str | None
    regions: tuple[str, ...]


@dataclass(frozen=True)
class EnvironmentPlan:
    """Everything one stack applies: the tenants that exist in its environment (and region), and the platform
    folders."""

    environment: str
    tenants: tuple[TenantPlan, ...]
    platform: tuple[FolderPlan, ...]
    others_use_database: bool = False
    """On an environment's owner shard: a tenant of another shard keeps rows in the database, so this stack
    keeps the schema and the master-key publication even when none of its own tenants does."""
    region: str | None = None
    """The stack's region (docs/decisions/0054-regions.md); None in a file without regions."""
    elsewhere: tuple[Elsewhere, ...] = ()
    """The tenants of the file whose regions exclude this region (`tenantctl verify` checks none is here)."""


def flatten(secrets: Mapping[str, Any], loc: Loc) -> dict[str, tuple[Any, Loc]]:
    """One layer of secrets as flat keys: a group SMTP {host: ...} becomes SMTP_HOST; each with its location."""
    flat: dict[str, tuple[Any, Loc]] = {}
    for key, spec in secrets.items():
        if isinstance(spec, dict):
            for name, source in spec.items():
                flat[f"{key}_{name.upper()}"] = (source, (*loc, key, name))
        else:
            flat[key] = (spec, (*loc, key))
    return flat


def _value_source(spec: BaseModel, owner: str, key: str) -> ValueSource:
    if isinstance(spec, FromConfig):
        return ConfigSource(tuple(spec.key.split(".")) if spec.key else (owner, key), spec.allow_empty)
    if isinstance(spec, FromEnv):
        return EnvSource(spec.var)
    if isinstance(spec, FromInfisical):
        return InfisicalSource(spec.path.rstrip("/") or "/", spec.key, spec.environment, spec.allow_empty)
    if isinstance(spec, Generated):
        return GeneratedSource(spec.generate.bytes, spec.generate.encoding, spec.rotation)
    if isinstance(spec, LiteralValue):
        return LiteralSource(spec.value)
    raise TypeError(f"not a value source: {type(spec).__name__}")


@dataclass(frozen=True)
class _Resolved:
    secrets: dict[str, ValueSource]
    decommissioned: frozenset[str]
    locations: dict[str, Position]
    fields: dict[str, str]


def _resolve(positions: Positions, owner: str, layers: Sequence[tuple[Mapping[str, Any], Loc]]) -> _Resolved:
    """Later layers win key by key (a group field overrides only that field)."""
    merged: dict[str, tuple[Any, Loc]] = {}
    for secrets, loc in layers:
        merged.update(flatten(secrets, loc))
    sources: dict[str, ValueSource] = {}
    gone: set[str] = set()
    locations: dict[str, Position] = {}
    fields: dict[str, str] = {}
    for key, (spec, loc) in sorted(merged.items()):
        locations[key] = positions.value(loc)
        fields[key] = dotted(loc)
        if isinstance(spec, DecommissionKey):
            gone.add(key)
        else:
            sources[key] = _value_source(spec, owner, key)
    return _Resolved(sources, frozenset(gone), locations, fields)


def _layers(
    base: Loc, secrets: Mapping[str, Any], overrides: Mapping[str, Override], environment: str
) -> list[tuple[Mapping[str, Any], Loc]]:
    layers: list[tuple[Mapping[str, Any], Loc]] = [(secrets, (*base, "secrets"))]
    if environment in overrides:
        layers.append((overrides[environment].secrets, (*base, "overrides", environment, "secrets")))
    return layers


def plan_environment(tf: TenantsFile, environment: str, region: str | None = None) -> EnvironmentPlan:
    """The tenants and platform folders of one environment (in one region), defaults, overrides and groups
    applied.

    Tenants that do not exist in the environment are left out, except decommissioned ones: they are
    there (with no secrets) in every environment, so each stack deletes what it holds of them. In a file
    with regions, so are the tenants whose regions exclude ``region`` (listed in `elsewhere`), except those
    decommissioned there (`decommission: [region]`): they are planned as decommissioned.
    Raises TenantsFileError for an environment the file does not declare, rather than planning nothing, and
    for a region that does not match the file's (a stack without one in a file with regions, or the reverse).
    """
    with gc_paused():
        return _plan_environment(tf, environment, region)


def plan_before(tf: TenantsFile, environment: str, region: str | None) -> EnvironmentPlan | None:
    """An earlier file's plan of ``environment`` in ``region``, to compare a later file's with: a file from before
    regions plans without one (its tenants lived everywhere); None when it declares regions but not this one
    (nothing was planned in that region)."""
    declared = tf.document.regions
    if declared is None:
        return plan_environment(tf, environment)
    if region not in declared:
        return None
    return plan_environment(tf, environment, region)


def region_issue(tf: TenantsFile, region: str | None) -> Issue | None:
    """Why a stack with ``region`` (None: the stack sets none) cannot apply this file, or None."""
    declared = tf.document.regions
    setting = "tenant-secrets:region"
    if declared is None and region is not None:
        return issue_at(
            tf.path,
            tf.positions,
            ("regions",),
            f"the stack's region '{region}' is not declared: the file has no `regions`",
            f"add `regions: [{region}]` at the top of the file, or remove the stack's {setting}",
        )
    if declared is not None and region is None:
        return issue_at(
            tf.path,
            tf.positions,
            ("regions",),
            "the file declares regions, and the stack sets none: it would write every tenant, wherever it may live",
            f"set the stack's {setting} to one of {', '.join(declared)} (`pulumi config set {setting} <region>`)",
        )
    if declared is not None and region not in declared:
        return issue_at(
            tf.path,
            tf.positions,
            ("regions",),
            f"the stack's region '{region}' is not declared",
            did_you_mean(str(region), declared) + f"declared: {', '.join(declared)}; add it here, or set the "
            f"stack's {setting} to one of them",
        )
    return None


def _plan_environment(tf: TenantsFile, environment: str, region: str | None) -> EnvironmentPlan:
    doc = tf.document
    if (wrong_region := region_issue(tf, region)) is not None:
        raise TenantsFileError([wrong_region])
    if environment not in doc.defaults.environments:
        raise TenantsFileError(
            [
                issue_at(
                    tf.path,
                    tf.positions,
                    ("defaults", "environments"),
                    f"the stack's environment '{environment}' is not declared",
                    f"declared: {', '.join(doc.defaults.environments)}; add it here, or set the stack's "
                    "tenant-secrets:environment to one of them",
                )
            ]
        )
    tenants: list[TenantPlan] = []
    elsewhere: list[Elsewhere] = []
    for index, tenant in enumerate(doc.tenants):
        environments = tenant.environments or doc.defaults.environments
        regions = doc.regions_of(tenant)
        if not tenant.leaves(region) and regions is not None and region not in regions:
            company = str(tenant.company_id) if tenant.company_id else None
            elsewhere.append(Elsewhere(tenant.subdomain, company, tuple(regions)))
            continue
        if tenant.leaves(region):
            tenants.append(
                TenantPlan(
                    subdomain=tenant.subdomain,
                    name=tenant.name,
                    company_id=str(tenant.company_id) if tenant.company_id else None,
                    storage=_stores(tenant.storage or doc.defaults.storage),
                    secrets={},
                    decommissioned_keys=frozenset(),
                    decommission=True,
                )
            )
            continue
        if environment not in environments:
            continue
        layers: list[tuple[Mapping[str, Any], Loc]] = [(doc.defaults.secrets, ("defaults", "secrets"))]
        layers += _layers(("tenants", index), tenant.secrets, tenant.overrides, environment)
        resolved = _resolve(tf.positions, tenant.subdomain, layers)
        tenants.append(
            TenantPlan(
                subdomain=tenant.subdomain,
                name=tenant.name,
                company_id=str(tenant.company_id) if tenant.company_id else None,
                storage=_stores(tenant.storage or doc.defaults.storage),
                secrets=resolved.secrets,
                decommissioned_keys=resolved.decommissioned,
                decommission=False,
                locations=resolved.locations,
                fields=resolved.fields,
            )
        )
    platform = []
    for name, folder in doc.platform.items():
        resolved = _resolve(
            tf.positions, name, _layers(("platform", name), folder.secrets, folder.overrides, environment)
        )
        platform.append(
            FolderPlan(
                name=name,
                path=f"/{name}",
                secrets=resolved.secrets,
                decommissioned_keys=resolved.decommissioned,
                locations=resolved.locations,
                fields=resolved.fields,
            )
        )
    return EnvironmentPlan(environment, tuple(tenants), tuple(platform), region=region, elsewhere=tuple(elsewhere))


def _stores(storage: str) -> frozenset[str]:
    return frozenset({"infisical", "database"}) if storage == "both" else frozenset({storage})

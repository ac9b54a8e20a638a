"""The checks beyond one field's type.

`document_issues`: rules across the file that a schema cannot say (unique subdomains, overrides
only for environments a tenant is in, regions that the file declares and a tenant that says where it
lives (docs/decisions/0054-regions.md), group keys that collide, a tenant reading another's config or
another owner's Infisical folder, no encoded (xn--) subdomain but on a decommissioned tenant).

`check_sources`: needs a stack. May every source read what it names on this stack (an environment
variable its envAllow allows, its own Infisical folder or one its sharedFolders lists:
tenant_secrets/tenants_file/source_policy.py), and does every config path and environment variable
that the plan reads have a value? Run by the program before any resource is declared and by
`tenantctl validate --stack`, so a refused source or a missing value is reported at the line that
declares it, with the command that fixes it.

What no stack setting can open is refused by `document_issues`, with the file alone: an environment
variable of the deny-list (the run's own credentials), the root folder, another owner's folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tenant_secrets.tenants_file.model import (
    Defaults,
    EnvironmentPlan,
    FromConfig,
    FromEnv,
    FromInfisical,
    Issue,
    LiteralValue,
    Loc,
    Override,
    PlatformFolder,
    Position,
    Positions,
    Tenant,
    did_you_mean,
    dotted,
    flatten,
    issue_at,
)
from tenant_secrets.tenants_file.names import (
    KEY_MAX,
    SHARED_NAMESPACE,
    TENANTS_FOLDER,
    encoded_label_problem,
    uuid_label_problem,
)
from tenant_secrets.tenants_file.source_policy import (
    DECISION,
    ENV_ALLOW,
    SHARED_FOLDERS,
    SourcePolicy,
    denied_env,
    folder_claim_problem,
    own_folder,
)
from tenant_secrets.tenants_file.sources import ConfigSource, EnvSource, InfisicalSource, ValueSource, reference_problem


class _Report:
    def __init__(self, file: str, positions: Positions) -> None:
        self.file = file
        self.positions = positions
        self.issues: list[Issue] = []

    def add(self, loc: Loc, message: str, hint: str = "", *, at_key: bool = False) -> None:
        self.issues.append(issue_at(self.file, self.positions, loc, message, hint, at_key=at_key))


def document_issues(
    file: str,
    positions: Positions,
    defaults: Defaults | None,
    tenants: Sequence[tuple[int, Tenant]],
    platform: Sequence[tuple[str, PlatformFolder]],
    *,
    regions: Sequence[str] | None = None,
    regions_valid: bool = True,
    invalid_regions: frozenset[int] = frozenset(),
) -> list[Issue]:
    """Cross-field rules over the parts of a file that are valid on their own (defaults None if invalid;
    ``regions``: the file's top-level list, not checked against when ``regions_valid`` is false;
    ``invalid_regions``: the tenants whose own `regions` are reported invalid already)."""
    report = _Report(file, positions)
    declared = list(defaults.environments) if defaults else None
    owners = {t.subdomain for _, t in tenants} | {name for name, _ in platform}
    if defaults:
        _unique_names(report, ("defaults", "environments"), defaults.environments)
        _layer(report, defaults.secrets, ("defaults", "secrets"), owner=None, owners=owners)
    if regions_valid:
        _regions(report, regions, defaults, [(i, t) for i, t in tenants if i not in invalid_regions])
    _unique_tenants(report, tenants)
    for index, tenant in tenants:
        where: Loc = ("tenants", index)
        # a decommissioned tenant keeps its name, so that one made before these rules can go
        for rule in () if tenant.decommissioned else (encoded_label_problem, uuid_label_problem):
            if problem := rule(tenant.subdomain):
                report.add((*where, "subdomain"), problem.message, problem.hint)
        environments = tenant.environments or declared
        if tenant.environments is not None:
            _unique_names(report, (*where, "environments"), tenant.environments)
            if declared is not None:
                _declared(report, (*where, "environments"), tenant.environments, declared)
        _overrides(
            report, where, tenant.overrides, environments=environments, declared=declared, owner=tenant.subdomain
        )
        _secrets(report, where, tenant.secrets, tenant.overrides, owner=tenant.subdomain, owners=owners)
    subdomains = {t.subdomain: i for i, t in tenants}
    for name, folder in platform:
        where = ("platform", name)
        if name in subdomains:
            report.add(
                where,
                f"the platform folder '{name}' has the name of tenant '{name}' (tenants[{subdomains[name]}])",
                "both would read stack config secrets.<name>.*; rename the folder",
                at_key=True,
            )
        _overrides(
            report, where, folder.overrides, environments=declared, declared=declared, owner=f"platform folder {name}"
        )
        _secrets(report, where, folder.secrets, folder.overrides, owner=name, owners=owners)
    return report.issues


_REGIONS_DECISION = "docs/decisions/0054-regions.md"


def _regions(
    report: _Report, regions: Sequence[str] | None, defaults: Defaults | None, tenants: Sequence[tuple[int, Tenant]]
) -> None:
    """Every region named is one the top-level `regions` declares, and every tenant says where it may live."""
    if regions is not None:
        _unique_names(report, ("regions",), regions)
    lists: list[tuple[Loc, Sequence[str]]] = []
    if defaults is not None and defaults.regions is not None:
        lists.append((("defaults", "regions"), defaults.regions))
    for index, tenant in tenants:
        if tenant.regions is not None:
            lists.append((("tenants", index, "regions"), tenant.regions))
        if isinstance(tenant.decommission, list):
            lists.append((("tenants", index, "decommission"), tenant.decommission))
    for loc, names in lists:
        if regions is None:
            report.add(
                loc,
                f"names regions ({', '.join(names)}), but the file declares none",
                f"declare every region at the top: `regions: [{', '.join(dict.fromkeys(names))}]` "
                f"({_REGIONS_DECISION})",
                at_key=True,
            )
            continue
        _unique_names(report, loc, names)
        _declared(report, loc, names, list(dict.fromkeys(regions)), what="regions in `regions`")
    if regions is None:
        return
    default = defaults.regions if defaults is not None else None
    for index, tenant in tenants:
        where: Loc = ("tenants", index)
        if tenant.decommission is True:
            continue
        own = tenant.regions or default
        if own is None:
            if defaults is not None:
                report.add(
                    (*where, "regions"),
                    f"tenant {tenant.subdomain} does not say where its secrets may live",
                    f"add `regions: [...]` (declared: {', '.join(regions)}), or set defaults.regions",
                )
            continue
        if isinstance(tenant.decommission, list):
            for position, name in enumerate(tenant.decommission):
                if name in own:
                    origin = "its regions" if tenant.regions else "defaults.regions, its regions"
                    staying = [r for r in own if r not in tenant.decommission]
                    fix = (
                        f"list the regions it stays in (`regions: [{', '.join(staying)}]`)"
                        if staying
                        else "a tenant that leaves every region takes `decommission: true`"
                    )
                    report.add(
                        (*where, "decommission", position),
                        f"'{name}' is both decommissioned and in {origin}",
                        f"{fix}, or drop '{name}' from decommission",
                    )


def _unique_tenants(report: _Report, tenants: Sequence[tuple[int, Tenant]]) -> None:
    first_subdomain: dict[str, int] = {}
    first_company: dict[str, int] = {}
    for index, tenant in tenants:
        if tenant.subdomain in first_subdomain:
            report.add(
                ("tenants", index, "subdomain"),
                f"duplicate subdomain '{tenant.subdomain}'",
                f"it is already tenants[{first_subdomain[tenant.subdomain]}]'s; merge the two entries",
            )
        first_subdomain.setdefault(tenant.subdomain, index)
        if tenant.company_id is None:
            continue
        company = str(tenant.company_id)
        if company in first_company:
            report.add(
                ("tenants", index, "company_id"),
                f"company_id {company} is already tenants[{first_company[company]}]'s",
                "one company has one subdomain",
            )
        first_company.setdefault(company, index)


def _unique_names(report: _Report, loc: Loc, names: Sequence[str]) -> None:
    for name, count in Counter(names).items():
        if count > 1:
            report.add((*loc, len(names) - 1 - names[::-1].index(name)), f"'{name}' is listed twice", "keep one")


def _declared(
    report: _Report,
    loc: Loc,
    names: Sequence[str],
    declared: Sequence[str],
    *,
    what: str = "environments in defaults.environments",
) -> None:
    for position, name in enumerate(names):
        if name not in declared:
            report.add(
                (*loc, position),
                f"'{name}' is not one of the {what}",
                did_you_mean(name, declared) + f"Declared: {', '.join(declared)}",
            )


def _overrides(
    report: _Report,
    where: Loc,
    overrides: Mapping[str, Override],
    *,
    environments: Sequence[str] | None,
    declared: Sequence[str] | None,
    owner: str,
) -> None:
    if environments is None:
        return
    for env in overrides:
        if env in environments:
            continue
        if declared is not None and env in declared:
            hint = f"add '{env}' to its environments ({', '.join(environments)}), or remove the override"
        else:
            hint = did_you_mean(env, declared or environments) + f"Declared: {', '.join(declared or environments)}"
        report.add(
            (*where, "overrides", env), f"an override for '{env}', where {owner} does not exist", hint, at_key=True
        )


def _secrets(
    report: _Report,
    where: Loc,
    secrets: Mapping[str, Any],
    overrides: Mapping[str, Override],
    *,
    owner: str,
    owners: set[str],
) -> None:
    _layer(report, secrets, (*where, "secrets"), owner, owners)
    for env, override in overrides.items():
        _layer(report, override.secrets, (*where, "overrides", env, "secrets"), owner, owners)


def _layer(report: _Report, secrets: Mapping[str, Any], loc: Loc, owner: str | None, owners: set[str]) -> None:
    """One mapping of secrets: flattened keys must be unique and short enough, config paths our own."""
    seen: dict[str, Loc] = {}
    for key, spec in secrets.items():
        entries = flatten({key: spec}, loc)
        for flat, (source, source_loc) in entries.items():
            if len(flat) > KEY_MAX:
                report.add(source_loc, f"the key {flat[:40]}... is {len(flat)} characters", f"at most {KEY_MAX}")
            if flat in seen:
                report.add(
                    source_loc,
                    f"gives the key {flat}, which {dotted(seen[flat])} also declares",
                    "keep one of the two",
                    at_key=True,
                )
            seen.setdefault(flat, source_loc)
            if isinstance(source, FromConfig) and source.key:
                _own_config(report, (*source_loc, "key"), source.key, owner, owners)
            if isinstance(source, FromInfisical):
                _own_folder(report, (*source_loc, "path"), source.path, owner, owners)
            if isinstance(source, FromEnv) and (why := denied_env(source.var)):
                report.add(
                    (*source_loc, "var"),
                    f"reads the environment variable {source.var}, which can never be a value source ({why})",
                    f"pass the value through a variable of its own that the stack's envAllow lists ({DECISION})",
                )
            if isinstance(source, LiteralValue) and (problem := reference_problem(source.value)):
                report.add((*source_loc, "value"), problem)


def _own_config(report: _Report, loc: Loc, path: str, owner: str | None, owners: set[str]) -> None:
    """A `key:` must not read another owner's namespace: secrets.acmecorp.* is for acmecorp only."""
    first = path.split(".", maxsplit=1)[0]
    if first in owners and first != owner:
        report.add(
            loc,
            f"reads secrets.{path}, which belongs to '{first}'",
            f"an owner reads its own secrets.<name>.*, or a shared path such as {SHARED_NAMESPACE}.<name>",
        )


def _own_folder(report: _Report, loc: Loc, path: str, owner: str | None, owners: set[str]) -> None:
    """The same rule for `{from: infisical}`: /tenants/<name> is that tenant's alone, /<name> that platform
    folder's (compared without regard to case), and the root is nobody's. Whether an unclaimed folder is
    readable depends on the stack's sharedFolders: `check_sources` decides."""
    hint = f"an owner reads its own folder, or one the stack's tenant-secrets:{SHARED_FOLDERS} lists"
    if problem := folder_claim_problem(path):
        report.add(loc, problem, hint)
        return
    parts = [p.lower() for p in path.strip("/").split("/") if p]
    if parts[0] == TENANTS_FOLDER:
        if len(parts) < 2 or parts[1] != (owner or "").lower():
            whose = f"tenant '{parts[1]}'" if len(parts) >= 2 else "every tenant"
            report.add(loc, f"reads Infisical {path}, which belongs to {whose}", hint)
    elif parts[0] in {o.lower() for o in owners} and parts[0] != (owner or "").lower():
        report.add(loc, f"reads Infisical {path}, which belongs to platform folder or tenant '{parts[0]}'", hint)


# --- value sources against a stack -----------------------------------------------------------------


def _owners(
    plan: EnvironmentPlan,
) -> Iterable[tuple[str, str, str, Mapping[str, ValueSource], Mapping[str, Position], Mapping[str, str]]]:
    for t in plan.tenants:
        home = own_folder(t.subdomain, platform=False)
        yield t.subdomain, f"tenant {t.subdomain}", home, t.secrets, t.locations, t.fields
    for f in plan.platform:
        yield f.name, f"platform folder {f.name}", own_folder(f.name, platform=True), f.secrets, f.locations, f.fields


def check_sources(
    plan: EnvironmentPlan,
    file: str,
    *,
    config_has: Callable[[tuple[str, ...]], bool],
    environ: Mapping[str, str],
    policy: SourcePolicy,
    stack: str | None = None,
) -> list[Issue]:
    """One issue per source the stack's ``policy`` refuses, per config path that is not set and per
    environment variable that is unset or empty.

    `config_has(path)` says whether the stack config object `secrets` has a value at path; `stack`,
    when given, goes into the hint's command.
    """
    issues = []
    stack_flag = f" --stack {stack}" if stack else ""
    for owner, label, home, secrets, locations, fields in _owners(plan):
        for key, source in sorted(secrets.items()):
            line, column = locations.get(key, (1, 1))
            field = fields.get(key, f"{owner}.{key}")
            if refusal := policy.refusal(source, home):
                hint = (
                    policy.env_hint(source.var, stack)
                    if isinstance(source, EnvSource)
                    else policy.folder_hint(source.path if isinstance(source, InfisicalSource) else home, stack)
                )
                issues.append(Issue(file, line, column, field, f"{label}, {key}: {refusal}", hint))
            elif isinstance(source, ConfigSource) and not config_has(source.path):
                path = ".".join(source.path)
                issues.append(
                    Issue(
                        file,
                        line,
                        column,
                        field,
                        f"{label}, {key}: the stack config has no value at secrets.{path} ({plan.environment})",
                        f"set it with `pulumi config set --secret --path 'secrets.{path}'{stack_flag}`"
                        " (it prompts for the value)",
                    )
                )
            elif (
                isinstance(source, InfisicalSource)
                and source.environment not in {None, plan.environment}
                and "/" + source.path.strip("/") not in policy.shared_folders
            ):
                issues.append(
                    Issue(
                        file,
                        line,
                        column,
                        field,
                        f"{label}, {key}: reads Infisical {source.environment}:{source.path}, another environment "
                        f"than the stack's ({plan.environment})",
                        f"a stack reads its own environment; a value several environments read goes in a folder "
                        f"the stack's tenant-secrets:{SHARED_FOLDERS} lists",
                    )
                )
            elif isinstance(source, EnvSource) and not environ.get(source.var):
                state = "empty" if source.var in environ else "not set"
                issues.append(
                    Issue(
                        file,
                        line,
                        column,
                        field,
                        f"{label}, {key}: the environment variable {source.var} is {state} ({plan.environment})",
                        f"`export {source.var}=<value>` where pulumi runs (in CI: a secret of that name in the "
                        "job's GitHub environment, passed by `tenantctl ci-env` when the stack's "
                        f"tenant-secrets:{ENV_ALLOW} lists it)",
                    )
                )
    return issues

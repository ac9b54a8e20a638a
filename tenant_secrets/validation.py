"""Checks that need the stack: does every declared source have a value to give?

Run before any resource is declared (by the program) and by `tenantctl validate --stack`, so a
missing value is reported with the line that declares it and the command that fixes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from tenant_secrets.model import ConfigSource, EnvironmentPlan, EnvSource, Issue, Position, ValueSource


def _owners(
    plan: EnvironmentPlan,
) -> Iterable[tuple[str, str, Mapping[str, ValueSource], Mapping[str, Position]]]:
    for tenant in plan.tenants:
        yield tenant.subdomain, f"tenant {tenant.subdomain}", tenant.secrets, tenant.locations
    for folder in plan.platform:
        yield folder.name, f"platform folder {folder.name}", folder.secrets, folder.locations


def check_sources(
    plan: EnvironmentPlan,
    file: str,
    *,
    config_has: Callable[[tuple[str, ...]], bool],
    environ: Mapping[str, str],
) -> list[Issue]:
    """One issue per config path that is not set and per environment variable that is unset or empty."""
    issues = []
    for owner, label, secrets, locations in _owners(plan):
        for key, source in sorted(secrets.items()):
            line, column = locations.get(key, (1, 1))
            field = f"{owner}.{key}"
            if isinstance(source, ConfigSource) and not config_has(source.path):
                path = ".".join(source.path)
                issues.append(
                    Issue(
                        file, line, column, field,
                        f"{label} in {plan.environment}: no value in the stack config at secrets.{path}",
                        f"set it with `pulumi config set --secret --path 'tenant-secrets:secrets.{path}' <value>`",
                    )
                )  # fmt: skip
            elif isinstance(source, EnvSource) and not environ.get(source.var):
                issues.append(
                    Issue(
                        file, line, column, field,
                        f"{label} in {plan.environment}: environment variable {source.var} is not set",
                        f"export {source.var}=<value> in the environment that runs pulumi (a CI secret)",
                    )
                )  # fmt: skip
    return issues

"""The server's YAML configuration: projects, their environments, machine identities, limits.

Identities carry their allowed environments and a path prefix (the subtree they may touch); that is
the whole access model, a simplification of Infisical's project roles.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from infisical_server.paths import is_valid_secret_path, normalize_folder_path

ENV_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
PROJECT_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
RATE_LIMIT_CATEGORIES = ("read", "write", "secrets")
_IDENTITY_NAMESPACE = uuid.UUID("5f0c1a52-8f1e-4c3b-9a3e-6d2b7c9e4a10")


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class ProjectConfig:
    id: str
    slug: str
    environments: tuple[str, ...]


@dataclass(frozen=True)
class IdentityConfig:
    name: str
    client_id: str
    client_secret: str = field(repr=False)
    project: str
    environments: tuple[str, ...]
    path_prefix: str

    @property
    def id(self) -> str:
        """A stable identity id, derived from the client id so it survives restarts."""
        return str(uuid.uuid5(_IDENTITY_NAMESPACE, self.client_id))


@dataclass(frozen=True)
class RateLimits:
    """Requests per minute per client IP and category; 0 means unlimited."""

    read: int = 0
    write: int = 0
    secrets: int = 0

    def for_category(self, category: str) -> int:
        return int(getattr(self, category))


@dataclass(frozen=True)
class ServerConfig:
    projects: tuple[ProjectConfig, ...]
    identities: tuple[IdentityConfig, ...]
    token_ttl_seconds: int = 7200
    rate_limits: RateLimits = RateLimits()

    def project(self, project_id: str) -> ProjectConfig | None:
        return next((p for p in self.projects if p.id == project_id), None)

    def project_by_slug(self, slug: str) -> ProjectConfig | None:
        return next((p for p in self.projects if p.slug == slug), None)

    def identity_by_client_id(self, client_id: str) -> IdentityConfig | None:
        return next((i for i in self.identities if i.client_id == client_id), None)

    def identity_by_id(self, identity_id: str) -> IdentityConfig | None:
        return next((i for i in self.identities if i.id == identity_id), None)


def load_config(path: Path) -> ServerConfig:
    """Read and validate a YAML configuration file."""
    try:
        data = YAML(typ="safe").load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    except Exception as exc:  # ruamel raises several parser error types
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, source=str(path))


def parse_rate_limits(data: object, where: str) -> RateLimits:
    """Rate limits from a mapping such as ``{read: 0, write: 90, secrets: 120}``."""
    if data is None:
        return RateLimits()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a mapping of {', '.join(RATE_LIMIT_CATEGORIES)}")
    unknown = set(data) - set(RATE_LIMIT_CATEGORIES)
    if unknown:
        raise ConfigError(f"{where}: unknown categories {sorted(unknown)}; use {list(RATE_LIMIT_CATEGORIES)}")
    values: dict[str, int] = {}
    for category in RATE_LIMIT_CATEGORIES:
        value = data.get(category, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}.{category}: must be a non-negative integer (0 = unlimited)")
        values[category] = value
    return RateLimits(**values)


def parse_config(data: object, source: str = "config") -> ServerConfig:
    """Validate a parsed configuration document (see the module docstring for its shape)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping with 'projects' and 'identities'")
    projects = tuple(
        _project(item, f"{source}: projects[{n}]") for n, item in enumerate(_list(data, "projects", source))
    )
    _unique([p.id for p in projects], f"{source}: projects", "id")
    _unique([p.slug for p in projects], f"{source}: projects", "slug")
    by_id = {p.id: p for p in projects}
    identities = tuple(
        _identity(item, f"{source}: identities[{n}]", by_id) for n, item in enumerate(_list(data, "identities", source))
    )
    _unique([i.client_id for i in identities], f"{source}: identities", "client_id")
    _unique([i.name for i in identities], f"{source}: identities", "name")
    ttl = data.get("token_ttl_seconds", 7200)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise ConfigError(f"{source}: token_ttl_seconds: must be a positive integer")
    rate_limits = parse_rate_limits(data.get("rate_limits"), f"{source}: rate_limits")
    return ServerConfig(projects, identities, ttl, rate_limits)


def _list(data: Mapping[str, object], key: str, source: str) -> list[object]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: {key}: must be a non-empty list")
    return value


def _text(item: Mapping[str, object], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: must be a non-empty string")
    return value.strip()


def _envs(item: Mapping[str, object], where: str) -> tuple[str, ...]:
    value = item.get("environments")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.environments: must be a non-empty list of environment slugs")
    for slug in value:
        if not ENV_SLUG.match(slug):
            raise ConfigError(f"{where}.environments: {slug!r} is not a slug (lowercase letters, digits, hyphens)")
    _unique(list(value), where, "environments")
    return tuple(value)


def _project(item: object, where: str) -> ProjectConfig:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a mapping with id, slug, environments")
    slug = _text(item, "slug", where)
    if not PROJECT_SLUG.match(slug):
        raise ConfigError(f"{where}.slug: {slug!r} is not a slug (lowercase letters, digits, hyphens)")
    return ProjectConfig(id=_text(item, "id", where), slug=slug, environments=_envs(item, where))


def _identity(item: object, where: str, projects: Mapping[str, ProjectConfig]) -> IdentityConfig:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    project_id = _text(item, "project", where)
    project = projects.get(project_id)
    if project is None:
        raise ConfigError(f"{where}.project: unknown project id {project_id!r}")
    environments = _envs(item, where)
    unknown = [e for e in environments if e not in project.environments]
    if unknown:
        raise ConfigError(f"{where}.environments: {unknown} are not environments of project {project.slug!r}")
    prefix = item.get("path_prefix", "/")
    if not isinstance(prefix, str) or not is_valid_secret_path(prefix):
        raise ConfigError(f"{where}.path_prefix: must be a folder path such as / or /tenants")
    return IdentityConfig(
        name=_text(item, "name", where),
        client_id=_text(item, "client_id", where),
        client_secret=_text(item, "client_secret", where),
        project=project_id,
        environments=environments,
        path_prefix=normalize_folder_path(prefix),
    )


def _unique(values: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{where}: duplicate {key} {value!r}")
        seen.add(value)

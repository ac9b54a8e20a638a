"""`tenantctl import`: an existing Infisical environment as a tenants.yaml, never reading a value.

Every folder under ``/tenants`` becomes a tenant (``storage: infisical``), and, unless asked not
to, every other top-level folder a platform folder. Each key it holds becomes
``KEY: {from: infisical, path: <its own folder>, key: KEY}``: the value stays where it is, and the
first ``pulumi up`` finds every secret already holding its declared value, so it writes nothing and
adopts the folders as they are. Keys are listed with ``viewSecretValue=false``, so this process
never receives a value.

A key present in only some of an owner's environments goes under ``overrides`` for those; a tenant
present in only some environments gets ``environments``. Folders and keys that tenants.yaml cannot
name (a folder that is not a DNS label, a lowercase key) are reported and left out, untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tenant_secrets.tenants_file.loader import parse_tenants
from tenant_secrets.tenants_file.names import (
    TENANTS_FOLDER,
    encoded_label_problem,
    folder_problem,
    key_problem,
    subdomain_problem,
    uuid_label_problem,
)

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


class FolderReader(Protocol):
    """What the import needs from Infisical (InfisicalClient has it)."""

    def list_folders(self, environment: str, path: str) -> list[str]: ...

    def list_secret_keys(self, environment: str, path: str) -> list[str] | None: ...


@dataclass(frozen=True)
class Skipped:
    """A folder or key left out, and why."""

    environment: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.environment}:{self.where}: {self.reason}; left out (nothing in Infisical is changed)"


@dataclass
class Inventory:
    """Which owners hold which keys in which environments."""

    environments: list[str]
    tenants: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # subdomain -> env -> keys
    platform: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # folder name -> env -> keys
    skipped: list[Skipped] = field(default_factory=list)


def discover(reader: FolderReader, environments: Sequence[str], *, platform: bool = True) -> Inventory:
    """Walk /tenants/* (and the other top-level folders) of each environment: folder and key names only."""
    found = Inventory(list(environments))
    for env in environments:
        for name in reader.list_folders(env, f"/{TENANTS_FOLDER}"):
            problem = subdomain_problem(name) or encoded_label_problem(name) or uuid_label_problem(name)
            if problem is not None:
                found.skipped.append(Skipped(env, f"/{TENANTS_FOLDER}/{name}", f"{problem.message} ({problem.hint})"))
                continue
            _keys(reader, found, found.tenants, env=env, owner=name, path=f"/{TENANTS_FOLDER}/{name}")
        if not platform:
            continue
        for name in reader.list_folders(env, "/"):
            if name == TENANTS_FOLDER:
                continue
            problem = folder_problem(name)
            if problem is not None:
                found.skipped.append(Skipped(env, f"/{name}", f"{problem.message} ({problem.hint})"))
                continue
            _keys(reader, found, found.platform, env=env, owner=name, path=f"/{name}")
    return found


def _keys(
    reader: FolderReader,
    found: Inventory,
    owners: dict[str, dict[str, list[str]]],
    *,
    env: str,
    owner: str,
    path: str,
) -> None:
    keys = []
    for key in reader.list_secret_keys(env, path) or []:
        problem = key_problem(key)
        if problem is None:
            keys.append(key)
        else:
            found.skipped.append(Skipped(env, f"{path}/{key}", f"{problem.message} ({problem.hint})"))
    owners.setdefault(owner, {})[env] = sorted(keys)


def _name(text: str) -> str:
    """A YAML scalar that reads back as this string (names are validated, but `123` or `no` must be quoted)."""
    return text if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS else json.dumps(text)


def _source(path: str, key: str) -> str:
    return f"{{from: infisical, path: {path}, key: {key}}}"


def _owner_lines(
    indent: str, path: str, by_env: Mapping[str, list[str]], environments: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The owner's `secrets` and `overrides` lines: keys in all of its environments, then the rest."""
    present = [env for env in environments if env in by_env]
    common = sorted(set.intersection(*(set(by_env[env]) for env in present))) if present else []
    lines = [f"{indent}secrets:" + ("" if common else " {}")]
    lines += [f"{indent}  {key}: {_source(path, key)}" for key in common]
    overrides: list[str] = []
    for env in present:
        extra = [key for key in by_env[env] if key not in common]
        if extra:
            overrides += [f"{indent}  {_name(env)}:", f"{indent}    secrets:"]
            overrides += [f"{indent}      {key}: {_source(path, key)}" for key in extra]
    if overrides:
        overrides.insert(0, f"{indent}overrides:")
    return lines, overrides


def render(found: Inventory) -> str:
    """The inventory as a tenants.yaml (checked against the model before it is returned)."""
    envs = found.environments
    out = [
        "# yaml-language-server: $schema=./tenants.schema.json",
        f"# Imported by `tenantctl import` from Infisical ({', '.join(envs)}). Every value stays in Infisical:",
        "# each key reads its current value from its own folder, so the first `pulumi up` writes nothing.",
        "# Review it, then move values to `{from: config}` (or `generate`) key by key as you take them over.",
        "version: 1",
        "",
        "defaults:",
        "  storage: infisical",
        f"  environments: [{', '.join(_name(e) for e in envs)}]",
    ]
    if found.platform:
        out += ["", "platform:"]
        for name, by_env in sorted(found.platform.items()):
            # a platform folder exists in every environment: keys missing from one are not common
            everywhere = {env: by_env.get(env, []) for env in envs}
            secrets, overrides = _owner_lines("    ", f"/{name}", everywhere, envs)
            missing = [env for env in envs if env not in by_env]
            note = f"  # not in {', '.join(missing)} yet: `pulumi up` creates it there" if missing else ""
            out += [f"  {_name(name)}:{note}", *secrets, *overrides]
    out += ["", "tenants:" + ("" if found.tenants else " []")]
    for subdomain, by_env in sorted(found.tenants.items()):
        present = [env for env in envs if env in by_env]
        out.append(f"  - subdomain: {_name(subdomain)}")
        if present != envs:
            out.append(f"    environments: [{', '.join(_name(e) for e in present)}]")
        secrets, overrides = _owner_lines("    ", f"/{TENANTS_FOLDER}/{subdomain}", by_env, envs)
        out += [*secrets, *overrides]
    text = "\n".join(out) + "\n"
    parse_tenants(text, "tenants.yaml (imported)")  # raises TenantsFileError: a bug here, not the user's input
    return text

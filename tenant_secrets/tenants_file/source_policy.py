"""What a value source may read: an allow-listed environment variable, the owner's own Infisical folder, or a
folder the stack shares by name (docs/decisions/0041-value-sources-are-allow-listed.md).

A value source is a read the run makes with its own rights: `{from: env}` sees every credential of the CI
job, `{from: infisical}` every folder the provisioner may read. A pull request that names a source could
copy what the run holds into a tenant's store, so what a source may read is decided by two base-branch
settings a pull request cannot change (tenant_secrets/stack/head_data.py FIXED_SETTINGS):

- `tenant-secrets:envAllow`: exact variable names and prefixes written `PREFIX_*`. Without it, every
  `{from: env}` source is refused. No entry can open a name of the built-in deny-list (the run's own
  credentials, cloud and CI credentials, libpq's settings): such an entry is itself refused.
- `tenant-secrets:sharedFolders`: exact Infisical folder paths that any owner may read. Otherwise an owner
  reads its own folder (`/tenants/<subdomain>`, or `/<name>` for a platform folder) and nothing else; the
  root and every unclaimed folder are refused.

Pure: the deny-list check needs no stack (`denied_env`, `folder_claim_problem`), the rest a
:class:`SourcePolicy` built from the two settings. The Resolver is handed `SourcePolicy.environ(...)`, the
allowed subset of the environment, so that even a check that was bypassed reads nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from tenant_secrets.tenants_file.names import TENANTS_FOLDER, env_var_problem, infisical_path_problem
from tenant_secrets.tenants_file.sources import EnvSource, InfisicalSource, TenantsFileLiteral, ValueSource

ENV_ALLOW: Final = "envAllow"
SHARED_FOLDERS: Final = "sharedFolders"
_SETTING_PREFIX = "tenant-secrets:"
DECISION: Final = "docs/decisions/0041-value-sources-are-allow-listed.md"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]*_")
"""An allow-list prefix: a letter, then letters, digits and underscores, ending in `_` (`STRIPE_`, not `S`)."""

DENIED_NAMES: Final = frozenset({"DATABASE_URL", "KUBECONFIG", "NODE_AUTH_TOKEN", "NPM_TOKEN", "TENANTS_ENVIRONMENT"})
"""Exact names no allow-list opens: the run's database, and tokens and files of common CI tools."""
DENIED_PREFIXES: Final = (
    ("INFISICAL_", "the run's Infisical credentials"),
    ("PULUMI_", "the run's Pulumi backend and the passphrase that decrypts the stack config"),
    ("TENANT_SECRETS_", "this project's own settings"),
    ("ROTATION_", "the rotation workflow's tokens"),
    ("PREVIEW_", "the pull-request previews' credentials (docs/decisions/0050-ci-env.md)"),
    ("PG", "libpq's connection settings and password"),
    ("AWS_", "cloud credentials"),
    ("AZURE_", "cloud credentials"),
    ("ARM_", "cloud credentials"),
    ("GOOGLE_", "cloud credentials"),
    ("GCP_", "cloud credentials"),
    ("GCLOUD_", "cloud credentials"),
    ("CLOUDSDK_", "cloud credentials"),
    ("VAULT_", "Vault credentials"),
    ("GITHUB_", "the CI job's credentials"),
    ("GH_", "the CI job's credentials"),
    ("ACTIONS_", "the CI job's credentials"),
    ("RUNNER_", "the CI job's settings"),
    ("CI_", "the CI job's credentials"),
    ("SSH_", "SSH keys and agents"),
    ("DOCKER_", "registry credentials"),
    ("KUBE", "cluster credentials"),
)
"""Prefixes no allow-list opens, with why (compared without regard to case)."""


def denied_env(var: str) -> str | None:
    """Why no allow-list may open the environment variable ``var``; None when one may."""
    upper = var.upper()
    if upper in DENIED_NAMES:
        return "a credential of the run itself"
    for prefix, why in DENIED_PREFIXES:
        if upper.startswith(prefix):
            return f"{prefix}* holds {why}"
    return None


def _folder(path: str) -> str:
    """A folder path as compared here: one leading slash, no trailing one."""
    return "/" + path.strip("/")


def own_folder(owner: str, *, platform: bool) -> str:
    """The Infisical folder an owner writes, and may read: `/tenants/<subdomain>`, or `/<name>`."""
    return f"/{owner}" if platform else f"/{TENANTS_FOLDER}/{owner}"


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def folder_claim_problem(path: str) -> str | None:
    """Why a folder is never readable by a source, whatever the stack shares: the root (every folder's parent)."""
    if _folder(path) == "/":
        return "reads the root folder /, which no owner claims"
    return None


@dataclass(frozen=True)
class SettingIssue:
    """A problem with one entry of envAllow or sharedFolders: ``index`` is None for the setting as a whole."""

    setting: str
    index: int | None
    message: str

    def __str__(self) -> str:
        where = f"{_SETTING_PREFIX}{self.setting}" + ("" if self.index is None else f"[{self.index}]")
        return f"{where}: {self.message}"


def _entries(setting: str, raw: object) -> tuple[list[str], list[SettingIssue]]:
    if raw is None:
        return [], []
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        first = f"`pulumi config set --path '{_SETTING_PREFIX}{setting}[0]' <entry>`"
        return [], [SettingIssue(setting, None, f"expected a list of strings; set each entry with {first}")]
    return list(raw), []


def _env_entry_problem(entry: str) -> str | None:
    if entry.endswith("*"):
        prefix = entry[:-1]
        if not prefix:
            return "a bare `*` would allow every variable of the run; list names, or prefixes written PREFIX_*"
        if _PREFIX.fullmatch(prefix) is None:
            return f"'{entry}' is not a prefix written PREFIX_* (a letter, letters, digits, underscores, then `_*`)"
        upper = prefix.upper()
        for denied, holds in DENIED_PREFIXES:
            if denied.startswith(upper) or upper.startswith(denied):
                return f"'{entry}' would allow {denied}*, which holds {holds}; list the names it needs"
        if clash := sorted(n for n in DENIED_NAMES if n.startswith(upper)):
            return f"'{entry}' would allow {clash[0]}, a credential of the run itself; list the names it needs"
        return None
    if env_var_problem(entry) is not None:
        return f"'{entry}' is not an environment variable name"
    if reason := denied_env(entry):
        return f"'{entry}' can never be a value source: {reason}"
    return None


def _shared_entry_problem(entry: str, key_folder: str) -> str | None:
    if infisical_path_problem(entry) is not None:
        return f"'{entry}' is not an absolute Infisical folder path, e.g. /payments"
    folder = _folder(entry)
    if folder == "/":
        return "the root folder cannot be shared: it would share every folder"
    if _within(folder.lower(), f"/{TENANTS_FOLDER}"):
        return f"'{entry}' is a tenant's folder (or all of them): a tenant's folder is its own, never shared"
    if _within(folder.lower(), key_folder.lower()):
        return f"'{entry}' is the key folder, which holds the master keys: it is never shared"
    return None


@dataclass(frozen=True)
class SourcePolicy:
    """What value sources may read on one stack: its envAllow and sharedFolders settings, checked."""

    env_names: frozenset[str] = frozenset()
    env_prefixes: tuple[str, ...] = ()
    shared_folders: frozenset[str] = frozenset()
    env_entries: int = 0
    """How many entries envAllow has (for the hint that says where to add one)."""

    @classmethod
    def parse(
        cls, env_allow: object, shared_folders: object, *, key_folder: str
    ) -> tuple[SourcePolicy, list[SettingIssue]]:
        """The policy from the settings' values (lists of strings, or None when unset), and one issue per
        entry that is refused (a refused entry allows nothing)."""
        env, issues = _entries(ENV_ALLOW, env_allow)
        shared, shared_issues = _entries(SHARED_FOLDERS, shared_folders)
        issues += shared_issues
        names: set[str] = set()
        prefixes: list[str] = []
        for index, entry in enumerate(env):
            if problem := _env_entry_problem(entry):
                issues.append(SettingIssue(ENV_ALLOW, index, problem))
            elif entry.endswith("*"):
                prefixes.append(entry[:-1])
            else:
                names.add(entry)
        folders: set[str] = set()
        for index, entry in enumerate(shared):
            if problem := _shared_entry_problem(entry, key_folder):
                issues.append(SettingIssue(SHARED_FOLDERS, index, problem))
            else:
                folders.add(_folder(entry))
        return cls(frozenset(names), tuple(prefixes), frozenset(folders), len(env)), issues

    def allows_env(self, var: str) -> bool:
        """Whether a `{from: env}` source may read ``var``: listed, and never a denied name."""
        listed = var in self.env_names or any(var.startswith(p) for p in self.env_prefixes)
        return listed and denied_env(var) is None

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The allowed subset of ``environ``: all a Resolver is given."""
        return {name: value for name, value in environ.items() if self.allows_env(name)}

    def env_refusal(self, var: str) -> str | None:
        """Why a `{from: env}` source may not read ``var`` on this stack; None when it may."""
        if why := denied_env(var):
            return f"reads the environment variable {var}, which can never be a value source ({why})"
        if self.allows_env(var):
            return None
        listed = "the stack has no allow-list" if not self.env_entries else "it does not list it"
        return f"reads the environment variable {var}, which {_SETTING_PREFIX}{ENV_ALLOW} does not allow ({listed})"

    def env_hint(self, var: str, stack: str | None = None) -> str:
        flag = f" --stack {stack}" if stack else ""
        return (
            f"if the run should pass it, add it in a reviewed change of the base branch: `pulumi config set --path "
            f"'{_SETTING_PREFIX}{ENV_ALLOW}[{self.env_entries}]' {var}{flag}` ({DECISION})"
        )

    def folder_refusal(self, path: str, owner_folder: str) -> str | None:
        """Why a `{from: infisical}` source of the owner whose folder is ``owner_folder`` may not read
        ``path``; None when it may (its own folder or below, or a shared folder)."""
        if problem := folder_claim_problem(path):
            return problem
        folder = _folder(path)
        if _within(folder, owner_folder) or folder in self.shared_folders:
            return None
        return (
            f"reads Infisical {folder}, which is neither its own folder ({owner_folder}) nor one "
            f"{_SETTING_PREFIX}{SHARED_FOLDERS} lists"
        )

    def folder_hint(self, path: str, stack: str | None = None) -> str:
        flag = f" --stack {stack}" if stack else ""
        setting = f"{_SETTING_PREFIX}{SHARED_FOLDERS}[{len(self.shared_folders)}]"
        return (
            "move the value into the owner's own folder, or share the folder in a reviewed change of "
            f"the base branch: `pulumi config set --path '{setting}' {_folder(path)}{flag}`"
        )

    def refusal(self, source: ValueSource | TenantsFileLiteral, owner_folder: str) -> str | None:
        """Why the source may not be read on this stack (env and infisical sources); None when it may."""
        if isinstance(source, EnvSource):
            return self.env_refusal(source.var)
        if isinstance(source, InfisicalSource):
            return self.folder_refusal(source.path, owner_folder)
        return None


def refused_sources(
    policy: SourcePolicy, owner_folder: str, sources: Mapping[str, ValueSource | TenantsFileLiteral]
) -> Sequence[str]:
    """``KEY: why`` for each of an owner's sources that may not be read, in key order."""
    return [f"{key}: {why}" for key, source in sorted(sources.items()) if (why := policy.refusal(source, owner_folder))]

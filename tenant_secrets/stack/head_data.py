"""What a pull request may hand to the preview of a protected stack: its data files, checked; never its code.

The pull-request workflow previews each stack with the code of the base branch (the trusted
checkout this module runs from) and takes from the pull request's head commit only an allow-list of
data files, read from git's objects rather than the head's working tree (so a symlink is refused,
not followed):

- `tenants.yaml`, which the trusted loader parses and validates like any other;
- `Pulumi.<stack>.yaml` of the stack being previewed, whose `config` may differ from the base's in
  the settings a tenants change needs, and nowhere else (:func:`stack_file_problems`).

Everything else the head changes (`Pulumi.yaml`, `__main__.py`, `components/`, `tenant_secrets/`,
`scripts/`, the Makefile, the workflows, the toolchain, ...) is code: it never runs with the
protected credentials unless a reviewer approves it (docs/decisions/0022-pull-request-trust.md).

    classify(paths)                            -> Changes                (pure)
    stack_file_problems(stack, base, head)     -> one line per problem   (pure)
    take_head_data(base, head, base_rev, stack) copies the checked files (git, files)
    render_note(...)                           the comment's "how this preview ran"  (pure)
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenant_secrets.stack.files import STACK_FILE
from tenant_secrets.stack.settings import NAMESPACE
from tenant_secrets.tenants_file.loader import read_yaml
from tenant_secrets.tenants_file.model import TenantsFileError

PULL_REQUEST_ENV = "TENANT_SECRETS_PULL_REQUEST"
"""Set to `true` by the pull-request workflow (scripts/pr-plan.sh): the program then only previews, read-only."""
TENANTS_FILE = "tenants.yaml"
MAX_DATA_BYTES = 1 << 20
"""A data file larger than this (1 MiB) is refused before it is parsed."""

PLAIN_SETTINGS = frozenset(
    {"activeKeyVersion", "historyRetention", "retainOnDelete", "rotationBatchSize", "masterKeyRotateEvery", "buckets"}
)
"""Plain settings a pull request may change: scalars, never `{secure: ...}` (whose decrypted value the
program could otherwise print where a plain setting appears, e.g. in an error naming the environment).
`buckets` changes how the stack's resources hold its tenants, never what is read or written: a change of it
previews as a move (`move` rows in the plan, docs/decisions/0053)."""
SECRET_SETTINGS = frozenset(
    {"masterKeys", "derivationKey", "fingerprintKey", "secrets", "webhookUrl", "webhookSigningKey"}
)
"""Secret settings: every leaf a `{secure: <ciphertext>}` of the stack's own secrets provider."""
RIGHTS_SETTINGS = frozenset(
    {
        "appRole",
        "provisionerRole",
        "appWriterRole",
        "appRolePassword",
        "provisionerRolePassword",
        "appWriterRolePassword",
        "tablePrefix",
        "createCompanies",
    }
)
"""Settings that decide which database role gets which rights, and on which tables: the roles' names, the
passwords that log in as them, the tables the grants and policies go on, and whether the run writes the
application's companies table (docs/decisions/0042-role-settings-are-not-pull-request-data.md)."""
SOURCE_SETTINGS = frozenset({"envAllow", "sharedFolders"})
"""What value sources may read (tenant_secrets/tenants_file/source_policy.py, docs/decisions/0041)."""
FIXED_SETTINGS = (
    frozenset({"tenantsFile", "environment", "region", "masterKeySource", "keyFolder", "shard", "webhookAllowHosts"})
    | RIGHTS_SETTINGS
    | SOURCE_SETTINGS
)
"""Settings that say what the stack is (which file it reads, which Infisical environment its credentials
serve, which region's stores it writes, where its master keys live, which shard it applies: `tenantctl
reshard` changes that; which hosts its webhook may reach beyond public addresses; :data:`RIGHTS_SETTINGS`
and :data:`SOURCE_SETTINGS`): taken from the base; a pull request that changes them is previewed only after
approval or merge."""

DOCUMENTATION = re.compile(r"docs/.+|.+\.md|LICENSE")
"""Files a preview neither runs nor reads."""


def is_pull_request_run(environ: Mapping[str, str]) -> bool:
    return environ.get(PULL_REQUEST_ENV, "").lower() in ("1", "true")


class HeadDataError(ValueError):
    """The head's data cannot be previewed with trusted code; one line per problem, never a value."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Changes:
    """A pull request's changed paths, by what a preview does with them."""

    data: tuple[str, ...]  # taken from the head, checked
    code: tuple[str, ...]  # run only after approval, or after merge
    documentation: tuple[str, ...]  # neither run nor read

    @property
    def code_changed(self) -> bool:
        return bool(self.code)


def is_data_file(path: str) -> bool:
    """tenants.yaml and the stacks' files; Pulumi.yaml (the project: runtime, entry point) is code."""
    return path == TENANTS_FILE or STACK_FILE.fullmatch(path) is not None


def classify(paths: Sequence[str]) -> Changes:
    data = tuple(sorted(p for p in paths if is_data_file(p)))
    docs = tuple(sorted(p for p in paths if not is_data_file(p) and DOCUMENTATION.fullmatch(p)))
    code = tuple(sorted(set(paths) - set(data) - set(docs)))
    return Changes(data, code, docs)


# --- the stack file (pure) -------------------------------------------------------------------------


def _leaves(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf under ``node``; a `{secure: ...}` mapping is a leaf."""
    if isinstance(node, Mapping) and set(node) != {"secure"}:
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


def _ciphertexts(config: Mapping[str, Any]) -> dict[str, str]:
    """config path (dotted) -> ciphertext, for every `{secure: ...}` leaf."""
    return {
        ".".join(path): str(leaf["secure"])
        for path, leaf in _leaves(config, ())
        if isinstance(leaf, Mapping) and set(leaf) == {"secure"}
    }


def _config(document: Mapping[str, Any]) -> Mapping[str, Any]:
    config = document.get("config")
    return config if isinstance(config, Mapping) else {}


def stack_file_problems(stack: str, base: Mapping[str, Any], head: Mapping[str, Any]) -> list[str]:
    """Why the head's `Pulumi.<stack>.yaml` cannot be previewed with trusted code; empty when it can.

    ``base`` and ``head`` are the parsed files. Outside `config`, nothing may change: `secretsprovider`,
    `encryptedkey` and `encryptionsalt` decide whose key decrypts the stack's secrets, and `environment`
    (Pulumi ESC) would import settings from elsewhere. Inside, only this project's known settings, plain
    ones plain and secret ones encrypted, and no ciphertext moved from one setting to another (a master
    key's ciphertext under a tenant's key, say, would be decrypted and used as that key's value).
    """
    file = f"Pulumi.{stack}.yaml"
    problems: list[str] = []
    for key in sorted(set(base) | set(head), key=str):
        if key != "config" and base.get(key) != head.get(key):
            problems.append(
                f"{file}: `{key}` differs from the base branch's: it decides how the stack's secrets are "
                "decrypted or where its settings come from, so only a reviewed merge may change it"
            )
    base_config, head_config = _config(base), _config(head)
    if not isinstance(head.get("config", {}), Mapping):
        problems.append(f"{file}: `config` is not a mapping")
    for key in sorted(head_config, key=str):
        namespace, _, name = str(key).partition(":")
        value = head_config[key]
        if namespace != NAMESPACE or not name:
            problems.append(f"{file}: `{key}` is not a {NAMESPACE} setting; a pull request may not set it")
        elif name in FIXED_SETTINGS:
            if value != base_config.get(key):
                what = (
                    "it decides which database role gets which rights"
                    if name in RIGHTS_SETTINGS
                    else "it changes what the stack reads or which environment its credentials serve"
                )
                problems.append(
                    f"{file}: `{key}` differs from the base branch's: {what}, so it is previewed only after "
                    "approval or merge"
                )
        elif name in PLAIN_SETTINGS:
            if isinstance(value, Mapping | list):
                problems.append(f"{file}: `{key}` must be a plain value (it is not a secret setting)")
        elif name in SECRET_SETTINGS:
            problems += [
                f"{file}: `{'.'.join((key, *path))}` must be set with `pulumi config set --secret`"
                for path, leaf in _leaves(value, ())
                if not (isinstance(leaf, Mapping) and set(leaf) == {"secure"} and isinstance(leaf["secure"], str))
            ]
        else:
            problems.append(f"{file}: `{key}` is not a setting of this project")
    for key in sorted(set(base_config) - set(head_config), key=str):
        if str(key).partition(":")[2] in FIXED_SETTINGS:
            problems.append(f"{file}: `{key}` was removed; it is previewed only after approval or merge")
    base_secrets = _ciphertexts(base_config)
    by_ciphertext: dict[str, list[str]] = {}
    for path, ciphertext in base_secrets.items():
        by_ciphertext.setdefault(ciphertext, []).append(path)
    for path, ciphertext in sorted(_ciphertexts(head_config).items()):
        sources = [p for p in by_ciphertext.get(ciphertext, []) if p != path]
        if sources and base_secrets.get(path) != ciphertext:
            problems.append(
                f"{file}: `{path}` holds the ciphertext of `{sources[0]}`: a value moved from one setting to "
                "another is refused; set it with `pulumi config set --secret`"
            )
    return problems


# --- git and files ---------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise HeadDataError([f"git {args[0]} in {repo.name}: {reason[-1] if reason else 'failed'}"])
    return done.stdout


def changed_paths(head: Path, base_rev: str) -> list[str]:
    """What the pull request changes: the head against its merge base with ``base_rev`` (as GitHub shows it)."""
    out = _git(head, "diff", "--name-only", "--no-renames", "-z", f"{base_rev}...HEAD", "--")
    return [p for p in out.decode("utf-8", "replace").split("\0") if p]


def read_blob(repo: Path, path: str) -> str | None:
    """``path`` at the repository's HEAD, from git's objects; None when absent.

    A symlink or a submodule is refused (a symlink to a file outside the repository is the way to make a
    trusted reader open it), so is a file over MAX_DATA_BYTES or not UTF-8."""
    listing = _git(repo, "ls-tree", "-z", "HEAD", "--", path).decode("utf-8", "replace").rstrip("\0")
    if not listing:
        return None
    meta, _, _ = listing.partition("\t")
    mode, kind, sha = meta.split(" ")
    if kind != "blob" or mode not in ("100644", "100755"):
        raise HeadDataError([f"{path}: not a regular file in the pull request (git mode {mode})"])
    if int(_git(repo, "cat-file", "-s", sha)) > MAX_DATA_BYTES:
        raise HeadDataError([f"{path}: larger than {MAX_DATA_BYTES // 1024} KiB"])
    try:
        return _git(repo, "cat-file", "blob", sha).decode("utf-8")
    except UnicodeDecodeError:
        raise HeadDataError([f"{path}: not UTF-8 text"]) from None


def _parse(text: str, file: str) -> dict[str, Any]:
    try:
        document = read_yaml(text, file)
    except TenantsFileError as err:
        raise HeadDataError([str(issue) for issue in err.issues]) from None
    if document.issues:
        raise HeadDataError([str(issue) for issue in document.issues])
    if document.data is None:
        return {}
    if not isinstance(document.data, dict):
        raise HeadDataError([f"{file}: not a mapping"])
    return document.data


def take_head_data(base: Path, head: Path, stack: str) -> list[str]:
    """Write the head's tenants.yaml and Pulumi.<stack>.yaml into the trusted checkout ``base``, checked.

    Returns the files taken. Raises HeadDataError, before writing anything, when one cannot be taken.
    The tenants file is not validated here: the trusted `tenantctl validate` and program do that next,
    with positions a reviewer can follow."""
    stack_name = f"Pulumi.{stack}.yaml"
    if not STACK_FILE.fullmatch(stack_name):
        raise HeadDataError([f"{stack!r} is not a stack name"])
    tenants = read_blob(head, TENANTS_FILE)
    if tenants is None:
        raise HeadDataError([f"the pull request has no {TENANTS_FILE}"])
    head_stack = read_blob(head, stack_name)
    base_path = base / stack_name
    try:
        base_text = base_path.read_text(encoding="utf-8") if base_path.is_file() else None
    except OSError as err:
        raise HeadDataError([f"{stack_name} of the base branch: {err.strerror}"]) from None
    if head_stack is None or base_text is None:
        if head_stack != base_text:
            raise HeadDataError([f"{stack_name}: added or removed by the pull request; previewed after merge"])
    else:
        problems = stack_file_problems(stack, _parse(base_text, f"{stack_name} (base)"), _parse(head_stack, stack_name))
        if problems:
            raise HeadDataError(problems)
        base_path.write_text(head_stack, encoding="utf-8")
    (base / TENANTS_FILE).write_text(tenants, encoding="utf-8")
    return [TENANTS_FILE] + ([stack_name] if head_stack is not None else [])


# --- the comment's note (pure) ---------------------------------------------------------------------


def _paths(paths: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(f"`{p}`" for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


CREDENTIALS_NOTE = (
    "Credentials: read-only. The program refuses a database role that can write; the Infisical identity "
    "is read-only by its setup, which cannot be checked without attempting a write (docs/guides/pull-requests.md)."
)


def render_note(
    *, stack: str, code: str, base_rev: str, head_rev: str, changes: Changes, approval_environment: str
) -> str:
    """What a reviewer must know about the table below: whose code made it, from which data, and what waits."""
    short_base, short_head = base_rev[:12], head_rev[:12]
    if code == "head":
        lines = [
            f"> **How this preview ran:** this pull request's own code and data at `{short_head}`, after a reviewer "
            f"approved the `{approval_environment}` environment for this run. {CREDENTIALS_NOTE}",
        ]
        return "\n".join(lines) + "\n\n"
    lines = [
        f"> **How this preview ran:** the base branch's code at `{short_base}`, never this pull request's, on "
        f"its data files at `{short_head}` (`{TENANTS_FILE}`, `Pulumi.{stack}.yaml`). {CREDENTIALS_NOTE}",
    ]
    if changes.code_changed:
        lines += [
            ">",
            f"> This pull request also changes code ({_paths(changes.code)}). That code does not run with "
            f"stack `{stack}`'s credentials until a reviewer approves the `{approval_environment}` environment "
            "for this run (that preview then replaces this comment) or it is merged; the table shows what "
            "the data change does under the base branch's code.",
        ]
    return "\n".join(lines) + "\n\n"

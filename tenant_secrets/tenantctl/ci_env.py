"""`tenantctl ci-env`: the one way `{from: env}` values reach a CI job (docs/decisions/0050-ci-env.md).

A workflow hands one step all of its GitHub environment's secrets as JSON (`${{ toJSON(secrets) }}` in
`TENANT_SECRETS_CI_SECRETS`, a name the deny-list keeps from ever being a value source) and this command
appends to `$GITHUB_ENV` only the names the stack's `tenant-secrets:envAllow` allows, read from the stack
file of the trusted checkout (the base branch's, in a pull request: decision 0041), never a denied one.
So the later steps (`pulumi up`, the preview, `tenantctl verify`) see exactly what the reviewed allow-list
names, and a pull request cannot widen it: adding a tenant that reads `DATABASE_URL` or an unlisted secret
finds nothing there to read.

One GitHub environment may serve several tenants.yaml environments (the previews' `pr-preview` serves
dev and prod): there, `--suffix PROD` passes the secret `RESEND_API_KEY_PROD` as `RESEND_API_KEY` and
ignores unsuffixed names, so a dev preview never reads prod's value by accident.

Each exported value is first masked (`::add-mask::`, per line) so that no later step's log shows it;
GitHub masks its secrets already, the mask also covers a value a later step transforms. Only names are
reported; a value is written nowhere but the `$GITHUB_ENV` file, in GitHub's multi-line form.
"""

from __future__ import annotations

import json
import secrets as random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tenant_secrets.stack import files
from tenant_secrets.tenants_file.model import TenantsFileError
from tenant_secrets.tenants_file.source_policy import SourcePolicy, denied_env

SECRETS_VARIABLE = "TENANT_SECRETS_CI_SECRETS"
_GIVE = f"give the step `{SECRETS_VARIABLE}: ${{{{ toJSON(secrets) }}}}`"
"""The step variable that holds the environment's secrets as JSON; TENANT_SECRETS_* is itself denied."""


class CiEnvError(ValueError):
    """The command cannot run: no secrets JSON, no stack file, a refused allow-list. Never carries a value."""


@dataclass(frozen=True)
class Exported:
    """What one run passed on, by name only: exported, refused as denied, listed but absent."""

    names: tuple[str, ...]
    denied: tuple[str, ...]
    missing: tuple[str, ...]
    not_allowed: int


def read_secrets(raw: str | None) -> dict[str, str]:
    """The secrets JSON object of the step's environment; CiEnvError (naming no value) when it is not one."""
    if not raw:
        raise CiEnvError(f"{SECRETS_VARIABLE} is not set: {_GIVE}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise CiEnvError(f"{SECRETS_VARIABLE} is not JSON (expected `${{{{ toJSON(secrets) }}}}`)") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CiEnvError(f"{SECRETS_VARIABLE} is not a JSON object of strings (expected `${{{{ toJSON(secrets) }}}}`)")
    return {str(k): v for k, v in data.items()}


def policies(
    repo: Path, *, stack: str | None, environment: str | None, region: str | None = None
) -> list[SourcePolicy]:
    """The allow-lists of one stack, or of every stack (shard) of an environment (of its ``region`` only, when
    given: a region's job holds that region's secrets), from ``repo``'s stack files.

    A refused entry fails the command: CI should not run on a stack file `tenantctl validate --stack` refuses.
    """
    if stack is not None:
        names = [stack]
    else:
        try:
            chosen = files.of_environment(files.discover(repo), environment or "")
            names = [s.name for s in chosen if region is None or s.region == region]
        except files.StackFileError as err:
            raise CiEnvError(str(err)) from None
    found = []
    for name in names:
        try:
            stack_file = files.StackFile.read(repo / f"Pulumi.{name}.yaml")
        except TenantsFileError as err:
            raise CiEnvError("; ".join(f"{i.file}: {i.message}" for i in err.issues)) from None
        policy, issues = stack_file.source_policy()
        if issues:
            raise CiEnvError("; ".join(f"{i.file}:{i.line}: {i.message}" for i in issues))
        found.append(policy)
    return found


def unsuffixed(secrets: Mapping[str, str], suffix: str | None) -> dict[str, str]:
    """The secrets named ``NAME_<SUFFIX>`` (any case) as ``NAME``; all of them, unchanged, when no suffix."""
    if not suffix:
        return dict(secrets)
    tail = f"_{suffix.upper()}"
    return {name[: -len(tail)]: value for name, value in secrets.items() if name.upper().endswith(tail)}


def choose(available: Mapping[str, str], allowed: Sequence[SourcePolicy]) -> Exported:
    """Which of ``available`` to pass on: those some stack's allow-list allows, never a denied name."""
    names = tuple(sorted(n for n in available if denied_env(n) is None and any(p.allows_env(n) for p in allowed)))
    listed = {n for p in allowed for n in p.env_names}
    denied = tuple(sorted(n for n in listed if n in available and denied_env(n) is not None))
    missing = tuple(sorted(n for n in listed if n not in available))
    return Exported(names, denied, missing, len(available) - len(names))


def _delimiter(values: Iterable[str]) -> str:
    """A heredoc delimiter that no value contains (GitHub's multi-line form for $GITHUB_ENV)."""
    text = "\n".join(values)
    while True:
        candidate = f"ghadelimiter_{random.token_hex(16)}"
        if candidate not in text:
            return candidate


def write(available: Mapping[str, str], chosen: Exported, env_file: TextIO, out: TextIO) -> None:
    """Mask each chosen value's lines on ``out`` (a workflow command), then append it to ``env_file``."""
    for name in chosen.names:
        for line in available[name].splitlines():
            if line.strip():
                out.write(f"::add-mask::{line}\n")
    out.flush()
    for name in chosen.names:
        value = available[name]
        delimiter = _delimiter([value])
        env_file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def run(
    environ: Mapping[str, str],
    repo: Path,
    *,
    stack: str | None,
    environment: str | None,
    env_file: str | None,
    suffix: str | None = None,
    region: str | None = None,
) -> int:
    """The command: exit 0 with the names passed on (stderr), 1 with one line that names no value."""
    target = env_file or environ.get("GITHUB_ENV")
    which = f"stack {stack}" if stack else f"environment {environment}"
    if not target:
        print("tenantctl ci-env: no $GITHUB_ENV (not in GitHub Actions): pass --env-file FILE", file=sys.stderr)
        return 1
    try:
        available = unsuffixed(read_secrets(environ.get(SECRETS_VARIABLE)), suffix)
        chosen = choose(available, policies(repo, stack=stack, environment=environment, region=region))
        with open(target, "a", encoding="utf-8") as handle:
            write(available, chosen, handle, sys.stdout)
    except (CiEnvError, OSError) as err:
        message = f"cannot write {target}: {err.strerror}" if isinstance(err, OSError) else str(err)
        print(f"tenantctl ci-env: {message}", file=sys.stderr)
        return 1
    passed = ", ".join(chosen.names) or "none"
    print(f"{which}: passed {passed} ({chosen.not_allowed} other secret(s) not allow-listed)", file=sys.stderr)
    for name in chosen.missing:
        print(f"{which}: envAllow lists {name}, but the GitHub environment has no secret of that name", file=sys.stderr)
    return 0

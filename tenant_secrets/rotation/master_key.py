"""`tenantctl rotation master-key`: a new master key version in the stack's encrypted config, made active.

The command does the first step of the rotation in docs/guides/master-key-and-readers.md: it adds
`masterKeys.v<n+1>` (32 random bytes, set as a secret through the stack's own secrets provider) and sets
`activeKeyVersion: <n+1>`. Nothing else changes: the stack file is committed in a pull request, whose
preview shows the three updates, and `pulumi up` then runs them in the safe order (docs/decisions/0020).

The key goes to `pulumi config set` on its standard input, never on a command line (which other users
of the machine can read) and never in this command's output.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from tenant_secrets.stack.settings import NAMESPACE, StackSettings

MAX_ERROR_LINES = 5
Runner = Callable[[list[str], str | None], subprocess.CompletedProcess[str]]


class MasterKeyRotationError(Exception):
    """The rotation cannot start; the message says why and what to do, never a key."""


def _run(command: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)


def next_version(settings: StackSettings) -> int:
    """The version to add: one above every configured one. Refused with masterKeySource infisical, or
    while the active version is not the newest (a rotation is still being set up by hand)."""
    if settings.master_key_source != "stack":
        raise MasterKeyRotationError(
            f"{NAMESPACE}:masterKeySource is infisical: the keys are kept by hand in {settings.key_folder} "
            "(docs/guides/master-key-and-readers.md)"
        )
    if not settings.keyring or settings.key_version is None:
        raise MasterKeyRotationError(f"{NAMESPACE}:masterKeys is not set: there is no key to rotate")
    newest = max(int(v) for v in settings.keyring)
    if settings.key_version != newest:
        raise MasterKeyRotationError(
            f"{NAMESPACE}:activeKeyVersion is {settings.key_version} but masterKeys has v{newest}: "
            "a rotation is already set up; run `pulumi up`, or set activeKeyVersion"
        )
    return newest + 1


def add_version(stack: str, version: int, *, config_file: str | None = None, run: Runner = _run) -> None:
    """`pulumi config set --secret --path masterKeys.v<version>` (key on stdin), then `activeKeyVersion`."""
    extra = ["--stack", stack] + (["--config-file", config_file] if config_file else [])
    key = os.urandom(32).hex()
    steps: list[tuple[list[str], str | None]] = [
        (["pulumi", "config", "set", "--secret", "--path", f"{NAMESPACE}:masterKeys.v{version}", *extra], key),
        (["pulumi", "config", "set", f"{NAMESPACE}:activeKeyVersion", str(version), *extra], None),
    ]
    for command, stdin in steps:
        try:
            done = run(command, stdin)
        except OSError as err:
            raise MasterKeyRotationError(f"cannot run pulumi: {err.strerror}") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()][:MAX_ERROR_LINES]
            reason = " ".join(lines).replace(key, "[key]") or f"exit status {done.returncode}"
            raise MasterKeyRotationError(f"`pulumi config set` failed for stack {stack}: {reason}")

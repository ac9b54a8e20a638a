"""The commit a stack last applied, kept as a stack tag (docs/decisions/0045).

The deploy sets the tag after a `pulumi up` of the stack succeeded, and only then: a failed, killed or
never-approved run leaves the stack's commit where it was, so the next deploy compares with that commit
and applies what the earlier one did not (`tenantctl affected --since-applied`). A tag lives beside the
checkpoint in the backend: reading and setting it needs the backend login only, never the stack's
secrets provider, so the deploy's matrix job and the nightly verify read it with read-only rights.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

TAG = "tenant-secrets:applied-commit"
NO_STACK = "no stack named"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
"""Runs `pulumi <args>` and returns the finished process (exit status, stdout, stderr)."""


class AppliedError(Exception):
    """The backend could not say (or record) a stack's applied commit; one line, the CLI's own reason."""


def pulumi_runner(cwd: Path) -> Runner:
    """The `pulumi` on PATH, run in ``cwd`` (the project) with this process's backend login."""

    def run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pulumi", *args], cwd=cwd, capture_output=True, text=True, check=False)

    return run


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    said = (done.stderr or "").strip() or (done.stdout or "").strip()
    return said.splitlines()[-1] if said else f"exit status {done.returncode}"


def read_applied(stack: str, run: Runner) -> str | None:
    """The commit ``stack`` last applied; None when it never recorded one (or does not exist yet)."""
    done = run(["stack", "tag", "ls", "--json", "--stack", stack])
    if done.returncode != 0:
        if NO_STACK in (done.stderr or ""):
            return None
        raise AppliedError(f"stack {stack}: cannot read its tags: {_last_line(done)}")
    try:
        tags = json.loads(done.stdout or "{}")
    except ValueError:
        raise AppliedError(f"stack {stack}: `pulumi stack tag ls --json` printed no JSON") from None
    value = tags.get(TAG) if isinstance(tags, dict) else None
    return (value.strip() or None) if isinstance(value, str) else None


def record_applied(stack: str, commit: str, run: Runner) -> None:
    """Record ``commit`` (a full commit id) as the last one ``stack`` applied."""
    done = run(["stack", "tag", "set", TAG, commit, "--stack", stack])
    if done.returncode != 0:
        raise AppliedError(f"stack {stack}: cannot set its tag {TAG}: {_last_line(done)}")

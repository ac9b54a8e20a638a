"""`tenantctl recover --stack NAME`: after a run was killed (SIGKILL, a lost runner), make the stack usable
again without a human, and only when that is safe.

A killed `pulumi up` leaves on a file backend its lock (``.pulumi/locks/<org>/<project>/<stack>/<id>.json``,
which makes every later run fail), the operations it had begun as ``pending_operations`` in the
checkpoint (a warning on every later run), at times a torn file, and, on its host, the processes it had
started, which outlive it.

1. The run must be dead. A lock's holder still running on this host, or a language host, program or
   provider plugin of this project left with no live engine above it (`run_processes.py`), means a
   process of the run may still write: nothing is touched, and the error names the pids. A lock taken on
   another host is stale only when the caller guarantees that no other run of the stack exists
   (``--exclusive``: the deploy workflow runs in one concurrency group).
2. What a killed write leaves torn is repaired (`torn_state.py`): an empty or torn ``.attrs`` sidecar is
   removed, a torn checkpoint is restored from its ``.bak``.
3. The stale lock is removed.
4. Pending operations are dropped from the checkpoint (``pulumi stack export``/``import``): every
   provider of this project writes idempotently (a create adopts what exists, an update writes only
   differences, a delete of what is gone succeeds), so the next `up` redoes whatever was cut short.
   When an update or a delete was cut short, or the checkpoint was restored from its backup, a
   `pulumi refresh` then records what the stores hold.

Nothing here reads a secret: the checkpoint is exported as a user would, with secrets encrypted, and no
process's environment is read. Decisions: docs/decisions/0031-recovering-a-killed-run.md,
docs/decisions/0044-a-killed-run-stops-and-is-repaired.md.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenant_secrets.tenantctl import run_processes, torn_state

Runner = Callable[[Sequence[str]], str]
"""Runs a `pulumi` command (argv without `pulumi`) and returns its stdout; raises RecoverError on failure."""


class RecoverError(Exception):
    """The stack cannot be recovered safely; the message says why and what to do."""


@dataclass(frozen=True)
class Lock:
    path: Path
    pid: int
    hostname: str
    username: str = ""


@dataclass
class Recovery:
    """What :func:`recover` did."""

    locks_removed: list[Lock] = field(default_factory=list)
    pending_dropped: dict[str, int] = field(default_factory=dict)  # operation type -> count
    refreshed: bool = False
    repairs: list[str] = field(default_factory=list)
    """One line per torn file repaired (`torn_state.repair`)."""

    def summary(self, stack: str) -> str:
        """One line of what was done, then one line per repaired file."""
        parts = []
        if self.locks_removed:
            holders = ", ".join(f"pid {lock.pid} on {lock.hostname}" for lock in self.locks_removed)
            parts.append(f"removed {len(self.locks_removed)} stale lock(s) ({holders})")
        if self.pending_dropped:
            ops = ", ".join(f"{n} {kind}" for kind, n in sorted(self.pending_dropped.items()))
            parts.append(f"dropped pending operations ({ops}); the next `pulumi up` redoes them")
        if self.refreshed:
            parts.append("refreshed the state from the stores")
        if not self.locks_removed and not self.pending_dropped:
            parts.insert(0, "no stale lock and no pending operation" + ("" if self.repairs else "; nothing to do"))
        return "\n".join([f"stack {stack}: " + "; ".join(parts), *(f"stack {stack}: {line}" for line in self.repairs)])


def backend_root(backend_url: str) -> Path:
    """The directory of a file backend (``file://<dir>``); RecoverError for any other backend."""
    if not backend_url.startswith("file://"):
        raise RecoverError(
            "tenantctl recover handles a file backend (PULUMI_BACKEND_URL=file://...); with another backend "
            "the service holds the lock: use `pulumi cancel` once no run can still be alive"
        )
    return Path(backend_url.removeprefix("file://")).expanduser()


def stack_locks(root: Path, stack: str) -> list[Lock]:
    """The locks of ``stack`` under the backend's ``.pulumi/locks`` (any organization and project)."""
    locks: list[Lock] = []
    base = root / ".pulumi" / "locks"
    for path in sorted(base.glob(f"**/{stack}/*.json")) if base.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            locks.append(Lock(path, int(data["pid"]), str(data["hostname"]), str(data.get("username", ""))))
        except (OSError, ValueError, KeyError, TypeError):
            raise RecoverError(f"cannot read the lock {path.name} of stack {stack}: remove it by hand") from None
    return locks


def holder_alive(lock: Lock, *, hostname: str, proc: Path = Path("/proc")) -> bool | None:
    """Whether the process holding ``lock`` still runs: True or False on this host, None elsewhere (unknowable)."""
    if lock.hostname != hostname:
        return None
    try:
        cmdline = (proc / str(lock.pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return b"pulumi" in cmdline  # a recycled pid running something else does not hold the lock


def recover(
    stack: str,
    *,
    backend_url: str,
    exclusive: bool,
    run: Runner,
    project: Path,
    hostname: str | None = None,
    proc: Path = Path("/proc"),
) -> Recovery:
    """Check that no process of the run is alive, repair torn files, remove ``stack``'s stale locks, then drop
    its pending operations (module docstring). ``project`` is the directory the runs start in."""
    host = hostname or socket.gethostname()
    done = Recovery()
    root = backend_root(backend_url)
    locks = stack_locks(root, stack)
    for lock in locks:
        alive = holder_alive(lock, hostname=host, proc=proc)
        if alive:
            raise RecoverError(
                f"stack {stack} is locked by a run that is still alive (pid {lock.pid} on {lock.hostname}); "
                "let it finish, or stop it first"
            )
        if alive is None and not exclusive:
            raise RecoverError(
                f"stack {stack} is locked by a run on host {lock.hostname} (pid {lock.pid}), which cannot be checked "
                "from here; if no other run of this stack can be alive (the deploy workflow's concurrency group "
                "ensures that), run again with --exclusive"
            )
    survivors = run_processes.orphans(project, proc)
    if survivors:
        named = ", ".join(f"pid {process.pid} ({process.role})" for process in survivors)
        raise RecoverError(
            f"stack {stack}: a killed run of this project left processes that may still write: {named}; "
            f"wait for them to end, or stop them (kill {' '.join(str(p.pid) for p in survivors)}), then run "
            "recover again"
        )
    try:
        repaired = torn_state.repair(root, stack)
    except torn_state.TornStateError as err:
        raise RecoverError(str(err)) from None
    done.repairs = repaired.lines
    for lock in locks:
        lock.path.unlink()
        done.locks_removed.append(lock)
    checkpoint: dict[str, Any] = json.loads(run(["stack", "export", "--stack", stack]))
    deployment = checkpoint.get("deployment") or {}
    pending = deployment.get("pending_operations") or []
    if pending:
        for operation in pending:
            kind = str(operation.get("type", "unknown"))
            done.pending_dropped[kind] = done.pending_dropped.get(kind, 0) + 1
        deployment["pending_operations"] = []
        _import(run, stack, checkpoint)
    if repaired.checkpoint_restored or set(done.pending_dropped) - {"creating"}:  # the state may lag the stores
        run(["refresh", "--yes", "--non-interactive", "--skip-preview", "--stack", stack])
        done.refreshed = True
    return done


def _import(run: Runner, stack: str, checkpoint: dict[str, Any]) -> None:
    """`pulumi stack import` from a file in a private directory (the checkpoint's secrets stay encrypted)."""
    with tempfile.TemporaryDirectory(prefix="tenantctl-recover-") as directory:  # mode 0700
        path = Path(directory) / f"{stack}.json"
        path.write_text(json.dumps(checkpoint))
        run(["stack", "import", "--stack", stack, "--file", str(path)])


def pulumi_runner(cwd: Path, environ: dict[str, str] | None = None) -> Runner:
    """Runs the `pulumi` on PATH in ``cwd``; a failure is a RecoverError with pulumi's last line."""

    def run(args: Sequence[str]) -> str:
        done = subprocess.run(["pulumi", *args], cwd=cwd, env=environ, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
            raise RecoverError(f"`pulumi {' '.join(args[:2])}` failed: {last[0]}")
        return done.stdout

    return run

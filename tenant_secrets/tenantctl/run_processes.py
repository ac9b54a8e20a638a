"""The processes a killed `pulumi` run can leave alive on this host, found in ``/proc``.

A SIGKILLed engine cannot stop what it started: its language host, the program, and its provider plugins
each run in a process group of their own and are re-parented. Until they end, one of them may still be
writing (a plugin from before `components/lifetime.py`, a dynamic-provider host), so `tenantctl
recover` must not call the run dead while any is alive.

Which run a survivor belongs to is not written anywhere the engine's death leaves: the engine's gRPC
address in their command lines names a dead engine, and their environment holds the stack's decrypted
config, which is never read here. So a survivor is recognised by what it is (a Pulumi language host or
program, a `pulumi-resource-*` plugin, this project's provider plugin), where it runs (the engine starts
them in the project's directory) and whose it is: a process below a live `pulumi` engine belongs to that
engine's run (another stack's, or a preview), and one with no live engine above it is an orphan of a
killed run, counted against every stack of the project (a false alarm costs a wait, a missed writer a lost
row). Nothing here reads a process's environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PLUGIN_MODULE = "components.plugin"
"""The project's provider plugin, as `provider/pulumi-resource-tenant-secrets` runs it (`python -m ...`)."""


@dataclass(frozen=True)
class Process:
    """One process as ``/proc`` shows it."""

    pid: int
    ppid: int
    argv: tuple[str, ...]
    cwd: Path | None
    """None when it cannot be read (another user's process, or it just ended)."""

    @property
    def engine(self) -> bool:
        """A `pulumi` CLI: the engine of a run."""
        return bool(self.argv) and os.path.basename(self.argv[0]) == "pulumi"

    @property
    def role(self) -> str | None:
        """What the process is in a Pulumi run, in words; None for anything else."""
        if not self.argv:
            return None
        name = os.path.basename(self.argv[0])
        if name.startswith("pulumi-language-"):
            return f"language host {name}"
        if name.startswith("pulumi-resource-"):
            return f"provider plugin {name}"
        if any(os.path.basename(arg) == "pulumi-language-python-exec" for arg in self.argv[1:3]):
            return "the Pulumi program"
        if PLUGIN_MODULE in self.argv[1:3]:
            return "the tenant-secrets provider plugin"
        return None


def _read(proc: Path, pid: int) -> Process | None:
    entry = proc / str(pid)
    try:
        argv = tuple(arg.decode(errors="replace") for arg in (entry / "cmdline").read_bytes().split(b"\0") if arg)
        stat = (entry / "stat").read_text()
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    if state == "Z":  # ended, not yet reaped
        return None
    try:
        cwd: Path | None = Path(os.readlink(entry / "cwd"))
    except OSError:
        cwd = None
    return Process(pid, int(ppid), argv, cwd)


def processes(proc: Path = Path("/proc")) -> dict[int, Process]:
    """Every running process of this host that can be read, by pid."""
    found: dict[int, Process] = {}
    for entry in proc.iterdir() if proc.is_dir() else []:
        if entry.name.isdigit() and (process := _read(proc, int(entry.name))) is not None:
            found[process.pid] = process
    return found


def _ancestors(process: Process, table: dict[int, Process]) -> Iterator[Process]:
    seen = {process.pid}
    parent = table.get(process.ppid)
    while parent is not None and parent.pid not in seen:
        yield parent
        seen.add(parent.pid)
        parent = table.get(parent.ppid)


def orphans(project: Path, proc: Path = Path("/proc")) -> list[Process]:
    """The language hosts, programs and plugins running in ``project`` with no live engine above them."""
    table = processes(proc)
    home = project.resolve()
    return sorted(
        (
            process
            for process in table.values()
            if process.role is not None
            and process.cwd == home
            and not any(ancestor.engine for ancestor in _ancestors(process, table))
        ),
        key=lambda process: process.pid,
    )

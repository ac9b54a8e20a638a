"""Is the Pulumi engine logging verbosely? Then every secret of the stack reaches its logs in the clear.

`pulumi up -v=9` (or `--verbose`, `--logflow`) and ``PULUMI_DEBUG_GRPC`` log each gRPC request: the
stack's config (master keys, derivation key, tenants' values) as the engine sends it to the program and
to every provider's ``Configure``, and each secret input; glog also writes them to a file in
``$TMPDIR`` that other users of the machine may read. The program cannot stop what the engine logged
before it ran, but it can refuse to declare a single resource, so no provider is configured and no
secret input is sent (issue 13, item 10; decision 0030).

The engine passes its logging flags to every plugin it starts, the language host included, so the
flags are found on the command line of one of the program's ancestors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

_VERBOSE_FLAGS = frozenset({"-v", "--v", "--verbose"})  # -v=3, -v 3, --verbose=3 (pulumi, and glog in plugins)
_GLUED = re.compile(r"-v(\d+)")  # -v3
_ALWAYS = frozenset({"--logflow"})  # hands the level to every plugin
DEBUG_ENVIRONMENT = ("PULUMI_DEBUG_GRPC",)  # not PULUMI_DEBUG_COMMANDS: the Automation API sets it for its event log


def verbose_logging(environ: Mapping[str, str], command_lines: Iterable[Sequence[str]]) -> str | None:
    """What turns on verbose engine logging, in words for an error; None when nothing does.

    ``command_lines`` are the argv of the program's ancestors (the language host, the `pulumi` CLI).
    """
    for name in DEBUG_ENVIRONMENT:
        if environ.get(name):
            return f"the environment variable {name} is set"
    for argv in command_lines:
        if not argv or not Path(argv[0]).name.startswith("pulumi"):
            continue
        command = Path(argv[0]).name
        for index, arg in enumerate(argv[1:], start=1):
            name, equals, value = arg.partition("=")
            if arg in _ALWAYS:
                return f"`{command}` runs with {arg}"
            shown = arg
            if glued := _GLUED.fullmatch(arg):
                level = glued.group(1)
            elif name in _VERBOSE_FLAGS:
                following = argv[index + 1] if index + 1 < len(argv) else ""
                level = value if equals else (following if following.isdigit() else "1")
                if not equals and following.isdigit():
                    shown = f"{arg} {following}"
            else:
                continue
            if level.isdigit() and int(level) > 0:
                return f"`{command}` runs with {shown}"
    return None


def ancestor_command_lines(pid: int | None = None, proc: Path = Path("/proc")) -> list[list[str]]:
    """The argv of the process ``pid`` (default: this one) and its ancestors, nearest first; [] where /proc
    is not there (not Linux)."""
    lines: list[list[str]] = []
    current = os.getpid() if pid is None else pid
    seen: set[int] = set()
    while current > 1 and current not in seen:
        seen.add(current)
        try:
            argv = (proc / str(current) / "cmdline").read_bytes().split(b"\0")
            stat = (proc / str(current) / "stat").read_text()
        except OSError:
            break
        lines.append([part.decode(errors="replace") for part in argv if part])
        # the parent pid is the 2nd field after the command name, which is in parentheses and may hold spaces
        current = int(stat.rsplit(")", 1)[1].split()[1])
    return lines

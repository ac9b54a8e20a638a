"""Is the Pulumi engine recording its gRPC traffic? Then every secret of the stack reaches a log or trace in the clear.

Each of these channels records the stack's config (master keys, derivation key, tenants' values) as the
engine sends it to the program and to every provider's ``Configure``, and each secret input:

- verbose logging: `pulumi up -v=9` (``-v``/``--verbose`` above 0, ``--logflow``); glog writes it to a
  file in ``$TMPDIR`` that other users of the machine may read;
- ``PULUMI_DEBUG_GRPC=<file>``: every request and response, to that file;
- tracing: ``--tracing <endpoint>`` (``file:`` a world-readable file, ``tcp://`` or ``http(s)://`` a
  collector): the engine and each plugin log each request's payload into its spans
  (``PULUMI_TRACING_NO_PAYLOADS`` is opt-in, and spans still name every resource);
- ``--otel-traces <endpoint>``: the engine hands its plugins an OpenTracing bridge (``--tracing``), and
  their payload-logging spans are exported to that endpoint; ``PULUMI_OTEL_EXPORTER_OTLP_ENDPOINT`` in
  the program's environment means it is on.

``--profiling`` (CPU and heap samples, an execution trace: stacks and sizes, no payload) and
``--logtostderr`` (where glog writes, not what) record no payload, so they are not refused. The program
cannot stop what the engine recorded before it ran, but it can refuse to declare a single resource, so
no provider is configured and no secret input is sent (issue 13, item 10; issue 26, item 3; decision 0030).

The engine passes its logging and tracing flags to every plugin it starts, the language host included,
so the flags are found on the command line of one of the program's ancestors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

_VERBOSE_FLAGS = frozenset({"-v", "--v", "--verbose"})  # -v=3, -v 3, --verbose=3 (pulumi, and glog in plugins)
_GLUED = re.compile(r"-v(\d+)")  # -v3
_ALWAYS = frozenset({"--logflow", "-logflow"})  # hands the level to every plugin
# Flags that take an endpoint; any endpoint records. One dash too: plugins parse them with Go's flag package.
_ENDPOINT_FLAGS = frozenset({"--tracing", "-tracing", "--otel-traces", "-otel-traces"})
# Not PULUMI_DEBUG_COMMANDS (the Automation API sets it for its event log), nor PULUMI_LOG_OTLP_ENDPOINT
# (the engine always gives its plugins a log receiver of its own).
DEBUG_ENVIRONMENT = ("PULUMI_DEBUG_GRPC", "PULUMI_OTEL_EXPORTER_OTLP_ENDPOINT")


def payload_recording(environ: Mapping[str, str], command_lines: Iterable[Sequence[str]]) -> str | None:
    """What makes the engine record gRPC payloads (logs or traces), in words for an error; None when nothing does.

    ``command_lines`` are the argv of the program's ancestors, nearest first (the language host, the
    `pulumi` CLI). Flags are named before the environment, the farthest process first: what was typed,
    not the proxy endpoint the engine hands the language host for it.
    """
    for argv in reversed(list(command_lines)):
        if not argv or not Path(argv[0]).name.startswith("pulumi"):
            continue
        command = Path(argv[0]).name
        for index, arg in enumerate(argv[1:], start=1):
            name, equals, value = arg.partition("=")
            following = argv[index + 1] if index + 1 < len(argv) else ""
            if arg in _ALWAYS:
                return f"`{command}` runs with {arg}"
            if name in _ENDPOINT_FLAGS:
                if (value if equals else following) == "":
                    continue  # `--tracing=` or a trailing flag: the engine records nothing
                return f"`{command}` runs with {arg if equals else f'{arg} {following}'}"
            shown = arg
            if glued := _GLUED.fullmatch(arg):
                level = glued.group(1)
            elif name in _VERBOSE_FLAGS:
                level = value if equals else (following if following.isdigit() else "1")
                if not equals and following.isdigit():
                    shown = f"{arg} {following}"
            else:
                continue
            if level.isdigit() and int(level) > 0:
                return f"`{command}` runs with {shown}"
    for name in DEBUG_ENVIRONMENT:
        if environ.get(name):
            return f"the environment variable {name} is set"
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

"""Memory and CPU of the engine's process tree, and the machine's load, read from /proc (Linux).

While a step runs, a thread samples every process descending from this one (the `pulumi` CLI the
Automation API starts, the language host, the Python program, the dynamic-provider plugin), except
the services the benchmark itself started. It records the peak of the summed resident set size,
each role's own high-water mark (`VmHWM`, which a sampler cannot miss) and each process's CPU time.

CPU time matters because this machine is shared (2 cores, other sessions may run tests): wall
times are only comparable when nothing else ran, so each step also records how much CPU the rest
of the machine used meanwhile (`foreign`), and `wait_quiet` lets a step wait for a quiet moment.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 of proc(5) is index 0)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, resident pages) of `pid`, or None if it is gone."""
    fields = _fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[21]))


def cpu_ticks(pid: int, *, reaped: bool = False) -> int:
    """CPU time of `pid` in clock ticks (all threads); with `reaped`, plus its waited-for children's."""
    fields = _fields(pid)
    if fields is None:
        return 0
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if reaped else 0)


def machine_busy_ticks() -> int:
    """Busy CPU time of the whole machine, all cores, in clock ticks (/proc/stat)."""
    first = (PROC / "stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return user + nice + system + irq + softirq + steal


def tree_ticks(root: int) -> int:
    """CPU ticks of `root` (with its reaped children) and of its live descendants."""
    return cpu_ticks(root, reaped=True) + sum(cpu_ticks(p) for p in descendants(root, ()))


def self_ticks() -> int:
    """This process's CPU, and its reaped children's (the engine processes it waited for)."""
    times = os.times()
    return round((times.user + times.system + times.children_user + times.children_system) * TICK)


def wait_quiet(own: Callable[[], int], *, limit: float, cores: float = 0.25, window: float = 0.5) -> float:
    """Wait (at most `limit` s) until the rest of the machine uses under `cores` CPUs; the seconds waited.

    `own` counts the CPU ticks of everything the benchmark runs, which is not "the rest".
    """
    start = time.monotonic()
    while True:
        busy0, own0 = machine_busy_ticks(), own()
        time.sleep(window)
        foreign = (machine_busy_ticks() - busy0) - (own() - own0)
        if foreign / TICK / window < cores or time.monotonic() - start >= limit:
            return round(time.monotonic() - start - window, 1)


def _hwm_kib(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def role_of(pid: int) -> str:
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    text = " ".join(words)
    if "pulumi.dynamic" in text or "pulumi-resource-pulumi-python" in text:
        return "dynamic provider"
    if any(module in text for module in ("bench.provider_floor.plugin", "bench.floor.plugin", "components.plugin")):
        return "provider plugin"
    if "pulumi-language-python-exec" in text or "__main__" in text:
        return "program"
    name = Path(words[0]).name if words else "?"
    if name == "pulumi":
        return "pulumi CLI"
    if name.startswith("pulumi-language"):
        return "language host"
    if name.startswith("pulumi-resource"):
        return name.removeprefix("pulumi-resource-")
    return name


def descendants(root: int, exclude: Collection[int]) -> dict[int, int]:
    """pid -> resident bytes of every process below `root`, skipping the subtrees of `exclude`."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                parents[int(entry.name)], rss[int(entry.name)] = found
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    tree: dict[int, int] = {}
    stack = [p for p in children.get(root, []) if p not in exclude]
    while stack:
        pid = stack.pop()
        tree[pid] = rss[pid] * PAGE
        stack.extend(p for p in children.get(pid, []) if p not in exclude)
    return tree


@dataclass
class MemorySampler:
    """Samples the tree under this process (or under `root`, and `root` itself) every `interval` seconds
    until stopped."""

    exclude: Collection[int]
    interval: float = 0.1
    root: int | None = None
    peak_bytes: int = 0
    role_hwm_kib: dict[str, int] = field(default_factory=dict)
    cpu_ticks: dict[int, int] = field(default_factory=dict)  # pid -> last seen CPU ticks
    samples: int = 0
    _roles: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        root = os.getpid() if self.root is None else self.root
        while not self._stop.is_set():
            tree = descendants(root, self.exclude)
            if self.root is not None and (own := _stat(root)) is not None:
                tree[root] = own[1] * PAGE
            self.peak_bytes = max(self.peak_bytes, sum(tree.values()))
            self.samples += 1
            for pid in tree:
                role = self._roles.get(pid) or self._roles.setdefault(pid, role_of(pid))
                hwm = _hwm_kib(pid)
                # several processes may share a role (the CLI starts one provider per resource type
                # for some plugins): keep the largest
                self.role_hwm_kib[role] = max(self.role_hwm_kib.get(role, 0), hwm)
                self.cpu_ticks[pid] = max(self.cpu_ticks.get(pid, 0), cpu_ticks(pid))
            time.sleep(self.interval)

    def engine_cpu_s(self) -> float:
        """CPU seconds of the engine's processes as last sampled (misses at most an interval each)."""
        return sum(self.cpu_ticks.values()) / TICK

    def result(self) -> dict[str, object]:
        by_role: dict[str, float] = {}
        for pid, ticks in self.cpu_ticks.items():
            role = self._roles.get(pid, "?")
            by_role[role] = by_role.get(role, 0.0) + ticks / TICK
        return {
            "cpu_s_by_role": {r: round(v, 2) for r, v in sorted(by_role.items())},
            "peak_tree_mib": round(self.peak_bytes / 2**20, 1),
            "hwm_mib_by_role": {r: round(k / 1024, 1) for r, k in sorted(self.role_hwm_kib.items())},
            "samples": self.samples,
        }

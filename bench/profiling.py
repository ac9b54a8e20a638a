"""Where a step's Python time goes: py-spy attached to the program and the provider (plugin or dynamic).

`--profile ours:100:first_up` samples every Python process the engine starts during that step
(the program, the provider plugin or the dynamic-provider host) with `py-spy record` (raw collapsed stacks, 100 Hz, only
the thread holding the GIL, so waiting threads do not count), then prints the functions that hold
the most samples: by self time, and by inclusive time for the project's own modules. py-spy is not a dependency of the
project: `.venv/bin/pip install py-spy` to use this. A profiled step is slower than an unprofiled one
(py-spy takes CPU on a 2-core machine): its time is marked and should not be quoted as a figure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.probe import descendants, role_of

log = logging.getLogger("bench.profile")
OWN_MODULES = ("components/", "tenant_secrets/", "bench/")


@dataclass
class Profiler:
    targets: list[str]
    out: Path
    live_pids: set[int] = field(default_factory=set)  # py-spy processes, left out of memory figures
    reports: list[str] = field(default_factory=list)

    def wants(self, design: str, count: int, step: str) -> bool:
        return f"{design}:{count}:{step}" in self.targets

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        binary = shutil.which("py-spy")
        if binary is None:
            log.warning("py-spy is not installed (.venv/bin/pip install py-spy): not profiling")
            yield
            return
        self.out.mkdir(parents=True, exist_ok=True)
        stop = threading.Event()
        spies: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        seen: set[int] = set()

        def watch() -> None:
            me = os.getpid()
            while not stop.is_set():
                for pid in descendants(me, self.live_pids):
                    if pid in seen:
                        continue
                    seen.add(pid)
                    role = role_of(pid)
                    if role not in ("program", "dynamic provider", "provider plugin") or not _is_python(pid):
                        continue
                    target = self.out / f"{role.replace(' ', '-')}-{pid}.txt"
                    spy = subprocess.Popen(
                        [
                            *(binary, "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--gil"),
                            *("--output", str(target), "--nonblocking"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    self.live_pids.add(spy.pid)
                    spies.append((role, target, spy))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, name="py-spy-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join(5)
            for _role_name, _target, spy in spies:
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.terminate()
            for role, target, _spy in spies:
                if target.exists():
                    text = summarize(role, target)
                    self.reports.append(text)
                    print(text)


def _is_python(pid: int) -> bool:
    try:
        return "python" in os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False


def summarize(role: str, path: Path, top: int = 15) -> str:
    """The busiest functions of one collapsed-stack file (`frame;frame;... count` per line)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if any(m in frame for m in OWN_MODULES):
                inclusive[frame] += count
    lines = [f"\n{role} ({path.name}): {total} samples at 100 Hz = {total / 100:.1f} s holding the GIL", "  self:"]
    lines += [f"    {100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive, project code:")
    lines += [f"    {100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)

"""Issue 26, item 4: the provider plugin, as the engine starts it, ends when the engine is SIGKILLed
(it is then re-parented and must not go on writing). The real engine: tests/e2e/test_killed_runs.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINE = """
import subprocess, sys, time
plugin = subprocess.Popen([sys.executable, "-m", "components.plugin", "127.0.0.1:1"], start_new_session=True)
print(plugin.pid, flush=True)
time.sleep(120)
"""
"""A stand-in for the engine: starts the plugin as `pulumi` does (its own session), then waits."""


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_plugin_ends_within_a_second_of_its_engine_being_sigkilled() -> None:
    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert engine.stdout is not None
    plugin = int(engine.stdout.readline())
    try:
        port = engine.stdout.readline()  # the plugin serves (it printed its port, as it tells the engine)
        assert port.strip().isdigit(), port
        engine.kill()
        engine.wait()
        killed = time.monotonic()
        while running(plugin) and time.monotonic() - killed < 5:
            time.sleep(0.01)
        outlived = time.monotonic() - killed
        assert not running(plugin), "the plugin outlived its engine by 5 s"
        assert outlived < 1.0, f"the plugin outlived its engine by {outlived:.2f} s"
    finally:
        if running(plugin):
            os.kill(plugin, signal.SIGKILL)

"""The provider plugin lives only as long as the engine that started it.

A SIGKILLed `pulumi` cannot stop its plugins: the plugin, in a process group of its own, is re-parented
and would go on serving the calls it had begun (re-encrypting rows, writing folders) while
`tenantctl recover` finds the lock's holder dead. So the plugin watches its parent, the engine, and
ends the moment the engine is gone: ``os._exit`` from a watcher thread, without waiting for the calls
in flight. A database transaction cut there is rolled back by the server (its connection closes); an
Infisical request already sent completes or not, and the next `up` converges either way (every write
is idempotent). Decision: docs/decisions/0044-a-killed-run-stops-and-is-repaired.md.

Why the parent's pid and not Linux's ``PR_SET_PDEATHSIG``: that signal fires when the *thread* that
started the process exits (prctl(2)), and the engine is a Go program whose runtime may retire the thread
that forked the plugin while the engine lives on; the parent's pid changes only when the process is gone.
"""

from __future__ import annotations

import os
import threading
import time

POLL_SECONDS = 0.05
"""How often the watcher looks: the longest a plugin outlives its engine (a `getppid`, about a microsecond)."""


def exit_with_parent(poll: float = POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that ends this process as soon as its parent is gone (re-parented). A plugin
    whose parent is already init lost its engine before it got here, and ends at once."""
    parent = os.getppid()
    if parent == 1:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)  # no cleanup: nothing may run, or write, after the engine is gone

    watcher = threading.Thread(target=watch, name="exit-with-engine", daemon=True)
    watcher.start()
    return watcher

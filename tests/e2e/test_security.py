"""Issue 13 on the real engine, as declared steps: a SIGKILLed `pulumi up` recovered by `tenantctl recover`
(item 8), and a run with verbose engine logging refused before any resource is declared (item 10; tracing too:
issue 26, item 3). A swapped
ciphertext (item 1) is a step of tests/e2e/test_lifecycle.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Check, Step, pulumi, run_steps, tenantctl

pytestmark = pytest.mark.e2e

TENANTS = 6
TEXT = "version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n" + "".join(
    f"  - subdomain: kill{n}\n    secrets:\n      STRIPE_SECRET_KEY: {{from: config}}\n" for n in range(TENANTS)
)
VALUES = {f"kill{n}": {"STRIPE_SECRET_KEY": f"fake-stripe-kill{n}-canary-0001"} for n in range(TENANTS)}
VERBOSE = "engine logging or tracing is on (`pulumi` runs with"


def kill_session(sid: int) -> None:
    """SIGKILL every process left in the session the killed run started, so the test leaves none behind."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(int(entry.name)) == sid:
                    os.kill(int(entry.name), signal.SIGKILL)


def locks(project: Project) -> list[Path]:
    backend = Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    return list((backend / ".pulumi" / "locks").glob("**/dev/*.json"))


def killed_while_writing(project: Project) -> None:
    """`pulumi up` SIGKILLed once it writes to Infisical (each request slow, so the kill lands mid-run),
    holding the stack's lock: the CLI only, as a runner that vanishes would, then its orphaned plugins."""
    project.infisical.server.settings(latency_ms=400)
    try:
        run = subprocess.Popen(
            ["pulumi", "up", "--yes", "--non-interactive", "--stack", "dev"],
            cwd=project.root,
            env={**os.environ, **project.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while project.infisical.writes() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert locks(project), "the run holds the stack's lock while it writes"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        time.sleep(1)
        kill_session(run.pid)  # its plugins, each in a process group of its own
    finally:
        project.infisical.server.settings(latency_ms=0)


def recovered(project: Project, stack: auto.Stack) -> None:
    done = tenantctl(project, "recover", "--stack", "dev")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stack dev: removed 1 stale lock(s)")
    assert "dropped pending operations (" in done.stdout  # the creates the kill cut short
    assert not locks(project)


def settled(project: Project, stack: auto.Stack) -> None:
    assert "warning" not in project.outputs[-1].lower(), "the preview warns"
    assert tenantctl(project, "recover", "--stack", "dev").stdout.strip() == (
        "stack dev: no stale lock and no pending operation; nothing to do"
    )
    leaked = [v for values in VALUES.values() for v in values.values() if v in "\n".join(project.outputs)]
    assert leaked == []


def test_a_sigkilled_up_is_recovered_by_tenantctl_recover(project: Project, master_key: str) -> None:
    project.write_tenants(TEXT)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    steps = [
        Step("an up SIGKILLed while it writes, holding the stack's lock", by_hand=killed_while_writing, up=False),
        Step("the next up is refused: the stack is locked", fails=["locked"]),
        Step("`tenantctl recover` removes the stale lock and the pending operations", up=False, check=recovered),
        Step(
            "the next up converges, with no pending operation left",
            hides=["pending operation"],
            folders={f"/tenants/{owner}": values for owner, values in VALUES.items()},
        ),
        Step(
            "then a preview shows no change and no warning, recover has nothing to do, and no value was printed",
            preview={},
            up=False,
            check=settled,
        ),
    ]
    run_steps(project, stack, steps, "a SIGKILLed up")


def refused(*args: str, env: dict[str, str | None] | None = None, says: str = VERBOSE) -> Check:
    def check(project: Project, stack: auto.Stack) -> None:
        project.infisical.reset_counts()
        done = pulumi(project, *args, "--stack", "dev", env=env)
        assert done.returncode != 0
        assert says in done.stdout + done.stderr
        assert project.infisical.request_counts() == {}, "a provider was configured, or a folder read"

    return check


def test_verbose_engine_logging_is_refused_before_anything_is_declared(project: Project, master_key: str) -> None:
    project.write_tenants(TEXT)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    steps = [
        Step("`pulumi preview -v=3`: refused, no request sent", up=False, check=refused("preview", "-v=3")),
        Step(
            "`pulumi up --verbose=1`: refused, no request sent", up=False, check=refused("up", "--yes", "--verbose=1")
        ),
        Step(
            "PULUMI_DEBUG_GRPC set: refused too",
            up=False,
            check=refused(
                "preview",
                env={"PULUMI_DEBUG_GRPC": str(project.root / "grpc.log")},
                says="the environment variable PULUMI_DEBUG_GRPC is set",
            ),
        ),
        Step(
            "`pulumi up --tracing=file:<path>`: refused, no request sent",
            up=False,
            check=refused(
                "up", "--yes", f"--tracing=file:{project.root / 'trace.out'}", says=f"{VERBOSE} --tracing=file:"
            ),
        ),
        Step(
            "`pulumi preview --otel-traces file://<path>`: refused too",
            up=False,
            check=refused(
                "preview",
                "--otel-traces",
                f"file://{project.root / 'otel.json'}",
                says=f"{VERBOSE} --otel-traces file:",
            ),
        ),
    ]
    run_steps(project, stack, steps, "verbose engine logging and tracing")

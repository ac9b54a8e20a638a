"""Issue 13 on the real engine: a SIGKILLed `pulumi up` recovered by `tenantctl recover` (item 8), and a
run with verbose engine logging refused before any resource is declared (item 10). A swapped ciphertext
(item 1) is a step of tests/e2e/test_lifecycle.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Project, configure, sdk_listing
from tests.e2e.steps import pulumi, tenantctl

pytestmark = pytest.mark.e2e

TENANTS = 6
TEXT = "version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n" + "".join(
    f"  - subdomain: kill{n}\n    secrets:\n      STRIPE_SECRET_KEY: {{from: config}}\n" for n in range(TENANTS)
)
VALUES = {f"kill{n}": {"STRIPE_SECRET_KEY": f"fake-stripe-kill{n}-canary-0001"} for n in range(TENANTS)}


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


def test_a_sigkilled_up_is_recovered_by_tenantctl_recover(project: Project, master_key: str) -> None:
    project.write_tenants(TEXT)
    configure(project.stack("dev"), secrets_config=VALUES, master_keys={"v1": master_key})
    project.infisical.server.settings(latency_ms=400)  # each request slow: the kill lands mid-run
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
        os.kill(run.pid, signal.SIGKILL)  # the CLI only, as a runner that vanishes would
        run.wait()
        time.sleep(1)
        kill_session(run.pid)  # then its orphaned plugins (each in a process group of its own)
    finally:
        project.infisical.server.settings(latency_ms=0)

    refused = pulumi(project, "up", "--yes", "--stack", "dev")
    assert refused.returncode != 0 and "locked" in refused.stderr + refused.stdout

    recovered = tenantctl(project, "recover", "--stack", "dev")
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.startswith("stack dev: removed 1 stale lock(s)")
    assert "dropped pending operations (" in recovered.stdout  # the creates the kill cut short
    assert not locks(project)

    up = pulumi(project, "up", "--yes", "--stack", "dev")
    assert up.returncode == 0, up.stderr
    assert "pending operation" not in up.stdout + up.stderr
    for n in range(TENANTS):
        listed = sdk_listing(project.infisical, "dev", f"/tenants/kill{n}") or []
        assert {s.secretKey: s.secretValue for s in listed} == VALUES[f"kill{n}"]
    again = pulumi(project, "preview", "--expect-no-changes", "--stack", "dev")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "warning" not in again.stdout.lower()
    assert tenantctl(project, "recover", "--stack", "dev").stdout.strip() == (
        "stack dev: no stale lock and no pending operation; nothing to do"
    )
    leaked = [v for values in VALUES.values() for v in values.values() if v in "\n".join(project.outputs)]
    assert leaked == []


def test_verbose_engine_logging_is_refused_before_anything_is_declared(project: Project, master_key: str) -> None:
    project.write_tenants(TEXT)
    configure(project.stack("dev"), secrets_config=VALUES, master_keys={"v1": master_key})
    project.infisical.reset_counts()
    for args in (("preview", "-v=3"), ("up", "--yes", "--verbose=1")):
        done = pulumi(project, *args, "--stack", "dev")
        assert done.returncode != 0
        assert "verbose engine logging is on (`pulumi` runs with" in done.stdout + done.stderr
    assert project.infisical.request_counts() == {}  # no provider was configured, no folder read
    debug = pulumi(project, "preview", "--stack", "dev", env={"PULUMI_DEBUG_GRPC": str(project.root / "grpc.log")})
    assert debug.returncode != 0
    assert "the environment variable PULUMI_DEBUG_GRPC is set" in debug.stdout + debug.stderr

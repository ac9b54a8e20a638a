"""`tenantctl recover` decides from the lock's holder, the processes a killed run left (issue 26, item 4)
and the caller's promise; pending operations go only through an export/import of the state (issue 13,
item 8). Torn files: tests/tenantctl/test_recover_torn_state.py. The real engine:
tests/e2e/test_security.py, tests/e2e/test_killed_runs.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from tenant_secrets.tenantctl.recover import RecoverError, Recovery, recover

HOST = "runner-1"


class FakePulumi:
    def __init__(self, pending: list[dict[str, object]]) -> None:
        self.checkpoint = {"version": 3, "deployment": {"resources": [], "pending_operations": pending}}
        self.calls: list[list[str]] = []
        self.imported: dict[str, object] | None = None

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(list(args))
        if args[:2] == ["stack", "import"]:
            self.imported = json.loads(Path(args[args.index("--file") + 1]).read_text())
        return json.dumps(self.checkpoint)


def lock(tmp_path: Path, *, pid: int, hostname: str) -> Path:
    path = tmp_path / "backend" / ".pulumi" / "locks" / "organization" / "tenant-secrets" / "dev" / "a1.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "username": "ci", "hostname": hostname, "timestamp": "2026-01-01"}))
    return path


def proc(tmp_path: Path, live: dict[int, str]) -> Path:
    root = tmp_path / "proc"
    for pid, command in live.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(command.encode() + b"\0")
    root.mkdir(exist_ok=True)
    return root


def process(root: Path, pid: int, command: str, *, ppid: int, cwd: Path) -> None:
    """A process in the fake ``/proc`` at ``root``: its command line, parent and working directory."""
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cmdline").write_bytes(command.replace(" ", "\0").encode() + b"\0")
    (root / str(pid) / "stat").write_text(f"{pid} ({command.split(maxsplit=1)[0][-15:]}) S {ppid} {pid} {pid} 0")
    (root / str(pid) / "cwd").symlink_to(cwd)


def run_recover(
    tmp_path: Path,
    fake: FakePulumi,
    *,
    exclusive: bool = False,
    live: dict[int, str] | None = None,
    proc_root: Path | None = None,
) -> Recovery:
    return recover(
        "dev",
        backend_url=f"file://{tmp_path / 'backend'}",
        exclusive=exclusive,
        project=tmp_path / "project",
        run=fake,
        hostname=HOST,
        proc=proc_root or proc(tmp_path, live or {}),
    )


def test_a_lock_whose_process_is_gone_goes_and_pending_creates_are_dropped(tmp_path: Path) -> None:
    path = lock(tmp_path, pid=4242, hostname=HOST)
    fake = FakePulumi([{"type": "creating", "resource": {"urn": "urn:x"}}] * 2)
    done = run_recover(tmp_path, fake, live={4242: "python3 unrelated.py"})  # a recycled pid
    assert not path.exists()
    assert done.summary("dev") == (
        "stack dev: removed 1 stale lock(s) (pid 4242 on runner-1); "
        "dropped pending operations (2 creating); the next `pulumi up` redoes them"
    )
    assert fake.imported is not None and fake.imported["deployment"] == {"resources": [], "pending_operations": []}
    assert not any(call[0] == "refresh" for call in fake.calls)


def test_a_cut_short_update_is_followed_by_a_refresh(tmp_path: Path) -> None:
    fake = FakePulumi([{"type": "updating", "resource": {"urn": "urn:x"}}])
    done = run_recover(tmp_path, fake)
    assert done.refreshed and fake.calls[-1][0] == "refresh"


def test_a_live_run_or_an_unknowable_one_keeps_its_lock(tmp_path: Path) -> None:
    path = lock(tmp_path, pid=4242, hostname=HOST)
    with pytest.raises(RecoverError, match="still alive"):
        run_recover(tmp_path, FakePulumi([]), exclusive=True, live={4242: "pulumi up --yes"})
    assert path.exists()
    path = lock(tmp_path, pid=4242, hostname="runner-2")
    with pytest.raises(RecoverError, match="run again with --exclusive"):
        run_recover(tmp_path, FakePulumi([]))
    assert path.exists()
    run_recover(tmp_path, FakePulumi([]), exclusive=True)
    assert not path.exists()


def test_a_plugin_or_language_host_a_killed_run_left_keeps_the_lock_and_is_named(tmp_path: Path) -> None:
    """The engine (pid 4242) is gone, but what it started lives on, re-parented: a writer may be among them."""
    path = lock(tmp_path, pid=4242, hostname=HOST)
    project, elsewhere = tmp_path / "project", tmp_path / "another-checkout"
    project.mkdir()
    elsewhere.mkdir()
    root = tmp_path / "proc"
    process(root, 1, "/sbin/init", ppid=0, cwd=Path("/"))
    process(root, 501, "/venv/bin/python -m components.plugin 127.0.0.1:40001", ppid=1, cwd=project)
    process(root, 502, "/toolchain/pulumi-language-python 127.0.0.1:40001", ppid=1, cwd=project)
    process(root, 503, "/venv/bin/python -u /cache/pulumi-language-python-exec --monitor x", ppid=502, cwd=project)
    process(root, 600, "pulumi preview --stack dev-2", ppid=1, cwd=project)  # another run, alive: not ours
    process(root, 601, "/venv/bin/python -m components.plugin 127.0.0.1:40002", ppid=600, cwd=project)
    process(root, 700, "/venv/bin/python -m components.plugin 127.0.0.1:40003", ppid=1, cwd=elsewhere)
    process(root, 800, "/usr/bin/python3 server.py", ppid=1, cwd=project)  # not a part of a run
    fake = FakePulumi([])
    with pytest.raises(RecoverError) as refused:
        run_recover(tmp_path, fake, proc_root=root)
    assert str(refused.value) == (
        "stack dev: a killed run of this project left processes that may still write: "
        "pid 501 (the tenant-secrets provider plugin), pid 502 (language host pulumi-language-python), "
        "pid 503 (the Pulumi program); wait for them to end, or stop them (kill 501 502 503), then run recover again"
    )
    assert path.exists() and fake.calls == []
    for pid in (501, 502, 503):
        shutil.rmtree(root / str(pid))
    assert run_recover(tmp_path, fake, proc_root=root).locks_removed[0].pid == 4242
    assert not path.exists()


def test_nothing_to_recover_changes_nothing(tmp_path: Path) -> None:
    fake = FakePulumi([])
    assert (
        run_recover(tmp_path, fake).summary("dev") == "stack dev: no stale lock and no pending operation; nothing to do"
    )
    assert fake.calls == [["stack", "export", "--stack", "dev"]]
    with pytest.raises(RecoverError, match="file backend"):
        recover("dev", backend_url="s3://bucket", exclusive=True, project=tmp_path, run=fake)

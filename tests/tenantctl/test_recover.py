"""`tenantctl recover` decides from the lock's holder and the caller's promise; pending operations go
only through an export/import of the state (issue 13, item 8). The real engine: tests/e2e/test_security.py."""

from __future__ import annotations

import json
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


def run_recover(
    tmp_path: Path, fake: FakePulumi, *, exclusive: bool = False, live: dict[int, str] | None = None
) -> Recovery:
    return recover(
        "dev",
        backend_url=f"file://{tmp_path / 'backend'}",
        exclusive=exclusive,
        run=fake,
        hostname=HOST,
        proc=proc(tmp_path, live or {}),
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


def test_nothing_to_recover_changes_nothing(tmp_path: Path) -> None:
    fake = FakePulumi([])
    assert (
        run_recover(tmp_path, fake).summary("dev") == "stack dev: no stale lock and no pending operation; nothing to do"
    )
    assert fake.calls == [["stack", "export", "--stack", "dev"]]
    with pytest.raises(RecoverError, match="file backend"):
        recover("dev", backend_url="s3://bucket", exclusive=True, run=fake)

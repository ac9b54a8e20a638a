"""Issue 26, item 5: what a killed run leaves torn on Pulumi's file backend, repaired by `tenantctl recover`,
on a real file-backend state made by the `pulumi` CLI (`stack init`, then `stack import`, which leaves a
`.bak` beside the checkpoint as every save does). Each shape alone made every command, recover's
own `pulumi stack export` included, fail (`failed to load checkpoint: EOF`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tenant_secrets.tenantctl.recover import RecoverError, Recovery, pulumi_runner, recover

STACK_DIR = Path(".pulumi/stacks/tenant-secrets")
CHECKPOINT = STACK_DIR / "dev.json"
ATTRS = STACK_DIR / "dev.json.attrs"
BACKUP = STACK_DIR / "dev.json.bak"


def environ(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{root / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "fake-passphrase-not-a-secret",
        "PULUMI_HOME": str(root / "pulumi-home"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


def pulumi(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args], cwd=root / "project", env=environ(root), capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def real_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file backend holding stack dev of project tenant-secrets (its checkpoint, `.bak` and sidecars)."""
    root = tmp_path_factory.mktemp("real-state")
    (root / "project").mkdir()
    (root / "backend").mkdir()
    (root / "project" / "Pulumi.yaml").write_text("name: tenant-secrets\nruntime: python\n")
    assert pulumi(root, "stack", "init", "dev", "--non-interactive").returncode == 0
    exported = json.loads(pulumi(root, "stack", "export", "--stack", "dev").stdout)
    urn = "urn:pulumi:dev::tenant-secrets::pulumi:pulumi:Stack::tenant-secrets-dev"
    exported["deployment"]["resources"] = [{"urn": urn, "custom": False, "type": "pulumi:pulumi:Stack"}]
    (root / "saved.json").write_text(json.dumps(exported))
    imported = pulumi(root, "stack", "import", "--stack", "dev", "--file", str(root / "saved.json"))
    assert imported.returncode == 0, imported.stderr
    return root


@pytest.fixture
def state(real_state: Path, tmp_path: Path) -> Path:
    """A copy of the real state, to tear."""
    shutil.copytree(real_state, tmp_path / "copy")
    return tmp_path / "copy"


def run_recover(root: Path) -> Recovery:
    run = pulumi_runner(root / "project", environ(root))
    return recover("dev", backend_url=f"file://{root / 'backend'}", exclusive=False, project=root / "project", run=run)


def readable(root: Path) -> dict[str, Any]:
    """The stack as `pulumi stack export` reads it (it fails on a torn state)."""
    done = pulumi(root, "stack", "export", "--stack", "dev")
    assert done.returncode == 0, done.stderr
    deployment: dict[str, Any] = json.loads(done.stdout)["deployment"]
    return deployment


@pytest.mark.parametrize("torn", ["empty", "half"])
def test_an_empty_or_torn_attrs_file_beside_a_good_checkpoint_is_removed(state: Path, torn: str) -> None:
    attrs = state / "backend" / ATTRS
    attrs.write_bytes(b"" if torn == "empty" else attrs.read_bytes()[: attrs.stat().st_size // 2])
    assert "failed to load checkpoint" in pulumi(state, "stack", "export", "--stack", "dev").stderr
    lines = run_recover(state).summary("dev").splitlines()
    assert lines[0] == "stack dev: no stale lock and no pending operation"
    what = "empty" if torn == "empty" else "torn ("
    assert lines[1].startswith(f"stack dev: removed {ATTRS}: {what}"), lines
    assert lines[1].endswith("the backend reads dev.json without it")
    assert len(lines) == 2, lines
    assert [r["type"] for r in readable(state)["resources"]] == ["pulumi:pulumi:Stack"]


def test_a_torn_checkpoint_is_restored_from_its_good_backup(state: Path) -> None:
    checkpoint = state / "backend" / CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    assert pulumi(state, "stack", "export", "--stack", "dev").returncode != 0
    done = run_recover(state)
    assert done.summary("dev").splitlines() == [
        "stack dev: no stale lock and no pending operation; refreshed the state from the stores",
        f"stack dev: restored {CHECKPOINT} from dev.json.bak: it was torn, its backup is the state saved just before",
    ]
    assert "resources" not in readable(state)  # as the backup had it: the state before the last save


def test_a_torn_checkpoint_with_a_torn_backup_is_left_and_named(state: Path) -> None:
    checkpoint, backup = state / "backend" / CHECKPOINT, state / "backend" / BACKUP
    sidecar = state / "backend" / f"{BACKUP}.attrs"
    checkpoint.write_bytes(b"")
    backup.write_bytes(backup.read_bytes()[:50])
    sidecar.write_bytes(b"")
    with pytest.raises(RecoverError, match=r"dev.json of stack dev is torn and its backup dev.json.bak is torn too"):
        run_recover(state)
    assert (checkpoint.read_bytes(), len(backup.read_bytes()), sidecar.read_bytes()) == (b"", 50, b""), "touched"


def test_a_torn_gzip_checkpoint_is_restored_from_its_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that compresses its checkpoints (PULUMI_DIY_BACKEND_GZIP): `dev.json.gz` and its `.bak`."""
    monkeypatch.setenv("PULUMI_DIY_BACKEND_GZIP", "true")
    (tmp_path / "project").mkdir()
    (tmp_path / "backend").mkdir()
    (tmp_path / "project" / "Pulumi.yaml").write_text("name: tenant-secrets\nruntime: python\n")
    assert pulumi(tmp_path, "stack", "init", "dev", "--non-interactive").returncode == 0
    (tmp_path / "saved.json").write_text(pulumi(tmp_path, "stack", "export", "--stack", "dev").stdout)
    assert pulumi(tmp_path, "stack", "import", "--stack", "dev", "--file", str(tmp_path / "saved.json")).returncode == 0
    checkpoint = tmp_path / "backend" / STACK_DIR / "dev.json.gz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:40])
    lines = run_recover(tmp_path).summary("dev").splitlines()
    assert lines[1] == (
        f"stack dev: restored {STACK_DIR}/dev.json.gz from dev.json.gz.bak: it was torn, its backup is the "
        "state saved just before"
    )
    assert readable(tmp_path)["secrets_providers"]["type"] == "passphrase"


def test_a_whole_state_is_left_as_it_is(state: Path) -> None:
    before = {path: path.read_bytes() for path in (state / "backend").rglob("*") if path.is_file()}
    assert run_recover(state).summary("dev") == "stack dev: no stale lock and no pending operation; nothing to do"
    assert {path: path.read_bytes() for path in (state / "backend").rglob("*") if path.is_file()} == before

"""A reshard killed at each of its steps, on the real engine (issue 26, High 1; docs/decisions/0043).

An environment of one stack, six tenants in both stores; `tenantctl shards init --count 3`, then
`tenantctl reshard --from 1 --to 3` SIGKILLed right after one of the `pulumi` commands that change
something (a marker, a bootstrap, a state move, a shard setting, a settled state). The kill points are
deterministic: `pulumi` is wrapped by a script that runs the real one and then kills its parent, the
reshard, after the n-th such command. After each kill: no row or Infisical secret changed, no tenant in
two stacks, every stack holding tenants refuses `preview` and `up` with the one line naming the command
that finishes the job; then that command, run once, converges: each stack holds its shard's tenants and
every preview shows no change. `make test-long` kills after the first state move (the reported case);
`TENANT_SECRETS_RESHARD_KILLS=all pytest -m long` after each one, and checks there are STEPS of them. The
normal suite checks the re-parenting of a resource whose parent moved.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tenant_secrets.stack.reshard_marker import marked
from tenant_secrets.stack.shards import shard_of
from tenant_secrets.tenantctl.reshard import _unparented, held_tenants
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import pulumi, tenantctl, values
from tests.e2e.test_shards import SUBDOMAINS, TENANTS, ciphertexts

STACKS = ["prod", "prod-02", "prod-03"]
FINISH = "tenantctl reshard --environment prod --from 1 --to 3"
MUTATING = ("stack import", "state move", "config set", "up")
STEPS = 15
"""The changing `pulumi` commands of this reshard: a marker on prod; prod-02 bootstrapped and marked; the
same for prod-03; prod's provider aligned and one state move per destination; three shard settings; three
states settled and unmarked. Checked by the run that is not killed."""

EVERY_STEP = pytest.mark.skipif(
    os.environ.get("TENANT_SECRETS_RESHARD_KILLS") != "all",
    reason="a kill at each step of the reshard takes about 12 minutes: TENANT_SECRETS_RESHARD_KILLS=all",
)

WRAPPER = """#!{python}
import os, signal, subprocess, sys
done = subprocess.run([{real!r}, *sys.argv[1:]])
words = " ".join(sys.argv[1:3])
if any(words.startswith(kind) for kind in {mutating!r}):
    with open({log!r}, "a") as log:
        log.write(words + "\\n")
    with open({log!r}) as log:
        seen = [line for line in log.read().splitlines() if line.startswith(os.environ["KILL_AFTER_CALL"])]
    if len(seen) == int(os.environ["KILL_AFTER_NTH"]):
        os.kill(os.getppid(), signal.SIGKILL)
sys.exit(done.returncode)
"""


def wrapped_pulumi(project: Project, tmp: Path) -> tuple[Path, Path]:
    """A directory whose `pulumi` runs the real one and kills the reshard after the chosen command; its log."""
    real = shutil.which("pulumi")
    assert real is not None
    directory, log = tmp / "wrapped-bin", tmp / "pulumi-calls.log"
    directory.mkdir()
    script = directory / "pulumi"
    script.write_text(WRAPPER.format(python=sys.executable, real=real, mutating=MUTATING, log=str(log)))
    script.chmod(0o755)
    return directory, log


def reshard_killed(project: Project, tmp: Path, *, after: str, nth: int) -> list[str]:
    """`tenantctl reshard --from 1 --to 3`, killed after the ``nth`` changing `pulumi` command starting with
    ``after`` ("" for any); the changing commands it ran."""
    directory, log = wrapped_pulumi(project, tmp)
    env = {"PATH": f"{directory}:{os.environ['PATH']}", "KILL_AFTER_CALL": after, "KILL_AFTER_NTH": str(nth)}
    done = tenantctl(project, "reshard", "--environment", "prod", "--from", "1", "--to", "3", env=env)
    calls = log.read_text().splitlines() if log.exists() else []
    if nth <= len([c for c in calls if c.startswith(after)]):
        assert done.returncode == -9, f"the reshard was not killed: {done.returncode} {done.stderr[-500:]}"
    return calls


def state(project: Project, stack: str) -> dict[str, Any]:
    done = pulumi(project, "stack", "export", "--stack", stack)
    assert done.returncode == 0, done.stderr
    deployment: dict[str, Any] = json.loads(done.stdout).get("deployment") or {}
    return deployment


def stored(project: Project) -> dict[str, Any]:
    """Every row's ciphertext and every tenant's Infisical folder."""
    folders = {s: values(project, f"/tenants/{s}", "prod") for s in SUBDOMAINS}
    return {"rows": ciphertexts(project), "folders": folders}


def applied_unsharded(project: Project, master_key: str) -> dict[str, Any]:
    """prod as one stack, applied; then `shards init --count 3` (as the report did); what the stores hold."""
    project.write_tenants(TENANTS)
    configure(project.stack("prod"), secrets_config={}, master_keys={"v1": master_key})
    up = pulumi(project, "up", "--yes", "--skip-preview", "--stack", "prod")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr
    made = tenantctl(project, "shards", "init", "--environment", "prod", "--count", "3")
    assert made.returncode == 0, made.stderr
    seen = stored(project)
    assert {s for s, _ in seen["rows"]} == set(SUBDOMAINS) and all(seen["folders"].values())
    return seen


def check_killed_state_is_safe(project: Project, seen: dict[str, Any]) -> None:
    """Nothing lost, no tenant in two stacks, and every stack holding tenants refuses preview and up with the
    one line, unless the reshard had already settled it (then its preview shows no change)."""
    holders: dict[str, list[str]] = {}
    states = {stack: state(project, stack) for stack in STACKS}
    for stack, deployment in states.items():
        for owner in held_tenants(deployment) - {"hono-api"}:
            holders.setdefault(owner, []).append(stack)
    assert sorted(holders) == sorted(SUBDOMAINS), holders
    assert all(len(where) == 1 for where in holders.values()), f"a tenant in two stacks: {holders}"
    for stack in sorted({s for where in holders.values() for s in where}):
        if not marked(states[stack]):
            done = pulumi(project, "preview", "--expect-no-changes", "--stack", stack)
            assert done.returncode == 0, f"{stack} is settled, yet its preview shows a change: {done.stdout[-1500:]}"
            continue
        for command in (("preview",), ("up", "--yes", "--skip-preview")):
            done = pulumi(project, *command, "--stack", stack)
            output = done.stdout + done.stderr
            assert done.returncode != 0, f"`pulumi {command[0]}` of {stack} was not refused: {output[-1500:]}"
            assert "a reshard is unfinished" in output and FINISH in output, output[-1500:]
            assert "Traceback" not in output
    assert stored(project) == seen, "a row or an Infisical secret changed"


def check_converged(project: Project, seen: dict[str, Any]) -> None:
    """The one command, run again, finishes the job: each stack its shard's tenants, every preview unchanged."""
    project.infisical.reset_counts()
    again = tenantctl(project, "reshard", "--environment", "prod", "--from", "1", "--to", "3")
    assert again.returncode == 0, again.stderr
    for index, stack in enumerate(STACKS, start=1):
        held = held_tenants(state(project, stack)) - {"hono-api"}
        assert held == {s for s in SUBDOMAINS if shard_of(s, 3) == index}, stack
    planned = tenantctl(project, "plan", "--environment", "prod", "--format", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plans = json.loads(planned.stdout)
    assert [(p["stack"], p["changes"], set(p["resources"])) for p in plans] == [(s, [], {"same"}) for s in STACKS]
    assert project.infisical.writes() == 0
    assert stored(project) == seen


@pytest.mark.e2e
@pytest.mark.long
def test_a_reshard_killed_after_its_first_state_move_loses_nothing_and_blocks_the_deploy(
    project: Project, master_key: str, tmp_path: Path
) -> None:
    seen = applied_unsharded(project, master_key)
    calls = reshard_killed(project, tmp_path, after="state move", nth=1)
    assert calls[-1] == "state move", calls
    check_killed_state_is_safe(project, seen)
    check_converged(project, seen)


@pytest.mark.e2e
@pytest.mark.long
@EVERY_STEP
@pytest.mark.parametrize("point", range(1, STEPS + 1))
def test_a_reshard_killed_at_any_step_is_finished_by_running_it_again(
    project: Project, master_key: str, tmp_path: Path, point: int
) -> None:
    seen = applied_unsharded(project, master_key)
    calls = reshard_killed(project, tmp_path, after="", nth=point)
    assert len(calls) == point, calls
    check_killed_state_is_safe(project, seen)
    check_converged(project, seen)


@pytest.mark.e2e
@pytest.mark.long
@EVERY_STEP
def test_the_reshard_not_killed_runs_every_step_once(project: Project, master_key: str, tmp_path: Path) -> None:
    seen = applied_unsharded(project, master_key)
    calls = reshard_killed(project, tmp_path, after="", nth=STEPS + 1)
    assert len(calls) == STEPS, calls
    check_converged(project, seen)


def parents_moved_away(project: Project, stack: str, owner: str) -> list[str]:
    """What `pulumi state move` does to a resource whose parent stays behind, done by hand: ``owner``'s folder
    and rows parented to the stack (their URNs lose the component's type). The URNs made."""
    exported = json.loads(pulumi(project, "stack", "export", "--stack", stack).stdout)
    root = next(r["urn"] for r in exported["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack")
    text = json.dumps(exported)
    made = []
    for res in exported["deployment"]["resources"]:
        if res["urn"].endswith((f"::{owner}-infisical", f"::{owner}-database")):
            made.append(_unparented(res["urn"], stack))
            text = text.replace(json.dumps(res["urn"]), json.dumps(made[-1]))  # dependents follow, as in a move
    moved = json.loads(text)
    for res in moved["deployment"]["resources"]:
        if res["urn"] in made:
            res["parent"] = root
    checkpoint = project.root / "moved.json"
    checkpoint.write_text(json.dumps(moved))
    imported = pulumi(project, "stack", "import", "--stack", stack, "--file", str(checkpoint))
    assert imported.returncode == 0, imported.stderr
    return made


@pytest.mark.e2e
def test_a_resource_whose_parent_moved_is_re_parented_never_deleted(project: Project, master_key: str) -> None:
    """The engine deleted the moved tenants' rows because it saw them as two resources: one gone (parented to
    the stack, no longer declared) and one new (under its component). The moved types' alias makes them one."""
    project.write_tenants(TENANTS)
    configure(project.stack("prod"), secrets_config={}, master_keys={"v1": master_key})
    up = pulumi(project, "up", "--yes", "--skip-preview", "--stack", "prod")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr
    seen = stored(project)
    moved = parents_moved_away(project, "prod", "alpha")
    assert len(moved) == 2, moved
    previewed = pulumi(project, "preview", "--json", "--stack", "prod")
    steps = json.loads(previewed.stdout).get("steps") or []
    assert [(s["op"], s["urn"]) for s in steps if s["op"] in ("delete", "create", "replace")] == []
    again = pulumi(project, "up", "--yes", "--skip-preview", "--stack", "prod")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr
    urns = {r["urn"] for r in state(project, "prod")["resources"]}
    assert not urns & set(moved), "still parented to the stack"
    assert {u.rsplit("$", 1)[-1] for u in urns if "::alpha-" in u} == {
        "tenant-secrets:index:InfisicalFolder::alpha-infisical",
        "tenant-secrets:index:DatabaseTenant::alpha-database",
    }
    assert stored(project) == seen, "a row or an Infisical secret changed"

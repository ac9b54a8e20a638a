"""Issue 26, items 4 and 5, on the real engine: a killed run stops writing and `tenantctl recover` plus the
next `up` converges from whatever it left.

- (long) A master-key rotation whose engine alone is SIGKILLed mid-way: its provider plugin ends
  within a second and not one more row moves; `recover` refuses while any process of the run lives,
  naming it, then converges with one `up` (the run after withdraws v1, as after any rotation).
- (long) Seeded kills at random moments of a first `up`, a master-key rotation and a reshard, the whole run
  killed as a vanished runner is; each time `recover` (and, for a reshard, the same reshard command again)
  plus one `up` of each stack converge: every declared value in both stores, every row on the active key
  and bound, no change in the next preview (after a rotation, once the run after it withdrew v1). One seed
  per kind in `make test-long`; `TENANT_SECRETS_KILL_RUNS=<n>` runs n seeds per kind, each reproduced with
  `-k '<kind> and <seed>'`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from pulumi import automation as auto

from tenant_secrets.secret.binding import BoundRow, check_rows
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.tenantctl import run_processes
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Check, Step, run_steps, tenantctl
from tests.e2e.test_security import kill_session, locks

pytestmark = pytest.mark.e2e

RUNS = int(os.environ.get("TENANT_SECRETS_KILL_RUNS", "1"))
SUBDOMAINS = ["alpha", "bravo", "charlie", "echo", "hotel", "kilo"]
"""Each of shards 1/2, 2/2, then 1/3, 2/3, 3/3 holds some of them (tenant_secrets/stack/shards.py shard_of)."""
KEYS = ("PLAN", "TOKEN", "REGION", "TIER")
VALUES = {s: {key: f"fake-{key.lower()}-{s}-0001" for key in KEYS} for s in SUBDOMAINS}
PLUGIN = "the tenant-secrets provider plugin"


def tenants_text(storage: str) -> str:
    return f"version: 1\ndefaults: {{storage: {storage}, environments: [dev]}}\ntenants:\n" + "".join(
        f"  - subdomain: {s}\n    secrets:\n" + "".join(f"      {k}: {{value: {v}}}\n" for k, v in values.items())
        for s, values in VALUES.items()
    )


@contextlib.contextmanager
def slow_rewrites(project: Project, seconds: float) -> Iterator[None]:
    """Every row update of company_secrets takes ``seconds`` (a trigger), so a rotation lasts long enough to
    be killed in the middle."""
    with project.db() as conn:
        conn.execute(
            "CREATE FUNCTION slow_rewrite() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({seconds}); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER slow_rewrite BEFORE UPDATE ON company_secrets FOR EACH ROW EXECUTE FUNCTION slow_rewrite()"
        )
    try:
        yield
    finally:
        with project.db() as conn:
            conn.execute("DROP TRIGGER IF EXISTS slow_rewrite ON company_secrets")
            conn.execute("DROP FUNCTION IF EXISTS slow_rewrite()")


def on_key(project: Project, version: int) -> int:
    with project.db() as conn:
        found = conn.execute("SELECT count(*) FROM company_secrets WHERE key_version = %s", [version]).fetchone()
    return int(found[0]) if found else 0


def start(project: Project, *argv: str) -> subprocess.Popen[bytes]:
    """A command in the project, in a session of its own (as a runner's job), its output discarded."""
    return subprocess.Popen(
        argv,
        cwd=project.root,
        env={**os.environ, **project.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def survivors(project: Project) -> list[run_processes.Process]:
    return run_processes.orphans(project.root)


def rotate_to(project: Project, key: bytes) -> None:
    project.stack("dev").set_all_config(
        {
            "tenant-secrets:masterKeys.v2": auto.ConfigValue(key.hex(), secret=True),
            "tenant-secrets:activeKeyVersion": auto.ConfigValue("2"),
        },
        path=True,
    )


def converged(keyring: Keyring, subdomains: Sequence[str] = SUBDOMAINS) -> Check:
    """Every declared row holds its value, on the active key, bound to its row."""

    def check(project: Project, stack: auto.Stack) -> None:
        with project.db() as conn:
            rows = conn.execute(
                "SELECT c.subdomain, s.company_id::text, s.secret_key, s.key_version, s.version,"
                " s.secret_value_encrypted, s.binding FROM company_secrets s JOIN companies c ON c.id = s.company_id"
            ).fetchall()
        stored = {(sub, key): keyring.decrypt(ct, kv) for sub, _cid, key, kv, _v, ct, _b in rows}
        assert stored == {(s, key): value for s in subdomains for key, value in VALUES[s].items()}
        assert {kv for *_, kv, _v, _ct, _b in rows} == {keyring.active}
        assert check_rows(keyring, [BoundRow(cid, key, kv, v, ct, b) for _s, cid, key, kv, v, ct, b in rows]) == []

    return check


@dataclasses.dataclass
class KilledRun:
    """What the test saw of a run whose engine it SIGKILLed."""

    outlived: float = 0.0
    """Seconds from the engine's kill to its plugin's end."""
    moved: list[int] = dataclasses.field(default_factory=list)
    """Rows on the new key 0.5 s and 3.5 s after the kill."""
    left: list[run_processes.Process] = dataclasses.field(default_factory=list)
    """The run's processes alive after that."""
    session: int = 0


@pytest.mark.long
def test_a_rotation_whose_engine_is_sigkilled_stops_writing_and_recovers(project: Project, master_key: str) -> None:
    project.write_tenants(tenants_text("database"))
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key}, rotationBatchSize="1")
    second = os.urandom(32)
    keyring = Keyring({1: bytes.fromhex(master_key), 2: second}, active=2)
    seen = KilledRun()

    def engine_killed_mid_rotation(project: Project) -> None:
        """v2 active; the up's engine SIGKILLed once two rows moved; the rows counted after."""
        rotate_to(project, second)
        with slow_rewrites(project, 0.15):
            run = start(project, "pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "dev")
            deadline = time.monotonic() + 120
            while on_key(project, 2) < 2:
                assert run.poll() is None and time.monotonic() < deadline, "the rotation ended before its kill"
                time.sleep(0.02)
            os.kill(run.pid, signal.SIGKILL)  # the engine only: what it started is left to itself
            run.wait()
            killed = time.monotonic()
            while PLUGIN in {p.role for p in survivors(project)} and time.monotonic() - killed < 5:
                time.sleep(0.01)
            seen.outlived = round(time.monotonic() - killed, 3)
            time.sleep(0.5)  # a transaction the kill cut is rolled back by now
            seen.moved.append(on_key(project, 2))
            time.sleep(3)
            seen.moved.append(on_key(project, 2))
        seen.left = survivors(project)
        seen.session = run.pid

    def stopped(project: Project, stack: auto.Stack) -> None:
        assert seen.outlived < 1.0, f"the plugin outlived its engine by {seen.outlived} s"
        assert seen.moved[0] == seen.moved[1] < len(SUBDOMAINS) * len(KEYS), (
            f"rows on the new key 0.5 s and 3.5 s after the kill: {seen.moved}"
        )

    def refused_while_alive(project: Project, stack: auto.Stack) -> None:
        """What of the run still lives (the language host: its health check of the engine runs every 5
        minutes) is named, and the lock stays; once it is stopped, as the message says, recover goes on."""
        left = seen.left
        assert "language host pulumi-language-python" in {p.role for p in left}, left
        refused = tenantctl(project, "recover", "--stack", "dev")
        assert refused.returncode == 1
        assert "a killed run of this project left processes that may still write" in refused.stderr
        assert all(f"pid {p.pid} ({p.role})" in refused.stderr for p in left), refused.stderr
        assert locks(project), "the lock was removed while a process of the run lived"
        kill_session(seen.session)
        done = tenantctl(project, "recover", "--stack", "dev")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("stack dev: removed 1 stale lock(s)"), done.stdout
        assert not locks(project)

    steps = [
        Step("the first up, on v1"),
        Step(
            "a rotation to v2 whose engine is SIGKILLed after two rows: its plugin ends, no row moves after",
            by_hand=engine_killed_mid_rotation,
            up=False,
            check=stopped,
        ),
        Step("`tenantctl recover` refuses while a process of the run lives", up=False, check=refused_while_alive),
        Step("the next up converges: every row on v2, bound, its value", check=converged(keyring)),
        Step(
            "then only v1's withdrawal is left, as on the run after any rotation (components/program.py)",
            preview={"update": 1},
            up=False,
        ),
    ]
    run_steps(project, stack, steps, "a rotation whose engine is SIGKILLed")
    print(f"\nkilled rotation: the plugin ended {seen.outlived} s after its engine; rows on v2 after: {seen.moved}")


KINDS = ("up", "rotation", "reshard")
SHARDS = ("dev", "dev-02", "dev-03")


def killed_at_random(argv: Sequence[str], delay: float, outcome: list[str]) -> Callable[[Project], None]:
    """A `by_hand` that starts ``argv`` and, ``delay`` seconds later, SIGKILLs its whole session (a runner that
    vanishes); ``outcome`` says whether the command had ended by then."""

    def kill(project: Project) -> None:
        run = start(project, *argv)
        try:
            run.wait(timeout=delay)
            outcome.append(f"ended before the kill at {delay:.2f} s (exit {run.returncode})")
        except subprocess.TimeoutExpired:
            outcome.append(f"killed at {delay:.2f} s")
        kill_session(run.pid)
        run.wait()

    return kill


def recovered(*stacks: str) -> Check:
    """`tenantctl recover` on each stack succeeds: whatever the kill left is cleared or repaired."""

    def check(project: Project, stack: auto.Stack) -> None:
        for name in stacks:
            done = tenantctl(project, "recover", "--stack", name)
            assert done.returncode == 0, f"recover --stack {name}: {done.stderr}"
            print(f"  {done.stdout.strip()}")

    return check


def kill_steps(kind: str, rng: random.Random, master_key: str, outcome: list[str]) -> tuple[list[Step], Keyring]:
    """The steps up to the recovered kill, and the keyring the stack ends on."""
    up = ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "dev"]
    keyring = Keyring({1: bytes.fromhex(master_key)}, active=1)
    if kind == "up":  # an unkilled first up takes about 6 s here, a rotation's up 7 s, a reshard 8 s
        delay = rng.uniform(0.5, 6.0)
        return [
            Step(f"the first up, killed at {delay:.2f} s", by_hand=killed_at_random(up, delay, outcome), up=False),
            Step("`tenantctl recover`", up=False, check=recovered("dev")),
        ], keyring
    if kind == "rotation":
        second, delay = os.urandom(32), rng.uniform(0.5, 7.0)
        rotate = killed_at_random(up, delay, outcome)

        def rotation_killed(project: Project) -> None:
            rotate_to(project, second)
            with slow_rewrites(project, 0.05):
                rotate(project)

        return [
            Step("the first up, on v1"),
            Step(f"a rotation to v2, killed at {delay:.2f} s", by_hand=rotation_killed, up=False),
            Step("`tenantctl recover`", up=False, check=recovered("dev")),
        ], Keyring({1: bytes.fromhex(master_key), 2: second}, active=2)
    delay = rng.uniform(0.3, 7.5)
    reshard = [sys.executable, "-m", "tenant_secrets.tenantctl", "reshard", "--environment", "dev", "--from", "2"]
    reshard += ["--to", "3"]

    def shards(project: Project, count: int) -> None:
        made = tenantctl(project, "shards", "init", "--environment", "dev", "--count", str(count))
        assert made.returncode == 0, made.stderr

    def third_shard_then_reshard_killed(project: Project) -> None:
        shards(project, 3)
        killed_at_random(reshard, delay, outcome)(project)

    def resharded_again(project: Project) -> None:
        """What the operator does after a killed reshard; one that had finished says so and changes nothing."""
        again = tenantctl(project, *reshard[3:])
        finished = "tenantctl reshard: environment dev is not in 2 shard(s) now"
        assert again.returncode == 0 or finished in again.stderr, again.stdout + again.stderr

    return [
        Step("shard 1 of 2, the environment's owner", by_hand=lambda project: shards(project, 2)),
        Step("then shard 2", stack="dev-02"),
        Step(
            f"shard 3 made, and `tenantctl reshard --from 2 --to 3` killed at {delay:.2f} s",
            by_hand=third_shard_then_reshard_killed,
            up=False,
        ),
        Step("`tenantctl recover` on each shard", up=False, check=recovered(*SHARDS)),
        Step("the same reshard again", by_hand=resharded_again, up=False),
        Step("shard 1's up", stack="dev"),
        Step("shard 2's up", stack="dev-02"),
    ], keyring


@pytest.mark.long
@pytest.mark.parametrize("seed", range(RUNS))
@pytest.mark.parametrize("kind", KINDS)
def test_a_run_killed_at_a_random_moment_converges_after_recover(
    project: Project, master_key: str, *, kind: str, seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write_tenants(tenants_text("both"))
    stack = project.stack("dev")
    shard = {"shard": "1/2"} if kind == "reshard" else {}
    configure(stack, secrets_config={}, master_keys={"v1": master_key}, rotationBatchSize="1", **shard)
    outcome: list[str] = []
    with capsys.disabled():
        print(f"\nkill {kind} seed {seed} (reproduce: -k '{kind} and {seed}')")
    steps, keyring = kill_steps(kind, random.Random(f"{kind}-{seed}"), master_key, outcome)
    last = "dev-03" if kind == "reshard" else "dev"
    steps += [
        Step(
            "one up converges: every declared value in both stores, every row on the active key and bound",
            stack=last,
            folders={f"/tenants/{s}": values for s, values in VALUES.items()},
            check=converged(keyring),
        ),
    ]
    if kind == "rotation":  # a version no row used at the start of a run is withdrawn (components/program.py)
        steps.append(Step("the run after the last row left v1 withdraws it"))
    steps += [
        Step(f"then {name}'s preview shows no change", stack=name, preview={}, up=False)
        for name in (SHARDS if kind == "reshard" else ("dev",))
    ]
    run_steps(project, stack, steps, f"{kind} killed, seed {seed}")
    with capsys.disabled():  # the figures of docs/reliability.md
        print(f"kill {kind} seed {seed}: {outcome[0] if outcome else 'no kill'}; converged")

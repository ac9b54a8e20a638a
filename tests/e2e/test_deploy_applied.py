"""Issue 26, item 7, on the real engine: the deploy compares each stack with the commit it last applied
(its stack tag), not with the commit before the push. prod in two shards, in a git repository; each push
is deployed as .github/workflows/deploy.yml does it: `tenantctl affected --since-applied --json`, the
owner shards then the others, `pulumi up`, and after each successful `up` `tenantctl record-applied`.
Push 2's deploy of shard 2 fails (Infisical down); push 3 touches a tenant of shard 1 only, and its
deploy still applies shard 2, which finishes push 2's change. Meanwhile `tenantctl verify --applied`
names shard 2 as behind."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pulumi import automation as auto

from tenant_secrets.stack.shards import shard_of
from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, command, pulumi, run_steps, tenantctl, values

SUBDOMAINS = ["alpha", "bravo", "charlie", "delta", "echo", "hotel"]
SECOND = next(s for s in SUBDOMAINS if shard_of(s, 2) == 2)  # a tenant of shard 2 (prod-02)
FIRST = next(s for s in SUBDOMAINS if shard_of(s, 2) == 1)  # and one of shard 1 (prod)
STACK_OF = {1: "prod", 2: "prod-02"}
ROUTES = ("/api/v3/secrets/batch/raw", "/api/v3/secrets/raw", "/api/v2/folders")


def tenants(plans: dict[str, str]) -> str:
    return "version: 1\ndefaults: {storage: infisical, environments: [prod]}\ntenants:\n" + "".join(
        f"  - subdomain: {s}\n    secrets:\n      PLAN: {{value: {plans.get(s, f'plan-{s}')}}}\n" for s in SUBDOMAINS
    )


def git(project: Project, *args: str) -> str:
    done = command(project, "git", "-c", "user.email=t@example.test", "-c", "user.name=t", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def push(plans: dict[str, str], message: str) -> Callable[[Project], None]:
    """A commit on main with tenants.yaml so."""

    def commit(project: Project) -> None:
        project.write_tenants(tenants(plans))
        git(project, "add", "-A")
        git(project, "commit", "-qm", message)

    return commit


def then(*actions: Callable[[Project], None]) -> Callable[[Project], None]:
    """The actions in turn (a push, then its deploy)."""

    def run(project: Project) -> None:
        for action in actions:
            action(project)

    return run


def deploy(project: Project, outcome: dict[str, str]) -> dict[str, list[str]]:
    """The deploy workflow's prod part: the stacks not yet at HEAD, owners first, an `up` each, and the
    commit recorded after each successful `up`. ``outcome``: stack -> applied or failed. Returns the
    matrix's stacks with the reasons `affected` gave."""
    chosen = tenantctl(project, "affected", "--since-applied", "--environment", "prod", "--json")
    assert chosen.returncode == 0, chosen.stderr
    matrix = json.loads(chosen.stdout)
    reasons = {line.split(": ", 1)[0]: line.split(": ", 1)[1:] for line in chosen.stderr.splitlines() if ": " in line}
    for entry in [*matrix["owners"], *matrix["others"]]:
        stack = entry["stack"]
        up = pulumi(project, "up", "--yes", "--skip-preview", "--stack", stack)
        if up.returncode == 0:
            recorded = tenantctl(project, "record-applied", "--stack", stack)
            assert recorded.returncode == 0, recorded.stderr
        outcome[stack] = "applied" if up.returncode == 0 else "failed"
    return {entry["stack"]: reasons.get(entry["stack"], []) for entry in matrix["stacks"]}


@pytest.mark.e2e
@pytest.mark.long
def test_a_failed_deploy_is_finished_by_the_next_push(project: Project, master_key: str) -> None:
    project.env["TENANT_SECRETS_INFISICAL_RETRIES"] = "attempts=2,base_delay=0.01,max_delay=0.02"
    project.write_tenants(tenants({}))
    owner = project.stack("prod")
    configure(owner, secrets_config={}, master_keys={"v1": master_key}, shard="1/2")
    second = project.stack("prod-02")
    configure(second, secrets_config={}, master_keys={"v1": master_key}, shard="2/2", environment="prod")
    command(project, "git", "init", "-q", "-b", "main")
    seen: dict[str, dict[str, list[str]]] = {}
    outcome: dict[str, str] = {}

    def deployed(name: str) -> Callable[[Project], None]:
        def run(project: Project) -> None:
            outcome.clear()
            seen[name] = deploy(project, outcome)

        return run

    def both_applied(project: Project, stack: auto.Stack) -> None:
        assert seen["push 1"] == {
            "prod": ["no applied commit recorded (every change applies)"],
            "prod-02": ["no applied commit recorded (every change applies)"],
        }
        assert outcome == {"prod": "applied", "prod-02": "applied"}

    def infisical_down_for_shard_2(project: Project) -> None:
        for route in ROUTES:
            project.infisical.server.add_fault(route, count=1000, status=503)
        deployed("push 2")(project)
        project.infisical.server.clear_faults()

    def shard_2_failed_and_is_behind(project: Project, stack: auto.Stack) -> None:
        assert outcome == {"prod-02": "failed"}  # push 2 touched shard 2 only
        assert values(project, f"/tenants/{SECOND}", "prod") == {"PLAN": f"plan-{SECOND}"}
        checked = tenantctl(project, "verify", "--environment", "prod", "--applied")
        assert checked.returncode == 1, checked.stdout + checked.stderr
        lines = [line for line in checked.stdout.splitlines() if line.startswith("stack ")]
        head = git(project, "rev-parse", "HEAD")[:12]
        assert lines[0] == f"stack prod applied HEAD {head}" or lines[0].startswith("stack prod is up to date")
        assert lines[1].startswith(f"stack prod-02 is behind HEAD {head}: since "), lines
        assert lines[1].split(": ", 2)[2].startswith(f"tenant {SECOND} changed"), lines

    def push_3_finishes_push_2(project: Project, stack: auto.Stack) -> None:
        # comparing with the commit before the push (the old deploy) would apply shard 1 alone
        before = tenantctl(project, "affected", "--base", "HEAD~1", "--environment", "prod")
        assert before.stdout.splitlines() == [STACK_OF[shard_of(FIRST, 2)]]
        assert set(seen["push 3"]) == {"prod", "prod-02"}
        assert any(f"tenant {SECOND} changed" in why for why in seen["push 3"]["prod-02"]), seen["push 3"]
        assert outcome == {"prod": "applied", "prod-02": "applied"}
        assert values(project, f"/tenants/{SECOND}", "prod") == {"PLAN": f"plan-{SECOND}-2"}
        assert values(project, f"/tenants/{FIRST}", "prod") == {"PLAN": f"plan-{FIRST}-3"}
        again = tenantctl(project, "affected", "--since-applied", "--environment", "prod")
        assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr

    steps = [
        Step(
            "push 1: both shards deployed (neither recorded a commit: each in full), each commit recorded",
            by_hand=then(push({}, "push 1"), deployed("push 1")),
            up=False,
            check=both_applied,
        ),
        Step(
            f"push 2 changes {SECOND} (shard 2); Infisical is down during its deploy: shard 2 fails",
            by_hand=then(push({SECOND: f"plan-{SECOND}-2"}, "push 2"), infisical_down_for_shard_2),
            up=False,
            check=shard_2_failed_and_is_behind,
        ),
        Step(
            f"push 3 changes {FIRST} (shard 1) alone; its deploy applies shard 2 too, with push 2's change",
            by_hand=then(push({SECOND: f"plan-{SECOND}-2", FIRST: f"plan-{FIRST}-3"}, "push 3"), deployed("push 3")),
            up=False,
            check=push_3_finishes_push_2,
        ),
    ]
    run_steps(project, owner, steps, "a failed deploy finished by the next push")

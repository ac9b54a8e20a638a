"""Strategy A's edges on the real engine and the local Infisical-compatible server, as declared steps: an
existing environment imported with `tenantctl import` and adopted without a write, a subdomain that could
leave /tenants refused before any request, and (long) 429 storms and 5xx retried within a bound, a failed
run converging on the next.

A tenant's life through review (adoption, changes, deletions, drift) is tests/e2e/test_lifecycle.py; the
requests of each run on the example tenants.yaml, tests/e2e/test_example.py.

Each test has a server of its own (the `infisical` fixture below replaces the session's), so folders, rate
limits and faults never leak between tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi import automation as auto

from tests.e2e.conftest import Infisical, Project, configure, start_infisical
from tests.e2e.steps import (
    BATCH,
    FOLDERS,
    LIST,
    Step,
    assert_nothing_persisted,
    audited,
    folder,
    hand_made,
    resources,
    run_steps,
    tenantctl,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def infisical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infisical]:
    """A server of this test's own: its folders, limits and faults touch no other test."""
    running = start_infisical(tmp_path_factory.mktemp("infisical"))
    yield running
    running.server.stop()


# --- an existing environment: `tenantctl import`, then a first `up` that adopts everything -------------


def import_steps(*, bucketed: bool = False) -> list[Step]:
    imported: dict[str, Any] = {}

    def staging_by_hand_then_import(project: Project) -> None:
        hand_made(project, "/tenants/acme", {"A_KEY": "fake-acme-a", "B_KEY": "fake-acme-b"}, "staging")
        hand_made(project, "/hono-api", {"BETTER_AUTH_SECRET": "fake-better-auth"}, "staging")
        done = tenantctl(project, "import", "--environments", "staging", "--output", "imported.yaml")
        assert done.returncode == 0, done.stderr
        imported.update(printed=done.stdout + done.stderr, audit=len(project.infisical.server.audit()))

    def tenants_file_written(project: Project, stack: auto.Stack) -> None:
        assert "imported 1 tenant(s), 1 platform folder(s), 3 key(s) from staging" in imported["printed"]
        text = (project.root / "imported.yaml").read_text()
        assert "A_KEY: {from: infisical, path: /tenants/acme, key: A_KEY}" in text
        shown = [v for v in ("fake-acme-a", "fake-acme-b", "fake-better-auth") if v in imported["printed"] + text]
        assert shown == [], "a value is in tenants.yaml or tenantctl's output"

    def adopted(project: Project, stack: auto.Stack) -> None:
        # each folder's create is tried first and refused (it exists); nothing is written
        sent = project.infisical.request_counts()
        assert {r: n for r, n in sent.items() if not r.startswith("GET") and "/auth/" not in r} == {
            f"POST {FOLDERS}": 2
        }
        # the program, and the provider process at write time, each read every `{from: infisical}` source from
        # one recursive listing of staging; each folder's write lists its own folder (it plans from what it holds)
        assert sent[LIST] == 1 + 1 + 2
        assert project.infisical.server.audit()[imported["audit"] :] == [], "the server recorded a change"
        assert folder(project, "/tenants/acme", "staging") == {"A_KEY": ("fake-acme-a", 1), "B_KEY": ("fake-acme-b", 1)}
        assert folder(project, "/hono-api", "staging") == {"BETTER_AUTH_SECRET": ("fake-better-auth", 1)}
        types = {r["type"].rsplit(":", 1)[-1] for r in resources(stack).values()}
        assert ("InfisicalBucket" in types, "InfisicalFolder" in types) == (bucketed, True), types  # hono-api's

    return [
        Step(
            "folders made by hand in staging: `tenantctl import` writes tenants.yaml from folder and key names",
            by_hand=staging_by_hand_then_import,
            up=False,
            check=tenants_file_written,
        ),
        Step("the first up adopts every folder and writes nothing", check=adopted),
        Step("then nothing is left to change", preview={}, up=False),
    ]


@pytest.mark.parametrize("buckets", [None, pytest.param("2", marks=pytest.mark.long)], ids=["per-tenant", "buckets"])
def test_an_environment_made_by_hand_is_imported_and_adopted_without_a_write(
    project: Project, master_key: str, buckets: str | None
) -> None:
    staging = project.stack("staging")
    bucketed = {"buckets": buckets} if buckets else {}  # with buckets, the tenant's bucket adopts its folder
    configure(staging, secrets_config={}, master_keys={"v1": master_key}, tenantsFile="imported.yaml", **bucketed)
    run_steps(project, staging, import_steps(bucketed=bool(buckets)), "an environment imported")


# --- subdomains are DNS labels, so no tenant's folder leaves /tenants ----------------------------------

BAD = ["../hono-api", "a/b", "Codewiser", "tenants"]


def no_request(project: Project, _: auto.Stack) -> None:
    assert project.infisical.request_counts() == {}, "the refused run reached Infisical"


def test_a_subdomain_that_could_leave_tenants_fails_before_any_request(project: Project, master_key: str) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    step = Step(
        "each subdomain that is not a DNS label is named with its line; nothing reaches Infisical",
        tenants="version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n"
        + "".join(f'  - subdomain: "{name}"\n    secrets:\n      K: {{value: "v"}}\n' for name in BAD),
        refused=[
            *(f"tenants.yaml:{4 + 3 * line}:" for line in range(len(BAD))),
            *(f"tenants[{line}].subdomain: '{name}'" for line, name in enumerate(BAD)),
            "'tenants' is reserved",
        ],
        check=no_request,
    )
    run_steps(project, stack, [step], "hostile subdomains")


# --- a 429 storm and 503s are retried within a bound; past it the run fails and the next converges --------

RETRY_TENANTS = """\
version: 1
defaults: {storage: infisical, environments: [dev]}
tenants:
  - subdomain: alpha
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: config}
  - subdomain: bravo
    secrets:
      STRIPE_SECRET_KEY: {from: config}
  - subdomain: charlie
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
DELTA = """\
  - subdomain: delta
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
ECHO = DELTA.replace("delta", "echo")
RETRY_VALUES = {
    "alpha": {"STRIPE_SECRET_KEY": "fake-stripe-alpha-0001", "SENDGRID_API_KEY": "fake-sendgrid-alpha-0001"},
    "bravo": {"STRIPE_SECRET_KEY": "fake-stripe-bravo-0001"},
    "charlie": {"STRIPE_SECRET_KEY": "fake-stripe-charlie-0001"},
    "delta": {"STRIPE_SECRET_KEY": "fake-stripe-delta-0001"},
    "echo": {"STRIPE_SECRET_KEY": "fake-stripe-echo-0001"},
}
UNLIMITED = {"read": 0, "write": 0, "secrets": 0}
RETRIES = "TENANT_SECRETS_INFISICAL_RETRIES"  # the retry policy of the next runs' providers


def statuses(infisical: Infisical, status: int) -> int:
    """How many API requests the server answered with ``status`` (its access log)."""
    return len(re.findall(rf" -> {status} in ", infisical.server.log()))


def storm(project: Project) -> None:
    """3 secret operations per 2 s window for a run that needs up to 9, and two 503s on the first batch."""
    project.infisical.server.settings(rate_limits={**UNLIMITED, "secrets": 3}, rate_limit_window_seconds=2)
    project.infisical.server.add_fault(BATCH, method="PATCH", status=503, count=2)


def bound(project: Project) -> None:
    """A 60 s window allowing 2 secret operations."""
    project.infisical.server.settings(rate_limits={**UNLIMITED, "secrets": 2}, rate_limit_window_seconds=60)


def unlimited(project: Project, _: auto.Stack) -> None:
    """The checks share the client IP with the runs: the limits go before anything is read."""
    project.infisical.server.settings(rate_limits=UNLIMITED)


def storm_weathered(project: Project, stack: auto.Stack) -> None:
    unlimited(project, stack)
    assert statuses(project.infisical, 429) >= 1
    assert statuses(project.infisical, 503) == 2
    for owner in ("alpha", "bravo", "charlie"):
        held = folder(project, f"/tenants/{owner}")
        assert held == {key: (value, 1) for key, value in RETRY_VALUES[owner].items()}, owner
    created = audited(project, "create-secret")
    assert len(created) == 4 and set(created.values()) == {1}, "each key created once"


def each_update_once(project: Project, _: auto.Stack) -> None:
    assert audited(project, "update-secret") == {
        ("/tenants/alpha", "STRIPE_SECRET_KEY"): 1,
        ("/tenants/bravo", "STRIPE_SECRET_KEY"): 1,
    }


def echo_created_once(project: Project, _: auto.Stack) -> None:
    created = audited(project, "create-secret")
    assert created[("/tenants/delta", "STRIPE_SECRET_KEY")] == 1
    assert created[("/tenants/echo", "STRIPE_SECRET_KEY")] == 1


def nothing_leaked(project: Project, stack: auto.Stack) -> None:
    declared = [value for values in RETRY_VALUES.values() for value in values.values()]
    assert_nothing_persisted(project, stack, [*declared, "fake-stripe-alpha-0002"])


RETRY_STEPS = [
    Step(
        "a 429 storm and two 503s are retried within the bound; each key is created once",
        tenants=RETRY_TENANTS,
        env={RETRIES: "attempts=10,base_delay=0.05,max_delay=3"},
        by_hand=storm,
        check=storm_weathered,
    ),
    Step(
        "past the bound (3 attempts), the run fails and says why",
        env={RETRIES: "attempts=3,base_delay=0.05,max_delay=0.2"},
        config={
            ("alpha", "STRIPE_SECRET_KEY"): "fake-stripe-alpha-0002",
            ("bravo", "STRIPE_SECRET_KEY"): "fake-stripe-bravo-0002",
        },
        by_hand=bound,
        fails=["failed after 3 attempts (last: 429 Rate limit exceeded. Please try again in", "re-running converges"],
        check=unlimited,
    ),
    Step(
        "the next run converges, each value updated once",
        versions={
            "/tenants/alpha": {"STRIPE_SECRET_KEY": 2, "SENDGRID_API_KEY": 1},
            "/tenants/bravo": {"STRIPE_SECRET_KEY": 2},
        },
        folders={
            "/tenants/alpha": {
                "STRIPE_SECRET_KEY": "fake-stripe-alpha-0002",
                "SENDGRID_API_KEY": "fake-sendgrid-alpha-0001",
            },
            "/tenants/bravo": {"STRIPE_SECRET_KEY": "fake-stripe-bravo-0002"},
        },
        check=each_update_once,
    ),
    Step(
        "a write applied whose answer was lost (503 after the commit): the provider looks before resending, and"
        " does not resend it",
        tenants=RETRY_TENANTS + DELTA,
        by_hand=lambda project: project.infisical.server.add_fault(
            BATCH, method="PATCH", status=503, count=1, after=True
        ),
        sends={f"POST {FOLDERS}": 1, f"PATCH {BATCH}": 1},
        folders={"/tenants/delta": RETRY_VALUES["delta"]},
        versions={"/tenants/delta": {"STRIPE_SECRET_KEY": 1}},
    ),
    Step(
        "503s to the bound: the run fails, naming the folder",
        tenants=RETRY_TENANTS + DELTA + ECHO,
        by_hand=lambda project: project.infisical.server.add_fault(BATCH, method="PATCH", status=503, count=5),
        fails=["batch upsert of STRIPE_SECRET_KEY in dev:/tenants/echo failed after 3 attempts", "(last: 503"],
        folders={"/tenants/echo": {}},
    ),
    Step(
        "the next run finds the folder the failed one made (its create is refused) and writes the value once",
        by_hand=lambda project: project.infisical.server.clear_faults(),
        sends={f"POST {FOLDERS}": 1, f"PATCH {BATCH}": 1},
        folders={"/tenants/echo": RETRY_VALUES["echo"]},
        check=echo_created_once,
    ),
    Step("then nothing is left to change, and no value is anywhere", preview={}, up=False, check=nothing_leaked),
]


@pytest.mark.long  # a fault run: make test-long
def test_rate_limits_and_server_errors_are_retried_within_a_bound_and_a_failed_run_converges(
    project: Project, master_key: str
) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config=RETRY_VALUES, master_keys={"v1": master_key})
    run_steps(project, stack, RETRY_STEPS, "retries within a bound")

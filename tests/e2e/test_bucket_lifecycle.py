"""Tenants' lives on a stack with `tenant-secrets:buckets` (issue 29, decision 0053): what
tests/e2e/test_lifecycle.py and tests/e2e/test_database.py show without buckets, with two buckets per store.

A hand-made folder and equal rows of a tenant new to a bucket are adopted, nothing rewritten; `tenantctl
verify` is clean, then names the tenant and key of a value changed by hand; a bad source of one tenant, and a
key it dropped without its marker, each fail with one line naming tenant and key; a key's decommission and two
tenants of one bucket marked `decommission: true` have their keys listed as deletions, those rows deleted, the
folder the stack made deleted and the adopted one emptied, their bucket-mate untouched, then are forgotten; a
tenant dropped without the marker is refused, naming it, and nothing is deleted. On a stack that retains, a
store dropped from a tenant's `storage` leaves its folder.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets import store
from tenant_secrets.engine.buckets import INFISICAL, assign, split
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import Project, configure, sdk
from tests.e2e.steps import Step, assert_nothing_persisted, hand_made, resources, run_steps, tenantctl

pytestmark = pytest.mark.e2e

TENANTS = ("alpha", "bravo", "charlie", "delta")
ADOPTED = "echo"
"""With 2 buckets: alpha, charlie and echo in bucket 0; bravo and delta in bucket 1."""
MISSING_VAR = "BRAVO_WEBHOOK_SECRET"
BAD_SOURCE = (
    "tenants.yaml:12:23: tenants[1].secrets.WEBHOOK_SECRET: tenant bravo, WEBHOOK_SECRET: the environment variable"
    f" {MISSING_VAR} is not set (dev)."
)
STORES = ("database", "infisical")
KEYS = ("PLAN", "STRIPE_SECRET_KEY")
PLAN_DROPPED = ("bravo", "")
PLAN_MARKED = ("bravo", "      PLAN: {decommission: true}\n")
GONE = ("charlie", ADOPTED)
"""Decommissioned: charlie's folder made by the stack, echo's adopted."""


def entry(name: str, extra: str = "", marker: str = "", plan: str = "      PLAN: {value: pro}\n") -> str:
    return f"  - subdomain: {name}\n{marker}    secrets:\n      STRIPE_SECRET_KEY: {{from: config}}\n{plan}{extra}"


def tenants_file(
    *names: str, decommissioned: tuple[str, ...] = (), bad: str = "", plan: tuple[str, str] | None = None
) -> str:
    """tenants.yaml declaring ``names``; ``decommissioned`` marked `decommission: true`; ``bad`` with an env source
    of a variable that is not set; ``plan``: (a tenant, what its PLAN line is: a marker, or empty)."""
    extra = {bad: f"      WEBHOOK_SECRET: {{from: env, var: {MISSING_VAR}}}\n"}
    marker = dict.fromkeys(decommissioned, "    decommission: true\n")
    lines = dict([plan]) if plan else {}
    return "version: 1\ndefaults: {storage: both, environments: [dev]}\ntenants:\n" + "".join(
        entry(name, extra.get(name, ""), marker.get(name, ""), *([lines[name]] if name in lines else []))
        for name in names
    )


def stripe(name: str) -> str:
    return f"fake-stripe-{name}-bucket-0001"


def declared(name: str) -> dict[str, str]:
    return {"STRIPE_SECRET_KEY": stripe(name), "PLAN": "pro"}


def rows(project: Project) -> dict[tuple[str, str], tuple[str, str, int]]:
    """(subdomain, key) -> (ciphertext, xmin, version): any write of a row changes its xmin."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.xmin::text, s.version"
            " FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in found}


def verify(project: Project) -> tuple[int, set[tuple[str, str, str]], str]:
    """`tenantctl verify --stack dev`: exit status, (owner, key, kind) of each finding, its text output."""
    done = tenantctl(project, "verify", "--stack", "dev", "--format", "json")
    report = json.loads(done.stdout)
    return done.returncode, {(f["owner"], f["key"], f["kind"]) for f in report["findings"]}, done.stderr


def bucket_tenants(stack: auto.Stack) -> dict[str, list[str]]:
    """Bucket resource name -> the tenants its outputs record."""
    return {
        name: sorted((r.get("outputs") or {}).get("tenants") or {})
        for name, r in resources(stack).items()
        if name.startswith("bucket-")
    }


def steps(master_key: str) -> list[Step]:
    seen: dict[str, Any] = {}
    keyring = Keyring({1: bytes.fromhex(master_key)}, active=1)

    def first_rollout(project: Project, stack: auto.Stack) -> None:
        assert bucket_tenants(stack) == {
            "bucket-0000-infisical": ["alpha", "charlie"],
            "bucket-0001-infisical": ["bravo", "delta"],
            "bucket-0000-database": ["alpha", "charlie"],
            "bucket-0001-database": ["bravo", "delta"],
        }

    def bad_source_named(project: Project, stack: auto.Stack) -> None:
        code, _, output = project.plan(stack)
        assert code != 0 and BAD_SOURCE in output and "Traceback" not in output, output[-2000:]

    def echo_by_hand(project: Project) -> None:
        """echo's folder and its rows, holding what tenants.yaml declares, made before the tool knows echo: by
        hand in Infisical, and by the store's own writer (as the application or an earlier tool would)."""
        hand_made(project, f"/tenants/{ADOPTED}", declared(ADOPTED))
        settings = store.StoreSettings(create_companies_table=True)
        with project.db() as conn:
            ids = store.ensure_companies(conn, settings, {ADOPTED: (None, None)})
            store.apply_tenants(conn, settings, {ids[ADOPTED]: store.TenantChange(declared(ADOPTED))}, keyring)
        seen.update(rows=rows(project), audit=len(project.infisical.server.audit()))

    def adopted(project: Project, stack: auto.Stack) -> None:
        assert rows(project) == seen["rows"], "a row was written (ciphertext, xmin or version changed)"
        written = [(e["action"], e["path"], e["key"]) for e in project.infisical.server.audit()[seen["audit"] :]]
        assert written == [], f"the up wrote {written}"
        assert bucket_tenants(stack)["bucket-0000-infisical"] == ["alpha", "charlie", ADOPTED]
        status, findings, output = verify(project)
        assert (status, findings) == (0, set()), output

    def echo_changed_by_hand(project: Project) -> None:
        sdk(project.infisical).secrets.update_secret_by_name(
            current_secret_name="STRIPE_SECRET_KEY",
            secret_path=f"/tenants/{ADOPTED}",
            secret_value="fake-stripe-echo-by-hand",
            project_id=project.infisical.project_id,
            environment_slug="dev",
        )

    def verify_names_tenant_and_key(project: Project, stack: auto.Stack) -> None:
        status, findings, output = verify(project)
        assert status == 1, output
        assert {(owner, key) for owner, key, _ in findings} == {(ADOPTED, "STRIPE_SECRET_KEY")}, findings
        seen.update(rows=rows(project), audit=len(project.infisical.server.audit()))

    def decommissioned_mates_untouched(project: Project, stack: auto.Stack) -> None:
        now = rows(project)
        kept = {k: v for k, v in seen["rows"].items() if k[0] not in GONE and k != ("bravo", "PLAN")}
        assert now == kept, "a row was written, or one that should go is still there"
        written = {(e["action"], e["path"], e["key"]) for e in project.infisical.server.audit()[seen["audit"] :]}
        assert written == {
            ("delete-secret", "/tenants/bravo", "PLAN"),
            ("delete-folder", "/tenants", "charlie"),  # the stack made it: it goes whole
            *(("delete-secret", f"/tenants/{ADOPTED}", key) for key in KEYS),  # adopted: its keys go, it stays
        }, written
        state = bucket_tenants(stack)
        assert state["bucket-0000-infisical"] == ["alpha", "charlie", ADOPTED]  # declared still, emptied
        outputs = split(INFISICAL, resources(stack)["bucket-0000-infisical"]["outputs"])
        assert [outputs[name]["decommission"] for name in GONE] == [True, True]
        seen.update(rows=now)

    def forgotten(project: Project, stack: auto.Stack) -> None:
        assert bucket_tenants(stack)["bucket-0000-infisical"] == ["alpha"]
        assert bucket_tenants(stack)["bucket-0000-database"] == ["alpha"]
        assert rows(project) == seen["rows"]
        assert project.infisical.writes() == 0

    def delta_kept(project: Project, stack: auto.Stack) -> None:
        assert {k for k in rows(project) if k[0] == "delta"} == {("delta", "STRIPE_SECRET_KEY"), ("delta", "PLAN")}
        assert bucket_tenants(stack)["bucket-0001-database"] == ["bravo", "delta"]

    def nothing_secret_anywhere(project: Project, stack: auto.Stack) -> None:
        assert_nothing_persisted(
            project, stack, [*(stripe(name) for name in (*TENANTS, ADOPTED)), "fake-stripe-echo-by-hand", master_key]
        )

    everyone = (*TENANTS, ADOPTED)
    kept = ("alpha", "bravo", "delta")
    return [
        Step("the first up: two buckets per store", check=first_rollout),
        Step(
            "echo's hand-made folder and equal rows are adopted by its bucket: nothing is written, verify is clean",
            tenants=tenants_file(*everyone),
            by_hand=echo_by_hand,
            config={(ADOPTED, "STRIPE_SECRET_KEY"): stripe(ADOPTED)},
            plan=[Row(ADOPTED, "dev", store, key, "create") for store in STORES for key in KEYS],  # as without buckets
            changes={"update": 3},  # echo joins bucket 0 of each store; the registry records it
            versions={f"/tenants/{ADOPTED}": {"STRIPE_SECRET_KEY": 1, "PLAN": 1}},
            check=adopted,
        ),
        Step(
            "a value changed by hand: `tenantctl verify` names the tenant and the key",
            by_hand=echo_changed_by_hand,
            up=False,
            check=verify_names_tenant_and_key,
        ),
        Step(
            "a source of one tenant that has no value: one line naming the tenant and key, nothing written",
            tenants=tenants_file(*everyone, bad="bravo"),
            before=bad_source_named,  # the program's own check, as without buckets: the up fails the same way
            up=False,
        ),
        Step(
            "a key of one tenant dropped without its marker: the up is refused, naming tenant, key and the marker",
            tenants=tenants_file(*everyone, plan=PLAN_DROPPED),
            fails=["bravo: PLAN is no longer declared in tenants.yaml", "`PLAN: {decommission: true}`"],
            hides=["Traceback"],
            writes=0,
            folders={"/tenants/bravo": declared("bravo")},
        ),
        Step(
            "charlie and echo marked `decommission: true`, and bravo's PLAN: the plan lists their keys in both"
            " stores; the up deletes those rows, the folder the stack made and the keys of the one it adopted;"
            " alpha's and the rest of bravo's stay as they were",
            tenants=tenants_file(*everyone, decommissioned=GONE, plan=PLAN_MARKED),
            plan=[
                *(Row("bravo", "dev", store, "PLAN", "delete") for store in STORES),
                *(Row(name, "dev", store, key, "delete") for name in GONE for store in STORES for key in KEYS),
            ],
            changes={"update": 5},  # both buckets of each store, and the registry
            folders={
                "/tenants/alpha": declared("alpha"),
                "/tenants/bravo": {"STRIPE_SECRET_KEY": stripe("bravo")},
                "/tenants/charlie": None,
                f"/tenants/{ADOPTED}": {},
            },
            check=decommissioned_mates_untouched,
        ),
        Step(
            "once applied, their entries can go: their buckets forget them, nothing is written",
            tenants=tenants_file(*kept, plan=PLAN_MARKED),
            changes={"update": 3},
            check=forgotten,
        ),
        Step(
            "delta dropped without the marker: refused, naming delta; nothing is deleted",
            tenants=tenants_file("alpha", "bravo", plan=PLAN_MARKED),
            refused=["delta is no longer declared in tenants.yaml", "`decommission: true`"],
            fails=["delta is no longer declared in tenants.yaml"],
            writes=0,
            tenant_folders={"delta": True},
            folders={"/tenants/delta": declared("delta")},
            check=delta_kept,
        ),
        Step("nothing secret in the state, the output or the server's log", up=False, check=nothing_secret_anywhere),
    ]


def test_bucketed_tenants_through_adoption_verify_errors_and_decommission(project: Project, master_key: str) -> None:
    assert assign((*TENANTS, ADOPTED), 2) == {0: ["alpha", "charlie", ADOPTED], 1: ["bravo", "delta"]}
    project.write_tenants(tenants_file(*TENANTS))
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        secrets_config={name: {"STRIPE_SECRET_KEY": stripe(name)} for name in TENANTS},
        env_allow=[MISSING_VAR],
        buckets="2",
    )
    run_steps(project, stack, steps(master_key), "bucketed tenants")


def test_a_store_dropped_on_a_retaining_stack_is_left_in_place_as_without_buckets(
    project: Project, master_key: str
) -> None:
    """On a stack that retains (prod's default), a store dropped from a tenant's `storage` is forgotten, its
    folder left as it is (decision 0005), as the engine leaves a retained per-tenant resource; only a
    decommission deletes."""
    project.write_tenants(tenants_file(*TENANTS))
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        secrets_config={name: {"STRIPE_SECRET_KEY": stripe(name)} for name in TENANTS},
        buckets="2",
        retainOnDelete="true",
    )
    dropped = tenants_file(*TENANTS).replace("  - subdomain: bravo\n", "  - subdomain: bravo\n    storage: database\n")

    def bravo_forgotten(project: Project, stack: auto.Stack) -> None:
        assert bucket_tenants(stack)["bucket-0001-infisical"] == ["delta"]
        assert bucket_tenants(stack)["bucket-0001-database"] == ["bravo", "delta"]

    steps = [
        Step("the first up", folders={"/tenants/bravo": declared("bravo")}),
        Step(
            "bravo's Infisical store dropped: its bucket forgets it, and its folder stays",
            tenants=dropped,
            plan=[Row("bravo", "dev", "infisical", key, "retain") for key in KEYS],  # what the up then does
            writes=0,
            folders={"/tenants/bravo": declared("bravo"), "/tenants/delta": declared("delta")},
            check=bravo_forgotten,
        ),
    ]
    run_steps(project, stack, steps, "a store dropped on a retaining stack")

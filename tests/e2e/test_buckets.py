"""A stack with `tenant-secrets:buckets` on the real engine, a real PostgreSQL and the local Infisical server
(issue 29): five tenants in two buckets per store, written and read back as without buckets, each database
bucket's rows in one transaction; a no-op preview;
one changed value that the plan and `pulumi preview --diff` name by tenant, store and key, never by value,
written by one bucket per store; and a failure of one tenant's rows in a bucket that keeps the other
tenants' new state, the next `up` writing that tenant only."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from psycopg import sql
from pulumi import automation as auto

from tenant_secrets import store
from tenant_secrets.engine.buckets import assign
from tenant_secrets.secret.envelope import decrypt
from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import Project, configure, sdk
from tests.e2e.steps import (
    BATCH,
    FOLDERS,
    LIST,
    LOGIN,
    assert_nothing_persisted,
    resources,
    sent,
    values,
    with_error,
)

pytestmark = pytest.mark.e2e

TENANTS = ("alpha", "bravo", "charlie", "delta", "echo")
"""With 2 buckets: alpha, charlie and echo in bucket 0; bravo and delta in bucket 1."""
TENANTS_FILE = "version: 1\ndefaults: {storage: both, environments: [dev]}\ntenants:\n" + "".join(
    f"  - subdomain: {name}\n    secrets:\n      STRIPE_SECRET_KEY: {{from: config}}\n      PLAN: {{value: pro}}\n"
    for name in TENANTS
)
BY_HAND = "fake-stripe-echo-by-hand"


def stripe(name: str, version: int) -> str:
    return f"fake-stripe-{name}-bucket-{version:04d}"


def stored(project: Project, master_key: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(subdomain, key) -> (the value its row decrypts to, the row's xmin: it changes on any write of it)."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.xmin::text"
            " FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    key = bytes.fromhex(master_key)
    return {(r[0], r[1]): (decrypt(r[2], key), r[3]) for r in found}


def set_stripe(stack: auto.Stack, **versions: int) -> None:
    stack.set_all_config(
        {
            f"tenant-secrets:secrets.{name}.STRIPE_SECRET_KEY": auto.ConfigValue(stripe(name, version), secret=True)
            for name, version in versions.items()
        },
        path=True,
    )


def bucket_outputs(stack: auto.Stack, name: str) -> dict[str, Any]:
    """A bucket's recorded tenants, each entry (one JSON string in the state) read as its tenant's outputs."""
    outputs: dict[str, str] = resources(stack)[name]["outputs"]["tenants"]
    return {owner: json.loads(entry) for owner, entry in outputs.items()}


def test_buckets_write_review_and_keep_the_others_when_one_tenant_fails(project: Project, master_key: str) -> None:
    assert assign(TENANTS, 2) == {0: ["alpha", "charlie", "echo"], 1: ["bravo", "delta"]}
    project.write_tenants(TENANTS_FILE)
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        secrets_config={name: {"STRIPE_SECRET_KEY": stripe(name, 1)} for name in TENANTS},
        buckets="2",
    )

    # first up: two buckets per store, every tenant written to both stores, with the requests one resource per
    # tenant sends (measured on the same tenants without the setting): the folder writes in flight share batches
    project.infisical.reset_counts()
    project.up(stack)
    assert project.infisical.request_counts() == {
        LOGIN: 1,
        LIST: 2,
        f"POST {FOLDERS}": 6,
        f"POST {BATCH}": 2,
        f"PATCH {BATCH}": 1,
    }
    names = set(resources(stack))
    buckets = {"bucket-0000-infisical", "bucket-0001-infisical", "bucket-0000-database", "bucket-0001-database"}
    assert buckets <= names
    assert not [n for n in names if re.fullmatch(r"(alpha|bravo|charlie|delta|echo)-(infisical|database)", n)]
    for name in TENANTS:
        assert values(project, f"/tenants/{name}") == {"STRIPE_SECRET_KEY": stripe(name, 1), "PLAN": "pro"}
    first = stored(project, master_key)
    assert {k: v for k, (v, _) in first.items()} == {
        **{(name, "STRIPE_SECRET_KEY"): stripe(name, 1) for name in TENANTS},
        **{(name, "PLAN"): "pro" for name in TENANTS},
    }
    assert set(bucket_outputs(stack, "bucket-0001-database")) == {"bravo", "delta"}
    # a database bucket writes its tenants in one transaction: their rows share the writing transaction's id
    transactions = {
        bucket: {first[(name, key)][1] for name in members for key in ("STRIPE_SECRET_KEY", "PLAN")}
        for bucket, members in assign(TENANTS, 2).items()
    }
    assert all(len(ids) == 1 for ids in transactions.values()), transactions
    assert transactions[0] != transactions[1]

    # a no-op preview changes nothing
    noop = project.preview(stack)
    assert set(noop.change_summary) == {auto.OpType.SAME}, noop.change_summary

    # one changed value: the plan and the preview name tenant, store and key, never the value
    set_stripe(stack, bravo=2)
    code, rows, output = project.plan(stack)
    assert code == 0, output
    assert [(r.owner, r.store, r.key, r.action) for r in rows] == [
        ("bravo", "database", "STRIPE_SECRET_KEY", "update"),
        ("bravo", "infisical", "STRIPE_SECRET_KEY", "update"),
    ]
    assert all(isinstance(r, Row) for r in rows)
    shown = project.preview(stack).stdout
    # each store's bucket 1, bravo's entry (decoded from its JSON string), and the changed key's fingerprints;
    # bravo's unchanged properties are printed unmarked, and nothing else is marked as changing
    assert changed_lines(shown) == [
        "~ tenant-secrets:index:InfisicalBucket: (update)",
        "~ tenants: {",
        "~ bravo: (json) {",
        "~ fingerprints: {",
        '~ STRIPE_SECRET_KEY: "<fp>" => "<fp>"',
        "~ tenant-secrets:index:DatabaseBucket: (update)",
        "~ tenants: {",
        "~ bravo: (json) {",
        "~ fingerprints: {",
        '~ STRIPE_SECRET_KEY: "<fp>" => "<fp>"',
    ], shown
    assert "[id=bucket-0001-infisical]" in shown and "[id=bucket-0001-database]" in shown, shown
    assert stripe("bravo", 2) not in shown and stripe("bravo", 1) not in shown
    assert "delta" not in shown  # bravo's bucket-mate, unchanged, is not shown
    project.infisical.reset_counts()
    changed = project.up(stack)
    assert (changed.summary.resource_changes or {}).get(auto.OpType.UPDATE) == 2  # one bucket per store
    assert values(project, "/tenants/bravo") == {"STRIPE_SECRET_KEY": stripe("bravo", 2), "PLAN": "pro"}
    after = stored(project, master_key)
    assert after[("bravo", "STRIPE_SECRET_KEY")][0] == stripe("bravo", 2)
    assert {k: x for k, (_, x) in after.items() if k[0] != "bravo"} == {
        k: x for k, (_, x) in first.items() if k[0] != "bravo"
    }, "a tenant whose values did not change was written"
    assert sent(project) == {f"PATCH {BATCH}": 1}  # one write: bravo's folder only

    # one tenant's rows fail in bucket 1 (a trigger refuses delta's company): bravo, in the same bucket, is kept
    refuse_writes_of(project, "delta")
    set_stripe(stack, bravo=3, delta=2)
    with_error(
        project,
        lambda: project.up(stack),
        ["delta, database: delta is locked for maintenance; nothing of this tenant was written"],
        "the up",
    )
    failed = stored(project, master_key)
    assert failed[("bravo", "STRIPE_SECRET_KEY")][0] == stripe("bravo", 3)
    assert failed[("delta", "STRIPE_SECRET_KEY")][0] == stripe("delta", 1)
    assert values(project, "/tenants/delta") == {"STRIPE_SECRET_KEY": stripe("delta", 2), "PLAN": "pro"}
    recorded = bucket_outputs(stack, "bucket-0001-database")
    bravo_infisical = bucket_outputs(stack, "bucket-0001-infisical")["bravo"]["fingerprints"]
    assert recorded["bravo"]["fingerprints"] == bravo_infisical  # bravo's new rows are recorded
    assert recorded["delta"]["fingerprints"] != bucket_outputs(stack, "bucket-0001-infisical")["delta"]["fingerprints"]

    # fixed: the next up writes delta's rows only
    with project.db() as conn:
        conn.execute("DROP TRIGGER refuse_one ON company_secrets")
    code, rows, output = project.plan(stack)
    assert code == 0, output
    assert [(r.owner, r.store, r.key, r.action) for r in rows] == [("delta", "database", "STRIPE_SECRET_KEY", "update")]
    project.up(stack)
    fixed = stored(project, master_key)
    assert fixed[("delta", "STRIPE_SECRET_KEY")][0] == stripe("delta", 2)
    assert {k: x for k, (_, x) in fixed.items() if k[0] != "delta"} == {
        k: x for k, (_, x) in failed.items() if k[0] != "delta"
    }, "a tenant other than delta was written again"
    assert set(project.preview(stack).change_summary) == {auto.OpType.SAME}

    # a value changed by hand in Infisical: a refresh finds it, and the plan names tenant, store and key
    client = sdk(project.infisical)
    client.secrets.update_secret_by_name(
        current_secret_name="STRIPE_SECRET_KEY",
        secret_path="/tenants/echo",
        secret_value=BY_HAND,
        project_id=project.infisical.project_id,
        environment_slug="dev",
    )
    refreshed = stack.refresh(on_output=project.capture, color="never")
    assert (refreshed.summary.resource_changes or {}).get(auto.OpType.UPDATE) == 1  # bucket 0's folders
    # the preview shows echo's recorded entry against its declared one: the drifted key's fingerprints change;
    # the entry's other properties, outputs on one side and inputs on the other, show as removed and added
    drift = project.preview(stack).stdout
    marked = changed_lines(drift)
    assert [line for line in marked if line.startswith("~")] == [
        "~ tenant-secrets:index:InfisicalBucket: (update)",
        "~ tenants: {",
        "~ echo: (json) {",
        "~ fingerprints: {",
        '~ STRIPE_SECRET_KEY: "<fp>" => "<fp>"',
    ], drift
    assert "[id=bucket-0000-infisical]" in drift and BY_HAND not in drift and stripe("echo", 1) not in drift
    assert not {"alpha", "charlie"} & set(re.findall(r"[a-z]+", drift)), drift  # echo's bucket-mates
    code, rows, output = project.plan(stack)
    assert code == 0, output
    assert [(r.owner, r.store, r.key, r.action) for r in rows] == [
        ("echo", "infisical", "STRIPE_SECRET_KEY", "restore")
    ]
    project.up(stack)
    assert values(project, "/tenants/echo") == {"STRIPE_SECRET_KEY": stripe("echo", 1), "PLAN": "pro"}

    # destroy (the stack does not retain): every tenant's folder and rows go, tenant by tenant
    stack.destroy(on_output=project.capture, color="never")
    assert [values(project, f"/tenants/{name}") for name in TENANTS] == [None] * len(TENANTS)
    assert stored(project, master_key) == {}
    every = [stripe(name, v) for name in TENANTS for v in (1, 2, 3)]
    assert_nothing_persisted(project, stack, [*every, BY_HAND])


def changed_lines(preview: str) -> list[str]:
    """The lines of a `pulumi preview --diff` (resources part) that mark a change, with a fingerprint shown as
    ``<fp>``, runs of spaces as one, and none before a colon (the engine aligns a map's keys)."""
    resources = preview.split("--outputs:--", 1)[0].split("\nResources:", 1)[0]
    marked = [line.strip() for line in resources.splitlines() if re.match(r"^\s*[~+-] ", line)]
    return [re.sub(r"\s+", " ", re.sub(r'"[0-9a-f]{16}"', '"<fp>"', re.sub(r"\s+:", ":", line))) for line in marked]


def refuse_writes_of(project: Project, subdomain: str) -> None:
    """A trigger that refuses every row of one tenant's company: a failure of that tenant's write alone."""
    with project.db() as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.company_id = (SELECT id FROM companies WHERE subdomain = {subdomain}) THEN "
                "RAISE EXCEPTION {message}; END IF; RETURN NEW; END $$"
            ).format(subdomain=sql.Literal(subdomain), message=sql.Literal(f"{subdomain} is locked for maintenance"))
        )
        conn.execute(
            "CREATE TRIGGER refuse_one BEFORE INSERT OR UPDATE ON company_secrets "
            "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
        )


@pytest.mark.long
def test_a_new_bucket_records_the_tenants_it_created_and_the_next_up_creates_the_rest(
    project: Project, master_key: str
) -> None:
    project.write_tenants(TENANTS_FILE.replace("storage: both", "storage: database"))
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        secrets_config={name: {"STRIPE_SECRET_KEY": stripe(name, 1)} for name in TENANTS},
        buckets="1",
    )
    with project.db() as conn:  # a database whose schema exists already (the trigger needs its table)
        store.migrate(conn, store.StoreSettings(create_companies_table=True))
    refuse_writes_of(project, "charlie")
    with_error(
        project,
        lambda: project.up(stack),
        ["charlie, database: charlie is locked for maintenance; nothing of this tenant was written"],
        "the first up",
    )
    assert sorted(bucket_outputs(stack, "bucket-0000-database")) == ["alpha", "bravo", "delta", "echo"]
    first = stored(project, master_key)
    assert sorted({name for name, _ in first}) == ["alpha", "bravo", "delta", "echo"]

    with project.db() as conn:
        conn.execute("DROP TRIGGER refuse_one ON company_secrets")
    code, rows, output = project.plan(stack)
    assert code == 0, output
    assert [(r.owner, r.key, r.action) for r in rows if r.kind == "tenant"] == [
        ("charlie", "PLAN", "create"),
        ("charlie", "STRIPE_SECRET_KEY", "create"),
    ]  # and the key folder's current key, which waits for every tenant's rows
    project.up(stack)
    after = stored(project, master_key)
    assert after[("charlie", "STRIPE_SECRET_KEY")][0] == stripe("charlie", 1)
    assert {k: x for k, (_, x) in after.items() if k[0] != "charlie"} == {k: x for k, (_, x) in first.items()}
    assert set(project.preview(stack).change_summary) == {auto.OpType.SAME}

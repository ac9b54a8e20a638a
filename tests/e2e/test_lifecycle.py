"""Tenants' lives on one stack of the real engine, as declared steps: hand-made folders adopted, both stores
written, a no-op, a one-value change a reviewer can read and that is written once, a key and a tenant
added, refused and marked deletions, a tenant forgotten, a swapped ciphertext and Infisical drift
repaired, then destroy; every Infisical request counted, and nothing secret left anywhere.

The database's own life (a table prefix, roles, a master key rotation, decommissioning) is
tests/e2e/test_database.py; the committed example tenants.yaml, tests/e2e/test_example.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets.secret.envelope import decrypt
from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import Infisical, Project, configure, sdk, start_infisical
from tests.e2e.steps import (
    BATCH,
    FOLDERS,
    LIST,
    LOGIN,
    Step,
    assert_nothing_persisted,
    audited,
    hand_made,
    resources,
    run_steps,
    sent,
    values,
)
from tests.secret.test_node_compat import run_node

pytestmark = pytest.mark.e2e


@pytest.fixture
def infisical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infisical]:
    """A server of this test's own: its audit, which the adoption step reads, holds this test's requests only."""
    running = start_infisical(tmp_path_factory.mktemp("infisical"))
    yield running
    running.server.stop()


PLATFORM = """\
version: 1
defaults: {storage: both, environments: [dev]}
platform:
  hono-api:
    secrets:
      EMAIL_FROM: {value: "Delivery Chat <onboarding@example.test>"}
tenants:
"""
CODEWISER = """\
  - subdomain: codewiser
    name: CodeWiser Ltd
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: config}
      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}
"""
ACMECORP = """\
  - subdomain: acmecorp
    storage: database
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
ANOTHER = """\
  - subdomain: another-company
    storage: infisical
    secrets:
      SENDGRID_API_KEY: {from: config}
"""
PAGER = "      PAGER_API_KEY: {from: config}\n"
GLOBEX = """\
  - subdomain: globex
    storage: infisical
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
FIRST = PLATFORM + CODEWISER + ACMECORP + ANOTHER
GROWN = PLATFORM + CODEWISER + ACMECORP + ANOTHER + PAGER + GLOBEX
MARKED = GROWN.replace(
    "SENDGRID_API_KEY: {from: config}\n      WEBHOOK", "SENDGRID_API_KEY: {decommission: true}\n      WEBHOOK"
)
DECOMMISSIONED = MARKED.replace(
    "  - subdomain: another-company\n", "  - subdomain: another-company\n    decommission: true\n"
)
FORGOTTEN = MARKED.replace(ANOTHER + PAGER, "")

VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"},
    "acmecorp": {"STRIPE_SECRET_KEY": "fake-stripe-acmecorp-0001"},
    "another-company": {"SENDGRID_API_KEY": "fake-sendgrid-ac-0001", "PAGER_API_KEY": "fake-pager-ac-0001"},
    "globex": {"STRIPE_SECRET_KEY": "fake-stripe-gx-0001"},
}
CHANGED = "fake-stripe-cw-0002"
STALE = "fake-sendgrid-cw-0000"  # the hand-made folder's value, older than the declared one
LEGACY = "fake-legacy-note"  # a key tenants.yaml does not declare, in a hand-made folder
BY_HAND = "fake-changed-by-hand"
CW, AC, GX = "/tenants/codewiser", "/tenants/another-company", "/tenants/globex"
EMAIL_FROM = {"EMAIL_FROM": "Delivery Chat <onboarding@example.test>"}
FINGERPRINT = '"[0-9a-f]{16}"'
MASTER_KEYS = ("MASTER_ENCRYPTION_KEY", "MASTER_ENCRYPTION_KEY_VERSION", "MASTER_ENCRYPTION_KEY_V1")


@dataclass(frozen=True)
class Stored:
    ciphertext: str
    updated_at: Any
    xmin: str  # changes on any UPDATE of the row, even one writing the same values back
    version: int
    key_version: int


def stored(project: Project) -> dict[tuple[str, str], Stored]:
    """(subdomain, key) -> its row."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.updated_at, s.xmin::text, s.version,"
            " s.key_version FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    return {(r[0], r[1]): Stored(*r[2:]) for r in found}


def history(project: Project) -> dict[tuple[str, str, int], str]:
    """(subdomain, key, version) -> the previous ciphertext kept for that version."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, h.secret_key, h.version, h.secret_value_encrypted"
            " FROM company_secret_versions h JOIN companies c ON c.id = h.company_id"
        ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in found}


def audit(project: Project) -> list[tuple[str, str, str, int]]:
    """(subdomain, key, action, version) of every audit row, oldest first."""
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, a.secret_key, a.action, a.version FROM company_secret_audit a"
            " LEFT JOIN companies c ON c.id = a.company_id ORDER BY a.id"
        ).fetchall()
    return [(str(s), str(k), str(a), int(v)) for s, k, a, v in found]


def node_read(rows: dict[tuple[str, str], Stored], master_key: str) -> dict[tuple[str, str], str]:
    """Every row through the application's own reader (the seed's decryptSecret, in Node.js)."""
    order = sorted(rows)
    plain = run_node("decrypt.mjs", [{"envelope": rows[k].ciphertext, "keyHex": master_key} for k in order])
    return dict(zip(order, plain, strict=True))


def steps(master_key: str) -> list[Step]:
    """The scenario; its checks compare with what earlier steps saw (``seen``)."""
    seen: dict[str, Any] = {}

    def by_hand_before_the_tool(project: Project) -> None:
        hand_made(project, CW, {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": STALE, "NOTE": LEGACY})
        seen["by_hand"] = len(project.infisical.server.audit())

    def adopted_writing_only_what_differs(project: Project) -> None:
        """The up's writes, each one the server recorded: the two new folders, the stale value, the new keys.
        Each folder's create is tried first (codewiser's is refused: it exists); the folders' upserts may
        share one request."""
        written = sorted(
            (e["action"], e["path"], e["key"]) for e in project.infisical.server.audit()[seen["by_hand"] :]
        )
        assert written == sorted(
            [
                ("create-folder", "/", "hono-api"),
                ("create-folder", "/tenants", "another-company"),
                ("update-secret", CW, "SENDGRID_API_KEY"),
                ("create-secret", CW, "WEBHOOK_SIGNING_SECRET"),
                ("create-secret", AC, "SENDGRID_API_KEY"),
                *[("create-secret", "/hono-api", key) for key in ("EMAIL_FROM", *MASTER_KEYS)],
            ]
        ), f"the up wrote {written}"
        writes = sent(project)
        assert writes.pop(f"PATCH {BATCH}", 0) in (1, 2), "codewiser's and another-company's upserts not shared"
        assert writes == {f"POST {FOLDERS}": 3, f"POST {BATCH}": 2}, f"the up sent {sent(project)}"

    def both_stores_written(project: Project, stack: auto.Stack) -> None:
        adopted_writing_only_what_differs(project)
        assert audited(project, "create-folder")[("/tenants", "codewiser")] == 1, "codewiser's folder made twice"
        generated = (values(project, CW) or {})["WEBHOOK_SIGNING_SECRET"]
        assert re.fullmatch(r"[0-9a-f]{64}", generated), "codewiser's WEBHOOK_SIGNING_SECRET is not 32 bytes hex"
        rows = stored(project)
        assert set(rows) == {
            ("codewiser", "STRIPE_SECRET_KEY"),
            ("codewiser", "SENDGRID_API_KEY"),
            ("codewiser", "WEBHOOK_SIGNING_SECRET"),
            ("acmecorp", "STRIPE_SECRET_KEY"),
        }
        assert {(r.version, r.key_version) for r in rows.values()} == {(1, 1)}
        key = bytes.fromhex(master_key)
        assert decrypt(rows[("acmecorp", "STRIPE_SECRET_KEY")].ciphertext, key) == "fake-stripe-acmecorp-0001"
        assert decrypt(rows[("codewiser", "WEBHOOK_SIGNING_SECRET")].ciphertext, key) == generated, (
            "codewiser's generated value differs between the stores"
        )
        declared = {(owner, k): v for owner in ("codewiser", "acmecorp") for k, v in VALUES[owner].items()}
        read = node_read(rows, master_key)
        assert {k: read[k] for k in declared} == declared, "the application's reader reads other values"
        seen.update(rows=rows, audit=audit(project), inputs=inputs(stack), generated=generated)

    def inputs(stack: auto.Stack) -> dict[str, Any]:
        return {name: r.get("inputs") for name, r in resources(stack).items()}

    def nothing_touched(project: Project, stack: auto.Stack) -> None:
        assert stored(project) == seen["rows"], "a row was written (ciphertext, updated_at or xmin changed)"
        assert audit(project) == seen["audit"]
        assert inputs(stack) == seen["inputs"], "the state's record of the inputs changed"

    def one_row_written(project: Project, stack: auto.Stack) -> None:
        rows, changed = stored(project), ("codewiser", "STRIPE_SECRET_KEY")
        assert {k: v for k, v in rows.items() if k != changed} == {
            k: v for k, v in seen["rows"].items() if k != changed
        }
        assert rows[changed].version == 2
        assert node_read({changed: rows[changed]}, master_key) == {changed: CHANGED}
        assert history(project) == {(*changed, 1): seen["rows"][changed].ciphertext}, "the old ciphertext is not kept"
        assert audit(project)[len(seen["audit"]) :] == [(*changed, "update", 2)]

    def added(project: Project, stack: auto.Stack) -> None:
        writes = sent(project)
        assert writes.pop(f"PATCH {BATCH}", 0) in (1, 2), "globex's and another-company's upserts not shared"
        assert writes == {f"POST {FOLDERS}": 1}, "one folder made, for globex"

    def forgotten(project: Project, stack: auto.Stack) -> None:
        assert "another-company-infisical" not in resources(stack), "the stack still holds another-company's folder"

    def swap_ciphertexts(project: Project) -> None:
        with project.db() as conn:
            conn.execute(
                "WITH pair AS (SELECT s.id, s.secret_value_encrypted AS ct, s.binding, c.subdomain"
                " FROM company_secrets s JOIN companies c ON c.id = s.company_id"
                " WHERE s.secret_key = 'STRIPE_SECRET_KEY' AND c.subdomain IN ('codewiser', 'acmecorp'))"
                " UPDATE company_secrets s SET (secret_value_encrypted, binding) = (o.ct, o.binding)"
                " FROM pair o, pair me WHERE me.id = s.id AND o.subdomain <> me.subdomain"
            )

    def swap_repaired(project: Project, stack: auto.Stack) -> None:
        read = node_read(stored(project), master_key)
        assert read[("codewiser", "STRIPE_SECRET_KEY")] == CHANGED
        assert read[("acmecorp", "STRIPE_SECRET_KEY")] == "fake-stripe-acmecorp-0001"

    def drift(project: Project) -> None:
        client, where = sdk(project.infisical), {"project_id": project.infisical.project_id, "environment_slug": "dev"}
        client.secrets.update_secret_by_name(
            current_secret_name="STRIPE_SECRET_KEY", secret_path=CW, secret_value=BY_HAND, **where
        )
        client.secrets.delete_secret_by_name(secret_name="STRIPE_SECRET_KEY", secret_path=GX, **where)

    def drift_recorded(project: Project, stack: auto.Stack) -> None:
        outputs = {name: r.get("outputs") or {} for name, r in resources(stack).items()}
        cw, gx = outputs["codewiser-infisical"], outputs["globex-infisical"]
        assert cw["fingerprints"]["STRIPE_SECRET_KEY"] != cw["declared_fingerprints"]["STRIPE_SECRET_KEY"]
        assert cw["fingerprints"]["WEBHOOK_SIGNING_SECRET"] == cw["declared_fingerprints"]["WEBHOOK_SIGNING_SECRET"]
        assert "STRIPE_SECRET_KEY" not in gx["fingerprints"], "the deletion by hand is not seen"

    def restored(project: Project, stack: auto.Stack) -> None:
        assert values(project, CW) == {
            "STRIPE_SECRET_KEY": CHANGED,
            "WEBHOOK_SIGNING_SECRET": seen["generated"],
            "NOTE": LEGACY,
        }
        writes = sent(project)
        assert writes.pop(f"PATCH {BATCH}", 0) in (1, 2) and writes == {}, f"the up sent {sent(project)}"

    def one_provider(project: Project, stack: auto.Stack) -> None:
        # No resource carries a pickled provider (`__provider`), and the stack's one provider records its
        # stack's name only (decisions 0034, 0039).
        listed = list(resources(stack).values())
        pickled = [r["urn"] for r in listed if "__provider" in {*(r.get("inputs") or {}), *(r.get("outputs") or {})}]
        assert not pickled, f"{pickled} carry a provider"
        providers = [r for r in listed if r["type"].startswith("pulumi:providers:")]
        assert [r["type"] for r in providers] == ["pulumi:providers:tenant-secrets"]
        assert {k: v for k, v in (providers[0].get("inputs") or {}).items() if k != "version"} == {"stack": stack.name}

    def nothing_secret_anywhere(project: Project, stack: auto.Stack) -> None:
        declared = [value for owner in VALUES.values() for value in owner.values()]
        assert_nothing_persisted(
            project, stack, [*declared, CHANGED, STALE, LEGACY, BY_HAND, seen["generated"], master_key]
        )

    return [
        Step(
            "hand-made folders are adopted and both stores written: an equal value is not rewritten, a stale one"
            " is updated, an undeclared one is left alone, and nothing else is written",
            tenants=FIRST,
            by_hand=by_hand_before_the_tool,
            folders={
                "/hono-api": {  # the application's keyring too, where the seed's application reads it
                    **EMAIL_FROM,
                    "MASTER_ENCRYPTION_KEY": master_key,
                    "MASTER_ENCRYPTION_KEY_VERSION": "1",
                    "MASTER_ENCRYPTION_KEY_V1": master_key,
                },
                AC: {"SENDGRID_API_KEY": "fake-sendgrid-ac-0001"},
                "/tenants/acmecorp": None,
            },
            versions={CW: {"STRIPE_SECRET_KEY": 1, "SENDGRID_API_KEY": 2, "NOTE": 1}},
            check=both_stores_written,
        ),
        Step(
            "nothing changed: the preview says so, and the up writes nothing and sends Infisical no request",
            preview={},
            changes={},
            requests={},
            check=nothing_touched,
        ),
        Step(
            "one value changed: the plan names the tenant, stores and key, the diff shows fingerprints only,"
            " and the up writes that key once in each store",
            config={("codewiser", "STRIPE_SECRET_KEY"): CHANGED},
            plan=[
                Row("codewiser", "dev", "database", "STRIPE_SECRET_KEY", "update"),
                Row("codewiser", "dev", "infisical", "STRIPE_SECRET_KEY", "update"),
            ],
            shows=[rf"~ STRIPE_SECRET_KEY\s*: {FINGERPRINT} => {FINGERPRINT}"],
            hides=[CHANGED, "~ SENDGRID_API_KEY"],
            changes={"update": 2},  # codewiser's folder and rows, nothing else
            requests={LOGIN: 1, LIST: 1, f"PATCH {BATCH}": 1},
            versions={CW: {"STRIPE_SECRET_KEY": 2, "SENDGRID_API_KEY": 2}},
            check=one_row_written,
        ),
        Step(
            "a key added to a tenant, and a tenant added: each shown per tenant and key, one folder made",
            tenants=GROWN,
            plan=[
                Row("another-company", "dev", "infisical", "PAGER_API_KEY", "create"),
                Row("globex", "dev", "infisical", "STRIPE_SECRET_KEY", "create"),
            ],
            shows=[rf"\+ PAGER_API_KEY\s*: {FINGERPRINT}", "globex-infisical"],
            folders={AC: VALUES["another-company"], GX: VALUES["globex"]},
            check=added,
        ),
        Step(
            "a key dropped from tenants.yaml: the up is refused, naming it and the marker; nothing is deleted",
            tenants=GROWN.replace("      SENDGRID_API_KEY: {from: config}\n      WEBHOOK", "      WEBHOOK"),
            fails=[
                "codewiser: SENDGRID_API_KEY is no longer declared in tenants.yaml",
                "`SENDGRID_API_KEY: {decommission: true}`",
            ],
            writes=0,
            versions={CW: {"SENDGRID_API_KEY": 2}},
            rows={"STRIPE_SECRET_KEY", "SENDGRID_API_KEY", "WEBHOOK_SIGNING_SECRET"},
        ),
        Step(
            "with the marker, the plan lists the deletion in both stores and the up deletes that key only",
            tenants=MARKED,
            plan=[
                Row("codewiser", "dev", "database", "SENDGRID_API_KEY", "delete"),
                Row("codewiser", "dev", "infisical", "SENDGRID_API_KEY", "delete"),
            ],
            requests={LOGIN: 1, LIST: 1, f"DELETE {BATCH}": 1},
            versions={CW: {"STRIPE_SECRET_KEY": 2, "WEBHOOK_SIGNING_SECRET": 1, "NOTE": 1}},
            rows={"STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET"},
        ),
        Step(
            "a tenant dropped from tenants.yaml: the plan is refused, naming it and the marker",
            tenants=FORGOTTEN,
            refused=["another-company is no longer declared in tenants.yaml", "`decommission: true`"],
            tenant_folders={"another-company": True},
        ),
        Step(
            "with `decommission: true`, the plan lists each key that goes and the up deletes the folder",
            tenants=DECOMMISSIONED,
            plan=[
                Row("another-company", "dev", "infisical", "PAGER_API_KEY", "delete"),
                Row("another-company", "dev", "infisical", "SENDGRID_API_KEY", "delete"),
            ],
            sends={f"DELETE {FOLDERS}/{{folderIdOrName}}": 1},
            tenant_folders={"another-company": False, "codewiser": True, "globex": True},
        ),
        Step(
            "once applied, the entry can go: the stack forgets the folder",
            tenants=FORGOTTEN,
            check=forgotten,
            tenant_folders={"another-company": False, "codewiser": True, "globex": True},
        ),
        Step(
            "a value changed and a secret deleted by hand in Infisical: refresh finds both with one listing",
            by_hand=drift,
            refresh=2,
            refresh_requests={LOGIN: 1, LIST: 1},
            up=False,
            check=drift_recorded,
        ),
        Step(
            "the next up restores both declared values",
            changes={"update": 2},
            folders={GX: VALUES["globex"]},
            check=restored,
        ),
        Step(
            "two tenants' ciphertexts swapped in the database: the run names the swap and overwrites both rows",
            by_hand=swap_ciphertexts,
            shows=[
                re.escape("holds the ciphertext of another row, which holds this row's (swapped)"),
                "tenant codewiser's run overwrites it from tenants.yaml",
                "tenant acmecorp's run overwrites it from tenants.yaml",
            ],
            changes={"update": 2},
            check=swap_repaired,
        ),
        Step(
            "once both rows are overwritten, a preview shows no change; the state holds no pickled provider and"
            " one provider per stack",
            preview={},
            up=False,
            check=one_provider,
        ),
        Step(
            "destroy deletes what the stack made: its secrets and folders, and every row",
            up=False,
            destroy=True,
            folders={GX: None, "/hono-api": None},
            rows=set(),
            check=nothing_secret_anywhere,
        ),
    ]


def test_tenants_through_adoption_review_deletions_drift_and_destroy(project: Project, master_key: str) -> None:
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    run_steps(project, stack, steps(master_key), "tenants' lives")

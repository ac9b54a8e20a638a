"""The committed example tenants.yaml on the dev stack, as declared steps: what each run costs (Infisical
requests, PostgreSQL statements) on the first `up`, a no-op `up` and a one-value change, and the
application's side after the first one: the master keys published in `/hono-api` and every row read by
the seed's own `getMasterKey` and `decryptSecret` in Node.js through the official Infisical Node SDK."""

from __future__ import annotations

import re

import pytest
from pulumi import automation as auto

from tests.e2e.conftest import Project, example_stack
from tests.e2e.steps import BATCH, FOLDERS, LIST, LOGIN, Step, assert_nothing_persisted, run_steps, values
from tests.e2e.test_keyring import seed_app, stored_rows

pytestmark = pytest.mark.e2e

WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|CREATE|ALTER|GRANT|BEGIN)", re.IGNORECASE)


def count_statements(project: Project) -> None:
    """From here, count the statements the server runs in the test's database (pg_stat_statements)."""
    with project.db() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
        )


def statements(project: Project) -> dict[str, int]:
    """Statements run since ``count_statements``, by text."""
    with project.db() as conn:
        rows = conn.execute(
            "SELECT query, calls FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE %s",
            ["%pg_stat_statements%"],
        ).fetchall()
    return {str(query): int(calls) for query, calls in rows}


def steps(master_key: str) -> list[Step]:
    def first_run(project: Project, stack: auto.Stack) -> None:
        # dev: /hono-api, /tenants/codewiser and /tenants/another-company (acmecorp is database-only): per
        # folder one folder create (a folder just made is empty: no listing), and their secrets in batch
        # upserts shared by the folders written at once; one login per run that calls Infisical. Then the
        # master keys published to /hono-api: the versions, and once the rows are written
        # MASTER_ENCRYPTION_KEY, each a listing and a batch create (docs/decisions/0020).
        counts = project.infisical.request_counts()
        upserts = counts.pop(f"PATCH {BATCH}", 0)
        assert 1 <= upserts <= 3, f"{upserts} batch upserts for 3 folders"
        assert counts == {LOGIN: 1, f"POST {FOLDERS}": 3, f"POST {BATCH}": 2, LIST: 2}
        assert any('INSERT INTO "company_secrets"' in q for q in statements(project))
        # codewiser (both stores): WEBHOOK_SIGNING_SECRET, STRIPE_SECRET_KEY, SENDGRID_API_KEY; acmecorp
        # (database): WEBHOOK_SIGNING_SECRET, STRIPE_SECRET_KEY, SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD
        folder = values(project, "/hono-api") or {}
        assert {k: v for k, v in folder.items() if k.startswith("MASTER_ENCRYPTION_KEY")} == {
            "MASTER_ENCRYPTION_KEY": master_key,
            "MASTER_ENCRYPTION_KEY_VERSION": "1",
            "MASTER_ENCRYPTION_KEY_V1": master_key,
        }, "the keyring published in /hono-api"
        assert {"BETTER_AUTH_SECRET", "EMAIL_FROM", "RESEND_API_KEY"} <= folder.keys()  # the platform folder's own
        rows = stored_rows(project)
        assert len(rows) == 9
        read = seed_app(project.infisical, rows, "seed")
        assert all(r["ok"] for r in read), [r.get("error") for r in read]
        assert "fake-smtp-password-acmecorp-0001" in {r["value"] for r in read}, "acmecorp's SMTP_PASSWORD"

    def reads_only(project: Project, stack: auto.Stack) -> None:
        done = statements(project)
        assert [q for q in done if WRITES.match(q)] == [], "the no-op wrote to the database"
        assert sum(done.values()) == 4, (
            done
        )  # the preflight's four reads (the fourth: row bindings), whatever the tenants

    def one_value_written(project: Project, stack: auto.Stack) -> None:
        after = values(project, "/tenants/another-company") or {}
        assert set(after) == {"SENDGRID_API_KEY", "WEBHOOK_SIGNING_SECRET"}
        assert after["SENDGRID_API_KEY"] == "fake-sendgrid-another-ex-0002", "another-company's SENDGRID_API_KEY"
        # the keys are published, never persisted: not in the state nor in any output
        assert_nothing_persisted(project, stack, [master_key, "fake-sendgrid-another-ex-0002"])

    return [
        Step(
            "the first up writes both stores and publishes the master keys where the application reads them",
            by_hand=count_statements,
            check=first_run,
        ),
        Step(
            "a no-op up sends Infisical nothing and only reads the database",
            by_hand=count_statements,
            changes={},
            requests={},
            check=reads_only,
        ),
        Step(
            "one value changed: one login, one listing and one batch upsert",
            config={("another-company", "SENDGRID_API_KEY"): "fake-sendgrid-another-ex-0002"},
            requests={LOGIN: 1, LIST: 1, f"PATCH {BATCH}": 1},
            check=one_value_written,
        ),
    ]


def test_the_example_tenants_file_first_no_op_and_one_change(project: Project, master_key: str) -> None:
    stack = example_stack(project, master_key)
    run_steps(project, stack, steps(master_key), "the example tenants.yaml")

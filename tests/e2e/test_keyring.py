"""The application's half of the keyring through the real engine, as declared steps: a master key rotation
that keeps every row readable by the seed's own `getMasterKey` and `decryptSecret` (in Node.js, through the
official Infisical Node SDK) even when it is interrupted, an Infisical outage that stops it before any row
moves, and keys kept by hand in Infisical. The keys published after a first `up` and read back by the
seed's reader are steps of tests/e2e/test_example.py."""

from __future__ import annotations

import json
import os
import random
import subprocess
from datetime import datetime
from typing import Any

import pytest
import requests
from pulumi import automation as auto

from tenant_secrets.secret.keyfolder import keyring_from_folder
from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import REPO, Infisical, Project, configure, sdk, sdk_listing
from tests.e2e.steps import Check, Step, run_steps

pytestmark = pytest.mark.e2e

SEED_APP = REPO / "tests" / "node" / "seed_app.mjs"
TENANTS = 12  # x 2 keys: 24 rows, 6 rotation batches of 4


def seed_app(infisical: Infisical, rows: list[tuple[str, int]], mode: str, environment: str = "dev") -> list[Any]:
    """The application's reader in Node.js: per row, ``{"ok": True, "value": ...}`` or ``{"ok": False, ...}``."""
    request = {
        "siteUrl": infisical.server.url,
        "clientId": infisical.client_id,
        "clientSecret": infisical.client_secret,
        "projectId": infisical.project_id,
        "environment": environment,
        "mode": mode,
        "rows": [{"envelope": envelope, "keyVersion": version} for envelope, version in rows],
    }
    done = subprocess.run(
        ["node", str(SEED_APP)], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results: list[Any] = json.loads(done.stdout)
    return results


def stored_rows(project: Project) -> list[tuple[str, int]]:
    with project.db() as conn:
        rows = conn.execute("SELECT secret_value_encrypted, key_version FROM company_secrets ORDER BY id").fetchall()
    return [(str(envelope), int(version)) for envelope, version in rows]


def key_folder(infisical: Infisical, environment: str = "dev") -> dict[str, str]:
    listed = sdk_listing(infisical, environment, "/hono-api") or []
    return {s.secretKey: s.secretValue for s in listed}


def keyring_secrets(folder: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in folder.items() if k.startswith("MASTER_ENCRYPTION_KEY")}


def fleet(count: int) -> str:
    tenants = "\n".join(
        f"  - subdomain: tenant-{i:02d}\n    secrets:\n      API_KEY: {{value: fake-api-key-{i:02d}}}"
        for i in range(count)
    )
    return (
        "version: 1\ndefaults:\n  storage: database\n  environments: [dev, staging]\n  secrets:\n"
        "    WEBHOOK_SIGNING_SECRET: {generate: {bytes: 16}}\n"
        f"tenants:\n{tenants}\n"
    )


def _fail_rotation_at_batch(project: Project, batch: int) -> None:
    """A fault in the database: the `batch`-th UPDATE statement of company_secrets fails (rotation batches
    are the only updates of this run: no value changes)."""
    with project.db() as conn:
        conn.execute("CREATE SEQUENCE rotation_fault_seq")
        conn.execute(
            "CREATE FUNCTION rotation_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF nextval('rotation_fault_seq') >= {batch} THEN RAISE EXCEPTION 'injected fault in batch {batch}'; "
            "END IF; RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER rotation_fault BEFORE UPDATE ON company_secrets "
            "FOR EACH STATEMENT EXECUTE FUNCTION rotation_fault()"
        )


def _clear_fault(project: Project) -> None:
    with project.db() as conn:
        conn.execute("DROP TRIGGER rotation_fault ON company_secrets")
        conn.execute("DROP FUNCTION rotation_fault()")
        conn.execute("DROP SEQUENCE rotation_fault_seq")


def _rotate_to_v2(stack: auto.Stack, key: str) -> None:
    stack.set_config("tenant-secrets:masterKeys.v2", auto.ConfigValue(key, secret=True), path=True)
    stack.set_config("tenant-secrets:activeKeyVersion", auto.ConfigValue("2"))


def _updated_at(infisical: Infisical, key: str) -> datetime:
    listed = sdk(infisical).secrets.list_secrets(
        project_id=infisical.project_id, environment_slug="dev", secret_path="/hono-api"
    )
    stamp = next(s.updatedAt for s in listed.secrets if s.secretKey == key)
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def interrupted(key_1: str, key_2: str, batch: int, why: str) -> list[Step]:
    seen: dict[str, Any] = {}

    def first_values(project: Project, stack: auto.Stack) -> None:
        seen["values"] = [r["value"] for r in seed_app(project.infisical, stored_rows(project), "seed")]

    def readable_throughout(project: Project, stack: auto.Stack) -> None:
        folder = keyring_secrets(key_folder(project.infisical))
        assert folder == {
            "MASTER_ENCRYPTION_KEY": key_1,
            "MASTER_ENCRYPTION_KEY_VERSION": "1",
            "MASTER_ENCRYPTION_KEY_V1": key_1,
            "MASTER_ENCRYPTION_KEY_V2": key_2,
        }, why
        rows = stored_rows(project)
        assert sum(version == 2 for _, version in rows) == (batch - 1) * 4, why
        published = keyring_from_folder(folder, folder="/hono-api")
        assert [published.decrypt(envelope, version) for envelope, version in rows] == seen["values"], why
        versioned = seed_app(project.infisical, rows, "versioned")
        assert [r.get("value") for r in versioned] == seen["values"], why
        # the seed's unchanged reader fails on exactly the rows already moved: the window the master key guide states
        unchanged = seed_app(project.infisical, rows, "seed")
        assert [not r["ok"] for r in unchanged] == [version == 2 for _, version in rows], why

    def fault_cleared(project: Project) -> None:
        _clear_fault(project)
        with project.db() as conn:
            seen["audited"] = (
                conn.execute("SELECT coalesce(max(id), 0) FROM company_secret_audit").fetchone() or (0,)
            )[0]

    def finished(project: Project, stack: auto.Stack) -> None:
        rows = stored_rows(project)
        assert {version for _, version in rows} == {2}
        assert [r.get("value") for r in seed_app(project.infisical, rows, "seed")] == seen["values"]
        folder = keyring_secrets(key_folder(project.infisical))
        assert (folder["MASTER_ENCRYPTION_KEY"], folder["MASTER_ENCRYPTION_KEY_VERSION"]) == (key_2, "2")
        assert folder["MASTER_ENCRYPTION_KEY_V1"] == key_1
        with project.db() as conn:
            last = conn.execute(
                "SELECT max(at) FROM company_secret_audit WHERE action = 'reencrypt' AND id > %s", [seen["audited"]]
            ).fetchone()
        assert last is not None and last[0] is not None
        assert _updated_at(project.infisical, "MASTER_ENCRYPTION_KEY") > last[0], "the key moved before the rows"

    def keys_not_persisted(project: Project, stack: auto.Stack) -> None:
        persisted = project.persisted(stack)
        assert key_1 not in persisted and key_2 not in persisted

    return [
        Step("the first up, on v1", check=first_values),
        Step(
            "interrupted: v2 is published before any row moves, MASTER_ENCRYPTION_KEY stays, every row readable",
            secret_settings={"masterKeys.v2": key_2},
            settings={"activeKeyVersion": "2"},
            by_hand=lambda project: _fail_rotation_at_batch(project, batch),
            fails=["injected fault"],
            check=readable_throughout,
        ),
        Step(
            "the next up finishes: every row on v2, then MASTER_ENCRYPTION_KEY moves; v1 stays one more run",
            by_hand=fault_cleared,
            check=finished,
        ),
        Step(
            "the run after the last row left v1 withdraws it, shown to the reviewer as a deletion",
            plan=[Row("hono-api", "dev", "infisical", "MASTER_ENCRYPTION_KEY_V1", "delete", "platform")],
            check=lambda project, _: assert_keyring(
                project,
                {
                    "MASTER_ENCRYPTION_KEY": key_2,
                    "MASTER_ENCRYPTION_KEY_VERSION": "2",
                    "MASTER_ENCRYPTION_KEY_V2": key_2,
                },
            ),
        ),
        Step(
            "then nothing is left to change, and neither key is persisted",
            preview={},
            up=False,
            check=keys_not_persisted,
        ),
    ]


def assert_keyring(project: Project, expected: dict[str, str], environment: str = "dev") -> None:
    assert keyring_secrets(key_folder(project.infisical, environment)) == expected, "the published keyring"


def every_row_on(version: int, environment: str = "dev") -> Check:
    def check(project: Project, stack: auto.Stack) -> None:
        rows = stored_rows(project)
        assert {v for _, v in rows} == {version}, f"rows not all on v{version}"
        read = seed_app(project.infisical, rows, "seed", environment=environment)
        assert all(r["ok"] for r in read), "the seed's reader fails on a row"

    return check


def test_a_rotation_interrupted_at_a_random_batch_keeps_every_row_readable(project: Project) -> None:
    seed = int(os.environ.get("KEYRING_FAULT_SEED", random.randrange(1 << 30)))
    batch = random.Random(seed).randint(1, TENANTS * 2 // 4)
    why = f"(KEYRING_FAULT_SEED={seed}: rotation fails in batch {batch})"
    key_1, key_2 = os.urandom(32).hex(), os.urandom(32).hex()
    project.write_tenants(fleet(TENANTS))
    stack = project.stack("dev")
    configure(stack, master_keys={"v1": key_1}, secrets_config={}, rotationBatchSize="4")
    run_steps(project, stack, interrupted(key_1, key_2, batch, why), f"an interrupted rotation {why}")


def test_an_infisical_outage_while_publishing_stops_the_rotation_before_any_row_moves(project: Project) -> None:
    key_1, key_2 = os.urandom(32).hex(), os.urandom(32).hex()
    admin = f"{project.infisical.server.url}/__admin/faults"
    project.write_tenants(fleet(3))
    project.env["TENANT_SECRETS_INFISICAL_RETRIES"] = "attempts=2,max_delay=0.1"
    stack = project.stack("dev")
    configure(stack, master_keys={"v1": key_1}, secrets_config={})

    def outage(project: Project) -> None:
        requests.post(admin, json={"path": "/api/v3/secrets/batch/raw", "count": 50, "status": 503}, timeout=10)

    def over_then_on_v1(project: Project, stack: auto.Stack) -> None:
        requests.delete(admin, timeout=10)
        every_row_on(1)(project, stack)

    steps = [
        Step("the first up, on v1"),
        Step(
            "Infisical answers 503 while v2 is published: the up fails before any row moves",
            secret_settings={"masterKeys.v2": key_2},
            settings={"activeKeyVersion": "2"},
            by_hand=outage,
            fails=["503"],
            check=over_then_on_v1,
        ),
        Step("Infisical back, the next up rotates every row", check=every_row_on(2)),
    ]
    run_steps(project, stack, steps, "an outage during a rotation")


def test_keys_kept_by_hand_in_infisical_are_read_and_never_written(project: Project) -> None:
    """masterKeySource infisical, in the staging environment: the seed's own layout, then a rotation by hand."""
    key_1, key_2 = os.urandom(32).hex(), os.urandom(32).hex()
    project.write_tenants(fleet(3))
    stack = project.stack("staging")
    configure(stack, master_keys={}, secrets_config={}, masterKeySource="infisical")
    common = {"project_id": project.infisical.project_id, "environment_slug": "staging", "secret_path": "/hono-api"}

    def the_seeds_layout(project: Project) -> None:
        client = sdk(project.infisical)
        client.folders.create_folder(
            name="hono-api", environment_slug="staging", project_id=project.infisical.project_id, path="/"
        )
        client.secrets.create_secret_by_name(secret_name="MASTER_ENCRYPTION_KEY", secret_value=key_1, **common)

    def rotated_by_hand(project: Project) -> None:
        client = sdk(project.infisical)
        client.secrets.create_secret_by_name(secret_name="MASTER_ENCRYPTION_KEY_V1", secret_value=key_1, **common)
        client.secrets.create_secret_by_name(secret_name="MASTER_ENCRYPTION_KEY_V2", secret_value=key_2, **common)
        client.secrets.create_secret_by_name(secret_name="MASTER_ENCRYPTION_KEY_VERSION", secret_value="2", **common)
        client.secrets.update_secret_by_name(current_secret_name="MASTER_ENCRYPTION_KEY", secret_value=key_2, **common)

    def read_not_written(version: int, keyring: dict[str, str]) -> Check:
        def check(project: Project, stack: auto.Stack) -> None:
            every_row_on(version, "staging")(project, stack)
            assert_keyring(project, keyring, "staging")
            persisted = project.persisted(stack)
            assert key_1 not in persisted and key_2 not in persisted, "a key is persisted"

        return check

    steps = [
        Step(
            "without /hono-api/MASTER_ENCRYPTION_KEY the plan is refused, saying what it needs",
            refused=["/hono-api/MASTER_ENCRYPTION_KEY is missing", "64 hex characters"],
        ),
        Step(
            "the key made by hand, as the seed keeps it: the up reads it and writes nothing to the folder",
            by_hand=the_seeds_layout,
            check=read_not_written(1, {"MASTER_ENCRYPTION_KEY": key_1}),
        ),
        Step(
            "the team rotates by hand (both versions, then MASTER_ENCRYPTION_KEY), then the up moves every row",
            by_hand=rotated_by_hand,
            check=read_not_written(
                2,
                {
                    "MASTER_ENCRYPTION_KEY": key_2,
                    "MASTER_ENCRYPTION_KEY_VERSION": "2",
                    "MASTER_ENCRYPTION_KEY_V1": key_1,
                    "MASTER_ENCRYPTION_KEY_V2": key_2,
                },
            ),
        ),
    ]
    run_steps(project, stack, steps, "keys kept by hand")

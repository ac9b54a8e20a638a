"""Strategy A end to end: tenants.yaml -> `pulumi up` (the real engine) -> Infisical folders /tenants/<subdomain>
on the local Infisical-compatible server, counting every request the server receives.

Each test has a server of its own (the `infisical` fixture below replaces the session's), so folders, rate
limits and faults never leak between tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi import automation as auto

from tenant_secrets.tenantctl.plan_comment import Row, rows_from_preview
from tests.e2e.conftest import Infisical, Project, configure, example_stack, sdk, sdk_listing, start_infisical

pytestmark = pytest.mark.e2e

LOGIN = "POST /api/v1/auth/universal-auth/login"
LIST = "GET /api/v3/secrets/raw"
BATCH = "/api/v3/secrets/batch/raw"
FOLDERS = "/api/v2/folders"


@pytest.fixture
def infisical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infisical]:
    """A server of this test's own: its folders, limits and faults touch no other test."""
    running = start_infisical(tmp_path_factory.mktemp("infisical"))
    yield running
    running.server.stop()


# --- helpers ---------------------------------------------------------------------------------------


def live(infisical: Infisical, path: str, env: str = "dev") -> dict[str, tuple[str, int]] | None:
    """Key -> (value, version) of a folder, through the SDK; None when the folder does not exist."""
    listed = sdk_listing(infisical, env, path)
    return None if listed is None else {s.secretKey: (s.secretValue, s.version) for s in listed}


def values(infisical: Infisical, path: str, env: str = "dev") -> dict[str, str] | None:
    found = live(infisical, path, env)
    return None if found is None else {key: value for key, (value, _) in found.items()}


def tenant_folders(infisical: Infisical, env: str = "dev") -> list[str]:
    listed = sdk(infisical).folders.list_folders(project_id=infisical.project_id, environment_slug=env, path="/tenants")
    return sorted(f.name for f in listed.folders)


def hand_made(infisical: Infisical, path: str, secrets: dict[str, str], env: str = "dev") -> None:
    """A folder and secrets made by hand, before the tool, with the official SDK."""
    client = sdk(infisical)
    parent, _, name = path.rpartition("/")
    client.folders.create_folder(name=name, environment_slug=env, project_id=infisical.project_id, path=parent or "/")
    for key, value in secrets.items():
        client.secrets.create_secret_by_name(
            secret_name=key, project_id=infisical.project_id, secret_path=path, environment_slug=env, secret_value=value
        )


def writes(infisical: Infisical) -> dict[str, int]:
    """Write requests since the last reset, by endpoint (logins are not writes)."""
    return {r: n for r, n in infisical.request_counts().items() if not r.startswith("GET") and r != LOGIN}


def shared_upserts(sent: dict[str, int], folders: int) -> int:
    """The batch upserts among ``sent``: the creates and updates of folders written at once share them (a
    ``secretPath`` per item), so ``folders`` folders take between one and that many, as they overlap."""
    upserts = sent.get(f"PATCH {BATCH}", 0)
    assert 1 <= upserts <= folders, sent
    return upserts


def set_value(stack: auto.Stack, owner: str, key: str, value: str) -> None:
    stack.set_config(f"tenant-secrets:secrets.{owner}.{key}", auto.ConfigValue(value, secret=True), path=True)


def steps(document: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The preview's steps by resource name."""
    assert document is not None
    return {str(s["urn"]).rsplit("::", 1)[-1]: s for s in document["steps"]}


def named_keys(step: dict[str, Any]) -> set[str]:
    """The secret keys the engine itself names as changed: their fingerprints' paths in detailedDiff."""
    return {str(p).split(".", 1)[1] for p in step.get("detailedDiff") or {} if str(p).startswith("fingerprints.")}


def changes(preview: auto.PreviewResult) -> dict[str, int]:
    return {str(op): n for op, n in preview.change_summary.items() if str(op) != "same"}


def statuses(infisical: Infisical, status: int) -> int:
    """How many API requests the server answered with ``status`` (its access log)."""
    return len(re.findall(rf" -> {status} in ", infisical.server.log()))


def stack_resources(project: Project, stack: auto.Stack) -> list[dict[str, Any]]:
    exported = stack.export_stack().deployment
    return list(exported["resources"]) if exported else []


# --- 1-4, 8: review, one write per change, guarded deletions, nothing secret persisted ---------------

BASE = """\
version: 1
defaults: {storage: infisical, environments: [dev]}
platform:
  hono-api:
    secrets:
      EMAIL_FROM: {value: "Delivery Chat <onboarding@example.test>"}
tenants:
"""
CODEWISER = """\
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: config}
      WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}
"""
ANOTHER = """\
  - subdomain: another-company
    secrets:
      SENDGRID_API_KEY: {from: config}
"""
GLOBEX = """\
  - subdomain: globex
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0001"},
    "another-company": {"SENDGRID_API_KEY": "fake-sendgrid-ac-0001", "PAGER_API_KEY": "fake-pager-ac-0001"},
    "globex": {"STRIPE_SECRET_KEY": "fake-stripe-gx-0001"},
}
CHANGED = "fake-stripe-cw-0002"


def test_changes_are_reviewed_per_tenant_and_key_written_once_and_deletions_need_a_marker(
    project: Project, master_key: str
) -> None:
    infisical = project.infisical
    project.write_tenants(BASE + CODEWISER + ANOTHER)
    stack = project.stack("dev")
    configure(stack, secrets_config=VALUES, master_keys={"v1": master_key})
    project.up(stack)
    assert values(infisical, "/hono-api") == {"EMAIL_FROM": "Delivery Chat <onboarding@example.test>"}
    codewiser = values(infisical, "/tenants/codewiser")
    assert codewiser is not None
    generated = codewiser.pop("WEBHOOK_SIGNING_SECRET")
    assert re.fullmatch(r"[0-9a-f]{64}", generated)
    assert codewiser == VALUES["codewiser"]
    assert values(infisical, "/tenants/another-company") == {"SENDGRID_API_KEY": "fake-sendgrid-ac-0001"}

    # 1. Nothing changed: the preview says so, and `up` sends Infisical no request at all.
    infisical.reset_counts()
    assert changes(project.preview(stack)) == {}
    again = project.up(stack)
    assert set((again.summary.resource_changes or {}).keys()) == {"same"}
    assert infisical.request_counts() == {}

    # 2. One value changed in the stack config: the preview names the tenant's resource and the key, masked.
    set_value(stack, "codewiser", "STRIPE_SECRET_KEY", CHANGED)
    status, document, _ = project.preview_json(stack)
    assert status == 0
    found = steps(document)
    assert found["codewiser-infisical"]["op"] == "update"
    assert named_keys(found["codewiser-infisical"]) == {"STRIPE_SECRET_KEY"}
    assert {name for name, step in found.items() if step["op"] != "same"} == {"codewiser-infisical"}
    text = project.preview(stack).stdout
    assert re.search(r'~ STRIPE_SECRET_KEY\s*: "[0-9a-f]{16}" => "[0-9a-f]{16}"', text), text
    assert "~ SENDGRID_API_KEY" not in text
    assert CHANGED not in text
    infisical.reset_counts()
    project.up(stack)
    assert writes(infisical) == {f"PATCH {BATCH}": 1}
    assert infisical.request_counts() == {LOGIN: 1, LIST: 1, f"PATCH {BATCH}": 1}
    after = live(infisical, "/tenants/codewiser")
    assert after is not None
    assert after["STRIPE_SECRET_KEY"] == (CHANGED, 2)
    assert after["SENDGRID_API_KEY"] == ("fake-sendgrid-cw-0001", 1)  # not rewritten

    # 3. A key added to a tenant, and a tenant added: each shown per tenant and key.
    project.write_tenants(BASE + CODEWISER + ANOTHER + "      PAGER_API_KEY: {from: config}\n" + GLOBEX)
    status, document, _ = project.preview_json(stack)
    assert status == 0
    found = steps(document)
    assert named_keys(found["another-company-infisical"]) == {"PAGER_API_KEY"}
    assert found["globex-infisical"]["op"] == "create"
    assert document is not None
    assert rows_from_preview(document, "dev") == [
        Row("another-company", "dev", "infisical", "PAGER_API_KEY", "create"),
        Row("globex", "dev", "infisical", "STRIPE_SECRET_KEY", "create"),
    ]
    text = project.preview(stack).stdout
    assert re.search(r'\+ PAGER_API_KEY\s*: "[0-9a-f]{16}"', text), text
    assert "globex-infisical" in text
    infisical.reset_counts()
    project.up(stack)
    sent = writes(infisical)
    assert sent == {f"POST {FOLDERS}": 1, f"PATCH {BATCH}": shared_upserts(sent, 2)}
    assert values(infisical, "/tenants/globex") == VALUES["globex"]
    assert values(infisical, "/tenants/another-company") == VALUES["another-company"]
    declared = BASE + CODEWISER + ANOTHER + "      PAGER_API_KEY: {from: config}\n" + GLOBEX

    # 4a. A key removed from tenants.yaml: `up` refuses, naming it and the marker; nothing is deleted.
    project.write_tenants(declared.replace("      SENDGRID_API_KEY: {from: config}\n", "", 1))
    infisical.reset_counts()
    with pytest.raises(auto.CommandError) as refused:
        project.up(stack)
    message = str(refused.value)
    assert "codewiser: SENDGRID_API_KEY is no longer declared in tenants.yaml" in message
    assert "`SENDGRID_API_KEY: {decommission: true}`" in message
    assert writes(infisical) == {}
    assert "SENDGRID_API_KEY" in (values(infisical, "/tenants/codewiser") or {})

    # 4b. With the marker, the preview lists the deletion and the next `up` deletes that secret only.
    declared = declared.replace("SENDGRID_API_KEY: {from: config}", "SENDGRID_API_KEY: {decommission: true}", 1)
    project.write_tenants(declared)
    status, document, _ = project.preview_json(stack)
    assert status == 0
    assert document is not None
    assert named_keys(steps(document)["codewiser-infisical"]) == {"SENDGRID_API_KEY"}
    assert rows_from_preview(document, "dev") == [Row("codewiser", "dev", "infisical", "SENDGRID_API_KEY", "delete")]
    infisical.reset_counts()
    project.up(stack)
    assert writes(infisical) == {f"DELETE {BATCH}": 1}
    assert set(values(infisical, "/tenants/codewiser") or {}) == {"STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET"}

    # 4c. A tenant removed from tenants.yaml: the preview fails, naming it and the marker.
    project.write_tenants(declared.replace(ANOTHER + "      PAGER_API_KEY: {from: config}\n", ""))
    status, _, output = project.preview_json(stack)
    assert status != 0
    assert "another-company is no longer declared in tenants.yaml" in output
    assert "`decommission: true`" in output

    # 4d. With `decommission: true`, the preview lists each key that goes and `up` deletes the folder.
    marked = declared.replace(
        "  - subdomain: another-company\n", "  - subdomain: another-company\n    decommission: true\n"
    )
    project.write_tenants(marked)
    status, document, _ = project.preview_json(stack)
    assert status == 0
    assert document is not None
    assert rows_from_preview(document, "dev") == [
        Row("another-company", "dev", "infisical", "PAGER_API_KEY", "delete"),
        Row("another-company", "dev", "infisical", "SENDGRID_API_KEY", "delete"),
    ]
    infisical.reset_counts()
    project.up(stack)
    assert writes(infisical) == {f"DELETE {FOLDERS}/{{folderIdOrName}}": 1}
    assert tenant_folders(infisical) == ["codewiser", "globex"]

    # 4e. Once applied, the entry can go: the stack forgets the folder.
    project.write_tenants(declared.replace(ANOTHER + "      PAGER_API_KEY: {from: config}\n", ""))
    project.up(stack)
    names = [str(r["urn"]).rsplit("::", 1)[-1] for r in stack_resources(project, stack)]
    assert "another-company-infisical" not in names
    assert tenant_folders(infisical) == ["codewiser", "globex"]

    # 8. No value, client secret or token in the state, the stack's files, the engine's output or the server's log.
    assert_nothing_secret_persisted(project, stack, [*_all_values(), CHANGED, generated, master_key])


def _all_values() -> list[str]:
    return [value for owner in VALUES.values() for value in owner.values()]


def assert_nothing_secret_persisted(project: Project, stack: auto.Stack, secret_values: list[str]) -> None:
    infisical = project.infisical
    everything = project.persisted(stack) + "".join(project.outputs) + infisical.server.log()
    for value in [*secret_values, infisical.client_secret]:
        assert value not in everything
    # No resource carries a pickled provider (`__provider`) any more, and the stack's one provider records its
    # stack's name only (decisions 0034, 0039).
    resources = stack_resources(project, stack)  # exported with secrets shown
    assert not [r["urn"] for r in resources if "__provider" in {*(r.get("inputs") or {}), *(r.get("outputs") or {})}]
    providers = [r for r in resources if r["type"].startswith("pulumi:providers:")]
    assert [r["type"] for r in providers] == ["pulumi:providers:tenant-secrets"]
    assert {k: v for k, v in (providers[0].get("inputs") or {}).items() if k != "version"} == {"stack": stack.name}


# --- 5, 6: adoption of hand-made folders, `tenantctl import`, drift ------------------------------------

ADOPT = """\
version: 1
defaults: {storage: infisical, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
      SENDGRID_API_KEY: {from: config}
  - subdomain: beta
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
ADOPT_VALUES = {
    "codewiser": {"STRIPE_SECRET_KEY": "fake-stripe-cw-0001", "SENDGRID_API_KEY": "fake-sendgrid-cw-0002"},
    "beta": {"STRIPE_SECRET_KEY": "fake-stripe-beta-0001"},
}


def test_hand_made_folders_are_adopted_drift_is_restored_and_an_environment_imports(
    project: Project, master_key: str
) -> None:
    infisical = project.infisical
    # Before the tool: folders made by hand; one value equal to the declared one, one stale, one not declared.
    hand_made(
        infisical,
        "/tenants/codewiser",
        {
            "STRIPE_SECRET_KEY": "fake-stripe-cw-0001",
            "SENDGRID_API_KEY": "fake-sendgrid-cw-0001",
            "LEGACY_NOTE": "fake-legacy-note",
        },
    )
    hand_made(infisical, "/tenants/beta", {"STRIPE_SECRET_KEY": "fake-stripe-beta-0001"})
    project.write_tenants(ADOPT)
    stack = project.stack("dev")
    configure(stack, secrets_config=ADOPT_VALUES, master_keys={"v1": master_key})
    infisical.reset_counts()
    project.up(stack)

    # 5. Adopted: no folder made (each new resource tries to create its folder first, and is refused: it exists),
    # equal values untouched (version 1), the stale one updated, the rest left alone.
    assert writes(infisical) == {f"POST {FOLDERS}": 2, f"PATCH {BATCH}": 1}
    made = audited(infisical, "create-folder")
    assert (made[("/tenants", "codewiser")], made[("/tenants", "beta")]) == (1, 1)  # by hand, and only then
    assert live(infisical, "/tenants/codewiser") == {
        "STRIPE_SECRET_KEY": ("fake-stripe-cw-0001", 1),
        "SENDGRID_API_KEY": ("fake-sendgrid-cw-0002", 2),
        "LEGACY_NOTE": ("fake-legacy-note", 1),
    }
    assert live(infisical, "/tenants/beta") == {"STRIPE_SECRET_KEY": ("fake-stripe-beta-0001", 1)}
    assert changes(project.preview(stack)) == {}

    # 6. Drift: one value changed and one secret deleted by hand. Refresh shows both; `up` restores them.
    client = sdk(infisical)
    client.secrets.update_secret_by_name(
        current_secret_name="STRIPE_SECRET_KEY",
        project_id=infisical.project_id,
        secret_path="/tenants/codewiser",
        environment_slug="dev",
        secret_value="fake-changed-by-hand",
    )
    client.secrets.delete_secret_by_name(
        secret_name="STRIPE_SECRET_KEY",
        project_id=infisical.project_id,
        secret_path="/tenants/beta",
        environment_slug="dev",
    )
    infisical.reset_counts()
    refreshed = stack.refresh(on_output=project.capture, color="never")
    assert (refreshed.summary.resource_changes or {}).get(auto.OpType.UPDATE) == 2
    assert infisical.request_counts() == {LOGIN: 1, LIST: 1}, "one recursive listing for every folder"
    outputs = {str(r["urn"]).rsplit("::", 1)[-1]: r.get("outputs") or {} for r in stack_resources(project, stack)}
    cw, beta = outputs["codewiser-infisical"], outputs["beta-infisical"]
    assert cw["fingerprints"]["STRIPE_SECRET_KEY"] != cw["declared_fingerprints"]["STRIPE_SECRET_KEY"]
    assert cw["fingerprints"]["SENDGRID_API_KEY"] == cw["declared_fingerprints"]["SENDGRID_API_KEY"]
    assert "STRIPE_SECRET_KEY" not in beta["fingerprints"]
    assert {name for name, n in changes(project.preview(stack)).items() if n} == {"update"}
    infisical.reset_counts()
    project.up(stack)
    sent = writes(infisical)
    assert sent == {f"PATCH {BATCH}": shared_upserts(sent, 2)}
    assert values(infisical, "/tenants/codewiser") == {**ADOPT_VALUES["codewiser"], "LEGACY_NOTE": "fake-legacy-note"}
    assert values(infisical, "/tenants/beta") == ADOPT_VALUES["beta"]
    assert changes(project.preview(stack)) == {}

    # 5. A whole existing environment: `tenantctl import` writes tenants.yaml from folder and key names, and the
    # first `up` of a stack on it adopts every folder without writing anything.
    hand_made(infisical, "/tenants/acme", {"A_KEY": "fake-acme-a", "B_KEY": "fake-acme-b"}, env="staging")
    hand_made(infisical, "/hono-api", {"BETTER_AUTH_SECRET": "fake-better-auth"}, env="staging")
    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "tenant_secrets.tenantctl",
            "import",
            "--environments",
            "staging",
            "--output",
            "imported.yaml",
        ],
        cwd=project.root,
        env={**os.environ, **project.env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "imported 1 tenant(s), 1 platform folder(s), 3 key(s) from staging" in imported.stderr
    file_text = (project.root / "imported.yaml").read_text()
    assert "A_KEY: {from: infisical, path: /tenants/acme, key: A_KEY}" in file_text
    staging = project.stack("staging")
    configure(staging, secrets_config={}, master_keys={"v1": master_key}, tenantsFile="imported.yaml")
    infisical.reset_counts()
    audit_before = len(infisical.server.audit())
    project.up(staging)
    # each folder's create is tried first and refused (it exists); nothing is written
    assert writes(infisical) == {f"POST {FOLDERS}": 2}
    # the program, and the provider process at write time, each read every `{from: infisical}` source from one
    # recursive listing of staging; each folder's write lists its own folder (it plans from what it holds now)
    assert infisical.request_counts()[LIST] == 1 + 1 + 2
    assert infisical.server.audit()[audit_before:] == []
    assert live(infisical, "/tenants/acme", "staging") == {"A_KEY": ("fake-acme-a", 1), "B_KEY": ("fake-acme-b", 1)}
    assert live(infisical, "/hono-api", "staging") == {"BETTER_AUTH_SECRET": ("fake-better-auth", 1)}
    assert changes(project.preview(staging)) == {}
    for value in ("fake-acme-a", "fake-acme-b", "fake-better-auth"):
        assert value not in imported.stdout + imported.stderr + file_text

    assert_nothing_secret_persisted(
        project,
        stack,
        [*[v for o in ADOPT_VALUES.values() for v in o.values()], "fake-changed-by-hand", "fake-legacy-note"],
    )


# --- 7: a 429 storm and 503s are retried within a bound; past it the run fails and the next converges --------

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


def audited(infisical: Infisical, action: str) -> dict[tuple[str, str], int]:
    """How often the server recorded ``action`` per (path, key)."""
    found: dict[tuple[str, str], int] = {}
    for entry in infisical.server.audit():
        if entry["action"] == action:
            where = (str(entry["path"]), str(entry["key"]))
            found[where] = found.get(where, 0) + 1
    return found


def retries(project: Project, policy: str) -> None:
    """The retry policy of the next runs' providers (read from the environment at call time)."""
    project.env["TENANT_SECRETS_INFISICAL_RETRIES"] = policy


@pytest.mark.long  # a fault run: make test-long
def test_rate_limits_and_server_errors_are_retried_within_a_bound_and_a_failed_run_converges(
    project: Project, master_key: str
) -> None:
    infisical, server = project.infisical, project.infisical.server
    project.write_tenants(RETRY_TENANTS)
    retries(project, "attempts=10,base_delay=0.05,max_delay=3")
    stack = project.stack("dev")
    configure(stack, secrets_config=RETRY_VALUES, master_keys={"v1": master_key})

    # A storm: 3 secret operations per 2 s window for a run that needs up to 9, and two 503s on the first batch.
    server.settings(rate_limits={**UNLIMITED, "secrets": 3}, rate_limit_window_seconds=2)
    server.add_fault(BATCH, method="PATCH", status=503, count=2)
    project.up(stack)
    server.settings(rate_limits=UNLIMITED)  # the checks below share the client IP
    assert statuses(infisical, 429) >= 1
    assert statuses(infisical, 503) == 2
    for owner in ("alpha", "bravo", "charlie"):
        folder = live(infisical, f"/tenants/{owner}")
        assert folder == {key: (value, 1) for key, value in RETRY_VALUES[owner].items()}
    assert set(audited(infisical, "create-secret").values()) == {1}  # each key created once
    assert len(audited(infisical, "create-secret")) == 4

    # Past the bound: a 60 s window allowing 2 secret operations, 3 attempts: the run fails and says why.
    retries(project, "attempts=3,base_delay=0.05,max_delay=0.2")
    stack = project.stack("dev")
    set_value(stack, "alpha", "STRIPE_SECRET_KEY", "fake-stripe-alpha-0002")
    set_value(stack, "bravo", "STRIPE_SECRET_KEY", "fake-stripe-bravo-0002")
    server.settings(rate_limits={**UNLIMITED, "secrets": 2}, rate_limit_window_seconds=60)
    with pytest.raises(auto.CommandError) as failed:
        project.up(stack)
    server.settings(rate_limits=UNLIMITED)
    message = str(failed.value)
    assert "failed after 3 attempts (last: 429 Rate limit exceeded. Please try again in" in message
    assert "re-running converges" in message
    project.up(stack)
    assert live(infisical, "/tenants/alpha") == {
        "STRIPE_SECRET_KEY": ("fake-stripe-alpha-0002", 2),
        "SENDGRID_API_KEY": ("fake-sendgrid-alpha-0001", 1),
    }
    assert live(infisical, "/tenants/bravo") == {"STRIPE_SECRET_KEY": ("fake-stripe-bravo-0002", 2)}
    assert audited(infisical, "update-secret") == {
        ("/tenants/alpha", "STRIPE_SECRET_KEY"): 1,
        ("/tenants/bravo", "STRIPE_SECRET_KEY"): 1,
    }

    # A write applied whose answer was lost (503 after the commit): before sending it again the provider looks,
    # finds the value in place, and does not resend it.
    project.write_tenants(RETRY_TENANTS + DELTA)
    server.add_fault(BATCH, method="PATCH", status=503, count=1, after=True)
    infisical.reset_counts()
    project.up(stack)
    assert writes(infisical) == {f"POST {FOLDERS}": 1, f"PATCH {BATCH}": 1}
    assert live(infisical, "/tenants/delta") == {"STRIPE_SECRET_KEY": ("fake-stripe-delta-0001", 1)}

    # 503s to the bound: the run fails, naming the folder; the next one finds the folder the failed run made
    # (its create is refused) and writes the value once.
    project.write_tenants(RETRY_TENANTS + DELTA + ECHO)
    server.add_fault(BATCH, method="PATCH", status=503, count=5)
    with pytest.raises(auto.CommandError) as failed:
        project.up(stack)
    message = str(failed.value)
    assert "batch upsert of STRIPE_SECRET_KEY in dev:/tenants/echo failed after 3 attempts" in message
    assert "(last: 503" in message
    assert live(infisical, "/tenants/echo") == {}
    server.clear_faults()
    infisical.reset_counts()
    project.up(stack)
    assert writes(infisical) == {f"POST {FOLDERS}": 1, f"PATCH {BATCH}": 1}
    assert live(infisical, "/tenants/echo") == {"STRIPE_SECRET_KEY": ("fake-stripe-echo-0001", 1)}
    assert audited(infisical, "create-secret")[("/tenants/delta", "STRIPE_SECRET_KEY")] == 1
    assert audited(infisical, "create-secret")[("/tenants/echo", "STRIPE_SECRET_KEY")] == 1
    assert changes(project.preview(stack)) == {}

    everything = "".join(project.outputs) + project.persisted(stack) + server.log()
    for declared in RETRY_VALUES.values():
        for value in declared.values():
            assert value not in everything
    assert "fake-stripe-alpha-0002" not in everything


# --- 9: subdomains are DNS labels, so no tenant's folder leaves /tenants ----------------------------------


def test_a_subdomain_that_could_leave_tenants_fails_before_any_request(project: Project, master_key: str) -> None:
    bad = ["../hono-api", "a/b", "Codewiser", "tenants"]
    project.write_tenants(
        "version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n"
        + "".join(f'  - subdomain: "{name}"\n    secrets:\n      K: {{value: "v"}}\n' for name in bad)
    )
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    status, _, output = project.preview_json(stack)
    assert status != 0
    for line, name in enumerate(bad):
        assert f"tenants.yaml:{4 + 3 * line}:" in output
        assert f"tenants[{line}].subdomain: '{name}'" in output
    assert "'tenants' is reserved" in output
    assert project.infisical.request_counts() == {}


# --- measured: requests per run on the committed example tenants.yaml ------------------------------------


def test_requests_per_run_on_the_example_tenants_file(
    project: Project, master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    infisical = project.infisical
    stack = example_stack(project, master_key)

    def measured(step: str) -> dict[str, int]:
        infisical.reset_counts()
        project.up(stack)
        counts = infisical.request_counts()
        with capsys.disabled():
            print(f"\nexample tenants.yaml, dev: {step}: {sum(counts.values())} Infisical requests {counts}")
        return counts

    first = measured("first up")
    no_op = measured("no-op up")
    set_value(stack, "another-company", "SENDGRID_API_KEY", "fake-sendgrid-another-ex-0002")
    one_change = measured("one value changed")

    # dev: /hono-api, /tenants/codewiser and /tenants/another-company (acmecorp is database-only):
    # per folder one folder create (a folder just made is empty: no listing), and their secrets in batch upserts
    # shared by the folders written at once; one login per run that calls Infisical. Then the master keys
    # published to /hono-api: the versions, and once the rows are written MASTER_ENCRYPTION_KEY, each a listing
    # and a batch create (docs/decisions/0020).
    assert first == {
        LOGIN: 1,
        f"POST {FOLDERS}": 3,
        f"PATCH {BATCH}": shared_upserts(first, 3),
        f"POST {BATCH}": 2,
        LIST: 2,
    }
    assert no_op == {}
    assert one_change == {LOGIN: 1, LIST: 1, f"PATCH {BATCH}": 1}
    after = values(infisical, "/tenants/another-company") or {}
    assert after["SENDGRID_API_KEY"] == "fake-sendgrid-another-ex-0002"
    assert set(after) == {"SENDGRID_API_KEY", "WEBHOOK_SIGNING_SECRET"}

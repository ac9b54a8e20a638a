"""tenantctl plan's parsing and rendering, on previews the real engine printed.

The fixtures in fixtures/previews/ were recorded by tests/e2e/test_review.py
(TENANT_SECRETS_RECORD_PREVIEWS=1), each after one real tenants.yaml or config change, and scrubbed
of stack traces and timestamps; every secret input in them is `[secret]` (checked below).
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tenant_secrets.store.roles import role_rights
from tenant_secrets.store.settings import StoreSettings
from tenant_secrets.tenantctl import plan_comment
from tenant_secrets.tenantctl.main import main
from tenant_secrets.tenantctl.plan_comment import render_json, render_markdown
from tenant_secrets.tenantctl.plan_preview import ReviewPlan, parse_preview, rows_from_preview
from tenant_secrets.tenantctl.plan_rows import Row

PREVIEWS = Path(__file__).parents[1] / "fixtures" / "previews"
KEY = re.compile(r"[A-Z][A-Z0-9_]*")


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((PREVIEWS / f"{name}.json").read_text())
    return document


def d(owner: str, store: str, key: str, action: str, kind: str = "tenant") -> Row:
    return Row(owner, "dev", store, key, action, kind)


EXPECTED = {
    "initial": [
        d("acmecorp", "database", "API_TOKEN", "create"),
        d("codewiser", "database", "SENDGRID_API_KEY", "create"),
        d("codewiser", "database", "STRIPE_SECRET_KEY", "create"),
        d("codewiser", "infisical", "SENDGRID_API_KEY", "create"),
        d("codewiser", "infisical", "STRIPE_SECRET_KEY", "create"),
        d("hono-api", "infisical", "EMAIL_FROM", "create", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY", "create", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY_V1", "create", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY_VERSION", "create", "platform"),
        d("company_secrets", "database", "-", "create", "schema"),
    ],
    "change-value": [
        d("codewiser", "database", "STRIPE_SECRET_KEY", "update"),
        d("codewiser", "infisical", "STRIPE_SECRET_KEY", "update"),
        d("hono-api", "infisical", "EMAIL_FROM", "update", "platform"),
    ],
    "add-key": [
        d("codewiser", "database", "WEBHOOK_SECRET", "create"),
        d("codewiser", "infisical", "WEBHOOK_SECRET", "create"),
    ],
    "add-tenant": [d("newco", "infisical", "STRIPE_SECRET_KEY", "create")],
    "decommission-key": [
        d("codewiser", "database", "SENDGRID_API_KEY", "delete"),
        d("codewiser", "infisical", "SENDGRID_API_KEY", "delete"),
    ],
    "decommission-tenant": [d("acmecorp", "database", "API_TOKEN", "delete")],
    "forget-tenant": [d("acmecorp", "database", "-", "forget")],
    "store-dropped-retained": [
        d("codewiser", "database", "STRIPE_SECRET_KEY", "retain"),
        d("codewiser", "database", "WEBHOOK_SECRET", "retain"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY", "retain", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY_V1", "retain", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY_VERSION", "retain", "platform"),
    ],
    "table-prefix-replace": [
        d("codewiser", "database", "STRIPE_SECRET_KEY", "replace"),
        d("codewiser", "database", "WEBHOOK_SECRET", "replace"),
        d("company_secrets", "database", "-", "migrate", "schema"),
    ],
    "pull-request": [
        d("codewiser", "database", "WEBHOOK_SECRET", "delete"),
        d("codewiser", "infisical", "WEBHOOK_SECRET", "delete"),
        d("codewiser", "database", "STRIPE_SECRET_KEY", "update"),
        d("codewiser", "infisical", "STRIPE_SECRET_KEY", "update"),
        d("globex", "database", "STRIPE_SECRET_KEY", "create"),
        d("globex", "infisical", "STRIPE_SECRET_KEY", "create"),
        d("hono-api", "infisical", "RESEND_API_KEY", "create", "platform"),
        d("newco", "infisical", "SENDGRID_API_KEY", "create"),
    ],
    "unchecked-database": [
        d("acmecorp", "infisical", "API_TOKEN", "create"),
        d("codewiser", "database", "STRIPE_SECRET_KEY", "create"),
        d("codewiser", "infisical", "STRIPE_SECRET_KEY", "create"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY", "create", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY_V1", "create", "platform"),
        d("hono-api", "infisical", "MASTER_ENCRYPTION_KEY_VERSION", "create", "platform"),
        d("company_secrets", "database", "-", "create", "schema"),
    ],
}
FAILURES = {
    "removal-guard-key": "codewiser-infisical: codewiser: SENDGRID_API_KEY is no longer declared in tenants.yaml",
    "removal-guard-tenant": "registry: newco is no longer declared in tenants.yaml",
    "missing-value": "tenants.yaml: some secrets have no value for stack dev:\ntenants.yaml:21:23: ",
    "invalid-file": "tenants.yaml is not valid:\ntenants.yaml:18:5: tenants[2].storge: unknown field 'storge'",
}
ALL = sorted(p.stem for p in PREVIEWS.glob("*.json"))


# --- the fixtures are what the e2e test records, and hold no value --------------------------------------


def test_every_recorded_preview_has_an_expectation() -> None:
    assert set(ALL) == set(EXPECTED) | set(FAILURES)


def test_a_warning_free_recorded_preview_is_checked() -> None:
    assert all(parse_preview(load(name), "dev").checked for name in EXPECTED if name != "unchecked-database")


def _secret_inputs(node: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("inputs", "outputs") and isinstance(value, dict):
                found += [v for k, v in value.items() if KEY.fullmatch(k) or k in ("keyring", "fingerprint_key")]
            found += _secret_inputs(value)
    elif isinstance(node, list):
        for value in node:
            found += _secret_inputs(value)
    return found


@pytest.mark.parametrize("name", ALL)
def test_recorded_previews_hold_no_value(name: str) -> None:
    text = (PREVIEWS / f"{name}.json").read_text()
    assert all(value == "[secret]" for value in _secret_inputs(json.loads(text)))
    assert "fake-" not in text
    assert "stackTrace" not in text  # scrubbed: local paths
    config = load(name)["config"]
    assert config["tenant-secrets:derivationKey"] == "[secret]"
    assert json.loads(config["tenant-secrets:masterKeys"]) == {"v1": "[secret]"}


# --- rows from real previews ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rows_of_a_real_preview(name: str) -> None:
    plan = parse_preview(load(name), "dev")
    assert plan.ok
    assert list(plan.rows) == EXPECTED[name]
    assert plan.environment == "dev"


def test_no_changes() -> None:
    plan = parse_preview(load("initial") | {"steps": [load("initial")["steps"][0] | {"op": "same"}]}, "dev")
    assert plan.rows == ()
    assert "No changes" in render_markdown(plan)


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_failed_preview_is_its_errors_and_no_rows(name: str) -> None:
    plan = parse_preview(load(name), "dev")
    assert not plan.ok
    assert plan.rows == ()
    (error,) = plan.errors  # the program's generic "exited with error code 1" is left out
    assert error.startswith(FAILURES[name])
    assert not error.startswith("error:")


def test_a_check_failure_drops_the_engines_value_part() -> None:
    """The engine prints `property X value {...} has a problem` for a failure that names a property:
    whatever it puts there is not shown. The removal guards name none (the registry's property would be
    the list of every tenant), so the engine prints the reason alone."""
    document = load("removal-guard-tenant")
    message = document["diagnostics"][0]["message"]
    assert "resource 'registry' has a problem: newco is no longer declared" in message
    assert "acmecorp" not in message and "value {" not in message
    planted = copy.deepcopy(load("removal-guard-key"))
    planted["diagnostics"][0]["message"] = planted["diagnostics"][0]["message"].replace(
        "resource 'codewiser-infisical' has a problem:",
        "resource 'codewiser-infisical': property owners value {fake-planted-value} has a problem:",
    )
    assert "fake-planted-value" in planted["diagnostics"][0]["message"]
    (error,) = parse_preview(planted, "dev").errors
    assert "fake-planted-value" not in error
    assert error.startswith("codewiser-infisical: codewiser: SENDGRID_API_KEY is no longer declared")


def test_the_generic_program_error_alone_is_still_shown() -> None:
    document = {"diagnostics": [{"severity": "error", "message": "error: an unhandled error occurred: program exited"}]}
    assert parse_preview(document, "dev").errors == ("an unhandled error occurred: program exited",)


def test_warnings_and_infos_are_not_errors() -> None:
    document = load("change-value") | {"diagnostics": [{"severity": "warning", "message": "warning: slow"}]}
    assert parse_preview(document, "dev").ok


# --- a preview that could not check everything is never a green plan ------------------------------------


def test_a_preview_without_the_database_is_not_fully_checked() -> None:
    """Recorded without DATABASE_URL: the rows are real, and so is the warning that `up` will fail."""
    plan = parse_preview(load("unchecked-database"), "dev")
    assert plan.ok and not plan.checked
    (warning,) = plan.warnings
    assert warning.startswith("DATABASE_URL is not set in the environment of `pulumi`")
    assert "(codewiser)" in warning
    text = render_markdown(plan)
    title, _, banner = text.split("\n")[:3]
    assert title.endswith(": not fully checked")
    assert banner.startswith("**The preview could not check everything (1 warning(s))")
    assert text.index("DATABASE_URL is not set") < text.index("| tenant / folder |")


def test_no_changes_with_a_warning_does_not_say_no_changes() -> None:
    document = load("initial") | {
        "steps": [],
        "diagnostics": [{"severity": "warning", "message": "warning: the preview does not check X"}],
    }
    text = render_markdown(parse_preview(document, "dev"))
    assert "No changes:" not in text
    assert "No changes found in what the preview could check." in text
    assert "the preview does not check X" in text


def test_an_unchecked_plan_exits_1_unless_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    saved = str(PREVIEWS / "unchecked-database.json")
    assert main(["plan", "--stack", "dev", "--preview-json", saved]) == 1
    out, err = capsys.readouterr()
    assert "not fully checked" in out
    assert "--allow-unchecked" in err
    assert main(["plan", "--stack", "dev", "--preview-json", saved, "--allow-unchecked"]) == 0
    assert "not fully checked" in capsys.readouterr().out  # allowed, but still said
    assert main(["plan", "--stack", "dev", "--format", "json", "--preview-json", saved]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True and document["checked"] is False and len(document["warnings"]) == 1


# --- never a value --------------------------------------------------------------------------------------


def _plant(node: Any, value: str) -> Any:
    """The document as `pulumi preview --json --show-secrets` would print it: every secret input holds `value`."""
    if isinstance(node, dict):
        return {k: (value if v == "[secret]" else _plant(v, value)) for k, v in node.items()}
    if isinstance(node, list):
        return [_plant(v, value) for v in node]
    return node


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(sorted(EXPECTED)),
    value=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=12).filter(
        lambda v: v.strip() == v and "|" not in v
    ),
)
def test_secret_values_never_reach_the_plan_nor_change_it(name: str, value: str) -> None:
    plain = parse_preview(load(name), "dev")
    planted = parse_preview(_plant(load(name), value), "dev")
    assert planted == plain
    for text in (render_markdown(planted), render_json(planted)):
        # a value that is ordinary text of every plan ("a new key is w") is not a leak
        assume(value not in render_markdown(plain) and value not in render_json(plain))
        assert value not in text
        assert json.dumps(value)[1:-1] not in text


# --- what the engine could report, beyond our own providers ---------------------------------------------


def _step(name: str, urn_suffix: str) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in load(name)["steps"] if s["urn"].endswith(urn_suffix))
    return copy.deepcopy(step)


def _unchanged_values(step: dict[str, Any]) -> None:
    """Make a recorded update one whose declared values did not change: the same fingerprints, and nothing
    the engine names (the provider plugin names the changed keys in detailedDiff)."""
    step["newState"]["inputs"]["fingerprints"] = step["oldState"]["inputs"]["fingerprints"]
    step.pop("detailedDiff", None)
    step.pop("diffReasons", None)


def test_keys_named_in_detailed_diff_count_as_updates() -> None:
    """A provider that fills detailedDiff / diffReasons (the provider plugin, or the dynamic Infisical folders
    for declared changes) is read by key name."""
    step = _step("change-value", "::codewiser-database")
    _unchanged_values(step)
    assert rows_from_preview({"steps": [step]}, "dev") == [d("codewiser", "database", "-", "update")]
    assert "Key `-`: the folder or rows change, but no value does." in render_markdown(
        parse_preview({"steps": [step]}, "dev")
    )
    step["detailedDiff"] = {"SENDGRID_API_KEY": {"kind": "update"}, "fingerprints.X": {"kind": "update"}}
    step["diffReasons"] = ["STRIPE_SECRET_KEY", "owner"]
    assert rows_from_preview({"steps": [step]}, "dev") == [
        d("codewiser", "database", "SENDGRID_API_KEY", "update"),
        d("codewiser", "database", "STRIPE_SECRET_KEY", "update"),
    ]


def test_a_replacement_in_three_steps_is_one_row_per_key() -> None:
    step = _step("table-prefix-replace", "::codewiser-database")
    steps = [step | {"op": op} for op in ("create-replacement", "replace", "delete-replaced")]
    assert rows_from_preview({"steps": steps}, "dev") == EXPECTED["table-prefix-replace"][:2]


def test_a_delete_that_does_not_retain_is_a_deletion() -> None:
    step = _step("store-dropped-retained", "::codewiser-database")
    step["oldState"]["retainOnDelete"] = False
    plan = parse_preview({"steps": [step]}, "dev")
    assert [r.action for r in plan.rows] == ["delete", "delete"]
    assert plan.deletions == plan.rows


def test_a_new_master_key_version_is_a_re_encryption() -> None:
    step = _step("change-value", "::codewiser-database")
    _unchanged_values(step)
    step["newState"]["inputs"]["key_version"] = 2
    assert rows_from_preview({"steps": [step]}, "dev") == [
        d("codewiser", "database", "SENDGRID_API_KEY", "re-encrypt"),
        d("codewiser", "database", "STRIPE_SECRET_KEY", "re-encrypt"),
    ]


def _schema_step(**new_inputs: Any) -> dict[str, Any]:
    inputs = {
        "schema_version": 4,
        "table_prefix": "",
        "key_version": 1,
        "key_versions": ["1"],
        "rotation_pending": False,
    }
    urn = (
        "urn:pulumi:dev::tenant-secrets::tenant-secrets:index:DatabaseSecrets"
        "$pulumi-python:dynamic/tenants:DatabaseSchema::database-schema"
    )
    return {"op": "update", "urn": urn, "oldState": {"inputs": inputs}, "newState": {"inputs": inputs | new_inputs}}


def test_a_master_key_rotation_is_a_re_encryption_of_the_schema_not_a_migration() -> None:
    step = _schema_step(key_version=2, key_versions=["1", "2"])
    plan = parse_preview({"steps": [step]}, "dev")
    assert list(plan.rows) == [d("company_secrets", "database", "-", "re-encrypt", "schema")]
    text = render_markdown(plan)
    assert "| company_secrets (schema) | dev | database | - | - | re-encrypt |" in text
    assert "Totals: 1 re-encrypt, the schema only." in text
    assert "every row and history entry still on another key version" in text
    # values the application left on an old key: re-encrypted by the next run
    assert rows_from_preview({"steps": [_schema_step(rotation_pending=True)]}, "dev")[0].action == "re-encrypt"


def test_withdrawing_an_old_key_version_does_not_say_a_value_changed() -> None:
    text = render_markdown(parse_preview({"steps": [_schema_step(key_versions=["2"])]}, "dev"))
    assert "| company_secrets (schema) | dev | database | - | - | update |" in text
    assert "the value changed" not in text
    assert "the master key versions it checks, change; no value does" in text


def test_drift_found_by_a_refresh_is_a_restore_of_that_key() -> None:
    """After `pulumi refresh` found STRIPE_SECRET_KEY changed by hand, `up` writes the declared value back."""
    step = _step("change-value", "::codewiser-database")
    _unchanged_values(step)
    step["oldState"]["outputs"]["fingerprints"] = step["oldState"]["inputs"]["fingerprints"] | {
        "STRIPE_SECRET_KEY": "0" * 16
    }
    step["detailedDiff"] = {"fingerprints.STRIPE_SECRET_KEY": {"kind": "update", "inputDiff": False}}  # the plugin's
    plan = parse_preview({"steps": [step]}, "dev")
    assert list(plan.rows) == [d("codewiser", "database", "STRIPE_SECRET_KEY", "restore")]
    text = render_markdown(plan)
    assert "no value does" not in text
    assert "`pulumi up` writes the declared value back" in text


APP_RIGHTS = "the application's role: SELECT on company_secrets, one company's rows at a time"
WRITER_RIGHTS = "the provisioner: SELECT, INSERT, UPDATE and DELETE on company_secrets, every company's rows"


def test_a_swap_of_the_role_names_says_in_words_which_role_gains_which_rights() -> None:
    """Issue 26, item 2: the plan showed one `company_secrets (schema) update` and nothing of who got what."""
    step = _schema_step(
        app_role="decoy_app",
        provisioner_role="deliverychat_app",
        role_rights={"decoy_app": APP_RIGHTS, "deliverychat_app": WRITER_RIGHTS},
    )
    step["oldState"]["inputs"] |= {
        "app_role": "deliverychat_app",
        "provisioner_role": "tenant_secrets_provisioner",
        "role_rights": {"deliverychat_app": APP_RIGHTS, "tenant_secrets_provisioner": WRITER_RIGHTS},
    }
    plan = parse_preview({"steps": [step]}, "dev")
    text = render_markdown(plan)
    assert "**Database roles' rights change:**" in text
    assert f"- `deliverychat_app` gains {WRITER_RIGHTS}\n" in text
    assert f"- `decoy_app` gains {APP_RIGHTS}\n" in text
    assert "- `tenant_secrets_provisioner` is no longer the provisioner: its row-level security policy goes" in text
    assert text.index("rights change") < text.index("| company_secrets (schema) |"), "above the table"
    assert json.loads(render_json(plan))["rights"] == list(plan.rights)
    # the same roles with the same rights: nothing said
    unchanged = _schema_step(key_versions=["2"], role_rights={"deliverychat_app": APP_RIGHTS})
    unchanged["oldState"]["inputs"]["role_rights"] = {"deliverychat_app": APP_RIGHTS}
    assert parse_preview({"steps": [unchanged]}, "dev").rights == ()


def test_a_state_from_before_the_words_is_read_by_its_role_names() -> None:
    """The first preview after an upgrade: the old state names the roles but holds no `role_rights`."""
    before = {"app_role": "deliverychat_app", "provisioner_role": "tenant_secrets_provisioner"}
    same = _schema_step(schema_version=7, **before, role_rights=role_rights(StoreSettings(), *before.values()))
    same["oldState"]["inputs"] |= before
    assert parse_preview({"steps": [same]}, "dev").rights == (), "the roles keep their rights: nothing to say"
    swapped = _schema_step(
        schema_version=7,
        app_role="decoy_app",
        provisioner_role="deliverychat_app",
        role_rights=role_rights(StoreSettings(), "decoy_app", "deliverychat_app"),
    )
    swapped["oldState"]["inputs"] |= before
    said = parse_preview({"steps": [swapped]}, "dev").rights
    assert [line.split(" ", 2)[:2] for line in said] == [
        ["`decoy_app`", "gains"],
        ["`deliverychat_app`", "gains"],
        ["`tenant_secrets_provisioner`", "is"],
    ]
    assert said[1].startswith("`deliverychat_app` gains the provisioner: SELECT, INSERT, UPDATE and DELETE")


def test_a_role_given_the_applications_writes_is_named_with_what_it_may_write() -> None:
    """appWriterRole set on a stack: the plan says which role gains writes, on which columns, and that it
    cannot delete (docs/decisions/0052)."""
    before = {"app_role": "deliverychat_app"}
    rights = role_rights(StoreSettings(), "deliverychat_app", None, "deliverychat_writer")
    step = _schema_step(schema_version=7, **before, writer_role="deliverychat_writer", role_rights=rights)
    step["oldState"]["inputs"] |= before | {"role_rights": role_rights(StoreSettings(), "deliverychat_app", None)}
    said = parse_preview({"steps": [step]}, "dev").rights
    assert said == (f"`deliverychat_writer` gains {rights['deliverychat_writer']}",)
    assert "INSERT (id, company_id, secret_key, secret_value_encrypted, created_at, updated_at)" in said[0]
    assert "one company's rows at a time" in said[0] and "no DELETE" in said[0]


def test_a_decommissioned_tenants_application_keys_are_listed_as_deletes() -> None:
    """Decommission deletes every row of the company (decision 0049): the keys tenants.yaml never wrote are
    listed with the source `application`, so a reviewer sees them go."""
    step = _step("decommission-tenant", "::acmecorp-database")
    step["newState"]["inputs"]["stored_keys"] = ["API_TOKEN", "CUSTOM_API_KEY"]
    rows = parse_preview({"steps": [step]}, "dev").rows
    assert [(r.owner, r.key, r.action, r.source) for r in rows] == [
        ("acmecorp", "API_TOKEN", "delete", step_source(rows, "API_TOKEN")),
        ("acmecorp", "CUSTOM_API_KEY", "delete", "application"),
    ]
    comment = render_markdown(parse_preview({"steps": [step]}, "dev"))
    assert "| acmecorp | dev | database | `CUSTOM_API_KEY` | application | **delete** |" in comment
    assert "**2 secret(s) would be deleted (1 of them the application's own, not in tenants.yaml):**" in comment
    assert "- acmecorp, database: `CUSTOM_API_KEY` (the application's own key)" in comment
    assert "- acmecorp, database: `API_TOKEN`\n" in comment


def step_source(rows: Sequence[Row], key: str) -> str:
    return next(r.source for r in rows if r.key == key)


def test_a_table_cell_cannot_be_split() -> None:
    plan = ReviewPlan("dev", "dev", (Row("a|b", "dev", "infisical", "K", "create"),))
    assert "| a\\|b | dev | infisical | `K` | - | create |" in render_markdown(plan)


def test_steps_that_are_not_tenant_resources_are_ignored() -> None:
    document = load("add-tenant")
    kinds = {s["urn"].split("::")[-2].rsplit(":", 1)[-1] for s in document["steps"]}
    assert "Registry" in kinds  # the registry changes too, but holds no secret
    assert [r.owner for r in parse_preview(document, "dev").rows] == ["newco"]
    assert rows_from_preview({"steps": [{"op": "update", "urn": "not-a-urn"}, "junk"]}, "dev") == []


def test_the_environment_is_the_stacks_when_config_does_not_say() -> None:
    document = load("change-value")
    del document["config"]["tenant-secrets:environment"]
    plan = parse_preview(document, "qa")
    assert plan.environment == "qa"
    # The infisical rows carry their own environment input; database rows take the stack's.
    assert {(r.store, r.environment) for r in plan.rows} == {("infisical", "dev"), ("database", "qa")}


# --- rendering -------------------------------------------------------------------------------------------


def test_markdown_of_a_change() -> None:
    assert render_markdown(parse_preview(load("change-value"), "dev")) == (
        "### tenant-secrets plan: stack `dev`, environment `dev`\n"
        "\n"
        "| tenant / folder | environment | store | key | source | action |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| codewiser | dev | database | `STRIPE_SECRET_KEY` | config | update |\n"
        "| codewiser | dev | infisical | `STRIPE_SECRET_KEY` | config | update |\n"
        "| hono-api (platform) | dev | infisical | `EMAIL_FROM` | literal | update |\n"
        "\n"
        "Totals: 3 update, for 2 tenant(s) or folder(s).\n"
        "\n"
        "Values are never shown. *update*: the value changed (its fingerprint did).\n"
    )


def test_markdown_calls_out_deletions_above_the_table() -> None:
    text = render_markdown(parse_preview(load("decommission-key"), "dev"))
    head, table = text.split("| tenant / folder |")
    assert head.splitlines()[2:6] == [
        "**2 secret(s) would be deleted:**",
        "",
        "- codewiser, database: `SENDGRID_API_KEY`",
        "- codewiser, infisical: `SENDGRID_API_KEY`",
    ]
    assert "| codewiser | dev | database | `SENDGRID_API_KEY` | config | **delete** |" in table
    replaced = render_markdown(parse_preview(load("table-prefix-replace"), "dev"))
    assert "- codewiser, database: `WEBHOOK_SECRET` (deleted, then written again)" in replaced
    retained = render_markdown(parse_preview(load("store-dropped-retained"), "dev"))
    assert "**5 secret(s) would stay in their store, no longer managed:**" in retained
    assert "would be deleted" not in retained


def test_markdown_of_a_failure_puts_the_message_at_the_top_and_has_no_table() -> None:
    text = render_markdown(parse_preview(load("removal-guard-key"), "dev"))
    lines = text.splitlines()
    assert lines[0] == "### tenant-secrets plan: stack `dev`: the preview failed"
    assert lines[2] == "**Nothing can be applied until this is fixed:**"
    assert lines[4] == "```text"
    assert lines[5].startswith("codewiser-infisical: codewiser: SENDGRID_API_KEY is no longer declared")
    assert "| tenant / folder |" not in text


def test_an_error_holding_a_code_fence_cannot_close_the_block() -> None:
    text = render_markdown(plan_comment.failed("dev", "bad ``` fence"))
    assert text.splitlines()[4] == "````text"


def test_json_format() -> None:
    document = json.loads(render_json(parse_preview(load("decommission-key"), "dev")))
    assert document["ok"] is True
    assert document["deletions"] == 2
    assert document["resources"] == load("decommission-key")["changeSummary"]
    assert document["changes"][0] == {
        "owner": "codewiser",
        "environment": "dev",
        "store": "database",
        "key": "SENDGRID_API_KEY",
        "action": "delete",
        "kind": "tenant",
        "source": "config",
    }
    failed = json.loads(render_json(parse_preview(load("invalid-file"), "dev")))
    assert failed["ok"] is False
    assert failed["changes"] == []
    assert failed["errors"][0].startswith("tenants.yaml is not valid")


# --- running: saved JSON, and a pulumi that is a script -------------------------------------------------


def test_run_plan_on_saved_json_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_comment.run_plan("dev", "markdown", str(PREVIEWS / "change-value.json"), None) == 0
    assert "`STRIPE_SECRET_KEY` | config | update" in capsys.readouterr().out
    assert plan_comment.run_plan("dev", "markdown", str(PREVIEWS / "removal-guard-key.json"), None) == 1
    assert "the preview failed" in capsys.readouterr().out


def test_tenantctl_plan_reads_saved_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "dev", "--format", "json", "--preview-json", str(PREVIEWS / "add-key.json")]) == 0
    assert len(json.loads(capsys.readouterr().out)["changes"]) == 2
    assert main(["plan", "--stack", "dev", "--preview-json", str(PREVIEWS / "invalid-file.json")]) == 1


def test_unreadable_saved_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_comment.run_plan("dev", "markdown", str(tmp_path / "absent.json"), None) == 1
    assert "cannot read" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("Previewing update (dev):\n")
    assert plan_comment.run_plan("dev", "json", str(tmp_path / "bad.json"), None) == 1
    assert "is not the JSON" in json.loads(capsys.readouterr().out)["errors"][0]
    (tmp_path / "list.json").write_text("[]")
    assert plan_comment.run_plan("dev", "json", str(tmp_path / "list.json"), None) == 1


def test_saved_json_from_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((PREVIEWS / "add-tenant.json").read_text()))
    assert plan_comment.run_plan("dev", "json", "-", None) == 0
    assert json.loads(capsys.readouterr().out)["changes"][0]["owner"] == "newco"


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` on PATH that records its arguments and prints $FAKE_STDOUT, $FAKE_STDERR, exits $FAKE_STATUS."""
    script = tmp_path / "bin" / "pulumi"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/args\n'
        'cat "$FAKE_STDOUT"\n'
        'printf "%s" "$FAKE_STDERR" >&2\n'
        'exit "$FAKE_STATUS"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STDERR", "")
    return tmp_path


def _fake(monkeypatch: pytest.MonkeyPatch, stdout: Path, status: int, stderr: str = "") -> None:
    monkeypatch.setenv("FAKE_STDOUT", str(stdout))
    monkeypatch.setenv("FAKE_STATUS", str(status))
    monkeypatch.setenv("FAKE_STDERR", stderr)


def test_run_preview_runs_pulumi_preview_json(
    fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake(monkeypatch, PREVIEWS / "change-value.json", 0)
    assert plan_comment.run_plan("dev", "markdown", None, "Pulumi.ci.yaml") == 0
    args = (fake_pulumi / "args").read_text().split()
    assert args == [
        "preview", "--json", "--diff", "--non-interactive", "--stack", "dev", "--refresh",
        "--config-file", "Pulumi.ci.yaml",
    ]  # fmt: skip
    out = capsys.readouterr().out
    assert "| codewiser | dev | infisical | `STRIPE_SECRET_KEY` | config | update |" in out
    assert plan_comment.DRIFT_READ in out


def test_a_plan_without_refresh_says_drift_was_not_checked(
    fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake(monkeypatch, PREVIEWS / "change-value.json", 0)
    assert plan_comment.run_plan("dev", "markdown", None, None, refresh=False) == 0
    assert "--refresh" not in (fake_pulumi / "args").read_text().split()
    assert "**Drift not checked:**" in capsys.readouterr().out


def test_a_refresh_that_fails_falls_back_and_the_comment_says_so(
    fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh reads every store with the preview's credentials; a store it cannot read must not leave the
    reviewer without a plan, nor with a plan that looks checked."""
    script = fake_pulumi / "bin" / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --refresh "*)\n'
        '  printf "%s" "error: reading folder /tenants/codewiser: 403" >&2; exit 255;;\n'
        "esac\n"
        'cat "$FAKE_STDOUT"\n'
        'exit "$FAKE_STATUS"\n'
    )
    _fake(monkeypatch, PREVIEWS / "change-value.json", 0)
    plan = plan_comment.run_preview("dev")
    assert plan.ok
    assert plan.refreshed is False
    assert plan.warnings[-1] == (
        "the stores could not be read (pulumi preview --refresh failed: error: reading folder /tenants/codewiser: "
        "403), so drift is not shown"
    )
    markdown = plan_comment.render_markdown(plan)
    assert ": not fully checked" in markdown
    assert "**Drift not checked:**" in markdown
    # the preview itself fails too: its own errors are the plan
    _fake(monkeypatch, PREVIEWS / "removal-guard-key.json", 1)
    assert plan_comment.run_preview("dev").errors[0].startswith("codewiser-infisical: codewiser: SENDGRID_API_KEY")


def test_run_preview_failures(fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The removal guard: pulumi exits 1 and its JSON carries the reason.
    _fake(monkeypatch, PREVIEWS / "removal-guard-key.json", 1)
    assert plan_comment.run_preview("dev").errors[0].startswith("codewiser-infisical: codewiser: SENDGRID_API_KEY")
    # pulumi fails before printing any JSON (no such stack): its stderr is the message.
    empty = fake_pulumi / "empty"
    empty.write_text("")
    _fake(monkeypatch, empty, 255, "error: no stack named 'dev' found")
    assert plan_comment.run_preview("dev").errors == ("error: no stack named 'dev' found",)
    # Exit status 1 with JSON but no error diagnostic: still a failure.
    _fake(monkeypatch, PREVIEWS / "change-value.json", 1, "error: something else")
    assert plan_comment.run_preview("dev").errors == ("error: something else",)


def test_run_preview_without_pulumi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert plan_comment.run_preview("dev").errors[0].startswith("cannot run pulumi")

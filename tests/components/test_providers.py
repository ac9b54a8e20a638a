"""Every provider's `check` and `diff`, called directly as the engine calls them (no engine, no store):
what the preview refuses, and what it shows as a change, a replacement or nothing.

In `check`, ``olds`` are the last inputs; in `diff`, the state's outputs (what the last write recorded).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import pytest
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider

from components import providers
from tenant_secrets.engine import contract as c
from tenant_secrets.engine.reconcile import desired_fingerprints
from tenant_secrets.secret.values import fingerprint, fingerprint_key
from tenant_secrets.stack.config import StackConfig
from tenant_secrets.tenants_file.sources import ConfigSource, describe

DERIVATION = bytes(range(32)).hex()  # a fake derivation key (not a repeated pattern, which is refused)
FP_KEY = fingerprint_key(bytes.fromhex(DERIVATION))
VALUES = {"STRIPE_SECRET_KEY": "fake-stripe-0001", "WEBHOOK_SECRET": "fake-webhook-0001"}

P = TypeVar("P", bound=ResourceProvider)


def configured(provider: P) -> P:
    """As the engine hands it the stack's config (namespaced keys, string values)."""
    raw = {
        "tenant-secrets:derivationKey": DERIVATION,
        "tenant-secrets:masterKeys": json.dumps({"v1": bytes(range(32, 64)).hex()}),
    }
    provider.configure(ConfigureRequest(Config(raw, "tenant-secrets")))
    return provider


def sources(owner: str, values: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {key: describe(ConfigSource((owner, key))) for key in values}


def folder_inputs(values: Mapping[str, str] = VALUES, /, **over: Any) -> dict[str, Any]:
    owner, decommissioned = over.pop("owner", "acme"), over.pop("decommissioned", [])
    declared = desired_fingerprints(owner, values, FP_KEY)
    inputs = c.FolderInputs(owner, "dev", f"/tenants/{owner}", False, decommissioned, declared, sources(owner, values))
    return {**inputs.props(), **over}


def folder_state(values: Mapping[str, str] = VALUES, /, **over: Any) -> dict[str, Any]:
    """What InfisicalFolderProvider._write records after writing ``values``."""
    written = desired_fingerprints("acme", values, FP_KEY)
    outs = {c.OWNER: "acme", c.ENVIRONMENT: "dev", c.PATH: "/tenants/acme", c.DECOMMISSION: False}
    return {**outs, c.RECORDED_FINGERPRINTS: written, c.WRITTEN_FINGERPRINTS: written, **over}


def rows_inputs(values: Mapping[str, str] = VALUES, /, **over: Any) -> dict[str, Any]:
    decommissioned = over.pop("decommissioned", [])
    declared = desired_fingerprints("acme", values, FP_KEY)
    inputs = c.TenantRowsInputs("acme", False, decommissioned, "", "", "Acme", declared, sources("acme", values))
    return {**inputs.props(), **over}


def rows_state(values: Mapping[str, str] = VALUES, /, **over: Any) -> dict[str, Any]:
    """What DatabaseTenantProvider._outputs records after writing ``values``."""
    outs = {c.OWNER: "acme", c.DECOMMISSION: False, c.COMPANY_ID: "00000000-0000-4000-8000-000000000001"}
    outs |= {c.COMPANY_NAME: "Acme", c.TABLE_PREFIX: ""}
    return {**outs, c.RECORDED_FINGERPRINTS: desired_fingerprints("acme", values, FP_KEY), **over}


def failures(result: Any) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in result.failures]


def changes(result: Any) -> tuple[bool | None, list[str]]:
    return result.changes, list(result.replaces or [])


# --- InfisicalFolderProvider ----------------------------------------------------------------------------


def test_folder_check_passes_the_inputs_through_unchanged() -> None:
    news = folder_inputs()
    result = configured(providers.InfisicalFolderProvider()).check(folder_inputs(), news)
    assert (result.inputs, result.failures) == (news, [])


def test_folder_check_refuses_a_key_dropped_without_its_marker_and_names_the_marker() -> None:
    news = folder_inputs({"STRIPE_SECRET_KEY": VALUES["STRIPE_SECRET_KEY"]})
    [(prop, reason)] = failures(configured(providers.InfisicalFolderProvider()).check(folder_inputs(), news))
    assert prop == ""  # no property: the engine would print its value beside the reason
    assert reason.startswith("acme: WEBHOOK_SECRET is no longer declared in tenants.yaml")
    assert "`WEBHOOK_SECRET: {decommission: true}`" in reason


def test_folder_check_accepts_a_key_dropped_with_its_marker_and_a_whole_decommissioned_owner() -> None:
    provider = configured(providers.InfisicalFolderProvider())
    marked = folder_inputs({"STRIPE_SECRET_KEY": VALUES["STRIPE_SECRET_KEY"]}, decommissioned=["WEBHOOK_SECRET"])
    assert failures(provider.check(folder_inputs(), marked)) == []
    gone = folder_inputs({}, **{c.DECOMMISSION: True})
    assert failures(provider.check(folder_inputs(), gone)) == []


def test_folder_check_refuses_a_path_outside_the_owners_folder() -> None:
    news = folder_inputs(**{c.PATH: "/tenants/../hono-api"})
    [(prop, reason)] = failures(configured(providers.InfisicalFolderProvider()).check({}, news))
    assert (prop, reason) == ("path", "acme: the folder path '/tenants/../hono-api' is neither /tenants/acme nor /acme")


def test_folder_diff_of_nothing_changed_is_no_change() -> None:
    diff = configured(providers.InfisicalFolderProvider()).diff("dev:/tenants/acme", folder_state(), folder_inputs())
    assert changes(diff) == (False, [])


def test_folder_diff_of_a_declared_value_lets_the_engine_name_the_key() -> None:
    news = folder_inputs({**VALUES, "WEBHOOK_SECRET": "fake-webhook-0002"})
    diff = configured(providers.InfisicalFolderProvider()).diff("dev:/tenants/acme", folder_state(), news)
    assert changes(diff) == (None, [])  # "unknown": the engine diffs the inputs and names WEBHOOK_SECRET


def test_folder_diff_of_drift_found_by_a_refresh_is_a_change() -> None:
    drifted = desired_fingerprints("acme", {**VALUES, "WEBHOOK_SECRET": "changed-by-hand"}, FP_KEY)
    olds = folder_state(**{c.RECORDED_FINGERPRINTS: drifted})
    diff = configured(providers.InfisicalFolderProvider()).diff("dev:/tenants/acme", olds, folder_inputs())
    assert changes(diff) == (True, [])


def test_folder_diff_of_a_decommissioned_key_still_held_is_a_change() -> None:
    news = folder_inputs({"STRIPE_SECRET_KEY": VALUES["STRIPE_SECRET_KEY"]}, decommissioned=["WEBHOOK_SECRET"])
    diff = configured(providers.InfisicalFolderProvider()).diff("dev:/tenants/acme", folder_state(), news)
    assert changes(diff) == (None, [])  # a declared change: the engine names WEBHOOK_SECRET and decommissioned


@pytest.mark.parametrize(("field", "value"), [(c.PATH, "/acme"), (c.ENVIRONMENT, "prod")])
def test_folder_diff_of_a_new_path_or_environment_replaces_it_deleting_first(field: str, value: str) -> None:
    diff = configured(providers.InfisicalFolderProvider()).diff(
        "dev:/tenants/acme", folder_state(), folder_inputs(**{field: value})
    )
    assert changes(diff) == (True, [field])
    assert diff.delete_before_replace is True


# --- DatabaseTenantProvider -----------------------------------------------------------------------------


def test_rows_check_refuses_a_key_dropped_without_its_marker_and_accepts_it_with() -> None:
    provider = configured(providers.DatabaseTenantProvider())
    kept = {"STRIPE_SECRET_KEY": VALUES["STRIPE_SECRET_KEY"]}
    [(_, reason)] = failures(provider.check(rows_inputs(), rows_inputs(kept)))
    assert reason.startswith("acme: WEBHOOK_SECRET is no longer declared")
    assert failures(provider.check(rows_inputs(), rows_inputs(kept, decommissioned=["WEBHOOK_SECRET"]))) == []


def test_rows_diff_of_nothing_changed_is_no_change() -> None:
    diff = configured(providers.DatabaseTenantProvider()).diff("cid", rows_state(), rows_inputs())
    assert changes(diff) == (False, [])


def test_rows_diff_of_a_changed_value_or_a_new_company_is_a_change() -> None:
    provider = configured(providers.DatabaseTenantProvider())
    changed = rows_inputs({**VALUES, "STRIPE_SECRET_KEY": "fake-stripe-0002"})
    assert changes(provider.diff("cid", rows_state(), changed)) == (True, [])
    moved = rows_inputs(**{c.COMPANY_ID: "00000000-0000-4000-8000-000000000002"})
    assert changes(provider.diff("cid", rows_state(), moved)) == (True, [])


def test_rows_diff_of_a_decommissioned_tenant_is_a_change() -> None:
    news = rows_inputs({}, **{c.DECOMMISSION: True})
    assert changes(configured(providers.DatabaseTenantProvider()).diff("cid", rows_state(), news)) == (True, [])


@pytest.mark.parametrize(("field", "value"), [(c.TABLE_PREFIX, "app_"), (c.OWNER, "acme2")])
def test_rows_diff_of_a_new_table_prefix_or_owner_replaces_them_deleting_first(field: str, value: str) -> None:
    diff = configured(providers.DatabaseTenantProvider()).diff("cid", rows_state(), rows_inputs(**{field: value}))
    assert changes(diff) == (True, [field])
    assert diff.delete_before_replace is True


# --- MasterKeyProvider -----------------------------------------------------------------------------------


def publication(**keys: str) -> dict[str, Any]:
    declared = {key: fingerprint(FP_KEY, "hono-api", key, value) for key, value in sorted(keys.items())}
    return c.PublicationInputs("hono-api", "dev", "/hono-api", None, declared).props()


def published(**keys: str) -> dict[str, Any]:
    inputs = publication(**keys)
    return {**inputs, c.WRITTEN_FINGERPRINTS: inputs[c.DECLARED_FINGERPRINTS]}


def test_publication_check_passes_the_inputs_through() -> None:
    news = publication(MASTER_ENCRYPTION_KEY_V1="ab" * 32)
    result = configured(providers.MasterKeyProvider()).check(publication(), news)
    assert (result.inputs, result.failures) == (news, [])


def test_publication_diff_of_the_same_keys_is_no_change() -> None:
    same = publication(MASTER_ENCRYPTION_KEY_V1="ab" * 32)
    diff = configured(providers.MasterKeyProvider()).diff("id", published(MASTER_ENCRYPTION_KEY_V1="ab" * 32), same)
    assert changes(diff) == (False, [])


def test_publication_diff_of_a_new_version_names_it_and_of_drift_is_a_change() -> None:
    provider = configured(providers.MasterKeyProvider())
    olds = published(MASTER_ENCRYPTION_KEY_V1="ab" * 32)
    both = publication(MASTER_ENCRYPTION_KEY_V1="ab" * 32, MASTER_ENCRYPTION_KEY_V2="cd" * 32)
    assert changes(provider.diff("id", olds, both)) == (None, [])
    drifted = {**olds, c.RECORDED_FINGERPRINTS: {"MASTER_ENCRYPTION_KEY_V1": "changed-by-hand"}}
    assert changes(provider.diff("id", drifted, publication(MASTER_ENCRYPTION_KEY_V1="ab" * 32))) == (True, [])


def test_publication_diff_of_another_key_folder_replaces_it() -> None:
    news = {**publication(MASTER_ENCRYPTION_KEY_V1="ab" * 32), c.PATH: "/api"}
    diff = configured(providers.MasterKeyProvider()).diff("id", published(MASTER_ENCRYPTION_KEY_V1="ab" * 32), news)
    assert changes(diff) == (True, [c.PATH])


# --- DatabaseSchemaProvider ------------------------------------------------------------------------------


def schema_props(**over: Any) -> dict[str, Any]:
    settings = c.SchemaSettings("0007_versions", "", True, False, False, 500, None, None, None, None)
    return {**settings.props(key_version=1, key_versions=["1"]), **over}


def test_schema_check_passes_the_inputs_through() -> None:
    result = configured(providers.DatabaseSchemaProvider()).check(schema_props(), schema_props())
    assert (result.inputs, result.failures) == (schema_props(), [])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (c.SCHEMA_VERSION, "0008_next"),
        (c.TABLE_PREFIX, "app_"),
        (c.KEY_VERSION, 2),
        (c.KEY_VERSIONS, ["1", "2"]),
        (c.ROTATION_PENDING, True),
        (c.APP_ROLE, "app"),
        (c.APP_ROLE_PASSWORD, "fake-password-0001"),
    ],
)
def test_schema_diff_of_a_watched_setting_is_an_update_never_a_replacement(field: str, value: Any) -> None:
    news = schema_props(**{field: value})
    diff = configured(providers.DatabaseSchemaProvider()).diff("company_secrets", schema_props(), news)
    assert changes(diff) == (True, [])


def test_schema_diff_of_the_batch_size_or_the_rows_rotated_alone_is_no_change() -> None:
    provider = configured(providers.DatabaseSchemaProvider())
    olds = schema_props(**{c.ROWS_ROTATED: 12})
    assert changes(provider.diff("company_secrets", olds, schema_props(**{c.ROTATION_BATCH_SIZE: 50}))) == (False, [])


# --- RegistryProvider ------------------------------------------------------------------------------------


def registry(owners: list[str], decommissioned: list[str] = []) -> dict[str, Any]:  # noqa: B006 - read only
    return c.RegistryInputs(owners, decommissioned).props()


def test_registry_check_refuses_an_owner_gone_without_its_marker() -> None:
    [(prop, reason)] = failures(providers.RegistryProvider().check(registry(["acme", "globex"]), registry(["acme"])))
    assert prop == ""
    assert reason.startswith("globex is no longer declared in tenants.yaml")


def test_registry_check_on_a_regions_stack_names_the_regions_marker() -> None:
    gone = c.RegistryInputs(["acme"], [], region="eu").props()
    [(_, reason)] = failures(providers.RegistryProvider().check(registry(["acme", "globex"]), gone))
    assert reason.startswith("globex is no longer declared in region eu") and "`decommission: [eu]`" in reason


def test_registry_check_accepts_a_decommissioned_owner_and_a_first_run() -> None:
    provider = providers.RegistryProvider()
    assert failures(provider.check(registry(["acme", "globex"]), registry(["acme"], ["globex"]))) == []
    assert failures(provider.check({}, registry(["acme"]))) == []


def test_registry_diff_is_a_change_of_its_lists_only() -> None:
    provider = providers.RegistryProvider()
    assert provider.diff("registry", registry(["acme"]), registry(["acme"])).changes is False
    assert provider.diff("registry", registry(["acme"]), registry(["acme", "globex"])).changes is True
    assert provider.diff("registry", registry(["acme"], []), registry(["acme"], ["old"])).changes is True


# --- the stack's explicit provider ------------------------------------------------------------------------


@pytest.mark.parametrize("dynamic", [False, True], ids=["plugin", "dynamic provider of an older state"])
def test_with_the_stacks_provider_a_diff_reads_no_config_and_a_setting_is_read_from_the_stack(
    monkeypatch: pytest.MonkeyPatch, dynamic: bool
) -> None:
    """The explicit provider hands `configure` the stack's name only (its inputs are in the state); the
    config is read from the stack when a call needs a setting, never by a diff."""
    read: list[str] = []

    def stack_config(stack: str) -> StackConfig:
        read.append(stack)
        return StackConfig({"derivationKey": DERIVATION, "environment": "dev"}, {})

    monkeypatch.setattr(providers, "_stack_config", stack_config)
    provider = providers.InfisicalFolderProvider()
    if dynamic:
        provider.configure(ConfigureRequest(Config({c.DYNAMIC_PROVIDER_STACK: "dev"}, "tenant-secrets")))
    else:
        provider.use_stack("dev")
    changed = folder_inputs({**VALUES, "WEBHOOK_SECRET": "fake-webhook-0002"})
    assert changes(provider.diff("dev:/tenants/acme", folder_state(), changed)) == (None, [])
    assert failures(provider.check(folder_inputs(), changed)) == []
    assert read == []
    assert provider._fingerprint_key() == FP_KEY
    assert read == ["dev"]

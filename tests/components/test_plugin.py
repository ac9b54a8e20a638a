"""The provider plugin's answers as the engine receives them (no engine, no store): what a preview names
per key, a declared change and drift alike, what replaces, and how an error of ours is reported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pulumi.provider.experimental import provider as p

from components import plugin, providers
from tenant_secrets.engine import contract as c
from tenant_secrets.engine.property_diff import PropertyChange, detailed_diff
from tests.components.test_providers import VALUES, folder_inputs, folder_state, rows_inputs, rows_state

STACK = "urn:pulumi:dev::tenant-secrets::"
FOLDER_URN = f"{STACK}tenant-secrets:index:InfisicalSecrets$tenant-secrets:index:InfisicalFolder::acme-infisical"
ROWS_URN = f"{STACK}tenant-secrets:index:DatabaseSecrets$tenant-secrets:index:DatabaseTenant::acme-database"


def diff(urn: str, old_inputs: dict[str, Any], old_state: dict[str, Any], news: dict[str, Any]) -> p.DiffResponse:
    """As the servicer calls the provider: the old inputs beside the request, the rest in it."""

    async def call() -> p.DiffResponse:
        plugin._OLD_INPUTS.set(plugin.wrap_map(old_inputs))
        request = p.DiffRequest(urn, "dev:/tenants/acme", plugin.wrap_map(old_state), plugin.wrap_map(news), [])
        return await plugin.TenantSecretsProvider().diff(request)

    return asyncio.run(call())


def named(response: p.DiffResponse) -> dict[str, tuple[p.PropertyDiffKind, bool]]:
    return {path: (d.kind, d.input_diff) for path, d in (response.detailed_diff or {}).items()}


def test_a_declared_change_is_named_by_its_key_only() -> None:
    changed = {**VALUES, "WEBHOOK_SECRET": "fake-webhook-0002"}
    response = diff(FOLDER_URN, folder_inputs(), folder_state(), folder_inputs(changed))
    assert response.changes is True
    assert named(response) == {"fingerprints.WEBHOOK_SECRET": (p.PropertyDiffKind.UPDATE, False)}
    assert response.replaces == []


def test_drift_found_by_a_refresh_is_named_by_the_key_it_hit() -> None:
    """Nothing declared changed: the recorded fingerprint (what the store held) is not the declared one."""
    drifted = folder_state()
    drifted[c.RECORDED_FINGERPRINTS] = {**drifted[c.RECORDED_FINGERPRINTS], "STRIPE_SECRET_KEY": "changed-by-hand"}
    response = diff(FOLDER_URN, folder_inputs(), drifted, folder_inputs())
    assert response.changes is True
    assert named(response) == {"fingerprints.STRIPE_SECRET_KEY": (p.PropertyDiffKind.UPDATE, False)}


def test_a_key_added_and_a_key_removed_with_its_marker() -> None:
    added = diff(ROWS_URN, rows_inputs(), rows_state(), rows_inputs({**VALUES, "PLAN": "pro"}))
    assert named(added) == {
        "fingerprints.PLAN": (p.PropertyDiffKind.ADD, False),
        "sources.PLAN": (p.PropertyDiffKind.ADD, True),
    }
    kept = {"STRIPE_SECRET_KEY": VALUES["STRIPE_SECRET_KEY"]}
    removed = diff(ROWS_URN, rows_inputs(), rows_state(), rows_inputs(kept, decommissioned=["WEBHOOK_SECRET"]))
    assert named(removed) == {
        "decommissioned": (p.PropertyDiffKind.UPDATE, True),
        "fingerprints.WEBHOOK_SECRET": (p.PropertyDiffKind.DELETE, False),
        "sources.WEBHOOK_SECRET": (p.PropertyDiffKind.DELETE, True),
    }


def test_nothing_changed_is_no_change_even_with_an_older_states_own_properties() -> None:
    """A resource made by the dynamic provider still holds its pickled provider: not an input of ours."""
    old_inputs = {**folder_inputs(), "__provider": "<pickled>"}
    response = diff(FOLDER_URN, old_inputs, {**folder_state(), "__provider": "<pickled>"}, folder_inputs())
    assert response.changes is False
    assert detailed_diff(old_inputs, folder_inputs(), recorded={"fingerprints": folder_state()["fingerprints"]}) == {}


def test_a_moved_folder_is_replaced_and_says_by_what() -> None:
    moved = folder_inputs(environment="prod")
    response = diff(FOLDER_URN, folder_inputs(), folder_state(), moved)
    assert response.replaces == ["environment"]
    assert response.delete_before_replace is True
    assert named(response) == {"environment": (p.PropertyDiffKind.UPDATE_REPLACE, True)}


def test_a_key_that_is_not_an_identifier_gets_a_quoted_path() -> None:
    changes = detailed_diff({"fingerprints": {}}, {"fingerprints": {"a.b": "fp"}})
    assert changes == {'fingerprints["a.b"]': PropertyChange("add", replace=False, input_diff=True)}


def test_a_provider_without_its_stack_refuses_to_serve() -> None:
    """A default provider would record the package's config in the state: refused, not served."""
    request = p.ConfigureRequest({}, {}, accept_secrets=True, accept_resources=False)
    with pytest.raises(providers.ProviderError, match="explicit provider"):
        asyncio.run(plugin.TenantSecretsProvider().configure(request))


class _Aborted(Exception):
    pass


class _Context:
    """What `_reported` uses of a gRPC servicer context."""

    def __init__(self) -> None:
        self.details: str | None = None

    async def abort(self, _code: Any, details: str) -> None:
        self.details = details
        raise _Aborted


def _framework_error(inner: Exception) -> Exception:
    """What the SDK's servicer raises for a provider's error: a new exception, raised while handling the
    provider's, with the traceback in its text."""
    wrapped = Exception(f"{inner}:\n  File ...traceback...")
    wrapped.__context__ = inner
    return wrapped


def test_an_error_of_ours_is_its_one_line_and_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(providers.DEBUG_VAR, raising=False)

    async def failing(err: Exception) -> None:
        raise _framework_error(err)

    context = _Context()
    with pytest.raises(_Aborted):
        asyncio.run(plugin._reported(failing(providers.ProviderError("acme, infisical: denied")), context))
    assert context.details == "acme, infisical: denied"

    bug = _Context()
    with pytest.raises(Exception, match="traceback"):
        asyncio.run(plugin._reported(failing(KeyError("owner")), bug))
    assert bug.details is None

"""The unfinished-reshard marker in a checkpoint (tenant_secrets/stack/reshard_marker.py)."""

from __future__ import annotations

from typing import Any

from tenant_secrets.stack.reshard_marker import PROVIDER_TYPE, clear, finish_command, mark, marked, refusal

COMMAND = finish_command("prod", 1, 3)


def deployment() -> dict[str, Any]:
    provider = "urn:pulumi:prod::tenant-secrets::pulumi:providers:tenant-secrets::tenant-secrets"
    return {
        "resources": [
            {"urn": "urn:pulumi:prod::tenant-secrets::pulumi:pulumi:Stack::tenant-secrets-prod", "type": "x"},
            {"urn": provider, "type": PROVIDER_TYPE, "inputs": {"stack": "prod"}, "outputs": {"stack": "prod"}},
        ]
    }


def test_a_marked_stack_is_refused_with_the_command_that_finishes_the_reshard() -> None:
    state = deployment()
    assert marked(state) is None
    assert mark(state, COMMAND) and not mark(state, COMMAND)
    assert marked(state) == "tenantctl reshard --environment prod --from 1 --to 3"
    provider = state["resources"][1]
    line = refusal("prod-03", provider["inputs"])
    assert line == (
        "stack prod-03: a reshard is unfinished, tenants may be half-moved between this stack and another; "
        "nothing was changed. Finish it first: `tenantctl reshard --environment prod --from 1 --to 3`"
    )
    assert clear(state) and not clear(state)
    assert marked(state) is None and refusal("prod-03", provider["inputs"]) is None
    assert provider["inputs"] == provider["outputs"] == {"stack": "prod"}


def test_a_stack_never_applied_has_no_provider_to_mark() -> None:
    assert not mark({"resources": []}, COMMAND)

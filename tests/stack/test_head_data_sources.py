"""Issue 26: what value sources may read is the base branch's decision, never a pull request's: a head whose
stack file adds, changes or removes envAllow or sharedFolders is not data a trusted preview takes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tenant_secrets.stack.head_data import stack_file_problems

BASE: dict[str, Any] = {
    "config": {
        "tenant-secrets:environment": "prod",
        "tenant-secrets:envAllow": ["RESEND_API_KEY"],
        "tenant-secrets:sharedFolders": ["/shared/stripe"],
    }
}


def head(**config: Any) -> dict[str, Any]:
    changed = copy.deepcopy(BASE)
    changed["config"].update(config)
    return changed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("tenant-secrets:envAllow", ["RESEND_API_KEY", "STRIPE_*"]),
        ("tenant-secrets:envAllow", ["INFISICAL_CLIENT_SECRET"]),
        ("tenant-secrets:envAllow", "RESEND_API_KEY"),
        ("tenant-secrets:sharedFolders", ["/shared/stripe", "/payments"]),
        ("tenant-secrets:sharedFolders", ["/"]),
    ],
)
def test_a_head_that_changes_what_sources_may_read_is_refused(key: str, value: Any) -> None:
    [problem] = stack_file_problems("prod", BASE, head(**{key: value}))
    assert problem.startswith(f"Pulumi.prod.yaml: `{key}` differs from the base branch's")
    assert "previewed only after approval or merge" in problem


@pytest.mark.parametrize("key", ["tenant-secrets:envAllow", "tenant-secrets:sharedFolders"])
def test_a_head_that_adds_or_removes_the_setting_is_refused(key: str) -> None:
    without = copy.deepcopy(BASE)
    del without["config"][key]
    [added] = stack_file_problems("prod", without, BASE)
    assert added.startswith(f"Pulumi.prod.yaml: `{key}` differs from the base branch's")
    [removed] = stack_file_problems("prod", BASE, without)
    assert removed == f"Pulumi.prod.yaml: `{key}` was removed; it is previewed only after approval or merge"


def test_the_same_settings_as_the_base_are_taken() -> None:
    assert stack_file_problems("prod", BASE, copy.deepcopy(BASE)) == []

"""The program's own errors, as a reviewer reads them in a preview's output and the pull request's comment:
short at any number of tenants, every one listed by `tenantctl validate`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulumi
import pytest

from components.program import SHOWN_ISSUES, load_plan
from tenant_secrets.stack.settings import StackSettings


def test_many_tenants_reading_a_variable_the_stack_does_not_allow_fail_in_a_short_message(tmp_path: Path) -> None:
    count = 40
    tenants = ["version: 1", "defaults: {storage: infisical, environments: [dev]}", "tenants:"]
    for i in range(count):
        tenants += [
            f"  - subdomain: t{i:03d}",
            "    secrets:",
            f"      API_KEY: {{from: env, var: NOT_ALLOWED_{i:03d}}}",
        ]
    file = tmp_path / "tenants.yaml"
    file.write_text("\n".join(tenants) + "\n")
    config = {"derivationKey": os.urandom(32).hex(), "envAllow": json.dumps(["OTHER_*"]), "tenantsFile": str(file)}
    settings = StackSettings.load(config.get, stack="dev")
    assert str(settings.tenants_file) == str(file)

    with pytest.raises(pulumi.RunError) as failed:
        load_plan(settings)
    lines = str(failed.value).splitlines()
    assert len(lines) == 1 + SHOWN_ISSUES + 1, lines
    assert all("which tenant-secrets:envAllow does not allow" in line for line in lines[1:-1])
    assert lines[-1] == (
        f"... and {count - SHOWN_ISSUES} more: `tenantctl validate {file} --stack {pulumi.get_stack()}` lists every one"
    )

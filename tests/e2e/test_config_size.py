"""Issue 26, item 11 on the real engine: a stack config over the 128 KiB the engine can start the program
with (one environment variable, PULUMI_CONFIG) makes every preview fail with `argument list too long`
and no key named; `tenantctl validate --stack` names the largest values and the limit first, and while
the config still fits the program warns as it nears the limit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest
from pulumi import automation as auto

from tests.e2e.conftest import Project, configure
from tests.e2e.steps import Step, run_steps, tenantctl

pytestmark = [pytest.mark.e2e, pytest.mark.long]

OWNERS = ("big0", "big1", "big2")
TEXT = "version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n" + "".join(
    f"  - subdomain: {owner}\n    secrets:\n      CERT: {{from: config}}\n" for owner in OWNERS
)


def value(owner: str, size: int) -> str:
    return f"fake-{owner}-".ljust(size, "-")


def set_values(size: int) -> Callable[[Project], None]:
    """Each tenant's CERT set as a user sets a large value: from stdin (on the command line, a value this
    size is itself `argument list too long`)."""

    def set_them(project: Project) -> None:
        for owner in OWNERS:
            done = subprocess.run(
                ["pulumi", "config", "set", "--secret", "--path", f"tenant-secrets:secrets.{owner}.CERT"],
                input=value(owner, size),
                cwd=project.root,
                env={**os.environ, **project.env},
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr

    return set_them


def validate_refuses(project: Project, stack: auto.Stack) -> None:
    done = tenantctl(project, "validate", "--stack", "dev")
    assert done.returncode == 1
    assert done.stdout.startswith("Pulumi.dev.yaml:")
    assert ": config.tenant-secrets:secrets.big0.CERT: the config needs at least 180 KiB in PULUMI_CONFIG, " in (
        done.stdout
    )
    assert "over the 128 KiB Linux allows one environment variable" in done.stdout
    assert "largest: secrets.big0.CERT (60 KiB), secrets.big1.CERT (60 KiB)" in done.stdout


def validate_passes(project: Project, stack: auto.Stack) -> None:
    done = tenantctl(project, "validate", "--stack", "dev")
    assert done.returncode == 0, done.stdout


def test_a_config_too_large_for_the_engine_is_named_before_a_run(project: Project, master_key: str) -> None:
    project.write_tenants(TEXT)
    stack = project.stack("dev")
    configure(stack, secrets_config={}, master_keys={"v1": master_key})
    steps = [
        Step(
            "three values of 60 KiB: validate names the largest and the limit; a preview fails as it said",
            by_hand=set_values(60 * 1024),
            before=validate_refuses,
            preview_fails=["argument list too long"],
            up=False,
        ),
        Step(
            "shrunk to 40 KiB each: valid, and the up warns that the config nears the limit",
            by_hand=set_values(40 * 1024),
            before=validate_passes,
            shows=[r"the stack's config takes 12\d KiB of the 128 KiB the engine can start the program with"],
            folders={f"/tenants/{owner}": {"CERT": value(owner, 40 * 1024)} for owner in OWNERS},
        ),
    ]
    run_steps(project, stack, steps, "a config too large for the engine")

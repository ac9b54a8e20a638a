"""Issue 13, item 10: verbose engine logging is detected, and each provider keeps only the settings it needs."""

from __future__ import annotations

import json
import os
import sys

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components import providers
from tenant_secrets.engine.verbose_logs import ancestor_command_lines, verbose_logging

PULUMI = "pulumi"
HOST = "bin/pulumi-language-python"


@pytest.mark.parametrize(
    ("environ", "argv", "reason"),
    [
        ({}, [PULUMI, "up", "--yes", "--stack", "dev"], None),
        ({}, [PULUMI, "up", "-v=9"], "`pulumi` runs with -v=9"),
        ({}, [PULUMI, "up", "-v", "3", "--stack", "dev"], "`pulumi` runs with -v 3"),
        ({}, [PULUMI, "preview", "--verbose=1"], "`pulumi` runs with --verbose=1"),
        ({}, [PULUMI, "preview", "-v5"], "`pulumi` runs with -v5"),
        ({}, [PULUMI, "up", "--logflow"], "`pulumi` runs with --logflow"),
        ({}, [PULUMI, "up", "-v=0"], None),
        ({}, [HOST, "--logtostderr", "-v=9", "127.0.0.1:4242"], "`pulumi-language-python` runs with -v=9"),
        ({}, ["python3", "-v", "script.py"], None),  # not an engine process
        ({"PULUMI_DEBUG_GRPC": "grpc.json"}, [PULUMI, "up"], "the environment variable PULUMI_DEBUG_GRPC is set"),
        ({"PULUMI_DEBUG_GRPC": ""}, [PULUMI, "up"], None),
    ],
)
def test_verbose_engine_logging_is_named(environ: dict[str, str], argv: list[str], reason: str | None) -> None:
    assert verbose_logging(environ, [["python3", "-u", "__main__.py"], argv]) == reason


def test_the_ancestors_are_read_from_proc() -> None:
    lines = ancestor_command_lines()
    assert lines[0][0] == sys.executable or os.path.basename(lines[0][0]).startswith("python")
    assert len(lines) >= 2  # pytest's own parent at least


def test_each_provider_keeps_only_what_it_uses() -> None:
    master, derivation = os.urandom(32).hex(), os.urandom(32).hex()
    raw = {
        "tenant-secrets:masterKeys": json.dumps({"v1": master}),
        "tenant-secrets:derivationKey": derivation,
        "tenant-secrets:secrets": json.dumps({"acme": {"STRIPE_SECRET_KEY": "fake-acme-stripe-canary"}}),
        "tenant-secrets:appRolePassword": "fake-app-role-password-canary",
    }
    folder, tenant = providers.InfisicalFolderProvider(), providers.DatabaseTenantProvider()
    schema, publication = providers.DatabaseSchemaProvider(), providers.MasterKeyProvider()
    for provider in (folder, tenant, schema, publication):
        provider.configure(ConfigureRequest(Config(raw, "tenant-secrets")))
    assert master not in repr(vars(folder)) and derivation in repr(vars(folder))
    assert master in repr(vars(tenant))  # the database's providers encrypt: they need the keys
    # the tenants' values are resolved at write time by the providers that write them, and only by them
    assert "fake-acme-stripe-canary" in repr(vars(folder)) and "fake-acme-stripe-canary" in repr(vars(tenant))
    assert "fake-acme-stripe-canary" not in repr(vars(schema)) + repr(vars(publication))
    assert "fake-app-role-password-canary" in repr(vars(schema))
    assert "fake-app-role-password-canary" not in repr(vars(folder)) + repr(vars(tenant)) + repr(vars(publication))

"""Issue 13, item 10 and issue 26, item 3: every engine channel that records gRPC payloads (verbose logs,
tracing) is detected, and each provider keeps only the settings it needs."""

from __future__ import annotations

import json
import os
import sys

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components import providers
from tenant_secrets.engine.verbose_logs import ancestor_command_lines, payload_recording

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
    assert payload_recording(environ, [["python3", "-u", "__main__.py"], argv]) == reason


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        ([PULUMI, "up", "--tracing=file:/tmp/trace.out"], "--tracing=file:/tmp/trace.out"),
        ([PULUMI, "up", "--tracing", "file:trace.out", "--yes"], "--tracing file:trace.out"),
        ([PULUMI, "preview", "--tracing=file:///tmp/t"], "--tracing=file:///tmp/t"),
        ([PULUMI, "up", "--tracing", "tcp://collector:7777"], "--tracing tcp://collector:7777"),
        (
            [PULUMI, "up", "--tracing=https://zipkin.example/api/v2/spans"],
            "--tracing=https://zipkin.example/api/v2/spans",
        ),
        ([PULUMI, "--tracing", "file:t", "up"], "--tracing file:t"),  # a root flag, before the command
        ([PULUMI, "up", "--otel-traces=file:///tmp/otel.json"], "--otel-traces=file:///tmp/otel.json"),
        ([PULUMI, "up", "--otel-traces", "grpc://collector:4317"], "--otel-traces grpc://collector:4317"),
        ([PULUMI, "up", "--logflow", "--tracing=file:t"], "--logflow"),
        # what the engine hands the language host and each plugin: a proxy endpoint, and Go's one-dash spellings
        ([HOST, "--tracing", "tcp://127.0.0.1:41234", "127.0.0.1:4242"], "--tracing tcp://127.0.0.1:41234"),
        ([HOST, "-tracing=tcp://127.0.0.1:41234", "127.0.0.1:4242"], "-tracing=tcp://127.0.0.1:41234"),
        ([HOST, "-tracing", "tcp://127.0.0.1:41234", "127.0.0.1:4242"], "-tracing tcp://127.0.0.1:41234"),
        ([HOST, "-logflow", "127.0.0.1:4242"], "-logflow"),
    ],
)
def test_tracing_is_named_in_every_spelling(argv: list[str], shown: str) -> None:
    command = os.path.basename(argv[0])
    assert payload_recording({}, [["python3", "-u", "__main__.py"], argv]) == f"`{command}` runs with {shown}"


@pytest.mark.parametrize(
    "argv",
    [
        [PULUMI, "up", "--tracing="],  # empty: the engine records nothing
        [PULUMI, "up", "--tracing-header", "x"],
        [PULUMI, "up", "--profiling=/tmp/prof"],  # stacks and sizes, no payload
        [PULUMI, "up", "--logtostderr"],  # where glog writes, not what: level 0 logs no payload
        ["python3", "--tracing", "file:t"],  # not an engine process
    ],
)
def test_channels_that_record_no_payload_are_not_refused(argv: list[str]) -> None:
    assert payload_recording({}, [argv]) is None


def test_the_engine_s_opentelemetry_endpoint_in_the_environment_is_named() -> None:
    environ = {"PULUMI_OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:40001", "PULUMI_LOG_OTLP_ENDPOINT": "127.0.0.1:40002"}
    assert payload_recording(environ, [[PULUMI, "up"]]) == (
        "the environment variable PULUMI_OTEL_EXPORTER_OTLP_ENDPOINT is set"
    )
    assert payload_recording({"PULUMI_LOG_OTLP_ENDPOINT": "127.0.0.1:40002"}, [[PULUMI, "up"]]) is None


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

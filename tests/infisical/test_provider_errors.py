"""Provider errors as the engine shows them: one line naming owner and store, the traceback on request.

The dynamic-provider host reports `traceback.format_exc()` for any exception of a provider method;
components.providers puts a stand-in for `traceback` into the host module. The engine-level check
(a `pulumi up` with Infisical down) is tests/e2e/test_first_week.py.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
import types
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components import providers
from infisical_server.testing import RunningServer

DERIVATION = os.urandom(32).hex()


def folder_provider() -> providers.InfisicalFolderProvider:
    raw = {"tenant-secrets:derivationKey": DERIVATION, "tenant-secrets:masterKeys": json.dumps({})}
    configured = providers.InfisicalFolderProvider()
    configured.configure(ConfigureRequest(Config(raw, "tenant-secrets")))
    return configured


def props(**values: str) -> dict[str, Any]:
    return {"owner": "codewiser", "environment": "dev", "path": "/tenants/codewiser", "decommission": False, **values}


@pytest.fixture
def infisical_down(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "INFISICAL_SITE_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
        "INFISICAL_CLIENT_ID": "fake-client-id",
        "INFISICAL_CLIENT_SECRET": "fake-client-secret-0001",
        "INFISICAL_PROJECT_ID": "fake-project",
        "TENANT_SECRETS_INFISICAL_RETRIES": "attempts=1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(providers, "_local", threading.local())


def host_report(call: Any) -> str:
    """What the host sends the engine for an exception of ``call``: its wrapper's `traceback.format_exc()`,
    with the stand-in the provider module installs in a host module."""
    host = types.ModuleType("fake_host")
    host.DynamicResourceProviderServicer = object  # type: ignore[attr-defined]
    host.traceback = traceback  # type: ignore[attr-defined]
    sys.modules["pulumi.dynamic.__main__"], saved = host, sys.modules.get("pulumi.dynamic.__main__")
    try:
        providers._install_host_traceback()
        try:
            call()
        except Exception:  # the host's own wrapper catches everything
            report: str = host.traceback.format_exc()
            return report
    finally:
        if saved is None:
            del sys.modules["pulumi.dynamic.__main__"]
        else:
            sys.modules["pulumi.dynamic.__main__"] = saved
    raise AssertionError("the call did not fail")


@pytest.mark.usefixtures("infisical_down")
def test_infisical_down_is_one_line_naming_owner_and_store_and_what_to_do() -> None:
    report = host_report(lambda: folder_provider().create(props(STRIPE_SECRET_KEY="fake-stripe-0001")))
    assert "\n" not in report
    assert report.startswith("codewiser, infisical: logging in to http://127.0.0.1:9")
    assert "check that INFISICAL_SITE_URL is right and Infisical is up" in report
    assert "fake-stripe-0001" not in report and "fake-client-secret-0001" not in report


@pytest.mark.usefixtures("infisical_down")
def test_the_traceback_with_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANT_SECRETS_DEBUG", "1")
    report = host_report(lambda: folder_provider().create(props(STRIPE_SECRET_KEY="fake-stripe-0001")))
    assert report.startswith("Traceback (most recent call last)")
    assert "InfisicalError" in report  # the cause, chained
    assert report.rstrip().endswith(
        "check that INFISICAL_SITE_URL is right and Infisical is up; re-running converges "
        "(every write is a difference against what Infisical holds)"
    )


def test_a_bug_keeps_its_traceback() -> None:
    def bug() -> None:
        folder_provider().check({}, {"path": "/tenants/codewiser"})  # no owner: a KeyError, not one of our errors

    report = host_report(bug)
    assert report.startswith("Traceback (most recent call last)")
    assert "KeyError" in report


def test_the_program_process_is_left_alone() -> None:
    """Outside the provider host (`__main__` is pytest here), `traceback` is not replaced anywhere."""
    providers._install_host_traceback()
    assert getattr(sys.modules["__main__"], "traceback", traceback) is traceback


def test_a_wrong_client_secret_is_one_line_saying_what_to_check(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident = server.identity()
    for name, value in {
        "INFISICAL_SITE_URL": server.url,
        "INFISICAL_CLIENT_ID": ident["client_id"],
        "INFISICAL_CLIENT_SECRET": "fake-wrong-client-secret-0001",
        "INFISICAL_PROJECT_ID": ident["project"],
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(providers, "_local", threading.local())
    report = host_report(lambda: folder_provider().create(props(STRIPE_SECRET_KEY="fake-stripe-0001")))
    assert "\n" not in report
    assert report.startswith("codewiser, infisical: Infisical refused logging in")
    assert "401" in report and "check INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET" in report
    assert "fake-wrong-client-secret-0001" not in report

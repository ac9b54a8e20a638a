"""Bounded, jittered retries on 429, 5xx and dropped connections; and what a final failure says."""

from __future__ import annotations

import logging

import pytest

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import InfisicalClient, InfisicalError

BATCH = "/api/v3/secrets/batch/raw"
VALUE = "fake-retry-value-0001"


def test_a_429_storm_is_waited_out(
    client: InfisicalClient, server: RunningServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    client.apply_secrets("dev", path, upsert={"K": "fake-old-value"})
    server.add_fault(BATCH, method="PATCH", status=429, count=3)
    server.reset_requests()
    with caplog.at_level(logging.WARNING, logger="tenant_secrets.infisical"):
        result = client.apply_secrets("dev", path, upsert={"K": VALUE})
    assert result.updated == ("K",)
    assert server.request_counts()[f"PATCH {BATCH}"] == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("429" in w and f"PATCH {BATCH}" in w and "retrying in" in w for w in warnings)
    assert "attempt 1 of 4" in warnings[0]
    assert VALUE not in caplog.text


def test_503s_then_success(client: InfisicalClient, server: RunningServer, path: str) -> None:
    server.add_fault(BATCH, method="POST", status=503, count=2)
    assert client.apply_secrets("dev", path, upsert={"K": VALUE}, existing={}).created == ("K",)
    assert client.get_secret("dev", path, "K") == VALUE


def test_dropped_connections_then_success(client: InfisicalClient, server: RunningServer, path: str) -> None:
    client.apply_secrets("dev", path, upsert={"K": VALUE})
    server.add_fault("/api/v3/secrets/raw", method="GET", drop=True, count=2)  # through the SDK
    server.add_fault(BATCH, method="PATCH", drop=True, count=1)  # through requests
    assert client.list_secrets("dev", path) == {"K": VALUE}
    assert client.apply_secrets("dev", path, upsert={"K": "fake-retry-value-0002"}).updated == ("K",)


def test_hitting_the_bound_raises_without_the_value(
    client: InfisicalClient, server: RunningServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    client.apply_secrets("dev", path, upsert={"K": "fake-before"})
    server.add_fault(BATCH, method="PATCH", status=503, count=100)
    server.reset_requests()
    with caplog.at_level(logging.WARNING), pytest.raises(InfisicalError) as raised:
        client.apply_secrets("dev", path, upsert={"K": VALUE})
    message = str(raised.value)
    assert "failed after 4 attempts" in message
    assert f"dev:{path}" in message
    assert "(K)" in message
    assert "503" in message
    assert "re-running converges" in message
    assert VALUE not in message
    assert VALUE not in caplog.text
    assert (raised.value.environment, raised.value.path, raised.value.keys) == ("dev", path, ("K",))
    assert server.request_counts()[f"PATCH {BATCH}"] == 4


def test_sdk_calls_are_bounded_too(client: InfisicalClient, server: RunningServer, path: str) -> None:
    server.add_fault("/api/v2/folders", method="GET", drop=True, count=100)
    with pytest.raises(InfisicalError, match="connection failed"):
        client.folder_exists("dev", path)
    assert server.request_counts().get("GET /api/v2/folders", 0) >= 4


def test_a_lost_answer_to_an_applied_create_is_recognised(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.ensure_folder("dev", path)
    # The server creates the secrets, then the connection drops before the answer: the retry meets
    # "already exists", and the client checks what the folder now holds instead of failing.
    server.add_fault(BATCH, method="POST", drop=True, after=True)
    result = client.apply_secrets("dev", path, upsert={"A": "fake-a", "B": "fake-b"})
    assert result.created == ("A", "B")
    assert client.list_secrets("dev", path) == {"A": "fake-a", "B": "fake-b"}


def test_a_lost_answer_to_an_applied_delete_is_recognised(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("dev", path, upsert={"A": "fake-a", "B": "fake-b"})
    server.add_fault(BATCH, method="DELETE", status=502, after=True)
    result = client.apply_secrets("dev", path, upsert={"A": "fake-a"}, delete=["B"])
    assert result.deleted == ("B",)
    assert client.list_secrets("dev", path) == {"A": "fake-a"}


def test_an_update_whose_answer_was_lost_is_not_sent_again(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("dev", path, upsert={"K": "fake-before", "L": "fake-same"})
    server.add_fault(BATCH, method="PATCH", status=503, count=1, after=True)  # applied, then the answer lost
    server.reset_requests()
    assert client.apply_secrets("dev", path, upsert={"K": VALUE, "L": "fake-same"}).updated == ("K",)
    assert server.request_counts()[f"PATCH {BATCH}"] == 1
    updates = [e for e in server.audit() if e["action"] == "update-secret" and e["path"] == path]
    assert [e["key"] for e in updates] == ["K"]  # one version added, not two


def test_an_update_that_was_not_applied_is_sent_again(
    client: InfisicalClient, server: RunningServer, path: str
) -> None:
    client.apply_secrets("dev", path, upsert={"K": "fake-before"})
    server.add_fault(BATCH, method="PATCH", status=503, count=2)  # refused before being handled
    server.reset_requests()
    assert client.apply_secrets("dev", path, upsert={"K": VALUE}).updated == ("K",)
    assert server.request_counts()[f"PATCH {BATCH}"] == 3
    assert client.get_secret("dev", path, "K") == VALUE

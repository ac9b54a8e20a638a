"""The environment's proxy settings apply to the client as requests would apply them (read once per client)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from infisical_server.testing import RunningServer
from tenant_secrets.infisical import InfisicalClient, InfisicalError


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)


@pytest.mark.usefixtures("dead_proxy")
def test_a_proxy_in_the_environment_is_used(make_client: Callable[..., InfisicalClient], path: str) -> None:
    with pytest.raises(InfisicalError, match="connection failed"):
        make_client().list_secrets("dev", path)


@pytest.mark.usefixtures("dead_proxy")
def test_no_proxy_exempts_the_infisical_host(
    make_client: Callable[..., InfisicalClient], server: RunningServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", str(urlsplit(server.url).hostname))
    assert make_client().list_secrets("dev", path) == {}

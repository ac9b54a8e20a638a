"""A real server subprocess per test module, an SDK client and a raw-HTTP helper logged in to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from infisical_sdk import InfisicalSDKClient

from infisical_server.testing import RunningServer, start_server
from tests.server.support import Api, login, server_config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("infisical"), server_config())
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _clean_controls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults and settings a test sets must not leak into the next one."""
    yield
    if "server" in request.fixturenames:
        running: RunningServer = request.getfixturevalue("server")
        if running.process.poll() is None:
            running.clear_faults()
            running.settings(
                rate_limits={"read": 0, "write": 0, "secrets": 0},
                rate_limit_window_seconds=60,
                latency_ms=0,
                error_rate=0.0,
            )


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Api:
    return Api(server.url, login(server))


@pytest.fixture(scope="module")
def reader_api(server: RunningServer) -> Api:
    return Api(server.url, login(server, "acme-reader"))


@pytest.fixture(scope="module")
def sdk(server: RunningServer) -> Iterator[InfisicalSDKClient]:
    client = InfisicalSDKClient(host=server.url, cache_ttl=None)
    ident = server.identity()
    client.auth.universal_auth.login(client_id=ident["client_id"], client_secret=ident["client_secret"])
    yield client
    client.close()


@pytest.fixture
def project_id(server: RunningServer) -> str:
    project: str = server.config["projects"][0]["id"]
    return project


@pytest.fixture
def folder(sdk: InfisicalSDKClient, project_id: str) -> str:
    """A fresh folder ``/t<random>`` in dev, so tests sharing a server do not meet each other."""
    name = f"t{uuid.uuid4().hex[:10]}"
    sdk.folders.create_folder(name=name, environment_slug="dev", project_id=project_id, path="/")
    return f"/{name}"

"""A real server per test module, and clients for it with a fast retry policy."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from infisical_server.testing import RunningServer, sample_config, start_server
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials, RetryPolicy

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def credentials(server: RunningServer) -> InfisicalCredentials:
    ident = server.identity()
    return InfisicalCredentials(server.url, ident["client_id"], ident["client_secret"], ident["project"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("infisical"), sample_config())
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _clean_controls(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        running: RunningServer = request.getfixturevalue("server")
        running.clear_faults()


@pytest.fixture
def make_client(server: RunningServer) -> Callable[..., InfisicalClient]:
    def make(retry: RetryPolicy = FAST) -> InfisicalClient:
        return InfisicalClient(credentials(server), retry)

    return make


@pytest.fixture
def client(make_client: Callable[..., InfisicalClient]) -> InfisicalClient:
    return make_client()


@pytest.fixture
def path() -> str:
    """A tenant folder of its own for each test."""
    return f"/tenants/t{uuid.uuid4().hex[:10]}"


def writes(counts: dict[str, int]) -> dict[str, int]:
    """The non-GET requests among a server's request counts."""
    return {route: n for route, n in counts.items() if not route.startswith("GET ")}

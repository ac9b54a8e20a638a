"""One login per process and identity; a new one only when the token expires or is refused."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from infisical_server.testing import sample_config, start_server
from tenant_secrets.infisical import InfisicalClient, transport
from tests.infisical.conftest import FAST, credentials

LOGIN = "POST /api/v1/auth/universal-auth/login"


def test_many_calls_from_many_clients_share_one_login(tmp_path: Path) -> None:
    server = start_server(tmp_path, sample_config())
    try:
        for n in range(3):
            client = InfisicalClient(credentials(server), FAST)
            client.apply_secrets("dev", "/tenants/shared", upsert={f"K{n}": f"fake-value-{n}"})
            client.list_secrets("dev", "/tenants/shared")
            client.folder_exists("dev", "/tenants")
        assert server.request_counts()[LOGIN] == 1
    finally:
        server.stop()


def test_threads_starting_together_share_one_login(tmp_path: Path) -> None:
    server = start_server(tmp_path, sample_config())
    try:
        start = threading.Barrier(6)

        def work(n: int) -> dict[str, str]:
            client = InfisicalClient(credentials(server), FAST)
            start.wait()
            return client.list_secrets("dev", f"/tenants/t{n}")

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(work, range(6))) == [{}] * 6
        assert server.request_counts()[LOGIN] == 1
    finally:
        server.stop()


def test_an_expired_token_is_replaced(tmp_path: Path) -> None:
    server = start_server(tmp_path, sample_config(token_ttl_seconds=1))
    try:
        client = InfisicalClient(credentials(server), FAST)
        client.list_secrets("dev", "/")
        time.sleep(1.1)
        assert client.list_secrets("dev", "/") == {}
        # At least one new login after expiry; under load the one-second token can lapse between
        # the first login and its use as well, which makes it one more (still no failed request).
        assert server.request_counts()[LOGIN] >= 2
    finally:
        server.stop()


def test_a_refused_token_triggers_one_new_login(tmp_path: Path) -> None:
    server = start_server(tmp_path, sample_config())
    try:
        creds = credentials(server)
        # A cached token the server does not accept (as after a server-side revocation).
        transport._store_token((creds.site_url, creds.client_id), "not-a-valid-token", 3600)
        assert InfisicalClient(creds, FAST).list_secrets("dev", "/") == {}
        counts = server.request_counts()
        assert counts[LOGIN] == 1
        assert counts["GET /api/v3/secrets/raw"] == 2  # refused once, then accepted
    finally:
        server.stop()

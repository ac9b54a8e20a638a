"""Run the server as a real subprocess for tests: ``start_server(tmp_path, config) -> RunningServer``.

The server listens on a free loopback port with a SQLite file under ``tmp_path``; its log goes to a
file so tests can check that no secret value was ever logged. ``RunningServer`` wraps the
``/__admin/`` endpoints (request counts, faults, settings, audit log).

    server = start_server(tmp_path, sample_config())
    try:
        ...  # point a client at server.url with server.identity()
    finally:
        server.stop()
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from ruamel.yaml import YAML

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
READY_LINE = re.compile(r"infisical_server ready on (http://\S+)")

SAMPLE_PROJECT_ID = "7d1c3f0e-0000-4000-8000-000000000001"
SAMPLE_ENVIRONMENTS = ("dev", "staging", "prod")


def sample_config(
    *,
    project_id: str = SAMPLE_PROJECT_ID,
    environments: tuple[str, ...] = SAMPLE_ENVIRONMENTS,
    path_prefix: str = "/",
    token_ttl_seconds: int = 7200,
    client_id: str = "fake-client-id-provisioner",
    client_secret: str = "fake-client-secret-provisioner-0001",  # noqa: S107 - an obvious fake
) -> dict[str, Any]:
    """A configuration with one project and one identity, ``provisioner``, unlimited (no rate limits);
    obviously fake credentials unless given."""
    return {
        "projects": [{"id": project_id, "slug": "delivery-chat", "environments": list(environments)}],
        "identities": [
            {
                "name": "provisioner",
                "client_id": client_id,
                "client_secret": client_secret,
                "project": project_id,
                "environments": list(environments),
                "path_prefix": path_prefix,
            }
        ],
        "token_ttl_seconds": token_ttl_seconds,
        "rate_limits": {"read": 0, "write": 0, "secrets": 0},
    }


@dataclass
class RunningServer:
    """A server process started by :func:`start_server`."""

    url: str
    config: dict[str, Any]
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def data_path(self) -> Path:
        return self.directory / "infisical.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def identity(self, name: str | None = None) -> dict[str, Any]:
        """The configured identity called ``name`` (the first one by default)."""
        identities: list[dict[str, Any]] = self.config["identities"]
        return next(i for i in identities if name is None or i["name"] == name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # --- admin endpoints -------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/__admin/<path>`` and return its JSON (raises on an HTTP error)."""
        response = requests.request(method, f"{self.url}/__admin/{path.lstrip('/')}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def request_counts(self) -> dict[str, int]:
        """Requests received since the last reset, keyed ``"<METHOD> <route template>"``."""
        counts: dict[str, int] = self.admin("GET", "requests")["counts"]
        return counts

    def reset_requests(self) -> None:
        self.admin("POST", "requests/reset")

    def add_fault(
        self,
        path: str,
        *,
        method: str | None = None,
        count: int = 1,
        status: int = 503,
        drop: bool = False,
        latency_ms: int = 0,
        after: bool = False,
    ) -> None:
        """Make the next ``count`` matching requests fail (see ``infisical_server.api.admin.Fault``)."""
        body = {"path": path, "method": method, "count": count, "status": status, "drop": drop}
        self.admin("POST", "faults", {**body, "latency_ms": latency_ms, "after": after})

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Change settings (``rate_limits``, ``rate_limit_window_seconds``, ``latency_ms``, ``error_rate``);
        returns them all."""
        updated: dict[str, Any] = self.admin("PUT", "settings", changes)
        return updated

    def audit(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin("GET", "audit")
        return entries

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self) -> RunningServer:
        """Stop, then start a new process on the same configuration and data file."""
        self.stop()
        return _launch(self.directory, self.config)


def start_server(tmp_path: Path, config: dict[str, Any], *, timeout: float = 30.0) -> RunningServer:
    """Start a server in a new directory under ``tmp_path``; returns once it accepts connections."""
    directory = tmp_path / f"infisical-server-{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True)
    with (directory / "config.yaml").open("w") as handle:
        YAML(typ="safe", pure=True).dump(config, handle)
    return _launch(directory, config, timeout=timeout)


def _launch(directory: Path, config: dict[str, Any], *, timeout: float = 30.0) -> RunningServer:
    log_path = directory / "server.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    command = [
        sys.executable,
        "-m",
        "infisical_server",
        "--config",
        str(directory / "config.yaml"),
        "--data",
        str(directory / "infisical.sqlite3"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=PACKAGE_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")[offset:]
        match = READY_LINE.search(text)
        if match:
            return RunningServer(match.group(1), config, directory, process)
        if process.poll() is not None:
            raise RuntimeError(f"the Infisical server exited with {process.returncode}:\n{text[-2000:]}")
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"the Infisical server was not ready within {timeout:.0f} s; see {log_path}")

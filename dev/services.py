"""The local services of the demo: a private PostgreSQL cluster and the Infisical-compatible server.

    python -m dev.services up      start both (initialised on first use; data survives restarts)
    python -m dev.services down    stop both
    python -m dev.services env     print `export ...` lines that point a shell at them

Everything lives under .state/ (gitignored). Credentials are generated on first start and
written only to files under .state/ with mode 0600; `env` prints them for `eval`, nothing logs them.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from dev.pg import Cluster, free_port
from infisical_server.testing import sample_config

log = logging.getLogger("services")

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LocalInfisical:
    """The project's Infisical-compatible server, run as a background process under ``root``."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def pidfile(self) -> Path:
        return self.root / "server.pid"

    def config(self) -> dict[str, object]:
        loaded: dict[str, object] = yaml.safe_load(self.config_path.read_text())
        return loaded

    @property
    def port(self) -> int:
        return int((self.root / "port").read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ensure_config(self) -> None:
        if self.config_path.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        project_id = str(uuid.uuid4())
        config = sample_config(project_id=project_id, client_id=str(uuid.uuid4()), client_secret=secrets.token_hex(32))
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        (self.root / "port").write_text(str(free_port()))

    def is_running(self) -> bool:
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        return True

    def ensure_started(self) -> None:
        self.ensure_config()
        if self.is_running():
            return
        logfile = (self.root / "server.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infisical_server",
                "--config",
                str(self.config_path),
                "--data",
                str(self.root / "infisical.sqlite3"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )
        self.pidfile.write_text(str(proc.pid))
        self._wait_ready(proc)
        log.info("Infisical-compatible server ready at %s", self.url)

    def stop(self) -> None:
        if not self.is_running():
            return
        pid = int(self.pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Infisical server exited early; see {self.root / 'server.log'}")
            try:
                requests.get(f"{self.url}/api/status", timeout=1)
            except requests.ConnectionError:
                time.sleep(0.1)
            else:
                return
        raise RuntimeError(f"the Infisical server did not answer within {timeout:.0f} s")

    def env(self) -> dict[str, str]:
        config = self.config()
        identity = config["identities"][0]  # type: ignore[index]
        return {
            "INFISICAL_SITE_URL": self.url,
            "INFISICAL_PROJECT_ID": identity["project"],
            "INFISICAL_CLIENT_ID": identity["client_id"],
            "INFISICAL_CLIENT_SECRET": identity["client_secret"],
        }


def state_dir() -> Path:
    return Path(os.environ.get("TENANT_SECRETS_STATE", ROOT / ".state"))


def postgres() -> Cluster:
    return Cluster(state_dir() / "pg")


def infisical() -> LocalInfisical:
    return LocalInfisical(state_dir() / "infisical")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.services", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="services: %(message)s")

    if args.action == "up":
        postgres().ensure_started()
        infisical().ensure_started()
    elif args.action == "down":
        infisical().stop()
        postgres().stop()
        log.info("stopped")
    elif args.action == "status":
        print(f"postgres: {'running' if postgres().is_running() else 'stopped'}")
        print(f"infisical: {'running' if infisical().is_running() else 'stopped'}")
    else:
        values = {"DATABASE_URL": postgres().dsn(), **infisical().env()}
        for name, value in values.items():
            print(f"export {name}='{value}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())

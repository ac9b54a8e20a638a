"""A private PostgreSQL cluster for the demo and the tests.

Its own data directory, a free loopback port, password authentication with a password generated on
first start. The server binaries are Debian's (``make setup`` installs them when none are present).
PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres`` user
that Debian's package creates.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

log = logging.getLogger(__name__)

SUPERUSER = "tenant_admin"
DATABASE = "tenants"


def find_bindir() -> Path:
    """The newest PostgreSQL server bin directory: $PG_BINDIR, else Debian's layout, else PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parent.parent.name))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("no PostgreSQL server binaries found: run `make setup` (installs Debian's postgresql)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """A cluster rooted at ``root`` (data in root/data, port and password beside it)."""

    root: Path

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def port(self) -> int:
        return int((self.root / "port").read_text())

    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    def dsn(self, user: str = SUPERUSER, password: str | None = None, dbname: str = DATABASE) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{quote(user)}:{quote(pw, safe='')}@127.0.0.1:{self.port}/{quote(dbname)}"

    # --- lifecycle -------------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Initialise on first use, then start if not running. Idempotent; data survives restarts."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.datadir / "PG_VERSION").exists():
            self._init()
        if self.is_running():
            return
        self._start()
        log.info("PostgreSQL ready on 127.0.0.1:%d (data %s)", self.port, self.datadir)

    def stop(self) -> None:
        if self.is_running():
            self._run([str(find_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"])

    def is_running(self) -> bool:
        if not (self.datadir / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            self._as_owner([str(find_bindir() / "pg_ctl"), "-D", str(self.datadir), "status"]),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    # --- internals -------------------------------------------------------------------------------

    def _init(self) -> None:
        (self.root / "port").write_text(str(free_port()))
        (self.root / "password").write_text(secrets.token_urlsafe(24))
        os.chmod(self.root / "password", 0o600)
        self._chown(self.root)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        try:
            self._run(
                [
                    str(find_bindir() / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            )
        finally:
            pwfile.unlink()
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# tenant-secrets private cluster\nfsync = off\nsynchronous_commit = off\n")
            conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
        self._chown(self.root)
        self._start()
        with psycopg.connect(self.dsn(dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def _start(self) -> None:
        # -l matters: without a log file the server keeps our stdout pipe open and run() never returns.
        # -k '': no Unix-domain socket, loopback TCP only; a socket's path is limited to 107 bytes, which a
        # clone in a deep directory exceeds.
        self._run(
            [
                str(find_bindir() / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -k '' -c listen_addresses=127.0.0.1",
                "start",
            ]
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not listen on port {self.port}; see {self.root / 'server.log'}")

    def _owner(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _as_owner(self, cmd: list[str]) -> list[str]:
        owner = self._owner()
        return ["runuser", "-u", owner, "--", *cmd] if owner else cmd

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if not owner:
            return
        entry = pwd.getpwnam(owner)
        for dirpath, _dirs, files in os.walk(path):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
        # the password file stays readable by us (root) and the owner only
        if (path / "password").exists():
            os.chown(path / "password", entry.pw_uid, entry.pw_gid)
        # parents must be traversable by the owner
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    def _run(self, cmd: list[str]) -> None:
        result = subprocess.run(self._as_owner(cmd), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(cmd[0]).name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )

"""``python -m infisical_server --config CONFIG.yaml --data PATH.sqlite3 --host 127.0.0.1 --port N``.

Each flag may come from the environment instead: INFISICAL_SERVER_CONFIG, INFISICAL_SERVER_DATA,
INFISICAL_SERVER_HOST, INFISICAL_SERVER_PORT. ``--port 0`` picks a free port; the one line logged when
the server is ready names the URL it listens on.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from infisical_server.api.protocol import DroppableH11Protocol
from infisical_server.app import build_services, create_app
from infisical_server.config import ConfigError, load_config

log = logging.getLogger("infisical_server")
READY = "infisical_server ready on"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m infisical_server", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=env.get("INFISICAL_SERVER_CONFIG"), help="YAML configuration")
    parser.add_argument("--data", type=Path, default=env.get("INFISICAL_SERVER_DATA"), help="SQLite data file")
    parser.add_argument("--host", default=env.get("INFISICAL_SERVER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("INFISICAL_SERVER_PORT", "8080")))
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("--config (or INFISICAL_SERVER_CONFIG) is required")
    if args.data is None:
        parser.error("--data (or INFISICAL_SERVER_DATA) is required")
    return args


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen before announcing readiness, so "ready" means connections are accepted."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message names file and field; a traceback adds nothing
        return 2
    services = build_services(config, args.data)
    app = create_app(services)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(app, http=DroppableH11Protocol, log_config=None, access_log=False, lifespan="off")
    )
    display_host = f"[{host}]" if ":" in host else host
    log.info("%s http://%s:%d (data: %s)", READY, display_host, port, args.data)
    try:
        server.run(sockets=[sock])
    finally:
        services.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

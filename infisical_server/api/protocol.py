"""An HTTP protocol for uvicorn that lets the app drop a connection without answering, and answers at once.

ASGI gives an application no way to close the socket before it has sent a response; uvicorn answers
500 instead. Fault injection needs a real drop (the client sees "connection closed without
response"), so this subclass of uvicorn's h11 protocol puts the connection's ``abort`` into each
request's scope under ``scope["extensions"][DROP_EXTENSION]``.

It also turns off Nagle's algorithm on each connection: uvicorn writes a response's head and body
separately, and on a kept-alive connection the body then waited for the client's delayed ACK, 40 ms
per request (an Infisical client keeps its connection). Infisical itself (Node.js) answers without
that stall.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

DROP_EXTENSION = "infisical_server.drop_connection"


class DroppableH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    def handle_events(self) -> None:
        super().handle_events()
        # handle_events built the request's scope and scheduled its task; the task has not run yet.
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.scope.setdefault("extensions", {})[DROP_EXTENSION] = {"abort": self.transport.abort}

"""An HTTP protocol for uvicorn that lets the app drop a connection without answering.

ASGI gives an application no way to close the socket before it has sent a response; uvicorn answers
500 instead. Fault injection needs a real drop (the client sees "connection closed without
response"), so this subclass of uvicorn's h11 protocol puts the connection's ``abort`` into each
request's scope under ``scope["extensions"][DROP_EXTENSION]``.
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol

DROP_EXTENSION = "infisical_server.drop_connection"


class DroppableH11Protocol(H11Protocol):
    def handle_events(self) -> None:
        super().handle_events()
        # handle_events built the request's scope and scheduled its task; the task has not run yet.
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.scope.setdefault("extensions", {})[DROP_EXTENSION] = {"abort": self.transport.abort}

"""Fixed-window rate limiting per category and client IP, as Infisical Cloud applies it.

Infisical registers @fastify/rate-limit with a 60 s window keyed by the client IP, and each route
names a category (``readLimit``, ``writeLimit``, ``secretsLimit``: ``server/config/rateLimiter.ts``).
Here the counter is shared by all routes of a category, which is how the published limits read
("120 secret operations a minute"). A limit of 0 disables the category, like a self-hosted server.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """@fastify/rate-limit's headers; ``retry-after`` only on a refusal."""
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["retry-after"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    """Counts hits per (category, client) in windows that start at the first hit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, category: str, client: str, limit: int, window: float = WINDOW_SECONDS) -> Decision | None:
        """Record one request; None when the category is unlimited. ``window`` is in seconds (tests
        shorten it through the admin settings; Infisical's is 60)."""
        if limit <= 0:
            return None
        now = self._clock()
        with self._lock:
            started, count = self._windows.get((category, client), (now, 0))
            if now - started >= window:
                started, count = now, 0
            count += 1
            self._windows[(category, client)] = (started, count)
        reset = max(1, math.ceil(started + window - now))
        return Decision(count <= limit, limit, max(0, limit - count), reset)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

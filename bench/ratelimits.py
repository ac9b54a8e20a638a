"""The least time a step would take against Infisical Cloud, from the requests it made.

Infisical Cloud counts requests per client IP in fixed 60-second windows, per category
(reference/infisical-api.md, section 4): `secrets` (every secrets route and folder writes), `read`
(folder reads), `write` (logins), and 600 a minute of everything together. The local server keys
its counters `"<METHOD> <route>"`; `category` maps them the way its own rate limiter does
(infisical_server/routes_*.py). A window admits `limit` requests at once, so `n` requests of a
category need at least `ceil(n / limit) - 1` further windows: the bound below is that wait, and a
step takes at least the larger of it and what it took here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

WINDOW_SECONDS = 60.0
GLOBAL_LIMIT = 600
PLANS: dict[str, dict[str, int]] = {
    "free": {"secrets": 120, "write": 90, "read": 200},
    "pro": {"secrets": 300, "write": 200, "read": 350},
}


def category(route: str) -> str:
    """`"GET /api/v2/folders"` -> `read`; logins -> `write`; anything under secrets or folders -> `secrets`."""
    method, _, path = route.partition(" ")
    if "/auth/" in path:
        return "write"
    if "/folders" in path and method == "GET":
        return "read"
    return "secrets"


def by_category(counts: Mapping[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for route, n in counts.items():
        totals[category(route)] = totals.get(category(route), 0) + n
    return totals


def wait_seconds(counts: Mapping[str, int], plan: str) -> float:
    """The least time the plan's limits impose on these requests (0 when they fit in one window)."""
    limits = PLANS[plan]
    windows = [math.ceil(n / limits[c]) - 1 for c, n in by_category(counts).items() if n]
    total = sum(counts.values())
    if total:
        windows.append(math.ceil(total / GLOBAL_LIMIT) - 1)
    return max(windows, default=0) * WINDOW_SECONDS


def least_time(counts: Mapping[str, int], plan: str, measured: float) -> float:
    """At least what the step took here, and at least what the rate limits impose."""
    return max(measured, wait_seconds(counts, plan))

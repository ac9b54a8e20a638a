"""The trivial local write both providers do: one small JSON file per resource, no secret value in it.

Where the files go comes from the environment at call time (`BENCH_FLOOR_STORE`), so the dynamic
provider, which the SDK pickles into every resource's state, captures nothing. `BENCH_FLOOR_LATENCY_MS`
makes each write also wait that long, a stand-in for a store's round trip (Infisical Cloud: tens of
milliseconds), to measure how many calls each way of serving the provider runs at once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STORE_ENV = "BENCH_FLOOR_STORE"
LATENCY_ENV = "BENCH_FLOOR_LATENCY_MS"
KEYS = ("API_TOKEN", "PLAN", "SMTP_HOST", "STRIPE_SECRET_KEY", "WEBHOOK_SIGNING_SECRET")
# the plain inputs, as the project's folder has them (tenant_secrets/engine/contract.py FolderInputs)
PLAIN = ("owner", "environment", "path", "decommission", "decommissioned", "unbound", "fingerprints")
REPLACES = ("environment", "path")


def _file(resource_id: str) -> Path:
    return Path(os.environ[STORE_ENV]) / f"{resource_id.replace('/', '_').replace(':', '_')}.json"


def write(resource_id: str, props: dict[str, Any]) -> None:
    """Record the plain inputs (never the secret ones) of a resource, after the stand-in latency."""
    time.sleep(float(os.environ.get(LATENCY_ENV) or 0) / 1000)
    _file(resource_id).write_text(json.dumps({k: props[k] for k in PLAIN if k in props}, sort_keys=True))


def read(resource_id: str) -> dict[str, Any] | None:
    """What `write` recorded, or None when the resource is gone."""
    path = _file(resource_id)
    return json.loads(path.read_text()) if path.exists() else None


def delete(resource_id: str) -> None:
    _file(resource_id).unlink(missing_ok=True)


def resource_id(props: dict[str, Any]) -> str:
    """The id the project's folder provider gives: environment and path."""
    return f"{props['environment']}:{props['path']}"

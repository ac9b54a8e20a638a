"""The application's own write and read, run as the application runs them: the seed's setTenantSecret and
getTenantSecret on Drizzle and pg in Node.js (tests/node/seed_writes.mjs). Shared by the store's tests and the
end-to-end ones; without ``node`` (or before `make setup` installed tests/node's packages) they fail, as the
compatibility they prove is the point."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent / "node" / "seed_writes.mjs"


def set_op(company_id: str, key: str, value: str) -> dict[str, str]:
    """The seed's ``setTenantSecret(companyId, secretKey, secretValue)``."""
    return {"op": "set", "companyId": company_id, "secretKey": key, "secretValue": value}


def get_op(company_id: str, key: str) -> dict[str, str]:
    """The seed's ``getTenantSecret(companyId, secretKey)``."""
    return {"op": "get", "companyId": company_id, "secretKey": key}


def run_seed(database_url: str, ops: list[dict[str, str]], **keys: Any) -> list[dict[str, Any]]:
    """Run ``ops`` in order with the seed's code; ``keys``: ``keyHex`` (the master key itself) or the
    Infisical login (``siteUrl``, ``clientId``, ``clientSecret``, ``projectId``, ``environment``), and
    ``tablePrefix``. One result per op: ``{"ok": True, "value": ...}`` or ``{"ok": False, "error", "code"}``."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the application's own code cannot run (install Node.js 20)")
    request = {"databaseUrl": database_url, "ops": ops, **keys}
    done = subprocess.run(
        [node, str(SCRIPT)], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(ops)
    return results

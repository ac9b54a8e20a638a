"""The application reads what the store writes: the seed's own decryptSecret, run by Node.js.

Also the other way: what the seed's encryptSecret writes, the store reads. The scripts live in
tests/node/; without ``node`` these tests fail, as the compatibility they prove is the point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tenant_secrets.secret.envelope import Keyring, decrypt
from tenant_secrets.store import StoreSettings, TenantChange, apply_tenants, rotate
from tests.conftest import ACME, GLOBEX, fake_value

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
VALUES = {
    "ASCII": fake_value("stripe"),
    "EMPTY": "",
    "UNICODE": "fake-ünïcödé-密码-🔑-value",
    "MULTILINE": "fake-pem\n-----BEGIN FAKE KEY-----\nnot-a-real-key\n-----END FAKE KEY-----\n",
    "LONG": "fake-" + "x" * 5000,
    "PUNCTUATION": 'fake:value:with:colons "quotes" \\ and \t tabs',
}


def run_node(script: str, items: list[dict[str, str]]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the Node.js compatibility check cannot run (install Node.js 20)")
    completed = subprocess.run(
        [node, str(NODE_DIR / script)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert isinstance(result, list)
    return [str(item) for item in result]


def test_the_seeds_decrypt_secret_reads_every_row_the_store_wrote(
    db: psycopg.Connection[Any], settings: StoreSettings, keyring: Keyring
) -> None:
    apply_tenants(
        db,
        settings,
        {ACME: TenantChange({k: "fake-old" for k in VALUES}), GLOBEX: TenantChange(VALUES)},
        keyring,
    )
    apply_tenants(db, settings, {ACME: TenantChange(VALUES)}, keyring)  # history entries on key 1
    rotated = Keyring({1: keyring.key(1), 2: os.urandom(32)}, active=2)
    rotate(db, settings, rotated, batch_size=4)  # leaves rows and history on key 2
    apply_tenants(db, settings, {GLOBEX: TenantChange({"AFTER_ROTATION": fake_value("after")})}, rotated)

    rows = db.execute(
        "SELECT secret_key, secret_value_encrypted, key_version FROM company_secrets"
        " UNION ALL SELECT 'history', secret_value_encrypted, key_version FROM company_secret_versions"
    ).fetchall()
    expected = [{**VALUES, "AFTER_ROTATION": fake_value("after"), "history": "fake-old"}[key] for key, _, _ in rows]
    items = [{"envelope": ct, "keyHex": rotated.key(version).hex()} for _key, ct, version in rows]

    assert len(items) == 2 * len(VALUES) + 1 + len(VALUES)
    assert run_node("decrypt.mjs", items) == expected


def test_the_store_reads_what_the_seeds_encrypt_secret_wrote() -> None:
    key = os.urandom(32)
    envelopes = run_node("encrypt.mjs", [{"value": v, "keyHex": key.hex()} for v in VALUES.values()])
    assert [decrypt(envelope, key) for envelope in envelopes] == list(VALUES.values())

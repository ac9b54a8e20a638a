"""The reader guide's Node.js blocks run as pasted (docs/guides/master-key-and-readers.md, "Reading secrets in
a Node.js service"), against the local services: a company `codewiser` with its STRIPE_SECRET_KEY row, the
key folder of the `prod` environment publishing the keyring, the application role's connection in
APP_DATABASE_URL and the reader's identity in INFISICAL_*.

The block is run from examples/hono-api/, whose node_modules has the package and `pg`, as an application
that depends on the package would.
"""

from __future__ import annotations

import json
import socket
import uuid

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.secret.keyfolder import published_values
from tenant_secrets.store import TenantChange, apply_tenants, ensure_companies
from tests.reader.conftest import Services
from tests.reader.node import EXAMPLE, REPO, VALUES, arrange, fingerprint, node, require_built, run, tidy

GUIDE = REPO / "docs" / "guides" / "master-key-and-readers.md"
MARKER = "<!-- run as pasted by tests/reader/test_node_guide.py"
CODEWISER = str(uuid.UUID(int=0xC0DE))
VALUE = "fake-codewiser-stripe-not-a-real-secret"


def guide_block(fence: str = "ts") -> str:
    """The first block fenced as ``fence`` after the guide's "run as pasted" marker."""
    text = GUIDE.read_text(encoding="utf-8")
    after = text[text.index(MARKER) :].split(f"```{fence}\n", 1)[1]
    return after.split("\n```", 1)[0]


def test_the_guides_node_block_runs_as_pasted(services: Services) -> None:
    require_built(EXAMPLE, "node_modules/tenant-secrets-reader/dist/src/index.js")
    db, creds = services.database, services.credentials
    keyring = Keyring.from_hex({"1": services.master_keys[1]}, 1)
    ensure_companies(db.owner, db.settings, {"codewiser": (CODEWISER, None)})
    apply_tenants(db.owner, db.settings, {CODEWISER: TenantChange({"STRIPE_SECRET_KEY": VALUE})}, keyring)
    services.infisical.apply_secrets(
        "prod", "/hono-api", upsert=published_values(services.master_keys, versions=[1], current=1)
    )
    try:
        done = run(
            [node(), "--input-type=module", "--eval", guide_block()],
            cwd=EXAMPLE,
            env={
                "APP_DATABASE_URL": db.app_dsn,
                "INFISICAL_SITE_URL": creds.site_url,
                "INFISICAL_CLIENT_ID": creds.client_id,
                "INFISICAL_CLIENT_SECRET": creds.client_secret,
                "INFISICAL_PROJECT_ID": creds.project_id,
            },
            timeout=60,
        )
    finally:
        services.infisical.delete_folder("prod", "/hono-api")
    assert done.returncode == 0, done.stderr[-3000:]
    assert VALUE not in done.stdout + done.stderr
    with db.owner.transaction():
        logged = db.owner.execute(
            "SELECT tenant, company_id::text, secret_key, source, outcome FROM company_secret_access"
        ).fetchall()
    assert logged == [("codewiser", CODEWISER, "STRIPE_SECRET_KEY", "database", "found")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_guides_hono_example_commands_run_as_pasted(services: Services) -> None:
    """The guide's sh block for examples/hono-api, run by bash from the repository root with the app's
    environment exported: acme's payment answers with acme's key's fingerprint, and the app is stopped."""
    require_built(EXAMPLE, "dist/server.js")
    block = guide_block("sh")
    assert "node dist/server.js" in block
    world = arrange(services)
    try:
        done = run(["bash", "-e", "-c", block], cwd=REPO, env={**world.app_env(), "PORT": str(free_port())}, timeout=90)
    finally:
        tidy(services)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "tenant": "acme",
        "stripeKeyFingerprint": fingerprint(VALUES["acme"]["STRIPE_SECRET_KEY"]),
    }
    assert VALUES["acme"]["STRIPE_SECRET_KEY"] not in done.stdout + done.stderr

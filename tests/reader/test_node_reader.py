"""The Node.js reader (packages/tenant-secrets-reader/) against the real services, run by `make test`.

The rows are written by the Python provisioning code and read by the Node package; what the Node package
writes (a write-back, a row it re-encrypted) is checked afterwards by the Python binding check. The Node
tests themselves (packages/tenant-secrets-reader/test/*.test.ts) say what they check.
"""

from __future__ import annotations

import re
from pathlib import Path

from tenant_secrets.secret.binding import BoundRow, check_rows
from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import read_rows
from tests.reader.conftest import Services
from tests.reader.node import INFISICAL_ONLY, PACKAGE, VALUES, arrange, node, require_built, run, tidy


def test_the_node_readers_own_tests_pass_against_the_services(services: Services, tmp_path: Path) -> None:
    tests = sorted(str(p) for p in require_built(PACKAGE, "dist/test").glob("*.test.js"))
    assert len(tests) >= 3
    world = arrange(services)
    try:
        done = run(
            [node(), "--test", "--test-reporter=spec", *tests],
            cwd=PACKAGE,
            env={"TENANT_SECRETS_TEST_WORLD": str(world.write(tmp_path / "world.json"))},
        )
    finally:
        tidy(services)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    assert re.search(r"\bfail 0\b", output) and re.search(r"\bskipped 0\b", output), output[-5000:]
    assert "needs the local services" not in output, "the services' tests were skipped"
    assert "✔ the reader against the database and Infisical" in output, output[-5000:]
    for values in (*VALUES.values(), *INFISICAL_ONLY.values()):
        for value in values.values():
            assert value not in output, "a value in the Node tests' output"

    # What the Node package wrote is what the Python side reads: bound rows, the values written.
    db = services.database
    both = Keyring.from_hex({str(v): k for v, k in services.master_keys.items()}, 2)
    rows = read_rows(db.owner, db.settings, list(world.as_json()["companies"].values()), both)
    read = {(r.company_id, r.secret_key): (r.value, r.key_version, r.problem) for r in rows}
    companies = world.as_json()["companies"]
    assert read[companies["globex"], "WEBHOOK_SIGNING_SECRET"] == (VALUES["globex"]["WEBHOOK_SIGNING_SECRET"], 2, None)
    assert read[companies["acme"], "ONLY_IN_INFISICAL"] == (INFISICAL_ONLY["acme"]["ONLY_IN_INFISICAL"], 1, None)
    with db.owner.transaction():
        stored = db.owner.execute(
            "SELECT company_id::text, secret_key, key_version, version, secret_value_encrypted, binding"
            " FROM company_secrets"
        ).fetchall()
    assert check_rows(both, [BoundRow(*row) for row in stored]) == []

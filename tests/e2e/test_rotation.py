"""Rotation on a schedule through the real engine (issue 15): a secret past its period is reported by
`tenantctl rotation status`, moved by `rotation bump`, and the next `pulumi up` changes exactly that key
in both stores; the master key past its period is rotated with `rotation master-key` and `pulumi up`,
every row readable after; notifications reach a loopback receiver signed, and a receiver that is down
changes nothing but a reported line. One scenario of declared steps."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from pulumi import automation as auto

from tenant_secrets.secret.keyfolder import keyring_from_folder
from tests.e2e.conftest import Project, configure, sdk_listing
from tests.e2e.steps import Step, run_steps, tenantctl

pytestmark = pytest.mark.e2e

TENANTS = """\
version: 1
defaults:
  storage: both
  environments: [dev]
  secrets:
    WEBHOOK_SIGNING_SECRET: {generate: {bytes: 32, encoding: hex}}   # no period: never due

tenants:
  - subdomain: rot-alpha
    secrets:
      API_TOKEN: {generate: {bytes: 32}, rotate_every: 30d}           # monthly
      STRIPE_SECRET_KEY: {from: config, expires: 2099-01-01}
  - subdomain: rot-beta
    secrets:
      API_TOKEN: {generate: {bytes: 32}, rotation: "3"}
"""
SIGNING_KEY = "test-webhook-signing-key-not-secret"
LATER = (datetime.now(UTC) + timedelta(days=31)).date().isoformat()


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        type(self).received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("Handler", (Hook,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def stacks(project: Project) -> Iterator[list[auto.Stack]]:
    """Stacks destroyed at the end, failed or not: the Infisical server (and /hono-api) is the session's."""
    made: list[auto.Stack] = []
    yield made
    for stack in made:
        stack.destroy(on_output=project.capture, color="never")


class RowsReadable(threading.Thread):
    """Reads every row with the keyring the key folder publishes, over and over, as the application would."""

    def __init__(self, project: Project) -> None:
        super().__init__(daemon=True)
        self.project, self.done, self.reads, self.failures = project, threading.Event(), 0, list[str]()

    def run(self) -> None:
        while not self.done.is_set():
            with self.project.db() as conn:  # rows first: a version is published before any row uses it
                rows = conn.execute(
                    "SELECT secret_key, secret_value_encrypted, key_version FROM company_secrets"
                ).fetchall()
            folder = {s.secretKey: s.secretValue for s in sdk_listing(self.project.infisical, "dev", "/hono-api") or []}
            ring = keyring_from_folder(folder, folder="/hono-api")
            for key, envelope, version in rows:
                try:
                    ring.decrypt(envelope, version)
                except ValueError as err:
                    self.failures.append(f"{key} on v{version}: {type(err).__name__}")
            self.reads += 1


def stores(project: Project) -> dict[tuple[str, str, str], str]:
    """(store, tenant, key) -> what the store holds (ciphertext or value, compared only for change)."""
    held: dict[tuple[str, str, str], str] = {}
    for tenant in ("rot-alpha", "rot-beta"):
        for secret in sdk_listing(project.infisical, "dev", f"/tenants/{tenant}") or []:
            held["infisical", tenant, secret.secretKey] = secret.secretValue
    with project.db() as conn:
        rows = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.version, s.key_version "
            "FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    for subdomain, key, encrypted, version, key_version in rows:
        if subdomain in ("rot-alpha", "rot-beta"):
            held["database", subdomain, key] = f"{encrypted}/{version}/{key_version}"
    return held


def rotation(url: str, handler: type[Hook], master_key: str) -> list[Step]:
    """The scenario; its checks compare with what earlier steps saw (``seen``)."""
    seen: dict[str, Any] = {}
    webhook: dict[str, str | None] = {
        "TENANT_SECRETS_WEBHOOK_URL": url,
        "TENANT_SECRETS_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
    }

    def status_as_of_later(project: Project, stack: auto.Stack) -> None:
        done = tenantctl(project, "rotation", "status", "--stack", "dev")
        assert done.returncode == 0, done.stdout + done.stderr
        done = tenantctl(project, "rotation", "status", "--stack", "dev", "--as-of", LATER, "--format", "json")
        assert done.returncode == 1, done.stderr
        rows = {(r["owner"], r["key"]): r for r in json.loads(done.stdout)["rows"]}
        assert set(rows) == {("rot-alpha", "API_TOKEN"), ("rot-alpha", "STRIPE_SECRET_KEY"), ("(stack)", "master key")}
        assert rows["rot-alpha", "API_TOKEN"]["state"] == "overdue"
        assert rows["(stack)", "master key"]["state"] == "overdue"
        assert rows["rot-alpha", "STRIPE_SECRET_KEY"]["state"] == "ok"
        seen["rows"] = rows

    def bumped(project: Project) -> None:
        """The bump moves exactly the due marker, as a change of tenants.yaml; the stores are snapshot."""
        done = tenantctl(project, "rotation", "bump", "--due", "--stack", "dev", "--as-of", LATER)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "tenants[0].secrets.API_TOKEN: rotation '1' -> '2': rot-alpha/API_TOKEN\n"
        text = (project.root / "tenants.yaml").read_text()
        assert [line for line in text.splitlines() if line not in TENANTS.splitlines()] == [
            '      API_TOKEN: {generate: {bytes: 32}, rotation: "2", rotate_every: 30d} # monthly'
        ]
        seen["before"] = stores(project)
        assert tenantctl(project, "rotation", "snapshot", "--stack", "dev", "--output", "before.json").returncode == 0

    def that_key_only(project: Project, stack: auto.Stack) -> None:
        before, after = seen["before"], stores(project)
        assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {
            ("infisical", "rot-alpha", "API_TOKEN"),
            ("database", "rot-alpha", "API_TOKEN"),
        }
        seen["after"] = after

    def notified(project: Project, stack: auto.Stack) -> None:
        done = tenantctl(project, "rotation", "notify", "--stack", "dev", "--before", "before.json", env=webhook)
        assert done.returncode == 0 and "1 event(s) delivered to http://127.0.0.1" in done.stderr, done.stderr
        headers, body = handler.received[-1]
        signed = hmac.new(
            SIGNING_KEY.encode(), headers["X-Tenant-Secrets-Timestamp"].encode() + b"." + body, hashlib.sha256
        )
        assert headers["X-Tenant-Secrets-Signature"] == f"sha256={signed.hexdigest()}"
        assert json.loads(body)["events"] == [
            {
                "stack": "dev",
                "environment": "dev",
                "owner": "rot-alpha",
                "key": "API_TOKEN",
                "action": "changed",
                "stores": ["database", "infisical"],
                "version": 2,
                "due": None,
            }
        ]
        assert not any(value in body.decode() for value in seen["after"].values())

    def master_key_rotated(project: Project) -> None:
        """The documented steps: `rotation master-key` adds a version to the stack's config."""
        done = tenantctl(project, "rotation", "master-key", "--stack", "dev")
        assert done.returncode == 0 and "masterKeys.v2 added" in done.stdout, done.stderr
        assert master_key not in done.stdout + done.stderr
        assert tenantctl(project, "rotation", "snapshot", "--stack", "dev", "--output", "before.json").returncode == 0

    def v2_active_and_read(project: Project, stack: auto.Stack) -> None:
        """v2 is the active version; a reader reads every row, over and over, while the up runs."""
        config = {k: v.value for k, v in stack.get_all_config().items()}
        assert config["tenant-secrets:activeKeyVersion"] == "2"
        seen["reader"] = RowsReadable(project)
        seen["reader"].start()

    def readable_throughout(project: Project, stack: auto.Stack) -> None:
        reader: RowsReadable = seen["reader"]
        reader.done.set()
        reader.join()
        assert reader.reads >= 1 and reader.failures == []
        with project.db() as conn:
            assert {v for (v,) in conn.execute("SELECT DISTINCT key_version FROM company_secrets")} == {2}
        done = tenantctl(project, "verify", "--stack", "dev", "--tenants", "rot-alpha,rot-beta")
        assert done.returncode == 0, done.stdout + done.stderr  # every row reads with the published keyring
        done = tenantctl(project, "rotation", "status", "--stack", "dev", "--as-of", LATER, "--format", "json")
        master = next(r for r in json.loads(done.stdout)["rows"] if r["key"] == "master key")
        assert master["last"] > seen["rows"]["(stack)", "master key"]["last"]
        assert "active version 2" in master["detail"]

    def receiver_down(project: Project, stack: auto.Stack) -> None:
        down = {**webhook, "TENANT_SECRETS_WEBHOOK_URL": "http://127.0.0.1:9/down"}
        done = tenantctl(project, "rotation", "notify", "--stack", "dev", "--before", "before.json", env=down)
        assert done.returncode == 0
        assert "not delivered to http://127.0.0.1 after 4 attempt(s)" in done.stderr
        assert done.stderr.count("webhook attempt") == 3 and "/down" not in done.stderr

    return [
        Step("the first up: due now, nothing; a month later, API_TOKEN and the master key", check=status_as_of_later),
        Step(
            "`rotation bump --due` moves the due marker; the next up changes exactly that key in both stores",
            by_hand=bumped,
            check=that_key_only,
        ),
        Step("`rotation notify` sends the change signed, never a value", up=False, check=notified),
        Step(
            "`rotation master-key`, then the up: every row readable throughout, every row on v2 after",
            by_hand=master_key_rotated,
            before=v2_active_and_read,
            check=readable_throughout,
        ),
        Step("a receiver that is down: reported, and the command goes on", up=False, check=receiver_down),
    ]


@pytest.mark.long  # a scheduled rotation end to end, several engine runs (~35 s): make test-long
def test_a_due_secret_and_the_master_key_are_rotated_and_notified(
    project: Project, master_key: str, hook: tuple[str, type[Hook]], stacks: list[auto.Stack]
) -> None:
    url, handler = hook
    project.write_tenants(TENANTS)
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        secrets_config={"rot-alpha": {"STRIPE_SECRET_KEY": "fake-stripe-rot-alpha-0001"}},
        masterKeyRotateEvery="30d",
        webhookAllowHosts="127.0.0.1",  # the receiver runs on this machine: a loopback address, allowed by name
    )
    stacks.append(stack)
    run_steps(project, stack, rotation(url, handler, master_key), "a scheduled rotation")

"""The production guide's bootstrap runbook ("Setting up an environment, in order"), pasted into one shell
at the root of a fresh clone, with the local services standing in for the team's: a file:// backend,
the passphrase secrets provider, the session's PostgreSQL and the local Infisical server, and
obviously fake values for the variables the runbook asks the team to set.

The blocks are read from the guide, in order: those marked as run here (``RUNBOOK``) on the line before
their fence. A user would then check that the stack previews clean, that the tenants' rows and folders
exist, that the preview role's plan is empty, and that no value was printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from tenant_secrets.engine.buckets import KINDS, bucket_of, resource_name
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tests.e2e.conftest import PASSPHRASE, REPO, Infisical, sdk_listing

pytestmark = [pytest.mark.e2e, pytest.mark.long]

GUIDE = REPO / "docs" / "guides" / "production.md"
SECTION = "## Setting up an environment, in order"
RUNBOOK = (
    "<!-- not run: needs the team's backend, database and Infisical; "
    "tests/e2e/test_bootstrap.py runs it with the local services -->"
)
# What the runbook's application role and the preview role are called (cluster-wide: dropped afterwards).
ROLES = ("deliverychat_app", "tenant_secrets_preview")

# The variables the runbook asks for, each obviously fake; the {from: config} ones by the runbook's names.
FAKES = {
    "RESEND_API_KEY": "fake-resend-bootstrap-0001",
    "CODEWISER_SENDGRID_API_KEY": "fake-sendgrid-codewiser-bootstrap-0001",
    "CODEWISER_STRIPE_SECRET_KEY": "fake-stripe-codewiser-bootstrap-0001",
    "ACMECORP_STRIPE_SECRET_KEY": "fake-stripe-acmecorp-bootstrap-0001",
    "ACMECORP_SMTP_USERNAME": "fake-smtp-user-acmecorp-bootstrap",
    "ACMECORP_SMTP_PASSWORD": "fake-smtp-password-acmecorp-bootstrap-0001",
}
EXPECTED_TENANTS = 130
"""The tenants the team expects prod to hold: the runbook sizes the stack's buckets from it, ceil(130 / 64) = 3."""


def runbook_blocks() -> list[str]:
    """The ```sh blocks of the guide's bootstrap section marked ``RUNBOOK``, in order, unindented."""
    text = GUIDE.read_text()
    assert SECTION in text, f"{GUIDE.name} has no section {SECTION!r}"
    lines = text.split(SECTION, 1)[1].split("\n## ", 1)[0].splitlines()
    blocks: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() != "```sh" or lines[i - 1].strip() != RUNBOOK:
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        indent = len(line) - len(line.lstrip())
        blocks.append("\n".join(text[indent:] for text in lines[i + 1 : end]) + "\n")
    return blocks


def the_variables_asked_for() -> set[str]:
    """The names the section's first block (the team's values) exports."""
    section = GUIDE.read_text().split(SECTION, 1)[1]
    first = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return {name for line in first.splitlines() for name in re.findall(r"(?:export |\s)([A-Z][A-Z0-9_]*)=", line)}


def setting(value: object) -> object:
    """A plain setting as Pulumi reads it: `pulumi config set` writes `false` back as the string "false"."""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, list | dict) else str(value)


@dataclass
class Bootstrap:
    root: Path
    env: dict[str, str]
    dsn: str
    infisical: Infisical

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)


@pytest.fixture
def bootstrap(tmp_path: Path, pg_dsn: str, infisical: Infisical) -> Iterator[Bootstrap]:
    """A fresh clone, the team's variables pointing at the local services, and the application's side: its
    companies table with the two companies the committed tenants.yaml puts in prod."""
    root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "tests" / "node" / "node_modules").symlink_to(REPO / "tests" / "node" / "node_modules")
    # a person's shell: none of the test run's own settings
    user = ("PULUMI_", "INFISICAL_", "DATABASE_URL", "PG", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(user)}
    backend = tmp_path / "backend"
    backend.mkdir()
    env.update(
        SHELL="/bin/bash",
        PULUMI_BACKEND_URL=f"file://{backend}",
        STACK_SECRETS_PROVIDER="passphrase",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        DATABASE_URL=pg_dsn,
        PREVIEW_ROLE_PASSWORD=secrets.token_hex(24),
        EXPECTED_TENANTS=str(EXPECTED_TENANTS),
        GIT_AUTHOR_NAME="Bootstrap Test",
        GIT_AUTHOR_EMAIL="bootstrap@example.test",
        GIT_COMMITTER_NAME="Bootstrap Test",
        GIT_COMMITTER_EMAIL="bootstrap@example.test",
        **infisical.env,
        **FAKES,
    )
    # The Infisical server is the session's: prod starts empty.
    client = InfisicalClient(
        InfisicalCredentials(infisical.server.url, infisical.client_id, infisical.client_secret, infisical.project_id)
    )
    for folder in client.list_folders("prod", "/"):
        client.delete_folder("prod", f"/{folder}")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE companies (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " subdomain varchar(255) NOT NULL UNIQUE, name varchar(255) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO companies (subdomain, name) VALUES ('codewiser', 'CodeWiser Ltd'), ('acmecorp', 'Acme Corp')"
        )
    yield Bootstrap(root, env, pg_dsn, infisical)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for role in ROLES:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_runbook_bootstraps_prod_from_a_fresh_clone(bootstrap: Bootstrap) -> None:
    blocks = runbook_blocks()
    assert len(blocks) >= 4, "the bootstrap runbook's blocks are no longer marked"
    asked = the_variables_asked_for()
    assert (
        set(FAKES)
        | {"PULUMI_BACKEND_URL", "STACK_SECRETS_PROVIDER", "DATABASE_URL", "PREVIEW_ROLE_PASSWORD", "EXPECTED_TENANTS"}
        <= asked
    )
    assert {"INFISICAL_SITE_URL", "INFISICAL_PROJECT_ID", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET"} <= asked

    # One shell, as pasted: each block after the last, stopping at the first failing command.
    script = ["set -eo pipefail"]
    for i, block in enumerate(blocks):
        script += [f"echo '>>> block {i}'; echo '>>> block {i}' >&2", block]
    script.append("echo '>>> done'")
    ran = bootstrap.shell("\n".join(script))
    printed = ran.stdout + ran.stderr
    started = re.findall(r"^>>> block (\d+)$", ran.stdout, re.M)
    failed = blocks[int(started[-1])] if started else "(before the first block)"
    assert ran.returncode == 0 and ran.stdout.rstrip().endswith(">>> done"), (
        f"the runbook stopped in:\n{failed}\n{ran.stdout[-4000:]}\n{ran.stderr[-4000:]}"
    )
    outputs = re.split(r"^>>> block \d+$", ran.stdout, flags=re.M)[1:]
    planned = next(out for block, out in zip(blocks, outputs, strict=True) if "tenantctl plan" in block)
    assert "No changes: nothing would be written" in planned, planned

    # The stack file is committed: its plain settings kept, the secrets encrypted.
    assert bootstrap.shell("git status --porcelain --untracked-files=no").stdout == ""
    committed = yaml.safe_load(bootstrap.shell("git show HEAD:Pulumi.prod.yaml").stdout)["config"]
    plain = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    assert {key: setting(committed[key]) for key in plain} == {key: setting(value) for key, value in plain.items()}
    assert set(committed["tenant-secrets:derivationKey"]) == {"secure"}

    # What a user checks afterwards: nothing left to change, ...
    preview = bootstrap.shell(
        "source scripts/env.sh && pulumi preview --non-interactive --expect-no-changes --stack prod"
    )
    printed += preview.stdout + preview.stderr
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-3000:]

    # ... a new stack in buckets: the count the runbook set, and per store one resource per non-empty bucket,
    # none per tenant (the platform folder keeps its own) ...
    assert setting(committed["tenant-secrets:buckets"]) == "3"
    exported = bootstrap.shell("source scripts/env.sh && pulumi stack export --stack prod")
    assert exported.returncode == 0, exported.stderr
    holders = {
        resource["urn"].rsplit("::", 1)[-1]
        for resource in json.loads(exported.stdout)["deployment"]["resources"]
        if resource["type"].rsplit(":", 1)[-1] in {*KINDS, "InfisicalFolder", "DatabaseTenant"}
    }
    assert holders == {
        "hono-api-infisical",
        resource_name(bucket_of("codewiser", 3), "infisical"),
        resource_name(bucket_of("codewiser", 3), "database"),
        resource_name(bucket_of("acmecorp", 3), "database"),
    }

    # ... each prod tenant's rows in the database (acmecorp: database, codewiser: both) ...
    with bootstrap.db() as conn:
        rows = conn.execute(
            "SELECT c.subdomain, s.secret_key FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    keys: dict[str, set[str]] = {}
    for subdomain, key in rows:
        keys.setdefault(subdomain, set()).add(key)
    assert keys == {
        "acmecorp": {
            "STRIPE_SECRET_KEY",
            "SMTP_HOST",
            "SMTP_PORT",
            "SMTP_USERNAME",
            "SMTP_PASSWORD",
            "WEBHOOK_SIGNING_SECRET",
        },
        "codewiser": {"STRIPE_SECRET_KEY", "SENDGRID_API_KEY", "WEBHOOK_SIGNING_SECRET"},
    }

    # ... and the folders in Infisical's prod environment, as the official SDK reads them.
    infisical = bootstrap.infisical
    codewiser = sdk_listing(infisical, "prod", "/tenants/codewiser")
    assert codewiser is not None
    values = {s.secretKey: s.secretValue for s in codewiser}
    assert set(values) == {"STRIPE_SECRET_KEY", "SENDGRID_API_KEY", "WEBHOOK_SIGNING_SECRET"}
    assert values["STRIPE_SECRET_KEY"] == FAKES["CODEWISER_STRIPE_SECRET_KEY"]
    assert values["SENDGRID_API_KEY"] == FAKES["CODEWISER_SENDGRID_API_KEY"]
    assert sdk_listing(infisical, "prod", "/tenants/acmecorp") is None  # storage: database
    assert sdk_listing(infisical, "prod", "/tenants/another-company") is None  # not in prod
    platform = sdk_listing(infisical, "prod", "/hono-api")
    assert platform is not None
    assert {s.secretKey for s in platform} >= {
        "BETTER_AUTH_SECRET",
        "EMAIL_FROM",
        "RESEND_API_KEY",
        "MASTER_ENCRYPTION_KEY",
    }

    # The role is one the pull-request job accepts: its runs refuse a role that can write.
    as_preview = (
        'source scripts/env.sh && DATABASE_URL="postgresql://tenant_secrets_preview:$PREVIEW_ROLE_PASSWORD@'
        '${DATABASE_URL#*@}" TENANT_SECRETS_PULL_REQUEST=true tenantctl plan --stack prod'
    )
    pull_request = bootstrap.shell(as_preview)
    printed += pull_request.stdout + pull_request.stderr
    assert pull_request.returncode == 0, pull_request.stdout[-3000:] + pull_request.stderr[-3000:]
    assert "No changes: nothing would be written" in pull_request.stdout
    owner = bootstrap.shell("source scripts/env.sh && TENANT_SECRETS_PULL_REQUEST=true tenantctl plan --stack prod")
    printed += owner.stdout + owner.stderr
    assert owner.returncode != 0 and "can write" in owner.stdout + owner.stderr, owner.stdout + owner.stderr

    # A tenant whose company the application lacks fails the preview as step 3 says, naming it.
    said = re.search(r"one line naming them: `([^`]+)`", " ".join(GUIDE.read_text().split()))
    assert said, "the runbook no longer quotes the missing companies' message"
    tenants = bootstrap.root / "tenants.yaml"
    tenants.write_text(tenants.read_text() + "\n  - subdomain: newco\n    name: New Co\n    storage: database\n")
    refused = bootstrap.shell("source scripts/env.sh && pulumi preview --non-interactive --stack prod")
    printed += refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "the database is not ready for tenants.yaml on stack prod:" in refused.stdout
    assert said[1].replace("acmecorp", "newco") in refused.stdout
    bootstrap.shell("git checkout -- tenants.yaml")

    # No value the team set, nor the preview role's password, was printed.
    for name, value in [*FAKES.items(), ("PREVIEW_ROLE_PASSWORD", bootstrap.env["PREVIEW_ROLE_PASSWORD"])]:
        assert value not in printed, f"{name}'s value was printed"
    assert "fake-" not in printed, printed[max(printed.index("fake-") - 200, 0) :][:400]

"""End-to-end fixtures: the real Pulumi engine (Automation API, file backend in a temp dir), the
real PostgreSQL of tests/conftest.py and the local Infisical-compatible server."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError
from pulumi import automation as auto

from dev.project import lay_out
from infisical_server.testing import RunningServer, sample_config, start_server
from tenant_secrets.infisical import InfisicalClient, InfisicalCredentials
from tenant_secrets.tenantctl.plan_preview import rows_from_preview
from tenant_secrets.tenantctl.plan_rows import Row

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "e2e-test-passphrase-not-a-secret"
EXAMPLE_ENV_ALLOW = ("RESEND_API_KEY", "CODEWISER_SENDGRID_API_KEY")
"""The environment variables the repository's tenants.yaml reads: the demo's and the e2e stacks' envAllow."""


@dataclass
class Infisical:
    server: RunningServer
    project_id: str
    client_id: str
    client_secret: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "INFISICAL_SITE_URL": self.server.url,
            "INFISICAL_PROJECT_ID": self.project_id,
            "INFISICAL_CLIENT_ID": self.client_id,
            "INFISICAL_CLIENT_SECRET": self.client_secret,
        }

    def request_counts(self) -> dict[str, int]:
        body = requests.get(f"{self.server.url}/__admin/requests", timeout=10).json()
        counts: dict[str, int] = body["counts"]
        return counts

    def reset_counts(self) -> None:
        requests.post(f"{self.server.url}/__admin/requests/reset", timeout=10).raise_for_status()

    def writes(self) -> int:
        """Write requests (anything but GET) to the real API since the last reset, logins excluded."""
        return sum(
            n for route, n in self.request_counts().items() if not route.startswith("GET") and "/auth/" not in route
        )


def start_infisical(directory: Path) -> Infisical:
    """A local Infisical server with one project (dev, staging, prod) and one identity, unlimited."""
    project_id = str(uuid.uuid4())
    client_id, client_secret = str(uuid.uuid4()), secrets.token_hex(32)
    config = sample_config(project_id=project_id, client_id=client_id, client_secret=client_secret)
    return Infisical(start_server(directory, config), project_id, client_id, client_secret)


def sdk(infisical: Infisical) -> InfisicalSDKClient:
    """The official SDK, logged in as the stack's identity: what a person does by hand."""
    client = InfisicalSDKClient(host=infisical.server.url)
    client.auth.universal_auth.login(infisical.client_id, infisical.client_secret)
    return client


def sdk_listing(infisical: Infisical, env: str, path: str) -> list[Any] | None:
    """A folder's secrets as the official SDK lists them; None when the folder does not exist."""
    try:
        listed = sdk(infisical).secrets.list_secrets(
            project_id=infisical.project_id, environment_slug=env, secret_path=path
        )
    except APIError as err:
        if err.status_code == 404:
            return None
        raise
    return list(listed.secrets)


def git(repo: Path, *args: str) -> str:
    """git in ``repo`` as a test author, its output stripped; a failure raises."""
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.test", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="session")
def infisical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infisical]:
    running = start_infisical(tmp_path_factory.mktemp("infisical"))
    yield running
    running.server.stop()


@dataclass
class Project:
    """A copy of the project in a temp dir (code linked, tenants.yaml and stack config its own)."""

    root: Path
    env: dict[str, str]
    dsn: str
    infisical: Infisical
    outputs: list[str] = field(default_factory=list)

    def write_tenants(self, text: str) -> None:
        (self.root / "tenants.yaml").write_text(text)

    def stack(self, name: str = "dev") -> auto.Stack:
        return auto.create_or_select_stack(
            stack_name=name,
            work_dir=str(self.root),
            opts=auto.LocalWorkspaceOptions(env_vars=self.env, secrets_provider="passphrase"),
        )

    def capture(self, text: str) -> str:
        """Keep every output of the engine, to scan for secret values at the end."""
        self.outputs.append(text)
        return text

    def up(self, stack: auto.Stack, **kwargs: Any) -> auto.UpResult:
        result = stack.up(on_output=self.capture, color="never", **kwargs)
        self.capture(result.stdout + result.stderr)
        return result

    def preview(self, stack: auto.Stack, **kwargs: Any) -> auto.PreviewResult:
        result = stack.preview(on_output=self.capture, color="never", diff=True, **kwargs)
        self.capture(result.stdout + result.stderr)
        return result

    def persisted(self, stack: auto.Stack) -> str:
        """Everything persisted or shown about the stack: `pulumi stack export` as a user runs it, and with
        --show-secrets as anyone holding the state and its secrets provider's key reads it (issue 18: a
        value is not in the state, not even encrypted), every file of the backend, and the stack's config
        file."""
        exported = [
            subprocess.run(
                ["pulumi", "stack", "export", "--stack", stack.name, *flags],
                cwd=self.root,
                env={**os.environ, **self.env},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for flags in ([], ["--show-secrets"])
        ]
        backend = Path(self.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
        files = [p.read_text(errors="replace") for p in backend.rglob("*") if p.is_file()]
        config = [p.read_text() for p in self.root.glob("Pulumi.*.yaml")]
        return "\n".join([*exported, *files, *config])

    def plan(self, stack: auto.Stack) -> tuple[int, list[Row], str]:
        """`pulumi preview --json` as `tenantctl plan` reads it: exit status, rows, error text."""
        code, document, output = self.preview_json(stack)
        if code != 0:
            return code, [], output
        assert document is not None, output
        return 0, rows_from_preview(document, stack.name), ""

    def preview_json(self, stack: auto.Stack) -> tuple[int, dict[str, Any] | None, str]:
        """`pulumi preview --json --diff`: exit status, the document (None if unreadable), all output."""
        done = subprocess.run(
            ["pulumi", "preview", "--json", "--diff", "--non-interactive", "--stack", stack.name],
            cwd=self.root,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
        )
        self.capture(done.stdout + done.stderr)
        try:
            document = json.loads(done.stdout)
        except ValueError:
            document = None
        return done.returncode, document, done.stdout + done.stderr

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)


@pytest.fixture
def project(tmp_path: Path, pg_dsn: str, infisical: Infisical) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    lay_out(root)
    backend = tmp_path / "backend"
    backend.mkdir()
    env = {
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "DATABASE_URL": pg_dsn,
        "PYTHONPATH": str(REPO),
        **infisical.env,
    }
    # Each test starts with empty environments: the server is shared by the session, a stack an earlier test
    # left keeps its folders, and a destroy deletes only the keys and folders its own stack made (issue 13,
    # item 5), so folders adopted from an earlier test stay.
    client = InfisicalClient(
        InfisicalCredentials(infisical.server.url, infisical.client_id, infisical.client_secret, infisical.project_id)
    )
    for environment in ("dev", "staging", "prod"):
        for folder in client.list_folders(environment, "/"):
            client.delete_folder(environment, f"/{folder}")
    infisical.reset_counts()
    return Project(root=root, env=env, dsn=pg_dsn, infisical=infisical)


def configure(
    stack: auto.Stack,
    *,
    secrets_config: dict[str, Any],
    master_keys: dict[str, str],
    env_allow: Sequence[str] = (),
    shared_folders: Sequence[str] = (),
    **plain: str,
) -> None:
    """Stack config as a user would set it: plain settings, secrets as secrets, and the lists of what value
    sources may read (envAllow, sharedFolders: one entry per `--path 'tenant-secrets:envAllow[i]'`), in
    one `pulumi config set-all` (each `pulumi` command costs a fraction of a second)."""
    config = {
        **{f"tenant-secrets:envAllow[{i}]": auto.ConfigValue(name) for i, name in enumerate(env_allow)},
        **{f"tenant-secrets:sharedFolders[{i}]": auto.ConfigValue(path) for i, path in enumerate(shared_folders)},
        "tenant-secrets:environment": auto.ConfigValue(stack.name),
        "tenant-secrets:createCompanies": auto.ConfigValue("true"),
        "tenant-secrets:retainOnDelete": auto.ConfigValue("false"),
        **{f"tenant-secrets:{key}": auto.ConfigValue(value) for key, value in plain.items()},
        "tenant-secrets:derivationKey": auto.ConfigValue(secrets.token_hex(32), secret=True),
        **{
            f"tenant-secrets:masterKeys.{version}": auto.ConfigValue(key, secret=True)
            for version, key in master_keys.items()
        },
        **{
            f"tenant-secrets:secrets.{path}": auto.ConfigValue(value, secret=True)
            for path, value in flatten(secrets_config).items()
        },
    }
    stack.set_all_config(config, path=True)


def example_stack(project: Project, master_key: str) -> auto.Stack:
    """The dev stack over the repository's own tenants.yaml, with fake values for every source it names."""
    project.write_tenants((REPO / "tenants.yaml").read_text())
    project.env.update(RESEND_API_KEY="fake-resend-0001", CODEWISER_SENDGRID_API_KEY="fake-sendgrid-codewiser-0001")
    stack = project.stack("dev")
    configure(
        stack,
        master_keys={"v1": master_key},
        env_allow=EXAMPLE_ENV_ALLOW,
        secrets_config={
            "shared": {"stripe_test_key": "fake-stripe-shared-test-0001"},
            "acmecorp": {
                "STRIPE_SECRET_KEY": "fake-stripe-acmecorp-ex-0001",
                "SMTP_USERNAME": "fake-smtp-user-acmecorp",
                "SMTP_PASSWORD": "fake-smtp-password-acmecorp-0001",
            },
            "another-company": {"SENDGRID_API_KEY": "fake-sendgrid-another-ex-0001"},
        },
    )
    return stack


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = str(value)
    return flat


@pytest.fixture
def master_key() -> str:
    return os.urandom(32).hex()

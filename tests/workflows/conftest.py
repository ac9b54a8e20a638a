"""The git checkout the workflows run in, and act running them (docs/decisions/0051-workflows-run-in-a-test.md).

An origin repository in a temp dir holds this project's tracked files, a tenants.yaml of four Infisical tenants
in dev, and two dev stacks: `dev` (shard 1/2, the owner) and `dev-02` (shard 2/2), deployed once. act runs the
workflow files of that checkout on the host (`-P ubuntu-latest=-self-hosted`), the `uses:` actions given by
the stand-ins of tests/workflows/actions and `gh` by tests/workflows/bin/gh, against the local services."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import Cluster
from tenant_secrets.stack.shards import shard_of
from tests.e2e.conftest import REPO, Infisical, configure, git, start_infisical

HERE = Path(__file__).resolve().parent
PASSPHRASE = "fake-workflow-test-passphrase"
SUBDOMAINS = ["alpha", "bravo", "charlie", "delta"]
OWNER_TENANT = next(s for s in SUBDOMAINS if shard_of(s, 2) == 1)
"""A tenant of the owner shard, stack `dev`."""
STAND_INS = {
    "actions/checkout@v4": "checkout",
    "actions/setup-python@v5": "setup-python",
    "actions/setup-go@v5": "setup-go",
    "actions/cache@v4": "cache",
    "actions/upload-artifact@v4": "upload-artifact",
    "actions/download-artifact@v4": "download-artifact",
    "aws-actions/configure-aws-credentials@v4": "oidc-login",
    "azure/login@v2": "oidc-login",
    "google-github-actions/auth@v2": "oidc-login",
    "hashicorp/vault-action@v3": "oidc-login",
    "peter-evans/create-pull-request@v7": "create-pull-request",
}


def tenants(plans: dict[str, str]) -> str:
    """tenants.yaml: each tenant one plain PLAN value in dev's Infisical."""
    return "version: 1\ndefaults: {storage: infisical, environments: [dev]}\ntenants:\n" + "".join(
        f"  - subdomain: {s}\n    secrets:\n      PLAN: {{value: {plans.get(s, f'plan-{s}')}}}\n" for s in SUBDOMAINS
    )


@dataclass
class Run:
    """One act run: its exit status, its log, and the comments the workflow posted."""

    status: int
    log: str
    comments: list[dict[str, object]]

    def explain(self, lines: int = 60) -> str:
        """What to print when a check of this run fails: the last lines of each job with a failed step.

        act prints the jobs of a matrix interleaved, and marks every row of a matrix failed when one row
        fails, so the log's tail often shows a row whose steps all succeeded.
        """
        by_job: dict[str, list[str]] = {}
        for line in self.log.splitlines():
            job = re.match(r"\[([^\]]+)\]", line)
            by_job.setdefault(job[1].strip() if job else "", []).append(line)
        failed = [job for job, text in by_job.items() if any("\u274c" in line for line in text)]
        if not failed:
            return self.log[-6000:]
        return "\n".join("\n".join(by_job[job][-lines:]) for job in failed)


@dataclass
class Origin:
    """The repository the workflows run in, the services' credentials, and how to run a workflow."""

    root: Path
    tmp: Path
    env: dict[str, str]
    secrets: dict[str, str]
    variables: dict[str, str]
    infisical: Infisical

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """``command`` in the origin's main checkout, with the services' credentials (not a workflow's)."""
        return subprocess.run(
            list(command), cwd=self.root, env={**os.environ, **self.env}, capture_output=True, text=True, check=False
        )

    def act(
        self,
        event: str,
        workflow: str,
        payload: dict[str, object],
        job: str | None = None,
        matrix: tuple[str, ...] = (),
    ) -> Run:
        """`act EVENT -W .github/workflows/WORKFLOW` in the origin's main checkout, jobs on the host; with
        ``job``, that job and the jobs it needs; ``matrix``: the rows to run (`key:value`)."""
        run = self.tmp / f"act-{len(list(self.tmp.glob('act-*')))}"
        (run / "artifacts").mkdir(parents=True)
        (run / "event.json").write_text(json.dumps(payload))
        comments = run / "comments.json"
        secrets = run / "secrets.env"
        secrets.touch(mode=0o600)
        secrets.write_text("".join(f"{name}={value}\n" for name, value in self.secrets.items()))
        command = [
            shutil.which("act") or "act",
            event,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(run / "event.json"),
            "-P",
            "ubuntu-latest=-self-hosted",
            "--action-cache-path",
            str(run / "cache"),
            "--no-skip-checkout",
            "--action-offline-mode",
            "--no-cache-server",
            # One job at a time: on GitHub each job has a runner of its own; here jobs share one act
            # process, whose map of --local-repository actions is not locked, and two rows of a matrix
            # preparing the same stand-in at once failed a row before its first command.
            "--concurrent-jobs",
            "1",
            *(["-j", job] if job else []),
            *[arg for row in matrix for arg in ("--matrix", row)],
            *[f"--local-repository={name}={HERE / 'actions' / folder}" for name, folder in STAND_INS.items()],
            "--secret-file",
            str(secrets),
            *[arg for name, value in self.variables.items() for arg in ("--var", f"{name}={value}")],
        ]
        env = {
            **os.environ,
            "PATH": f"{HERE / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "STANDIN_ORIGIN": str(self.root),
            "STANDIN_PRODUCTS": str(REPO),
            "STANDIN_ARTIFACTS": str(run / "artifacts"),
            "STANDIN_COMMENTS": str(comments),
            "STANDIN_PULL_REQUESTS": str(run / "pull-requests"),
        }
        for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PYTHONPATH"):
            env.pop(name, None)
        done = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, check=False)
        posted = json.loads(comments.read_text()) if comments.exists() else []
        return Run(done.returncode, done.stdout + done.stderr, posted)


@pytest.fixture(scope="session")
def infisical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infisical]:
    """The local Infisical server, one per session (as tests/e2e's)."""
    running = start_infisical(tmp_path_factory.mktemp("infisical"))
    yield running
    running.server.stop()


def read_only(dsn: str, cluster: Cluster) -> str:
    """The pull requests' preview role (docs/guides/pull-requests.md): SELECT on the store, no write."""
    role, password = f"tenant_preview_{secrets.token_hex(4)}", f"fake-preview-password-{secrets.token_hex(8)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    return cluster.dsn(user=role, password=password, dbname=str(conninfo_to_dict(dsn)["dbname"]))


@pytest.fixture
def origin(tmp_path: Path, pg_dsn: str, pg_cluster: Cluster, infisical: Infisical) -> Iterator[Origin]:
    """This project as main, the two dev stacks configured, deployed and committed."""
    root = tmp_path / "origin"
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        source = REPO / name
        if name and source.is_file() and not source.is_symlink():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    for stack_file in root.glob("Pulumi.*.yaml"):
        stack_file.unlink()
    (root / "tenants.yaml").write_text(tenants({}))
    backend = tmp_path / "backend"
    backend.mkdir()
    env = {
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "DATABASE_URL": pg_dsn,
        "PYTHONPATH": str(root),
        **infisical.env,
    }
    (root / ".venv").symlink_to(REPO / ".venv")  # the deploy before the test runs the program with it
    options = auto.LocalWorkspaceOptions(env_vars=env, secrets_provider="passphrase")
    key = os.urandom(32).hex()
    for name, shard in (("dev", "1/2"), ("dev-02", "2/2")):
        stack = auto.create_stack(name, work_dir=str(root), opts=options)
        configure(stack, secrets_config={}, master_keys={"v1": key}, shard=shard, environment="dev")
        stack.up(color="never")
    (root / ".venv").unlink()
    preview_dsn = read_only(pg_dsn, pg_cluster)
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", "https://github.com/example/tenant-secrets.git")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main")
    yield Origin(
        root=root,
        tmp=tmp_path,
        env=env,
        secrets={
            "PULUMI_BACKEND_URL": env["PULUMI_BACKEND_URL"],
            "PULUMI_CONFIG_PASSPHRASE_dev": PASSPHRASE,
            "PREVIEW_DATABASE_URL_dev": preview_dsn,
            "PREVIEW_INFISICAL_CLIENT_ID_dev": infisical.client_id,
            "PREVIEW_INFISICAL_CLIENT_SECRET_dev": infisical.client_secret,
        },
        variables={
            "SECRETS_PROVIDER": "passphrase",
            "INFISICAL_SITE_URL": infisical.server.url,
            "INFISICAL_PROJECT_ID": infisical.project_id,
        },
        infisical=infisical,
    )

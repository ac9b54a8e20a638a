"""The pull-request job's steps, run here as the workflow runs them, on a hostile pull request.

A temp git repository holds this project as the base branch, with a dev stack whose secrets are set
with `pulumi config set --secret`. The pull request's head commit adds a tenant to tenants.yaml and
also changes `components/program.py`, the Makefile, `scripts/setup.sh` and `scripts/pr-plan.sh` to
print the job's credentials. Base and head are cloned into two folders, and the commands of
.github/workflows/pull-request.yml run with the protected credentials (fake values) in their
environment: `make -C base setup`, then `base/scripts/pr-plan.sh --stack dev --head head`.

The plan shows the head's new tenant (its data was used) and nothing of the head ran: neither its
mark nor any credential appears anywhere. The control, the approved job (`--code head`), runs the
head's code, and its mark does appear; and a database role that can write is refused. The job's runs are
declared steps on the base branch's dev stack.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pulumi import automation as auto

from dev.pg import Cluster
from tests.e2e.conftest import REPO, Infisical, Project, git
from tests.e2e.steps import Step, run_steps

pytestmark = pytest.mark.e2e

MARK = "HEAD-CODE-RAN"


def leaking_python(leak: Path, who: str) -> str:
    """A line of Python that writes the job's credentials to ``leak`` (any run of it is seen, whatever
    the engine does with the program's output) and prints them."""
    return (
        f"import os, sys; _leak = '{MARK} {who} ' + ' '.join(os.environ.get(k, '') for k in "
        "('INFISICAL_CLIENT_SECRET', 'PULUMI_CONFIG_PASSPHRASE', 'DATABASE_URL')); "
        f"open('{leak}', 'a').write(_leak + '\\n'); print(_leak, file=sys.stderr)\n"
    )


def leaking_shell(leak: Path, who: str) -> str:
    line = f"{MARK} {who} $INFISICAL_CLIENT_SECRET $PULUMI_CONFIG_PASSPHRASE $DATABASE_URL"
    return f'echo "{line}" | tee -a {leak} >&2\n'


BASE_TENANTS = """\
version: 1
defaults: {storage: both, environments: [dev]}
tenants:
  - subdomain: codewiser
    secrets:
      STRIPE_SECRET_KEY: {from: config}
"""
HEAD_TENANTS = (
    BASE_TENANTS
    + """\
  - subdomain: globex
    storage: infisical
    secrets:
      API_TOKEN: {generate: {bytes: 16}}
"""
)


@dataclass
class Job:
    """The runner: a workspace with base/ and head/, the job's environment, everything printed."""

    workspace: Path
    env: dict[str, str]
    printed: list[str] = field(default_factory=list)

    def run(self, *command: str, env: dict[str, str] | None = None) -> int:
        done = subprocess.run(
            command, cwd=self.workspace, env={**self.env, **(env or {})}, capture_output=True, text=True, check=False
        )
        self.printed.append(done.stdout + done.stderr)
        return done.returncode

    def everything(self) -> str:
        """All the job printed, and every file it wrote next to the checkouts."""
        files = [p.read_text(errors="replace") for p in self.workspace.glob("*.md")]
        return "\n".join([*self.printed, *files])


def clean_env(tmp_path: Path) -> dict[str, str]:
    """A runner's environment: nothing of this checkout's toolchain, venv or PYTHONPATH.

    The machine's own settings stay, as a runner's would: its caches and the certificates its package
    registries are reached through (without them npm waits out a timeout on every fetch).
    """
    ours = (str(REPO / ".state"), str(REPO / ".venv"))
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(ours))
    machine = ["HOME", "LANG", "GOPATH", "GOMODCACHE", "GOCACHE", "NODE_EXTRA_CA_CERTS"]
    machine += ["SSL_CERT_FILE", "SSL_CERT_DIR"]
    keep = {k: os.environ[k] for k in machine if k in os.environ}
    return {**keep, "PATH": path, "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_HOME": str(tmp_path / "pulumi-home")}


def make_origin(origin: Path, env: dict[str, str], leak: Path) -> tuple[auto.Stack, str, str]:
    """The base branch (this project, a dev stack with its secrets set) and the hostile head commit."""
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        source = REPO / name
        if name and source.is_file() and not source.is_symlink():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, origin / name)
    (origin / "tenants.yaml").write_text(BASE_TENANTS)
    git(origin, "init", "-q", "-b", "main")
    # `pulumi stack init`, then `pulumi config set --secret --path` of each at once (with this checkout's PATH:
    # neither runs the program)
    options = auto.LocalWorkspaceOptions(
        env_vars={k: v for k, v in env.items() if k != "PATH"}, secrets_provider="passphrase"
    )
    stack = auto.create_stack("dev", work_dir=str(origin), opts=options)
    stack.set_all_config(
        {
            path: auto.ConfigValue(value, secret=True)
            for path, value in (
                ("tenant-secrets:masterKeys.v1", os.urandom(32).hex()),
                ("tenant-secrets:derivationKey", os.urandom(32).hex()),
                ("tenant-secrets:secrets.codewiser.STRIPE_SECRET_KEY", "fake-stripe-codewiser-0001"),
            )
        },
        path=True,
    )
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "base")
    base = git(origin, "rev-parse", "HEAD")
    git(origin, "checkout", "-qb", "pull-request")
    (origin / "tenants.yaml").write_text(HEAD_TENANTS)
    program = origin / "components" / "program.py"
    future = "from __future__ import annotations\n"
    program.write_text(program.read_text().replace(future, future + leaking_python(leak, "program"), 1))
    makefile = origin / "Makefile"
    makefile.write_text(
        makefile.read_text().replace(
            "\t@bash scripts/setup.sh\n",
            f"\t@{leaking_shell(leak, 'Makefile').replace('$', '$$')}\t@bash scripts/setup.sh\n",
        )
    )
    for script in ("setup.sh", "pr-plan.sh"):
        shell = origin / "scripts" / script
        first, _, rest = shell.read_text().partition("\n")
        shell.write_text(f"{first}\n{leaking_shell(leak, script)}{rest}")
    git(origin, "commit", "-qam", "a new tenant, and code that prints the credentials")
    return stack, base, git(origin, "rev-parse", "HEAD")


@pytest.fixture
def read_only_dsn(pg_dsn: str, pg_cluster: Cluster) -> str:
    """A login role that may read and write nothing: the store's tables do not exist before the first up."""
    role, password = f"tenant_preview_{secrets.token_hex(4)}", f"fake-preview-password-{secrets.token_hex(8)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    return pg_cluster.dsn(user=role, password=password, dbname=str(conninfo_to_dict(pg_dsn)["dbname"]))


def test_a_pull_requests_code_never_runs_with_the_protected_credentials(
    tmp_path: Path, pg_dsn: str, read_only_dsn: str, infisical: Infisical
) -> None:
    env = clean_env(tmp_path)
    backend = tmp_path / "backend"
    backend.mkdir()
    credentials = {
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": f"fake-protected-passphrase-{secrets.token_hex(8)}",
        "DATABASE_URL": read_only_dsn,
        **infisical.env,
    }
    env.update(credentials)
    origin = tmp_path / "origin"
    origin.mkdir()
    leak = tmp_path / "leaked.txt"
    stack, base_sha, head_sha = make_origin(origin, env, leak)

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for folder, sha in (("base", base_sha), ("head", head_sha)):  # actions/checkout, twice
        subprocess.run(["git", "clone", "-q", str(origin), str(workspace / folder)], check=True)
        git(workspace / folder, "checkout", "-q", sha)
    for folder in ("base", "head"):  # actions/setup-python and actions/setup-node with the locks' packages
        (workspace / folder / ".venv").symlink_to(REPO / ".venv")
        (workspace / folder / "tests" / "node" / "node_modules").symlink_to(REPO / "tests" / "node" / "node_modules")
    job = Job(workspace, env)
    plan_for_head = ("base/scripts/pr-plan.sh", "--stack", "dev", "--head", "head")

    def set_up(project: Project, stack: auto.Stack) -> None:
        assert job.run("make", "-C", "base", "setup") == 0, job.printed[-1]

    def base_code_head_data(project: Project, stack: auto.Stack) -> None:
        status = job.run(*plan_for_head, "--out", "plan.md")
        plan = (workspace / "plan.md").read_text()
        assert status == 0, job.everything()
        assert f"the base branch's code at `{base_sha[:12]}`, never this pull request's" in plan
        assert "| globex | dev | infisical | `API_TOKEN` | generate | create |" in plan  # the head's data was previewed
        assert (
            "This pull request also changes code (`Makefile`, `components/program.py`, `scripts/pr-plan.sh`, "
            "`scripts/setup.sh`)" in plan
        )
        printed = job.everything()
        assert not leak.exists(), leak.read_text()
        assert MARK not in printed
        shown = [name for name, value in credentials.items() if name != "PULUMI_BACKEND_URL" and value in printed]
        assert not shown, f"{shown} appear in the job's output"

    def writable_role_refused(project: Project, stack: auto.Stack) -> None:
        refused = Job(workspace, {**env, "DATABASE_URL": pg_dsn})
        assert refused.run(*plan_for_head, "--out", "refused.md") == 1
        assert (
            "a pull request's preview needs a read-only database role in DATABASE_URL: role "
            in (workspace / "refused.md").read_text()
        )

    def head_code_ran(project: Project, stack: auto.Stack) -> None:
        approved = Job(workspace, env)
        approved.run(*plan_for_head, "--out", "approved.md", "--code", "head")
        approved_plan = (workspace / "approved.md").read_text()
        assert "this pull request's own code and data" in approved_plan
        assert "| globex | dev | infisical | `API_TOKEN` | generate | create |" in approved_plan
        ran = leak.read_text()
        for who in ("Makefile", "setup.sh", "program"):
            assert f"{MARK} {who} {credentials['INFISICAL_CLIENT_SECRET']}" in ran, approved.everything()

    steps = [
        Step("`make -C base setup`: the base branch's setup", up=False, check=set_up),
        Step(
            "the job's plan: the head's data with the base's code; nothing of the head ran, no credential shown",
            up=False,
            check=base_code_head_data,
        ),
        Step(
            "the same preview with the deploy's database role, which can write: refused, the comment says why",
            up=False,
            check=writable_role_refused,
        ),
        Step(
            "the control: the approved job (`--code head`) runs the head's own code, and its mark shows",
            up=False,
            check=head_code_ran,
        ),
    ]
    job_project = Project(root=workspace, env=credentials, dsn=read_only_dsn, infisical=infisical)
    run_steps(job_project, stack, steps, "a hostile pull request")

"""The README's local path, pasted into a shell at the root of a fresh clone: `make demo`, then the
commands the README lists after it. None of them may edit a tracked file (issue 17 #4). The demo's stack is
a new one, so its tenants are in buckets (docs/decisions/0053, slice 5).

Then every ```sh block of the guides (docs/guides/*.md), pasted into `make shell` on the demo's stack,
except the blocks marked `<!-- not run: <why> -->` on the line before their fence (they need real
services or stacks the demo does not have), and those marked `<!-- run as pasted by tests/... -->` (another
test runs them with the services they need).

The clone reuses this checkout's virtualenv and Node packages (the toolchain comes from the per-user
cache, as on any machine that ran `make setup` once); its services and stacks are its own, under its
own `.state/`, and are stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenant_secrets.engine.buckets import KINDS
from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.long]


def readme_local_commands() -> list[str]:
    """The commands of the README's block that follows "After it, from the repository root:"."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"After it, from the\s+repository root:\s+```sh\n(.*?)```", text, re.S)
    assert block, "the README no longer lists the commands to run after `make demo`"
    return [line.split("#", 1)[0].strip() for line in block[1].splitlines() if line.split("#", 1)[0].strip()]


NOT_RUN = re.compile(r"<!-- (not run: [^>]+|run as pasted by tests/[^>]+) -->")
"""A block the demo's stack cannot run (`not run: <why>`), or one another test runs with its own services."""


def guide_blocks() -> list[tuple[str, str]]:
    """The guides' ```sh blocks that run locally after `make demo`: (guide, block), in file order."""
    blocks: list[tuple[str, str]] = []
    for guide in sorted((REPO / "docs" / "guides").glob("*.md")):
        lines = guide.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "```sh":
                continue
            if i > 0 and NOT_RUN.fullmatch(lines[i - 1].strip()):
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            indent = len(line) - len(line.lstrip())
            blocks.append((guide.name, "\n".join(text[indent:] for text in lines[i + 1 : end]) + "\n"))
    return blocks


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "tests" / "node" / "node_modules").symlink_to(REPO / "tests" / "node" / "node_modules")
    yield root
    subprocess.run(["make", "services-down"], cwd=root, capture_output=True, check=False)


def shell(root: Path, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # a person's shell: none of the test run's services, nor the make that may have started it
    user = ("PULUMI_", "INFISICAL_", "DATABASE_URL", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(user)}
    env["SHELL"] = "/bin/bash"
    return subprocess.run(
        ["bash", "-c", command], cwd=root, env=env, input=stdin, capture_output=True, text=True, check=False
    )


def test_the_readme_local_commands_work_from_the_root_of_a_fresh_clone(clone: Path) -> None:
    tracked = "git status --porcelain --untracked-files=no"
    assert shell(clone, tracked).stdout == ""
    refused = shell(clone, "make plan")
    assert refused.returncode != 0
    assert "run `make demo` first" in refused.stderr

    demo = shell(clone, "make demo")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]

    # The demo's stack is new, so it holds its tenants in buckets (Pulumi.dev.yaml's `buckets: 1`): per store
    # one resource for every tenant; only the platform folder keeps its own.
    exported = shell(clone, "bash scripts/local.sh pulumi stack export")
    assert exported.returncode == 0, exported.stderr
    holders = sorted(
        resource["urn"].rsplit("::", 1)[-1]
        for resource in json.loads(exported.stdout)["deployment"]["resources"]
        if resource["type"].rsplit(":", 1)[-1] in {*KINDS, "InfisicalFolder", "DatabaseTenant"}
    )
    assert holders == ["bucket-0000-database", "bucket-0000-infisical", "hono-api-infisical"]

    commands = readme_local_commands()
    assert commands == ["make validate", "make plan", "make shell"]
    validated = shell(clone, "make validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "every value source set" in validated.stdout
    planned = shell(clone, "make plan")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes: nothing would be written" in planned.stdout
    inside = shell(clone, "make shell", stdin="tenantctl --help >/dev/null && pwd && pulumi stack --show-name\nexit\n")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split()[-2:] == [str(clone / ".state" / "demo" / "project"), "dev"]

    # An edit to tenants.yaml shows in `make plan`; no tracked file but tenants.yaml has changed.
    tenants = clone / "tenants.yaml"
    tenants.write_text(
        tenants.read_text().replace("SENDGRID_API_KEY: {from: config}", "SENDGRID_API_KEY: {decommission: true}")
    )
    planned = shell(clone, "make plan")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "| another-company | dev | infisical | `SENDGRID_API_KEY` | config | **delete** |" in planned.stdout
    assert shell(clone, tracked).stdout == " M tenants.yaml\n"

    # The guides' local blocks, on the demo's stack as `make shell` gives it (scripts/local.sh), tenants.yaml
    # as committed; each block stops at its first failing command.
    assert shell(clone, "git checkout -- tenants.yaml").returncode == 0
    blocks = guide_blocks()
    assert [guide for guide, _ in blocks] == ["operations.md"] * 3
    for guide, block in blocks:
        ran = shell(clone, "bash scripts/local.sh bash -ec " + shlex.quote(block))
        assert ran.returncode == 0, f"{guide}:\n{block}\n{ran.stdout[-3000:]}{ran.stderr[-3000:]}"
    assert shell(clone, tracked).stdout == ""

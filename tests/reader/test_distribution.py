"""The reader as a service installs it (issue 28): the wheel `tenant-secrets-reader` built from
readers/python ships exactly the reader's import closure of tenant_secrets, depends on nothing the
provisioning needs, installs alone in a fresh virtualenv, and the guide's block runs there as pasted."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenant_secrets.secret.envelope import Keyring
from tenant_secrets.store import TenantChange, apply_tenants, ensure_companies
from tests.conftest import fake_value
from tests.reader.conftest import ENVIRONMENT, Services, publish

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = REPO / "readers" / "python"
GUIDE = REPO / "docs" / "guides" / "master-key-and-readers.md"
READING_NEEDS = {"cryptography", "psycopg", "infisical_sdk", "requests"}
"""The third-party modules the reader may import: the issue's "only what reading needs"."""
NEVER = {"pulumi", "fastapi", "uvicorn", "starlette", "pydantic", "ruamel.yaml", "pyyaml", "grpcio", "jsonschema"}
"""Distributions of the provisioning side that must not come with the reader."""
CODEWISER = str(uuid.UUID(int=0xC0DE))


def import_closure(package: str = "tenant_secrets.reader") -> tuple[set[str], set[str]]:
    """The repository files that importing ``package`` runs (each module and its packages' ``__init__``), and
    the top-level names of the other modules they import, read from the source (nothing is imported)."""
    files: set[str] = set()
    external: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        base = REPO / name.replace(".", "/")
        path = base / "__init__.py" if (base / "__init__.py").exists() else base.with_suffix(".py")
        if not path.exists():  # a name imported from a module, not a module
            continue
        relative = str(path.relative_to(REPO))
        if relative in files:
            continue
        files.add(relative)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for imported in names:
                if imported.split(".")[0] == "tenant_secrets":
                    todo.append(imported)
                else:
                    external.add(imported.split(".")[0])
    return files, external


def shipped() -> dict[str, str]:
    """readers/python/pyproject.toml's force-include: repository file -> path in the wheel."""
    config = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())
    mapping = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    return {str((DISTRIBUTION / source).resolve().relative_to(REPO)): target for source, target in mapping.items()}


def test_the_distribution_ships_exactly_the_readers_import_closure_and_needs_only_what_reading_needs() -> None:
    files, external = import_closure()
    assert shipped() == {f: f for f in files}, "readers/python/pyproject.toml's file list is not the reader's closure"
    assert external - set(sys.stdlib_module_names) == READING_NEEDS
    config = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())
    requirements = {re.split(r"[\[<>=~; ]", r)[0] for r in config["project"]["dependencies"]}
    assert requirements == {"cryptography", "psycopg", "infisicalsdk", "requests"}


def guide_block() -> str:
    """The guide's Python block marked to run as pasted."""
    text = GUIDE.read_text()
    found = re.search(
        r"<!-- runs as pasted: tests/reader/test_distribution\.py[^>]*-->\n```python\n(.*?)```", text, re.S
    )
    assert found, "the guide no longer has the reader's block marked to run as pasted"
    return found[1]


@pytest.fixture(scope="module")
def reader_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (no system or project packages) with the wheel built from readers/python."""
    root = tmp_path_factory.mktemp("reader-dist")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(DISTRIBUTION)])
    (wheel,) = (root / "dist").glob("tenant_secrets_reader-*.whl")
    base = getattr(sys, "_base_executable", sys.executable)  # not this virtualenv's interpreter
    run([base, "-m", "venv", str(root / "venv")])
    run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    return root / "venv"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


@pytest.fixture
def guide_tenants(services: Services) -> Iterator[Keyring]:
    """The guide's tenants: codewiser in the database, another-company in Infisical only (no company row)."""
    database, infisical = services.database, services.infisical
    keyring = publish(infisical, services.master_keys, [1], current=1)
    ensure_companies(database.owner, database.settings, {"codewiser": (CODEWISER, None)})
    change = TenantChange({"STRIPE_SECRET_KEY": fake_value("codewiser-stripe")})
    apply_tenants(database.owner, database.settings, {CODEWISER: change}, keyring)
    infisical.apply_secrets(
        ENVIRONMENT, "/tenants/another-company", upsert={"SENDGRID_API_KEY": fake_value("another-sendgrid")}
    )
    yield keyring
    infisical.delete_folder(ENVIRONMENT, "/tenants/another-company")


@pytest.mark.long
def test_the_wheel_installs_alone_in_a_fresh_virtualenv_and_the_guides_block_runs_as_pasted(
    reader_venv: Path, services: Services, guide_tenants: Keyring, tmp_path: Path
) -> None:
    python = str(reader_venv / "bin" / "python")
    listed = json.loads(run([python, "-m", "pip", "list", "--format", "json"]).stdout)
    installed = {d["name"].lower().replace("_", "-") for d in listed}
    assert "tenant-secrets-reader" in installed
    assert not installed & NEVER, f"the reader brought {sorted(installed & NEVER)}"
    run([python, "-m", "pip", "check"])

    block = tmp_path / "reader_example.py"
    block.write_text(guide_block())
    credentials = services.credentials
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "INFISICAL_SITE_URL": credentials.site_url,
        "INFISICAL_PROJECT_ID": credentials.project_id,
        "INFISICAL_CLIENT_ID": credentials.client_id,
        "INFISICAL_CLIENT_SECRET": credentials.client_secret,
        "INFISICAL_ENVIRONMENT": ENVIRONMENT,
        "APP_DATABASE_URL": services.database.app_dsn,
    }
    where = run([python, "-c", "import tenant_secrets; print(tenant_secrets.__file__)"], cwd=tmp_path, env=env)
    assert where.stdout.startswith(str(reader_venv)), "imported from the virtualenv, not from this checkout"
    ran = run([python, str(block)], cwd=tmp_path, env=env)

    stripe, sendgrid = fake_value("codewiser-stripe"), fake_value("another-sendgrid")
    assert ran.stdout == f"read {len(stripe)} and {len(sendgrid)} characters\n"
    assert stripe not in ran.stdout + ran.stderr
    assert sendgrid not in ran.stdout + ran.stderr
    recorded = services.database.owner.execute(
        "SELECT tenant, secret_key, source, outcome FROM company_secret_access ORDER BY id"
    ).fetchall()
    assert recorded == [
        ("codewiser", "STRIPE_SECRET_KEY", "database", "found"),
        ("another-company", "SENDGRID_API_KEY", "infisical", "found"),
    ]

"""The production guide's inventory of what each workflow reads, kept true: every `secrets.X` and `vars.X`
a workflow file uses is in that workflow's row of docs/guides/production.md, and every name a row lists
is used by that workflow. A team sets up its GitHub environments from that table alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
GUIDE = ROOT / "docs" / "guides" / "production.md"
SECTION = "## CI: what each workflow reads"

_PLAIN = re.compile(r"\b(secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)")
_FORMATTED = re.compile(r"\b(secrets|vars)\[format\('([A-Za-z0-9_]*)\{0\}([A-Za-z0-9_]*)'")
_NAME = re.compile(r"`([A-Z][A-Z0-9_]*(?:<ENV>[A-Z0-9_]*)?)`")


def used(path: Path) -> dict[str, set[str]]:
    """The secret and variable names a workflow file reads; `format('X_{0}', ...)` reads X_<ENV>."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    names: dict[str, set[str]] = {"secrets": set(), "vars": set()}
    for kind, name in _PLAIN.findall(text):
        names[kind].add(name)
    for kind, head, tail in _FORMATTED.findall(text):
        names[kind].add(f"{head}<ENV>{tail}")
    return names


def inventory() -> dict[str, dict[str, set[str]]]:
    """The guide's table: for each workflow its row names, the backticked names of its secrets and variables."""
    text = GUIDE.read_text()
    assert SECTION in text, f"{GUIDE.name} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, set[str]]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`.github/workflows/"):
            continue
        workflow = cells[0].split("`")[1].removeprefix(".github/workflows/")
        rows[workflow] = {"secrets": set(_NAME.findall(cells[2])), "vars": set(_NAME.findall(cells[3]))}
    return rows


def workflow_files() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def test_every_workflow_has_one_row() -> None:
    assert sorted(inventory()) == workflow_files()


@pytest.mark.parametrize("workflow", workflow_files())
@pytest.mark.parametrize("kind", ["secrets", "vars"])
def test_the_row_lists_exactly_what_the_workflow_reads(workflow: str, kind: str) -> None:
    listed = inventory().get(workflow, {}).get(kind, set())
    reads = used(WORKFLOWS / workflow)[kind]
    assert not reads - listed, f"{workflow} reads {kind} the guide's row does not list"
    assert not listed - reads, f"the guide's row for {workflow} lists {kind} it never reads"


def test_the_reader_sees_formatted_names_as_the_guide_writes_them(tmp_path: Path) -> None:
    """`secrets[format('PREVIEW_DATABASE_URL_{0}', matrix.environment)]` is the guide's PREVIEW_DATABASE_URL_<ENV>."""
    path = tmp_path / "w.yml"
    path.write_text(
        "# secrets.IN_A_COMMENT\n"
        "env:\n  A: ${{ secrets[format('PREVIEW_DATABASE_URL_{0}', matrix.environment)] }}\n"
        "  B: ${{ vars.AWS_REGION }}\n  C: ${{ toJSON(secrets) }}\n"
    )
    assert used(path) == {"secrets": {"PREVIEW_DATABASE_URL_<ENV>"}, "vars": {"AWS_REGION"}}

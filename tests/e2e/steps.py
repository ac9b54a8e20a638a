"""Declared steps for scenarios on the real engine: each step says what changes (tenants.yaml, the stack's
config, something done by hand), what the reviewer's plan shows, and what the stores hold after its `up`.

`run_steps` runs them in order and checks every step, so one failing phase is reported by its name
without hiding the next ones (as Terraform providers' declarative TestSteps do: the scenario reads as
data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pulumi import automation as auto

from tenant_secrets.tenantctl.plan_comment import Row
from tests.e2e.conftest import Project, sdk, sdk_listing

ENVIRONMENT = "dev"


@dataclass(frozen=True)
class Step:
    """One phase; every expectation left at its default is not checked."""

    name: str
    tenants: str | None = None
    """tenants.yaml as it is from this step on."""
    config: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(owner, key) -> a value set in the stack's config (`secrets.<owner>.<key>`)."""
    by_hand: Callable[[Project], None] | None = None
    """A change made outside tenants.yaml before the plan (a hand-made folder, drift)."""
    plan: Sequence[Row] | None = None
    """The plan's rows, exactly (the plan runs only when a step expects something of it)."""
    plan_includes: Sequence[Row] = ()
    """Rows the plan shows, among others."""
    refused: Sequence[str] = ()
    """The plan fails, its error saying each of these; the step runs no `up` (the stores are still checked)."""
    refresh_finds_drift: bool = False
    """`pulumi refresh` before the `up` finds a changed resource."""
    writes: int | None = None
    """Infisical write requests the `up` sends."""
    folders: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Infisical folder path -> its secrets after the step (exactly these keys and values)."""
    versions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Infisical folder path -> key -> the secret's version after the step (adoption rewrites nothing)."""
    tenant_folders: Mapping[str, bool] = field(default_factory=dict)
    """Folder name -> whether it is under /tenants after the step (other tests' folders are left out)."""
    rows: set[str] | None = None
    """The keys in company_secrets after the step."""


def _folder(project: Project, path: str) -> dict[str, tuple[str, int]]:
    listed = sdk_listing(project.infisical, ENVIRONMENT, path) or []
    return {s.secretKey: (s.secretValue, s.version) for s in listed}


def _apply(project: Project, stack: auto.Stack, step: Step) -> None:
    if step.tenants is not None:
        project.write_tenants(step.tenants)
    for (owner, key), value in step.config.items():
        path = f"tenant-secrets:secrets.{owner}.{key}"
        stack.set_config(path, auto.ConfigValue(value, secret=True), path=True)
    if step.by_hand is not None:
        step.by_hand(project)
    if step.refused or step.plan is not None or step.plan_includes:
        _check_plan(project, stack, step)
    if not step.refused:
        if step.refresh_finds_drift:
            refreshed = stack.refresh(on_output=project.capture, color="never")
            assert (refreshed.summary.resource_changes or {}).get(auto.OpType.UPDATE, 0) >= 1, "refresh found nothing"
        project.infisical.reset_counts()
        project.up(stack)
        if step.writes is not None:
            assert project.infisical.writes() == step.writes, f"{project.infisical.writes()} Infisical writes"
    _check_stores(project, step)


def _check_plan(project: Project, stack: auto.Stack, step: Step) -> None:
    status, rows, error = project.plan(stack)
    if step.refused:
        assert status != 0, "the plan was not refused"
        missing = [text for text in step.refused if text not in error]
        assert not missing, f"the plan's error does not say {missing}: {error}"
        return
    assert status == 0, f"the plan failed: {error}"
    if step.plan is not None:
        assert rows == list(step.plan), f"plan rows {rows}"
    missing_rows = [row for row in step.plan_includes if row not in rows]
    assert not missing_rows, f"the plan lacks {missing_rows}: {rows}"


def _check_stores(project: Project, step: Step) -> None:
    for path, expected in step.folders.items():
        held = {key: value for key, (value, _) in _folder(project, path).items()}
        assert held == dict(expected), f"{path} holds {sorted(held)} (values not shown)"
    for path, expected_versions in step.versions.items():
        versions = {key: version for key, (_, version) in _folder(project, path).items() if key in expected_versions}
        assert versions == dict(expected_versions), f"{path} versions {versions}"
    if step.tenant_folders:
        listed = sdk(project.infisical).folders.list_folders(
            project_id=project.infisical.project_id, environment_slug=ENVIRONMENT, path="/tenants"
        )
        names = {f.name for f in listed.folders}
        found = {name: name in names for name in step.tenant_folders}
        assert found == dict(step.tenant_folders), f"/tenants holds {sorted(names)}"
    if step.rows is not None:
        with project.db() as conn:
            keys = {k for (k,) in conn.execute("SELECT secret_key FROM company_secrets").fetchall()}
        assert keys == step.rows, f"company_secrets holds {sorted(keys)}"


def run_steps(project: Project, stack: auto.Stack, steps: Sequence[Step]) -> None:
    """Run every step in order; fail at the end, naming each step that failed and why."""
    failed: list[str] = []
    for number, step in enumerate(steps, 1):
        try:
            _apply(project, stack, step)
        except (AssertionError, auto.CommandError) as err:
            failed.append(
                f"step {number} ({step.name}): {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            )
    assert not failed, "\n".join(failed)

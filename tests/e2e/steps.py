"""Declared steps for scenarios on the real engine: each step says what changes (tenants.yaml, the stack's
config, the environment, something done by hand), what the reviewer's plan shows, what the run does
(`refresh`, `up`, an `up` that must or may fail) and what the stores hold after it.

`run_steps` runs them in order on one stack and checks every step, so one failing phase is reported by
the scenario's and the step's names without hiding the next ones (as Terraform providers' declarative
TestSteps do: the scenario reads as data). Every expectation left at its default is not checked, and
an engine command runs only when a step expects something of it: a plan or a preview costs seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi import automation as auto

from tenant_secrets.tenantctl.plan_rows import Row
from tests.e2e.conftest import Project, sdk, sdk_listing

ENVIRONMENT = "dev"
LOGIN = "POST /api/v1/auth/universal-auth/login"
LIST = "GET /api/v3/secrets/raw"
BATCH = "/api/v3/secrets/batch/raw"
FOLDERS = "/api/v2/folders"

Check = Callable[[Project, auto.Stack], None]


@dataclass(frozen=True)
class Step:
    """One phase; every expectation left at its default is not checked."""

    name: str
    stack: str | None = None
    """The step runs on this stack of the project (a shard, another environment) instead of the scenario's."""

    # --- what changes before the run ---
    tenants: str | None = None
    """tenants.yaml as it is from this step on."""
    config: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(owner, key) -> a value set in the stack's config (`secrets.<owner>.<key>`), as a secret."""
    settings: Mapping[str, str | None] = field(default_factory=dict)
    """A stack setting (`tenant-secrets:<path>`, e.g. `activeKeyVersion`) -> its plain value; None removes it."""
    secret_settings: Mapping[str, str | None] = field(default_factory=dict)
    """The same for secrets (`masterKeys.v2`); None removes it."""
    env: Mapping[str, str | None] = field(default_factory=dict)
    """The engine's environment from this step on (None unsets a variable)."""
    by_hand: Callable[[Project], None] | None = None
    """A change made outside tenants.yaml before the plan (a hand-made folder, drift, a trigger, a command);
    it runs before the stack's config is changed."""

    # --- what the reviewer sees (`pulumi preview --json`, as `tenantctl plan` reads it) ---
    plan: Sequence[Row] | None = None
    """The plan's rows, exactly."""
    plan_includes: Sequence[Row] = ()
    """Rows the plan shows, among others."""
    refused: Sequence[str] = ()
    """The plan fails, its error saying each of these; the step runs no `up` unless ``fails`` expects it to fail
    too (the stores are still checked)."""
    preview: Mapping[str, int] | None = None
    """`pulumi preview`'s changes by operation, "same" left out ({}: the preview shows no change)."""
    preview_fails: Sequence[str] = ()
    """`pulumi preview` fails, its error saying each of these."""
    before: Check | None = None
    """Anything checked before the run (after the plan), in code: what a reviewer or a command reports of the
    change, as the stack is before it is applied."""

    # --- what the run does ---
    refresh: int | None = None
    """`pulumi refresh` runs (before the `up`, if any) and finds this many resources changed."""
    refresh_requests: Mapping[str, int] | None = None
    """Infisical requests of the refresh, by route, exactly."""
    up: bool = True
    """Whether the step runs `pulumi up` (a refused plan runs none)."""
    fails: Sequence[str] = ()
    """The `up` fails, its error saying each of these."""
    may_fail: bool = False
    """The `up` may fail or not (a fault at a random point); either way its output is kept for the secret scans
    (a check reads which from `stack.info()`)."""
    changes: Mapping[str, int] | None = None
    """The `up`'s resource changes by operation, "same" left out ({}: nothing changed)."""
    shows: Sequence[str] = ()
    """Patterns (regular expressions) the `up`'s output, with its diff, matches (what a user reads)."""
    hides: Sequence[str] = ()
    """Text the `up`'s output, or its error, does not hold (a value, a key never named)."""
    requests: Mapping[str, int] | None = None
    """Infisical requests of the `up`, by route, exactly ({}: none at all, not even a login)."""
    writes: int | None = None
    """Infisical write requests the `up` sends (logins excluded)."""
    sends: Mapping[str, int] | None = None
    """Infisical write requests of the `up`, by route, exactly (logins excluded)."""
    destroy: bool = False
    """`pulumi destroy` runs after the step's `up` (or instead of it, with ``up=False``)."""

    # --- what the stores hold after it ---
    folders: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    """Infisical folder path -> its secrets after the step (exactly these keys and values; None: no folder)."""
    versions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Infisical folder path -> key -> the secret's version after the step (adoption rewrites nothing)."""
    tenant_folders: Mapping[str, bool] = field(default_factory=dict)
    """Folder name -> whether it is under /tenants after the step (other tests' folders are left out)."""
    rows: set[str] | None = None
    """The keys in company_secrets after the step."""
    check: Check | None = None
    """Anything else the step checks, in code (named for what it checks)."""


def folder(project: Project, path: str, environment: str = ENVIRONMENT) -> dict[str, tuple[str, int]] | None:
    """Key -> (value, version) of a folder, through the official SDK; None when the folder does not exist."""
    listed = sdk_listing(project.infisical, environment, path)
    return None if listed is None else {s.secretKey: (s.secretValue, s.version) for s in listed}


def values(project: Project, path: str, environment: str = ENVIRONMENT) -> dict[str, str] | None:
    """Key -> value of a folder; None when the folder does not exist."""
    found = folder(project, path, environment)
    return None if found is None else {key: value for key, (value, _) in found.items()}


def written(project: Project, owners: Sequence[str], environment: str = ENVIRONMENT) -> dict[str, Any]:
    """What any write changes: each owner's folder under /tenants as (value, version) per key, each row's
    ciphertext, version, updated_at and xmin (any write of a row changes it), and the number of changes the
    Infisical server audited."""
    folders = {name: folder(project, f"/tenants/{name}", environment) for name in owners}
    with project.db() as conn:
        found = conn.execute(
            "SELECT c.subdomain, s.secret_key, s.secret_value_encrypted, s.version, s.updated_at::text, s.xmin::text"
            " FROM company_secrets s JOIN companies c ON c.id = s.company_id"
        ).fetchall()
    rows = {(r[0], r[1]): tuple(r[2:]) for r in found}
    return {"folders": folders, "rows": rows, "audited": len(project.infisical.server.audit())}


def hand_made(project: Project, path: str, secrets: Mapping[str, str], environment: str = ENVIRONMENT) -> None:
    """A folder and secrets made by hand, before the tool, with the official SDK."""
    client = sdk(project.infisical)
    parent, _, name = path.rpartition("/")
    client.folders.create_folder(
        name=name, environment_slug=environment, project_id=project.infisical.project_id, path=parent or "/"
    )
    for key, value in secrets.items():
        client.secrets.create_secret_by_name(
            secret_name=key,
            project_id=project.infisical.project_id,
            secret_path=path,
            environment_slug=environment,
            secret_value=value,
        )


def sent(project: Project) -> dict[str, int]:
    """Infisical write requests since the last reset, by route (logins are not writes)."""
    return {r: n for r, n in project.infisical.request_counts().items() if not r.startswith("GET") and r != LOGIN}


def audited(project: Project, action: str) -> dict[tuple[str, str], int]:
    """How often the Infisical server recorded ``action`` (create-folder, create-secret, ...) per (path, key)."""
    found: dict[tuple[str, str], int] = {}
    for entry in project.infisical.server.audit():
        if entry["action"] == action:
            where = (str(entry["path"]), str(entry["key"]))
            found[where] = found.get(where, 0) + 1
    return found


def resources(stack: auto.Stack) -> dict[str, dict[str, Any]]:
    """The stack's resources in its state, by name (the last part of the URN)."""
    deployment = stack.export_stack().deployment or {}
    return {str(r["urn"]).rsplit("::", 1)[-1]: r for r in deployment.get("resources") or []}


def assert_nothing_persisted(project: Project, stack: auto.Stack, secret_values: Sequence[str]) -> None:
    """No value, key or credential in the state (with secrets shown), the backend's files, the stack's
    config, anything the engine printed or the Infisical server's log; each hit named."""
    everything = project.persisted(stack) + "".join(project.outputs) + project.infisical.server.log()
    found = [value for value in [*secret_values, project.infisical.client_secret] if value in everything]
    assert not found, f"{len(found)} secret value(s) persisted or printed: {[v[:12] + '...' for v in found]}"


def command(
    project: Project, *args: str, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command in the project's directory as a user runs it there, with the project's environment changed
    by ``env`` (None unsets a variable); its output is kept for the secret scans."""
    environment = {**os.environ, **project.env}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run(args, cwd=project.root, env=environment, capture_output=True, text=True, check=False)
    project.capture(done.stdout + done.stderr)
    return done


def tenantctl(
    project: Project, *args: str, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`tenantctl <args>` in the project."""
    return command(project, sys.executable, "-m", "tenant_secrets.tenantctl", *args, env=env)


def pulumi(
    project: Project, *args: str, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pulumi <args> --non-interactive` in the project (the stack is named in ``args``)."""
    return command(project, "pulumi", *args, "--non-interactive", env=env)


def _ops(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {str(op): n for op, n in (summary or {}).items() if str(op) != "same" and n}


def _change(project: Project, step: Step) -> None:
    """What changes outside the stack's config: tenants.yaml, the environment, anything done by hand."""
    if step.tenants is not None:
        project.write_tenants(step.tenants)
    for variable, value in step.env.items():
        if value is None:
            project.env.pop(variable, None)
        else:
            project.env[variable] = value
    if step.by_hand is not None:
        step.by_hand(project)


def _configure(stack: auto.Stack, step: Step) -> None:
    changed = {
        f"tenant-secrets:secrets.{owner}.{key}": auto.ConfigValue(value, secret=True)
        for (owner, key), value in step.config.items()
    }
    for settings, secret in ((step.settings, False), (step.secret_settings, True)):
        for name, setting in settings.items():
            if setting is None:
                stack.remove_config(f"tenant-secrets:{name}", path=True)
            else:
                changed[f"tenant-secrets:{name}"] = auto.ConfigValue(setting, secret=secret)
    if changed:
        stack.set_all_config(changed, path=True)


def _run(project: Project, stack: auto.Stack, step: Step) -> None:
    if step.refused or step.plan is not None or step.plan_includes:
        _check_plan(project, stack, step)
    if step.preview is not None:
        preview = project.preview(stack)
        assert _ops(preview.change_summary) == dict(step.preview), f"the preview: {_ops(preview.change_summary)}"
    if step.preview_fails:
        with_error(project, lambda: project.preview(stack), step.preview_fails, "the preview")
    if step.before is not None:
        step.before(project, stack)
    if step.refresh is not None:
        project.infisical.reset_counts()
        refreshed = stack.refresh(on_output=project.capture, color="never")
        found = (refreshed.summary.resource_changes or {}).get(auto.OpType.UPDATE, 0)
        changed = [line.strip() for line in refreshed.stdout.splitlines() if line.lstrip().startswith("~")]
        assert found == step.refresh, f"refresh found {found} changed resource(s): {changed}"
        if step.refresh_requests is not None:
            counts = project.infisical.request_counts()
            assert counts == dict(step.refresh_requests), f"refresh sent Infisical {counts}"
    if (step.refused and not step.fails) or not step.up:
        if step.destroy:
            stack.destroy(on_output=project.capture, color="never")
        return
    project.infisical.reset_counts()
    if step.fails:
        output = with_error(project, lambda: project.up(stack), step.fails, "the up")
    elif step.may_fail:
        try:
            result = project.up(stack)
        except auto.CommandError as err:
            output = project.capture(str(err))
        else:
            output = result.stdout + result.stderr
    else:
        result = project.up(stack, diff=bool(step.shows))
        output = result.stdout + result.stderr
        if step.changes is not None:
            ops = _ops(result.summary.resource_changes)
            assert ops == dict(step.changes), f"the up changed {ops}"
    unmatched = [pattern for pattern in step.shows if not re.search(pattern, output)]
    assert not unmatched, f"the up's output does not show {unmatched}: {output[-3000:]}"
    shown = [text for text in step.hides if text in output]
    assert not shown, f"the up's output shows {len(shown)} thing(s) it must not: {[t[:12] for t in shown]}"
    if step.requests is not None:
        counts = project.infisical.request_counts()
        assert counts == dict(step.requests), f"the up sent Infisical {counts}"
    if step.writes is not None:
        assert project.infisical.writes() == step.writes, f"the up sent {sent(project)} to Infisical"
    if step.sends is not None:
        assert sent(project) == dict(step.sends), f"the up sent {sent(project)} to Infisical"
    if step.destroy:
        stack.destroy(on_output=project.capture, color="never")


def with_error(project: Project, action: Callable[[], object], says: Sequence[str], what: str) -> str:
    """Run an engine command that must fail; check its error says each of ``says``; return (and keep, for
    the secret scans) its output."""
    try:
        action()
    except auto.CommandError as err:
        error = project.capture(str(err))
    else:
        raise AssertionError(f"{what} did not fail")
    missing = [text for text in says if text not in error]
    assert not missing, f"{what}'s error does not say {missing}: {error[-2000:]}"
    return error


def _check_plan(project: Project, stack: auto.Stack, step: Step) -> None:
    status, rows, error = project.plan(stack)
    if step.refused:
        assert status != 0, "the plan was not refused"
        missing = [text for text in step.refused if text not in error]
        assert not missing, f"the plan's error does not say {missing}: {error[-2000:]}"
        return
    assert status == 0, f"the plan failed: {error[-2000:]}"
    if step.plan is not None:
        assert rows == list(step.plan), f"plan rows {rows}"
    missing_rows = [row for row in step.plan_includes if row not in rows]
    assert not missing_rows, f"the plan lacks {missing_rows}: {rows}"


def _check_stores(project: Project, stack: auto.Stack, step: Step) -> None:
    for path, expected in step.folders.items():
        held = values(project, path)
        if expected is None:
            assert held is None, f"{path} exists, holding {sorted(held or {})}"
        else:
            assert held == dict(expected), f"{path} holds {sorted(held or {})} (values not shown)"
    for path, expected_versions in step.versions.items():
        versions = {key: version for key, (_, version) in (folder(project, path) or {}).items()}
        versions = {key: version for key, version in versions.items() if key in expected_versions}
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
    if step.check is not None:
        step.check(project, stack)


def run_steps(project: Project, stack: auto.Stack, steps: Sequence[Step], scenario: str = "") -> None:
    """Run every step in order; fail at the end, naming the scenario and each step that failed and why."""
    failed: list[str] = []
    for number, step in enumerate(steps, 1):
        try:
            _change(project, step)
            on = stack if step.stack is None else project.stack(step.stack)  # after `by_hand`, which may make it
            _configure(on, step)
            _run(project, on, step)
            _check_stores(project, on, step)
        except Exception as err:  # any step's failure is named, and the next steps still run
            why = str(err).strip() or type(err).__name__
            failed.append(f"step {number} ({step.name}): {why[:3000]}")
    where = f"scenario {scenario!r}: " if scenario else ""
    assert not failed, where + "\n".join(failed)

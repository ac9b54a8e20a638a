"""`tenantctl plan`: what a preview would change, one row per owner, store and key, never a value.

    plan_preview.parse_preview(document, stack)   `pulumi preview --json` -> ReviewPlan   (pure)
    render_markdown / render_json                 ReviewPlan -> text                      (pure)
    run_preview(stack, config_file)               runs the CLI                            (the only side effect)
    run_plan(...)                                 what `tenantctl plan` does

This module renders the plan and runs the preview; reading the preview is plan_preview's, with plan_moves
(buckets' tenants, entries that move) and plan_rows (one step's keys as rows) under it.

Every new or changed source that reads from outside tenants.yaml (an environment variable, a stack config
path, an Infisical folder) is called out above the table, with where it reads: a pull request that names a
source decides what the run copies into a tenant's store (docs/decisions/0041-value-sources-are-allow-listed.md).
Which database role gains which rights is said above the table too (docs/decisions/0042).

A failed preview (the removal guard's check failure, an invalid tenants.yaml, a missing value) is
reported by its error messages alone, with no table.

A preview that warned (it could not check something: the database without DATABASE_URL, say) is
never shown as a clean plan: its warnings head the comment and `tenantctl plan` exits 1 unless
`--allow-unchecked` (docs/decisions/0025-first-week.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from tenant_secrets.tenantctl.plan_preview import MAX_ERROR_CHARS, ReviewPlan, parse_preview
from tenant_secrets.tenantctl.plan_rows import ACTIONS, APPLICATION, Row, SourceChange
from tenant_secrets.tenants_file.names import few

NOTES = {
    "delete": "the key is deleted from the store on `pulumi up`",
    "replace": "the folder or rows are deleted and written again (a path, environment or table prefix changed)",
    "retain": "the stack stops managing the key; it stays in the store (retainOnDelete)",
    "re-encrypt": "same values, written again under the active master key (for the schema: every row and "
    "history entry still on another key version, in committed batches)",
    "migrate": "the company_secrets schema is migrated (a new schema version or table prefix)",
    "update": "the value changed (its fingerprint did)",
    "restore": "the store holds another value than tenants.yaml declares (changed outside it, found by "
    "`pulumi refresh`); `pulumi up` writes the declared value back",
    "create": "a new key is written",
    "forget": "the entry is gone and the store holds nothing of it any more; the stack stops tracking it",
    "move": "the tenant's entry moves to another resource of the stack (the `buckets` setting changed), or to or "
    "from another stack (`tenantctl reshard`): the new resource adopts what the store holds and the old one is "
    "forgotten; nothing is written or deleted for it",
}
MAX_REASON_CHARS = 300
DRIFT_READ = (
    "The stores were read before this plan (`pulumi preview --refresh`): a key changed outside tenants.yaml "
    "shows as `restore`."
)
DRIFT_NOT_READ = (
    "**Drift not checked:** the stores were not read before this plan, so a key changed outside tenants.yaml "
    "does not show here (`tenantctl verify` finds it)."
)
SOURCES_SHOWN = 10
"""How many new or changed sources the callout lists before "and N more"."""


# --- rendering (pure) ------------------------------------------------------------------------------


def _deletion_note(row: Row) -> str:
    if row.action == "replace":
        return " (deleted, then written again)"
    return " (the application's own key)" if row.source == APPLICATION else ""


def _owner(row: Row) -> str:
    return {"platform": f"{row.owner} (platform)", "schema": f"{row.owner} (schema)"}.get(row.kind, row.owner)


def _fenced(text: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}text\n{text}\n{fence}"


def render_markdown(plan: ReviewPlan) -> str:
    """The pull-request comment: errors or deletions first, then one table; values never appear."""
    region = f", region `{plan.region}`" if plan.region else ""
    title = f"### tenant-secrets plan: stack `{plan.stack}`, environment `{plan.environment}`{region}"
    if not plan.ok:
        lines = [
            f"### tenant-secrets plan: stack `{plan.stack}`: the preview failed",
            "",
            "**Nothing can be applied until this is fixed:**",
            "",
            _fenced("\n\n".join(plan.errors)),
        ]
        return "\n".join(lines) + "\n"
    lines = [title, ""]
    # last, under the table: whether drift could show (deletions stay the first thing a reviewer reads)
    drift = [] if plan.refreshed is None else ["", DRIFT_READ if plan.refreshed else DRIFT_NOT_READ]
    if plan.warnings:
        lines[0] = f"{title}: not fully checked"
        lines += [
            f"**The preview could not check everything ({len(plan.warnings)} warning(s)): `pulumi up` may fail "
            "or change more than this plan shows. Fix what it says and run the plan again.**",
            "",
            _fenced("\n\n".join(plan.warnings)),
            "",
        ]
    lines += _sources_callout(plan.sources)
    if not plan.rows:
        if plan.warnings:
            lines.append("No changes found in what the preview could check.")
        else:
            lines.append("No changes: nothing would be written to Infisical or the database.")
        return "\n".join(lines + drift) + "\n"
    if plan.deletions:
        owned = sum(r.source == APPLICATION for r in plan.deletions)
        mine = f" ({owned} of them the application's own, not in tenants.yaml)" if owned else ""
        lines += [f"**{len(plan.deletions)} secret(s) would be deleted{mine}:**", ""]
        lines += [f"- {_owner(r)}, {r.store}: `{r.key}`{_deletion_note(r)}" for r in plan.deletions]
        lines.append("")
    crossing = {owner for owner, _ in plan.between_stacks}
    if plan.between_stacks:
        lines += [
            f"**{len(crossing)} tenant(s) move between stacks (`tenantctl reshard`): this stack adopts those that "
            "arrive and forgets those that leave; nothing is written or deleted for them (a key of an arriving "
            "tenant that changed since its old stack wrote it has its own row):**",
            "",
        ]
        lines += [f"- {owner}: {way}" for owner, way in plan.between_stacks]
        lines.append("")
    within = {r.owner for r in plan.moved} - crossing
    if within:
        lines += [
            f"**{len(within)} tenant(s) move to other resources of this stack (the `buckets` setting changed): "
            "nothing is written or deleted for them (a key that also changes has its own row).**",
            "",
        ]
    if plan.released:
        lines += [f"**{len(plan.released)} secret(s) would stay in their store, no longer managed:**", ""]
        lines += [f"- {_owner(r)}, {r.store}: `{r.key}`" for r in plan.released]
        lines.append("")
    if plan.rights:
        lines += ["**Database roles' rights change:**", ""]
        lines += [f"- {line}" for line in plan.rights]
        lines.append("")
    lines += [
        "| tenant / folder | environment | store | key | source | action |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in plan.rows:
        action = f"**{r.action}**" if r.action in ("delete", "replace") else r.action
        key = f"`{r.key}`" if r.key != "-" else "-"
        cells = (_owner(r), r.environment, r.store, key, r.source or "-", action)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    counts = Counter(r.action for r in plan.rows)
    owners = {(r.owner, r.kind) for r in plan.rows if r.kind != "schema"}
    tally = ", ".join(f"{counts[a]} {a}" for a in ACTIONS if counts[a])
    scope = f", for {len(owners)} tenant(s) or folder(s)" if owners else ", the schema only"
    lines += ["", f"Totals: {tally}{scope}."]
    value_updates = any(r.action == "update" and r.kind != "schema" for r in plan.rows)
    notes = [f"*{a}*: {NOTES[a]}." for a in ACTIONS if counts[a] and (a != "update" or value_updates)]
    if any(r.key == "-" and r.kind != "schema" and r.action == "update" for r in plan.rows):
        notes.append("Key `-`: the folder or rows change, but no value does.")
    if any(r.kind == "schema" and r.action == "update" for r in plan.rows):
        notes.append(
            "`company_secrets (schema)` *update*: its roles, or the master key versions it checks, change; "
            "no value does."
        )
    lines += ["", "Values are never shown. " + " ".join(notes), *drift]
    return "\n".join(lines) + "\n"


def _sources_callout(sources: Sequence[SourceChange]) -> list[str]:
    """The section a reviewer reads first: where each new or changed outside value comes from."""
    if not sources:
        return []
    owner = {"platform": " (platform)"}
    items = [
        f"- {s.owner}{owner.get(s.owner_kind, '')}, `{s.key}` ({s.environment}, {s.change}): {s.reads}" for s in sources
    ]
    return [
        f"**{len(sources)} new or changed value source(s) read from outside tenants.yaml: check where each "
        "value comes from:**",
        "",
        few(items, shown=SOURCES_SHOWN, sep="\n"),
        "",
    ]


def render_json(plan: ReviewPlan) -> str:
    document = {
        "stack": plan.stack,
        "environment": plan.environment,
        "ok": plan.ok,
        "checked": plan.checked,
        "errors": list(plan.errors),
        "warnings": list(plan.warnings),
        "deletions": len(plan.deletions),
        "rights": list(plan.rights),
        "changes": [asdict(r) for r in plan.rows],
        "sources": [asdict(s) for s in plan.sources],
        "resources": dict(plan.summary),
        "refreshed": plan.refreshed,
        "between_stacks": [{"owner": owner, "move": way} for owner, way in plan.between_stacks],
        **({"region": plan.region} if plan.region else {}),
    }
    return json.dumps(document, indent=2) + "\n"


def render(plan: ReviewPlan, fmt: str) -> str:
    return render_json(plan) if fmt == "json" else render_markdown(plan)


def render_plans(plans: Sequence[ReviewPlan], fmt: str) -> str:
    """Several stacks' plans: a JSON list, or the markdown plans one after the other; stacks with regions are
    grouped by region (then stack), each region under its own heading (docs/decisions/0054-regions.md)."""
    if fmt == "json":
        return "[\n" + ",\n".join(render(plan, fmt).rstrip() for plan in plans) + "\n]\n"
    if not any(plan.region for plan in plans):
        return "\n".join(render(plan, fmt) for plan in plans)
    parts: list[str] = []
    for region in sorted({plan.region or "" for plan in plans}):
        mine = sorted((plan for plan in plans if (plan.region or "") == region), key=lambda plan: plan.stack)
        heading = f"## Region `{region}`: {len(mine)} stack(s)" if region else "## Stacks without a region"
        parts += [heading + "\n", *(render(plan, fmt) for plan in mine)]
    return "\n".join(parts)


# --- running ---------------------------------------------------------------------------------------


def failed(stack: str, message: str) -> ReviewPlan:
    """A plan that could not be made (the preview did not run, or its output is unreadable)."""
    return ReviewPlan(stack, stack, errors=(message.strip()[:MAX_ERROR_CHARS] or "the preview failed",))


def preview_command(stack: str, config_file: str | None, *, refresh: bool = False) -> list[str]:
    command = ["pulumi", "preview", "--json", "--diff", "--non-interactive", "--stack", stack]
    command += ["--refresh"] if refresh else []
    return [*command, "--config-file", config_file] if config_file else command


def run_preview(
    stack: str, config_file: str | None = None, cwd: str | Path | None = None, *, refresh: bool = True
) -> ReviewPlan:
    """The plan of `pulumi preview --refresh --json`: the stores read first, so that a key changed outside
    tenants.yaml shows as `restore` (without the refresh the preview compares with the last state and says
    "no changes"). When the refreshed preview fails, the plain one is tried, and the plan says, as a warning,
    that drift was not checked and why; when both fail, the plain one's errors are the plan."""
    if not refresh:
        return replace(_preview(stack, config_file, cwd, refresh=False), refreshed=False)
    plan = _preview(stack, config_file, cwd, refresh=True)
    if plan.ok:
        return replace(plan, refreshed=True)
    plain = _preview(stack, config_file, cwd, refresh=False)
    if not plain.ok:
        return replace(plain, refreshed=False)
    reason = (plan.errors[0].strip().splitlines() or ["pulumi preview --refresh failed"])[0][:MAX_REASON_CHARS]
    warning = f"the stores could not be read (pulumi preview --refresh failed: {reason}), so drift is not shown"
    return replace(plain, refreshed=False, warnings=(*plain.warnings, warning))


def _preview(stack: str, config_file: str | None, cwd: str | Path | None, *, refresh: bool) -> ReviewPlan:
    """Run `pulumi preview --json` and parse what it prints; a run without JSON fails with its stderr."""
    try:
        done = subprocess.run(
            preview_command(stack, config_file, refresh=refresh), capture_output=True, text=True, check=False, cwd=cwd
        )
    except OSError as err:
        return failed(stack, f"cannot run pulumi: {err.strerror}")
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        return failed(stack, done.stderr or done.stdout or f"pulumi preview exited with {done.returncode}")
    if not isinstance(document, dict):
        return failed(stack, "pulumi preview printed JSON that is not a preview")
    plan = parse_preview(document, stack)
    if done.returncode != 0 and plan.ok:
        return failed(stack, done.stderr or f"pulumi preview exited with {done.returncode}")
    return plan


def read_preview(path: str, stack: str) -> ReviewPlan:
    """A saved `pulumi preview --json` document ('-' for standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        document = json.loads(text)
    except OSError as err:
        return failed(stack, f"cannot read {path}: {err.strerror}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return failed(stack, f"{path} is not the JSON that `pulumi preview --json` prints")
    if not isinstance(document, dict):
        return failed(stack, f"{path} is not the JSON that `pulumi preview --json` prints")
    return parse_preview(document, stack)


def run_plan(
    stack: str,
    fmt: str,
    preview_json_path: str | None,
    config_file: str | None,
    *,
    allow_unchecked: bool = False,
    refresh: bool = True,
) -> int:
    """Print the plan; 0 when the preview succeeded (with or without changes), 1 when it failed or, unless
    ``allow_unchecked``, when it warned that it could not check something."""
    if preview_json_path:
        plan = read_preview(preview_json_path, stack)
    else:
        plan = run_preview(stack, config_file, refresh=refresh)
    sys.stdout.write(render(plan, fmt))
    return plan_status(plan, stack, allow_unchecked=allow_unchecked)


def run_environment_plan(
    stacks: Sequence[str],
    fmt: str,
    *,
    allow_unchecked: bool = False,
    refresh: bool = True,
    region: str | None = None,
) -> int:
    """Each stack's plan in turn (an environment's shards, of ``region`` when in regions: a failed preview
    says no region of its own); a JSON list with --format json. The worst status."""
    plans = [(stack, run_preview(stack, refresh=refresh)) for stack in stacks]
    plans = [(stack, replace(plan, region=plan.region or region)) for stack, plan in plans]
    sys.stdout.write(render_plans([plan for _, plan in plans], fmt))
    return max(plan_status(plan, stack, allow_unchecked=allow_unchecked) for stack, plan in plans)


def plan_status(plan: ReviewPlan, stack: str, *, allow_unchecked: bool) -> int:
    """0 when the preview succeeded; 1 when it failed or, unless ``allow_unchecked``, warned."""
    if not plan.ok:
        return 1
    if plan.warnings and not allow_unchecked:
        print(
            f"tenantctl plan: the preview of stack {stack} could not check everything ({len(plan.warnings)} "
            "warning(s), at the top of the plan); fix them, or pass --allow-unchecked to accept the plan as it is",
            file=sys.stderr,
        )
        return 1
    return 0

"""A `pulumi preview --json` document as the reviewer's plan (`ReviewPlan`): the rows of every step that
changes something (plan_rows, with the buckets' tenants and the moves of plan_moves), the new or changed
outside sources, the database roles' rights, the stack's environment and region, or the preview's errors.
Pure: no I/O; plan_comment renders the plan and runs the preview.

A failed preview (the removal guard's check failure, an invalid tenants.yaml, a missing value) is
its error messages alone, with no rows. A preview's warnings (it could not check something: the database
without DATABASE_URL, say) are kept with its rows: the plan is then not `checked`
(docs/decisions/0025-first-week.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.stack import reshard_marker
from tenant_secrets.tenantctl.plan_moves import (
    all_tenant_steps,
    arrival_update,
    between_stacks,
    holders,
    move_rows,
    provider_inputs,
    split_moves,
    tenant_steps_of,
    unpacked,
)
from tenant_secrets.tenantctl.plan_rows import (
    ACTIONS,
    CREATE_OPS,
    Row,
    SourceChange,
    changed_steps,
    owner_rows,
    rights_changes,
    schema_rows,
    source_changes,
    step_inputs,
    type_name,
)

ENVIRONMENT_CONFIG = f"{c.PACKAGE}:environment"
REGION_CONFIG = f"{c.PACKAGE}:region"
_CHECK_FAILURE = re.compile(
    r"^\S+ resource '(?P<name>[^']+)'(?:: property (?P<prop>\S+) value .*?)? has a problem: ", re.S
)
_GENERIC_FAILURE = "an unhandled error occurred: program exited with error code"
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class ReviewPlan:
    """What a reviewer reads: the rows, or why there are none (the preview failed)."""

    stack: str
    environment: str
    rows: tuple[Row, ...] = ()
    errors: tuple[str, ...] = ()
    summary: Mapping[str, int] = field(default_factory=dict)  # the engine's change summary (resources)
    warnings: tuple[str, ...] = ()  # what the preview could not check: `pulumi up` may fail or do more
    rights: tuple[str, ...] = ()  # which database role gains or loses which rights, in words
    sources: tuple[SourceChange, ...] = ()  # new or changed env, config and infisical sources
    refreshed: bool | None = None
    """Whether the preview read the stores first (`--refresh`), so that drift shows as `restore`; None for a
    saved preview, whose options are unknown."""
    between_stacks: tuple[tuple[str, str], ...] = ()
    """(tenant, "from <stack>" or "to <stack>") of each tenant `tenantctl reshard` moves into or out of this
    stack (its rows say `move`)."""
    region: str | None = None
    """The stack's region (tenant-secrets:region), or None for a stack of a file without regions."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def checked(self) -> bool:
        """Whether the preview checked everything it checks before `pulumi up` (it raised no warning)."""
        return self.ok and not self.warnings

    @property
    def deletions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.action in ("delete", "replace"))

    @property
    def released(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.action == "retain")

    @property
    def moved(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.action == "move")


def _message(diagnostic: Mapping[str, Any]) -> str:
    """An engine diagnostic as a reviewer reads it. A check failure keeps the resource's name and our
    reason, and drops the engine's `value {...}` part, which could show a property's value."""
    text = str(diagnostic.get("message", "")).strip()
    text = text.removeprefix("error:").strip()
    found = _CHECK_FAILURE.match(text)
    if found:
        text = f"{found['name']}: {text[found.end() :]}"
    return text[:MAX_ERROR_CHARS]


def _diagnostics(document: Mapping[str, Any], severity: str) -> list[str]:
    return [
        _message(d)
        for d in document.get("diagnostics") or []
        if isinstance(d, Mapping) and d.get("severity") == severity
    ]


def preview_errors(document: Mapping[str, Any]) -> list[str]:
    """The preview's error diagnostics, the program's generic exit line left out when others say why."""
    errors = _diagnostics(document, "error")
    specific = [e for e in errors if not e.startswith(_GENERIC_FAILURE)]
    return list(dict.fromkeys(specific or errors))


def preview_warnings(document: Mapping[str, Any]) -> list[str]:
    """The preview's warnings: each is something it could not check, so the plan may be greener than
    the `pulumi up` after it (decision 0025)."""
    return list(dict.fromkeys(w.removeprefix("warning:").strip() for w in _diagnostics(document, "warning")))


def parse_preview(document: Mapping[str, Any], stack: str) -> ReviewPlan:
    """A `pulumi preview --json` document as the reviewer's plan. Pure: no I/O."""
    config = document.get("config")
    configured = config.get(ENVIRONMENT_CONFIG) if isinstance(config, Mapping) else None
    environment = str(configured or stack)
    region = config.get(REGION_CONFIG) if isinstance(config, Mapping) else None
    region = str(region) if region else None
    summary = document.get("changeSummary")
    counts = {str(k): int(v) for k, v in summary.items()} if isinstance(summary, Mapping) else {}
    errors = preview_errors(document)
    warnings = tuple(preview_warnings(document))
    if errors:
        return ReviewPlan(stack, environment, errors=tuple(errors), summary=counts, warnings=warnings, region=region)
    rows = tuple(rows_from_preview(document, environment))
    rights = tuple(rights_changes(document))
    sources = tuple(sources_from_preview(document, environment))
    between = tuple(sorted({(owner, way) for _, _, owner, way in between_stacks(all_tenant_steps(document), document)}))
    return ReviewPlan(
        stack,
        environment,
        rows,
        summary=counts,
        warnings=warnings,
        rights=rights,
        sources=sources,
        between_stacks=between,
        region=region,
    )


def rows_from_preview(document: Mapping[str, Any], default_environment: str) -> list[Row]:
    """One row per changed key of every tenant and platform-folder resource, deletions first; a tenant whose
    entry moves between resources of the stack, or between stacks by `tenantctl reshard`, one `move` row per
    store and one per key that also changes (for a tenant leaving the stack, none: its destination's plan shows
    them)."""
    rows: set[Row] = set()
    tenant_steps: list[tuple[str, str, Mapping[str, Any]]] = []
    for op, step in changed_steps(document):
        if type_name(step) == c.DATABASE_SCHEMA:
            rows.update(schema_rows(step, op, default_environment))
        tenant_steps += tenant_steps_of(step)
    between = between_stacks(tenant_steps, document)
    recorded = reshard_marker.arrival_entries(provider_inputs(document))
    for index, store, owner, _ in between:
        op, _, step = tenant_steps[index]
        # an arrival recorded with entries but none in this store: its old stack wrote nothing there
        entry = recorded[owner].get(store, "{}") if owner in recorded else None
        arrival = arrival_update(step, entry) if op in CREATE_OPS else None
        if arrival is not None:
            rows.update(move_rows(arrival, store, default_environment))
        else:
            first = owner_rows(step, op, store, default_environment)[0]
            rows.add(replace(first, key="-", action="move", source=""))
    crossing = {index for index, _, _, _ in between}
    tenant_steps = [step for index, step in enumerate(tenant_steps) if index not in crossing]
    kept, moves = split_moves(tenant_steps, holders(document))
    for own, store, tenant in kept:
        rows.update(owner_rows(tenant, own, store, default_environment))
    for store, update in moves:
        rows.update(move_rows(update, store, default_environment))
    return sorted(rows, key=_order)


def sources_from_preview(document: Mapping[str, Any], default_environment: str) -> list[SourceChange]:
    """Every new or changed env, config and infisical source of the tenants and platform folders, once per
    owner and key (a tenant in both stores has the same sources in each), whatever the engine's op for
    the resource (a changed source may leave the value, and so the resource, unchanged)."""
    found: set[SourceChange] = set()
    for step in document.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        if type_name(step) in b.KINDS:  # every tenant, changed or not: a source may change alone
            op = str(step.get("op", "same"))
            kind = b.KINDS[type_name(step)]
            old_in, new_in = unpacked(kind, step, "oldState", "inputs"), unpacked(kind, step, "newState", "inputs")
            tenants: list[Mapping[str, Any]] = [
                {"oldState": {"inputs": old_in.get(owner, {})}, "newState": {"inputs": props}}
                for owner, props in new_in.items()
            ]
        else:
            tenants = [step] if type_name(step) in c.STORES else []
            op = str(step.get("op", "same"))
        for tenant in tenants:
            new = step_inputs(tenant, "newState")
            environment = str(new.get(c.ENVIRONMENT) or default_environment)
            found.update(source_changes(tenant, op, environment))
    return sorted(found)


def _order(row: Row) -> tuple[int, bool, str, str, str, str]:
    """Deletions first, then by owner (the schema after the owners), store and key."""
    rank = ACTIONS.index(row.action) if row.action in ACTIONS else len(ACTIONS)
    return (rank, row.kind == "schema", row.owner, row.store, row.key, row.environment)

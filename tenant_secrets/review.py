"""`tenantctl plan`: what a preview would change, one row per tenant, store and key, never a value.

Python dynamic providers cannot tell the engine which properties differ, so the preview's own
`diffReasons` are empty; every tenant resource therefore carries the per-key fingerprints as a
plain input (docs/decisions/0003-resource-granularity.md), and the rows here come from comparing
the old and new fingerprints of each step. Values are secret inputs and only ever `[secret]` in
the preview's JSON; nothing but property names is read from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STORES = {"InfisicalFolder": "infisical", "DatabaseTenant": "database"}
CREATE_OPS = {"create"}
DELETE_OPS = {"delete"}
REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}
ACTION_ORDER = {"delete": 0, "replace": 1, "update": 2, "create": 3, "re-encrypt": 4}


@dataclass(frozen=True, order=True)
class Row:
    owner: str
    environment: str
    store: str
    key: str
    action: str


def _inputs(step: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    state = step.get(side) or {}
    inputs: Mapping[str, Any] = state.get("inputs") or {}
    return inputs


def _fingerprints(inputs: Mapping[str, Any]) -> dict[str, str]:
    found = inputs.get("fingerprints")
    if not isinstance(found, dict):
        return {}
    if inputs.get("decommission"):
        return {}
    return {str(k): str(v) for k, v in found.items()}


def rows_from_preview(preview: Mapping[str, Any], default_environment: str) -> list[Row]:
    """One row per changed key of every tenant resource in a `pulumi preview --json` document."""
    rows: set[Row] = set()
    for step in preview.get("steps") or []:
        op = str(step.get("op", "same"))
        kind = str(step.get("urn", "")).split("::")[-2].rsplit(":", 1)[-1] if "::" in str(step.get("urn")) else ""
        store = STORES.get(kind)
        if op == "same" or store is None:
            continue
        old, new = _inputs(step, "oldState"), _inputs(step, "newState")
        owner = str(new.get("owner") or old.get("owner") or "?")
        environment = str(new.get("environment") or old.get("environment") or default_environment)
        before, after = _fingerprints(old), _fingerprints(new)
        if op in CREATE_OPS:
            changes = {key: "create" for key in after}
        elif op in DELETE_OPS:
            changes = {key: "delete" for key in before}
        elif op in REPLACE_OPS:
            changes = {key: "replace" for key in set(before) | set(after)}
        else:
            changes = {key: "create" for key in set(after) - set(before)}
            changes |= {key: "delete" for key in set(before) - set(after)}
            changes |= {key: "update" for key in set(after) & set(before) if after[key] != before[key]}
            if not changes and old.get("key_version") != new.get("key_version"):
                changes = {"*": "re-encrypt"}
        rows |= {Row(owner, environment, store, key, action) for key, action in changes.items()}
    return sorted(rows, key=lambda r: (ACTION_ORDER.get(r.action, 9), r.owner, r.store, r.key))


def render_markdown(stack: str, rows: Iterable[Row]) -> str:
    rows = list(rows)
    lines = [f"### tenant-secrets plan for stack `{stack}`", ""]
    deletions = [r for r in rows if r.action in ("delete", "replace")]
    if deletions:
        lines += [f"**{len(deletions)} secret(s) would be deleted or replaced:**", ""]
        lines += [f"- `{r.owner}` {r.store} `{r.key}` ({r.action})" for r in deletions]
        lines.append("")
    if not rows:
        lines.append("No changes: nothing would be written to Infisical or the database.")
        return "\n".join(lines) + "\n"
    lines += ["| tenant | environment | store | key | action |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.owner} | {r.environment} | {r.store} | `{r.key}` | {r.action} |" for r in rows]
    lines += ["", "Values are never shown; a changed key means its value's fingerprint changed."]
    return "\n".join(lines) + "\n"


def render_json(stack: str, rows: Iterable[Row]) -> str:
    return json.dumps({"stack": stack, "changes": [asdict(r) for r in rows]}, indent=2) + "\n"


def _run_preview(stack: str, config_file: str | None) -> tuple[dict[str, Any] | None, str]:
    cmd = ["pulumi", "preview", "--json", "--diff", "--non-interactive", "--stack", stack]
    if config_file:
        cmd += ["--config-file", config_file]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        document: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None, (done.stderr or done.stdout).strip()
    if done.returncode != 0:
        messages = [str(d.get("message", "")).strip() for d in document.get("diagnostics") or []]
        return None, "\n".join(m for m in messages if m) or done.stderr.strip()
    return document, ""


def run_plan(stack: str, fmt: str, preview_json: str | None, config_file: str | None) -> int:
    if preview_json:
        document: dict[str, Any] | None = json.loads(Path(preview_json).read_text())
        error = ""
    else:
        document, error = _run_preview(stack, config_file)
    if document is None:
        print(f"### tenant-secrets plan for stack `{stack}`: the preview failed\n\n```\n{error}\n```")
        return 1
    environment = str((document.get("config") or {}).get("tenant-secrets:environment") or stack)
    rows = rows_from_preview(document, environment)
    sys.stdout.write(render_markdown(stack, rows) if fmt == "markdown" else render_json(stack, rows))
    return 0

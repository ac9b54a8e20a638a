"""One step of a `pulumi preview --json` document as the reviewer's rows: a tenant or platform-folder
resource's keys, the schema resource's change, each key's source and the database roles' rights; never a value.
It owns the plan's vocabulary (`Row`, `SourceChange`, the actions and the engine's ops) that plan_moves,
plan_preview and plan_comment build on, and imports none of them.

Where the keys come from. Each tenant resource (`<owner>-infisical`, `<owner>-database`) has a plain
input mapping each key to an HMAC of its value, the declared fingerprints, and one mapping each key to
its value's source (docs/decisions/0034-write-only-values.md; a state written before that had one
secret input per key, named by the key, which is read too; the type tokens and property names are
`tenant_secrets/engine/contract.py`'s). A create lists the new state's keys, a delete the
old state's, and an update compares the two fingerprint maps key by key. The preview's own
`diffReasons` and `detailedDiff` name the changed keys too (the provider plugin reports them per key,
drift included: tenant_secrets/engine/property_diff.py), so they are read as well, never relied on alone: a
preview made against an older state, or by the dynamic providers before the plugin, may name none.

What is read from a step: its op, URN, `retainOnDelete`, `diffReasons`/`detailedDiff` names, the
plain bookkeeping inputs (owner, environment, path, decommission, key_version), property *names*, and
the source descriptors (which never hold a value: tenant_secrets/tenants_file/sources.py). The
fingerprints are compared, never printed. Each row says its key's source kind, and every new or changed
source that reads from outside tenants.yaml (an environment variable, a stack config path, an Infisical
folder) is a `SourceChange`, with where it reads: a pull request that names a source decides
what the run copies into a tenant's store (docs/decisions/0041-value-sources-are-allow-listed.md).
The schema's `role_rights` (role -> its rights in words) are compared too, to say which
database role gains which rights (docs/decisions/0042).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenant_secrets.engine import contract as c
from tenant_secrets.store.roles import role_rights
from tenant_secrets.store.settings import StoreSettings
from tenant_secrets.tenants_file.sources import FROM, LITERAL_IN_FILE, DescriptorError, where

APPLICATION = "application"
"""The source shown for a key tenants.yaml never declared: the application's own (decision 0049)."""
# Deletions first: they are what a reviewer must not miss.
ACTIONS = ("delete", "replace", "retain", "re-encrypt", "migrate", "update", "restore", "create", "forget", "move")
REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "discard-replaced"})
CREATE_OPS = frozenset({"create", "import"})
DELETE_OPS = frozenset({"delete", "discard"})
OUTSIDE_SOURCES = ("env", "config", "infisical")
"""Source kinds that read from outside tenants.yaml: what the plan calls out when one is new or changed."""


@dataclass(frozen=True, order=True)
class Row:
    """One key of one owner in one store, and what the preview would do to it."""

    owner: str  # tenant subdomain, or platform folder name
    environment: str
    store: str  # infisical | database
    key: str  # the secret's key; "-" when the change is to the folder or schema itself
    action: str  # one of ACTIONS
    kind: str = "tenant"  # tenant | platform | schema
    source: str = field(default="", compare=False)
    """The key's source kind (config, env, generate, infisical, literal); "" where the state records none.
    Not compared: a row is its owner, store, key and action."""


@dataclass(frozen=True, order=True)
class SourceChange:
    """A key whose source reads from outside tenants.yaml and is new or changed: where it reads, never a value."""

    owner: str
    environment: str
    key: str
    kind: str  # env | config | infisical
    reads: str  # "environment variable X", "stack config secrets.a.b", "Infisical dev:/path/KEY"
    change: str  # new | changed
    owner_kind: str = "tenant"  # tenant | platform


def type_name(step: Mapping[str, Any]) -> str:
    """A step's resource type name ('InfisicalFolder'); "" for a step without a whole URN."""
    urn = str(step.get("urn", ""))
    return c.urn_type_name(urn) if urn.count("::") >= 3 else ""


def step_inputs(step: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    state = step.get(side)
    inputs = state.get("inputs") if isinstance(state, Mapping) else None
    return inputs if isinstance(inputs, Mapping) else {}


def _key_names(inputs: Mapping[str, Any]) -> set[str]:
    """The secret keys a resource holds: its UPPER_CASE input names and its fingerprinted keys.

    Only names: the inputs' values are secrets and are not looked at."""
    if inputs.get(c.DECOMMISSION) is True:  # a decommissioned owner holds nothing
        return set()
    return c.secret_keys(inputs) | set(fingerprints(inputs, c.DECLARED_FINGERPRINTS))


def fingerprints(props: Mapping[str, Any], name: str) -> dict[str, str]:
    found = props.get(name)
    if not isinstance(found, Mapping) or props.get(c.DECOMMISSION) is True:
        return {}
    return {str(k): str(v) for k, v in found.items() if c.is_secret_key(str(k))}


def _recorded_fingerprints(step: Mapping[str, Any]) -> dict[str, str]:
    """What the store held at the last write or refresh (the old state's recorded fingerprints); after a
    refresh found drift it differs from the declared fingerprints. Empty when the state records none."""
    state = step.get("oldState")
    outputs = state.get("outputs") if isinstance(state, Mapping) else None
    if not isinstance(outputs, Mapping):
        return {}
    return fingerprints(outputs, c.RECORDED_FINGERPRINTS)


def _reported_keys(step: Mapping[str, Any]) -> set[str]:
    """Keys the engine itself names as changed (those of an update the provider lets it diff): a
    fingerprint's path (``fingerprints.STRIPE_SECRET_KEY``), or in a state written before values became
    write-only, a secret input's name."""
    names: list[str] = [str(n) for n in step.get("diffReasons") or []]
    detailed = step.get("detailedDiff")
    if isinstance(detailed, Mapping):
        names += [str(n) for n in detailed]
    keys: set[str] = set()
    for name in names:
        parts = re.split(r"[.\[\]\"]+", name)
        keyed = parts[0] == c.DECLARED_FINGERPRINTS and len(parts) > 1
        keys.add(parts[1] if keyed else parts[0])
    return c.secret_keys(keys)


def _key_changes(step: Mapping[str, Any], op: str) -> dict[str, str]:
    old, new = step_inputs(step, "oldState"), step_inputs(step, "newState")
    before, after = _key_names(old), _key_names(new)
    if op in CREATE_OPS:
        return dict.fromkeys(sorted(after), "create")
    if op in DELETE_OPS:
        state = step.get("oldState")
        retained = isinstance(state, Mapping) and state.get("retainOnDelete") is True
        return dict.fromkeys(sorted(before), "retain" if retained else "delete")
    if op in REPLACE_OPS:
        changes = dict.fromkeys(sorted(before - after), "delete")
        return changes | dict.fromkeys(sorted(after), "replace")
    old_fp, new_fp = fingerprints(old, c.DECLARED_FINGERPRINTS), fingerprints(new, c.DECLARED_FINGERPRINTS)
    changes = dict.fromkeys(sorted(before - after), "delete")
    changes |= dict.fromkeys(sorted(after - before), "create")
    both = before & after
    declared = {key for key in both if old_fp.get(key) != new_fp.get(key)}
    recorded = _recorded_fingerprints(step)
    drifted = {key for key in both - declared if key in new_fp and recorded.get(key, "") != new_fp[key]}
    # the plugin names drifted keys too (fingerprints.<KEY>): those are restores, not updates
    changed = declared | ((_reported_keys(step) & both) - drifted)
    changes |= dict.fromkeys(sorted(changed), "update")
    changes |= dict.fromkeys(sorted(drifted), "restore")
    # rows written outside tenants.yaml (the application's setTenantSecret) or not bound to them: put back
    unbound = {str(key) for key in new.get(c.UNBOUND) or ()} & both
    changes |= dict.fromkeys(sorted(unbound - changes.keys()), "restore")
    if not changes and old.get(c.KEY_VERSION) != new.get(c.KEY_VERSION):
        changes = dict.fromkeys(sorted(after), "re-encrypt")
    return changes or {"-": "update"}  # the resource changes, but no key's value (say, its company)


def owner_rows(step: Mapping[str, Any], op: str, store: str, environment: str) -> list[Row]:
    old, new = step_inputs(step, "oldState"), step_inputs(step, "newState")
    owner = str(new.get(c.OWNER) or old.get(c.OWNER) or str(step.get("urn", "")).rsplit("::", 1)[-1])
    environment = str(new.get(c.ENVIRONMENT) or old.get(c.ENVIRONMENT) or environment)
    path = str(new.get(c.PATH) or old.get(c.PATH) or "")
    kind = "platform" if store == "infisical" and path and not path.startswith("/tenants/") else "tenant"
    changes = _key_changes(step, op)
    kinds = _source_kinds(old) | _source_kinds(new)
    if new.get(c.DECOMMISSION) is True and op not in DELETE_OPS:
        # a decommissioned tenant's `up` deletes every row of its company: the keys tenants.yaml never wrote
        # (the application's own, decision 0049) are listed too, so a reviewer sees each one go
        for key in sorted({str(k) for k in new.get(c.STORED_KEYS) or ()} - changes.keys()):
            changes[key] = "delete"
            kinds.setdefault(key, APPLICATION)
        if len(changes) > 1:
            changes.pop("-", None)
    if not changes and op in DELETE_OPS:  # an owner decommissioned earlier, now removed from the file
        changes = {"-": "forget"}
    return [Row(owner, environment, store, key, action, kind, kinds.get(key, "")) for key, action in changes.items()]


def _descriptors(inputs: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = inputs.get(c.SOURCES)
    if not isinstance(found, Mapping):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, Mapping) and c.is_secret_key(str(k))}


def _kind(descriptor: Mapping[str, Any]) -> str:
    kind = str(descriptor.get(FROM, ""))
    return "literal" if kind == LITERAL_IN_FILE else kind


def _source_kinds(inputs: Mapping[str, Any]) -> dict[str, str]:
    """Each key's source kind, as the resource's source descriptors record it."""
    return {key: _kind(descriptor) for key, descriptor in _descriptors(inputs).items()}


def source_changes(step: Mapping[str, Any], op: str, environment: str) -> list[SourceChange]:
    """The keys of a step whose env, config or infisical source is new, or differs from the state's."""
    if op in DELETE_OPS:
        return []
    old, new = step_inputs(step, "oldState"), step_inputs(step, "newState")
    if new.get(c.DECOMMISSION) is True:
        return []
    owner = str(new.get(c.OWNER) or "")
    path = str(new.get(c.PATH) or "")
    owner_kind = "platform" if path and not path.startswith("/tenants/") else "tenant"
    before = {} if op in REPLACE_OPS or op in CREATE_OPS else _descriptors(old)
    changes = []
    for key, descriptor in sorted(_descriptors(new).items()):
        kind = _kind(descriptor)
        if kind not in OUTSIDE_SOURCES or before.get(key) == descriptor:
            continue
        try:
            reads = where(descriptor)
        except DescriptorError as err:
            reads = str(err)
        change = "changed" if key in before else "new"
        changes.append(SourceChange(owner, environment, key, kind, reads, change, owner_kind))
    return changes


def schema_rows(step: Mapping[str, Any], op: str, environment: str) -> list[Row]:
    old, new = step_inputs(step, "oldState"), step_inputs(step, "newState")
    if op in CREATE_OPS:
        action = "create"
    elif op in DELETE_OPS:
        return []  # the schema is never dropped (DatabaseSchemaProvider.delete keeps it)
    elif any(old.get(p) != new.get(p) for p in c.SCHEMA_MIGRATES):
        action = "migrate"
    elif old.get(c.KEY_VERSION) != new.get(c.KEY_VERSION) or new.get(c.ROTATION_PENDING) is True:
        action = "re-encrypt"
    else:
        action = "update"  # roles, passwords, or the key versions the schema checks
    return [Row("company_secrets", environment, "database", "-", action, "schema")]


def _role_rights(props: Mapping[str, Any]) -> dict[str, str]:
    """The schema's `role_rights` input; for a state written before it, what the roles it names were given."""
    found = props.get(c.ROLE_RIGHTS)
    if isinstance(found, Mapping):
        return {str(k): str(v) for k, v in found.items()}

    def role(prop: str) -> str | None:
        found = props.get(prop)
        return str(found) if found else None

    settings = StoreSettings(table_prefix=str(props.get(c.TABLE_PREFIX) or ""))
    return role_rights(settings, role(c.APP_ROLE), role(c.PROVISIONER_ROLE), role(c.WRITER_ROLE))


def rights_changes(document: Mapping[str, Any]) -> list[str]:
    """Which database role gains or loses which rights, from the schema resource's `role_rights` inputs
    (tenant_secrets.store.roles.role_rights): one sentence per role whose rights change."""
    lines: list[str] = []
    for step in document.get("steps") or []:
        if not isinstance(step, Mapping) or type_name(step) != c.DATABASE_SCHEMA:
            continue
        if str(step.get("op", "same")) in ("same", "read", "refresh", *DELETE_OPS):
            continue
        before = _role_rights(step_inputs(step, "oldState"))
        after = _role_rights(step_inputs(step, "newState"))
        lines += [f"`{role}` gains {rights}" for role, rights in sorted(after.items()) if before.get(role) != rights]
        lines += [
            f"`{role}` is no longer {rights.split(':', 1)[0]}: its row-level security policy goes, so it sees no row "
            "of the store; what was granted to it stays until revoked by hand"
            for role, rights in sorted(before.items())
            if role not in after
        ]
    return lines


def changed_steps(document: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(op, step) of each step of the preview that changes something."""
    found = []
    for step in document.get("steps") or []:
        if isinstance(step, Mapping) and str(step.get("op", "same")) not in ("same", "read", "refresh"):
            found.append((str(step.get("op", "same")), step))
    return found

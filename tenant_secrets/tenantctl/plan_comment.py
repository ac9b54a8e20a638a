"""`tenantctl plan`: what a preview would change, one row per owner, store and key, never a value.

    parse_preview(document, stack)   `pulumi preview --json` -> ReviewPlan   (pure)
    render_markdown / render_json    ReviewPlan -> text                      (pure)
    run_preview(stack, config_file)  runs the CLI                            (the only side effect)
    run_plan(...)                    what `tenantctl plan` does

Where the keys come from. Each tenant resource (`<owner>-infisical`, `<owner>-database`) has a plain
input mapping each key to an HMAC of its value, the declared fingerprints, and one mapping each key to
its value's source (docs/decisions/0034-write-only-values.md; a state written before that had one
secret input per key, named by the key, which is read too; the type tokens and property names are
`tenant_secrets/engine/contract.py`'s). A create lists the new state's keys, a delete the
old state's, and an update compares the two fingerprint maps key by key. The preview's own
`diffReasons` and `detailedDiff` name the changed keys too (the provider plugin reports them per key,
drift included: tenant_secrets/engine/property_diff.py), so they are read as well, never relied on alone: a
preview made against an older state, or by the dynamic providers before the plugin, may name none.

A bucket (`InfisicalBucket`, `DatabaseBucket`: several tenants in one resource, the stack's `buckets`
setting, tenant_secrets/engine/buckets.py) is read as the per-tenant steps it stands for: each of its
tenants' entries unpacked into the inputs and outputs its own resource would have, one step per tenant
added, removed or changed, so the rows are the same as with one resource per tenant. The plugin's
detailed diff names a changed tenant whole (`tenants.<subdomain>`: its entry is one JSON string), so its
keys come from the unpacked fingerprints, compared as a tenant resource's are.

A tenant's entry in one store that one resource of the preview deletes and another creates is a *move*
(the stack's `buckets` setting was set, changed or removed: docs/decisions/0053-tenants-per-resource.md):
the new resource adopts the entry and the old one is forgotten, so its keys are compared from the old
resource's state to the new one's inputs, as an update, and the tenant shows one `move` row per store
(plus a row per key that also changes). A delete of an entry no other resource takes is a delete, as ever.

A tenant that `tenantctl reshard` moves between stacks with buckets moves with no state move (decision
0053): the source stack's bucket entry records the stack it moves to (``moved_to``), and the destination's
provider the tenants that arrive, where from, and each one's entry as the source recorded it (its old inputs
in the preview's provider step, tenant_secrets/stack/reshard_marker.py). Such a removed or added entry is a
`move` row too, never a delete or a create, and the plan names the other stack above the table. An arrival's
keys are compared from the source's recorded entry to the destination's inputs, as a move within the stack's
are, so a key declared differently since the source wrote it has its own row (the destination's `up` writes
it; in a store the source held nothing of, every key is a `create`); an arrival recorded without its entries
(a state written before they were) shows the `move` row alone.

What is read from a step: its op, URN, `retainOnDelete`, `diffReasons`/`detailedDiff` names, the
plain bookkeeping inputs (owner, environment, path, decommission, key_version), property *names*, and
the source descriptors (which never hold a value: tenant_secrets/tenants_file/sources.py). The
fingerprints are compared, never printed. Each row says its key's source kind, and every new or changed
source that reads from outside tenants.yaml (an environment variable, a stack config path, an Infisical
folder) is called out above the table, with where it reads: a pull request that names a source decides
what the run copies into a tenant's store (docs/decisions/0041-value-sources-are-allow-listed.md).
The schema's `role_rights` (role -> its rights in words) are compared too, to say above the table which
database role gains which rights (docs/decisions/0042).

A failed preview (the removal guard's check failure, an invalid tenants.yaml, a missing value) is
reported by its error messages alone, with no table.

A preview that warned (it could not check something: the database without DATABASE_URL, say) is
never shown as a clean plan: its warnings head the comment and `tenantctl plan` exits 1 unless
`--allow-unchecked` (docs/decisions/0025-first-week.md).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tenant_secrets.engine import buckets as b
from tenant_secrets.engine import contract as c
from tenant_secrets.stack import reshard_marker
from tenant_secrets.store.roles import role_rights
from tenant_secrets.store.settings import StoreSettings
from tenant_secrets.tenants_file.names import few
from tenant_secrets.tenants_file.sources import FROM, LITERAL_IN_FILE, DescriptorError, where

ENVIRONMENT_CONFIG = f"{c.PACKAGE}:environment"
REGION_CONFIG = f"{c.PACKAGE}:region"
# Deletions first: they are what a reviewer must not miss.
APPLICATION = "application"
"""The source shown for a key tenants.yaml never declared: the application's own (decision 0049)."""
ACTIONS = ("delete", "replace", "retain", "re-encrypt", "migrate", "update", "restore", "create", "forget", "move")
REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "discard-replaced"})
CREATE_OPS = frozenset({"create", "import"})
DELETE_OPS = frozenset({"delete", "discard"})
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
_CHECK_FAILURE = re.compile(
    r"^\S+ resource '(?P<name>[^']+)'(?:: property (?P<prop>\S+) value .*?)? has a problem: ", re.S
)
_GENERIC_FAILURE = "an unhandled error occurred: program exited with error code"
MAX_ERROR_CHARS = 4000
MAX_REASON_CHARS = 300
DRIFT_READ = (
    "The stores were read before this plan (`pulumi preview --refresh`): a key changed outside tenants.yaml "
    "shows as `restore`."
)
DRIFT_NOT_READ = (
    "**Drift not checked:** the stores were not read before this plan, so a key changed outside tenants.yaml "
    "does not show here (`tenantctl verify` finds it)."
)
OUTSIDE_SOURCES = ("env", "config", "infisical")
"""Source kinds that read from outside tenants.yaml: what the plan calls out when one is new or changed."""
SOURCES_SHOWN = 10
"""How many new or changed sources the callout lists before "and N more"."""


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


# --- parsing (pure) --------------------------------------------------------------------------------


def _type_name(step: Mapping[str, Any]) -> str:
    """'InfisicalFolder' from a URN ...$pulumi-python:dynamic/tenants:InfisicalFolder::codewiser-infisical."""
    urn = str(step.get("urn", ""))
    parts = urn.split("::")
    if len(parts) < 4:
        return ""
    return parts[-2].rsplit("$", 1)[-1].rsplit(":", 1)[-1]


def _inputs(step: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    state = step.get(side)
    inputs = state.get("inputs") if isinstance(state, Mapping) else None
    return inputs if isinstance(inputs, Mapping) else {}


def _key_names(inputs: Mapping[str, Any]) -> set[str]:
    """The secret keys a resource holds: its UPPER_CASE input names and its fingerprinted keys.

    Only names: the inputs' values are secrets and are not looked at."""
    if inputs.get(c.DECOMMISSION) is True:  # a decommissioned owner holds nothing
        return set()
    return c.secret_keys(inputs) | set(_fingerprints(inputs, c.DECLARED_FINGERPRINTS))


def _fingerprints(props: Mapping[str, Any], name: str) -> dict[str, str]:
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
    return _fingerprints(outputs, c.RECORDED_FINGERPRINTS)


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
    old, new = _inputs(step, "oldState"), _inputs(step, "newState")
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
    old_fp, new_fp = _fingerprints(old, c.DECLARED_FINGERPRINTS), _fingerprints(new, c.DECLARED_FINGERPRINTS)
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


def _owner_rows(step: Mapping[str, Any], op: str, store: str, environment: str) -> list[Row]:
    old, new = _inputs(step, "oldState"), _inputs(step, "newState")
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


def _source_changes(step: Mapping[str, Any], op: str, environment: str) -> list[SourceChange]:
    """The keys of a step whose env, config or infisical source is new, or differs from the state's."""
    if op in DELETE_OPS:
        return []
    old, new = _inputs(step, "oldState"), _inputs(step, "newState")
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


def _schema_rows(step: Mapping[str, Any], op: str, environment: str) -> list[Row]:
    old, new = _inputs(step, "oldState"), _inputs(step, "newState")
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
        if not isinstance(step, Mapping) or _type_name(step) != c.DATABASE_SCHEMA:
            continue
        if str(step.get("op", "same")) in ("same", "read", "refresh", *DELETE_OPS):
            continue
        before = _role_rights(_inputs(step, "oldState"))
        after = _role_rights(_inputs(step, "newState"))
        lines += [f"`{role}` gains {rights}" for role, rights in sorted(after.items()) if before.get(role) != rights]
        lines += [
            f"`{role}` is no longer {rights.split(':', 1)[0]}: its row-level security policy goes, so it sees no row "
            "of the store; what was granted to it stays until revoked by hand"
            for role, rights in sorted(before.items())
            if role not in after
        ]
    return lines


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
    between = tuple(
        sorted({(owner, way) for _, _, owner, way in _between_stacks(_all_tenant_steps(document), document)})
    )
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


def _unpacked(kind: b.BucketKind, step: Mapping[str, Any], side: str, part: str) -> dict[str, dict[str, Any]]:
    """One side's (oldState, newState) inputs or outputs of a bucket step, as each tenant's own; an entry that
    does not unpack (a state written by something else) is left out, never guessed."""
    state = step.get(side)
    props = state.get(part) if isinstance(state, Mapping) else None
    if not isinstance(props, Mapping):
        return {}
    shared = b.shared_of(kind, props)
    found: dict[str, dict[str, Any]] = {}
    for owner, entry in b.entries(props).items():
        try:
            found[owner] = b.unpack(kind, owner, entry, shared)
        except b.BucketError:
            continue
    return found


def _named_tenants(step: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """The tenants a bucket step's `detailedDiff` names, each with its paths below ``tenants.<subdomain>``; None
    when the step has no detailed diff (then each tenant's inputs and recorded fingerprints decide)."""
    detailed = step.get("detailedDiff")
    if not isinstance(detailed, Mapping) or not detailed:
        return None
    named: dict[str, list[str]] = {}
    for name in detailed:
        found = re.match(rf'^{c.TENANTS}(?:\.([^.\[]+)|\["((?:[^"\\]|\\.)*)"\])(?:\.(.*))?$', str(name))
        if found:
            named.setdefault(found[1] or found[2], []).append(found[3] or "")
    return named


def bucket_steps(step: Mapping[str, Any], op: str) -> list[tuple[str, dict[str, Any]]]:
    """A bucket step as the steps of its tenants' own resources: (op, step) for each tenant it creates, deletes
    or changes. A tenant of an updated bucket is a step when it is new or gone, when the bucket's detailed
    diff names it (a tenant the plugin's detailed diff leaves out does not change: after a partial failure its
    old inputs may differ from what its store holds), or, without a detailed diff, when its declared inputs or
    its recorded fingerprints say it changes."""
    kind = b.KINDS[_type_name(step)]
    old_in, old_out = _unpacked(kind, step, "oldState", "inputs"), _unpacked(kind, step, "oldState", "outputs")
    new_in = _unpacked(kind, step, "newState", "inputs")
    old_state = step.get("oldState")
    retain = isinstance(old_state, Mapping) and old_state.get("retainOnDelete") is True
    named = _named_tenants(step)
    old_out_known = isinstance(old_state, Mapping) and isinstance(old_state.get("outputs"), Mapping)
    steps: list[tuple[str, dict[str, Any]]] = []
    for owner in sorted({*old_in, *new_in}):
        if op in CREATE_OPS or op in DELETE_OPS or op in REPLACE_OPS:
            own = op
        elif owner not in old_in or (old_out_known and owner not in old_out):
            own = "create"  # new, or recorded by no earlier write (its create failed in a partial failure)
        elif owner not in new_in:
            own = "delete"
        else:
            recorded = _fingerprints(old_out.get(owner, {}), c.RECORDED_FINGERPRINTS)
            drifted = recorded != _fingerprints(new_in[owner], c.DECLARED_FINGERPRINTS)
            if named is not None and owner not in named:
                continue  # the provider's diff says this tenant does not change (it names every one that does)
            if named is None and old_in[owner] == new_in[owner] and not drifted:
                continue
            own = "update"
        if (own in CREATE_OPS and owner not in new_in) or (own in DELETE_OPS and owner not in old_in):
            continue
        paths = [p for p in (named or {}).get(owner, []) if p]
        old_side = {"inputs": old_in.get(owner, {}), "outputs": old_out.get(owner, {}), "retainOnDelete": retain}
        tenant_step = {
            "op": own,
            "urn": f"{step.get('urn', '')}/{owner}",
            "oldState": old_side,
            "newState": {"inputs": new_in.get(owner, {})},
            "detailedDiff": {name: {} for name in paths},
        }
        steps.append((own, tenant_step))
    return steps


def _tenant_steps(step: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(op, store, step) of each tenant resource a step is, or stands for (a bucket's tenants); none for
    another resource."""
    op = str(step.get("op", "same"))
    kind = _type_name(step)
    if kind in c.STORES:
        return [(op, c.STORES[kind], step)]
    if kind in b.KINDS:
        return [(own, b.KINDS[kind].store, tenant) for own, tenant in bucket_steps(step, op)]
    return []


def _step_owner(step: Mapping[str, Any]) -> str:
    old, new = _inputs(step, "oldState"), _inputs(step, "newState")
    return str(new.get(c.OWNER) or old.get(c.OWNER) or str(step.get("urn", "")).rsplit("::", 1)[-1])


def _base_urn(step: Mapping[str, Any]) -> str:
    """The resource a (tenant) step is of: a bucket's tenant steps are ``<bucket URN>/<subdomain>``."""
    urn = str(step.get("urn", ""))
    return urn.rsplit("/", 1)[0] if _type_name({"urn": urn.rsplit("/", 1)[0]}) in b.KINDS else urn


def _holders(document: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(owner, store) -> a step of the resource that declares the entry in this preview and keeps it (any op but
    a delete, `same` included): its URN and new inputs, as a tenant step."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for step in document.get("steps") or []:
        if not isinstance(step, Mapping) or str(step.get("op", "same")) in DELETE_OPS | REPLACE_OPS:
            continue
        kind = _type_name(step)
        if kind in c.STORES:
            owner = _inputs(step, "newState").get(c.OWNER)
            if owner:
                held[(str(owner), c.STORES[kind])] = {"urn": step.get("urn"), "newState": step.get("newState")}
        elif kind in b.KINDS:
            for owner, props in _unpacked(b.KINDS[kind], step, "newState", "inputs").items():
                urn = f"{step.get('urn', '')}/{owner}"
                held[(owner, b.KINDS[kind].store)] = {"urn": urn, "newState": {"inputs": props}}
    return held


def _moves(
    steps: Sequence[tuple[str, str, Mapping[str, Any]]], held: Mapping[tuple[str, str], Mapping[str, Any]]
) -> tuple[list[tuple[str, str, Mapping[str, Any]]], list[tuple[str, Mapping[str, Any]]]]:
    """The tenant steps that are not moves, and the moves: (store, the update from the deleted resource's state
    to the new holder's inputs) for each owner and store that one resource deletes and another resource of the
    preview declares: creates it, or holds it already (a move whose deletes had not run yet); one of the two a
    bucket, as the delete guard (tenant_secrets/engine/deletes.py) forgets only those."""
    by_entry: dict[tuple[str, str], list[int]] = {}
    for index, (_, store, step) in enumerate(steps):
        by_entry.setdefault((_step_owner(step), store), []).append(index)
    moved: set[int] = set()
    moves: list[tuple[str, Mapping[str, Any]]] = []
    for (owner, store), indexes in sorted(by_entry.items()):
        deleted = [i for i in indexes if steps[i][0] in DELETE_OPS]
        created = [i for i in indexes if steps[i][0] in CREATE_OPS]
        if len(deleted) != 1 or len(created) > 1:
            continue
        old = steps[deleted[0]][2]
        new = steps[created[0]][2] if created else held.get((owner, store))
        if new is None or _base_urn(new) == _base_urn(old):
            continue
        if not any(_type_name({"urn": _base_urn(side)}) in b.KINDS for side in (old, new)):
            continue  # two per-tenant resources (a reshard interrupted): the delete guard refuses it, no move
        update = {
            "op": "update",
            "urn": new.get("urn"),
            "oldState": old.get("oldState"),
            "newState": new.get("newState"),
        }
        moves.append((store, update))
        moved.update((deleted[0], *created))
    return [s for i, s in enumerate(steps) if i not in moved], moves


def _changed_steps(document: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(op, step) of each step of the preview that changes something."""
    found = []
    for step in document.get("steps") or []:
        if isinstance(step, Mapping) and str(step.get("op", "same")) not in ("same", "read", "refresh"):
            found.append((str(step.get("op", "same")), step))
    return found


def _all_tenant_steps(document: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    return [tenant for _, step in _changed_steps(document) for tenant in _tenant_steps(step)]


def _provider_inputs(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stack's provider's recorded inputs, which its step in the preview carries as its old state: where
    `tenantctl reshard` records the tenants it moved into this stack (the `up` drops them)."""
    for step in document.get("steps") or []:
        urn = str(step.get("urn", "")) if isinstance(step, Mapping) else ""
        if urn.count("::") >= 3 and urn.split("::")[2] == reshard_marker.PROVIDER_TYPE:
            return _inputs(step, "oldState")
    return {}


def _arrivals(document: Mapping[str, Any]) -> dict[str, str]:
    """The tenants `tenantctl reshard` moved into this stack, with the stack each left."""
    return reshard_marker.arrivals(_provider_inputs(document))


def _between_stacks(
    steps: Sequence[tuple[str, str, Mapping[str, Any]]], document: Mapping[str, Any]
) -> list[tuple[int, str, str, str]]:
    """(index in ``steps``, store, tenant, "to <stack>" or "from <stack>") of each bucket tenant's removal that
    `tenantctl reshard` marked (its recorded entry's ``moved_to``) and each addition of a tenant it moved in."""
    arrivals = _arrivals(document)
    found = []
    for index, (op, store, step) in enumerate(steps):
        if _type_name({"urn": _base_urn(step)}) not in b.KINDS:
            continue
        owner = _step_owner(step)
        old_state = step.get("oldState")
        outputs = old_state.get("outputs") if isinstance(old_state, Mapping) else None
        moved_to = outputs.get(c.MOVED_TO) if isinstance(outputs, Mapping) else None
        if op in DELETE_OPS and moved_to:
            found.append((index, store, owner, f"to {moved_to}"))
        elif op in CREATE_OPS and owner in arrivals:
            found.append((index, store, owner, f"from {arrivals[owner]}"))
    return found


def rows_from_preview(document: Mapping[str, Any], default_environment: str) -> list[Row]:
    """One row per changed key of every tenant and platform-folder resource, deletions first; a tenant whose
    entry moves between resources of the stack, or between stacks by `tenantctl reshard`, one `move` row per
    store and one per key that also changes (for a tenant leaving the stack, none: its destination's plan shows
    them)."""
    rows: set[Row] = set()
    tenant_steps: list[tuple[str, str, Mapping[str, Any]]] = []
    for op, step in _changed_steps(document):
        if _type_name(step) == c.DATABASE_SCHEMA:
            rows.update(_schema_rows(step, op, default_environment))
        tenant_steps += _tenant_steps(step)
    between = _between_stacks(tenant_steps, document)
    recorded = reshard_marker.arrival_entries(_provider_inputs(document))
    for index, store, owner, _ in between:
        op, _, step = tenant_steps[index]
        # an arrival recorded with entries but none in this store: its old stack wrote nothing there
        entry = recorded[owner].get(store, "{}") if owner in recorded else None
        arrival = _arrival_update(step, entry) if op in CREATE_OPS else None
        if arrival is not None:
            rows.update(_move_rows(arrival, store, default_environment))
        else:
            first = _owner_rows(step, op, store, default_environment)[0]
            rows.add(replace(first, key="-", action="move", source=""))
    crossing = {index for index, _, _, _ in between}
    tenant_steps = [step for index, step in enumerate(tenant_steps) if index not in crossing]
    kept, moves = _moves(tenant_steps, _holders(document))
    for own, store, tenant in kept:
        rows.update(_owner_rows(tenant, own, store, default_environment))
    for store, update in moves:
        rows.update(_move_rows(update, store, default_environment))
    return sorted(rows, key=_order)


def _move_rows(update: Mapping[str, Any], store: str, environment: str) -> list[Row]:
    """A moving entry's rows: its `move` row and one per key that also changes, from the update that stands for
    the move (the old holder's state to the new holder's inputs)."""
    changed = _owner_rows(update, "update", store, environment)
    move = replace(changed[0], key="-", action="move", source="")
    return [move, *(r for r in changed if not (r.key == "-" and r.action == "update"))]


def _arrival_update(step: Mapping[str, Any], entry: str | None) -> dict[str, Any] | None:
    """The update that stands for a tenant's arrival by `tenantctl reshard` (the destination bucket's create of
    its entry, ``step``): from the entry the source stack recorded to the destination's inputs; None without a
    readable entry. The recorded entry is the source's outputs, whose fingerprints are what the store holds; it
    does not record the master key version, which is taken as the destination's, so an arrival unchanged reads
    as no change."""
    kind = b.KINDS.get(_type_name({"urn": _base_urn(step)}))
    if kind is None or entry is None:
        return None
    new = _inputs(step, "newState")
    try:
        old = b.unpack(kind, _step_owner(step), entry, b.shared_of(kind, new))
    except b.BucketError:
        return None
    old = {**old, c.KEY_VERSION: new.get(c.KEY_VERSION)} if c.KEY_VERSION in new else old
    return {
        "op": "update",
        "urn": step.get("urn"),
        "oldState": {"inputs": old, "outputs": old},
        "newState": step.get("newState"),
    }


def sources_from_preview(document: Mapping[str, Any], default_environment: str) -> list[SourceChange]:
    """Every new or changed env, config and infisical source of the tenants and platform folders, once per
    owner and key (a tenant in both stores has the same sources in each), whatever the engine's op for
    the resource (a changed source may leave the value, and so the resource, unchanged)."""
    found: set[SourceChange] = set()
    for step in document.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        if _type_name(step) in b.KINDS:  # every tenant, changed or not: a source may change alone
            op = str(step.get("op", "same"))
            kind = b.KINDS[_type_name(step)]
            old_in, new_in = _unpacked(kind, step, "oldState", "inputs"), _unpacked(kind, step, "newState", "inputs")
            tenants: list[Mapping[str, Any]] = [
                {"oldState": {"inputs": old_in.get(owner, {})}, "newState": {"inputs": props}}
                for owner, props in new_in.items()
            ]
        else:
            tenants = [step] if _type_name(step) in c.STORES else []
            op = str(step.get("op", "same"))
        for tenant in tenants:
            new = _inputs(tenant, "newState")
            environment = str(new.get(c.ENVIRONMENT) or default_environment)
            found.update(_source_changes(tenant, op, environment))
    return sorted(found)


def _order(row: Row) -> tuple[int, bool, str, str, str, str]:
    """Deletions first, then by owner (the schema after the owners), store and key."""
    rank = ACTIONS.index(row.action) if row.action in ACTIONS else len(ACTIONS)
    return (rank, row.kind == "schema", row.owner, row.store, row.key, row.environment)


def failed(stack: str, message: str) -> ReviewPlan:
    """A plan that could not be made (the preview did not run, or its output is unreadable)."""
    return ReviewPlan(stack, stack, errors=(message.strip()[:MAX_ERROR_CHARS] or "the preview failed",))


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
